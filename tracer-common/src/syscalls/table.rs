//! The x86_64 syscall table: for each syscall the tracer follows, what the kernel captures and
//! what it means for the traced process's state. Numbers are libc's `SYS_*` for the build target
//! (`arch/x86/entry/syscalls/syscall_64.tbl`): the agent runs on the kernel it traces.

use libc::c_long;

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

const fn alloc(nr: c_long, name: &'static str, effect: Effect, kind: KindHint, data: DataSource) -> SyscallSpec {
    SyscallSpec {
        nr: nr as u32,
        name,
        effect,
        kind,
        capture: Capture { data, ..PLAIN },
    }
}

const fn release(nr: c_long, name: &'static str, effect: Effect) -> SyscallSpec {
    SyscallSpec {
        nr: nr as u32,
        name,
        effect,
        kind: KindHint::FromSource,
        capture: Capture { stack: false, ..PLAIN },
    }
}

/// A syscall that is not about fds: no kind, its own capture.
const fn other(nr: c_long, name: &'static str, effect: Effect, capture: Capture) -> SyscallSpec {
    SyscallSpec {
        nr: nr as u32,
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
    alloc(libc::SYS_open, "open", E::NewFd, K::Path, D::Path(0)),
    alloc(libc::SYS_openat, "openat", E::NewFd, K::Path, D::Path(1)),
    alloc(libc::SYS_openat2, "openat2", E::NewFd, K::Path, D::Path(1)),
    alloc(libc::SYS_creat, "creat", E::NewFd, K::Path, D::Path(0)),
    alloc(
        libc::SYS_open_by_handle_at,
        "open_by_handle_at",
        E::NewFd,
        K::Path,
        D::None,
    ),
    alloc(libc::SYS_socket, "socket", E::NewFd, K::Socket, D::None),
    alloc(
        libc::SYS_socketpair,
        "socketpair",
        E::NewPair,
        K::SocketPair,
        D::FdPair(3),
    ),
    alloc(libc::SYS_accept, "accept", E::NewFd, K::Accepted, D::None),
    alloc(libc::SYS_accept4, "accept4", E::NewFd, K::Accepted, D::None),
    alloc(libc::SYS_pipe, "pipe", E::NewPair, K::Pipe, D::FdPair(0)),
    alloc(libc::SYS_pipe2, "pipe2", E::NewPair, K::Pipe, D::FdPair(0)),
    alloc(libc::SYS_dup, "dup", E::Dup, K::FromSource, D::None),
    alloc(libc::SYS_dup2, "dup2", E::DupOnto, K::FromSource, D::None),
    alloc(libc::SYS_dup3, "dup3", E::DupOnto, K::FromSource, D::None),
    SyscallSpec {
        nr: libc::SYS_fcntl as u32,
        name: "fcntl",
        effect: E::Dup,
        kind: K::FromSource,
        capture: Capture {
            fcntl_filter: true,
            ..PLAIN
        },
    },
    alloc(libc::SYS_eventfd, "eventfd", E::NewFd, K::EventFd, D::None),
    alloc(libc::SYS_eventfd2, "eventfd2", E::NewFd, K::EventFd, D::None),
    alloc(libc::SYS_epoll_create, "epoll_create", E::NewFd, K::Epoll, D::None),
    alloc(libc::SYS_epoll_create1, "epoll_create1", E::NewFd, K::Epoll, D::None),
    alloc(
        libc::SYS_timerfd_create,
        "timerfd_create",
        E::NewFd,
        K::TimerFd,
        D::None,
    ),
    alloc(libc::SYS_signalfd, "signalfd", E::SignalFd, K::SignalFd, D::None),
    alloc(libc::SYS_signalfd4, "signalfd4", E::SignalFd, K::SignalFd, D::None),
    alloc(libc::SYS_memfd_create, "memfd_create", E::NewFd, K::MemFd, D::Path(0)),
    alloc(libc::SYS_memfd_secret, "memfd_secret", E::NewFd, K::MemFd, D::None),
    alloc(libc::SYS_pidfd_open, "pidfd_open", E::NewFd, K::PidFd, D::None),
    alloc(libc::SYS_pidfd_getfd, "pidfd_getfd", E::NewFd, K::FromSource, D::None),
    alloc(libc::SYS_inotify_init, "inotify_init", E::NewFd, K::Inotify, D::None),
    alloc(libc::SYS_inotify_init1, "inotify_init1", E::NewFd, K::Inotify, D::None),
    alloc(libc::SYS_fanotify_init, "fanotify_init", E::NewFd, K::Fanotify, D::None),
    alloc(
        libc::SYS_perf_event_open,
        "perf_event_open",
        E::NewFd,
        K::PerfEvent,
        D::None,
    ),
    alloc(libc::SYS_userfaultfd, "userfaultfd", E::NewFd, K::UserFault, D::None),
    alloc(
        libc::SYS_io_uring_setup,
        "io_uring_setup",
        E::NewFd,
        K::IoUring,
        D::None,
    ),
    alloc(libc::SYS_mq_open, "mq_open", E::NewFd, K::MessageQueue, D::Path(0)),
    alloc(libc::SYS_open_tree, "open_tree", E::NewFd, K::OtherAnon, D::Path(1)),
    alloc(libc::SYS_fsopen, "fsopen", E::NewFd, K::OtherAnon, D::Path(0)),
    alloc(libc::SYS_fsmount, "fsmount", E::NewFd, K::OtherAnon, D::None),
    alloc(libc::SYS_fspick, "fspick", E::NewFd, K::OtherAnon, D::Path(1)),
    alloc(
        libc::SYS_landlock_create_ruleset,
        "landlock_create_ruleset",
        E::NewFd,
        K::OtherAnon,
        D::None,
    ),
    alloc(libc::SYS_recvmsg, "recvmsg", E::ReceiveFds, K::FromSource, D::MsgHdr(1)),
    alloc(
        libc::SYS_recvmmsg,
        "recvmmsg",
        E::ReceiveFds,
        K::FromSource,
        D::MmsgHdr(1),
    ),
    release(libc::SYS_close, "close", E::Close),
    release(libc::SYS_close_range, "close_range", E::CloseRange),
    other(libc::SYS_semget, "semget", E::IpcGet(IpcKind::Sem), IPC_GET),
    other(libc::SYS_shmget, "shmget", E::IpcGet(IpcKind::Shm), IPC_GET),
    other(libc::SYS_msgget, "msgget", E::IpcGet(IpcKind::Msg), IPC_GET),
    other(libc::SYS_semctl, "semctl", E::IpcRemove(IpcKind::Sem), ipc_remove(2)),
    other(libc::SYS_shmctl, "shmctl", E::IpcRemove(IpcKind::Shm), ipc_remove(1)),
    other(libc::SYS_msgctl, "msgctl", E::IpcRemove(IpcKind::Msg), ipc_remove(1)),
    other(libc::SYS_flock, "flock", E::Flock, LOCK),
    other(libc::SYS_select, "select", E::SelectBeyondFdSetSize, SELECT),
    other(libc::SYS_pselect6, "pselect6", E::SelectBeyondFdSetSize, SELECT),
    other(libc::SYS_fork, "fork", E::Fork, FORK),
    other(libc::SYS_vfork, "vfork", E::Fork, FORK),
    other(libc::SYS_clone, "clone", E::Fork, FORK),
    other(libc::SYS_clone3, "clone3", E::Fork, FORK),
    other(libc::SYS_execve, "execve", E::Exec, EXEC),
    other(libc::SYS_execveat, "execveat", E::Exec, EXEC),
    other(libc::SYS_mmap, "mmap", E::MapCode, MAP_CODE),
    other(libc::SYS_rt_sigaction, "rt_sigaction", E::SigAction, SIGACTION),
    other(libc::SYS_wait4, "wait4", E::Wait, WAIT),
    other(libc::SYS_write, "write", E::Write, WRITE),
    other(libc::SYS_writev, "writev", E::Write, WRITE),
    other(libc::SYS_sendto, "sendto", E::Write, WRITE),
    other(libc::SYS_sendmsg, "sendmsg", E::Write, WRITE),
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
const FD_USERS: &[(c_long, &str)] = &[
    (libc::SYS_read, "read"),
    (libc::SYS_write, "write"),
    (libc::SYS_fstat, "fstat"),
    (libc::SYS_lseek, "lseek"),
    (libc::SYS_mmap, "mmap"),
    (libc::SYS_ioctl, "ioctl"),
    (libc::SYS_pread64, "pread64"),
    (libc::SYS_pwrite64, "pwrite64"),
    (libc::SYS_readv, "readv"),
    (libc::SYS_writev, "writev"),
    (libc::SYS_sendfile, "sendfile"),
    (libc::SYS_connect, "connect"),
    (libc::SYS_sendto, "sendto"),
    (libc::SYS_recvfrom, "recvfrom"),
    (libc::SYS_sendmsg, "sendmsg"),
    (libc::SYS_shutdown, "shutdown"),
    (libc::SYS_bind, "bind"),
    (libc::SYS_listen, "listen"),
    (libc::SYS_getsockname, "getsockname"),
    (libc::SYS_getpeername, "getpeername"),
    (libc::SYS_setsockopt, "setsockopt"),
    (libc::SYS_getsockopt, "getsockopt"),
    (libc::SYS_fsync, "fsync"),
    (libc::SYS_fdatasync, "fdatasync"),
    (libc::SYS_ftruncate, "ftruncate"),
    (libc::SYS_getdents, "getdents"),
    (libc::SYS_fchdir, "fchdir"),
    (libc::SYS_fchmod, "fchmod"),
    (libc::SYS_fchown, "fchown"),
    (libc::SYS_fstatfs, "fstatfs"),
    (libc::SYS_getdents64, "getdents64"),
    (libc::SYS_fadvise64, "fadvise64"),
    (libc::SYS_epoll_wait, "epoll_wait"),
    (libc::SYS_epoll_ctl, "epoll_ctl"),
    (libc::SYS_newfstatat, "newfstatat"),
    (libc::SYS_epoll_pwait, "epoll_pwait"),
    (libc::SYS_fallocate, "fallocate"),
    (libc::SYS_preadv, "preadv"),
    (libc::SYS_pwritev, "pwritev"),
    (libc::SYS_syncfs, "syncfs"),
    (libc::SYS_sendmmsg, "sendmmsg"),
    (libc::SYS_statx, "statx"),
    (libc::SYS_epoll_pwait2, "epoll_pwait2"),
];

/// The name of a syscall number, for reports (`None` for ones the tracer never names).
pub fn name(nr: u32) -> Option<&'static str> {
    spec(nr).map(|s| s.name).or_else(|| {
        FD_USERS
            .iter()
            .find(|(n, _)| *n == c_long::from(nr))
            .map(|(_, name)| *name)
    })
}
