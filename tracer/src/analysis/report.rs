//! The report: the stable structure behind `--format json` and the text output.

use std::collections::{BTreeMap, HashMap};

use serde::Serialize;

use super::{
    locks::{self, LockReport},
    losses::Losses,
    resources::{self, IncidentReport, IpcReport, SignalReport, ZombieReport},
    stack::Stack,
    trend,
};
use crate::{
    agent::sysv::SystemLimits,
    state::{Origin, ProcessState, Resource, SiteId, SiteStats, StackId, State, kind::family_name},
};

#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct Report {
    /// Records lost whole: ring-buffer reservation failures plus undecodable records.
    pub lost_events: u64,
    /// Every loss counter, each under its own name.
    pub losses: Losses,
    pub processes: Vec<ProcessSummary>,
    pub suspects: Vec<SiteReport>,
    /// Every site with fds still open (suspects included).
    pub outstanding: Vec<SiteReport>,
    /// Calls that failed on a limit, select beyond FD_SETSIZE, descriptor misuse.
    pub incidents: Vec<IncidentReport>,
    pub ipc: IpcReport,
    /// Files locked, waited for, or contended while traced.
    pub locks: Vec<LockReport>,
    /// Parents with zombie children, with their SIGCHLD counts.
    pub zombies: Vec<ZombieReport>,
    /// Signals received by traced processes, per signal.
    pub signals: Vec<SignalReport>,
    /// Writes blocked on full pipes, FIFOs, eventfds and AF_UNIX sockets, per object.
    pub stalls: Vec<super::stalls::StallReport>,
    /// System-wide headroom (absent in unit tests).
    pub system: Option<SystemLimits>,
}

#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct ProcessSummary {
    pub pid: u32,
    pub comm: String,
    /// Hex of the raw bytes, present only when `comm` is not valid UTF-8.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub comm_hex: Option<String>,
    /// The raw bytes, for the text output's escaping.
    #[serde(skip)]
    pub comm_bytes: Vec<u8>,
    pub open_fds: usize,
    pub fd_soft_limit: Option<u64>,
    pub fd_hard_limit: Option<u64>,
    pub exited: bool,
    pub by_kind: BTreeMap<&'static str, usize>,
    /// Fds the process created while traced (closed ones included).
    pub allocations: u64,
    /// Allocations that failed on a limit (EMFILE/ENFILE, ENOSPC, EAGAIN from fork).
    pub limit_failures: u64,
    /// Children exited and not reaped.
    pub zombies: usize,
    /// The parent process, when known (the text report sums short-lived children per parent).
    #[serde(skip)]
    pub parent: Option<u32>,
    /// The language runtime its stacks show frames of (`CPython 3.11.2`), or why they show
    /// only native frames (an interpreter version tracer cannot read).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub runtime: Option<String>,
}

#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct SiteReport {
    pub pid: u32,
    pub resource: &'static str,
    pub kind: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub family: Option<&'static str>,
    pub count: u32,
    /// What `count` stands for when stacks were sampled under the budget (`--stack-budget`):
    /// each sampled stack weighs its sampling period. Absent when every allocation had its stack.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub estimated: Option<u64>,
    /// Allocations from this site over the whole trace (closed ones included).
    pub allocations: u64,
    pub growth_per_min: f64,
    pub example: Option<String>,
    /// Hex of the raw bytes, present only when `example` is not valid UTF-8.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub example_hex: Option<String>,
    /// The raw bytes, for the text output's escaping.
    #[serde(skip)]
    pub example_bytes: Option<Box<[u8]>>,
    pub oldest_age_ms: u64,
    /// Seconds until the process reaches its soft RLIMIT_NOFILE (fds) or the system its SysV
    /// table limit (SEMMNI, SHMMNI, MSGMNI) at this site's rate.
    pub time_to_limit_s: Option<f64>,
    /// Open before tracing started: no allocation stack.
    pub before_attach: bool,
    /// The limit whose failures stopped this suspect's growth (`EMFILE`, `ENFILE`, `ENOSPC`):
    /// it rose until its process's allocations failed, and holds what it took. `None` for
    /// sites still growing and for the rest.
    pub stopped_by_limit: Option<&'static str>,
    /// The count the process's teardown released at its exit: the site rose steadily for the
    /// run and only the exit emptied it (CPython closes every file object at exit), so it is a
    /// suspect with nothing open at the end. `None` for the rest.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub released_at_exit: Option<u64>,
    pub stack: Stack,
}

#[derive(Clone, Debug, Default, Serialize, PartialEq, Eq)]
pub struct Frame {
    pub address: String,
    pub function: Option<String>,
    pub file: Option<String>,
    pub line: Option<u32>,
    pub module: Option<String>,
    /// Hex of the module path's raw bytes, present only when it is not valid UTF-8.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub module_hex: Option<String>,
    /// The module path's raw bytes, for the text output's escaping (empty: use `module`).
    #[serde(skip)]
    pub module_bytes: Vec<u8>,
    /// Offset of the address in the module file, the form `addr2line -e MODULE` takes; shown
    /// as `module+0xOFFSET` when no symbol names the frame. JSON: a hex string, absent when
    /// unknown (kernel frames, addresses outside any module).
    #[serde(serialize_with = "hex_offset", skip_serializing_if = "Option::is_none")]
    pub offset: Option<u64>,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub inlined: bool,
    /// A Python frame (CPython's frame chain): `function` is the code object's qualified name,
    /// `file` and `line` where it was; no module, no offset.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub python: bool,
    /// The module's GNU build id (hex), for pprof mappings; not part of the JSON contract.
    #[serde(skip)]
    pub build_id: Option<String>,
}

/// What a Python frame shows in the address column.
pub const PYTHON_ADDRESS: &str = "[python]";

fn hex_offset<S: serde::Serializer>(offset: &Option<u64>, s: S) -> Result<S::Ok, S::Error> {
    match offset {
        Some(o) => s.serialize_str(&format!("{o:#x}")),
        None => s.serialize_none(),
    }
}

impl Frame {
    /// A Python frame: a code object's qualified name, its file and the line of the instruction.
    pub fn python(function: &str, file: &str, line: Option<u32>) -> Self {
        Frame {
            address: PYTHON_ADDRESS.into(),
            function: Some(function.into()),
            file: Some(file.into()),
            line,
            python: true,
            ..Default::default()
        }
    }

    /// Names the frame's module by its file's path, keeping bytes that are not UTF-8.
    pub fn in_module(mut self, path: &std::path::Path) -> Self {
        use std::os::unix::ffi::OsStrExt;
        let bytes = path.as_os_str().as_bytes();
        (self.module, self.module_hex) = {
            let (text, hex) = text_and_hex(bytes);
            (Some(text), hex)
        };
        self.module_bytes = bytes.to_vec();
        self
    }
}

#[derive(Clone, Debug, Default)]
pub struct ReportOptions {
    /// Fds younger than this are left out.
    pub min_age_ns: u64,
    /// At most this many suspects and this many outstanding sites.
    pub top: Option<usize>,
    /// A lock held this long while others wait is a suspect.
    pub lock_hold_ns: u64,
    /// System-wide limits, read by the caller.
    pub system: Option<SystemLimits>,
    /// List only the N processes with the most open fds (a whole host has hundreds).
    pub top_processes: Option<usize>,
}

/// Text as UTF-8 where it is, with a lossless hex copy where it is not.
pub fn text_and_hex(bytes: &[u8]) -> (String, Option<String>) {
    match std::str::from_utf8(bytes) {
        Ok(s) => (s.to_owned(), None),
        Err(_) => (
            String::from_utf8_lossy(bytes).into_owned(),
            Some(bytes.iter().map(|b| format!("{b:02x}")).collect()),
        ),
    }
}

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

impl Report {
    /// Every stack the report names (sites, incidents, orphans, lock parties).
    pub fn stacks_mut(&mut self) -> Vec<&mut Stack> {
        let mut v: Vec<&mut Stack> = Vec::new();
        for s in self.suspects.iter_mut().chain(self.outstanding.iter_mut()) {
            v.push(&mut s.stack);
        }
        for i in &mut self.incidents {
            v.push(&mut i.stack);
            if let Some(c) = &mut i.previous_close {
                v.push(&mut c.stack);
            }
            if let Some(t) = &mut i.top_site {
                v.push(&mut t.stack);
            }
        }
        for g in &mut self.ipc.orphans {
            v.push(&mut g.stack);
        }
        for l in &mut self.locks {
            v.extend(l.held.iter_mut().map(|h| &mut h.stack));
            v.extend(l.max_waiter.iter_mut().map(|p| &mut p.stack));
            v.extend(l.max_wait_holder.iter_mut().map(|p| &mut p.stack));
            v.extend(l.longest_hold.iter_mut().map(|h| &mut h.stack));
        }
        for z in &mut self.zombies {
            v.extend(z.sigchld_handler.iter_mut().map(|h| &mut h.stack));
        }
        for s in &mut self.stalls {
            v.extend(s.longest.iter_mut().map(|w| &mut w.stack));
            v.extend(s.refused.iter_mut().map(|w| &mut w.stack));
        }
        v
    }

    /// The distinct stack ids to resolve.
    pub fn stack_ids(&mut self) -> Vec<StackId> {
        let mut ids: Vec<StackId> = self
            .stacks_mut()
            .into_iter()
            .map(|s| s.id)
            .filter(|id| *id != StackId::NONE)
            .collect();
        ids.sort_unstable();
        ids.dedup();
        ids
    }

    /// Fills in every stack's frames; orphan groups of different processes whose stacks turn
    /// out to be the same code are merged.
    pub fn resolve_stacks(&mut self, mut frames: impl FnMut(StackId) -> Vec<Frame>) {
        for s in self.stacks_mut() {
            if s.id != StackId::NONE && s.frames.is_empty() {
                s.frames = frames(s.id);
            }
        }
        resources::merge_orphan_groups(&mut self.ipc.orphans);
    }
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
        incidents: resources::incidents(state, now_ns),
        ipc: resources::ipc(state, now_ns),
        locks: locks::locks(state, now_ns, opts.lock_hold_ns),
        zombies: resources::zombies(state, now_ns),
        signals: resources::signals(state),
        stalls: super::stalls::stalls(state, now_ns, opts.system.as_ref()),
        system: opts.system,
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
        (_, true, ..) => resources::time_to_ipc_limit(resource, t.growth_per_min, opts.system.as_ref()).map(round2),
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
        resource: resource.as_str(),
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
    if p.is_alive() && samples.last().is_none_or(|s| s.0 < now_ns) {
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
        Resource::Flock | Resource::PosixLock => None,
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

fn round2(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}
