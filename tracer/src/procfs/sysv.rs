//! The system-wide `/proc` edge: SysV IPC objects and limits, file handles against
//! `fs.file-max`. Parsers are pure functions of the file text, tested below.

use std::os::unix::fs::MetadataExt;

use tracer_common::syscalls::IpcKind;

use crate::{
    model::system::{SystemLimits, Usage},
    state::ipc::ListedIpc,
};

fn path_of(kind: IpcKind) -> &'static str {
    match kind {
        IpcKind::Sem => "/proc/sysvipc/sem",
        IpcKind::Shm => "/proc/sysvipc/shm",
        IpcKind::Msg => "/proc/sysvipc/msg",
    }
}

/// Rows of a `/proc/sysvipc/*` file: key, id and the 4th column (nsems, size, cbytes).
pub fn parse_listing(kind: IpcKind, text: &str) -> Vec<ListedIpc> {
    text.lines()
        .skip(1)
        .filter_map(|line| {
            let mut cols = line.split_whitespace();
            let key = cols.next()?.parse::<i64>().ok()?;
            let id = cols.next()?.parse::<i32>().ok()?;
            let size = cols.nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
            Some(ListedIpc {
                kind,
                id,
                key: key as i32,
                size,
            })
        })
        .collect()
}

/// The objects of one kind in the agent's IPC namespace (empty if unreadable).
pub fn listing(kind: IpcKind) -> Vec<ListedIpc> {
    std::fs::read_to_string(path_of(kind))
        .map(|t| parse_listing(kind, &t))
        .unwrap_or_default()
}

fn read_u64(path: &str) -> Option<u64> {
    std::fs::read_to_string(path).ok()?.trim().parse().ok()
}

pub fn system_limits() -> SystemLimits {
    let count = |k| listing(k).len() as u64;
    SystemLimits {
        sem_sets: Usage {
            used: count(IpcKind::Sem),
            max: procfs::sys::kernel::SemaphoreLimits::new().ok().map(|s| s.semmni),
        },
        shm_segments: Usage {
            used: count(IpcKind::Shm),
            max: procfs::sys::kernel::shmmni().ok(),
        },
        msg_queues: Usage {
            used: count(IpcKind::Msg),
            max: read_u64("/proc/sys/kernel/msgmni"),
        },
        file_handles: procfs::sys::fs::file_nr()
            .map(|f| Usage {
                used: f.allocated,
                max: Some(f.max),
            })
            .unwrap_or_default(),
        nr_open: read_u64("/proc/sys/fs/nr_open"),
        pipe_max_size: read_u64("/proc/sys/fs/pipe-max-size"),
        wmem_max: read_u64("/proc/sys/net/core/wmem_max"),
    }
}

/// The IPC namespace of a process (inode of /proc/PID/ns/ipc); `/proc/sysvipc` shows only the
/// agent's own.
pub fn ipc_namespace(pid: &str) -> Option<u64> {
    std::fs::metadata(format!("/proc/{pid}/ns/ipc")).ok().map(|m| m.ino())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listings() {
        let sem = "       key      semid perms      nsems   uid   gid  cuid  cgid      otime      ctime\n\
                            0      32769   600          2     0     0     0     0          0 1764000000\n\
                   1234567890         12   666          1     0     0     0     0          0 1764000001\n";
        let l = parse_listing(IpcKind::Sem, sem);
        assert_eq!(l.len(), 2);
        assert_eq!((l[0].id, l[0].key, l[0].size), (32769, 0, 2));
        assert_eq!((l[1].id, l[1].key), (12, 1_234_567_890));
        let shm = "       key      shmid perms                  size  cpid  lpid nattch   uid   gid  cuid  cgid      atime      dtime      ctime                   rss                  swap\n\
                           -1          5  1600                  4096  4242     0      0     0     0     0     0          0          0 1764000000                     0                     0\n";
        let l = parse_listing(IpcKind::Shm, shm);
        assert_eq!((l[0].id, l[0].key, l[0].size), (5, -1, 4096));
        assert!(parse_listing(IpcKind::Msg, "header only\n").is_empty());
    }

    #[test]
    fn limits_are_what_proc_sys_says() {
        let l = system_limits();
        let field = |path: &str, n: usize| -> Option<u64> {
            std::fs::read_to_string(path)
                .ok()?
                .split_whitespace()
                .nth(n)?
                .parse()
                .ok()
        };
        assert_eq!(l.sem_sets.max, field("/proc/sys/kernel/sem", 3), "SEMMNI");
        assert_eq!(l.shm_segments.max, field("/proc/sys/kernel/shmmni", 0));
        assert_eq!(l.msg_queues.max, field("/proc/sys/kernel/msgmni", 0));
        assert_eq!(l.file_handles.max, field("/proc/sys/fs/file-nr", 2), "fs.file-max");
        assert!(l.file_handles.used > 0, "this process has files open");
    }
}
