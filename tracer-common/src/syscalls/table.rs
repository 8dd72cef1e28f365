//! The x86_64 syscall table: for each syscall the tracer follows, what the kernel captures and
//! what it means for the traced process's state. Numbers are from
//! `arch/x86/entry/syscalls/syscall_64.tbl`.

use super::{ArgFilter, Capture, DataSource, Effect, FailClass, IpcKind, KindHint};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SyscallSpec {
    pub nr: u32,
    pub name: &'static str,
    pub effect: Effect,
    pub kind: KindHint,
    pub capture: Capture,
}

const PLAIN: Capture = Capture {
    data: DataSource::None,
    stack: true,
    failures: true,
    fcntl_filter: false,
    failures_only: false,
    fail_class: FailClass::FdLimits,
    filter: ArgFilter::None,
    timed: false,
};

const fn alloc(nr: u32, name: &'static str, effect: Effect, kind: KindHint, data: DataSource) -> SyscallSpec {
    SyscallSpec {
        nr,
        name,
        effect,
        kind,
        capture: Capture { data, ..PLAIN },
    }
}

const fn release(nr: u32, name: &'static str, effect: Effect) -> SyscallSpec {
    SyscallSpec {
        nr,
        name,
        effect,
        kind: KindHint::FromSource,
        capture: Capture { stack: false, ..PLAIN },
    }
}

/// A syscall that is not about fds: no kind, its own capture.
const fn other(nr: u32, name: &'static str, effect: Effect, capture: Capture) -> SyscallSpec {
    SyscallSpec {
        nr,
        name,
        effect,
        kind: KindHint::FromSource,
        capture,
    }
}

const IPC_GET: Capture = Capture {
    fail_class: FailClass::NoSpace,
    ..PLAIN
};
const fn ipc_remove(cmd_arg: u8) -> Capture {
    Capture {
        stack: false,
        failures: false,
        filter: ArgFilter::IpcRmid(cmd_arg),
        ..PLAIN
    }
}
const LOCK: Capture = Capture {
    fail_class: FailClass::Any,
    ..PLAIN
};
const SELECT: Capture = Capture {
    fail_class: FailClass::Any,
    filter: ArgFilter::AboveFdSetSize(0),
    ..PLAIN
};
const FORK: Capture = Capture {
    failures_only: true,
    fail_class: FailClass::Again,
    ..PLAIN
};
/// Layout records: successes only, no stack of their own.
const EXEC: Capture = Capture {
    data: DataSource::InitialStack,
    failures: false,
    ..PLAIN
};
const MAP_CODE: Capture = Capture {
    stack: false,
    failures: false,
    filter: ArgFilter::CodeMapping,
    ..PLAIN
};
/// SIGCHLD handlers installed: the handler word, no stack.
const SIGACTION: Capture = Capture {
    stack: false,
    failures: false,
    filter: ArgFilter::SigchldAction,
    data: DataSource::Word(1),
    ..PLAIN
};
/// Successful waits: the reaped pid, no stack.
const WAIT: Capture = Capture {
    stack: false,
    failures: false,
    ..PLAIN
};
/// Writes that blocked or found the buffer full, with the writer's stack.
const WRITE: Capture = Capture {
    fail_class: FailClass::Any,
    timed: true,
    ..PLAIN
};

use DataSource as D;
use Effect as E;
use KindHint as K;

/// Every syscall on x86_64 that creates or closes a descriptor, creates or removes a SysV IPC
/// object, takes a lock, or shows limit pressure.
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
            fcntl_filter: true,
            ..PLAIN
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
    other(64, "semget", E::IpcGet(IpcKind::Sem), IPC_GET),
    other(29, "shmget", E::IpcGet(IpcKind::Shm), IPC_GET),
    other(68, "msgget", E::IpcGet(IpcKind::Msg), IPC_GET),
    other(66, "semctl", E::IpcRemove(IpcKind::Sem), ipc_remove(2)),
    other(31, "shmctl", E::IpcRemove(IpcKind::Shm), ipc_remove(1)),
    other(71, "msgctl", E::IpcRemove(IpcKind::Msg), ipc_remove(1)),
    other(73, "flock", E::Flock, LOCK),
    other(23, "select", E::SelectBeyondFdSetSize, SELECT),
    other(270, "pselect6", E::SelectBeyondFdSetSize, SELECT),
    other(57, "fork", E::Fork, FORK),
    other(58, "vfork", E::Fork, FORK),
    other(56, "clone", E::Fork, FORK),
    other(435, "clone3", E::Fork, FORK),
    other(59, "execve", E::Exec, EXEC),
    other(322, "execveat", E::Exec, EXEC),
    other(9, "mmap", E::MapCode, MAP_CODE),
    other(13, "rt_sigaction", E::SigAction, SIGACTION),
    other(61, "wait4", E::Wait, WAIT),
    other(1, "write", E::Write, WRITE),
    other(20, "writev", E::Write, WRITE),
    other(44, "sendto", E::Write, WRITE),
    other(46, "sendmsg", E::Write, WRITE),
];

/// The timed syscalls' entry tracepoints (`syscalls/sys_enter_NAME`), attached only when
/// `--write-block` is not 0.
pub const TIMED_ENTRY_TRACEPOINTS: [&str; 4] = [
    "sys_enter_write",
    "sys_enter_writev",
    "sys_enter_sendto",
    "sys_enter_sendmsg",
];

/// `X86_64` index + 1 by syscall number (0: not followed), built at compile time: the agent
/// looks a spec up for every record.
const SPEC_INDEX: [u8; crate::config::MAX_SYSCALL_NR as usize] = {
    let mut t = [0u8; crate::config::MAX_SYSCALL_NR as usize];
    let mut i = 0;
    while i < X86_64.len() {
        t[X86_64[i].nr as usize] = (i + 1) as u8;
        i += 1;
    }
    t
};

/// The spec of a syscall number, if the tracer follows it.
pub fn spec(nr: u32) -> Option<&'static SyscallSpec> {
    match SPEC_INDEX.get(nr as usize).copied() {
        None | Some(0) => None,
        Some(i) => X86_64.get(usize::from(i) - 1),
    }
}

/// Other syscalls that take a descriptor, by number: names for "failed with EBADF" reports.
const FD_USERS: &[(u32, &str)] = &[
    (0, "read"),
    (1, "write"),
    (5, "fstat"),
    (8, "lseek"),
    (9, "mmap"),
    (16, "ioctl"),
    (17, "pread64"),
    (18, "pwrite64"),
    (19, "readv"),
    (20, "writev"),
    (40, "sendfile"),
    (42, "connect"),
    (44, "sendto"),
    (45, "recvfrom"),
    (46, "sendmsg"),
    (48, "shutdown"),
    (49, "bind"),
    (50, "listen"),
    (51, "getsockname"),
    (52, "getpeername"),
    (54, "setsockopt"),
    (55, "getsockopt"),
    (74, "fsync"),
    (75, "fdatasync"),
    (77, "ftruncate"),
    (78, "getdents"),
    (81, "fchdir"),
    (91, "fchmod"),
    (93, "fchown"),
    (138, "fstatfs"),
    (217, "getdents64"),
    (221, "fadvise64"),
    (232, "epoll_wait"),
    (233, "epoll_ctl"),
    (262, "newfstatat"),
    (281, "epoll_pwait"),
    (285, "fallocate"),
    (295, "preadv"),
    (296, "pwritev"),
    (306, "syncfs"),
    (307, "sendmmsg"),
    (332, "statx"),
    (441, "epoll_pwait2"),
];

/// The name of a syscall number, for reports (`None` for ones the tracer never names).
pub fn name(nr: u32) -> Option<&'static str> {
    spec(nr)
        .map(|s| s.name)
        .or_else(|| FD_USERS.iter().find(|(n, _)| *n == nr).map(|(_, name)| *name))
}
