//! File locks in the report: per file, who holds it, who waits, the longest wait with both
//! stacks, the longest hold.

use serde::Serialize;

use super::stack::Stack;

#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct LockReport {
    pub file: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub file_hex: Option<String>,
    #[serde(skip)]
    pub file_bytes: Option<Box<[u8]>>,
    pub dev: String,
    pub ino: u64,
    pub held: Vec<HeldReport>,
    pub waiting: Vec<WaiterReport>,
    pub waits: u64,
    pub total_wait_ms: u64,
    pub max_wait_ms: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_waiter: Option<Party>,
    /// Who held the lock when the longest wait began.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_wait_holder: Option<Party>,
    /// The longest hold that ended.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub longest_hold: Option<EndedHoldReport>,
    pub failures: u64,
    /// A lock held longer than --lock-hold while others waited.
    pub suspect: bool,
}

#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct Party {
    pub pid: u32,
    pub stack: Stack,
}

#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct HeldReport {
    pub pid: u32,
    /// flock or posix (fcntl, including OFD locks).
    pub lock: &'static str,
    pub exclusive: bool,
    pub start: i64,
    pub end: i64,
    pub held_ms: u64,
    pub waited_ms: u64,
    pub waiters_seen: u32,
    /// False when known only from /proc/locks (taken before tracing or by an untraced process):
    /// then `held_ms` is a lower bound and there is no stack.
    pub traced: bool,
    pub stack: Stack,
}

#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct WaiterReport {
    pub pid: u32,
    pub exclusive: bool,
    pub waiting_ms: u64,
}

#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct EndedHoldReport {
    pub pid: u32,
    pub held_ms: u64,
    pub waiters_seen: u32,
    pub stack: Stack,
}
