//! Live children per parent, sampled over time: a parent whose children kept rising until fork
//! failed with EAGAIN (RLIMIT_NPROC, pid_max) leaks processes the way a site leaks fds, and the
//! limit, not the code, stopped it.

use std::collections::HashMap;

use super::State;

impl State {
    /// Traced children of `tgid` alive now.
    pub fn live_children(&self, tgid: u32) -> u32 {
        self.processes
            .values()
            .filter(|c| c.is_alive() && c.parent == Some(tgid))
            .count() as u32
    }

    /// Samples every parent's live children (on the tick): only parents that have some, or had.
    pub(super) fn sample_children(&mut self, now_ns: u64) {
        let mut counts: HashMap<u32, u32, foldhash::fast::RandomState> = HashMap::default();
        for c in self.processes.values().filter(|c| c.is_alive()) {
            if let Some(parent) = c.parent {
                *counts.entry(parent).or_default() += 1;
            }
        }
        let window = self.sites.window_ns;
        for p in self.processes.values_mut().filter(|p| p.is_alive()) {
            let n = counts.get(&p.tgid).copied().unwrap_or(0);
            if n > 0 || !p.children.is_empty() {
                p.children.sample(now_ns, n, window);
            }
        }
    }

    /// Samples one parent's live children now (at a fork failure).
    pub(super) fn sample_children_of(&mut self, tgid: u32, now_ns: u64) {
        let n = self.live_children(tgid);
        let window = self.sites.window_ns;
        if let Some(p) = self.processes.get_mut(&tgid) {
            p.children.sample(now_ns, n, window);
        }
    }
}
