//! The ring buffer's reader and the tracker its records update, kept apart so a record borrowed
//! from the ring buffer can be handed to the tracker; plus what the pair knows of its own
//! health (records, losses, stack copies).

use std::collections::HashMap;

use tracer_common::{config::LossCounter, syscalls::IpcKind};

use super::{MAX_FRAMES, Tracker, TrackerCounters, TrackerError, policy, python, stages, writes};
use crate::{
    ingest::Ingest,
    model::{
        health::{AgentHealth, ProgramCost},
        losses::{AgentLosses, Losses},
    },
    probes::{ProbeOptions, Probes},
    procfs::{sockets, sysv},
    stacks::{StackStore, fp_ids},
    state::State,
    symbolize::DwarfUnwinder,
};

/// The agent's own counters.
#[derive(Clone, Debug, Default)]
pub struct Status {
    pub records: u64,
    pub lost: u64,
    /// Every loss counter by name (`lost` is their whole-record part).
    pub losses: Losses,
    pub tracked_fds: usize,
    pub stacks: usize,
    /// Some process given on the command line (or started) is still alive.
    pub targets_alive: bool,
    /// DWARF mode: stack copies by record size (1, 2, 4, 8, 16 KiB), and those found too short.
    pub stack_copies: [u64; 5],
    pub short_stack_copies: u64,
    /// Where the agent's time went, by stage (sampled).
    pub stages: stages::StageClock,
    /// The kernel programs' runs and run time (counted while BPF statistics are on).
    pub programs: Vec<ProgramCost>,
}

/// The ring buffer's reader and everything records update, kept apart so a record
/// borrowed from the ring buffer can be handed to the tracker.
pub struct Pipeline {
    ingest: Ingest,
    pub tracker: Tracker,
}

impl Pipeline {
    pub fn new(opts: ProbeOptions) -> Result<Self, TrackerError> {
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
        Ok(Pipeline { ingest, tracker })
    }

    /// Ends the pipeline, detaching the programs without waiting for the kernel (see
    /// [`Probes::detach_without_waiting`]).
    pub fn detach_without_waiting(self) {
        let Pipeline { ingest, tracker } = self;
        drop(ingest);
        tracker.into_probes().detach_without_waiting();
    }

    /// Command names the kernel traces at exec by itself (`--comm`).
    pub fn select_comms(&mut self, comms: &[Vec<u8>]) -> Result<(), TrackerError> {
        Ok(self.tracker.probes.select_comms(comms)?)
    }

    /// Starts tracing a running process (see [`Tracker::follow`]).
    pub fn follow(&mut self, pid: u32) -> Result<(), TrackerError> {
        self.tracker.follow(pid)
    }

    /// Starts tracing a command held before its exec (see [`Tracker::follow_held`]).
    pub fn follow_held(&mut self, pid: u32) -> Result<(), TrackerError> {
        self.tracker.follow_held(pid)
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
    pub fn fill_health(&self, h: &mut AgentHealth) {
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
        if let Some(e) = h.escalation.as_mut() {
            e.syscall_hook = t.probes.syscall_hook();
            e.from_iterator = t.probes.count_source() == Some(&crate::probes::CountSource::Iterator);
        }
    }

    /// The agent's own counters.
    pub fn status(&self) -> Status {
        let state = &self.tracker.state;
        Status {
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
