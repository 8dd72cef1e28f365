//! The header every ring-buffer record starts with.

/// Record kinds (fixed numbers: they are the wire format).
pub mod kind {
    /// [`crate::fd::SyscallCore`]: a syscall result without captured data (closes).
    pub const SYSCALL_CORE: u32 = 1;
    /// [`crate::fd::SyscallRecord`]: a syscall result with data and an fp stack id or registers.
    pub const SYSCALL: u32 = 2;
    /// [`crate::fd::SyscallStackRecord`]: [`SYSCALL`] plus a copy of the user stack.
    pub const SYSCALL_STACK: u32 = 3;
    /// [`crate::process::ForkRecord`].
    pub const FORK: u32 = 10;
    /// [`crate::process::ExecRecord`].
    pub const EXEC: u32 = 11;
    /// [`crate::process::ExitRecord`].
    pub const EXIT: u32 = 12;
}

#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RecordHeader {
    pub kind: u32,
    /// Process id (thread group id) of the task that caused the record.
    pub tgid: u32,
    /// Thread id of that task.
    pub tid: u32,
    pub _pad: u32,
    /// `bpf_ktime_get_ns()`: CLOCK_MONOTONIC.
    pub ts_ns: u64,
}
