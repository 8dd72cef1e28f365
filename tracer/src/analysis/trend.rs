//! Is a site's open count growing, or flat? Measured from the samples of its outstanding count,
//! not from one count: a pool that filled and stopped, or a churning handler with a few fds in
//! flight, must not look like a leak.

use crate::state::series::slope_per_ns;

/// What the samples say.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Trend {
    /// Least-squares slope over the whole observation, per minute.
    pub growth_per_min: f64,
    /// Still growing in the second half of the observation, steadily.
    pub growing: bool,
}

/// Minimum observation before anything is called growing.
pub const MIN_SPAN_NS: u64 = 500_000_000;
/// Minimum rise over the second half of the observation.
pub const MIN_RISE: u32 = 3;

/// Classifies a series of (time ns, open count) samples, oldest first.
pub fn classify(samples: &[(u64, u32)]) -> Trend {
    let growth_per_min = slope_per_ns(samples) * 60e9;
    let (Some(first), Some(last)) = (samples.first(), samples.last()) else {
        return Trend {
            growth_per_min: 0.0,
            growing: false,
        };
    };
    let span = last.0.saturating_sub(first.0);
    if span < MIN_SPAN_NS || samples.len() < 4 {
        return Trend {
            growth_per_min,
            growing: false,
        };
    }
    let mid_t = first.0 + span / 2;
    let split = samples.partition_point(|s| s.0 < mid_t);
    let second = &samples[split.saturating_sub(1)..];
    let Some(mid) = second.first() else {
        return Trend {
            growth_per_min,
            growing: false,
        };
    };
    let rise = last.1.saturating_sub(mid.1);
    let needed = MIN_RISE.max(mid.1 / 10);
    // Steady: few steps down among the steps that changed anything.
    let (mut up, mut down) = (0u32, 0u32);
    for w in second.windows(2) {
        match w[1].1.cmp(&w[0].1) {
            std::cmp::Ordering::Greater => up += 1,
            std::cmp::Ordering::Less => down += 1,
            std::cmp::Ordering::Equal => {}
        }
    }
    let steady = down * 4 <= up + down;
    let growing = second.len() >= 3 && rise >= needed && slope_per_ns(second) > 0.0 && steady;
    Trend {
        growth_per_min,
        growing,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: u64 = 1_000_000;

    fn series(f: impl Fn(u64) -> u32, n: u64, step_ms: u64) -> Vec<(u64, u32)> {
        (0..n).map(|i| (1_000 * MS + i * step_ms * MS, f(i))).collect()
    }

    #[test]
    fn steady_leak_is_growing_with_its_rate() {
        // One fd per 10 ms, sampled every 100 ms for 2 s: 6000/min.
        let t = classify(&series(|i| (i * 10) as u32, 20, 100));
        assert!(t.growing);
        assert!((t.growth_per_min - 6000.0).abs() < 1.0, "{}", t.growth_per_min);
    }

    #[test]
    fn pool_that_filled_and_stopped_is_flat() {
        let t = classify(&series(|i| if i < 2 { 8 * i as u32 } else { 16 }, 30, 100));
        assert!(!t.growing);
    }

    #[test]
    fn long_lived_single_fd_is_flat() {
        assert!(!classify(&series(|_| 1, 50, 100)).growing);
    }

    #[test]
    fn churn_with_fds_in_flight_is_not_growing() {
        let noisy = [0u32, 5, 2, 4, 1, 5, 3, 0, 4, 2, 5, 1, 3, 5, 2, 4, 0, 5];
        let t = classify(&series(|i| noisy[i as usize], noisy.len() as u64, 100));
        assert!(!t.growing);
    }

    #[test]
    fn too_short_or_tiny_is_not_judged() {
        assert!(
            !classify(&series(|i| i as u32 * 10, 4, 10)).growing,
            "40 ms is too short"
        );
        assert!(!classify(&[]).growing);
        assert!(
            !classify(&series(|i| (i >= 10) as u32, 20, 100)).growing,
            "one extra fd is not a trend"
        );
    }

    #[test]
    fn a_leak_that_started_late_is_growing() {
        let t = classify(&series(|i| if i < 10 { 2 } else { 2 + (i as u32 - 10) * 3 }, 20, 100));
        assert!(t.growing);
    }

    #[test]
    fn a_leak_that_stopped_early_is_not_growing_any_more() {
        assert!(!classify(&series(|i| (i.min(5) * 10) as u32, 30, 100)).growing);
    }
}
