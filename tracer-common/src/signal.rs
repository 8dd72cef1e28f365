//! Signal records from `signal/signal_generate` and `signal/signal_deliver`
//! (include/trace/events/signal.h).

use crate::record::RecordHeader;

/// What happened to a signal.
pub mod event {
    /// Sent to a traced process (`signal_generate`); `result` says what became of it.
    pub const GENERATE: u32 = 1;
    /// A traced process took the signal off its queue to handle it (`signal_deliver`).
    pub const DELIVER: u32 = 2;
}

/// `signal_generate`'s `result` (enum trace_signal_result in include/trace/events/signal.h).
pub mod result {
    pub const DELIVERED: i32 = 0;
    pub const IGNORED: i32 = 1;
    /// Already pending: a standard signal merges into the pending one (it is lost).
    pub const ALREADY_PENDING: i32 = 2;
    pub const OVERFLOW_FAIL: i32 = 3;
    pub const LOSE_INFO: i32 = 4;
}

#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SignalRecord {
    /// For [`event::GENERATE`] the sender (any process); for [`event::DELIVER`] the receiver.
    pub header: RecordHeader,
    pub event: u32,
    pub sig: i32,
    /// `si_code` (CLD_EXITED for a child's exit, SI_USER for kill(2), ...).
    pub code: i32,
    /// The receiving task's pid (`signal_generate`) or the receiver's tgid (`signal_deliver`).
    pub target: u32,
    /// Sent to the whole process rather than one thread.
    pub group: i32,
    /// [`result`] (`signal_generate` only).
    pub result: i32,
    /// The handler that runs (`signal_deliver` only): 0 is SIG_DFL, 1 SIG_IGN.
    pub handler: u64,
}
