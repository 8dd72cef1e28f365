//! What `/metrics` shows, as plain numbers: built on the ingest task from the state (cheap: one
//! pass over processes and their sites), encoded by `output::prometheus` on the HTTP side.
//!
//! Series are grouped by (comm, container) for cardinality; `--pid-labels N` gives the N
//! processes with the most open fds gauges of their own (labelled `pid`), left out of their
//! group's gauges, so sums over every series stay right. Counters always stay with the group:
//! which processes are in the top N changes from scrape to scrape, and a total moving between
//! series would make a group's counter go back (a reset, to Prometheus).

use std::collections::{BTreeMap, HashMap};

use super::scoring::{fd_time_to_limit, site_trend};
use crate::{
    model::{
        health::{AgentHealth, EscalationHealth},
        metrics::{GroupMetrics, MetricsSnapshot, SysvMetrics},
    },
    state::{
        FdKind, Resource, State,
        counters::{GroupKey, KINDS},
        host::HostCounts,
    },
};

fn sysv_index(r: Resource) -> Option<usize> {
    match r {
        Resource::SemSet => Some(0),
        Resource::ShmSegment => Some(1),
        Resource::MsgQueue => Some(2),
        _ => None,
    }
}

/// Builds the snapshot at `now_ns`. `pid_labels`: processes given series of their own.
pub fn snapshot(state: &State, now_ns: u64, pid_labels: usize) -> MetricsSnapshot {
    // The processes with the most open fds get their own series (counted ones included).
    let mut by_fds: Vec<(usize, u32)> = state
        .processes
        .values()
        .filter(|p| p.is_traced())
        .map(|p| (p.fds.len(), p.tgid))
        .collect();
    if let Some(host) = &state.host {
        by_fds.extend(
            host.processes()
                .filter(|c| !state.processes.get(&c.tgid).is_some_and(|p| p.is_traced()))
                .map(|c| (c.open as usize, c.tgid)),
        );
    }
    by_fds.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)));
    let own: std::collections::HashSet<u32> = by_fds.iter().take(pid_labels).map(|p| p.1).collect();

    let mut groups: BTreeMap<(GroupKey, Option<u32>), GroupMetrics> = BTreeMap::new();
    for (key, retired) in &state.groups.retired {
        groups
            .entry((key.clone(), None))
            .or_default()
            .counters
            .add(&retired.counters);
    }
    let mut suspects: HashMap<u32, [u64; KINDS]> = HashMap::new();
    let mut fastest: HashMap<u32, f64> = HashMap::new();
    for (_, st) in state.sites.iter() {
        if st.key.resource != Resource::Fd || st.outstanding == 0 {
            continue;
        }
        let Some(p) = state.processes.get(&st.key.tgid).filter(|p| p.is_alive()) else {
            continue;
        };
        let (t, growing) = site_trend(st, p, now_ns);
        if growing {
            let kind = st.display_kind.unwrap_or(st.key.kind);
            suspects.entry(p.tgid).or_insert([0; KINDS])[kind as usize] += 1;
            if let Some(secs) = fd_time_to_limit(p, t.growth_per_min) {
                let f = fastest.entry(p.tgid).or_insert(f64::INFINITY);
                *f = f.min(secs);
            }
        }
    }
    for p in state.processes.values() {
        let pid = own.contains(&p.tgid).then_some(p.tgid);
        groups.entry((p.group(), None)).or_default().counters.add(&p.counters);
        let g = groups.entry((p.group(), pid)).or_default();
        g.pid = pid;
        g.processes += 1;
        g.zombies += p.zombies.pending.len() as u64;
        let merged = p
            .signals
            .get(&crate::state::signals::SIGCHLD)
            .map_or(0, |c| c.coalesced);
        g.zombie_piles += u64::from(p.zombies.piled(merged));
        if !p.is_alive() {
            continue;
        }
        if let Some(s) = suspects.get(&p.tgid) {
            for (a, b) in g.suspects.iter_mut().zip(s) {
                *a += b;
            }
        }
        if let Some(secs) = fastest.get(&p.tgid) {
            g.time_to_fd_limit_s = Some(g.time_to_fd_limit_s.map_or(*secs, |s| s.min(*secs)));
        }
        // Released after an escalation: its table is the evidence as of then; what it holds
        // now is its count (below).
        if !p.is_traced() && state.host.as_ref().is_some_and(|h| h.process(p.tgid).is_some()) {
            continue;
        }
        for (_, o) in p.fds.iter() {
            g.open_fds[o.kind as usize] += 1;
        }
        if let Some(soft) = p.limits.nofile_soft {
            g.fd_soft_limit = Some(g.fd_soft_limit.map_or(soft, |s| s.min(soft)));
            if soft > 0 {
                let ratio = p.fds.len() as f64 / soft as f64;
                g.worst_fd_ratio = Some(g.worst_fd_ratio.map_or(ratio, |r| r.max(ratio)));
            }
        }
    }
    if let Some(host) = &state.host {
        add_counted(state, host, &own, &mut groups);
    }
    let mut sysv = SysvMetrics::default();
    for o in state.ipc.objects.values().filter(|o| o.creator.is_some()) {
        if let Some(i) = sysv_index(Resource::from_ipc(o.kind)) {
            sysv.objects[i] += 1;
            if o.is_orphan() {
                sysv.orphans[i] += 1;
            }
        }
    }
    let groups = groups
        .into_iter()
        .map(|((key, pid), mut g)| {
            g.comm = key.comm.to_vec();
            g.container = key.container.to_string();
            g.pid = pid;
            g
        })
        .collect();
    let health = AgentHealth {
        evicted_processes: state.evictions.processes,
        evicted_sites: state.sites.evicted,
        evicted_groups: state.groups.evicted,
        evicted_lock_files: state.evictions.lock_files,
        dropped_incidents: state.incidents.dropped,
        tracked_processes: state.processes.len() as u64,
        escalation: state.host.as_ref().map(escalation_health),
        tracked_fds: state.processes.values().map(|p| p.fds.len() as u64).sum(),
        sites: state.sites.len() as u64,
        ..AgentHealth::default()
    };
    MetricsSnapshot { groups, sysv, health }
}

/// Processes the agent only counts (never traced, or released): their fds under kind
/// `unknown` (kinds are known only for traced processes), their limit, and the time to it
/// while their count rises, before any site of theirs is known. A traced process gets its
/// time to the limit from its count too, until a growing site names a nearer one.
fn add_counted(
    state: &State,
    host: &HostCounts,
    own: &std::collections::HashSet<u32>,
    groups: &mut BTreeMap<(GroupKey, Option<u32>), GroupMetrics>,
) {
    for c in host.processes() {
        let known = state.processes.get(&c.tgid).filter(|p| p.is_alive());
        let pid = own.contains(&c.tgid).then_some(c.tgid);
        let key = match known {
            Some(p) => p.group(),
            None => GroupKey {
                comm: c.comm().into(),
                container: c.container.clone().unwrap_or_else(|| std::sync::Arc::from("")),
            },
        };
        let g = groups.entry((key, pid)).or_default();
        g.pid = pid;
        if let Some(secs) = c.time_to_limit_s() {
            g.time_to_fd_limit_s = Some(g.time_to_fd_limit_s.map_or(secs, |s| s.min(secs)));
        }
        if known.is_some_and(|p| p.is_traced()) {
            continue;
        }
        if known.is_none() {
            g.processes += 1;
        }
        g.open_fds[FdKind::Unknown as usize] += u64::from(c.open);
        if let Some(soft) = c.nofile_soft {
            g.fd_soft_limit = Some(g.fd_soft_limit.map_or(soft, |s| s.min(soft)));
        }
        if let Some(ratio) = c.limit_ratio() {
            g.worst_fd_ratio = Some(g.worst_fd_ratio.map_or(ratio, |r| r.max(ratio)));
        }
    }
}

fn escalation_health(h: &HostCounts) -> EscalationHealth {
    EscalationHealth {
        counted_processes: h.last_read as u64,
        escalated: h.escalated_count() as u64,
        escalations: h.counters.escalations,
        releases: h.counters.releases,
        refused: h.counters.refused,
        budget_processes: h.budget.max_processes as u64,
        count_reads: h.counters.reads,
        count_read_errors: h.counters.read_errors,
        count_read_seconds: h.read_cost_ns as f64 / 1e9,
        ..EscalationHealth::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::{FdKind, Limits, StackId, syscall::Syscall};

    const MS: u64 = 1_000_000;

    fn open(s: &mut State, tgid: u32, ts: u64, fd: i64, stack: u32) {
        let sc = Syscall {
            tgid,
            tid: tgid,
            ts_ns: ts,
            nr: libc::SYS_socket as u32, // socket(AF_INET, ..)
            ret: fd,
            args: [2, 1, 0, 0, 0, 0],
            data_kind: 0,
            data: &[],
            weight: 1,
        };
        s.on_syscall(&sc, StackId(stack));
    }

    #[test]
    fn groups_pid_series_and_retired_totals() {
        let mut s = State::default();
        let limits = Limits {
            nofile_soft: Some(1000),
            nofile_hard: Some(4096),
        };
        for tgid in [10, 11, 12] {
            s.attach(tgid, b"web\nd".to_vec(), limits.clone(), &[], 0);
        }
        // 10 leaks a socket every 100 ms for 3 s; 11 holds two; 12 holds one.
        for (fd, tick) in (100..).zip(1..=30u64) {
            open(&mut s, 10, tick * 100 * MS, fd, 1);
            s.sample(tick * 100 * MS);
        }
        open(&mut s, 11, 50 * MS, 3, 2);
        open(&mut s, 11, 50 * MS, 4, 2);
        open(&mut s, 12, 50 * MS, 3, 3);
        s.on_exit(12, 3000 * MS);

        let m = snapshot(&s, 3000 * MS, 0);
        assert_eq!(m.groups.len(), 1);
        let g = &m.groups[0];
        assert_eq!(g.comm, b"web\nd", "raw bytes: output escapes them");
        assert_eq!(g.processes, 3);
        assert_eq!(
            g.open_fds[FdKind::Socket as usize],
            32,
            "the exited process has nothing open"
        );
        assert_eq!(g.suspects[FdKind::Socket as usize], 1);
        assert_eq!(g.worst_fd_ratio, Some(0.03));
        assert_eq!(g.fd_soft_limit, Some(1000));
        // 970 fds left at 10 a second.
        assert!(
            g.time_to_fd_limit_s.is_some_and(|t| (t - 97.0).abs() < 1.0),
            "{:?}",
            g.time_to_fd_limit_s
        );
        assert_eq!(g.counters.allocations[FdKind::Socket as usize], 33);

        // The leaker gets its own series and leaves the group's.
        let m = snapshot(&s, 3000 * MS, 1);
        let own = m.groups.iter().find(|g| g.pid == Some(10));
        assert_eq!(own.map(|g| g.open_fds[FdKind::Socket as usize]), Some(30));
        let rest = m.groups.iter().find(|g| g.pid.is_none());
        assert_eq!(
            rest.map(|g| (g.open_fds[FdKind::Socket as usize], g.suspects[FdKind::Socket as usize])),
            Some((2, 0))
        );
        // Its counters stay with the group: the top N changes between scrapes, and a group's
        // counter must never go back.
        assert_eq!(own.map(|g| g.counters.allocations[FdKind::Socket as usize]), Some(0));
        assert_eq!(rest.map(|g| g.counters.allocations[FdKind::Socket as usize]), Some(33));

        // Forgotten processes leave their totals behind: counters never go back.
        s.exited_grace_ns = Some(1);
        s.expire(4000 * MS);
        let m = snapshot(&s, 4000 * MS, 0);
        assert_eq!(m.groups[0].processes, 2);
        assert_eq!(m.groups[0].counters.allocations[FdKind::Socket as usize], 33);
    }
}
