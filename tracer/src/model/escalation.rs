//! The always-on mode in the report: where counts come from, which processes are escalated
//! (since when, why, at what cost), the latest releases, and the processes whose count is
//! rising before anything of theirs is traced.

use serde::Serialize;

#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct EscalationReport {
    /// `iterator` (the BPF task iterator) or `proc` (a /proc walk, where it cannot load).
    pub counts_from: &'static str,
    pub counted_processes: u64,
    pub syscall_hook_attached: bool,
    pub budget_processes: u64,
    pub budget_records_per_s: u64,
    /// Escalations refused because the budget was full (once per rise).
    pub refused: u64,
    pub escalated: Vec<EscalatedProcess>,
    /// The latest releases, newest first.
    pub released: Vec<ReleasedProcess>,
    /// Processes whose count is rising now (escalated or not), soonest to their limit first.
    pub rising: Vec<RisingProcess>,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct EscalatedProcess {
    pub pid: u32,
    pub comm: String,
    /// Hex of the raw bytes, present only when `comm` is not valid UTF-8.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub comm_hex: Option<String>,
    #[serde(skip)]
    pub comm_bytes: Vec<u8>,
    /// `rising`, `near_limit` or `inherited`.
    pub reason: &'static str,
    /// The escalated parent, for `inherited`.
    pub parent: Option<u32>,
    pub escalated_for_s: f64,
    pub open_at_escalation: u32,
    pub open_now: u32,
    pub records_per_s: f64,
    /// A growing site of it has been named (its leak is in `suspects`).
    pub named: bool,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ReleasedProcess {
    pub pid: u32,
    pub comm: String,
    /// Hex of the raw bytes, present only when `comm` is not valid UTF-8.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub comm_hex: Option<String>,
    #[serde(skip)]
    pub comm_bytes: Vec<u8>,
    /// `named`, `quiet`, `budget` or `exited`.
    pub reason: &'static str,
    pub escalated_for_s: f64,
    pub released_ago_s: f64,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct RisingProcess {
    pub pid: u32,
    pub comm: String,
    /// Hex of the raw bytes, present only when `comm` is not valid UTF-8.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub comm_hex: Option<String>,
    #[serde(skip)]
    pub comm_bytes: Vec<u8>,
    pub open_fds: u32,
    pub fd_soft_limit: Option<u64>,
    pub time_to_limit_s: f64,
    pub escalated: bool,
}
