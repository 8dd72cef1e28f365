//! One process from `/proc`: what it has open right now, its name, its limits, its zombie
//! children, and whether the agent may read other users' processes at all.

use std::{os::unix::ffi::OsStrExt, path::PathBuf};

use crate::state::{FdKind, Limits, ProcFd};

#[derive(Debug, thiserror::Error)]
pub enum ProcError {
    #[error("PID {0} does not exist (or has already exited)")]
    NoSuchProcess(u32),
    #[error("cannot read /proc/{pid}/fd (run as root)")]
    Unreadable {
        pid: u32,
        #[source]
        source: std::io::Error,
    },
    #[error("reading /proc/self/status")]
    OwnStatus(#[source] std::io::Error),
    #[error(
        "cannot read other users' /proc/PID/fd and maps without CAP_SYS_PTRACE: run as root or grant CAP_SYS_PTRACE (with CAP_BPF and CAP_PERFMON)"
    )]
    NoPtrace,
}

fn proc_path(pid: u32) -> PathBuf {
    PathBuf::from(format!("/proc/{pid}"))
}

pub fn exists(pid: u32) -> bool {
    proc_path(pid).join("fd").exists()
}

/// Every open fd with its kind and link target.
pub fn scan_fds(pid: u32) -> Result<Vec<ProcFd>, ProcError> {
    let dir = proc_path(pid).join("fd");
    let entries = std::fs::read_dir(&dir).map_err(|source| match source.kind() {
        std::io::ErrorKind::NotFound => ProcError::NoSuchProcess(pid),
        _ => ProcError::Unreadable { pid, source },
    })?;
    let mut out = Vec::new();
    for e in entries.flatten() {
        let Some(fd) = e.file_name().to_str().and_then(|s| s.parse::<i32>().ok()) else {
            continue;
        };
        let path = e.path();
        // The fd may close between readdir and readlink: skip it, it is gone.
        let Ok(target) = std::fs::read_link(&path) else {
            continue;
        };
        let target = target.as_os_str().as_bytes().to_vec();
        let kind = FdKind::from_link(&target, || file_type(&path));
        out.push(ProcFd { fd, kind, target });
    }
    out.sort_by_key(|p| p.fd);
    Ok(out)
}

/// Sorted numbers of the open fds (cheaper than a full scan).
pub fn fd_numbers(pid: u32) -> Option<Vec<i32>> {
    let entries = std::fs::read_dir(proc_path(pid).join("fd")).ok()?;
    let mut v: Vec<i32> = entries
        .flatten()
        .filter_map(|e| e.file_name().to_str().and_then(|s| s.parse().ok()))
        .collect();
    v.sort_unstable();
    Some(v)
}

/// Kind and link target of one fd, if it is still open.
pub fn describe_fd(pid: u32, fd: i32) -> Option<(FdKind, Vec<u8>)> {
    let path = proc_path(pid).join("fd").join(fd.to_string());
    let target = std::fs::read_link(&path).ok()?;
    let target = target.as_os_str().as_bytes().to_vec();
    let kind = FdKind::from_link(&target, || file_type(&path));
    Some((kind, target))
}

fn file_type(link: &std::path::Path) -> Option<FdKind> {
    use std::os::unix::fs::FileTypeExt;
    let t = std::fs::metadata(link).ok()?.file_type();
    Some(if t.is_dir() {
        FdKind::Directory
    } else if t.is_char_device() {
        FdKind::CharDevice
    } else if t.is_block_device() {
        FdKind::BlockDevice
    } else if t.is_fifo() {
        FdKind::Fifo
    } else if t.is_socket() {
        FdKind::Socket
    } else {
        FdKind::File
    })
}

/// The command name (raw bytes: it may hold anything a process put there).
pub fn comm(pid: u32) -> Vec<u8> {
    let mut c = std::fs::read(proc_path(pid).join("comm")).unwrap_or_default();
    if c.last() == Some(&b'\n') {
        c.pop();
    }
    c
}

/// RLIMIT_NOFILE from /proc/PID/limits.
pub fn limits(pid: u32) -> Limits {
    let value = |v: procfs::process::LimitValue| match v {
        procfs::process::LimitValue::Value(n) => Some(n),
        procfs::process::LimitValue::Unlimited => None,
    };
    match procfs::process::Process::new(pid as i32).and_then(|p| p.limits()) {
        Ok(l) => Limits {
            nofile_soft: value(l.max_open_files.soft_limit),
            nofile_hard: value(l.max_open_files.hard_limit),
        },
        Err(_) => Limits::default(),
    }
}

/// Children of `pid` (any of its threads) that are zombies now.
pub fn zombie_children(pid: u32) -> Vec<u32> {
    let Some(tasks) = i32::try_from(pid)
        .ok()
        .and_then(|p| procfs::process::Process::new(p).ok())
        .and_then(|p| p.tasks().ok())
    else {
        return Vec::new();
    };
    tasks
        .flatten()
        .filter_map(|t| t.children().ok())
        .flatten()
        .filter(|c| is_zombie(*c))
        .collect()
}

/// Whether a process is a zombie now (the state letter of /proc/PID/stat).
fn is_zombie(pid: u32) -> bool {
    i32::try_from(pid)
        .ok()
        .and_then(|p| procfs::process::Process::new(p).ok()?.stat().ok())
        .is_some_and(|s| s.state == 'Z')
}

/// Whether a lock is held through one of `fds` of `pid`: the `lock:` lines of
/// /proc/PID/fdinfo/FD (fs/proc/fd.c `seq_show`, `show_fd_locks`: the flocks and OFD locks of
/// the open file, and the process's own POSIX locks on it). Cheaper than /proc/locks for a
/// few fds; blind to locks a process waits for.
pub fn fds_hold_locks(pid: u32, fds: &[i32]) -> bool {
    let dir = proc_path(pid).join("fdinfo");
    fds.iter().any(|fd| {
        std::fs::read_to_string(dir.join(fd.to_string())).is_ok_and(|t| t.lines().any(|l| l.starts_with("lock:")))
    })
}

/// The path of an fd of `pid` open on the file (kernel dev_t `dev`, inode `ino`), if any.
pub fn path_of_file(pid: u32, dev: u32, ino: u64) -> Option<Vec<u8>> {
    use std::os::unix::fs::MetadataExt;
    let entries = std::fs::read_dir(proc_path(pid).join("fd")).ok()?;
    for e in entries.flatten() {
        let Ok(m) = std::fs::metadata(e.path()) else { continue };
        // The kernel's internal dev_t is MAJOR << 20 | MINOR; stat's is glibc's encoding.
        let kdev = (libc::major(m.dev()) << 20) | libc::minor(m.dev());
        if m.ino() == ino && kdev == dev {
            return std::fs::read_link(e.path())
                .ok()
                .map(|t| t.as_os_str().as_bytes().to_vec());
        }
    }
    None
}

/// Seeding and resyncs read every process's /proc/PID/fd and maps. Those of other users (and
/// of non-dumpable processes) need CAP_SYS_PTRACE (`ptrace_may_access` with
/// PTRACE_MODE_READ_FSCREDS, fs/proc/base.c): without it such processes would look empty, so
/// the agent refuses at start instead. Tested on the capability itself: a readable /proc/1/fd
/// proves nothing where PID 1 runs as the agent's own user.
pub fn check_ptrace_capability() -> Result<(), ProcError> {
    const CAP_SYS_PTRACE: u32 = 19;
    let status = procfs::process::Process::myself()
        .and_then(|p| p.status())
        .map_err(|e| ProcError::OwnStatus(std::io::Error::other(e)))?;
    if status.capeff & (1 << CAP_SYS_PTRACE) == 0 {
        return Err(ProcError::NoPtrace);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::os::fd::AsRawFd;

    use super::*;

    #[test]
    fn a_lock_shows_in_fdinfo_only_while_held() {
        let file = tempfile::tempfile().unwrap_or_else(|e| panic!("{e}"));
        let (pid, fd) = (std::process::id(), file.as_raw_fd());
        assert!(!fds_hold_locks(pid, &[fd]));
        // SAFETY: flock on an fd this test owns.
        assert_eq!(unsafe { libc::flock(fd, libc::LOCK_EX) }, 0);
        assert!(fds_hold_locks(pid, &[fd]));
        // An fd that is not open says nothing.
        assert!(!fds_hold_locks(pid, &[-1]));
        // SAFETY: as above.
        assert_eq!(unsafe { libc::flock(fd, libc::LOCK_UN) }, 0);
        assert!(!fds_hold_locks(pid, &[fd]));
    }
}
