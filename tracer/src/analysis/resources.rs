//! The report beyond fd sites: incidents (limit failures, select beyond FD_SETSIZE, fd misuse),
//! SysV IPC orphans and headroom, zombies and signals (file locks: [`super::locks`]).

use serde::Serialize;

use super::{stack::Stack, trend};
use crate::{
    agent::sysv::SystemLimits,
    state::{
        Resource, State,
        incidents::{IncidentKind, errno_name},
        signals::{SIGCHLD, SignalCounts, signal_name},
    },
};

#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct IncidentReport {
    pub pid: u32,
    pub kind: &'static str,
    pub syscall: String,
    /// Symbolic errno (EMFILE, EBADF, ...), absent when the call did not fail.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub errno: Option<&'static str>,
    pub count: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fd: Option<i64>,
    /// `nfds` for select beyond FD_SETSIZE; open fds for EMFILE; ms waited for lock failures.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub value: Option<u64>,
    pub first_age_ms: u64,
    pub last_age_ms: u64,
    /// A process holding the lock when a lock call failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub holder_pid: Option<u32>,
    pub stack: Stack,
    /// For double close and use after close: the close that came first.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub previous_close: Option<PreviousClose>,
    /// For EMFILE/ENFILE: the allocation site holding the most of the process's fds then.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub top_site: Option<TopSiteReport>,
}

/// What filled the fd table when an allocation failed with EMFILE/ENFILE.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct TopSiteReport {
    pub kind: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub family: Option<&'static str>,
    /// Fds open from the site at the failure.
    pub count: u64,
    /// Its share of the process's open fds then (0..1).
    pub share: f64,
    pub before_attach: bool,
    pub stack: Stack,
}

#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct PreviousClose {
    pub tid: u32,
    pub age_ms: u64,
    /// Empty unless `--close-stacks` was given.
    pub stack: Stack,
}

#[derive(Clone, Debug, Serialize, PartialEq, Default)]
pub struct IpcReport {
    /// Objects whose creator exited without removing them, grouped by creating stack.
    pub orphans: Vec<OrphanGroup>,
    /// Objects created by traced processes that still exist (orphans included).
    pub live: u64,
    /// Removed while traced: sem, shm, msg.
    pub removed: [u64; 3],
}

#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct OrphanGroup {
    pub resource: &'static str,
    pub count: u64,
    /// Ids to pass to `ipcrm` (the first 32).
    pub ids: Vec<i32>,
    pub keys: Vec<String>,
    pub creator_pids: Vec<u32>,
    pub oldest_age_ms: u64,
    pub stack: Stack,
}

#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct ZombieReport {
    pub pid: u32,
    pub zombies: u64,
    pub max_zombies: u32,
    pub reaped: u64,
    pub mean_reap_delay_ms: Option<f64>,
    pub growth_per_min: f64,
    /// The zombie count kept growing: a suspect.
    pub growing: bool,
    /// Zombies piled up (`max_zombies` at least 10) while SIGCHLDs merged: the "one waitpid per
    /// SIGCHLD" bug, even if they were all reaped later.
    pub piled: bool,
    pub sigchld: SignalCountsReport,
    /// The SIGCHLD handler the parent installed last (`rt_sigaction`), if traced.
    pub sigchld_handler: Option<HandlerReport>,
    /// What to change, for a pile.
    pub fix: Option<&'static str>,
}

#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct HandlerReport {
    /// `sa_handler` (hex), or `SIG_DFL`/`SIG_IGN`.
    pub address: String,
    /// The handler's symbol (one frame; empty for SIG_DFL/SIG_IGN).
    pub stack: Stack,
}

/// The fix for a zombie pile.
pub const ZOMBIE_FIX: &str = "standard signals merge: on each SIGCHLD reap in a loop, while (waitpid(-1, &status, WNOHANG) > 0), until it returns 0";

#[derive(Clone, Copy, Debug, Serialize, PartialEq, Default)]
pub struct SignalCountsReport {
    pub generated: u64,
    pub delivered: u64,
    pub ignored: u64,
    pub coalesced: u64,
    pub failed: u64,
}

impl From<SignalCounts> for SignalCountsReport {
    fn from(c: SignalCounts) -> Self {
        SignalCountsReport {
            generated: c.generated,
            delivered: c.delivered,
            ignored: c.ignored,
            coalesced: c.coalesced,
            failed: c.failed,
        }
    }
}

#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct SignalReport {
    pub pid: u32,
    pub signal: String,
    pub number: i32,
    #[serde(flatten)]
    pub counts: SignalCountsReport,
}

const MS: u64 = 1_000_000;

pub fn incidents(state: &State, now_ns: u64) -> Vec<IncidentReport> {
    let mut out: Vec<IncidentReport> = state
        .incidents
        .list
        .iter()
        .map(|i| {
            let previous_close = i.previous_close.map(|c| PreviousClose {
                tid: c.tid,
                age_ms: i.last_ns.saturating_sub(c.ts_ns) / MS,
                stack: Stack::unresolved(c.stack),
            });
            IncidentReport {
                pid: i.tgid,
                kind: i.kind.as_str(),
                syscall: tracer_common::syscalls::name(i.nr).map_or_else(|| format!("syscall {}", i.nr), str::to_owned),
                errno: (i.errno != 0).then(|| match (i.kind, i.errno) {
                    // The same number; flock(2) and fcntl(2) document it by this name.
                    (IncidentKind::LockFailure, 11) => "EWOULDBLOCK",
                    _ => errno_name(i.errno),
                }),
                count: i.count,
                fd: (i.fd >= 0).then_some(i.fd),
                value: (i.value != 0).then_some(i.value),
                first_age_ms: now_ns.saturating_sub(i.first_ns) / MS,
                last_age_ms: now_ns.saturating_sub(i.last_ns) / MS,
                holder_pid: i.holder,
                stack: Stack::unresolved(i.stack),
                previous_close,
                top_site: i.top_site.map(|t| TopSiteReport {
                    kind: t.kind.as_str(),
                    family: (t.family != 0).then(|| crate::state::kind::family_name(t.family)),
                    count: t.count,
                    share: if t.open == 0 {
                        0.0
                    } else {
                        ((t.count as f64 / t.open as f64) * 1000.0).round() / 1000.0
                    },
                    before_attach: t.before_attach,
                    stack: Stack::unresolved(t.stack),
                }),
            }
        })
        .collect();
    out.sort_by(|a, b| a.pid.cmp(&b.pid).then(a.kind.cmp(b.kind)).then(b.count.cmp(&a.count)));
    out
}

pub fn ipc(state: &State, now_ns: u64) -> IpcReport {
    let mut groups: Vec<OrphanGroup> = Vec::new();
    for o in state.ipc.orphans() {
        let resource = Resource::from_ipc(o.kind).as_str();
        let stack = Stack::unresolved(o.stack);
        let age = now_ns.saturating_sub(o.created_ns) / MS;
        let key = crate::state::ipc::describe_key(o.key);
        let one = OrphanGroup {
            resource,
            count: 1,
            ids: vec![o.id],
            keys: vec![key],
            creator_pids: o.creator.into_iter().collect(),
            oldest_age_ms: age,
            stack,
        };
        match groups
            .iter_mut()
            .find(|g| g.resource == resource && g.stack.id == one.stack.id)
        {
            Some(g) => g.absorb(one),
            None => groups.push(one),
        }
    }
    groups.sort_by(|a, b| b.count.cmp(&a.count).then(a.resource.cmp(b.resource)));
    IpcReport {
        orphans: groups,
        live: state.ipc.objects.values().filter(|o| o.creator.is_some()).count() as u64,
        removed: state.ipc.removed,
    }
}

impl OrphanGroup {
    /// Adds another group's objects (same resource, same code) to this one.
    fn absorb(&mut self, other: OrphanGroup) {
        self.count += other.count;
        for id in other.ids {
            if self.ids.len() < 32 {
                self.ids.push(id);
            }
        }
        for key in other.keys {
            if !self.keys.contains(&key) && self.keys.len() < 8 {
                self.keys.push(key);
            }
        }
        for c in other.creator_pids {
            if !self.creator_pids.contains(&c) && self.creator_pids.len() < 32 {
                self.creator_pids.push(c);
            }
        }
        self.oldest_age_ms = self.oldest_age_ms.max(other.oldest_age_ms);
    }
}

/// Orphans are grouped by stack id when the report is built; stacks are per process, so groups
/// of different creators whose stacks resolve to the same frames are one group.
pub fn merge_orphan_groups(groups: &mut Vec<OrphanGroup>) {
    let mut merged: Vec<OrphanGroup> = Vec::with_capacity(groups.len());
    for g in groups.drain(..) {
        match merged
            .iter_mut()
            .find(|m| m.resource == g.resource && m.stack.frames == g.stack.frames)
        {
            Some(m) => m.absorb(g),
            None => merged.push(g),
        }
    }
    merged.sort_by(|a, b| b.count.cmp(&a.count).then(a.resource.cmp(b.resource)));
    *groups = merged;
}

pub fn zombies(state: &State, now_ns: u64) -> Vec<ZombieReport> {
    let mut out = Vec::new();
    let mut pids: Vec<&u32> = state.processes.keys().collect();
    pids.sort_unstable();
    for pid in pids {
        let Some(p) = state.processes.get(pid) else { continue };
        let z = &p.zombies;
        let sigchld = p.signals.get(&SIGCHLD).copied().unwrap_or_default();
        if z.max == 0 && z.reaped == 0 && sigchld.coalesced == 0 {
            continue;
        }
        let mut samples = z.samples.points();
        if p.is_alive() && samples.last().is_none_or(|s| s.0 < now_ns) {
            samples.push((now_ns, z.pending.len() as u32));
        }
        let t = trend::classify(&samples);
        let piled = z.piled(sigchld.coalesced);
        let sigchld_handler = p.sigchld_handler.map(|h| HandlerReport {
            address: match h.address {
                0 => "SIG_DFL".to_owned(),
                1 => "SIG_IGN".to_owned(),
                a => format!("{a:#x}"),
            },
            stack: Stack::unresolved(h.stack),
        });
        out.push(ZombieReport {
            pid: p.tgid,
            zombies: z.pending.len() as u64,
            max_zombies: z.max,
            reaped: z.reaped,
            mean_reap_delay_ms: (z.reaped > 0)
                .then(|| ((z.reap_delay_ns as f64 / z.reaped as f64 / 1e6) * 100.0).round() / 100.0),
            growth_per_min: (t.growth_per_min * 100.0).round() / 100.0,
            growing: t.growing,
            piled,
            sigchld: sigchld.into(),
            sigchld_handler,
            fix: (piled || (t.growing && sigchld.coalesced > 0)).then_some(ZOMBIE_FIX),
        });
    }
    out
}

pub fn signals(state: &State) -> Vec<SignalReport> {
    let mut out = Vec::new();
    let mut pids: Vec<&u32> = state.processes.keys().collect();
    pids.sort_unstable();
    for pid in pids {
        let Some(p) = state.processes.get(pid) else { continue };
        for (sig, c) in &p.signals {
            out.push(SignalReport {
                pid: p.tgid,
                signal: signal_name(*sig),
                number: *sig,
                counts: (*c).into(),
            });
        }
    }
    out
}

/// Seconds until a SysV table is full at a site's rate (None without a limit or growth).
pub fn time_to_ipc_limit(resource: Resource, growth_per_min: f64, system: Option<&SystemLimits>) -> Option<f64> {
    let s = system?;
    let usage = match resource {
        Resource::SemSet => s.sem_sets,
        Resource::ShmSegment => s.shm_segments,
        Resource::MsgQueue => s.msg_queues,
        _ => return None,
    };
    let max = usage.max?;
    (growth_per_min > 0.0).then(|| max.saturating_sub(usage.used) as f64 / (growth_per_min / 60.0))
}
