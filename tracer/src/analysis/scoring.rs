//! The rules that make a site a suspect, in one place: still growing (its trend), stopped by
//! the limit that caps it, or emptied only by its process's teardown; and the time a growing
//! process has left before its fd limit.

use super::trend;
use crate::state::{ProcessState, Resource, SiteStats};

/// Teardown: how soon before its exit a process emptied a site for it to count as released by
/// the process's teardown (CPython closes every file object it still holds at exit) rather
/// than by the code: at least this, or a tenth of the process's life if longer.
const TEARDOWN_NS: u64 = 1_000_000_000;

/// A site of an exited process whose count rose steadily until shortly before the exit and
/// then fell to (nearly) nothing at once: the process's teardown released what the code never
/// did, so it leaked all along. Returns the trend up to the peak.
pub(crate) fn released_by_teardown(st: &SiteStats, p: &ProcessState) -> Option<trend::Trend> {
    let exited = p.exited_ns?;
    if st.key.before_attach || st.key.resource != Resource::Fd || st.peak_ns == 0 {
        return None;
    }
    // Emptied: at most a tenth of its peak is left.
    if st.estimated.saturating_mul(10) > st.peak {
        return None;
    }
    let life = exited.saturating_sub(p.since_ns);
    if exited.saturating_sub(st.peak_ns) > TEARDOWN_NS.max(life / 10) {
        return None;
    }
    let samples = st.samples.points();
    let upto = samples.partition_point(|s| s.0 <= st.peak_ns);
    let t = trend::classify(&samples[..upto]);
    t.growing.then_some(t)
}

/// A site's trend as of `now_ns` (its samples and, for a live process, the count now), and
/// whether that makes it a suspect: fds open before attach (or found by a resync) have no stack
/// and no measured history, so they never are.
pub(crate) fn site_trend(st: &SiteStats, p: &ProcessState, now_ns: u64) -> (trend::Trend, bool) {
    let mut samples = st.samples.points();
    // A process released after an escalation is judged as of its release (its samples stop
    // there): the evidence stays a suspect rather than look flat from then on.
    if p.is_traced() && samples.last().is_none_or(|s| s.0 < now_ns) {
        samples.push((now_ns, u32::try_from(st.estimated).unwrap_or(u32::MAX)));
    }
    let t = trend::classify(&samples);
    if st.key.before_attach {
        return (t, false);
    }
    if t.growing {
        return (t, true);
    }
    match stopped_by_limit(st, p) {
        Some((before, _)) => (before, true),
        None => (t, false),
    }
}

/// A site whose count rose steadily until its process hit the limit that caps it (EMFILE or
/// ENFILE for fds, ENOSPC for SysV sets) and still holds what it took: the limit stopped its
/// growth, not the code, so it is the clearest leak of all rather than a plateau. Judged on the
/// samples up to the first failure and, failing that, up to the last one (a leak that grew
/// again after freeing some). Returns the trend up to the limit and the errno.
pub(crate) fn stopped_by_limit(st: &SiteStats, p: &ProcessState) -> Option<(trend::Trend, i32)> {
    let hit = match st.key.resource {
        Resource::Fd => p.limit_hits.fds,
        Resource::SemSet | Resource::ShmSegment | Resource::MsgQueue => p.limit_hits.sysv,
        Resource::Flock | Resource::PosixLock | Resource::ChildProcess => None,
    }?;
    let samples = st.samples.points();
    for at in [hit.first_ns, hit.last_ns] {
        let upto = samples.partition_point(|s| s.0 <= at);
        let before = &samples[..upto];
        let t = trend::classify(before);
        let at_limit = before.last().map_or(0, |s| u64::from(s.1));
        // Still holding most of it: a burst that was released after the failure is not a leak.
        if t.growing && at_limit > 0 && st.estimated.saturating_mul(10) >= at_limit.saturating_mul(9) {
            return Some((t, hit.errno));
        }
        if hit.first_ns == hit.last_ns {
            break;
        }
    }
    None
}

/// Seconds until a live process reaches its soft RLIMIT_NOFILE at `growth_per_min`.
pub(crate) fn fd_time_to_limit(p: &ProcessState, growth_per_min: f64) -> Option<f64> {
    let soft = p.limits.nofile_soft?;
    (p.is_alive() && growth_per_min > 0.0)
        .then(|| soft.saturating_sub(p.fds.len() as u64) as f64 / (growth_per_min / 60.0))
}
