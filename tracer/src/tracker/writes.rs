//! What a stalled write wrote to, read from `/proc` and from the fd itself when the record
//! arrives (rare: only writes that blocked `--write-block` or found the buffer full get here):
//! the object's inode, the processes at its ends, its capacity, an eventfd's counter. Plus the
//! SIGCHLD handler a process installs, interned as a one-frame stack so it is symbolized like
//! any stack.
//!
//! The capacity, without disturbing the process: `/proc/PID/fdinfo` does not show a pipe's size
//! and F_SETPIPE_SZ calls made before tracing are not seen, so the agent asks the pipe itself
//! (`fcntl(F_GETPIPE_SZ)`, `getsockopt(SO_SNDBUF)` for a socket) through `pidfd_getfd`, which
//! gives it a reference to the writer's own open file: no new open, so no reader or writer is
//! added to the pipe (opening `/proc/PID/fd/N` would add one, and could hide an EPIPE), and the
//! file position and flags are shared, not changed. The reference is dropped at once; if the
//! writer closed its fd meanwhile, that drop is the last close the writer's would have been,
//! microseconds later. It needs the right to ptrace the writer (root, or CAP_SYS_PTRACE, which
//! the agent requires anyway). Where that fails, the capacity is unknown and the report says
//! the default (16 pages, 64 KiB) is assumed.

use std::{
    collections::HashMap,
    os::fd::{FromRawFd, OwnedFd, RawFd},
    os::unix::fs::MetadataExt,
};

use tracer_common::{decode::SyscallView, syscalls::DERIVED_ARG};

use super::Tracker;
use crate::state::{
    FdKind, StackId,
    stalls::{ChannelKind, WriteTarget},
    syscall::Syscall,
};

/// `F_GETPIPE_SZ` (include/uapi/linux/fcntl.h).
const F_GETPIPE_SZ: libc::c_int = 1032;
/// Ends looked up again at most this often per object.
const ENDS_REFRESH_NS: u64 = 5_000_000_000;

/// `pidfd_getfd(pidfd_open(pid), fd)`: the process's open file, shared.
fn borrow_fd(pid: u32, fd: i32) -> Option<OwnedFd> {
    // SAFETY: pidfd_open takes a pid and flags and returns a new fd or -1.
    let pidfd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid as libc::pid_t, 0) };
    if pidfd < 0 {
        return None;
    }
    // SAFETY: a fresh fd this function owns.
    let pidfd = unsafe { OwnedFd::from_raw_fd(pidfd as RawFd) };
    use std::os::fd::AsRawFd;
    // SAFETY: pidfd_getfd takes a pidfd, a target fd number and flags; returns a new fd or -1.
    let got = unsafe { libc::syscall(libc::SYS_pidfd_getfd, pidfd.as_raw_fd(), fd, 0) };
    if got < 0 {
        return None;
    }
    // SAFETY: a fresh fd this function owns.
    Some(unsafe { OwnedFd::from_raw_fd(got as RawFd) })
}

/// A pipe's capacity, or a socket's send buffer, in bytes.
fn capacity(pid: u32, fd: i32, kind: ChannelKind) -> Option<u64> {
    use std::os::fd::AsRawFd;
    let file = borrow_fd(pid, fd)?;
    match kind {
        ChannelKind::Pipe | ChannelKind::Fifo => {
            // SAFETY: fcntl on an fd this function owns; F_GETPIPE_SZ takes no argument.
            let n = unsafe { libc::fcntl(file.as_raw_fd(), F_GETPIPE_SZ) };
            (n > 0).then_some(n as u64)
        }
        ChannelKind::Unix => {
            let mut v: libc::c_int = 0;
            let mut len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
            // SAFETY: getsockopt writes at most `len` bytes into `v`.
            let r = unsafe {
                libc::getsockopt(
                    file.as_raw_fd(),
                    libc::SOL_SOCKET,
                    libc::SO_SNDBUF,
                    (&raw mut v).cast(),
                    &raw mut len,
                )
            };
            (r == 0 && v > 0).then_some(v as u64)
        }
        ChannelKind::EventFd => None,
    }
}

/// The inode behind `/proc/PID/fd/N`.
fn inode(pid: u32, fd: i32) -> Option<u64> {
    std::fs::metadata(format!("/proc/{pid}/fd/{fd}")).ok().map(|m| m.ino())
}

/// `flags:` (octal) and `eventfd-count:` (hex, fs/eventfd.c `eventfd_show_fdinfo`) of an fd.
fn fdinfo(pid: u32, fd: i32) -> (Option<u32>, Option<u64>) {
    let Ok(text) = std::fs::read_to_string(format!("/proc/{pid}/fdinfo/{fd}")) else {
        return (None, None);
    };
    let mut flags = None;
    let mut count = None;
    for line in text.lines() {
        if let Some(v) = line.strip_prefix("flags:") {
            flags = u32::from_str_radix(v.trim(), 8).ok();
        } else if let Some(v) = line.strip_prefix("eventfd-count:") {
            count = u64::from_str_radix(v.trim(), 16).ok();
        }
    }
    (flags, count)
}

/// Last time each object's ends were looked up.
#[derive(Default)]
pub(super) struct EndsSeen(HashMap<(ChannelKind, u64), u64>);

impl Tracker {
    /// `rt_sigaction(SIGCHLD, act, ..)`: the handler address, interned as a one-frame stack.
    pub(super) fn on_sigchld_action(&mut self, tgid: u32, v: &SyscallView<'_>) {
        let address = v.core.args[DERIVED_ARG];
        // SIG_DFL, SIG_IGN: nothing to symbolize.
        let stack = if address > 1 {
            self.intern(tgid, &[], &[address])
        } else {
            StackId::NONE
        };
        self.state.on_sigchld_action(tgid, address, stack);
    }

    /// A write the kernel reported: kept only for objects whose writers block when full.
    pub(super) fn on_write(&mut self, sc: &Syscall<'_>, stack: StackId) {
        let fd = sc.args[0] as i32;
        let Some(kind) = self.state.write_channel(sc.tgid, fd) else {
            return;
        };
        let mut target = WriteTarget {
            ino: inode(sc.tgid, fd).unwrap_or(0),
            ..Default::default()
        };
        let known = self.state.stalls.channels.get(&(kind, target.ino));
        if kind == ChannelKind::EventFd {
            target.eventfd_count = fdinfo(sc.tgid, fd).1;
        } else if known.is_none_or(|c| c.capacity.is_none()) {
            target.capacity = capacity(sc.tgid, fd, kind);
        }
        if matches!(kind, ChannelKind::Pipe | ChannelKind::Fifo) && target.ino != 0 {
            let due = self
                .ends_seen
                .0
                .get(&(kind, target.ino))
                .is_none_or(|t| sc.ts_ns.saturating_sub(*t) >= ENDS_REFRESH_NS);
            if due {
                self.ends_seen.0.insert((kind, target.ino), sc.ts_ns);
                if self.ends_seen.0.len() > 4096 {
                    self.ends_seen.0.clear();
                }
                self.pipe_ends(sc.tgid, target.ino, &mut target);
            }
        }
        self.state.on_write(sc, stack, kind, &target);
    }

    /// Traced processes holding pipe `ino`, by direction. Looked for among the writer's family
    /// (itself, its parent, their children): who shares a pipe got it by fork, or by a FIFO
    /// path, which the same scan finds when the processes are related; unrelated FIFO users
    /// are not searched for (a host-wide scan per stall would cost every process's fd table).
    fn pipe_ends(&self, writer: u32, ino: u64, target: &mut WriteTarget) {
        let parent = self.state.process(writer).and_then(|p| p.parent);
        let family: Vec<u32> = self
            .state
            .processes
            .values()
            .filter(|p| p.is_alive())
            .filter(|p| {
                p.tgid == writer
                    || Some(p.tgid) == parent
                    || p.parent == Some(writer)
                    || (parent.is_some() && p.parent == parent)
            })
            .map(|p| p.tgid)
            .collect();
        for pid in family {
            let Some(p) = self.state.process(pid) else { continue };
            let pipes: Vec<i32> = p
                .fds
                .iter()
                .filter(|(_, o)| matches!(o.kind, FdKind::Pipe | FdKind::Fifo))
                .map(|(fd, _)| fd)
                .collect();
            for fd in pipes {
                if inode(pid, fd) != Some(ino) {
                    continue;
                }
                match fdinfo(pid, fd).0.map(|f| f & libc::O_ACCMODE as u32) {
                    Some(0) => target.readers.push(pid),
                    Some(1) => target.writers.push(pid),
                    Some(_) => {
                        target.readers.push(pid);
                        target.writers.push(pid);
                    }
                    None => {}
                }
            }
        }
        target.readers.sort_unstable();
        target.readers.dedup();
        target.writers.sort_unstable();
        target.writers.dedup();
    }
}
