//! Children until fork's EAGAIN: a parent whose live children rose steadily until `fork`/`clone`
//! failed with EAGAIN (RLIMIT_NPROC, `kernel.pid_max`, `kernel.threads-max`) and that still has
//! most of them is a suspect like a site that grew until EMFILE. Its stack is the failing fork's
//! (successful forks carry none: they are followed through `sched_process_fork`).

use super::trend;
use crate::model::{SiteReport, Stack};
use crate::state::{ProcessState, Resource, StackId, State, incidents::IncidentKind};

/// The trend of `p`'s live children up to its fork failures, if they rose until one.
fn rose_until_eagain(p: &ProcessState, live_now: u32) -> Option<trend::Trend> {
    let hit = p.limit_hits.forks?;
    let samples = p.children.points();
    for at in [hit.first_ns, hit.last_ns] {
        let before = &samples[..samples.partition_point(|s| s.0 <= at)];
        let t = trend::classify(before);
        let at_limit = before.last().map_or(0, |s| s.1);
        if t.growing && at_limit > 0 && u64::from(live_now) * 10 >= u64::from(at_limit) * 9 {
            return Some(t);
        }
    }
    None
}

/// Parents whose children were stopped by fork's EAGAIN, as suspect entries (`count`: live
/// children now, or at the parent's last sample if it exited)
/// (`resource: "process"`, `kind: "child process"`, `stopped_by_limit: "EAGAIN"`).
pub fn stopped_by_eagain(state: &State, now_ns: u64) -> Vec<SiteReport> {
    let mut out = Vec::new();
    for p in state.processes.values().filter(|p| p.limit_hits.forks.is_some()) {
        let live: Vec<&ProcessState> = state
            .processes
            .values()
            .filter(|c| c.is_alive() && c.parent == Some(p.tgid))
            .collect();
        // An exited parent is judged on its last sample while it lived (its children may have
        // been stopped on its way out, as its fds are closed by its exit).
        let held = if p.is_alive() {
            live.len() as u32
        } else {
            p.children.last().map_or(0, |s| s.1)
        };
        let Some(t) = rose_until_eagain(p, held) else {
            continue;
        };
        let forked = state.processes.values().filter(|c| c.parent == Some(p.tgid)).count() as u64;
        let oldest = live.iter().map(|c| c.since_ns).min().unwrap_or(now_ns);
        let stack = state
            .incidents
            .list
            .iter()
            .filter(|i| i.tgid == p.tgid && i.kind == IncidentKind::LimitFailure && i.errno == 11)
            .max_by_key(|i| i.count)
            .map_or(StackId::NONE, |i| i.stack);
        out.push(SiteReport {
            pid: p.tgid,
            resource: Resource::ChildProcess,
            kind: Resource::ChildProcess.noun(),
            family: None,
            count: held,
            estimated: None,
            allocations: forked,
            growth_per_min: (t.growth_per_min * 100.0).round() / 100.0,
            example: None,
            example_hex: None,
            example_bytes: None,
            oldest_age_ms: now_ns.saturating_sub(oldest) / 1_000_000,
            time_to_limit_s: None,
            before_attach: false,
            stopped_by_limit: Some("EAGAIN"),
            released_at_exit: None,
            stack: Stack::unresolved(stack),
        });
    }
    out.sort_by_key(|s| s.pid);
    out
}
