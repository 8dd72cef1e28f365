//! What tracer's `--stats` line says, and the medians (and spreads) every workload reports.

/// What tracer's `--stats` printed.
#[derive(Clone, Debug, Default)]
pub(super) struct Stats {
    pub(super) records: u64,
    pub(super) lost: u64,
    pub(super) cpu_ms: f64,
    pub(super) max_rss_kib: u64,
    /// Anonymous memory at exit: the agent's own state, without ring-buffer pages.
    pub(super) rss_anon_kib: u64,
}

pub(super) fn parse_stats(stderr: &str) -> Option<Stats> {
    let line = stderr.lines().find(|l| l.starts_with("tracer-stats:"))?;
    let field = |k: &str| {
        line.split_whitespace()
            .find_map(|w| w.strip_prefix(k).and_then(|v| v.strip_prefix('=')).map(str::to_owned))
    };
    Some(Stats {
        records: field("records")?.parse().ok()?,
        lost: field("lost")?.parse().ok()?,
        cpu_ms: field("cpu_ms")?.parse().ok()?,
        max_rss_kib: field("max_rss_kib")?.parse().ok()?,
        rss_anon_kib: field("rss_anon_kib").and_then(|v| v.parse().ok()).unwrap_or(0),
    })
}

pub(super) fn median(v: &mut [f64]) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(f64::total_cmp);
    let m = v.len() / 2;
    if v.len() % 2 == 1 {
        v[m]
    } else {
        (v[m - 1] + v[m]) / 2.0
    }
}

/// Where the runs of one configuration fell: the median, the extremes and the quartiles.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(super) struct Spread {
    pub(super) median: f64,
    pub(super) min: f64,
    pub(super) max: f64,
    /// First and third quartiles (linear interpolation between the sorted runs).
    pub(super) q1: f64,
    pub(super) q3: f64,
}

impl Spread {
    /// NaN throughout when there are no runs.
    pub(super) fn of(v: &[f64]) -> Spread {
        let mut v = v.to_vec();
        let median = median(&mut v);
        Spread {
            median,
            min: v.first().copied().unwrap_or(f64::NAN),
            max: v.last().copied().unwrap_or(f64::NAN),
            q1: quantile(&v, 0.25),
            q3: quantile(&v, 0.75),
        }
    }
}

/// The `q` quantile of sorted values, interpolated between neighbours.
fn quantile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let pos = q * (sorted.len() - 1) as f64;
    let (lo, hi) = (pos.floor() as usize, pos.ceil() as usize);
    sorted[lo] + (sorted[hi] - sorted[lo]) * (pos - lo as f64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_stats_line() {
        let s = parse_stats("x\ntracer-stats: records=10 lost=2 cpu_ms=3.5 max_rss_kib=100 tracked_fds=1 stacks=2\n");
        let s = s.unwrap_or_default();
        assert_eq!((s.records, s.lost, s.max_rss_kib), (10, 2, 100));
        assert!((s.cpu_ms - 3.5).abs() < 1e-9);
        assert!(parse_stats("nothing").is_none());
    }

    #[test]
    fn medians() {
        assert_eq!(median(&mut [3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&mut [4.0, 1.0, 2.0, 3.0]), 2.5);
        assert!(median(&mut []).is_nan());
    }

    #[test]
    fn spreads() {
        let s = Spread::of(&[5.0, 1.0, 3.0, 2.0, 4.0]);
        assert_eq!((s.median, s.min, s.max, s.q1, s.q3), (3.0, 1.0, 5.0, 2.0, 4.0));
        // Quartiles between runs are interpolated.
        let s = Spread::of(&[4.0, 1.0, 2.0, 3.0]);
        assert_eq!((s.median, s.min, s.max, s.q1, s.q3), (2.5, 1.0, 4.0, 1.75, 3.25));
        let one = Spread::of(&[7.0]);
        assert_eq!(
            (one.median, one.min, one.max, one.q1, one.q3),
            (7.0, 7.0, 7.0, 7.0, 7.0)
        );
        assert!(Spread::of(&[]).median.is_nan() && Spread::of(&[]).max.is_nan());
    }
}
