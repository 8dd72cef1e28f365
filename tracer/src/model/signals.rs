//! Zombies and signals in the report: parents with unreaped children (with their SIGCHLD
//! handler and counts), and per-signal counts (generated, delivered, coalesced).

use serde::Serialize;

use super::stack::Stack;

#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct ZombieReport {
    pub pid: u32,
    pub zombies: u64,
    pub max_zombies: u32,
    pub reaped: u64,
    pub mean_reap_delay_ms: Option<f64>,
    pub growth_per_min: f64,
    /// The zombie count kept growing: a suspect.
    pub growing: bool,
    /// Zombies piled up (`max_zombies` at least 10) while SIGCHLDs merged: the "one waitpid per
    /// SIGCHLD" bug, even if they were all reaped later.
    pub piled: bool,
    pub sigchld: SignalCountsReport,
    /// The SIGCHLD handler the parent installed last (`rt_sigaction`), if traced.
    pub sigchld_handler: Option<HandlerReport>,
    /// What to change, for a pile.
    pub fix: Option<&'static str>,
}

/// What a process set for SIGCHLD (`sigaction`'s `sa_handler`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SigHandler {
    Default,
    Ignore,
    Function(u64),
}

impl SigHandler {
    /// `sa_handler` as the kernel has it: 0 is SIG_DFL, 1 SIG_IGN, anything else a function.
    pub fn from_raw(address: u64) -> Self {
        match address {
            0 => SigHandler::Default,
            1 => SigHandler::Ignore,
            a => SigHandler::Function(a),
        }
    }
}

impl Serialize for SigHandler {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            SigHandler::Default => s.serialize_str("SIG_DFL"),
            SigHandler::Ignore => s.serialize_str("SIG_IGN"),
            SigHandler::Function(a) => s.serialize_str(&format!("{a:#x}")),
        }
    }
}

#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct HandlerReport {
    /// `sa_handler`: JSON `"0x..."`, or `"SIG_DFL"`/`"SIG_IGN"`.
    pub address: SigHandler,
    /// The handler's symbol (one frame; empty for SIG_DFL/SIG_IGN).
    pub stack: Stack,
}

/// The fix for a zombie pile.
pub const ZOMBIE_FIX: &str = "standard signals merge: on each SIGCHLD reap in a loop, while (waitpid(-1, &status, WNOHANG) > 0), until it returns 0";

#[derive(Clone, Copy, Debug, Serialize, PartialEq, Default)]
pub struct SignalCountsReport {
    pub generated: u64,
    pub delivered: u64,
    pub ignored: u64,
    pub coalesced: u64,
    pub failed: u64,
}

#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct SignalReport {
    pub pid: u32,
    pub signal: String,
    pub number: i32,
    #[serde(flatten)]
    pub counts: SignalCountsReport,
}
