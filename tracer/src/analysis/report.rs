//! The report: the stable structure behind `--format json` and the text output.

use std::collections::{BTreeMap, HashMap};

use super::{
    incidents, ipc, locks,
    scoring::{fd_time_to_limit, released_by_teardown, site_trend, stopped_by_limit},
    signals, trend,
};
use crate::{
    model::{Frame, Losses, ProcessSummary, Report, ReportOptions, SiteReport, Stack, text_and_hex},
    state::{Origin, ProcessState, Resource, SiteId, SiteStats, StackId, State, kind::family_name},
};

/// Builds the report at `now_ns` and resolves its stacks with `frames` (tests; the agent builds
/// on the ingest task with [`build_unresolved`] and resolves on the symbolizer worker).
pub fn build(
    state: &State,
    now_ns: u64,
    losses: Losses,
    opts: &ReportOptions,
    frames: impl FnMut(StackId) -> Vec<Frame>,
) -> Report {
    let mut r = build_unresolved(state, now_ns, losses, opts);
    r.resolve_stacks(frames);
    r
}

/// Builds the report at `now_ns` with every stack unresolved (ids only): cheap enough for the
/// ingest task, which must not symbolize.
pub fn build_unresolved(state: &State, now_ns: u64, losses: Losses, opts: &ReportOptions) -> Report {
    let mut processes = Vec::new();
    // Per site: fds old enough, and the oldest open time.
    let mut per_site: HashMap<SiteId, (u32, u64)> = HashMap::new();
    let mut pids: Vec<&u32> = state.processes.keys().collect();
    pids.sort_unstable();
    for pid in pids {
        let Some(p) = state.processes.get(pid) else {
            continue;
        };
        let reference = p.exited_ns.unwrap_or(now_ns);
        let mut by_kind: BTreeMap<&'static str, usize> = BTreeMap::new();
        for (_, o) in p.fds.iter() {
            *by_kind.entry(o.kind.as_str()).or_default() += 1;
            // What an exited process only inherited (stdio, its parent's fds) is its parent's
            // story: counted in its summary, not listed as sites of its own (a forking server
            // would otherwise list every worker's copy of its listening socket).
            let inherited = matches!(o.origin, Origin::Inherited | Origin::BeforeAttach);
            if !(inherited && !p.is_alive()) && reference.saturating_sub(o.opened_ns) >= opts.min_age_ns {
                let e = per_site.entry(o.site).or_insert((0, u64::MAX));
                e.0 += 1;
                e.1 = e.1.min(o.opened_ns);
            }
        }
        let (comm, comm_hex) = text_and_hex(&p.comm);
        processes.push(ProcessSummary {
            pid: p.tgid,
            comm,
            comm_hex,
            comm_bytes: p.comm.clone(),
            open_fds: p.fds.len(),
            fd_soft_limit: p.limits.nofile_soft,
            fd_hard_limit: p.limits.nofile_hard,
            exited: !p.is_alive(),
            by_kind,
            allocations: p.counters.allocations.iter().sum(),
            limit_failures: p.limit_failures,
            zombies: p.zombies.pending.len(),
            parent: p.parent,
            runtime: p.runtime.as_deref().map(str::to_owned),
        });
    }

    // SysV objects and held locks: their sites count what still exists.
    for o in state.ipc.objects.values() {
        if let Some(site) = o.site
            && now_ns.saturating_sub(o.created_ns) >= opts.min_age_ns
        {
            let e = per_site.entry(site).or_insert((0, u64::MAX));
            e.0 += 1;
            e.1 = e.1.min(o.created_ns);
        }
    }
    for f in state.locks.files.values() {
        for h in &f.held {
            if let Some(site) = h.site {
                let e = per_site.entry(site).or_insert((0, u64::MAX));
                e.0 += 1;
                e.1 = e.1.min(h.since_ns);
            }
        }
    }

    let mut suspects: Vec<SiteReport> = Vec::new();
    let mut outstanding: Vec<SiteReport> = Vec::new();
    for (id, (count, oldest)) in &per_site {
        let Some(st) = state.sites.get(*id) else {
            continue;
        };
        let Some(p) = state.processes.get(&st.key.tgid) else {
            continue;
        };
        // Allocations the stack budget left without a stack: the sampled sites stand for them
        // (their estimates), and the process summary counts them exactly.
        if st.estimated == 0 && st.outstanding > 0 {
            continue;
        }
        let (t, growing) = site_trend(st, p, now_ns);
        let stopped = if growing && !st.key.before_attach {
            stopped_by_limit(st, p).filter(|(before, _)| *before == t)
        } else {
            None
        };
        let mut site = site_report(st, p, *count, *oldest, now_ns, &t, growing, opts);
        site.stopped_by_limit = stopped.map(|(_, errno)| crate::state::incidents::errno_name(errno));
        if !growing && let Some(t) = released_by_teardown(st, p) {
            let mut s = site_report(st, p, *count, *oldest, now_ns, &t, true, opts);
            s.released_at_exit = Some(st.peak);
            suspects.push(s);
        } else if growing {
            suspects.push(site.clone());
        }
        outstanding.push(site);
    }
    // Sites a process's teardown emptied at its exit (nothing open, so not listed above).
    for p in state.processes.values().filter(|p| !p.is_alive()) {
        for id in state.sites.of_process(p.tgid) {
            if per_site.contains_key(id) {
                continue;
            }
            let Some(st) = state.sites.get(*id) else { continue };
            if let Some(t) = released_by_teardown(st, p) {
                let mut s = site_report(st, p, 0, p.exited_ns.unwrap_or(now_ns), now_ns, &t, true, opts);
                s.released_at_exit = Some(st.peak);
                suspects.push(s);
            }
        }
    }
    // Children until fork's EAGAIN: suspects too, though not sites.
    for c in super::children::stopped_by_eagain(state, now_ns) {
        suspects.push(c.clone());
        outstanding.push(c);
    }
    if let Some(n) = opts.top_processes {
        processes.sort_by(|a, b| b.open_fds.cmp(&a.open_fds).then(a.pid.cmp(&b.pid)));
        processes.truncate(n);
    }
    suspects.sort_by(|a, b| {
        b.growth_per_min
            .total_cmp(&a.growth_per_min)
            .then(b.count.cmp(&a.count))
            .then(a.pid.cmp(&b.pid))
    });
    outstanding.sort_by(|a, b| {
        b.estimated
            .unwrap_or(u64::from(b.count))
            .cmp(&a.estimated.unwrap_or(u64::from(a.count)))
            .then(b.oldest_age_ms.cmp(&a.oldest_age_ms))
            .then(a.pid.cmp(&b.pid))
            .then(a.kind.cmp(b.kind))
    });
    if let Some(n) = opts.top {
        suspects.truncate(n);
        outstanding.truncate(n);
    }
    Report {
        lost_events: losses.records(),
        losses,
        processes,
        suspects,
        outstanding,
        incidents: incidents::incidents(state, now_ns),
        ipc: ipc::ipc(state, now_ns),
        locks: locks::locks(state, now_ns, opts.lock_hold_ns),
        zombies: signals::zombies(state, now_ns),
        signals: signals::signals(state),
        stalls: super::stalls::stalls(state, now_ns, opts.system.as_ref()),
        system: opts.system,
        escalation: super::escalation::report(state, now_ns),
    }
}

/// The report of one site, `count` of its objects open now (or at its process's exit).
#[allow(clippy::too_many_arguments)]
fn site_report(
    st: &SiteStats,
    p: &ProcessState,
    count: u32,
    oldest: u64,
    now_ns: u64,
    t: &trend::Trend,
    growing: bool,
    opts: &ReportOptions,
) -> SiteReport {
    let resource = st.key.resource;
    // Objects outlive their creator: their age runs on after its exit.
    let reference = if resource == Resource::Fd {
        p.exited_ns.unwrap_or(now_ns)
    } else {
        now_ns
    };
    let time_to_limit_s = match (resource, growing) {
        (Resource::Fd, true) => fd_time_to_limit(p, t.growth_per_min).map(round2),
        (Resource::Fd, ..) => None,
        (_, true, ..) => ipc::time_to_ipc_limit(resource, t.growth_per_min, opts.system.as_ref()).map(round2),
        _ => None,
    };
    let (example, example_hex) = match &st.example {
        Some(e) => {
            let (t, h) = text_and_hex(e);
            (Some(t), h)
        }
        None => (None, None),
    };
    SiteReport {
        pid: st.key.tgid,
        resource,
        kind: if resource == Resource::Fd {
            st.display_kind.unwrap_or(st.key.kind).as_str()
        } else {
            resource.noun()
        },
        family: (st.key.family != 0).then(|| family_name(st.key.family)),
        count,
        estimated: (st.estimated != u64::from(st.outstanding)).then_some(st.estimated),
        allocations: st.allocations,
        growth_per_min: round2(t.growth_per_min),
        example,
        example_hex,
        example_bytes: st.example.clone(),
        oldest_age_ms: reference.saturating_sub(oldest) / 1_000_000,
        time_to_limit_s,
        before_attach: st.key.before_attach,
        stopped_by_limit: None,
        released_at_exit: None,
        stack: Stack::unresolved(st.key.stack),
    }
}

fn round2(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}
