//! Loading and attaching the kernel programs, and the maps the agent talks to.
//!
//! Only hooks that load without kprobes or BPF trampolines (see shared/KERNEL.md): one raw
//! tracepoint and plain tracepoints (sched, syscalls, filelock, signal).

mod detach;
mod fd_counts;
mod floor;
mod kernel_btf;
mod load;
mod maps;
mod tracefs;

pub use fd_counts::CountSource;
pub use floor::Floor;

use aya::{
    Ebpf,
    maps::{Array, HashMap, MapData, PerCpuArray, StackTraceMap},
};
use tracer_common::config::{self, StackMode};

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
    /// Load the fd-count iterator (the agent's always-on counts; `/proc` where it cannot).
    pub fd_counts: bool,
    /// Attach the syscall-exit hook at load. Off: attached later, while something is traced
    /// (see [`Probes::set_syscall_hook`]).
    pub syscall_hook: bool,
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
            fd_counts: false,
            syscall_hook: true,
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

/// Loaded and attached programs. Detached when dropped.
pub struct Probes {
    ebpf: Ebpf,
    /// The plain tracepoints' links, kept apart from their programs so that they can be
    /// detached without waiting (see `detach.rs`).
    perf_links: Vec<aya::programs::trace_point::TracePointLink>,
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
    /// The capture table: held so that its fd stays valid for programs loaded later (the
    /// syscall-exit hook, attached on demand, refers to it).
    _capture: Array<MapData, u32>,
    /// Where fd counts come from (`None`: not asked for).
    count_source: Option<CountSource>,
    /// The syscall-exit hook while it is attached.
    sys_exit_link: Option<load::SysExitLink>,
    /// `raw_tracepoint/sys_exit` even where `tp_btf` loads.
    raw_sys_exit: bool,
}

pub use crate::model::health::ProgramCost;

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

/// An error with its causes, `: `-separated (for logs and start-up messages).
pub fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut cur = e.source();
    while let Some(s) = cur {
        text.push_str(": ");
        text.push_str(&s.to_string());
        cur = s.source();
    }
    text
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
