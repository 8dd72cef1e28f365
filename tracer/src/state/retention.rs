//! Keeping memory bounded on a host traced for days: exited processes go after their grace
//! period (their totals stay in the counters), sites with nothing open for a whole window go,
//! the lock table keeps the files that matter, and the stacks nothing refers to any more can be
//! dropped by the stack store. Every eviction is counted.

use std::collections::HashSet;

use super::{StackId, State};

/// Without a window, a group's counters are kept this long after its last process went.
const GROUP_IDLE_NS: u64 = 3600 * 1_000_000_000;

/// Locked files kept with nothing held or waited for (their contention history).
const MAX_IDLE_LOCK_FILES: usize = 4096;

/// What was dropped to stay bounded, by kind (exported as metrics).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Evictions {
    /// Exited processes forgotten (grace period over, or too many exited ones kept).
    pub processes: u64,
    /// Idle lock-history entries dropped.
    pub lock_files: u64,
}

impl State {
    /// Periodic clean-up at `now_ns` (the agent's tick).
    pub fn expire(&mut self, now_ns: u64) {
        if let Some(grace) = self.exited_grace_ns {
            let due: Vec<u32> = self
                .processes
                .values()
                .filter(|p| p.exited_ns.is_some_and(|t| now_ns.saturating_sub(t) >= grace))
                .map(|p| p.tgid)
                .collect();
            for tgid in due {
                self.forget(tgid);
                self.evictions.processes += 1;
            }
        }
        let live: Vec<u32> = self
            .processes
            .values()
            .filter(|p| p.is_alive())
            .map(|p| p.tgid)
            .collect();
        for tgid in live {
            self.sites.evict_idle(tgid);
        }
        self.evictions.lock_files += self.locks.trim(MAX_IDLE_LOCK_FILES) as u64;
        // Stalls are judged over the window too (the agent): an object nothing stalled on for a
        // whole window goes. `watch` and `run` keep them (at most 1024, the stalest go first).
        if let Some(w) = self.sites.window_ns {
            let before = self.stalls.channels.len();
            self.stalls.channels.retain(|_, c| now_ns.saturating_sub(c.last_ns) < w);
            self.stalls.evicted += (before - self.stalls.channels.len()) as u64;
        }
        let present: HashSet<super::counters::GroupKey> = self.processes.values().map(|p| p.group()).collect();
        // A group with no process for a whole window has nothing left to say; without a
        // window (`watch`, `run`) groups stay an hour.
        let idle = self.sites.window_ns.unwrap_or(GROUP_IDLE_NS);
        self.groups.expire(now_ns, idle, |k| present.contains(k));
    }

    /// Every stack something in the state still refers to: the stack store may drop the rest.
    pub fn referenced_stacks(&self) -> HashSet<StackId, foldhash::fast::RandomState> {
        let mut out: HashSet<StackId, foldhash::fast::RandomState> = HashSet::default();
        out.extend(self.sites.iter().map(|(_, s)| s.key.stack));
        for i in &self.incidents.list {
            out.insert(i.stack);
            if let Some(c) = i.previous_close {
                out.insert(c.stack);
            }
            if let Some(t) = i.top_site {
                out.insert(t.stack);
            }
        }
        out.extend(self.ipc.objects.values().map(|o| o.stack));
        for p in self.processes.values() {
            out.extend(p.closed.values().map(|c| c.stack));
        }
        self.locks.stacks(&mut out);
        self.stalls.stacks(&mut out);
        for p in self.processes.values() {
            out.extend(p.sigchld_handler.map(|h| h.stack));
        }
        out.remove(&StackId::NONE);
        out
    }
}
