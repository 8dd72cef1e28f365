//! The agent: wires probes, ingest, state and stacks together. Everything here is glue; the
//! decisions live in `state` (what a syscall does) and `analysis` (what is a leak).

mod capture;
pub mod cost;
mod describe;
mod fp_ids;
mod layout;
pub mod policy;
pub mod proc;
pub mod proc_locks;
pub mod python;
pub mod sockets;
pub mod stacks;
pub mod stages;
pub mod symbolizer;
pub mod sysv;
pub mod task;
mod writes;

use std::collections::HashMap;

use tracer_common::{
    config::{LOSS_COUNTERS, LossCounter, StackMode},
    decode::{Record, SyscallView},
    lock::LockRecord,
    syscalls::{self, Effect, IpcKind},
};

use crate::{
    analysis::losses::{AgentLosses, Losses},
    ingest::Ingest,
    probes::{ProbeError, ProbeOptions, Probes},
    state::{
        StackId, State,
        apply::Syscall,
        locks::{FileId, LockEvent},
    },
    symbolize::{DwarfUnwinder, ModuleMap},
};
use stacks::StackStore;

#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    #[error(transparent)]
    Probe(#[from] ProbeError),
    #[error(transparent)]
    Proc(#[from] proc::ProcError),
    #[error("cannot start the ingest thread")]
    Thread(#[source] std::io::Error),
}

/// Frames kept per stack.
const MAX_FRAMES: usize = 64;
/// `/proc` descriptions per tick, so a process with a huge table cannot stall ingest.
const DESCRIBE_BUDGET: usize = 1024;
/// Only fds that lived this long are looked up in /proc: leaks are long-lived, and churning fds
/// would otherwise cost a readlink each.
const DESCRIBE_MIN_AGE_NS: u64 = 250_000_000;

/// The agent: the ring buffer's reader and everything records update, kept apart so a record
/// borrowed from the ring buffer can be handed to the tracker.
pub struct Agent {
    ingest: Ingest,
    pub tracker: Tracker,
}

pub struct Tracker {
    probes: Probes,
    pub state: State,
    pub stacks: StackStore,
    stack_mode: StackMode,
    unwinder: DwarfUnwinder,
    modules: HashMap<u32, ModuleMap, foldhash::fast::RandomState>,
    /// Kernel stack-map ids read (fp mode), and which to free.
    fp: fp_ids::FpStackIds,
    /// Socket tables by network namespace, for describing sockets' peers.
    socket_tables: sockets::TableCache,
    scratch: Vec<u64>,
    kernel_scratch: Vec<u64>,
    combined_scratch: Vec<u64>,
    /// Processes given on the command line (watch) or started (run).
    pub targets: Vec<u32>,
    /// The agent's IPC namespace (what /proc/sysvipc lists).
    ipc_namespace: Option<u64>,
    /// Processes that exec'd and whose libraries may not all be in their module map yet: their
    /// maps are read again on every tick, so a process that dies in a burst of syscalls soon
    /// after (before the agent handles them) still has its libraries known.
    /// Value: ticks in a row the maps did not change (the process stops being polled after a few).
    maps_pending: HashMap<u32, u8>,
    /// What just-exec'd processes' records said about their layout (see `layout`).
    loading: HashMap<u32, layout::Loading, foldhash::fast::RandomState>,
    /// Which processes are traced (the kernel filters; this decides about execs of untraced
    /// processes under `--comm`/`--cgroup`).
    pub policy: policy::Policy,
    pub counters: TrackerCounters,
    /// Ticks since the last liveness check of the processes believed alive.
    ticks_since_liveness: u32,
    /// When stacks nothing refers to were last dropped.
    last_sweep_ns: u64,
    /// Where the time goes, by stage (sampled).
    pub stages: stages::StageClock,
    /// DWARF mode: each thread's stack top as the kernel has it (see `capture`), by thread id,
    /// with its process.
    stack_tops: HashMap<u32, (u32, u64), foldhash::fast::RandomState>,
    /// `--stack-size` in bytes: the most a record copies.
    stack_bytes: usize,
    /// When the ends of stalled pipes were last looked up.
    ends_seen: writes::EndsSeen,
    /// CPython processes, and the Python frames of records on their way (see `python`).
    pub python: python::PythonFrames,
    /// The Python frames of the record being handled (see `capture`).
    py_now: Option<(u16, Vec<tracer_common::python::PyFrameRaw>)>,
}

/// How often unreferenced stacks are dropped.
const STACK_SWEEP_NS: u64 = 30_000_000_000;

/// What the tracker did on its own, for the loss and health metrics.
#[derive(Clone, Copy, Debug, Default)]
pub struct TrackerCounters {
    /// Processes first seen through a record (their fork was lost, or whole-host mode).
    pub discovered: u64,
    /// Fd tables resynchronised from /proc after lost records.
    pub resyncs: u64,
    /// Fds dropped by resyncs (lost closes) and added (lost opens).
    pub resync_dropped: u64,
    pub resync_added: u64,
    /// Processes found gone without their exit record.
    pub exits_inferred: u64,
    /// Records with a user stack, and allocations whose stack the budget skipped.
    pub stacks_taken: u64,
    pub stacks_skipped: u64,
    /// `--stack fp`: records whose stack id was freed from the kernel's map before they were
    /// read (see `fp_ids`): counted with the kernel's `stack_not_captured`.
    pub stacks_gone: u64,
    /// DWARF mode: stacks that ran past a copy shortened to their thread's stack top (the top
    /// was wrong for them, and is forgotten).
    pub short_stack_copies: u64,
    /// DWARF mode: stack copies received, by record size (1, 2, 4, 8, 16 KiB).
    pub stack_copies: [u64; 5],
}

impl Agent {
    pub fn new(opts: ProbeOptions) -> Result<Self, AgentError> {
        let mut probes = Probes::load(opts)?;
        let ingest = Ingest::new(probes.take_ring_buffer()?);
        let mut state = State::default();
        // SysV objects that exist already are known, and never blamed on a traced process.
        for kind in [IpcKind::Sem, IpcKind::Shm, IpcKind::Msg] {
            state.ipc.preexisting(&sysv::listing(kind));
        }
        let tracker = Tracker {
            probes,
            state,
            stacks: StackStore::default(),
            stack_mode: opts.stack_mode,
            unwinder: DwarfUnwinder::new(),
            modules: HashMap::default(),
            fp: fp_ids::FpStackIds::default(),
            socket_tables: sockets::TableCache::default(),
            scratch: Vec::with_capacity(MAX_FRAMES),
            kernel_scratch: Vec::new(),
            combined_scratch: Vec::new(),
            targets: Vec::new(),
            ipc_namespace: sysv::ipc_namespace("self"),
            maps_pending: HashMap::new(),
            loading: HashMap::default(),
            policy: policy::Policy::default(),
            counters: TrackerCounters::default(),
            ticks_since_liveness: 0,
            last_sweep_ns: 0,
            stages: stages::StageClock::default(),
            stack_tops: HashMap::default(),
            stack_bytes: opts.stack_bytes as usize,
            ends_seen: writes::EndsSeen::default(),
            python: python::PythonFrames::default(),
            py_now: None,
        };
        Ok(Agent { ingest, tracker })
    }

    /// Command names the kernel traces at exec by itself (`--comm`).
    pub fn select_comms(&mut self, comms: &[Vec<u8>]) -> Result<(), AgentError> {
        Ok(self.tracker.probes.select_comms(comms)?)
    }

    /// Starts tracing a running process (see [`Tracker::follow`]).
    pub fn follow(&mut self, pid: u32) -> Result<(), AgentError> {
        self.tracker.follow(pid)
    }

    /// Processes every record available now; returns how many.
    pub fn drain(&mut self) -> usize {
        const BATCH: usize = 4096;
        let mut total = 0;
        loop {
            let tracker = &mut self.tracker;
            let n = self
                .ingest
                .drain(BATCH, stages::SAMPLE_EVERY, |r, t| tracker.handle_timed(r, t));
            total += n;
            if n < BATCH {
                return total;
            }
        }
    }

    /// Processes at most `max` records; returns how many.
    pub fn drain_up_to(&mut self, max: usize) -> usize {
        let tracker = &mut self.tracker;
        self.ingest
            .drain(max, stages::SAMPLE_EVERY, |r, t| tracker.handle_timed(r, t))
    }

    /// The loss, resync and size figures the ingest side knows.
    pub fn fill_health(&self, h: &mut crate::analysis::metrics::AgentHealth) {
        let t = &self.tracker;
        h.records = self.records();
        h.kernel_lost = t.probes.losses();
        // `stack_not_captured` is "a record went without its stack", whoever noticed.
        h.kernel_lost[LossCounter::StackLost as usize] += t.counters.stacks_gone;
        h.undecodable = self.ingest.decode_errors;
        h.map_update_failed = t.probes.map_update_failures();
        h.resyncs = t.counters.resyncs;
        h.resync_dropped_fds = t.counters.resync_dropped;
        h.resync_added_fds = t.counters.resync_added;
        h.discovered = t.counters.discovered;
        h.exits_inferred = t.counters.exits_inferred;
        h.stacks_taken = t.counters.stacks_taken;
        h.stack_copies = t.counters.stack_copies;
        h.short_stack_copies = t.counters.short_stack_copies;
        h.python_stacks = t.python.outcomes;
        h.python_processes = t.python.processes();
        h.stacks_skipped = t.counters.stacks_skipped;
        h.evicted_stacks = t.stacks.evicted;
        h.stacks = t.stacks.len() as u64;
        h.stack_bytes = t.stacks.bytes as u64;
        h.stage_seconds = stages::Stage::ALL
            .iter()
            .map(|s| (s.name(), t.stages.seconds(*s)))
            .collect();
        h.programs = t.probes.program_costs();
    }

    /// The agent's own counters.
    pub fn status(&self) -> task::Status {
        let state = &self.tracker.state;
        task::Status {
            records: self.records(),
            lost: self.lost_events(),
            losses: self.losses(),
            tracked_fds: state.processes.values().map(|p| p.fds.len()).sum(),
            stacks: self.tracker.stacks.len(),
            targets_alive: self
                .tracker
                .targets
                .iter()
                .any(|p| state.process(*p).is_some_and(|s| s.is_alive())),
            stages: self.tracker.stages.clone(),
            stack_copies: self.tracker.counters.stack_copies,
            short_stack_copies: self.tracker.counters.short_stack_copies,
            programs: self.tracker.probes.program_costs(),
        }
    }

    /// Waits for the kernel to signal records (tokio).
    pub async fn readable(&mut self) -> std::io::Result<()> {
        self.ingest.readable().await
    }

    /// Lost records: kernel ring-buffer reserve failures plus undecodable records.
    pub fn lost_events(&self) -> u64 {
        self.losses().records()
    }

    /// Every loss counter, the kernel's and the agent's.
    pub fn losses(&self) -> Losses {
        let t = &self.tracker;
        Losses::new(
            t.probes.losses(),
            AgentLosses {
                undecodable: self.ingest.decode_errors,
                stacks_gone: t.counters.stacks_gone,
                map_update_failed: t.probes.map_update_failures(),
            },
        )
    }

    pub fn records(&self) -> u64 {
        self.ingest.records
    }
}

impl Tracker {
    /// Starts tracing a running process: the kernel filter first, then what it already has open,
    /// so nothing opened in between is missed (a record for an fd the scan also saw just replaces it).
    pub fn follow(&mut self, pid: u32) -> Result<(), AgentError> {
        if !proc::exists(pid) {
            return Err(proc::ProcError::NoSuchProcess(pid).into());
        }
        self.probes.trace(pid)?;
        if let Err(e) = self.seed(pid) {
            self.probes.untrace(pid);
            return Err(e);
        }
        self.targets.push(pid);
        Ok(())
    }

    /// Starts following a process the kernel already traces (whole-host mode, or a selected
    /// process): its state is seeded from /proc like an attach.
    pub fn adopt(&mut self, pid: u32) -> Result<(), AgentError> {
        self.seed(pid)
    }

    /// Seeds a process's state from /proc: its fds (no stacks: open before tracing), locks it
    /// holds or waits for, zombies it has, its memory maps. Syscall records older than the scan
    /// are skipped (the scan already shows their effect).
    fn seed(&mut self, pid: u32) -> Result<(), AgentError> {
        let now = proc::monotonic_ns();
        let existing = proc::scan_fds(pid)?;
        self.state
            .attach(pid, proc::comm(pid), proc::limits(pid), &existing, now);
        if let Some(p) = self.state.processes.get_mut(&pid) {
            p.container = policy::container_of(pid).into();
        }
        // Locks it holds or waits for already (and who holds those), zombies it has already.
        let known = proc_locks::read();
        self.state.locks.learn(&known, None, Some(pid), now);
        for k in known.iter().filter(|k| k.waiting && k.tgid == pid) {
            self.state.locks.learn(&known, Some(k.file), None, now);
        }
        for k in known.iter().filter(|k| k.tgid == pid) {
            if let Some(path) = proc::path_of_file(pid, k.file.dev, k.file.ino) {
                self.state.locks.set_path(k.file, &path);
            }
        }
        for child in proc::zombie_children(pid) {
            if let Some(p) = self.state.processes.get_mut(&pid) {
                p.zombies.exited(child, now);
            }
            self.probes.expect_release(child);
        }
        if let Ok(m) = ModuleMap::read(pid as i32) {
            self.modules.insert(pid, m);
            // A running process has its libraries mapped: its records can be batched.
            self.probes.maps_known(pid);
            self.detect_python(pid);
        }
        Ok(())
    }

    /// A record of a process the agent does not know: the kernel traces it, so its fork was
    /// lost, or it is new to a whole-host agent. Seeded from /proc; if it is gone already, it
    /// starts empty so that its records still count.
    fn discover(&mut self, tgid: u32, ts_ns: u64) {
        if tgid == std::process::id() {
            return;
        }
        self.counters.discovered += 1;
        if self.seed(tgid).is_err() {
            self.state.attach(tgid, Vec::new(), Default::default(), &[], 0);
            if let Some(p) = self.state.processes.get_mut(&tgid) {
                p.since_ns = ts_ns;
            }
        }
    }

    /// The kernel lost records of these processes: their tables are read again from /proc.
    fn resync_lossy(&mut self) {
        for (tgid, _lost) in self.probes.take_lost_by_process() {
            if !self.state.processes.get(&tgid).is_some_and(|p| p.is_alive()) {
                continue;
            }
            let start = proc::monotonic_ns();
            if let Ok(scan) = proc::scan_fds(tgid) {
                let r = self.state.resync(tgid, &scan, start);
                self.counters.resyncs += 1;
                self.counters.resync_dropped += u64::from(r.dropped);
                self.counters.resync_added += u64::from(r.added);
            }
        }
    }

    /// Processes believed alive whose exit record was lost are gone from /proc: they exited.
    fn infer_exits(&mut self) {
        let now = proc::monotonic_ns();
        let gone: Vec<u32> = self
            .state
            .processes
            .values()
            .filter(|p| p.is_alive() && !proc::exists(p.tgid))
            .map(|p| p.tgid)
            .collect();
        for tgid in gone {
            self.counters.exits_inferred += 1;
            self.state.on_exit(tgid, now);
            self.modules.remove(&tgid);
            self.unwinder.forget(tgid as i32);
            self.forget_stack_tops(tgid);
            self.python.forget(tgid);
        }
    }

    /// Handles a record; `decode_ns` is set for the records sampled for the stage breakdown.
    fn handle_timed(&mut self, record: Record<'_>, decode_ns: Option<u64>) {
        let Some(decode_ns) = decode_ns else {
            return self.handle(record);
        };
        self.stages.add_decode(decode_ns);
        self.stages.begin_record();
        let t = std::time::Instant::now();
        self.handle(record);
        self.stages.end_record(t.elapsed().as_nanos() as u64);
    }

    fn handle(&mut self, record: Record<'_>) {
        match record {
            Record::Syscall(v) => self.on_syscall(&v),
            Record::PyStack(p) => self.python.on_record(&p),
            Record::Fork(f) => {
                if !self.state.processes.contains_key(&f.header.tgid) {
                    self.discover(f.header.tgid, f.header.ts_ns);
                }
                self.state.on_fork(f.header.tgid, f.child_tgid, f.header.ts_ns);
                // Until it execs, the child has its parent's memory layout.
                if let Some(m) = self.modules.get(&f.header.tgid).cloned() {
                    self.modules.insert(f.child_tgid, m);
                    self.probes.maps_known(f.child_tgid);
                }
                self.python_forked(f.header.tgid, f.child_tgid);
            }
            Record::ExecUntraced(e) => self.on_exec_untraced(e),
            Record::Exec(e) => {
                let tgid = e.header.tgid;
                if !self.state.processes.contains_key(&tgid) {
                    self.discover(tgid, e.header.ts_ns);
                }
                self.modules.remove(&tgid);
                self.unwinder.forget(tgid as i32);
                self.forget_stack_tops(tgid);
                self.python.forget(tgid);
                self.loading_started(tgid, e.filename_bytes());
                // The new image and its loader at least; libraries follow (see `tick`, and
                // `layout` for a process gone before its maps could be read).
                self.refresh_modules(tgid);
                // A CPython linked into its executable is found at once.
                self.detect_python(tgid);
                self.maps_pending.insert(tgid, 0);
                let comm = proc::comm(tgid);
                let comm = if comm.is_empty() {
                    basename(e.filename_bytes()).to_vec()
                } else {
                    comm
                };
                self.state.on_exec(tgid, &comm, proc::fd_numbers(tgid).as_deref());
                if let Some(p) = self.state.processes.get_mut(&tgid) {
                    p.limits = proc::limits(tgid);
                }
            }
            Record::Exit(x) => {
                self.loading_done(x.header.tgid);
                self.state.on_exit(x.header.tgid, x.header.ts_ns);
                self.modules.remove(&x.header.tgid);
                self.unwinder.forget(x.header.tgid as i32);
                self.forget_stack_tops(x.header.tgid);
                self.python.forget(x.header.tgid);
            }
            Record::Reap(r) => self.state.on_reap(r.header.tgid, r.header.ts_ns),
            Record::Signal(s) => self.state.on_signal(s),
            Record::Lock(l) => {
                let e = lock_event(l);
                self.state.on_lock(&e);
                // A traced process waits: for whom? The holder may not be traced at all.
                if e.ret == tracer_common::lock::FILE_LOCK_DEFERRED {
                    self.state.locks.learn(&proc_locks::read(), Some(e.file), None, e.ts_ns);
                }
            }
        }
    }

    fn on_syscall(&mut self, v: &SyscallView<'_>) {
        let core = v.core;
        let tgid = core.header.tgid;
        if !self.state.processes.contains_key(&tgid) {
            self.discover(tgid, core.header.ts_ns);
        }
        // Failed calls (EBADF on any of them) are dispatched like the rest.
        let effect = if core.ret >= 0 {
            syscalls::spec(core.nr).map(|s| s.effect)
        } else {
            None
        };
        // Layout records: where code was placed, for stacks of processes gone too soon.
        match effect {
            Some(Effect::Exec) => return self.on_exec_image(tgid, v.stack),
            Some(Effect::MapCode) => return self.on_code_mapping(tgid, core),
            Some(Effect::SigAction) => return self.on_sigchld_action(tgid, v),
            _ => {}
        }
        let stack = match v.detail {
            Some(d) => {
                if self.stack_mode != StackMode::None {
                    if d.stack_weight == 0 {
                        self.counters.stacks_skipped += 1;
                    } else {
                        self.counters.stacks_taken += 1;
                    }
                }
                self.stack_of(tgid, v)
            }
            None => StackId::NONE,
        };
        let (data_kind, data) = match v.detail {
            Some(d) => (d.data_kind, v.data()),
            None => (0, &[][..]),
        };
        let sc = Syscall {
            tgid,
            tid: core.header.tid,
            ts_ns: core.header.ts_ns,
            nr: core.nr,
            ret: core.ret,
            args: core.args,
            data_kind,
            data,
            weight: v.detail.map_or(1, |d| d.stack_weight),
        };
        let write = syscalls::spec(core.nr).is_some_and(|s| s.effect == Effect::Write);
        if write && core.ret != -syscalls::EBADF {
            return self.on_write(&sc, stack);
        }
        let locked = self.state.on_syscall(&sc, stack);
        if let Some(file) = locked {
            self.name_locked_file(tgid, sc.args[0] as i32, file);
        }
        match effect {
            None => {}
            Some(Effect::IpcGet(kind)) => self.note_ipc_namespace(tgid, kind, core.ret as i32),
            // Closes (most records) leave nothing to describe.
            Some(Effect::Close | Effect::CloseRange | Effect::Wait) => {}
            Some(e) => {
                if e == Effect::NewFd && data_kind == tracer_common::fd::data_kind::PATH {
                    self.loader_opened(tgid, core.ret as i32, data);
                }
                let t = self.stages.start();
                self.describe_unknown_now(&sc);
                self.stages.stop(stages::Stage::Describe, t);
            }
        }
    }

    /// An untraced process exec'd: follow it if its new name or its cgroup is selected.
    fn on_exec_untraced(&mut self, e: &tracer_common::process::ExecRecord) {
        let tgid = e.header.tgid;
        if self.state.processes.get(&tgid).is_some_and(|p| p.is_alive()) {
            return;
        }
        // The kernel names the task after the file's base name (fs/exec.c, __set_task_comm of
        // kbasename(bprm->filename)), cut to TASK_COMM_LEN - 1 bytes.
        let name = basename(e.filename_bytes());
        let comm = &name[..name.len().min(15)];
        if self.policy.selects(comm, policy::cgroup_of(tgid).as_deref()) {
            match self.probes.trace(tgid) {
                Ok(()) => {
                    // Gone already: nothing to follow. Otherwise its next record seeds it.
                    if let Err(e) = self.seed(tgid) {
                        log::debug!("PID {tgid} not seeded at its exec: {e}");
                    }
                }
                // Counted by the probes (`map_update_failed`).
                Err(err) => log::warn!("cannot follow PID {tgid}: {err}"),
            }
        }
    }

    /// A locked file is named by the path of the fd the lock call used (once per file).
    fn name_locked_file(&mut self, tgid: u32, fd: i32, file: FileId) {
        if self.state.locks.files.get(&file).is_some_and(|f| f.path.is_none())
            && let Some((_, target)) = proc::describe_fd(tgid, fd)
        {
            self.state.locks.set_path(file, &target);
        }
    }

    /// An IPC object created in another IPC namespace (a container) is not in the agent's
    /// /proc/sysvipc: mark it so that reconciling does not take it for removed.
    fn note_ipc_namespace(&mut self, tgid: u32, kind: IpcKind, id: i32) {
        let theirs = sysv::ipc_namespace(&tgid.to_string());
        if theirs.is_some()
            && theirs != self.ipc_namespace
            && let Some(o) = self.state.ipc.objects.get_mut(&(kind, id))
        {
            o.namespace = theirs.unwrap_or(0);
        }
    }

    /// Reconciles SysV objects with /proc/sysvipc (removed by untraced processes, e.g. ipcrm).
    pub fn sync_ipc(&mut self) {
        for kind in [IpcKind::Sem, IpcKind::Shm, IpcKind::Msg] {
            if self.state.ipc.objects.keys().any(|(k, _)| *k == kind) {
                let listed = sysv::listing(kind);
                let State { ipc, sites, .. } = &mut self.state;
                ipc.sync(kind, &listed, sites);
            }
        }
    }

    /// Periodic work: sample site counts, describe long-lived fds from /proc.
    pub fn tick(&mut self) {
        let started = std::time::Instant::now();
        self.tick_untimed();
        self.stages.add_tick(started.elapsed().as_nanos() as u64);
    }

    fn tick_untimed(&mut self) {
        self.resync_lossy();
        /// Ticks between liveness checks (a stat per traced process).
        const LIVENESS_TICKS: u32 = 10;
        self.ticks_since_liveness += 1;
        if self.ticks_since_liveness >= LIVENESS_TICKS {
            self.ticks_since_liveness = 0;
            self.infer_exits();
        }
        let now = proc::monotonic_ns();
        self.state.sample(now);
        self.sync_ipc();
        /// Unchanged reads after which a process's libraries are taken as loaded.
        const SETTLED: u8 = 5;
        let pending: Vec<u32> = self.maps_pending.keys().copied().collect();
        for tgid in pending {
            let changed = self.refresh_modules(tgid);
            let alive = self.modules.contains_key(&tgid) && proc::exists(tgid);
            match self.maps_pending.get_mut(&tgid) {
                Some(n) if alive && !changed && *n + 1 >= SETTLED => self.loading_done(tgid),
                Some(n) if alive => *n = if changed { 0 } else { *n + 1 },
                // Gone: what its records said stays until its exit record (records of it may
                // still be queued).
                _ => {
                    self.maps_pending.remove(&tgid);
                }
            }
        }
        self.describe_pending(DESCRIBE_BUDGET, DESCRIBE_MIN_AGE_NS);
        self.state.expire(now);
        if now.saturating_sub(self.last_sweep_ns) >= STACK_SWEEP_NS {
            self.last_sweep_ns = now;
            self.sweep_stacks();
        }
    }

    /// Drops the stacks nothing in the state refers to any more, and frees the kernel's
    /// frame-pointer stack ids no record named since the last sweep (see `fp_ids`). Call it
    /// right after a drain.
    pub fn sweep_stacks(&mut self) {
        let live = self.state.referenced_stacks();
        self.stacks.sweep(&|id| live.contains(&id));
        for id in self.fp.sweep(|id| live.contains(&id), proc::monotonic_ns()) {
            self.probes.forget_fp_stack(id);
        }
    }

    /// Refreshes RLIMIT_NOFILE of live processes (it can change with prlimit).
    pub fn refresh_limits(&mut self) {
        for p in self.state.processes.values_mut().filter(|p| p.is_alive()) {
            p.limits = proc::limits(p.tgid);
        }
    }

    /// Whether syscall results come through `tp_btf/sys_exit` (else the raw tracepoint).
    pub fn typed_sys_exit(&self) -> bool {
        self.probes.typed_sys_exit()
    }

    pub fn kernel_losses(&self) -> [u64; LOSS_COUNTERS as usize] {
        self.probes.losses()
    }

    pub fn untrace(&mut self, pid: u32) {
        self.probes.untrace(pid);
    }
}

fn lock_event(l: &LockRecord) -> LockEvent {
    LockEvent {
        tgid: l.header.tgid,
        tid: l.header.tid,
        ts_ns: l.header.ts_ns,
        family: l.family,
        file: FileId { dev: l.dev, ino: l.ino },
        owner: l.owner,
        lock_type: l.lock_type,
        start: l.start,
        end: l.end,
        ret: l.ret,
    }
}

fn basename(path: &[u8]) -> &[u8] {
    path.rsplit(|b| *b == b'/').next().unwrap_or(path)
}
