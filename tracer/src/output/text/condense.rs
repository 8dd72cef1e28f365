//! What the text report lists for people: the processes with something to say (a suspect, a
//! problem, fds above 80% of the soft limit, zombies, merged signals, fds still open), the rest
//! summed per parent and command ("200 children of 16723 (worker): exited, nothing left open").
//! `--all` lists everything; the JSON report always keeps every process.

use std::collections::BTreeMap;

use crate::model::{ProcessSummary, Report};

/// Processes whose open fds pass this share of the soft limit are worth a line.
const NEAR_LIMIT: (usize, u64) = (4, 5);

/// Whether a process has something to say: a suspect, a problem, fds above 80% of its soft
/// limit, zombies, merged signals, or sites still open.
pub fn has_something_to_say(r: &Report, p: &ProcessSummary) -> bool {
    let near_limit = p
        .fd_soft_limit
        .is_some_and(|soft| (p.open_fds as u64) * NEAR_LIMIT.1 > soft * NEAR_LIMIT.0 as u64);
    p.limit_failures > 0
        || p.zombies > 0
        || near_limit
        || r.suspects.iter().any(|s| s.pid == p.pid)
        || r.incidents.iter().any(|i| i.pid == p.pid)
        || r.zombies.iter().any(|z| z.pid == p.pid && zombie_worth_saying(z))
        || r.signals.iter().any(|s| s.pid == p.pid && s.counts.coalesced > 0)
        || r.outstanding.iter().any(|s| s.pid == p.pid)
}

pub fn zombie_worth_saying(z: &crate::model::signals::ZombieReport) -> bool {
    z.zombies > 0 || z.growing || z.sigchld.coalesced > 0
}

pub fn signal_worth_saying(s: &crate::model::signals::SignalReport) -> bool {
    s.counts.coalesced > 0 || s.counts.failed > 0
}

/// Processes left out of the table, summed: (parent, comm bytes, exited) -> count.
pub type Summed = BTreeMap<(Option<u32>, Vec<u8>, bool), usize>;

/// The processes to list, and the others summed.
pub fn split(r: &Report, all: bool) -> (Vec<&ProcessSummary>, Summed) {
    let mut listed = Vec::new();
    let mut summed = Summed::new();
    for p in &r.processes {
        if all || has_something_to_say(r, p) {
            listed.push(p);
        } else {
            *summed.entry((p.parent, p.comm_bytes.clone(), p.exited)).or_default() += 1;
        }
    }
    (listed, summed)
}
