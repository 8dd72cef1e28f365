//! The configurations the nginx workload measures, and the tracer process each one runs.

use super::start_floor;
use crate::{
    Result,
    bench::{Env, Options, agent::Agent, guard::Guarded, nginx::Nginx, procfs, scrape, watch::Watch},
};

/// How nginx runs in one measurement.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Setup {
    Untraced,
    /// `tracer floor`: empty programs on exactly the hooks tracer attaches, attached the same
    /// way. What any tracer with a syscall hook pays; the other rows show what tracer adds.
    Floor,
    /// `tracer agent` at its defaults on the whole host, nginx healthy: nothing selected, so
    /// nothing should be escalated.
    Agent,
    /// `tracer agent --comm nginx`: nginx selected, so traced with stacks; stands for a
    /// process the agent escalated.
    AgentSelected,
    /// `tracer agent --trace-all`: every fd of every process with stacks.
    AgentTraceAll,
    /// `tracer watch -p` on the master and each worker, DWARF stacks (its default).
    Watch,
    /// `--baseline`: another tracer binary (the one before a change), agent at its defaults.
    BaselineAgent,
}

/// Every configuration, in the order of the table; the first is the reference.
pub(super) const SETUPS: [Setup; 7] = [
    Setup::Untraced,
    Setup::Floor,
    Setup::Agent,
    Setup::AgentSelected,
    Setup::AgentTraceAll,
    Setup::Watch,
    Setup::BaselineAgent,
];

impl Setup {
    pub(super) fn name(self) -> &'static str {
        match self {
            Setup::Untraced => "untraced",
            Setup::Floor => "floor: tracer floor (empty)",
            Setup::Agent => "agent (defaults), healthy nginx",
            Setup::AgentSelected => "agent --comm nginx (escalated)",
            Setup::AgentTraceAll => "agent --trace-all",
            Setup::Watch => "watch -p each nginx (dwarf)",
            Setup::BaselineAgent => "baseline: agent (defaults)",
        }
    }

    pub(super) fn available(self, o: &Options) -> bool {
        self != Setup::BaselineAgent || o.baseline.is_some()
    }
}

/// The tracer running around one ab run.
pub(super) enum Tracer {
    None,
    Agent(Agent),
    Watch(Watch),
    Floor(Guarded),
}

impl Tracer {
    /// Starts it and returns once it says it traces (`tracer: ready`, `tracing PID`, `floor
    /// attached`): its start-up is over before anything is measured.
    pub(super) fn start(env: &Env, o: &Options, setup: Setup, nginx: &Nginx) -> Result<Self> {
        Ok(match setup {
            Setup::Untraced => Tracer::None,
            Setup::Floor => Tracer::Floor(start_floor(&env.tracer)?),
            Setup::Agent => Tracer::Agent(Agent::start(&env.tracer, &[])?),
            Setup::AgentSelected => Tracer::Agent(Agent::start(&env.tracer, &["--comm", "nginx"])?),
            Setup::AgentTraceAll => Tracer::Agent(Agent::start(&env.tracer, &["--trace-all"])?),
            Setup::Watch => Tracer::Watch(Watch::start(&env.tracer, &nginx.pids(), "dwarf")?),
            Setup::BaselineAgent => {
                let baseline = o.baseline.as_deref().ok_or("no --baseline binary")?;
                Tracer::Agent(Agent::start(baseline, &[])?)
            }
        })
    }

    pub(super) fn pid(&self) -> Option<u32> {
        match self {
            Tracer::None => None,
            Tracer::Agent(a) => Some(a.pid()),
            Tracer::Watch(w) => Some(w.pid()),
            Tracer::Floor(f) => Some(f.id()),
        }
    }

    /// Resident memory (VmRSS) of an agent or watch, now.
    pub(super) fn rss_kib(&self) -> Option<u64> {
        match self {
            Tracer::Agent(_) | Tracer::Watch(_) => self.pid().and_then(|p| procfs::rss_kib(p).ok()),
            Tracer::None | Tracer::Floor(_) => None,
        }
    }

    /// Stops it; the records the kernel could not deliver meanwhile (every reason of
    /// `tracer_kernel_lost_events_total`, or watch's `--stats`), where it says.
    pub(super) fn finish(self) -> Result<Option<u64>> {
        match self {
            Tracer::None => Ok(None),
            Tracer::Agent(a) => {
                let metrics = a.metrics()?;
                let lost = scrape::sum(&metrics, "tracer_kernel_lost_events_total", &[]);
                a.stop();
                Ok(lost.map(|l| l as u64))
            }
            Tracer::Watch(w) => Ok(Some(w.finish()?.lost)),
            Tracer::Floor(f) => {
                let _ = f.finish();
                Ok(None)
            }
        }
    }
}
