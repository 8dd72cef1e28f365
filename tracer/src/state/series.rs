//! A count sampled over time (a site's open fds, a parent's zombies), kept small: 8 bytes a
//! sample. Two ways to bound it:
//! - the whole trace, thinned (every other sample dropped when full), for `watch` and `run`;
//! - a sliding window (`--window`), for the agent: a week-old agent still sees a leak that
//!   started an hour ago, because only the last window is judged. Recent samples keep the
//!   tick's resolution (a leak is judged within seconds of its start); older ones are thinned
//!   to one per window/64 (a slow leak is judged over the whole window).

use std::collections::VecDeque;

/// Samples kept over the whole trace before thinning.
const MAX_THINNED: usize = 256;
/// Samples kept over a sliding window, past its recent part (one per window/SAMPLES_PER_WINDOW).
pub const SAMPLES_PER_WINDOW: u64 = 64;
/// The recent part of a window, sampled at up to [`FINE_GAP_NS`] (a quarter of the window at most).
pub const RECENT_NS: u64 = 60_000_000_000;
pub const FINE_GAP_NS: u64 = 250_000_000;

/// (time since `base_ns` in units of 2^`unit_shift` ms, count), oldest first.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Series {
    base_ns: u64,
    unit_shift: u8,
    points: VecDeque<(u32, u32)>,
    /// Leading points already past the recent part and thinned (windowed series only).
    old: usize,
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
        self.old = 0;
    }

    /// Records `value` at `now_ns`; time never goes back, and samples less than a millisecond
    /// apart are one. With a window, samples closer than window/64 to the previous one are
    /// skipped and samples older than the window dropped.
    pub fn sample(&mut self, now_ns: u64, value: u32, window_ns: Option<u64>) {
        if self.points.is_empty() {
            self.base_ns = now_ns;
        }
        if let Some((last, _)) = self.last()
            && (now_ns < last + self.unit_ns() || window_ns.is_some_and(|w| now_ns - last < fine_gap(w)))
        {
            return;
        }
        match window_ns {
            Some(w) => {
                let start = now_ns.saturating_sub(w);
                while self.points.front().is_some_and(|p| self.expand(*p).0 < start) {
                    self.points.pop_front();
                    self.old = self.old.saturating_sub(1);
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
        if let Some(w) = window_ns {
            self.thin_old(now_ns, w);
        }
    }

    /// Points leaving the recent part are kept one per window/64: each is looked at once, as
    /// it crosses the boundary.
    fn thin_old(&mut self, now_ns: u64, window_ns: u64) {
        let boundary = now_ns.saturating_sub(RECENT_NS.min(window_ns / 4));
        let coarse = (window_ns / SAMPLES_PER_WINDOW).max(MS);
        while self.old < self.points.len() {
            let (t, _) = self.expand(self.points[self.old]);
            if t >= boundary {
                break;
            }
            let keep = self.old == 0 || t - self.expand(self.points[self.old - 1]).0 >= coarse;
            if keep {
                self.old += 1;
            } else {
                self.points.remove(self.old);
            }
        }
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

/// Least-squares slope of (ns, count) samples, per ns (0 with fewer than two or no time between).
pub fn slope_per_ns(samples: &[(u64, u32)]) -> f64 {
    let n = samples.len() as f64;
    if samples.len() < 2 {
        return 0.0;
    }
    let t0 = samples[0].0;
    let (mut sx, mut sy, mut sxx, mut sxy) = (0.0, 0.0, 0.0, 0.0);
    for (t, c) in samples {
        let x = (t - t0) as f64;
        let y = f64::from(*c);
        sx += x;
        sy += y;
        sxx += x * x;
        sxy += x * y;
    }
    let den = n * sxx - sx * sx;
    if den <= 0.0 { 0.0 } else { (n * sxy - sx * sy) / den }
}

/// The finest spacing of a windowed series' recent samples.
fn fine_gap(window_ns: u64) -> u64 {
    (window_ns / SAMPLES_PER_WINDOW).clamp(MS, FINE_GAP_NS)
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
    fn a_window_keeps_recent_samples_fine_and_old_ones_coarse() {
        let mut s = Series::default();
        let w = 640 * S;
        // One sample a second for an hour: the last 60 s at every second, the rest of the
        // window at one per 10 s.
        for i in 0..3600u64 {
            s.sample(S + i * S, i as u32, Some(w));
        }
        let p = s.points();
        let recent = (RECENT_NS / S) as usize;
        assert!(p.len() <= SAMPLES_PER_WINDOW as usize + recent + 2, "{}", p.len());
        let (first, last) = (p[0].0, p[p.len() - 1].0);
        assert!(last - first <= w, "{}", (last - first) / S);
        assert!(last - first >= w - 20 * S);
        assert_eq!(p[p.len() - 1].1, 3599, "the newest sample");
        let fine = p.windows(2).filter(|x| x[1].0 - x[0].0 == S).count();
        assert!(fine >= recent - 2, "recent samples a second apart: {fine}");
        let old: Vec<_> = p.iter().filter(|x| x.0 < last - RECENT_NS - S).collect();
        assert!(
            old.windows(2).all(|x| x[1].0 - x[0].0 >= w / SAMPLES_PER_WINDOW),
            "old ones thinned"
        );
        assert!(old.len() >= 50, "{}", old.len());
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
