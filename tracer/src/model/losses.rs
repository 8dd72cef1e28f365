//! What was lost between the kernel and the report, each cause under its own name: the same
//! names in the text report, `--stats`, the JSON report and the metrics' `reason` label.

use serde::Serialize;
use tracer_common::config::{LOSS_COUNTERS, LossCounter};

/// Loss counters, kernel and agent. All are totals since tracing started.
#[derive(Clone, Copy, Debug, Default, Serialize, PartialEq, Eq)]
pub struct Losses {
    /// Records the kernel could not reserve in the ring buffer: the agent fell behind.
    pub ring_buffer_full: u64,
    /// Children forked while the traced-process map was full: not followed.
    pub traced_map_full: u64,
    /// Allocations recorded without their stack: the stack map was full (or the bucket taken by
    /// another stack still in use), the user stack was unreadable, or (`--stack fp`) the stack
    /// was freed from the map before the agent read it. The allocation itself is counted.
    pub stack_not_captured: u64,
    /// Records the agent received but could not decode.
    pub undecodable: u64,
    /// Updates of the kernel's process maps that failed (a process or a zombie's reap not
    /// followed, a process not untraced); each is also logged.
    pub map_update_failed: u64,
}

impl Losses {
    /// From the kernel's counters (indexed by [`LossCounter`]) and the agent's own.
    pub fn new(kernel: [u64; LOSS_COUNTERS as usize], agent: AgentLosses) -> Self {
        let k = |c: LossCounter| kernel[c as usize];
        Losses {
            ring_buffer_full: k(LossCounter::RingBufFull),
            traced_map_full: k(LossCounter::TracedMapFull),
            stack_not_captured: k(LossCounter::StackLost) + agent.stacks_gone,
            undecodable: agent.undecodable,
            map_update_failed: agent.map_update_failed,
        }
    }

    /// Records lost whole (the report's `lost_events`): ring-buffer losses and undecodable ones.
    pub fn records(&self) -> u64 {
        self.ring_buffer_full + self.undecodable
    }

    /// Every counter with its name, in a fixed order.
    pub fn named(&self) -> [(&'static str, u64); 5] {
        [
            (LossCounter::RingBufFull.name(), self.ring_buffer_full),
            (LossCounter::TracedMapFull.name(), self.traced_map_full),
            (LossCounter::StackLost.name(), self.stack_not_captured),
            ("undecodable", self.undecodable),
            ("map_update_failed", self.map_update_failed),
        ]
    }

    pub fn any(&self) -> bool {
        self.named().iter().any(|(_, n)| *n > 0)
    }

    /// `name=value` for every counter, space-separated (`--stats`, the text report's warning).
    pub fn pairs(&self) -> String {
        let pairs: Vec<String> = self.named().iter().map(|(k, v)| format!("{k}={v}")).collect();
        pairs.join(" ")
    }
}

/// What the agent itself lost (beside the kernel's counters).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct AgentLosses {
    pub undecodable: u64,
    /// `--stack fp`: records whose stack id was no longer in the kernel's map when read.
    pub stacks_gone: u64,
    pub map_update_failed: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kernel_counter_lands_under_its_own_name() {
        let l = Losses::new(
            [1, 2, 4],
            AgentLosses {
                undecodable: 5,
                stacks_gone: 10,
                map_update_failed: 6,
            },
        );
        let v = serde_json::to_value(l).unwrap_or_default();
        let named: Vec<(String, u64)> = l.named().iter().map(|(k, n)| ((*k).to_owned(), *n)).collect();
        assert_eq!(
            named,
            [
                ("ring_buffer_full", 1),
                ("traced_map_full", 2),
                ("stack_not_captured", 14),
                ("undecodable", 5),
                ("map_update_failed", 6),
            ]
            .map(|(k, n)| (k.to_owned(), n))
        );
        for (k, n) in &named {
            assert_eq!(v[k.as_str()], *n, "JSON key {k}");
        }
        assert_eq!(v.as_object().map(|o| o.len()), Some(named.len()));
        assert_eq!(l.records(), 6);
        assert!(l.any() && !Losses::default().any());
        assert_eq!(
            l.pairs(),
            "ring_buffer_full=1 traced_map_full=2 stack_not_captured=14 undecodable=5 map_update_failed=6"
        );
    }
}
