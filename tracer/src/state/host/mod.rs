//! The agent's always-on view of the host: every process's open-fd count (from the fd-count
//! iterator, each tick), and which processes are **escalated**: traced with records and stacks
//! because their count keeps rising or nears their limit. Plain Rust: the counts are passed in,
//! and [`HostCounts::plan`] says whom to escalate and whom to release; the caller does it.
//!
//! Rules (see [`rising`], [`HostCounts::plan`]):
//! - escalate a process whose count rose at every step of the last [`RISE_STEPS`] ticks, by
//!   [`MIN_RISE`] or more in all, or that holds [`NEAR_LIMIT`] of its soft limit;
//! - at most `budget.max_processes` at once (the most urgent first: nearest its limit); the
//!   others are refused, counted once per episode, and tried again at the next tick;
//! - release one whose growing site has been named for [`EVIDENCE_NS`] (its evidence stays in
//!   the state), one that stopped rising for [`QUIET_NS`], and the noisiest when the escalated
//!   processes together cost more records per second than the budget. A released process is
//!   not escalated again for a cool-down, then again if it still rises.

mod counted;
mod reasons;

pub use counted::{COARSE, Counted, MIN_FLOOR_RISE, MIN_RISE, MIN_SLOW_RISE, RECENT, RISE_STEPS, floor_rising, rising};
pub use reasons::{Escalation, EscalationReason, Release, ReleaseReason};

use std::collections::HashMap;

use tracer_common::fd_counts::ProcessFdCount;

/// Escalate at this share of the soft limit, rising or not (EMFILE failures get their stacks).
pub const NEAR_LIMIT: f64 = 0.8;
/// A named leak is released after its evidence was kept this long.
pub const EVIDENCE_NS: u64 = 60_000_000_000;
/// A process escalated by a rise that stopped is released after this long without one.
pub const QUIET_NS: u64 = 30_000_000_000;
/// Not escalated again this long after a release for evidence or budget...
pub const COOL_DOWN_NS: u64 = 300_000_000_000;
/// ...or this long after a quiet release.
pub const QUIET_COOL_DOWN_NS: u64 = 60_000_000_000;
/// Coarse sampling unless the caller says (a 15-minute window over 64 samples).
pub const COARSE_GAP_NS: u64 = 14_000_000_000;
/// A slow riser is released after this many coarse samples without a rise.
pub const SLOW_QUIET_SAMPLES: u64 = 10;
/// A process the counts have not shown for this many reads in a row is gone.
const MISSES: u8 = 3;
/// Releases remembered for the report.
const HISTORY: usize = 32;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Budget {
    /// Processes escalated at once (inherited children included).
    pub max_processes: usize,
    /// Records per second the escalated processes may cost together.
    pub max_records_per_s: u64,
}

impl Default for Budget {
    fn default() -> Self {
        Budget {
            max_processes: 8,
            max_records_per_s: 20_000,
        }
    }
}

/// Every decision, counted.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct EscalationCounters {
    pub escalations: [u64; 5],
    pub releases: [u64; 4],
    /// Escalations refused because `max_processes` were escalated already (once per rise).
    pub refused: u64,
    /// Reads of the counts, and reads that failed.
    pub reads: u64,
    pub read_errors: u64,
}

/// `ask` about a process the counts have not seen (no such process, or a kernel thread).
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("PID {0} is not a process the agent counts (no such process, or it has no fd table)")]
pub struct NotCounted(pub u32);

/// What the caller is to do now.
#[derive(Debug, Default, PartialEq)]
pub struct Plan {
    pub escalate: Vec<(u32, EscalationReason)>,
    pub release: Vec<(u32, ReleaseReason)>,
}

#[derive(Debug, Default)]
pub struct HostCounts {
    processes: HashMap<u32, Counted, foldhash::fast::RandomState>,
    pub budget: Budget,
    pub counters: EscalationCounters,
    /// The latest releases, oldest first.
    pub released: std::collections::VecDeque<Release>,
    /// When the counts were last read, and how long the read took.
    pub read_ns: u64,
    pub read_cost_ns: u64,
    /// Processes the last read showed.
    pub last_read: usize,
    /// Time between a process's coarse samples (the agent's window/64); 0: [`COARSE_GAP_NS`].
    pub coarse_gap_ns: u64,
    plan: Plan,
}

impl HostCounts {
    pub fn with_budget(budget: Budget) -> Self {
        HostCounts {
            budget,
            coarse_gap_ns: COARSE_GAP_NS,
            ..Default::default()
        }
    }

    fn gap(&self) -> u64 {
        if self.coarse_gap_ns == 0 {
            COARSE_GAP_NS
        } else {
            self.coarse_gap_ns
        }
    }

    pub fn process(&self, tgid: u32) -> Option<&Counted> {
        self.processes.get(&tgid)
    }

    pub fn process_mut(&mut self, tgid: u32) -> Option<&mut Counted> {
        self.processes.get_mut(&tgid)
    }

    pub fn processes(&self) -> impl Iterator<Item = &Counted> {
        self.processes.values()
    }

    pub fn escalated(&self) -> impl Iterator<Item = (&Counted, &Escalation)> {
        self.processes
            .values()
            .filter_map(|c| c.escalation.as_ref().map(|e| (c, e)))
    }

    pub fn escalated_count(&self) -> usize {
        self.escalated().count()
    }

    /// Escalations the process budget counts (asked ones are not).
    fn budgeted(&self) -> usize {
        self.escalated()
            .filter(|(_, e)| e.reason != EscalationReason::Asked)
            .count()
    }

    /// Someone asked about `tgid`: escalate it now, whatever the budget. `Ok(false)` when it is
    /// escalated already; an error when the counts have not seen it.
    pub fn ask(&mut self, tgid: u32, now_ns: u64) -> Result<bool, NotCounted> {
        let c = self.processes.get_mut(&tgid).ok_or(NotCounted(tgid))?;
        if c.escalation.is_some() {
            return Ok(false);
        }
        c.escalation = Some(Escalation {
            since_ns: now_ns,
            reason: EscalationReason::Asked,
            open_at_start: c.open,
            named_ns: None,
            records: 0,
            records_per_s: 0.0,
        });
        c.cool_down_until_ns = 0;
        self.counters.escalations[EscalationReason::Asked.index()] += 1;
        Ok(true)
    }

    /// Takes a read of the counts at `now_ns` (every process the iterator saw; `except`: the
    /// agent itself).
    pub fn update(&mut self, now_ns: u64, counts: &[ProcessFdCount], except: u32) {
        self.counters.reads += 1;
        self.read_ns = now_ns;
        self.last_read = counts.len();
        for c in self.processes.values_mut() {
            c.missed = c.missed.saturating_add(1);
        }
        let gap = self.gap();
        for r in counts.iter().filter(|r| r.tgid != except) {
            let c = self.processes.entry(r.tgid).or_insert_with(|| Counted {
                tgid: r.tgid,
                recent: Vec::with_capacity(RECENT),
                ..Counted::default()
            });
            if c.comm != r.comm && !c.comm.iter().all(|b| *b == 0) {
                // A new program (exec) or a reused pid: its history says nothing now.
                c.forget_history();
                c.container = None;
            }
            c.comm = r.comm;
            c.missed = 0;
            c.exact = r.is_exact();
            c.nofile_soft = (r.nofile_soft != u64::MAX).then_some(r.nofile_soft);
            let rises = c.take(now_ns, r.open_fds, gap);
            if rises {
                c.last_rise_ns = now_ns;
            }
            let near = c.limit_ratio().is_some_and(|r| r >= NEAR_LIMIT);
            if !near && !rises {
                // The episode is over: a later refusal counts again.
                c.refused = false;
            }
        }
    }

    /// The processes gone from the counts: escalated ones are released (exited), the rest
    /// forgotten. Returns nothing; the releases show in the next plan.
    fn sweep(&mut self, now_ns: u64) {
        let gone: Vec<u32> = self
            .processes
            .values()
            .filter(|c| c.missed >= MISSES)
            .map(|c| c.tgid)
            .collect();
        for tgid in gone {
            if let Some(c) = self.processes.remove(&tgid)
                && let Some(e) = c.escalation
            {
                self.note_release(&c, e, ReleaseReason::Exited, now_ns);
                self.plan.release.push((tgid, ReleaseReason::Exited));
            }
        }
    }

    fn note_release(&mut self, c: &Counted, e: Escalation, reason: ReleaseReason, now_ns: u64) {
        self.counters.releases[reason.index()] += 1;
        if self.released.len() == HISTORY {
            self.released.pop_front();
        }
        self.released.push_back(Release {
            tgid: c.tgid,
            comm: c.comm,
            reason,
            escalated: e,
            at_ns: now_ns,
        });
    }

    /// A child the kernel follows because an escalated process forked it.
    pub fn inherit(&mut self, child: u32, parent: u32, now_ns: u64) {
        let Some(c) = self.processes.get_mut(&child) else {
            return;
        };
        if c.escalation.is_none() {
            c.escalation = Some(Escalation {
                since_ns: now_ns,
                reason: EscalationReason::Inherited { parent },
                open_at_start: c.open,
                named_ns: None,
                records: 0,
                records_per_s: 0.0,
            });
            self.counters.escalations[2] += 1;
        }
    }

    /// Updates an escalated process's record count (its traced syscalls so far).
    pub fn note_records(&mut self, tgid: u32, records: u64, now_ns: u64, tick_ns: u64) {
        if let Some(e) = self.processes.get_mut(&tgid).and_then(|c| c.escalation.as_mut()) {
            let secs = (tick_ns.max(1) as f64) / 1e9;
            if e.records > 0 || now_ns > e.since_ns {
                e.records_per_s = records.saturating_sub(e.records) as f64 / secs;
            }
            e.records = records;
        }
    }

    /// Whom to escalate and release now. `traced`: processes traced for another reason (given
    /// on the command line, selected): never escalated here.
    pub fn plan(&mut self, now_ns: u64, traced: impl Fn(u32) -> bool) -> &Plan {
        self.plan.escalate.clear();
        self.plan.release.clear();
        self.sweep(now_ns);
        self.plan_releases(now_ns);
        let mut room = self.budget.max_processes.saturating_sub(self.budgeted());
        // The most urgent first: the nearest its limit.
        let mut candidates: Vec<(f64, u32, EscalationReason)> = self
            .processes
            .values()
            .filter(|c| c.escalation.is_none() && now_ns >= c.cool_down_until_ns && !traced(c.tgid))
            .filter_map(|c| {
                let near = c.limit_ratio().is_some_and(|r| r >= NEAR_LIMIT);
                let reason = if near {
                    EscalationReason::NearLimit
                } else if rising(&c.recent) {
                    EscalationReason::Rising
                } else if c.rising_slowly() {
                    EscalationReason::SlowRise
                } else {
                    return None;
                };
                let urgency = c.time_to_limit_s().unwrap_or(f64::MAX);
                Some((if near { -1.0 } else { urgency }, c.tgid, reason))
            })
            .collect();
        candidates.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
        for (_, tgid, reason) in candidates {
            let Some(c) = self.processes.get_mut(&tgid) else {
                continue;
            };
            if room == 0 {
                if !c.refused {
                    c.refused = true;
                    self.counters.refused += 1;
                }
                continue;
            }
            room -= 1;
            c.escalation = Some(Escalation {
                since_ns: now_ns,
                reason,
                open_at_start: c.open,
                named_ns: None,
                records: 0,
                records_per_s: 0.0,
            });
            c.refused = false;
            self.counters.escalations[reason.index()] += 1;
            self.plan.escalate.push((tgid, reason));
        }
        &self.plan
    }

    fn plan_releases(&mut self, now_ns: u64) {
        let mut out: Vec<(u32, ReleaseReason)> = Vec::new();
        let mut total_rate = 0.0;
        let mut noisiest: Option<(f64, u32)> = None;
        for c in self.processes.values() {
            let Some(e) = &c.escalation else { continue };
            total_rate += e.records_per_s;
            if noisiest.is_none_or(|(r, _)| e.records_per_s > r) {
                noisiest = Some((e.records_per_s, c.tgid));
            }
            let near = c.limit_ratio().is_some_and(|r| r >= NEAR_LIMIT);
            // A slow riser rises once in a while: it is quiet only after several coarse samples.
            let quiet = if e.reason == EscalationReason::SlowRise {
                QUIET_NS.max(SLOW_QUIET_SAMPLES * self.gap())
            } else {
                QUIET_NS
            };
            if e.named_ns.is_some_and(|t| now_ns.saturating_sub(t) >= EVIDENCE_NS) {
                out.push((c.tgid, ReleaseReason::Named));
            } else if e.named_ns.is_none()
                && !near
                && now_ns.saturating_sub(e.since_ns) >= quiet
                && now_ns.saturating_sub(c.last_rise_ns) >= quiet
            {
                out.push((c.tgid, ReleaseReason::Quiet));
            }
        }
        if total_rate > self.budget.max_records_per_s as f64
            && let Some((_, tgid)) = noisiest
            && !out.iter().any(|(t, _)| *t == tgid)
        {
            out.push((tgid, ReleaseReason::Budget));
        }
        for (tgid, reason) in out {
            self.release(tgid, reason, now_ns);
        }
    }

    /// Releases an escalated process (also on the caller's behalf, e.g. when following it failed).
    pub fn release(&mut self, tgid: u32, reason: ReleaseReason, now_ns: u64) {
        let Some(c) = self.processes.get_mut(&tgid) else {
            return;
        };
        let Some(e) = c.escalation.take() else { return };
        c.cool_down_until_ns = now_ns
            + match reason {
                ReleaseReason::Quiet => QUIET_COOL_DOWN_NS,
                _ => COOL_DOWN_NS,
            };
        let snapshot = c.clone();
        self.note_release(&snapshot, e, reason, now_ns);
        self.plan.release.push((tgid, reason));
    }
}

#[cfg(test)]
mod tests;
