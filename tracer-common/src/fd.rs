//! Syscall records: what an fd-creating or fd-closing syscall did, written at `raw_syscalls/sys_exit`.
//!
//! The kernel stays generic: it copies the syscall number, the six argument registers, the return
//! value and the data the capture table asks for. The agent knows what each syscall means.

use crate::{config::DATA_MAX, record::RecordHeader};

/// A syscall result. Arguments come from the saved user registers (`pt_regs`), which the syscall
/// does not modify, so they are still valid at exit.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SyscallCore {
    pub header: RecordHeader,
    pub nr: u32,
    /// The capture spec that was applied (see [`crate::syscalls::Capture`]).
    pub capture: u32,
    pub ret: i64,
    pub args: [u64; 6],
}

/// What kind of bytes are in [`SyscallRecord::data`].
pub mod data_kind {
    pub const NONE: u16 = 0;
    /// A NUL-terminated path copied from user memory.
    pub const PATH: u16 = 1;
    /// Two `int`s written by the kernel to a user array (pipe, pipe2, socketpair).
    pub const FD_PAIR: u16 = 2;
    /// Control-message bytes of one received message (`struct cmsghdr`s), for SCM_RIGHTS.
    pub const CONTROL: u16 = 3;
}

#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SyscallRecord {
    pub core: SyscallCore,
    /// `bpf_get_stackid` result in fp mode (negative: none or error).
    pub stack_id: i64,
    /// User instruction pointer, stack pointer and frame pointer at syscall entry.
    pub user_ip: u64,
    pub user_sp: u64,
    pub user_bp: u64,
    pub data_kind: u16,
    pub data_len: u16,
    /// Bytes of stack copied in a [`SyscallStackRecord`] (0 otherwise).
    pub stack_len: u32,
    /// For `recvmmsg`: which message this record describes.
    pub msg_index: u32,
    /// Kernel stack id of the fd's installation (`--kernel-stack`; negative: none).
    pub kernel_stack_id: i32,
    /// How many allocations this record's user stack stands for: 1 when every allocation
    /// gets a stack; `k` when stacks are sampled one in `k` under the per-CPU budget
    /// (`--stack-budget`); 0 when this allocation was not sampled (no user stack was taken:
    /// the record still counts the fd exactly).
    pub stack_weight: u32,
    pub _pad: u32,
    pub data: [u8; DATA_MAX],
}

/// A [`SyscallRecord`] plus `N` bytes of user stack (one record size per `--stack-size`, since
/// a ring-buffer reservation has a size fixed when the program is verified).
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StackRecord<const N: usize> {
    pub record: SyscallRecord,
    /// User memory from `user_sp` upwards; `record.stack_len` bytes are valid.
    pub stack: [u8; N],
}

pub type SyscallStackRecord = StackRecord<8192>;
