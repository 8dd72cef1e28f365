//! The report: the stable structure behind `--format json` and the text output.

use std::collections::BTreeMap;

use serde::Serialize;

use super::{
    Frame, Stack,
    incidents::IncidentReport,
    ipc::{IpcReport, merge_orphan_groups},
    locks::LockReport,
    losses::Losses,
    signals::{SignalReport, ZombieReport},
    stalls::StallReport,
    system::SystemLimits,
};
use crate::state::{Resource, StackId};

#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct Report {
    /// Records lost whole: ring-buffer reservation failures plus undecodable records.
    pub lost_events: u64,
    /// Every loss counter, each under its own name.
    pub losses: Losses,
    pub processes: Vec<ProcessSummary>,
    pub suspects: Vec<SiteReport>,
    /// Every site with fds still open (suspects included).
    pub outstanding: Vec<SiteReport>,
    /// Calls that failed on a limit, select beyond FD_SETSIZE, descriptor misuse.
    pub incidents: Vec<IncidentReport>,
    pub ipc: IpcReport,
    /// Files locked, waited for, or contended while traced.
    pub locks: Vec<LockReport>,
    /// Parents with zombie children, with their SIGCHLD counts.
    pub zombies: Vec<ZombieReport>,
    /// Signals received by traced processes, per signal.
    pub signals: Vec<SignalReport>,
    /// Writes blocked on full pipes, FIFOs, eventfds and AF_UNIX sockets, per object.
    pub stalls: Vec<StallReport>,
    /// System-wide headroom (absent in unit tests).
    pub system: Option<SystemLimits>,
    /// The agent's always-on mode: counts, escalations, releases (null elsewhere).
    pub escalation: Option<super::escalation::EscalationReport>,
}

#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct ProcessSummary {
    pub pid: u32,
    pub comm: String,
    /// Hex of the raw bytes, present only when `comm` is not valid UTF-8.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub comm_hex: Option<String>,
    /// The raw bytes, for the text output's escaping.
    #[serde(skip)]
    pub comm_bytes: Vec<u8>,
    pub open_fds: usize,
    pub fd_soft_limit: Option<u64>,
    pub fd_hard_limit: Option<u64>,
    pub exited: bool,
    pub by_kind: BTreeMap<&'static str, usize>,
    /// Fds the process created while traced (closed ones included).
    pub allocations: u64,
    /// Allocations that failed on a limit (EMFILE/ENFILE, ENOSPC, EAGAIN from fork).
    pub limit_failures: u64,
    /// Children exited and not reaped.
    pub zombies: usize,
    /// The parent process, when known (the text report sums short-lived children per parent).
    #[serde(skip)]
    pub parent: Option<u32>,
    /// The language runtime its stacks show frames of (`CPython 3.11.2`), or why they show
    /// only native frames (an interpreter version tracer cannot read).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub runtime: Option<String>,
}

#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct SiteReport {
    pub pid: u32,
    pub resource: Resource,
    pub kind: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub family: Option<&'static str>,
    pub count: u32,
    /// What `count` stands for when stacks were sampled under the budget (`--stack-budget`):
    /// each sampled stack weighs its sampling period. Absent when every allocation had its stack.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub estimated: Option<u64>,
    /// Allocations from this site over the whole trace (closed ones included).
    pub allocations: u64,
    pub growth_per_min: f64,
    pub example: Option<String>,
    /// Hex of the raw bytes, present only when `example` is not valid UTF-8.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub example_hex: Option<String>,
    /// The raw bytes, for the text output's escaping.
    #[serde(skip)]
    pub example_bytes: Option<Box<[u8]>>,
    pub oldest_age_ms: u64,
    /// Seconds until the process reaches its soft RLIMIT_NOFILE (fds) or the system its SysV
    /// table limit (SEMMNI, SHMMNI, MSGMNI) at this site's rate.
    pub time_to_limit_s: Option<f64>,
    /// Open before tracing started: no allocation stack.
    pub before_attach: bool,
    /// The limit whose failures stopped this suspect's growth (`EMFILE`, `ENFILE`, `ENOSPC`):
    /// it rose until its process's allocations failed, and holds what it took. `None` for
    /// sites still growing and for the rest.
    pub stopped_by_limit: Option<&'static str>,
    /// The count the process's teardown released at its exit: the site rose steadily for the
    /// run and only the exit emptied it (CPython closes every file object at exit), so it is a
    /// suspect with nothing open at the end. `None` for the rest.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub released_at_exit: Option<u64>,
    pub stack: Stack,
}

#[derive(Clone, Debug, Default)]
pub struct ReportOptions {
    /// Fds younger than this are left out.
    pub min_age_ns: u64,
    /// At most this many suspects and this many outstanding sites.
    pub top: Option<usize>,
    /// A lock held this long while others wait is a suspect.
    pub lock_hold_ns: u64,
    /// System-wide limits, read by the caller.
    pub system: Option<SystemLimits>,
    /// List only the N processes with the most open fds (a whole host has hundreds).
    pub top_processes: Option<usize>,
}

impl Report {
    /// Every stack the report names (sites, incidents, orphans, lock parties).
    pub fn stacks_mut(&mut self) -> Vec<&mut Stack> {
        let mut v: Vec<&mut Stack> = Vec::new();
        for s in self.suspects.iter_mut().chain(self.outstanding.iter_mut()) {
            v.push(&mut s.stack);
        }
        for i in &mut self.incidents {
            v.push(&mut i.stack);
            if let Some(c) = &mut i.previous_close {
                v.push(&mut c.stack);
            }
            if let Some(t) = &mut i.top_site {
                v.push(&mut t.stack);
            }
        }
        for g in &mut self.ipc.orphans {
            v.push(&mut g.stack);
        }
        for l in &mut self.locks {
            v.extend(l.held.iter_mut().map(|h| &mut h.stack));
            v.extend(l.max_waiter.iter_mut().map(|p| &mut p.stack));
            v.extend(l.max_wait_holder.iter_mut().map(|p| &mut p.stack));
            v.extend(l.longest_hold.iter_mut().map(|h| &mut h.stack));
        }
        for z in &mut self.zombies {
            v.extend(z.sigchld_handler.iter_mut().map(|h| &mut h.stack));
        }
        for s in &mut self.stalls {
            v.extend(s.longest.iter_mut().map(|w| &mut w.stack));
            v.extend(s.refused.iter_mut().map(|w| &mut w.stack));
        }
        v
    }

    /// The distinct stack ids to resolve.
    pub fn stack_ids(&mut self) -> Vec<StackId> {
        let mut ids: Vec<StackId> = self
            .stacks_mut()
            .into_iter()
            .map(|s| s.id)
            .filter(|id| *id != StackId::NONE)
            .collect();
        ids.sort_unstable();
        ids.dedup();
        ids
    }

    /// Fills in every stack's frames; orphan groups of different processes whose stacks turn
    /// out to be the same code are merged.
    pub fn resolve_stacks(&mut self, mut frames: impl FnMut(StackId) -> Vec<Frame>) {
        for s in self.stacks_mut() {
            if s.id != StackId::NONE && s.frames.is_empty() {
                s.frames = frames(s.id);
            }
        }
        merge_orphan_groups(&mut self.ipc.orphans);
    }
}
