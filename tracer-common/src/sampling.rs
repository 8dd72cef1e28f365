//! The per-CPU stack budget: on a busy host not every allocation can pay for a user stack, so
//! past a budget of stacks per second per CPU, allocations get one with probability `1/period`
//! and the record says so (`SyscallRecord::stack_weight`), the way heap profilers sample. Counts
//! stay exact: every allocation still sends its record, only the stack is skipped.
//!
//! The period of a window follows from the rate the CPU saw since the window before began, so it
//! adapts within 100 ms; within a window a burst past twice its allowance doubles the period at
//! once. Each decision is a coin toss with the probability in force at that moment and each
//! sampled stack carries that period as its weight, so weighted sums are unbiased estimates.

use crate::config::{STACK_BUDGET_WINDOW_NS, STACK_BUDGET_WINDOWS_PER_S, STACK_PERIOD_MAX};

/// Per-CPU state, kept in a per-CPU array by the kernel programs.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct StackSampler {
    pub window_start_ns: u64,
    /// Allocations that wanted a stack in this window.
    pub seen: u32,
    /// One stack in `period` allocations (1: all of them).
    pub period: u32,
}

impl StackSampler {
    /// Counts one allocation that wants a stack at `now_ns` under `budget_per_s` stacks per
    /// second (0: unlimited) and returns the period in force for it.
    #[inline(always)]
    pub fn admit(&mut self, now_ns: u64, budget_per_s: u32) -> u32 {
        if budget_per_s == 0 {
            return 1;
        }
        let per_window = budget_per_s / STACK_BUDGET_WINDOWS_PER_S;
        let per_window = if per_window == 0 { 1 } else { per_window };
        let elapsed = now_ns.wrapping_sub(self.window_start_ns);
        if elapsed >= STACK_BUDGET_WINDOW_NS {
            // What the last span's rate would have needed, per window: a quiet gap after a burst
            // lowers it, so an idle CPU starts again with every stack.
            let per_window_rate = (u64::from(self.seen) * STACK_BUDGET_WINDOW_NS) / elapsed;
            let period = per_window_rate.div_ceil(u64::from(per_window));
            self.period = period.clamp(1, u64::from(STACK_PERIOD_MAX)) as u32;
            self.window_start_ns = now_ns;
            self.seen = 0;
        }
        self.seen = self.seen.saturating_add(1);
        let allowance = per_window.saturating_mul(self.period);
        if self.seen > allowance.saturating_mul(2) && self.period < STACK_PERIOD_MAX {
            self.period *= 2;
        }
        if self.period == 0 {
            self.period = 1;
        }
        self.period
    }
}

/// The weight a record carries for a coin toss `random` at `period`: the period if sampled,
/// 0 if not (see [`crate::fd::SyscallRecord::stack_weight`]).
#[inline(always)]
pub fn weight(period: u32, random: u32) -> u32 {
    if period <= 1 || random.is_multiple_of(period) {
        period.max(1)
    } else {
        0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: u64 = 1_000_000;

    /// Stacks taken out of `n` allocations spread evenly over `span_ns`.
    fn run(s: &mut StackSampler, start: u64, n: u64, span_ns: u64, budget: u32) -> (u64, u64) {
        let (mut stacks, mut weighted) = (0u64, 0u64);
        // A deterministic stand-in for the kernel's random numbers (xorshift32).
        let mut x: u32 = 0x9e37_79b9;
        for i in 0..n {
            let period = s.admit(start + i * span_ns / n, budget);
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            let w = weight(period, x);
            stacks += u64::from(w > 0);
            weighted += u64::from(w);
        }
        (stacks, weighted)
    }

    #[test]
    fn without_a_budget_every_allocation_has_a_stack() {
        let mut s = StackSampler::default();
        assert_eq!(run(&mut s, 0, 10_000, 100 * MS, 0), (10_000, 10_000));
    }

    #[test]
    fn below_the_budget_every_allocation_has_a_stack() {
        let mut s = StackSampler::default();
        // 500 per second against a budget of 1000.
        assert_eq!(run(&mut s, 0, 5_000, 10_000 * MS, 1000), (5_000, 5_000));
    }

    #[test]
    fn above_the_budget_stacks_are_sampled_and_weights_estimate_the_count() {
        let mut s = StackSampler::default();
        // 100,000 per second for 10 s against 1000 per second.
        let n = 1_000_000;
        let (stacks, weighted) = run(&mut s, 0, n, 10_000 * MS, 1000);
        assert!(stacks <= 2 * 10_000 + 2_000, "{stacks} stacks for a budget of 10,000");
        assert!(stacks >= 10_000 / 2, "{stacks}");
        let error = (weighted as f64 - n as f64).abs() / n as f64;
        assert!(error < 0.05, "estimate {weighted} for {n}");
    }

    #[test]
    fn a_burst_raises_the_period_within_its_window_and_a_quiet_gap_lowers_it() {
        let mut s = StackSampler::default();
        // 20,000 allocations in 10 ms, the budget 100 per window.
        let (stacks, _) = run(&mut s, 0, 20_000, 10 * MS, 1000);
        assert!(stacks < 2_000, "{stacks}");
        assert!(s.period > 1);
        // Averaged over the five seconds since, the burst is still 4x the budget.
        let mut later = s;
        assert_eq!(later.admit(5_000 * MS, 1000), 4);
        // A minute of quiet: every stack again.
        assert_eq!(s.admit(60_000 * MS, 1000), 1);
    }

    #[test]
    fn weights_are_the_period_or_zero() {
        assert_eq!(weight(1, 7), 1);
        assert_eq!(weight(0, 7), 1);
        assert_eq!(weight(4, 8), 4);
        assert_eq!(weight(4, 9), 0);
    }
}
