//! The agent's always-on tick: count every process's fds (the iterator, or /proc where it
//! cannot load), let `state::host` decide whom to escalate and release, do it, and keep the
//! syscall-exit hook attached only while some process is traced.
//!
//! Runs on the ingest thread after the tracker's own tick. Whether an escalated process's leak
//! is named comes from the analysis (its sites' trends), which is why this lives above it.

use std::time::Instant;

use tracer_common::fd_counts::ProcessFdCount;

use crate::{
    analysis::scoring,
    probes::{CountSource, error_chain as chain},
    procfs::{clock, fd_counts as proc_counts, tasks},
    state::{
        Resource,
        host::{HostCounts, ReleaseReason},
    },
    tracker::Pipeline,
};

/// /proc walks are dear (18-42 ms for 20k fds): the fallback counts every few ticks only.
const PROC_EVERY: u32 = 4;
/// Container ids looked up per tick for newly counted processes (a read of /proc/PID/cgroup each).
const CONTAINER_LOOKUPS: usize = 64;

/// What the tick keeps between runs (buffers reused, nothing allocated per tick once warm).
#[derive(Default)]
pub struct HostWatch {
    buf: Vec<u8>,
    counts: Vec<ProcessFdCount>,
    ticks: u32,
    /// Escalation and release failures (a process gone while being seeded), logged at debug.
    pub failures: u64,
    pending: Vec<u32>,
    /// This tick's findings (kept to reuse their memory).
    inherit: Vec<(u32, u32)>,
    named: Vec<u32>,
    records: Vec<(u32, u64)>,
}

impl HostWatch {
    /// One tick at `now_ns`, `tick_ns` after the previous one.
    pub fn tick(&mut self, agent: &mut Pipeline, tick_ns: u64) {
        let me = std::process::id();
        let t = &mut agent.tracker;
        if t.state.host.is_none() {
            return;
        }
        let started = Instant::now();
        self.ticks = self.ticks.wrapping_add(1);
        let read = match t.count_source().cloned() {
            Some(CountSource::Iterator) => t.read_fd_counts(&mut self.buf, &mut self.counts).map(|()| true),
            Some(CountSource::Proc(_)) if self.ticks % PROC_EVERY == 1 => {
                proc_counts::host_counts(me, &mut self.counts);
                Ok(true)
            }
            _ => Ok(false),
        };
        let now = clock::monotonic_ns();
        let Some(host) = t.state.host.as_mut() else { return };
        match read {
            Ok(false) => return,
            Ok(true) => {}
            Err(e) => {
                host.counters.read_errors += 1;
                log::warn!("reading fd counts: {e}");
                return;
            }
        }
        // The task iterator may not visit PID 1 (seen on our kernels): count it from /proc.
        if !self.counts.iter().any(|c| c.tgid == 1)
            && let Some(open) = proc_counts::open_fds(1)
        {
            let mut one = ProcessFdCount {
                tgid: 1,
                open_fds: open,
                nofile_soft: u64::MAX,
                ..ProcessFdCount::default()
            };
            let comm = crate::procfs::process::comm(1);
            let n = comm.len().min(15);
            one.comm[..n].copy_from_slice(&comm[..n]);
            one.nofile_soft = crate::procfs::process::limits(1).nofile_soft.unwrap_or(u64::MAX);
            self.counts.push(one);
        }
        host.update(now, &self.counts, me);
        host.read_cost_ns = started.elapsed().as_nanos() as u64;
        self.look_up_containers(host);

        let state = &t.state;
        // Children the kernel followed at fork from an escalated parent are escalated with it.
        let inherit = &mut self.inherit;
        inherit.clear();
        // Escalated processes with a growing site: their leak is named.
        let named = &mut self.named;
        named.clear();
        if let Some(host) = &state.host {
            for p in state.processes.values().filter(|p| p.is_traced()) {
                let escalated = host.process(p.tgid).is_some_and(|c| c.escalation.is_some());
                if !escalated
                    && let Some(parent) = p.parent
                    && host.process(parent).is_some_and(|c| c.escalation.is_some())
                {
                    inherit.push((p.tgid, parent));
                }
            }
            for (_, st) in state.sites.iter() {
                if st.key.resource != Resource::Fd || st.outstanding == 0 || named.contains(&st.key.tgid) {
                    continue;
                }
                let Some(p) = state.processes.get(&st.key.tgid).filter(|p| p.is_traced()) else {
                    continue;
                };
                if host
                    .process(p.tgid)
                    .is_some_and(|c| c.escalation.is_some_and(|e| e.named_ns.is_none()))
                    && scoring::site_trend(st, p, now).1
                {
                    named.push(p.tgid);
                }
            }
        }
        let records = &mut self.records;
        records.clear();
        records.extend(state.processes.values().filter(|p| p.is_traced()).map(|p| {
            let c = &p.counters;
            (p.tgid, c.allocations.iter().sum::<u64>() + c.closes.iter().sum::<u64>())
        }));
        let crate::state::State { host, processes, .. } = &mut t.state;
        let Some(host) = host.as_mut() else { return };
        for &(child, parent) in self.inherit.iter() {
            host.inherit(child, parent, now);
        }
        for &tgid in self.named.iter() {
            if let Some(e) = host.process_mut(tgid).and_then(|c| c.escalation.as_mut()) {
                e.named_ns = Some(now);
            }
        }
        for &(tgid, n) in self.records.iter() {
            host.note_records(tgid, n, now, tick_ns);
        }
        // Traced for another reason (selected on the command line): not the budget's business.
        let selected = |tgid: u32| processes.get(&tgid).is_some_and(|p| p.is_traced());
        let plan = host.plan(now, selected);
        let escalate = plan.escalate.clone();
        let release = plan.release.clone();
        for (tgid, reason) in release {
            if reason != ReleaseReason::Exited {
                t.release(tgid, now);
            }
        }
        for (tgid, _) in escalate {
            if let Err(e) = t.escalate(tgid) {
                self.failures += 1;
                log::debug!("PID {tgid} not escalated: {}", chain(&e));
                if let Some(h) = t.state.host.as_mut() {
                    h.release(tgid, ReleaseReason::Exited, now);
                }
            }
        }
        let wanted = t.state.processes.values().any(|p| p.is_traced());
        if wanted != t.syscall_hook()
            && let Err(e) = t.set_syscall_hook(wanted)
        {
            log::warn!(
                "cannot {} the syscall hook: {}",
                if wanted { "attach" } else { "detach" },
                chain(&e)
            );
        }
    }

    fn look_up_containers(&mut self, host: &mut HostCounts) {
        self.pending.clear();
        self.pending.extend(
            host.processes()
                .filter(|c| c.container.is_none())
                .map(|c| c.tgid)
                .take(CONTAINER_LOOKUPS),
        );
        for tgid in &self.pending {
            let id = tasks::container_of(*tgid);
            if let Some(c) = host.process_mut(*tgid) {
                c.container = Some(id.into());
            }
        }
    }
}

/// Someone asked about `pid` (`POST /escalate`): escalate it now, outside the budget.
pub fn ask(agent: &mut Pipeline, pid: u32) -> Result<bool, String> {
    let t = &mut agent.tracker;
    let now = clock::monotonic_ns();
    let traced = t.state.processes.get(&pid).is_some_and(|p| p.is_traced());
    let Some(host) = t.state.host.as_mut() else {
        return Err("the agent traces every process already (--trace-all)".into());
    };
    if traced && host.process(pid).is_none_or(|c| c.escalation.is_none()) {
        // Selected on the command line: traced all along.
        return Ok(false);
    }
    if !host.ask(pid, now).map_err(|e| e.to_string())? {
        return Ok(false);
    }
    if let Err(e) = t.escalate(pid) {
        if let Some(h) = t.state.host.as_mut() {
            h.release(pid, ReleaseReason::Exited, now);
        }
        return Err(format!("PID {pid} cannot be traced: {}", chain(&e)));
    }
    Ok(true)
}
