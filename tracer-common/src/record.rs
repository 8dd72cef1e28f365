//! The header every ring-buffer record starts with.

/// Record kinds (fixed numbers: they are the wire format).
pub mod kind {
    /// [`crate::fd::SyscallCore`]: a syscall result without captured data (closes).
    pub const SYSCALL_CORE: u32 = 1;
    /// [`crate::fd::SyscallRecord`]: a syscall result with data and an fp stack id or registers.
    pub const SYSCALL: u32 = 2;
    /// [`crate::fd::StackRecord`]: [`SYSCALL`] plus a copy of 8 KiB of user stack.
    pub const SYSCALL_STACK: u32 = 3;
    /// The same with 4 KiB of stack.
    pub const SYSCALL_STACK_4K: u32 = 4;
    /// The same with 16 KiB of stack.
    pub const SYSCALL_STACK_16K: u32 = 5;
    /// The same with 1 KiB of stack (a thread whose live stack is known to be that short).
    pub const SYSCALL_STACK_1K: u32 = 6;
    /// The same with 2 KiB of stack.
    pub const SYSCALL_STACK_2K: u32 = 7;

    /// [`crate::python::PyStackRecord`] (variable length): the Python frames of the syscall
    /// record with the same `tid` and `ts_ns`, sent just before it.
    pub const PY_STACK: u32 = 8;

    /// The record kind carrying `bytes` of stack.
    pub const fn stack_kind(bytes: usize) -> u32 {
        match bytes {
            1024 => SYSCALL_STACK_1K,
            2048 => SYSCALL_STACK_2K,
            4096 => SYSCALL_STACK_4K,
            16384 => SYSCALL_STACK_16K,
            _ => SYSCALL_STACK,
        }
    }
    /// [`crate::process::ForkRecord`].
    pub const FORK: u32 = 10;
    /// [`crate::process::ExecRecord`].
    pub const EXEC: u32 = 11;
    /// [`crate::process::ExecRecord`] of a process not traced (yet): `--comm`/`--cgroup`
    /// selection decides whether to follow it.
    pub const EXEC_UNTRACED: u32 = 14;
    /// [`crate::process::ExitRecord`].
    pub const EXIT: u32 = 12;
    /// [`crate::process::ReapRecord`].
    pub const REAP: u32 = 13;
    /// [`crate::lock::LockRecord`].
    pub const LOCK: u32 = 20;
    /// [`crate::signal::SignalRecord`].
    pub const SIGNAL: u32 = 30;
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
