//! The tracker: per-record dispatch. The one room that holds the probes, `/proc`, the state
//! and the stacks together; everything here is glue, the decisions live in `state` (what a
//! syscall does) and `analysis` (what is a leak).
//!
//! [`Pipeline`] is the ring buffer's reader plus the [`Tracker`] its records update:
//! `dispatch` routes each record, `lifecycle` follows processes (attach, fork, exec, exit,
//! lost records), `tick` does the periodic work, `stack_capture` turns a record's registers
//! and stack into an interned stack.

mod describe;
mod dispatch;
mod exec_layout;
mod host;
mod lifecycle;
mod pipeline;
pub mod policy;
pub mod python;
mod stack_capture;
pub mod stages;
mod tick;
mod writes;

use std::collections::HashMap;

use tracer_common::config::{LOSS_COUNTERS, StackMode};

pub use pipeline::{Pipeline, Status};

use crate::{
    probes::{ProbeError, Probes},
    procfs::{process as proc, sockets},
    stacks::{StackStore, fp_ids},
    state::State,
    symbolize::{DwarfUnwinder, ModuleMap},
};

#[derive(Debug, thiserror::Error)]
pub enum TrackerError {
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
    /// What just-exec'd processes' records said about their layout (see `exec_layout`).
    loading: HashMap<u32, exec_layout::Loading, foldhash::fast::RandomState>,
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
    /// DWARF mode: each thread's stack top as the kernel has it (see `stack_capture`), by thread id,
    /// with its process.
    stack_tops: HashMap<u32, (u32, u64), foldhash::fast::RandomState>,
    /// `--stack-size` in bytes: the most a record copies.
    stack_bytes: usize,
    /// When the ends of stalled pipes were last looked up.
    ends_seen: writes::EndsSeen,
    /// CPython processes, and the Python frames of records on their way (see `python`).
    pub python: python::PythonFrames,
    /// The Python frames of the record being handled (see `stack_capture`).
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

impl Tracker {
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

    /// The end of tracking: the probes alone, to be detached.
    pub fn into_probes(self) -> Probes {
        self.probes
    }
}
