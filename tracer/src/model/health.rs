//! The agent's own health, as plain numbers: what the tracker, the state and the process itself
//! report, for `/metrics` and `--stats`.

/// The agent's own health: every loss the kernel or the agent counts, what was evicted to stay
/// bounded, how big the state is, and what the agent costs.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct AgentHealth {
    pub records: u64,
    /// Kernel counters, by `tracer_common::config::LossCounter`: ring buffer full, traced map
    /// full, stack not captured.
    pub kernel_lost: [u64; tracer_common::config::LOSS_COUNTERS as usize],
    /// Records the agent could not decode.
    pub undecodable: u64,
    /// Kernel map updates that failed (a process not followed, a zombie not watched).
    pub map_update_failed: u64,
    pub resyncs: u64,
    pub resync_dropped_fds: u64,
    pub resync_added_fds: u64,
    pub discovered: u64,
    pub exits_inferred: u64,
    /// User stacks taken, and allocations the stack budget left without one.
    pub stacks_taken: u64,
    pub stacks_skipped: u64,
    pub evicted_processes: u64,
    pub evicted_sites: u64,
    pub evicted_stacks: u64,
    pub evicted_groups: u64,
    pub evicted_lock_files: u64,
    pub dropped_incidents: u64,
    pub evicted_symbol_locations: u64,
    pub symbol_cache_resets: u64,
    pub tracked_processes: u64,
    pub tracked_fds: u64,
    pub sites: u64,
    pub stacks: u64,
    pub stack_bytes: u64,
    pub cpu_seconds: f64,
    pub resident_bytes: u64,
    /// DWARF mode: stack copies by record size (1, 2, 4, 8, 16 KiB), and those found too short.
    pub stack_copies: [u64; 5],
    pub short_stack_copies: u64,
    /// Python stack records by outcome (`tracker::python::OUTCOMES`), and the processes whose
    /// Python frames are walked now.
    pub python_stacks: [u64; 4],
    pub python_processes: u64,
    /// Estimated agent time by stage (see `tracker::stages`), seconds.
    pub stage_seconds: Vec<(&'static str, f64)>,
    /// The kernel programs' runs and run time; all zero unless BPF statistics are on.
    pub programs: Vec<ProgramCost>,
    /// The always-on mode's counts and escalations (None: `--trace-all`, `watch`, `run`).
    pub escalation: Option<EscalationHealth>,
}

/// What the always-on mode counted and decided.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct EscalationHealth {
    /// Counts from the BPF iterator (false: from /proc).
    pub from_iterator: bool,
    pub counted_processes: u64,
    pub escalated: u64,
    /// By `state::host::EscalationReason::NAMES`.
    pub escalations: [u64; 5],
    /// By `state::host::ReleaseReason::NAMES`.
    pub releases: [u64; 4],
    pub refused: u64,
    pub budget_processes: u64,
    pub count_reads: u64,
    pub count_read_errors: u64,
    /// The last read of every process's count, seconds.
    pub count_read_seconds: f64,
    /// The syscall-exit hook is attached now.
    pub syscall_hook: bool,
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

/// What the agent process costs now (see `runtime::cost::now`).
#[derive(Clone, Copy, Debug, Default)]
pub struct Cost {
    /// User plus system CPU time of the whole agent (every thread).
    pub cpu_seconds: f64,
    /// Peak resident set (getrusage), KiB.
    pub max_rss_kib: u64,
    /// Resident set now, ring buffer pages included, bytes.
    pub rss_bytes: u64,
    /// Anonymous resident memory now (the heap, without the ring buffer's shared pages), KiB.
    pub rss_anon_kib: u64,
}
