//! One process as the fd counts show it: its recent counts, and the rules read from them
//! (rising, time to the soft limit).

use super::Escalation;

/// Samples kept per process (the ticks the rules look at).
pub const RECENT: usize = 16;
/// Rising: this many steps up in a row...
pub const RISE_STEPS: usize = 4;
/// ...adding up to at least this many fds.
pub const MIN_RISE: u32 = 8;
/// Or: its floor (the lowest count of each quarter of the recent reads) rose quarter after
/// quarter, by at least this many fds in all (a leak under churn: 1 fd/s is seen in 8 s).
pub const MIN_FLOOR_RISE: u32 = 4;
/// Coarse samples kept per process: one per `HostCounts::coarse_gap_ns` (window/64), each the
/// floor since the one before, so a leak of 1 fd a minute is seen over minutes.
pub const COARSE: usize = 64;
/// The coarse floor must have risen by this much, over at least 8 coarse samples.
pub const MIN_SLOW_RISE: u32 = 3;

/// One process as the counts show it.
#[derive(Clone, Debug, Default)]
pub struct Counted {
    pub tgid: u32,
    pub comm: [u8; 16],
    pub open: u32,
    /// Soft RLIMIT_NOFILE (None: unlimited).
    pub nofile_soft: Option<u64>,
    /// False when the count is a lower bound (a table past the iterator's reach).
    pub exact: bool,
    /// Container id, filled in by the caller once (None: not looked up yet).
    pub container: Option<std::sync::Arc<str>>,
    /// (ns, open) of the last reads, oldest first.
    pub(super) recent: Vec<(u64, u32)>,
    /// (ns, lowest count since the previous one), oldest first: the slow rule's samples.
    pub(super) coarse: Vec<(u64, u32)>,
    /// The lowest count since the last coarse sample.
    pub(super) floor_since: Option<u32>,
    pub(super) missed: u8,
    pub escalation: Option<Escalation>,
    /// Not escalated before this time (after a release).
    pub cool_down_until_ns: u64,
    /// When its count last rose.
    pub last_rise_ns: u64,
    /// A refusal of this rise was counted already.
    pub(super) refused: bool,
}

impl Counted {
    /// Takes a read: the recent reads, and a coarse sample every `coarse_gap_ns`. Returns
    /// whether a rule says it rises now ([`rising`], or [`Counted::rising_slowly`]).
    pub(super) fn take(&mut self, now_ns: u64, open: u32, coarse_gap_ns: u64) -> bool {
        self.open = open;
        if self.recent.len() == RECENT {
            self.recent.remove(0);
        }
        self.recent.push((now_ns, open));
        let floor = self.floor_since.map_or(open, |f| f.min(open));
        self.floor_since = Some(floor);
        if self
            .coarse
            .last()
            .is_none_or(|l| now_ns.saturating_sub(l.0) >= coarse_gap_ns)
        {
            if self.coarse.len() == COARSE {
                self.coarse.remove(0);
            }
            self.coarse.push((now_ns, floor));
            self.floor_since = None;
        }
        rising(&self.recent) || self.rising_slowly()
    }

    /// Its floor rose over the coarse samples: a slow leak (1 fd a minute shows in minutes).
    pub fn rising_slowly(&self) -> bool {
        floor_rising(&self.coarse, MIN_SLOW_RISE)
    }

    /// Forgets its history (an exec, a reused pid).
    pub(super) fn forget_history(&mut self) {
        self.recent.clear();
        self.coarse.clear();
        self.floor_since = None;
    }

    /// Oldest first.
    pub fn recent(&self) -> &[(u64, u32)] {
        &self.recent
    }

    pub fn comm(&self) -> &[u8] {
        let end = self.comm.iter().position(|b| *b == 0).unwrap_or(self.comm.len());
        &self.comm[..end]
    }

    /// Share of the soft limit in use.
    pub fn limit_ratio(&self) -> Option<f64> {
        self.nofile_soft
            .filter(|l| *l > 0)
            .map(|l| f64::from(self.open) / l as f64)
    }

    /// Seconds until the soft limit at the recent rate, for a process whose count is rising
    /// (least squares over the recent reads, which must not mostly go down).
    pub fn time_to_limit_s(&self) -> Option<f64> {
        let limit = self.nofile_soft?;
        let slope = slope_per_s(&self.recent)?;
        let (ups, downs) = steps(&self.recent);
        if slope <= 0.0 || ups < 2 || downs * 2 > ups {
            return None;
        }
        Some((limit.saturating_sub(u64::from(self.open)) as f64 / slope).max(0.0))
    }
}

/// Per-second slope of (ns, count) samples (None with fewer than two or no time between).
fn slope_per_s(samples: &[(u64, u32)]) -> Option<f64> {
    let (first, last) = (samples.first()?, samples.last()?);
    if samples.len() < 2 || last.0 <= first.0 {
        return None;
    }
    Some(super::super::series::slope_per_ns(samples) * 1e9)
}

fn steps(samples: &[(u64, u32)]) -> (usize, usize) {
    let (mut ups, mut downs) = (0, 0);
    for w in samples.windows(2) {
        match w[1].1.cmp(&w[0].1) {
            std::cmp::Ordering::Greater => ups += 1,
            std::cmp::Ordering::Less => downs += 1,
            std::cmp::Ordering::Equal => {}
        }
    }
    (ups, downs)
}

/// Rose at each of the last [`RISE_STEPS`] steps, by [`MIN_RISE`] or more in all; or its floor
/// rose over the full recent reads ([`floor_rising`] by [`MIN_FLOOR_RISE`]). A server's
/// connections come and go (its floor stays), a pool fills in one burst (one step): neither is
/// this.
pub fn rising(recent: &[(u64, u32)]) -> bool {
    if recent.len() <= RISE_STEPS {
        return false;
    }
    let tail = &recent[recent.len() - RISE_STEPS - 1..];
    let steady = tail.windows(2).all(|w| w[1].1 > w[0].1) && tail[RISE_STEPS].1 - tail[0].1 >= MIN_RISE;
    steady || (recent.len() == RECENT && floor_rising(recent, MIN_FLOOR_RISE))
}

/// The lowest count of each quarter of `samples` rose quarter after quarter, by `min_rise` or
/// more from the first quarter to the last, and the last quarter's lowest is above the first
/// quarter's highest: the whole band moved up, not a noisy count that happened to dip early
/// (at least 8 samples).
pub fn floor_rising(samples: &[(u64, u32)], min_rise: u32) -> bool {
    if samples.len() < 8 {
        return false;
    }
    let q = samples.len() / 4;
    let floor = |part: &[(u64, u32)]| part.iter().map(|s| s.1).min().unwrap_or(0);
    let floors = [
        floor(&samples[..q]),
        floor(&samples[q..2 * q]),
        floor(&samples[2 * q..3 * q]),
        floor(&samples[3 * q..]),
    ];
    let first_high = samples[..q].iter().map(|s| s.1).max().unwrap_or(0);
    floors.windows(2).all(|w| w[1] > w[0]) && floors[3] - floors[0] >= min_rise && floors[3] > first_high
}
