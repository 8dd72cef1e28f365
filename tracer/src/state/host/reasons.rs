//! Why a process was escalated or released, and what is remembered of it.

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum EscalationReason {
    /// Its count rose at every tick for a while.
    Rising,
    /// It holds most of its soft fd limit.
    NearLimit,
    /// Forked by an escalated process (the kernel follows children).
    Inherited { parent: u32 },
    /// Someone asked (`POST /escalate?pid=N`): outside the budget's count of processes.
    Asked,
    /// Its floor rose over minutes (a slow leak).
    SlowRise,
}

impl EscalationReason {
    pub const NAMES: [&'static str; 5] = ["rising", "near_limit", "inherited", "asked", "slow_rise"];

    pub fn index(self) -> usize {
        match self {
            EscalationReason::Rising => 0,
            EscalationReason::NearLimit => 1,
            EscalationReason::Inherited { .. } => 2,
            EscalationReason::Asked => 3,
            EscalationReason::SlowRise => 4,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ReleaseReason {
    /// Its growing sites were named and kept as evidence.
    Named,
    /// It stopped rising (a pool that filled, a burst).
    Quiet,
    /// The escalated processes cost more records per second than the budget: the noisiest goes.
    Budget,
    /// It exited.
    Exited,
}

impl ReleaseReason {
    pub const NAMES: [&'static str; 4] = ["named", "quiet", "budget", "exited"];

    pub fn index(self) -> usize {
        match self {
            ReleaseReason::Named => 0,
            ReleaseReason::Quiet => 1,
            ReleaseReason::Budget => 2,
            ReleaseReason::Exited => 3,
        }
    }
}

/// A process being traced because of its count.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Escalation {
    pub since_ns: u64,
    pub reason: EscalationReason,
    pub open_at_start: u32,
    /// When a growing site of it was first named (set by the caller from the analysis).
    pub named_ns: Option<u64>,
    /// Records its traced syscalls made by the last tick, and the rate since the one before.
    pub records: u64,
    pub records_per_s: f64,
}

/// A release, for the report.
#[derive(Clone, Debug, PartialEq)]
pub struct Release {
    pub tgid: u32,
    pub comm: [u8; 16],
    pub reason: ReleaseReason,
    pub escalated: Escalation,
    pub at_ns: u64,
}
