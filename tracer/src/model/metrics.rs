//! What `/metrics` shows, as plain numbers (grouped by comm and container; see
//! `analysis::metrics`), encoded by `output::prometheus`.

use super::health::AgentHealth;
use crate::state::counters::{Counters, KINDS};

/// Gauges and counters of one group of processes (or of one process with `--pid-labels`).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct GroupMetrics {
    /// The command name's raw bytes (escaped by `output::prometheus`: any bytes a process put
    /// in its name survive).
    pub comm: Vec<u8>,
    pub container: String,
    /// Set for a process's own series (`--pid-labels`).
    pub pid: Option<u32>,
    /// Processes in the group now (alive, or exited within the grace period).
    pub processes: u64,
    pub open_fds: [u64; KINDS],
    /// Allocation sites growing now, by fd kind.
    pub suspects: [u64; KINDS],
    /// The lowest soft RLIMIT_NOFILE in the group (None: unlimited or unknown).
    pub fd_soft_limit: Option<u64>,
    /// The highest open/soft-limit ratio of a process in the group.
    pub worst_fd_ratio: Option<f64>,
    /// The shortest time to EMFILE among the group's suspects.
    pub time_to_fd_limit_s: Option<f64>,
    /// Children exited and not reaped, of the group's processes.
    pub zombies: u64,
    /// Parents of the group whose zombies piled up while their SIGCHLDs merged.
    pub zombie_piles: u64,
    /// Totals: retired processes of the group plus the live ones.
    pub counters: Counters,
}

/// SysV objects by resource (sem, shm, msg).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SysvMetrics {
    /// Objects created by traced processes that exist now.
    pub objects: [u64; 3],
    /// Of those, objects whose creator exited.
    pub orphans: [u64; 3],
}

#[derive(Clone, Debug, Default, PartialEq)]
pub struct MetricsSnapshot {
    pub groups: Vec<GroupMetrics>,
    pub sysv: SysvMetrics,
    pub health: AgentHealth,
}
