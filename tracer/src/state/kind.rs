//! What an fd refers to, from the syscall that made it or from `/proc/PID/fd`.

use serde::Serialize;

/// The kind of object behind a descriptor.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, PartialOrd, Ord)]
#[serde(rename_all = "snake_case")]
pub enum FdKind {
    File,
    Directory,
    CharDevice,
    BlockDevice,
    Fifo,
    Socket,
    Pipe,
    EventFd,
    Epoll,
    TimerFd,
    SignalFd,
    MemFd,
    PidFd,
    Inotify,
    Fanotify,
    PerfEvent,
    UserFaultFd,
    IoUring,
    MessageQueue,
    OtherAnon,
    /// Not known yet (received over a socket, or opened by handle) until `/proc` is read.
    Unknown,
}

impl FdKind {
    pub fn as_str(self) -> &'static str {
        match self {
            FdKind::File => "file",
            FdKind::Directory => "directory",
            FdKind::CharDevice => "char_device",
            FdKind::BlockDevice => "block_device",
            FdKind::Fifo => "fifo",
            FdKind::Socket => "socket",
            FdKind::Pipe => "pipe",
            FdKind::EventFd => "eventfd",
            FdKind::Epoll => "epoll",
            FdKind::TimerFd => "timerfd",
            FdKind::SignalFd => "signalfd",
            FdKind::MemFd => "memfd",
            FdKind::PidFd => "pidfd",
            FdKind::Inotify => "inotify",
            FdKind::Fanotify => "fanotify",
            FdKind::PerfEvent => "perf_event",
            FdKind::UserFaultFd => "userfaultfd",
            FdKind::IoUring => "io_uring",
            FdKind::MessageQueue => "mqueue",
            FdKind::OtherAnon => "anon",
            FdKind::Unknown => "unknown",
        }
    }

    /// Kinds a path open can produce; `/proc` tells which one it is.
    pub fn is_path_kind(self) -> bool {
        matches!(
            self,
            FdKind::File | FdKind::Directory | FdKind::CharDevice | FdKind::BlockDevice | FdKind::Fifo
        )
    }

    /// Parses the target of a `/proc/PID/fd/N` link (fs/anon_inodes.c names, `socket:[ino]`,
    /// `pipe:[ino]`); `file_type` answers for real paths (a stat of the link).
    pub fn from_link(target: &[u8], file_type: impl FnOnce() -> Option<FdKind>) -> FdKind {
        let anon = |name: &[u8]| -> FdKind {
            let name = name.strip_prefix(b"[").unwrap_or(name);
            let name = name.strip_suffix(b"]").unwrap_or(name);
            match name {
                b"eventfd" => FdKind::EventFd,
                b"eventpoll" => FdKind::Epoll,
                b"timerfd" => FdKind::TimerFd,
                b"signalfd" => FdKind::SignalFd,
                b"pidfd" => FdKind::PidFd,
                b"inotify" => FdKind::Inotify,
                b"fanotify" => FdKind::Fanotify,
                b"perf_event" => FdKind::PerfEvent,
                b"userfaultfd" => FdKind::UserFaultFd,
                b"io_uring" => FdKind::IoUring,
                b"secretmem" => FdKind::MemFd,
                _ => FdKind::OtherAnon,
            }
        };
        if target.starts_with(b"socket:") {
            FdKind::Socket
        } else if target.starts_with(b"pipe:") {
            FdKind::Pipe
        } else if let Some(rest) = target.strip_prefix(b"anon_inode:") {
            anon(rest)
        } else if target.starts_with(b"pidfd:") {
            FdKind::PidFd
        } else if target.starts_with(b"/memfd:") {
            FdKind::MemFd
        } else if target.starts_with(b"/") {
            file_type().unwrap_or(FdKind::File)
        } else {
            FdKind::OtherAnon
        }
    }
}

/// Socket address family names (include/linux/socket.h), for the report.
pub fn family_name(family: u16) -> &'static str {
    match family {
        1 => "unix",
        2 => "inet",
        10 => "inet6",
        16 => "netlink",
        17 => "packet",
        38 => "alg",
        40 => "vsock",
        44 => "xdp",
        _ => "other",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_proc_link_targets() {
        let cases: &[(&[u8], FdKind)] = &[
            (b"socket:[123]", FdKind::Socket),
            (b"pipe:[9]", FdKind::Pipe),
            (b"anon_inode:[eventfd]", FdKind::EventFd),
            (b"anon_inode:[eventpoll]", FdKind::Epoll),
            (b"anon_inode:inotify", FdKind::Inotify),
            (b"anon_inode:[pidfd]", FdKind::PidFd),
            (b"pidfd:[4]", FdKind::PidFd),
            (b"anon_inode:[io_uring]", FdKind::IoUring),
            (b"anon_inode:bpf-map", FdKind::OtherAnon),
            (b"/memfd:cache (deleted)", FdKind::MemFd),
            (b"/etc/passwd", FdKind::File),
            (b"/tmp/odd\nname\xff", FdKind::File),
        ];
        for (link, kind) in cases {
            assert_eq!(
                FdKind::from_link(link, || None),
                *kind,
                "{}",
                String::from_utf8_lossy(link)
            );
        }
        assert_eq!(
            FdKind::from_link(b"/dev/null", || Some(FdKind::CharDevice)),
            FdKind::CharDevice
        );
    }
}
