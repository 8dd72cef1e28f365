//! The x86_64 syscall table: what the kernel captures for each syscall and what it means for an fd
//! table. Numbers are from `arch/x86/entry/syscalls/syscall_64.tbl`.
//!
//! The agent writes [`Capture::bits`] for every entry into the `CAPTURE` array; a zero entry means
//! "not interesting" and costs the kernel one array lookup.

/// What the kernel copies for a syscall, packed into a `u32` for the `CAPTURE` map.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Capture {
    pub data: DataSource,
    /// Capture the user stack (an allocation site).
    pub stack: bool,
    /// Emit failed calls too (closes: EBADF shows misuse; allocations: EMFILE/ENFILE only).
    pub failures: bool,
    /// Only `fcntl(fd, F_DUPFD|F_DUPFD_CLOEXEC, ..)`: other fcntl commands are frequent noise.
    pub fcntl_dup_only: bool,
}

/// Where the kernel finds the extra bytes of a record.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DataSource {
    None,
    /// NUL-terminated string at the pointer in argument N.
    Path(u8),
    /// `int[2]` at the pointer in argument N (written by the syscall).
    FdPair(u8),
    /// `struct msghdr *` in argument N: its control buffer after the call.
    MsgHdr(u8),
    /// `struct mmsghdr *` in argument N: control buffers of the first messages received.
    MmsgHdr(u8),
}

pub mod bits {
    pub const ENABLED: u32 = 1 << 0;
    pub const STACK: u32 = 1 << 1;
    pub const FAILURES: u32 = 1 << 2;
    pub const FCNTL_DUP_ONLY: u32 = 1 << 3;
    pub const DATA_SHIFT: u32 = 8;
    pub const DATA_MASK: u32 = 0xf;
    pub const ARG_SHIFT: u32 = 12;
    pub const ARG_MASK: u32 = 0x7;
    pub const DATA_PATH: u32 = 1;
    pub const DATA_FD_PAIR: u32 = 2;
    pub const DATA_MSGHDR: u32 = 3;
    pub const DATA_MMSGHDR: u32 = 4;
}

impl Capture {
    pub const fn bits(&self) -> u32 {
        let mut b = bits::ENABLED;
        if self.stack {
            b |= bits::STACK;
        }
        if self.failures {
            b |= bits::FAILURES;
        }
        if self.fcntl_dup_only {
            b |= bits::FCNTL_DUP_ONLY;
        }
        let (d, a) = match self.data {
            DataSource::None => (0, 0),
            DataSource::Path(a) => (bits::DATA_PATH, a),
            DataSource::FdPair(a) => (bits::DATA_FD_PAIR, a),
            DataSource::MsgHdr(a) => (bits::DATA_MSGHDR, a),
            DataSource::MmsgHdr(a) => (bits::DATA_MMSGHDR, a),
        };
        b | (d << bits::DATA_SHIFT) | (((a as u32) & bits::ARG_MASK) << bits::ARG_SHIFT)
    }
}

/// What a successful syscall does to the caller's fd table.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FdEffect {
    /// The return value is a new fd.
    NewFd,
    /// Two new fds in the captured `int[2]`.
    NewPair,
    /// `dup`, `fcntl(F_DUPFD*)`: the return value is a copy of argument 0.
    Dup,
    /// `dup2`/`dup3`: argument 1 (closed first if open) becomes a copy of argument 0.
    DupOnto,
    /// `signalfd(fd, ..)`: a new fd only when argument 0 is -1, otherwise it updates that fd.
    SignalFd,
    /// `close(fd)`.
    Close,
    /// `close_range(first, last, flags)`.
    CloseRange,
    /// Fds arrive in SCM_RIGHTS control messages.
    ReceiveFds,
}

/// How the agent should describe a new fd before it can look at `/proc` (the syscall tells a lot).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KindHint {
    /// A path was opened: regular file, directory or device (refined later from /proc).
    Path,
    /// `socket(domain, ..)`: family in argument 0.
    Socket,
    /// `socketpair(domain, ..)`.
    SocketPair,
    /// `accept`: a socket of the listening socket's family.
    Accepted,
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
    UserFault,
    IoUring,
    MessageQueue,
    /// Mount API and other anonymous inodes.
    OtherAnon,
    /// Same kind as the source fd (dup family) or unknown until described (received fds).
    FromSource,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SyscallSpec {
    pub nr: u32,
    pub name: &'static str,
    pub effect: FdEffect,
    pub kind: KindHint,
    pub capture: Capture,
}

const fn alloc(nr: u32, name: &'static str, effect: FdEffect, kind: KindHint, data: DataSource) -> SyscallSpec {
    SyscallSpec {
        nr,
        name,
        effect,
        kind,
        capture: Capture {
            data,
            stack: true,
            failures: true,
            fcntl_dup_only: false,
        },
    }
}

const fn release(nr: u32, name: &'static str, effect: FdEffect) -> SyscallSpec {
    SyscallSpec {
        nr,
        name,
        effect,
        kind: KindHint::FromSource,
        capture: Capture {
            data: DataSource::None,
            stack: false,
            failures: true,
            fcntl_dup_only: false,
        },
    }
}

use DataSource as D;
use FdEffect as E;
use KindHint as K;

/// Every syscall that creates or closes a descriptor on x86_64.
pub const X86_64: &[SyscallSpec] = &[
    alloc(2, "open", E::NewFd, K::Path, D::Path(0)),
    alloc(257, "openat", E::NewFd, K::Path, D::Path(1)),
    alloc(437, "openat2", E::NewFd, K::Path, D::Path(1)),
    alloc(85, "creat", E::NewFd, K::Path, D::Path(0)),
    alloc(304, "open_by_handle_at", E::NewFd, K::Path, D::None),
    alloc(41, "socket", E::NewFd, K::Socket, D::None),
    alloc(53, "socketpair", E::NewPair, K::SocketPair, D::FdPair(3)),
    alloc(43, "accept", E::NewFd, K::Accepted, D::None),
    alloc(288, "accept4", E::NewFd, K::Accepted, D::None),
    alloc(22, "pipe", E::NewPair, K::Pipe, D::FdPair(0)),
    alloc(293, "pipe2", E::NewPair, K::Pipe, D::FdPair(0)),
    alloc(32, "dup", E::Dup, K::FromSource, D::None),
    alloc(33, "dup2", E::DupOnto, K::FromSource, D::None),
    alloc(292, "dup3", E::DupOnto, K::FromSource, D::None),
    SyscallSpec {
        nr: 72,
        name: "fcntl",
        effect: E::Dup,
        kind: K::FromSource,
        capture: Capture {
            data: D::None,
            stack: true,
            failures: true,
            fcntl_dup_only: true,
        },
    },
    alloc(284, "eventfd", E::NewFd, K::EventFd, D::None),
    alloc(290, "eventfd2", E::NewFd, K::EventFd, D::None),
    alloc(213, "epoll_create", E::NewFd, K::Epoll, D::None),
    alloc(291, "epoll_create1", E::NewFd, K::Epoll, D::None),
    alloc(283, "timerfd_create", E::NewFd, K::TimerFd, D::None),
    alloc(282, "signalfd", E::SignalFd, K::SignalFd, D::None),
    alloc(289, "signalfd4", E::SignalFd, K::SignalFd, D::None),
    alloc(319, "memfd_create", E::NewFd, K::MemFd, D::Path(0)),
    alloc(447, "memfd_secret", E::NewFd, K::MemFd, D::None),
    alloc(434, "pidfd_open", E::NewFd, K::PidFd, D::None),
    alloc(438, "pidfd_getfd", E::NewFd, K::FromSource, D::None),
    alloc(253, "inotify_init", E::NewFd, K::Inotify, D::None),
    alloc(294, "inotify_init1", E::NewFd, K::Inotify, D::None),
    alloc(300, "fanotify_init", E::NewFd, K::Fanotify, D::None),
    alloc(298, "perf_event_open", E::NewFd, K::PerfEvent, D::None),
    alloc(323, "userfaultfd", E::NewFd, K::UserFault, D::None),
    alloc(425, "io_uring_setup", E::NewFd, K::IoUring, D::None),
    alloc(240, "mq_open", E::NewFd, K::MessageQueue, D::Path(0)),
    alloc(428, "open_tree", E::NewFd, K::OtherAnon, D::Path(1)),
    alloc(430, "fsopen", E::NewFd, K::OtherAnon, D::Path(0)),
    alloc(432, "fsmount", E::NewFd, K::OtherAnon, D::None),
    alloc(433, "fspick", E::NewFd, K::OtherAnon, D::Path(1)),
    alloc(444, "landlock_create_ruleset", E::NewFd, K::OtherAnon, D::None),
    alloc(47, "recvmsg", E::ReceiveFds, K::FromSource, D::MsgHdr(1)),
    alloc(299, "recvmmsg", E::ReceiveFds, K::FromSource, D::MmsgHdr(1)),
    release(3, "close", E::Close),
    release(436, "close_range", E::CloseRange),
];

/// The spec of a syscall number, if it touches fds.
pub fn spec(nr: u32) -> Option<&'static SyscallSpec> {
    X86_64.iter().find(|s| s.nr == nr)
}

/// `fcntl` commands that duplicate (`include/uapi/linux/fcntl.h`).
pub const F_DUPFD: u64 = 0;
pub const F_DUPFD_CLOEXEC: u64 = 1030;
/// Errors for which a failed allocation is still reported (limit pressure).
pub const EMFILE: i64 = 24;
pub const ENFILE: i64 = 23;

/// Clone flags the kernel side inspects (`include/uapi/linux/sched.h`).
pub const CLONE_FILES: u64 = 0x0000_0400;
pub const CLONE_THREAD: u64 = 0x0001_0000;
/// Syscall numbers of the process-creating calls (for the clone scratch map).
pub const NR_CLONE: u32 = 56;
pub const NR_CLONE3: u32 = 435;

#[cfg(all(test, feature = "user"))]
mod tests {
    use super::*;

    #[test]
    fn numbers_are_unique_and_in_range() {
        for (i, a) in X86_64.iter().enumerate() {
            assert!(a.nr < crate::config::MAX_SYSCALL_NR, "{} out of range", a.name);
            for b in &X86_64[i + 1..] {
                assert_ne!(a.nr, b.nr, "{} and {} share a number", a.name, b.name);
            }
        }
    }

    #[test]
    fn capture_bits_round_trip_fields() {
        let c = spec(53).map(|s| s.capture.bits()).unwrap_or(0);
        assert_eq!(c & bits::ENABLED, bits::ENABLED);
        assert_eq!((c >> bits::DATA_SHIFT) & bits::DATA_MASK, bits::DATA_FD_PAIR);
        assert_eq!((c >> bits::ARG_SHIFT) & bits::ARG_MASK, 3);
        assert_ne!(c & bits::STACK, 0);
        let close = spec(3).map(|s| s.capture.bits()).unwrap_or(0);
        assert_eq!(close & bits::STACK, 0);
        let fcntl = spec(72).map(|s| s.capture.bits()).unwrap_or(0);
        assert_ne!(fcntl & bits::FCNTL_DUP_ONLY, 0);
    }
}
