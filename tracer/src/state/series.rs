//! A count sampled over time (a site's open fds, a parent's zombies), kept small: 8 bytes a
//! sample. Two ways to bound it:
//! - the whole trace, thinned (every other sample dropped when full), for `watch` and `run`;
//! - a sliding window (`--window`), for the agent: a week-old agent still sees a leak that
//!   started an hour ago, because only the last window is judged.

use std::collections::VecDeque;

/// Samples kept over the whole trace before thinning.
const MAX_THINNED: usize = 256;
/// Samples kept over a sliding window (one per window/SAMPLES_PER_WINDOW at most).
pub const SAMPLES_PER_WINDOW: u64 = 64;

/// (time since `base_ns` in units of 2^`unit_shift` ms, count), oldest first.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Series {
    base_ns: u64,
    unit_shift: u8,
    points: VecDeque<(u32, u32)>,
}

const MS: u64 = 1_000_000;

impl Series {
    pub fn is_empty(&self) -> bool {
        self.points.is_empty()
    }

    pub fn len(&self) -> usize {
        self.points.len()
    }

    /// The last sample (ns, count).
    pub fn last(&self) -> Option<(u64, u32)> {
        self.points.back().map(|p| self.expand(*p))
    }

    fn unit_ns(&self) -> u64 {
        MS << self.unit_shift
    }

    fn expand(&self, (t, v): (u32, u32)) -> (u64, u32) {
        (self.base_ns + u64::from(t) * self.unit_ns(), v)
    }

    /// Every sample as (CLOCK_MONOTONIC ns, count), oldest first.
    pub fn points(&self) -> Vec<(u64, u32)> {
        self.points.iter().map(|p| self.expand(*p)).collect()
    }

    /// Forgets every sample (a window with nothing in it).
    pub fn clear(&mut self) {
        self.points = VecDeque::new();
    }

    /// Records `value` at `now_ns`; time never goes back, and samples less than a millisecond
    /// apart are one. With a window, samples closer than window/64 to the previous one are
    /// skipped and samples older than the window dropped.
    pub fn sample(&mut self, now_ns: u64, value: u32, window_ns: Option<u64>) {
        if self.points.is_empty() {
            self.base_ns = now_ns;
        }
        if let Some((last, _)) = self.last()
            && (now_ns < last + self.unit_ns()
                || window_ns.is_some_and(|w| now_ns - last < (w / SAMPLES_PER_WINDOW).max(MS)))
        {
            return;
        }
        match window_ns {
            Some(w) => {
                let start = now_ns.saturating_sub(w);
                while self.points.front().is_some_and(|p| self.expand(*p).0 < start) {
                    self.points.pop_front();
                }
            }
            None if self.points.len() >= MAX_THINNED => {
                // Keep the first and last; thin the rest evenly.
                let mut i = 0usize;
                self.points.retain(|_| {
                    i += 1;
                    i % 2 == 1
                });
            }
            None => {}
        }
        if self.points.is_empty() {
            self.base_ns = now_ns;
            self.unit_shift = 0;
        }
        self.rebase();
        let mut offset = (now_ns - self.base_ns) / self.unit_ns();
        // A trace longer than 49 days at this unit: coarser units, the same span.
        while offset > u64::from(u32::MAX) && self.unit_shift < 32 {
            self.unit_shift += 1;
            for p in &mut self.points {
                p.0 /= 2;
            }
            offset = (now_ns - self.base_ns) / self.unit_ns();
        }
        self.points.push_back((offset.min(u64::from(u32::MAX)) as u32, value));
    }

    /// Moves the base to the first sample (a window slides: offsets stay small).
    fn rebase(&mut self) {
        let Some(&(first, _)) = self.points.front() else {
            return;
        };
        if first == 0 {
            return;
        }
        self.base_ns += u64::from(first) * self.unit_ns();
        for p in &mut self.points {
            p.0 -= first;
        }
    }

    /// The window holds nothing but zeros: nothing to judge, nothing worth keeping.
    pub fn all_zero(&self) -> bool {
        self.points.iter().all(|p| p.1 == 0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: u64 = 1_000_000_000;

    #[test]
    fn thinned_series_stay_bounded_and_span_the_run() {
        let mut s = Series::default();
        for i in 0..10_000u64 {
            s.sample(S + i * MS, i as u32, None);
        }
        assert!(s.len() <= MAX_THINNED);
        let p = s.points();
        assert_eq!(p.first().map(|x| x.0), Some(S));
        assert_eq!(p.last().map(|x| x.0), Some(S + 9_999 * MS));
        s.sample(S, 1, None);
        assert_eq!(s.last().map(|x| x.0), Some(S + 9_999 * MS), "time never goes back");
    }

    #[test]
    fn a_window_keeps_only_its_own_span_at_its_resolution() {
        let mut s = Series::default();
        let w = 640 * S;
        // One sample a second for an hour: the window keeps ~64 of the last 640 s.
        for i in 0..3600u64 {
            s.sample(S + i * S, i as u32, Some(w));
        }
        let p = s.points();
        assert!(p.len() <= SAMPLES_PER_WINDOW as usize + 1, "{}", p.len());
        let (first, last) = (p[0].0, p[p.len() - 1].0);
        assert!(last - first <= w, "{}", (last - first) / S);
        assert!(last - first >= w - 20 * S);
        assert_eq!(p[p.len() - 1].1, 3590, "the newest sample at the window's resolution");
    }

    #[test]
    fn long_traces_rebase_without_losing_time() {
        let mut s = Series::default();
        let day = 86_400 * S;
        for d in 0..60u64 {
            s.sample(S + d * day, d as u32, None);
        }
        let p = s.points();
        assert_eq!(p.len(), 60);
        assert_eq!(p[0], (S, 0));
        // Units of 2 ms past 49 days: within a few ms.
        assert!(p[59].0.abs_diff(S + 59 * day) <= 2 * MS, "{}", p[59].0);
        assert_eq!(p[59].1, 59);
    }
}
