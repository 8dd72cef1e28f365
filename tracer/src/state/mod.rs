//! Per-process state: fd tables, allocation sites, SysV IPC objects, file locks, signals and
//! zombies, incidents; updated from decoded records.
//!
//! Plain Rust with no I/O: what `/proc` says is passed in by the caller, so every transition
//! (dup2 over an open fd, close_range, fork, exec, exit) is unit-tested without a kernel.

mod children;
pub mod counters;
mod failures;
pub mod fd_table;
pub mod host;
pub mod incidents;
pub mod ipc;
pub mod kind;
pub mod locks;
pub mod process;
mod resync;
mod retention;
pub mod scm;
pub mod series;
pub mod signals;
pub mod sites;
pub(crate) mod slab;
pub mod stalls;
pub mod syscall;

use std::collections::{HashMap, VecDeque};

pub use fd_table::{FdTable, OpenFd, Origin};
pub use kind::FdKind;
pub use process::{Limits, ProcessState};
pub use sites::{Resource, SiteId, SiteKey, SiteStats, SiteTable, StackId};

/// Exited processes kept for the report (the oldest are forgotten first).
const MAX_EXITED: usize = 512;

/// An fd as `/proc/PID/fd` shows it, passed in by the caller.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProcFd {
    pub fd: i32,
    pub kind: FdKind,
    /// Link target (path, `socket:[ino]`, ...): raw bytes.
    pub target: Vec<u8>,
}

#[derive(Debug, Default)]
pub struct State {
    /// Looked up for every record: a fast hasher.
    pub processes: HashMap<u32, ProcessState, foldhash::fast::RandomState>,
    pub sites: SiteTable,
    /// SysV IPC objects (system-wide: they outlive their creators).
    pub ipc: ipc::IpcTable,
    pub locks: locks::LockTable,
    pub incidents: incidents::IncidentTable,
    /// Writes that stalled on full pipes, FIFOs, eventfds and AF_UNIX sockets.
    pub stalls: stalls::StallTable,
    exited_order: VecDeque<u32>,
    /// Record time without a tick after which a process is sampled from its records (see
    /// [`State::sample_process_at`]); 0 means [`DEFAULT_SAMPLE_GAP_NS`]. Twice the tick period.
    pub sample_gap_ns: u64,
    /// How long an exited process's state is kept (None: until [`MAX_EXITED`] newer exits push
    /// it out; the agent sets a grace period so buffered records drain and reports show it).
    pub exited_grace_ns: Option<u64>,
    /// What was dropped to keep memory bounded.
    pub evictions: retention::Evictions,
    /// Counter totals of forgotten processes, by (comm, container).
    pub groups: counters::Groups,
    /// The agent's always-on mode: every process's count and the escalations (None: `watch`,
    /// `run`, `top`, `agent --trace-all`).
    pub host: Option<host::HostCounts>,
}

/// Used when [`State::sample_gap_ns`] is unset: twice the shortest tick period.
pub const DEFAULT_SAMPLE_GAP_NS: u64 = 200_000_000;

impl State {
    /// Starts tracking a process whose current fds are `existing` (from `/proc/PID/fd`).
    pub fn attach(&mut self, tgid: u32, comm: Vec<u8>, limits: Limits, existing: &[ProcFd], now_ns: u64) {
        let mut p = ProcessState::new(tgid, now_ns);
        p.comm = comm;
        p.limits = limits;
        p.seeded_ns = now_ns;
        for e in existing {
            let key = SiteKey {
                resource: Resource::Fd,
                tgid,
                stack: StackId::NONE,
                kind: e.kind,
                family: 0,
                before_attach: true,
            };
            let site = self.sites.intern(key);
            self.sites.opened(site, Some(&e.target), 1);
            p.fds.insert(
                e.fd,
                OpenFd {
                    site,
                    kind: e.kind,
                    family: 0,
                    origin: Origin::BeforeAttach,
                    opened_ns: now_ns,
                    described: e.kind != FdKind::Socket,
                    weight: 1,
                },
            );
        }
        self.forget(tgid);
        self.processes.insert(tgid, p);
    }

    /// Drops every trace of a process (a PID being reused, its grace period over, or tracking
    /// given up): its fds, its sites (but for SysV objects it left behind), its incidents.
    fn forget(&mut self, tgid: u32) {
        if let Some(old) = self.processes.remove(&tgid) {
            for (_, o) in old.fds.iter() {
                self.sites.closed(o.site, o.weight);
            }
            self.groups
                .retire(old.group(), &old.counters, old.exited_ns.unwrap_or(old.sampled_ns));
            self.sites.forget_process(tgid);
            self.incidents.forget_process(tgid);
            self.exited_order.retain(|t| *t != tgid);
        }
    }

    pub fn process(&self, tgid: u32) -> Option<&ProcessState> {
        self.processes.get(&tgid)
    }

    /// A traced process forked: the child starts with a copy of the parent's table.
    pub fn on_fork(&mut self, parent: u32, child: u32, now_ns: u64) {
        let Some(pp) = self.processes.get(&parent) else {
            return;
        };
        let mut c = ProcessState::new(child, now_ns);
        c.parent = Some(parent);
        c.comm = pp.comm.clone();
        c.limits = pp.limits.clone();
        c.container = pp.container.clone();
        let inherited: Vec<(i32, OpenFd)> = pp.fds.iter().map(|(fd, o)| (fd, *o)).collect();
        for (fd, o) in inherited {
            let Some(parent_site) = self.sites.get(o.site) else {
                continue;
            };
            let mut key = parent_site.key;
            key.tgid = child;
            let example = parent_site.example.clone();
            let site = self.sites.intern(key);
            self.sites.opened(site, example.as_deref(), o.weight);
            let origin = if o.origin == Origin::BeforeAttach {
                Origin::BeforeAttach
            } else {
                Origin::Inherited
            };
            c.fds.insert(fd, OpenFd { site, origin, ..o });
        }
        self.forget(child);
        self.processes.insert(child, c);
    }

    /// The process exec'd. Close-on-exec fds are gone: keep only those `/proc` still shows
    /// (`None` when the process is already gone: then its exit will follow).
    pub fn on_exec(&mut self, tgid: u32, comm: &[u8], still_open: Option<&[i32]>) {
        let Some(p) = self.processes.get_mut(&tgid) else {
            return;
        };
        if !comm.is_empty() && p.comm != comm {
            // A new name is a new metrics group: what it counted so far stays with the old one.
            let counted = std::mem::take(&mut p.counters);
            self.groups.retire(p.group(), &counted, p.sampled_ns);
            p.comm = comm.to_vec();
        }
        let Some(open) = still_open else { return };
        let sites = &mut self.sites;
        let closes = &mut p.counters.closes;
        p.fds.retain(
            |fd, _| open.binary_search(&fd).is_ok(),
            |_, o| {
                sites.closed(o.site, o.weight);
                closes[o.kind as usize] += 1;
            },
        );
    }

    /// The last thread exited. The table is kept as "open at exit" (what valgrind reports).
    pub fn on_exit(&mut self, tgid: u32, now_ns: u64) {
        let Some(p) = self.processes.get_mut(&tgid) else {
            return;
        };
        if p.exited_ns.is_some() {
            return;
        }
        p.exited_ns = Some(now_ns);
        p.zombies.sample(now_ns, self.sites.window_ns);
        let parent = p.parent;
        self.sites.sample(Some(tgid), now_ns);
        self.ipc.creator_exited(tgid, now_ns);
        self.locks.process_exited(tgid);
        // A zombie of its parent until reaped.
        if let Some(pp) = parent.and_then(|pp| self.processes.get_mut(&pp)) {
            pp.zombies.exited(tgid, now_ns);
        }
        self.exited_order.push_back(tgid);
        while self.exited_order.len() > MAX_EXITED {
            if let Some(old) = self.exited_order.pop_front() {
                self.forget(old);
                self.evictions.processes += 1;
            }
        }
    }

    /// Refines what an fd is from `/proc` (kind and an example path), moving it to the right site.
    /// `family` is the socket family when `/proc/PID/net` knew the socket.
    pub fn describe(&mut self, tgid: u32, fd: i32, kind: FdKind, family: Option<u16>, target: &[u8]) {
        let Some(p) = self.processes.get_mut(&tgid) else {
            return;
        };
        let Some(o) = p.fds.get_mut(fd) else { return };
        o.described = true;
        let refinable = o.kind == FdKind::Unknown || (o.kind.is_path_kind() && kind.is_path_kind());
        let new_kind = if refinable { kind } else { o.kind };
        // A socket's family is known from socket(); /proc fills it in for received or
        // pre-existing sockets.
        let new_family = match family {
            Some(f) if new_kind == FdKind::Socket && o.family == 0 => f,
            _ => o.family,
        };
        // A path open is one allocation site whatever the path turns out to be (file, device,
        // directory): the fd stays in its site, which learns what it holds. Moving it would
        // distort both sites' trends.
        if o.kind.is_path_kind() && new_kind.is_path_kind() {
            o.kind = new_kind;
            if let Some(site) = self.sites.get_mut(o.site)
                && site.display_kind.is_none()
            {
                site.display_kind = Some(new_kind);
            }
        } else if (new_kind, new_family) != (o.kind, o.family) {
            // Unknown kinds (received fds) are described as they arrive, before any sample.
            if let Some(mut key) = self.sites.get(o.site).map(|s| s.key) {
                key.kind = new_kind;
                key.family = new_family;
                let new_site = self.sites.intern(key);
                // The same allocation moves: its count and its open slot go to the refined site.
                self.sites.closed(o.site, o.weight);
                if let Some(old) = self.sites.get_mut(o.site) {
                    old.allocations = old.allocations.saturating_sub(u64::from(o.weight));
                }
                self.sites.opened(new_site, None, o.weight);
                o.site = new_site;
            }
            o.kind = new_kind;
            o.family = new_family;
        }
        self.sites.set_example(o.site, target);
    }

    /// Takes a sample of every site's open count and every parent's zombie count (on a timer).
    pub fn sample(&mut self, now_ns: u64) {
        let window = self.sites.window_ns;
        let live: std::collections::HashSet<u32, foldhash::fast::RandomState> = self
            .processes
            .values_mut()
            .filter(|p| p.is_traced())
            .map(|p| {
                p.zombies.sample(now_ns, window);
                p.sampled_ns = p.sampled_ns.max(now_ns);
                p.tgid
            })
            .collect();
        self.sites.sample_where(|t| live.contains(&t), now_ns);
        self.sample_children(now_ns);
    }

    /// Samples a process at a record's time: used when the agent's ticks have not sampled it for
    /// [`State::sample_gap`] (the agent was late: a stalled host, a burst), so trends come from
    /// when things happened, not from when the agent looked.
    pub(crate) fn sample_process_at(&mut self, tgid: u32, ts_ns: u64) {
        if let Some(p) = self.processes.get_mut(&tgid) {
            p.sampled_ns = ts_ns;
            p.zombies.sample(ts_ns, self.sites.window_ns);
            self.sites.sample(Some(tgid), ts_ns);
        }
    }

    /// Record time without a tick after which a record samples its process.
    pub(crate) fn sample_gap(&self) -> u64 {
        if self.sample_gap_ns == 0 {
            DEFAULT_SAMPLE_GAP_NS
        } else {
            self.sample_gap_ns
        }
    }

    /// A traced `wait4` returned `pid`: the parent reaped that zombie now. Only a pid the
    /// caller has pending counts (a pid from another pid namespace does not match; its release
    /// by the kernel, `on_reap`, then counts instead).
    pub(crate) fn on_wait(&mut self, sc: &syscall::Syscall<'_>) {
        let Ok(pid) = u32::try_from(sc.ret) else { return };
        let Some(p) = self.processes.get_mut(&sc.tgid) else {
            return;
        };
        if !p.zombies.reaped(pid, sc.ts_ns) {
            return;
        }
        if let Some(c) = self.processes.get_mut(&pid) {
            c.reaped = true;
        }
    }

    /// Whether the kernel still owes records about processes that exited: the reap of a zombie
    /// an exited process left behind (its new parent reaps it, and `sched_process_free` says so
    /// an RCU grace period later), or the release of a lock an exited process took (when the
    /// last reference to its open file goes).
    pub fn exit_records_owed(&self) -> bool {
        let exited = |tgid: u32| self.processes.get(&tgid).is_some_and(|p| !p.is_alive());
        self.processes
            .values()
            .any(|p| !p.is_alive() && !p.zombies.pending.is_empty())
            || self
                .locks
                .files
                .values()
                .any(|f| f.held.iter().any(|h| h.traced && exited(h.tgid)))
    }

    /// The kernel released an exited process: its parent reaped it.
    pub fn on_reap(&mut self, pid: u32, now_ns: u64) {
        // Reaped at its parent's wait already.
        if self.processes.get(&pid).is_some_and(|p| p.reaped) {
            return;
        }
        let parent = self.processes.get(&pid).and_then(|p| p.parent);
        if let Some(pp) = parent.and_then(|pp| self.processes.get_mut(&pp))
            && pp.zombies.reaped(pid, now_ns)
        {
            return;
        }
        // Reparented, or the child's own state was forgotten: find who had it pending.
        for p in self.processes.values_mut() {
            if p.zombies.reaped(pid, now_ns) {
                return;
            }
        }
    }

    /// A signal sent to, or delivered in, a traced process.
    pub fn on_signal(&mut self, r: &tracer_common::signal::SignalRecord) {
        use tracer_common::signal::event;
        let Some(p) = self.processes.get_mut(&r.target) else {
            return;
        };
        let counts = p.signals.entry(r.sig).or_default();
        match r.event {
            event::GENERATE => {
                counts.on_generate(r.result);
                if r.result == tracer_common::signal::result::ALREADY_PENDING {
                    p.counters.signals_merged_one(r.sig);
                }
            }
            event::DELIVER => counts.delivered += 1,
            _ => {}
        }
    }

    /// The process installed a SIGCHLD action: `address` is the handler (0 `SIG_DFL`, 1
    /// `SIG_IGN`), `stack` its address interned as a one-frame stack for symbolizing.
    pub fn on_sigchld_action(&mut self, tgid: u32, address: u64, stack: StackId) {
        if let Some(p) = self.processes.get_mut(&tgid) {
            p.sigchld_handler = Some(signals::SigHandler { address, stack });
        }
    }

    /// What the kernel's lock code did (for a traced process, or to a lock one of them held).
    pub fn on_lock(&mut self, e: &locks::LockEvent) {
        self.locks.on_lock(e, &mut self.sites);
    }
}

#[cfg(test)]
pub(crate) mod tests;
