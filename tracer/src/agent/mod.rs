//! The agent: wires probes, ingest, state and stacks together. Everything here is glue; the
//! decisions live in `state` (what a syscall does) and `analysis` (what is a leak).

pub mod proc;
pub mod sockets;
pub mod stacks;
pub mod sysv;

use std::collections::HashMap;

use tracer_common::{
    config::{LOSS_COUNTERS, LossCounter, StackMode},
    decode::{Record, SyscallView},
    lock::LockRecord,
    syscalls::{self, Effect, IpcKind},
};

use crate::{
    ingest::Ingest,
    probes::{ProbeError, ProbeOptions, Probes},
    state::{
        StackId, State,
        apply::Syscall,
        locks::{FileId, LockEvent},
    },
    symbolize::{DwarfUnwinder, ModuleMap, UserRegs},
};
use stacks::StackStore;

#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    #[error(transparent)]
    Probe(#[from] ProbeError),
    #[error(transparent)]
    Proc(#[from] proc::ProcError),
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
    modules: HashMap<u32, ModuleMap>,
    /// Kernel stack-map ids already interned, per process (fp mode).
    fp_ids: HashMap<(u32, i64), StackId>,
    scratch: Vec<u64>,
    /// Processes given on the command line (watch) or started (run).
    pub targets: Vec<u32>,
    /// The agent's IPC namespace (what /proc/sysvipc lists).
    ipc_namespace: Option<u64>,
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
            modules: HashMap::new(),
            fp_ids: HashMap::new(),
            scratch: Vec::with_capacity(MAX_FRAMES),
            targets: Vec::new(),
            ipc_namespace: sysv::ipc_namespace("self"),
        };
        Ok(Agent { ingest, tracker })
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
            let n = self.ingest.drain(BATCH, |r| tracker.handle(r));
            total += n;
            if n < BATCH {
                return total;
            }
        }
    }

    /// Waits for the kernel to signal records (tokio).
    pub async fn readable(&mut self) -> std::io::Result<()> {
        self.ingest.readable().await
    }

    /// Lost records: kernel ring-buffer reserve failures plus undecodable records.
    pub fn lost_events(&self) -> u64 {
        let l = self.tracker.probes.losses();
        l[LossCounter::RingBufFull as usize] + self.ingest.decode_errors
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
        let existing = match proc::scan_fds(pid) {
            Ok(e) => e,
            Err(e) => {
                self.probes.untrace(pid);
                return Err(e.into());
            }
        };
        let now = proc::monotonic_ns();
        self.state
            .attach(pid, proc::comm(pid), proc::limits(pid), &existing, now);
        if let Ok(m) = ModuleMap::read(pid as i32) {
            self.modules.insert(pid, m);
            // A running process has its libraries mapped: its records can be batched.
            self.probes.maps_known(pid);
        }
        self.targets.push(pid);
        Ok(())
    }

    fn handle(&mut self, record: Record<'_>) {
        match record {
            Record::Syscall(v) => self.on_syscall(&v),
            Record::Fork(f) => {
                self.state.on_fork(f.header.tgid, f.child_tgid, f.header.ts_ns);
                // Until it execs, the child has its parent's memory layout.
                if let Some(m) = self.modules.get(&f.header.tgid).cloned() {
                    self.modules.insert(f.child_tgid, m);
                    self.probes.maps_known(f.child_tgid);
                }
            }
            Record::Exec(e) => {
                let tgid = e.header.tgid;
                self.modules.remove(&tgid);
                self.unwinder.forget(tgid as i32);
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
                self.state.on_exit(x.header.tgid, x.header.ts_ns);
                self.modules.remove(&x.header.tgid);
                self.unwinder.forget(x.header.tgid as i32);
            }
            Record::Reap(r) => self.state.on_reap(r.header.tgid, r.header.ts_ns),
            Record::Signal(s) => self.state.on_signal(s),
            Record::Lock(l) => self.state.on_lock(&lock_event(l)),
        }
    }

    fn on_syscall(&mut self, v: &SyscallView<'_>) {
        let core = v.core;
        let tgid = core.header.tgid;
        if !self.state.processes.contains_key(&tgid) {
            return;
        }
        let stack = if v.detail.is_some() {
            self.stack_of(tgid, v)
        } else {
            StackId::NONE
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
        };
        let locked = self.state.on_syscall(&sc, stack);
        if let Some(file) = locked {
            self.name_locked_file(tgid, sc.args[0] as i32, file);
        }
        if core.ret >= 0 {
            match syscalls::spec(core.nr).map(|s| s.effect) {
                Some(Effect::IpcGet(kind)) => self.note_ipc_namespace(tgid, kind, core.ret as i32),
                _ => self.describe_unknown_now(&sc),
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

    fn stack_of(&mut self, tgid: u32, v: &SyscallView<'_>) -> StackId {
        let Some(d) = v.detail else {
            return StackId::NONE;
        };
        match self.stack_mode {
            StackMode::None => StackId::NONE,
            StackMode::FramePointer => {
                if d.stack_id < 0 {
                    return StackId::NONE;
                }
                if let Some(id) = self.fp_ids.get(&(tgid, d.stack_id)) {
                    return *id;
                }
                let mut addrs = std::mem::take(&mut self.scratch);
                self.probes.fp_stack(d.stack_id as u32, &mut addrs);
                self.truncate_at_garbage(tgid, &mut addrs);
                let id = self.intern(tgid, &addrs);
                self.scratch = addrs;
                self.fp_ids.insert((tgid, d.stack_id), id);
                id
            }
            StackMode::Dwarf => {
                let regs = UserRegs {
                    ip: d.user_ip,
                    sp: d.user_sp,
                    bp: d.user_bp,
                };
                let mut addrs = std::mem::take(&mut self.scratch);
                // The map must know every module the stack runs through, or framehop has no CFI
                // for it and falls back to frame pointers (skipping callers): read it again when
                // the ip is outside it (libraries mapped since the last read, e.g. libc after
                // ld.so's first opens), and unwind again once if a frame falls outside it.
                self.modules_covering(tgid, &[regs.ip]);
                self.unwind_into(tgid, regs, v.stack, &mut addrs);
                let known = self
                    .modules
                    .get(&tgid)
                    .is_some_and(|m| addrs.iter().all(|a| m.covers(*a)));
                if !known && self.refresh_modules(tgid) {
                    self.unwind_into(tgid, regs, v.stack, &mut addrs);
                }
                let id = self.intern(tgid, &addrs);
                self.scratch = addrs;
                id
            }
        }
    }

    /// A frame-pointer walk through code built without frame pointers (glibc's syscall
    /// wrappers use rbp as a general register) reads data as return addresses: stop at the first
    /// address outside executable code, so one call site is one stack whatever the garbage.
    fn truncate_at_garbage(&mut self, tgid: u32, addrs: &mut Vec<u64>) {
        if let Some(m) = self.modules_covering(tgid, addrs)
            && let Some(bad) = addrs.iter().position(|a| !m.covers(*a))
        {
            addrs.truncate(bad.max(1));
        }
    }

    fn unwind_into(&mut self, tgid: u32, regs: UserRegs, stack: &[u8], addrs: &mut Vec<u64>) {
        match self.modules.get(&tgid) {
            Some(m) => self.unwinder.unwind(tgid as i32, m, regs, stack, MAX_FRAMES, addrs),
            None => {
                addrs.clear();
                addrs.push(regs.ip);
            }
        }
    }

    /// Reads the process's maps again; false if they did not change (or it is gone).
    fn refresh_modules(&mut self, tgid: u32) -> bool {
        match ModuleMap::read(tgid as i32) {
            Ok(m) => {
                let changed = self.modules.get(&tgid).is_none_or(|old| old.mappings != m.mappings);
                self.modules.insert(tgid, m);
                changed
            }
            Err(_) => false,
        }
    }

    /// The process's module map, read again if a frame falls outside the known modules (a
    /// library loaded after the last read).
    fn modules_covering(&mut self, tgid: u32, addrs: &[u64]) -> Option<&ModuleMap> {
        let stale = self
            .modules
            .get(&tgid)
            .is_none_or(|m| addrs.iter().any(|a| !m.covers(*a)));
        if stale && let Ok(m) = ModuleMap::read(tgid as i32) {
            self.modules.insert(tgid, m);
        }
        self.modules.get(&tgid)
    }

    /// Interns a stack, normalizing it against the process's current modules.
    fn intern(&mut self, tgid: u32, addrs: &[u64]) -> StackId {
        if let Some(id) = self.stacks.find(tgid, addrs) {
            return id;
        }
        self.modules_covering(tgid, addrs);
        let id = self.stacks.insert(tgid, addrs, self.modules.get(&tgid));
        self.note_maps_known(tgid, addrs);
        id
    }

    /// Once a stack from the program itself (not only the dynamic loader's, which runs before
    /// the libraries are mapped) is covered by the maps read, the kernel may batch this
    /// process's records again instead of waking the agent for each.
    fn note_maps_known(&mut self, tgid: u32, addrs: &[u64]) {
        let Some(m) = self.modules.get(&tgid) else { return };
        let frames: Vec<_> = addrs.iter().map(|a| m.lookup(*a)).collect();
        let covered = frames.iter().all(Option::is_some);
        let beyond_loader = frames
            .iter()
            .flatten()
            .any(|f| !f.module.to_string_lossy().contains("/ld-linux"));
        if covered && beyond_loader {
            self.probes.maps_known(tgid);
        }
    }

    /// Periodic work: sample site counts, describe long-lived fds from /proc.
    pub fn tick(&mut self) {
        let now = proc::monotonic_ns();
        self.state.sample(now);
        self.sync_ipc();
        self.describe_pending(DESCRIBE_BUDGET, DESCRIBE_MIN_AGE_NS);
    }

    /// Reads `/proc/PID/fd/N` for fds whose kind or path only /proc can tell.
    /// Fds whose kind the syscall cannot tell (received over a socket, taken from another
    /// process, dup of an unknown) are read from /proc at once, so their site has the right kind
    /// from the start. They are rare: one readlink each.
    fn describe_unknown_now(&mut self, sc: &Syscall<'_>) {
        let Some(p) = self.state.processes.get(&sc.tgid) else {
            return;
        };
        let mut unknown = [0i32; 64];
        let mut n = 0;
        let mut note = |fd: i32| {
            if p.fds
                .get(fd)
                .is_some_and(|o| o.kind == crate::state::FdKind::Unknown && !o.described)
                && let Some(slot) = unknown.get_mut(n)
            {
                *slot = fd;
                n += 1;
            }
        };
        if sc.data_kind == tracer_common::fd::data_kind::CONTROL {
            crate::state::scm::for_each_received_fd(sc.data, &mut note);
        } else if let Ok(fd) = i32::try_from(sc.ret) {
            note(fd);
        }
        for fd in &unknown[..n] {
            self.describe_one(sc.tgid, *fd, &mut HashMap::new());
        }
    }

    /// At most `budget` fds, each at least `min_age_ns` old.
    pub fn describe_pending(&mut self, budget: usize, min_age_ns: u64) {
        let now = proc::monotonic_ns();
        let mut todo: Vec<(u32, i32)> = Vec::new();
        for p in self.state.processes.values().filter(|p| p.is_alive()) {
            if todo.len() >= budget {
                break;
            }
            for (fd, o) in p.fds.iter() {
                if !o.described && now.saturating_sub(o.opened_ns) >= min_age_ns {
                    todo.push((p.tgid, fd));
                    if todo.len() >= budget {
                        break;
                    }
                }
            }
        }
        // One read of a process's socket tables per pass, and only if it has sockets to describe.
        let mut tables: HashMap<u32, sockets::SocketTable> = HashMap::new();
        for (tgid, fd) in todo {
            self.describe_one(tgid, fd, &mut tables);
        }
    }

    /// Reads one fd's kind and description (a socket's peer) from /proc.
    fn describe_one(&mut self, tgid: u32, fd: i32, tables: &mut HashMap<u32, sockets::SocketTable>) {
        match proc::describe_fd(tgid, fd) {
            Some((kind, target)) => {
                let info = sockets::socket_inode(&target).and_then(|ino| {
                    tables
                        .entry(tgid)
                        .or_insert_with(|| sockets::SocketTable::read(tgid))
                        .get(ino)
                        .cloned()
                });
                match info {
                    Some(i) => self.state.describe(tgid, fd, kind, Some(i.family), &i.description),
                    None => self.state.describe(tgid, fd, kind, None, &target),
                }
            }
            None => {
                // Closed meanwhile (its close record is on the way) or the process is gone.
                if let Some(o) = self.state.processes.get_mut(&tgid).and_then(|p| p.fds.get_mut(fd)) {
                    o.described = true;
                }
            }
        }
    }

    /// Refreshes RLIMIT_NOFILE of live processes (it can change with prlimit).
    pub fn refresh_limits(&mut self) {
        for p in self.state.processes.values_mut().filter(|p| p.is_alive()) {
            p.limits = proc::limits(p.tgid);
        }
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
