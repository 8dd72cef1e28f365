//! The x86_64 syscall table: what the kernel captures for each syscall and what it means for the
//! traced process's state (fd table, SysV IPC objects, locks, limits). Numbers are from
//! `arch/x86/entry/syscalls/syscall_64.tbl`.
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
    /// Only `fcntl` commands that duplicate or lock: other fcntl commands are frequent noise.
    pub fcntl_filter: bool,
    /// Emit only failed calls (fork: only EAGAIN matters).
    pub failures_only: bool,
    /// Which failures are worth a stack (see [`FailClass`]).
    pub fail_class: FailClass,
    /// Emit only calls whose argument passes this test.
    pub filter: ArgFilter,
    /// Timed at entry (`syscalls/sys_enter_*` stashes the start per thread): emitted only when
    /// it blocked at least `--write-block`, or failed with EAGAIN/ENOBUFS, with the time it took
    /// in `args[5]` (see [`DERIVED_ARG`]).
    pub timed: bool,
}

/// The argument slot the kernel overwrites with a value it derived (the syscalls that use it
/// take at most five arguments, or ignore the sixth here: `sendto`'s address length): the time a
/// timed call took, in ns, or the word a [`DataSource::Word`] capture read.
pub const DERIVED_ARG: usize = 5;

/// Failures of a stack-capturing syscall that the kernel reports (others are dropped there).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FailClass {
    /// EMFILE or ENFILE: the fd limits.
    FdLimits = 0,
    /// ENOSPC: a SysV IPC table is full (SEMMNI, SHMMNI, MSGMNI).
    NoSpace = 1,
    /// EAGAIN: fork hit the process limit.
    Again = 2,
    /// Every failure (locks: ENOLCK, EWOULDBLOCK, EINTR, EDEADLK all matter).
    Any = 3,
}

/// A test on one argument, applied in the kernel before anything is copied.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ArgFilter {
    None,
    /// `(arg[N] & 0xff) == IPC_RMID`: `*ctl` removals (glibc ORs IPC_64 into the command).
    IpcRmid(u8),
    /// `arg[N] > FD_SETSIZE`: `select` given descriptors its fd_set cannot hold.
    AboveFdSetSize(u8),
    /// `mmap(addr, len, prot, flags, fd, off)` of a file with `PROT_EXEC`: code being loaded.
    CodeMapping,
    /// `rt_sigaction(SIGCHLD, act != NULL, ..)`: a SIGCHLD handler being installed.
    SigchldAction,
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
    /// After a successful exec: the new image's initial stack (argc, argv, envp, auxv), copied
    /// from the new stack pointer as a stack record, whatever the stack mode but `none`.
    InitialStack,
    /// The `u64` at the pointer in argument N, written to `args[DERIVED_ARG]` of a core record
    /// (no stack): `rt_sigaction`'s new handler (the first word of `struct sigaction`).
    Word(u8),
}

pub mod bits {
    pub const ENABLED: u32 = 1 << 0;
    pub const STACK: u32 = 1 << 1;
    pub const FAILURES: u32 = 1 << 2;
    pub const FCNTL_FILTER: u32 = 1 << 3;
    pub const FAILURES_ONLY: u32 = 1 << 4;
    pub const FAIL_CLASS_SHIFT: u32 = 5;
    pub const FAIL_CLASS_MASK: u32 = 0x3;
    pub const FAIL_FD_LIMITS: u32 = 0;
    pub const FAIL_NO_SPACE: u32 = 1;
    pub const FAIL_AGAIN: u32 = 2;
    pub const FAIL_ANY: u32 = 3;
    pub const DATA_SHIFT: u32 = 8;
    pub const DATA_MASK: u32 = 0xf;
    pub const ARG_SHIFT: u32 = 12;
    pub const ARG_MASK: u32 = 0x7;
    pub const DATA_PATH: u32 = 1;
    pub const DATA_FD_PAIR: u32 = 2;
    pub const DATA_MSGHDR: u32 = 3;
    pub const DATA_MMSGHDR: u32 = 4;
    pub const FILTER_SHIFT: u32 = 16;
    pub const FILTER_MASK: u32 = 0x7;
    pub const FILTER_IPC_RMID: u32 = 1;
    pub const FILTER_ABOVE_FD_SETSIZE: u32 = 2;
    pub const FILTER_CODE_MAPPING: u32 = 3;
    pub const DATA_INITIAL_STACK: u32 = 5;
    pub const DATA_WORD: u32 = 6;
    pub const FILTER_SIGCHLD_ACTION: u32 = 4;
    pub const FILTER_ARG_SHIFT: u32 = 19;
    pub const TIMED: u32 = 1 << 24;
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
        if self.fcntl_filter {
            b |= bits::FCNTL_FILTER;
        }
        if self.failures_only {
            b |= bits::FAILURES_ONLY;
        }
        if self.timed {
            b |= bits::TIMED;
        }
        b |= (self.fail_class as u32) << bits::FAIL_CLASS_SHIFT;
        let (f, fa) = match self.filter {
            ArgFilter::None => (0, 0),
            ArgFilter::IpcRmid(a) => (bits::FILTER_IPC_RMID, a),
            ArgFilter::AboveFdSetSize(a) => (bits::FILTER_ABOVE_FD_SETSIZE, a),
            ArgFilter::CodeMapping => (bits::FILTER_CODE_MAPPING, 0),
            ArgFilter::SigchldAction => (bits::FILTER_SIGCHLD_ACTION, 0),
        };
        b |= (f << bits::FILTER_SHIFT) | (((fa as u32) & bits::ARG_MASK) << bits::FILTER_ARG_SHIFT);
        let (d, a) = match self.data {
            DataSource::None => (0, 0),
            DataSource::Path(a) => (bits::DATA_PATH, a),
            DataSource::FdPair(a) => (bits::DATA_FD_PAIR, a),
            DataSource::MsgHdr(a) => (bits::DATA_MSGHDR, a),
            DataSource::MmsgHdr(a) => (bits::DATA_MMSGHDR, a),
            DataSource::InitialStack => (bits::DATA_INITIAL_STACK, 0),
            DataSource::Word(a) => (bits::DATA_WORD, a),
        };
        b | (d << bits::DATA_SHIFT) | (((a as u32) & bits::ARG_MASK) << bits::ARG_SHIFT)
    }
}

/// SysV IPC object types (`ipc/sem.c`, `ipc/shm.c`, `ipc/msg.c`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum IpcKind {
    Sem,
    Shm,
    Msg,
}

/// What a successful syscall does to the caller's state (fd table, IPC objects, locks).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Effect {
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
    /// `semget`/`shmget`/`msgget(key, .., flags)`: the return value is an IPC id.
    IpcGet(IpcKind),
    /// `semctl`/`shmctl`/`msgctl(id, .., IPC_RMID)` (filtered to removals in the kernel).
    IpcRemove(IpcKind),
    /// `flock(fd, op)`.
    Flock,
    /// `select`/`pselect6` with more descriptors than an `fd_set` holds (filtered in the kernel).
    SelectBeyondFdSetSize,
    /// fork, vfork, clone, clone3: only failures are recorded.
    Fork,
    /// `execve`/`execveat` succeeded: where the new program and its loader were placed (auxv),
    /// so a process that exits before its maps are read still has its stacks symbolized.
    Exec,
    /// A file mapped with `PROT_EXEC` (the loader mapping a library): its code's address range.
    MapCode,
    /// `rt_sigaction(SIGCHLD, act, ..)`: the handler address in `args[DERIVED_ARG]`.
    SigAction,
    /// `wait4` returned a child's pid: the parent reaped it (zombie gone at the wait, not at
    /// `sched_process_free`, which RCU may run much later).
    Wait,
    /// `write`/`writev`/`sendto`/`sendmsg` that blocked at least `--write-block` (time in
    /// `args[DERIVED_ARG]`) or failed with EAGAIN/ENOBUFS: a full pipe, eventfd or socket.
    Write,
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

/// `fcntl` commands that duplicate (`include/uapi/linux/fcntl.h`).
pub const F_DUPFD: u64 = 0;
pub const F_DUPFD_CLOEXEC: u64 = 1030;
/// `fcntl` commands that take a lock (`include/uapi/asm-generic/fcntl.h`): POSIX and OFD locks.
pub const F_SETLK: u64 = 6;
pub const F_SETLKW: u64 = 7;
pub const F_OFD_SETLK: u64 = 37;
pub const F_OFD_SETLKW: u64 = 38;

/// True for the fcntl commands the kernel reports.
pub const fn fcntl_is_lock(cmd: u64) -> bool {
    cmd == F_SETLK || cmd == F_SETLKW || cmd == F_OFD_SETLK || cmd == F_OFD_SETLKW
}
pub const fn fcntl_is_dup(cmd: u64) -> bool {
    cmd == F_DUPFD || cmd == F_DUPFD_CLOEXEC
}

/// `IPC_RMID` (include/uapi/linux/ipc.h); glibc ORs `IPC_64` (0x100) into `*ctl` commands.
pub const IPC_RMID: u64 = 0;
/// `FD_SETSIZE`: bits in an `fd_set` (glibc).
pub const FD_SETSIZE: u64 = 1024;
/// `mmap` prot and flags (include/uapi/asm-generic/mman-common.h).
pub const PROT_EXEC: u64 = 0x4;
pub const MAP_ANONYMOUS: u64 = 0x20;

/// Whether `mmap` arguments map code from a file (what the dynamic loader does per library).
pub const fn maps_code(args: &[u64; 6]) -> bool {
    args[2] & PROT_EXEC != 0 && args[3] & MAP_ANONYMOUS == 0 && (args[4] as i32) >= 0
}

/// Errors the kernel side tests (include/uapi/asm-generic/errno-base.h, errno.h).
pub const EBADF: i64 = 9;
pub const EAGAIN: i64 = 11;
pub const ENFILE: i64 = 23;
pub const EMFILE: i64 = 24;
pub const ENOSPC: i64 = 28;
pub const EPIPE: i64 = 32;
pub const ENOBUFS: i64 = 105;
/// `SIGCHLD` on x86_64.
pub const SIGCHLD: u64 = 17;

/// Whether `rt_sigaction` arguments install a SIGCHLD action (`act` not NULL).
pub const fn installs_sigchld_action(args: &[u64; 6]) -> bool {
    args[0] == SIGCHLD && args[1] != 0
}

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
    fn spec_lookup_finds_every_entry() {
        for s in X86_64 {
            assert_eq!(spec(s.nr).map(|x| x.name), Some(s.name));
        }
        assert!(spec(0).is_none(), "read is not followed");
        assert!(spec(10_000).is_none());
        assert!(X86_64.len() < 255);
    }

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
        assert_ne!(fcntl & bits::FCNTL_FILTER, 0);
        let semctl = spec(66).map(|s| s.capture.bits()).unwrap_or(0);
        assert_eq!(
            (semctl >> bits::FILTER_SHIFT) & bits::FILTER_MASK,
            bits::FILTER_IPC_RMID
        );
        assert_eq!((semctl >> bits::FILTER_ARG_SHIFT) & bits::ARG_MASK, 2);
        assert_eq!(semctl & bits::STACK, 0);
        let select = spec(23).map(|s| s.capture.bits()).unwrap_or(0);
        assert_eq!(
            (select >> bits::FILTER_SHIFT) & bits::FILTER_MASK,
            bits::FILTER_ABOVE_FD_SETSIZE
        );
        assert_eq!(
            (select >> bits::FAIL_CLASS_SHIFT) & bits::FAIL_CLASS_MASK,
            bits::FAIL_ANY
        );
        let fork = spec(57).map(|s| s.capture.bits()).unwrap_or(0);
        assert_ne!(fork & bits::FAILURES_ONLY, 0);
        assert_eq!(
            (fork >> bits::FAIL_CLASS_SHIFT) & bits::FAIL_CLASS_MASK,
            bits::FAIL_AGAIN
        );
        let semget = spec(64).map(|s| s.capture.bits()).unwrap_or(0);
        assert_eq!(
            (semget >> bits::FAIL_CLASS_SHIFT) & bits::FAIL_CLASS_MASK,
            bits::FAIL_NO_SPACE
        );
        let exec = spec(59).map(|s| s.capture.bits()).unwrap_or(0);
        assert_eq!((exec >> bits::DATA_SHIFT) & bits::DATA_MASK, bits::DATA_INITIAL_STACK);
        assert_eq!(exec & bits::FAILURES, 0);
        let mmap = spec(9).map(|s| s.capture.bits()).unwrap_or(0);
        assert_eq!(
            (mmap >> bits::FILTER_SHIFT) & bits::FILTER_MASK,
            bits::FILTER_CODE_MAPPING
        );
        assert_eq!(mmap & (bits::STACK | bits::FAILURES), 0);
    }

    #[test]
    fn sigaction_and_timed_write_captures() {
        let sa = spec(13).map(|s| s.capture.bits()).unwrap_or(0);
        assert_eq!(
            (sa >> bits::FILTER_SHIFT) & bits::FILTER_MASK,
            bits::FILTER_SIGCHLD_ACTION
        );
        assert_eq!((sa >> bits::DATA_SHIFT) & bits::DATA_MASK, bits::DATA_WORD);
        assert_eq!((sa >> bits::ARG_SHIFT) & bits::ARG_MASK, 1);
        assert_eq!(sa & (bits::STACK | bits::FAILURES | bits::TIMED), 0);
        assert!(installs_sigchld_action(&[17, 0x7ffd_0000, 0, 8, 0, 0]));
        assert!(
            !installs_sigchld_action(&[17, 0, 0x7ffd_0000, 8, 0, 0]),
            "a query, not an install"
        );
        assert!(!installs_sigchld_action(&[2, 0x7ffd_0000, 0, 8, 0, 0]));
        for nr in [1, 20, 44, 46] {
            let w = spec(nr).map(|s| s.capture.bits()).unwrap_or(0);
            assert_ne!(w & bits::TIMED, 0, "{nr}");
            assert_ne!(w & bits::STACK, 0, "{nr}");
            assert_eq!((w >> bits::FAIL_CLASS_SHIFT) & bits::FAIL_CLASS_MASK, bits::FAIL_ANY);
            assert_eq!(spec(nr).map(|s| s.effect), Some(Effect::Write));
        }
        // The fields do not overlap.
        assert_eq!(
            bits::TIMED & ((bits::ARG_MASK << bits::FILTER_ARG_SHIFT) | (bits::FILTER_MASK << bits::FILTER_SHIFT)),
            0
        );
        assert_eq!(
            (bits::FILTER_MASK << bits::FILTER_SHIFT) & (bits::ARG_MASK << bits::FILTER_ARG_SHIFT),
            0
        );
    }

    #[test]
    fn code_mappings_are_executable_file_mappings() {
        // The loader mapping libc's text: mmap(addr, len, R|X, MAP_PRIVATE|MAP_FIXED|MAP_DENYWRITE, 3, off).
        assert!(maps_code(&[0x7f00_0002_8000, 0x17_5000, 0x5, 0x812, 3, 0x28000]));
        // Reading a file, an anonymous JIT buffer, MAP_ANONYMOUS with fd -1.
        assert!(!maps_code(&[0, 4096, 0x1, 0x2, 3, 0]));
        assert!(!maps_code(&[0, 4096, 0x7, 0x22, u64::MAX, 0]));
        assert!(!maps_code(&[0, 4096, 0x5, 0x22, 0, 0]));
    }
}
