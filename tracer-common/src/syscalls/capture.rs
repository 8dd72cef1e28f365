//! What the kernel copies for a syscall: a [`Capture`], packed into a `u32` ([`bits`]) for the
//! `CAPTURE` array the `sys_exit` program reads by syscall number.

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
