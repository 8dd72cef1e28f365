//! Loading and attaching the kernel programs, and the maps the agent talks to.
//!
//! Only hooks that load without kprobes or BPF trampolines (see shared/KERNEL.md): one raw
//! tracepoint and plain tracepoints (sched, syscalls, filelock, signal).

mod tracefs;

use aya::{
    Btf, Ebpf, EbpfLoader,
    maps::{Array, HashMap, MapData, PerCpuArray, RingBuf, StackTraceMap},
    programs::{BtfTracePoint, KProbe, RawTracePoint, TracePoint},
};
use tracer_common::{
    config::{self, LOSS_COUNTERS, StackMode},
    syscalls,
};

#[derive(Debug, thiserror::Error)]
pub enum ProbeError {
    #[error("not permitted to load eBPF programs ({0}): run as root or grant CAP_BPF, CAP_PERFMON and CAP_SYS_ADMIN")]
    NoPrivileges(String),
    #[error(transparent)]
    Tracefs(#[from] tracefs::TracefsError),
    #[error("loading the eBPF object failed")]
    Load(#[source] aya::EbpfError),
    #[error("program {name} could not be loaded or attached")]
    Program {
        name: &'static str,
        #[source]
        source: aya::programs::ProgramError,
    },
    #[error(
        "--kernel-stack needs kprobes, and this kernel refused one on {function} ({reason}); kernels built \
         without CONFIG_KPROBES cannot give kernel stacks of fd allocation: run without --kernel-stack"
    )]
    KernelStackUnsupported { function: &'static str, reason: String },
    #[error(
        "--bpf-stats: the kernel refused to turn BPF run-time statistics on (BPF_ENABLE_STATS needs Linux 5.8 and CAP_SYS_ADMIN)"
    )]
    Stats(#[source] aya::sys::SyscallError),
    #[error("the floor needs kernel BTF: {0}")]
    Floor(String),
    #[error("map {0} is missing from the eBPF object (agent and programs from different builds?)")]
    MissingMap(&'static str),
    #[error("map {name}")]
    Map {
        name: &'static str,
        #[source]
        source: aya::maps::MapError,
    },
}

#[derive(Clone, Copy, Debug)]
pub struct ProbeOptions {
    pub stack_mode: StackMode,
    /// Bytes of user stack copied per allocation in DWARF mode (4096, 8192 or 16384).
    pub stack_bytes: u32,
    /// Ring buffer size in bytes (a power of two, multiple of the page size).
    pub ring_buffer_bytes: u32,
    /// Trace every process on the host instead of a set.
    pub trace_all: bool,
    /// Report execs of untraced processes (selection by name or cgroup).
    pub discover_exec: bool,
    /// Report syscalls failing with EBADF (use of a closed descriptor), with stacks.
    pub report_ebadf: bool,
    /// Capture a stack for every close too (to name the first close of a double close).
    pub close_stacks: bool,
    /// Add kernel stacks of fd installation (needs kprobes).
    pub kernel_stack: bool,
    /// User stacks per second per CPU before allocation stacks are sampled (0: every one).
    pub stack_budget: u32,
    /// Turn the kernel's BPF run-time statistics on while the probes are loaded.
    pub bpf_stats: bool,
    /// Use `raw_tracepoint/sys_exit` even where `tp_btf/sys_exit` loads (the fallback of
    /// kernels without BTF; tests keep it working).
    pub raw_sys_exit: bool,
    /// Writes that block this long are reported (0: writes are not timed at all).
    pub write_block_ns: u64,
    /// Walk CPython processes' frames at each captured allocation (`--python-frames`).
    pub python_frames: bool,
}

impl Default for ProbeOptions {
    fn default() -> Self {
        ProbeOptions {
            stack_mode: StackMode::Dwarf,
            stack_bytes: config::STACK_COPY_DEFAULT as u32,
            ring_buffer_bytes: 64 * 1024 * 1024,
            trace_all: false,
            discover_exec: false,
            report_ebadf: true,
            close_stacks: false,
            kernel_stack: false,
            bpf_stats: false,
            raw_sys_exit: false,
            stack_budget: 0,
            write_block_ns: 100_000_000,
            python_frames: true,
        }
    }
}

/// The plain tracepoints tracer attaches, each to the program of its name; process tracking
/// first, so no child forked during attach is missed.
const TRACEPOINTS: [(&str, &str); 8] = [
    ("task", "task_newtask"),
    ("sched", "sched_process_exec"),
    ("sched", "sched_process_exit"),
    ("sched", "sched_process_free"),
    ("filelock", "flock_lock_inode"),
    ("filelock", "posix_lock_inode"),
    ("signal", "signal_generate"),
    ("signal", "signal_deliver"),
];

/// The benchmark's floor (`tracer floor`): empty programs on the hooks tracer attaches by
/// default (the plain tracepoints above and `tp_btf/sys_exit`), which cost what any tracer on
/// those hooks pays before doing anything. Detached when dropped.
pub struct Floor {
    _ebpf: Ebpf,
}

impl Floor {
    pub fn attach() -> Result<Floor, ProbeError> {
        tracefs::ensure_mounted()?;
        let mut ebpf = EbpfLoader::new().load(OBJECT).map_err(|e| {
            if is_permission(&e) {
                ProbeError::NoPrivileges(e.to_string())
            } else {
                ProbeError::Load(e)
            }
        })?;
        const TP: &str = "floor_tracepoint";
        let p: &mut TracePoint = ebpf
            .program_mut(TP)
            .and_then(|p| p.try_into().ok())
            .ok_or(ProbeError::MissingMap(TP))?;
        p.load().map_err(|source| program_error(TP, source))?;
        for (category, name) in TRACEPOINTS {
            p.attach(category, name).map_err(|source| program_error(TP, source))?;
        }
        const EXIT: &str = "floor_sys_exit";
        let btf = Btf::from_sys_fs().map_err(|e| ProbeError::Floor(e.to_string()))?;
        let p: &mut BtfTracePoint = ebpf
            .program_mut(EXIT)
            .and_then(|p| p.try_into().ok())
            .ok_or(ProbeError::MissingMap(EXIT))?;
        p.load("sys_exit", &btf).map_err(|source| program_error(EXIT, source))?;
        p.attach().map_err(|source| program_error(EXIT, source))?;
        Ok(Floor { _ebpf: ebpf })
    }
}

/// Loaded and attached programs. Detached when dropped.
pub struct Probes {
    ebpf: Ebpf,
    traced: HashMap<MapData, u32, u8>,
    traced_hint: Array<MapData, u8>,
    exited: HashMap<MapData, u32, u8>,
    losses: PerCpuArray<MapData, u64>,
    lost_by_tgid: HashMap<MapData, u32, u64>,
    stacks: Option<StackTraceMap<MapData>>,
    kernel_stacks: Option<StackTraceMap<MapData>>,
    /// Map updates and removals that failed other than on a missing key (see
    /// [`Probes::map_update_failures`]).
    map_update_failures: u64,
    /// Threads' stack tops (DWARF mode only).
    stack_tops: Option<HashMap<MapData, u32, u64>>,
    /// CPython processes whose frames the kernel walks (`None`: `--python-frames off`).
    py_procs: Option<HashMap<MapData, u32, [u8; tracer_common::python::PY_PROCESS_BYTES]>>,
    /// Held while `--bpf-stats` asks the kernel to time programs (closing it stops the timing).
    _stats: Option<std::os::fd::OwnedFd>,
}

/// One program's cost as the kernel measured it (`bpf_prog_info.run_cnt`, `run_time_ns`),
/// counted only while run-time statistics are on.
#[derive(Clone, Debug, PartialEq)]
pub struct ProgramCost {
    pub name: String,
    pub runs: u64,
    pub run_ns: u64,
}

impl ProgramCost {
    pub fn ns_per_run(&self) -> Option<f64> {
        (self.runs > 0).then(|| self.run_ns as f64 / self.runs as f64)
    }
}

/// `BPF_EXIST` (include/uapi/linux/bpf.h): update an element only if its key exists.
const BPF_EXIST: u64 = 2;

/// The key was not there: the kernel removed it first (a process's exit, an LRU eviction).
fn is_not_found(e: &aya::maps::MapError) -> bool {
    match e {
        aya::maps::MapError::KeyNotFound => true,
        aya::maps::MapError::SyscallError(s) => s.io_error.raw_os_error() == Some(libc::ENOENT),
        _ => false,
    }
}

static OBJECT: &[u8] = aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/tracer"));

fn is_permission(e: &(dyn std::error::Error + 'static)) -> bool {
    let mut cur = Some(e);
    while let Some(err) = cur {
        if let Some(io) = err.downcast_ref::<std::io::Error>()
            && io.raw_os_error().is_some_and(|c| c == libc::EPERM || c == libc::EACCES)
        {
            return true;
        }
        let text = err.to_string();
        if text.contains("Operation not permitted") || text.contains("Permission denied") {
            return true;
        }
        cur = err.source();
    }
    false
}

impl Probes {
    pub fn load(opts: ProbeOptions) -> Result<Self, ProbeError> {
        tracefs::ensure_mounted().map_err(|e| match e {
            tracefs::TracefsError::MountFailed(io) if io.raw_os_error() == Some(libc::EPERM) => {
                ProbeError::NoPrivileges("tracefs is not visible and cannot be mounted".into())
            }
            other => ProbeError::Tracefs(other),
        })?;
        tracefs::check_formats()?;
        let mode = opts.stack_mode as u32;
        let all = u32::from(opts.trace_all);
        let discover = u32::from(opts.discover_exec);
        let self_tgid = std::process::id();
        // Wake the agent when an eighth of the buffer is waiting; its tick drains the rest.
        let wakeup = u64::from(opts.ring_buffer_bytes / 8).max(64 * 1024);
        let badf = u32::from(opts.report_ebadf);
        let kstack = u32::from(opts.kernel_stack);
        let python = u32::from(opts.python_frames && opts.stack_mode != StackMode::None);
        let kstack_entries = if opts.kernel_stack { config::KSTACKS_ENTRIES } else { 1 };
        let mut ebpf = EbpfLoader::new()
            .override_global(config::BADF_GLOBAL, &badf, true)
            .override_global(config::KERNEL_STACK_GLOBAL, &kstack, true)
            .map_max_entries(config::KSTACKS_MAP, kstack_entries)
            .override_global(config::STACK_MODE_GLOBAL, &mode, true)
            .override_global(config::TRACE_ALL_GLOBAL, &all, true)
            .override_global(config::DISCOVER_EXEC_GLOBAL, &discover, true)
            .override_global(config::SELF_TGID_GLOBAL, &self_tgid, true)
            .override_global(config::WAKEUP_BYTES_GLOBAL, &wakeup, true)
            .override_global(config::STACK_BYTES_GLOBAL, &opts.stack_bytes, true)
            .override_global(config::STACK_BUDGET_GLOBAL, &opts.stack_budget, true)
            .override_global(config::WRITE_BLOCK_GLOBAL, &opts.write_block_ns, true)
            .override_global(tracer_common::python::PYTHON_FRAMES_GLOBAL, &python, true)
            .map_max_entries(config::EVENTS_MAP, opts.ring_buffer_bytes)
            .load(OBJECT)
            .map_err(|e| {
                if is_permission(&e) {
                    ProbeError::NoPrivileges(e.to_string())
                } else {
                    ProbeError::Load(e)
                }
            })?;

        let mut capture: Array<MapData, u32> = take(&mut ebpf, config::CAPTURE_MAP)?;
        for spec in syscalls::X86_64 {
            let mut c = spec.capture;
            if opts.close_stacks && matches!(spec.effect, syscalls::Effect::Close | syscalls::Effect::CloseRange) {
                c.stack = true;
            }
            // Code layout records only serve stacks.
            let layout = matches!(spec.effect, syscalls::Effect::Exec | syscalls::Effect::MapCode);
            let untimed = spec.capture.timed && opts.write_block_ns == 0;
            let bits = if (layout && opts.stack_mode == StackMode::None) || untimed {
                0
            } else {
                c.bits()
            };
            capture.set(spec.nr, &bits, 0).map_err(|source| ProbeError::Map {
                name: config::CAPTURE_MAP,
                source,
            })?;
        }
        let traced = take(&mut ebpf, config::TRACED_MAP)?;
        let traced_hint = take(&mut ebpf, config::TRACED_HINT_MAP)?;
        let exited = take(&mut ebpf, config::EXITED_MAP)?;
        let losses = take(&mut ebpf, config::LOSS_MAP)?;
        let lost_by_tgid = take(&mut ebpf, config::LOST_BY_TGID_MAP)?;
        let stacks = if opts.stack_mode == StackMode::FramePointer {
            Some(take(&mut ebpf, config::STACKS_MAP)?)
        } else {
            None
        };

        let stack_tops = if opts.stack_mode == StackMode::Dwarf {
            Some(take(&mut ebpf, config::STACK_TOPS_MAP)?)
        } else {
            None
        };
        let kernel_stacks = if opts.kernel_stack {
            Some(take(&mut ebpf, config::KSTACKS_MAP)?)
        } else {
            None
        };
        let py_procs = if python != 0 {
            Some(take(&mut ebpf, tracer_common::python::PY_PROCS_MAP)?)
        } else {
            None
        };
        let mut probes = Probes {
            ebpf,
            traced,
            traced_hint,
            exited,
            losses,
            lost_by_tgid,
            stacks,
            kernel_stacks,
            stack_tops,
            py_procs,
            map_update_failures: 0,
            _stats: None,
        };
        if opts.bpf_stats {
            let fd = aya::sys::enable_stats(aya::sys::Stats::RunTime).map_err(ProbeError::Stats)?;
            probes._stats = Some(fd);
        }

        for (category, name) in TRACEPOINTS {
            probes.attach_tracepoint(name, category, name)?;
        }
        if opts.write_block_ns > 0 {
            for tp in syscalls::TIMED_ENTRY_TRACEPOINTS {
                probes.attach_tracepoint(config::WRITE_ENTRY_PROGRAM, "syscalls", tp)?;
            }
        }
        probes.attach_sys_exit(opts.raw_sys_exit)?;
        // The optional kprobe last, so that everything it feeds was verified with it on (a
        // kernel without kprobes then refuses only the attach, with a clear message).
        if opts.kernel_stack {
            probes.attach_kernel_stack_probe()?;
        }
        Ok(probes)
    }

    /// The syscall-exit hook: `tp_btf/sys_exit` (typed register loads) where the kernel has BTF
    /// and accepts it, else `raw_tracepoint/sys_exit` (a helper call per read).
    fn attach_sys_exit(&mut self, raw: bool) -> Result<(), ProbeError> {
        match Btf::from_sys_fs() {
            _ if raw => {}
            Ok(btf) => match self.attach_sys_exit_btf(&btf) {
                Ok(()) => return Ok(()),
                Err(e) => log::info!("tp_btf/sys_exit refused ({e}); using raw_tracepoint/sys_exit"),
            },
            Err(e) => log::info!("no kernel BTF ({e}); using raw_tracepoint/sys_exit"),
        }
        let prog: &mut RawTracePoint = self
            .ebpf
            .program_mut("sys_exit")
            .and_then(|p| p.try_into().ok())
            .ok_or(ProbeError::MissingMap("sys_exit program"))?;
        prog.load().map_err(|source| program_error("sys_exit", source))?;
        prog.attach("sys_exit")
            .map_err(|source| program_error("sys_exit", source))?;
        Ok(())
    }

    fn attach_sys_exit_btf(&mut self, btf: &Btf) -> Result<(), ProbeError> {
        let prog: &mut BtfTracePoint = self
            .ebpf
            .program_mut("sys_exit_btf")
            .and_then(|p| p.try_into().ok())
            .ok_or(ProbeError::MissingMap("sys_exit_btf program"))?;
        prog.load("sys_exit", btf)
            .map_err(|source| program_error("sys_exit_btf", source))?;
        prog.attach().map_err(|source| program_error("sys_exit_btf", source))?;
        Ok(())
    }

    /// `kprobe/fd_install`: kernels without kprobes (ours: no CONFIG_KPROBES) refuse the attach.
    fn attach_kernel_stack_probe(&mut self) -> Result<(), ProbeError> {
        let function = config::KSTACK_PROGRAM;
        let p: &mut KProbe = self
            .ebpf
            .program_mut(function)
            .and_then(|p| p.try_into().ok())
            .ok_or(ProbeError::MissingMap("fd_install program"))?;
        p.load().map_err(|source| program_error("fd_install", source))?;
        p.attach(function, 0).map_err(|source| {
            if is_permission(&source) {
                return ProbeError::NoPrivileges(format!("{function}: {source}"));
            }
            let mut reason = source.to_string();
            let mut cur: Option<&dyn std::error::Error> = std::error::Error::source(&source);
            while let Some(e) = cur {
                reason.push_str(": ");
                reason.push_str(&e.to_string());
                cur = e.source();
            }
            ProbeError::KernelStackUnsupported { function, reason }
        })?;
        Ok(())
    }

    fn attach_tracepoint(&mut self, prog: &'static str, category: &str, name: &str) -> Result<(), ProbeError> {
        let p: &mut TracePoint = self
            .ebpf
            .program_mut(prog)
            .and_then(|p| p.try_into().ok())
            .ok_or(ProbeError::MissingMap(prog))?;
        if p.fd().is_err() {
            p.load().map_err(|source| program_error(prog, source))?;
        }
        p.attach(category, name).map_err(|source| program_error(prog, source))?;
        Ok(())
    }

    /// Starts following a process (its threads and the children it forks from now on).
    pub fn trace(&mut self, tgid: u32) -> Result<(), ProbeError> {
        // The hint slot first: the programs skip the hash lookup of processes whose slot is 0.
        let slot = tgid % config::TRACED_HINT_SLOTS;
        self.traced_hint.set(slot, &1, 0).map_err(|source| {
            self.map_update_failures += 1;
            ProbeError::Map {
                name: config::TRACED_HINT_MAP,
                source,
            }
        })?;
        let r = self.traced.insert(&tgid, &config::TRACED_NEEDS_MAPS, 0);
        if r.is_err() {
            self.map_update_failures += 1;
        }
        r.map_err(|source| ProbeError::Map {
            name: config::TRACED_MAP,
            source,
        })
    }

    /// Counts and logs a failed map update: a failure to follow is never silent. A missing key
    /// is no failure (the kernel got there first: the process exited).
    fn check(&mut self, what: &str, key: impl std::fmt::Display, r: Result<(), aya::maps::MapError>) {
        if let Err(e) = r
            && !is_not_found(&e)
        {
            self.map_update_failures += 1;
            log::warn!("{what} {key}: {e}");
        }
    }

    /// Whether syscall results come through `tp_btf/sys_exit` (else the raw tracepoint).
    pub fn typed_sys_exit(&self) -> bool {
        self.ebpf.program("sys_exit_btf").is_some_and(|p| p.fd().is_ok())
    }

    /// Each loaded program's run count and run time (zero unless statistics are on: see
    /// `--bpf-stats`). Programs whose info cannot be read are left out.
    pub fn program_costs(&self) -> Vec<ProgramCost> {
        let mut costs: Vec<ProgramCost> = self
            .ebpf
            .programs()
            .filter_map(|(name, p)| {
                let info = p.info().ok()?;
                Some(ProgramCost {
                    name: name.to_owned(),
                    runs: info.run_count(),
                    run_ns: info.run_time().as_nanos() as u64,
                })
            })
            .collect();
        costs.sort_by(|a, b| a.name.cmp(&b.name));
        costs
    }

    /// Map updates that failed: processes (or zombies' reaps) the kernel does not follow as the
    /// agent asked. Each is also logged.
    pub fn map_update_failures(&self) -> u64 {
        self.map_update_failures
    }

    /// Command names whose exec makes a process traced by the kernel at once (`--comm`; see
    /// `config::SELECTED_COMMS_MAP`). At most `SELECTED_COMMS_MAX`; longer names are cut to
    /// the 15 bytes a task's comm holds.
    pub fn select_comms(&mut self, comms: &[Vec<u8>]) -> Result<(), ProbeError> {
        let name = config::SELECTED_COMMS_MAP;
        let map = self.ebpf.map_mut(name).ok_or(ProbeError::MissingMap(name))?;
        let mut selected: HashMap<&mut MapData, [u8; 16], u8> =
            HashMap::try_from(map).map_err(|source| ProbeError::Map { name, source })?;
        for c in comms {
            let mut key = [0u8; 16];
            let n = c.len().min(15);
            key[..n].copy_from_slice(&c[..n]);
            selected
                .insert(&key, &1, 0)
                .map_err(|source| ProbeError::Map { name, source })?;
        }
        Ok(())
    }

    /// The agent has read the process's memory maps: its records no longer need to wake it.
    pub fn maps_known(&mut self, tgid: u32) {
        // Only if still traced (BPF_EXIST): never re-add a process that exited, whose pid
        // could be reused by a process nobody asked to trace.
        let r = self.traced.insert(&tgid, &config::TRACED_HAS_MAPS, BPF_EXIST);
        self.check("cannot mark the memory maps of PID", tgid, r);
    }

    /// A zombie found at attach: report when the kernel releases it (its parent reaped it).
    pub fn expect_release(&mut self, pid: u32) {
        let r = self.exited.insert(&pid, &1, 0);
        self.check("cannot follow the reap of zombie PID", pid, r);
    }

    pub fn untrace(&mut self, tgid: u32) {
        let r = self.traced.remove(&tgid);
        self.check("cannot stop tracing PID", tgid, r);
    }

    /// Takes the ring buffer out (once).
    pub fn take_ring_buffer(&mut self) -> Result<RingBuf<MapData>, ProbeError> {
        take(&mut self.ebpf, config::EVENTS_MAP)
    }

    /// Kernel loss counters summed over CPUs, indexed by `LossCounter`.
    pub fn losses(&self) -> [u64; LOSS_COUNTERS as usize] {
        let mut out = [0u64; LOSS_COUNTERS as usize];
        for (i, slot) in out.iter_mut().enumerate() {
            if let Ok(per_cpu) = self.losses.get(&(i as u32), 0) {
                *slot = per_cpu.iter().sum();
            }
        }
        out
    }

    /// Processes whose records were lost since the last call, and how many (the kernel's
    /// counts are taken out of the map).
    pub fn take_lost_by_process(&mut self) -> Vec<(u32, u64)> {
        let mut keys = Vec::new();
        for k in self.lost_by_tgid.keys() {
            match k {
                Ok(k) => keys.push(k),
                // A key removed while iterating ends the walk; the rest come next tick.
                Err(e) => {
                    log::debug!("reading {}: {e}", config::LOST_BY_TGID_MAP);
                    break;
                }
            }
        }
        let mut out = Vec::with_capacity(keys.len());
        for tgid in keys {
            if let Ok(n) = self.lost_by_tgid.get(&tgid, 0) {
                // Left in place, the same losses would be taken again: one resync too many.
                let r = self.lost_by_tgid.remove(&tgid);
                self.check("cannot reset the loss count of PID", tgid, r);
                out.push((tgid, n));
            }
        }
        out
    }

    /// A kernel stack captured at fd installation (`--kernel-stack`), innermost first.
    pub fn kernel_stack(&self, id: u32, out: &mut Vec<u64>) {
        out.clear();
        if let Some(stacks) = &self.kernel_stacks
            && let Ok(trace) = stacks.get(&id, 0)
        {
            out.extend(trace.frames().iter().map(|f| f.ip).filter(|ip| *ip != 0));
        }
    }

    /// Tells the kernel where thread `tid`'s stack ends for unwinding, so its DWARF-mode records
    /// copy only the live part (see `STACK_TOPS` in the programs).
    pub fn set_stack_top(&mut self, tid: u32, top: u64) {
        if let Some(r) = self.stack_tops.as_mut().map(|m| m.insert(&tid, &top, 0)) {
            self.check("cannot set the stack top of thread", tid, r);
        }
    }

    /// Whether Python frames are walked at all (`--python-frames on`, with stacks).
    pub fn python_frames(&self) -> bool {
        self.py_procs.is_some()
    }

    /// Makes the kernel walk `tgid`'s Python frames with these offsets.
    pub fn set_python_process(&mut self, tgid: u32, p: &tracer_common::python::PyProcess) {
        if let Some(r) = self.py_procs.as_mut().map(|m| m.insert(&tgid, &p.to_bytes(), 0)) {
            self.check("cannot register the Python runtime of process", tgid, r);
        }
    }

    /// Forgets thread `tid`'s stack top: its records copy the whole `--stack-size` again.
    pub fn forget_stack_top(&mut self, tid: u32) {
        if let Some(r) = self.stack_tops.as_mut().map(|m| m.remove(&tid)) {
            self.check("cannot forget the stack top of thread", tid, r);
        }
    }

    /// Frees a kernel stack-map entry the agent no longer needs (`--stack fp`).
    pub fn forget_fp_stack(&mut self, id: i64) {
        let Ok(id) = u32::try_from(id) else { return };
        if let Some(r) = self.stacks.as_mut().map(|stacks| stacks.remove(&id)) {
            self.check("cannot free stack id", id, r);
        }
    }

    /// A frame-pointer user stack captured by the kernel (`--stack fp`).
    pub fn fp_stack(&self, id: u32, out: &mut Vec<u64>) -> bool {
        out.clear();
        let Some(stacks) = &self.stacks else {
            return false;
        };
        match stacks.get(&id, 0) {
            Ok(trace) => {
                out.extend(trace.frames().iter().map(|f| f.ip).filter(|ip| *ip != 0));
                true
            }
            Err(_) => false,
        }
    }
}

fn program_error(name: &'static str, source: aya::programs::ProgramError) -> ProbeError {
    if is_permission(&source) {
        ProbeError::NoPrivileges(format!("{name}: {source}"))
    } else {
        ProbeError::Program { name, source }
    }
}

fn take<T>(ebpf: &mut Ebpf, name: &'static str) -> Result<T, ProbeError>
where
    T: TryFrom<aya::maps::Map, Error = aya::maps::MapError>,
{
    let map = ebpf.take_map(name).ok_or(ProbeError::MissingMap(name))?;
    T::try_from(map).map_err(|source| ProbeError::Map { name, source })
}

#[cfg(test)]
mod tests;
