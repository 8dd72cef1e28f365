//! What a successful syscall means for the traced process, as the agent applies it.

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
