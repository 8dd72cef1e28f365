//! Process lifecycle records (`task/task_newtask`, `sched/sched_process_exec`, `sched_process_exit`).

use crate::record::RecordHeader;

/// A traced process created a new process (not a thread). The header names the parent.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ForkRecord {
    pub header: RecordHeader,
    pub child_tgid: u32,
    pub _pad: u32,
    /// Flags of the clone/clone3 call (0 for fork/vfork); `CLONE_FILES` means a shared fd table.
    pub clone_flags: u64,
}

pub const EXEC_FILENAME_MAX: usize = 256;

/// A traced process replaced its image; `O_CLOEXEC` descriptors are gone.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ExecRecord {
    pub header: RecordHeader,
    pub old_tid: u32,
    pub filename_len: u32,
    pub filename: [u8; EXEC_FILENAME_MAX],
}

/// The last thread of a traced process exited (`group_dead`): its descriptors are closed.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ExitRecord {
    pub header: RecordHeader,
}

/// A process that exited was released by the kernel (`sched/sched_process_free`): its parent
/// reaped it (or it was never a zombie). `header.tgid` is the released process.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ReapRecord {
    pub header: RecordHeader,
}
