//! The ingest task: one thread owns the probes, the ring buffer, the state and the stack store.
//! It drains the ring with a budget per wake-up and answers queries between drains with
//! unsymbolized data (ids, counts, samples); symbolization runs on the symbolizer worker and
//! rendering on the caller's side. `watch`, `run` and the HTTP endpoints are all clients.

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use tokio::sync::{mpsc, oneshot};

use crate::{
    analysis,
    model::{
        Report, ReportOptions,
        metrics::MetricsSnapshot,
        profile::{Profile, ProfileKind},
    },
    probes::ProbeOptions,
    procfs::{clock, sysv},
    stacks::StoredStack,
    state::StackId,
    tracker::{Pipeline as Agent, TrackerError as AgentError},
};

/// Records handled per wake-up before queries are looked at again.
const DRAIN_BUDGET: usize = 16_384;
/// How long a settle waits at most for what the kernel owes after an exit (see
/// [`crate::state::State::exit_records_owed`]): a few grace periods; a reaper that never
/// reaps (a PID 1 that does not) must not hold the report up.
const SETTLE_MAX: Duration = Duration::from_millis(50);
/// How often a settle looks for those records meanwhile (they do not wake the ring's reader).
const SETTLE_POLL: Duration = Duration::from_millis(2);

#[derive(Clone, Copy, Debug)]
pub struct TaskOptions {
    /// How often site counts are sampled and /proc is consulted.
    pub tick: Duration,
}

/// A report with its stacks unresolved, and the stacks it names.
pub struct ReportSnapshot {
    pub report: Report,
    pub stacks: Vec<(StackId, Arc<StoredStack>)>,
}

/// A profile with its stacks unresolved, and the stacks it names.
pub struct ProfileSnapshot {
    pub profile: Profile,
    pub stacks: Vec<(StackId, Arc<StoredStack>)>,
}

pub use crate::tracker::Status;

enum Request {
    Metrics {
        pid_labels: usize,
        reply: oneshot::Sender<MetricsSnapshot>,
    },
    Profile {
        kind: ProfileKind,
        reply: oneshot::Sender<ProfileSnapshot>,
    },
    Report {
        opts: Box<ReportOptions>,
        reply: oneshot::Sender<ReportSnapshot>,
    },
    Status {
        reply: oneshot::Sender<Status>,
    },
    CountSource {
        reply: oneshot::Sender<Option<crate::probes::CountSource>>,
    },
    Escalate {
        pid: u32,
        reply: oneshot::Sender<Result<bool, String>>,
    },
    /// Drain everything and wait for what the kernel does an RCU grace period after an exit
    /// (reaps, the release of the last locks), if anything is owed; sample: before a final
    /// report.
    Settle {
        reply: oneshot::Sender<()>,
    },
    /// Detach and end the thread, whoever still holds a client (a lingering connection).
    Stop(Detach),
}

/// How the programs detach when the task stops.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Detach {
    /// Before the task's thread ends (about 60 ms per plain tracepoint: see `probes::detach`).
    Wait,
    /// In a kernel worker, within about a second, while tracer goes on (and may exit).
    Later,
}

/// A handle to the ingest task; clones share it.
#[derive(Clone)]
pub struct Client {
    tx: mpsc::UnboundedSender<Request>,
}

#[derive(Debug, thiserror::Error)]
#[error("the ingest task has stopped")]
pub struct TaskGone;

impl Client {
    async fn ask<T>(&self, make: impl FnOnce(oneshot::Sender<T>) -> Request) -> Result<T, TaskGone> {
        let (reply, rx) = oneshot::channel();
        self.tx.send(make(reply)).map_err(|_| TaskGone)?;
        rx.await.map_err(|_| TaskGone)
    }

    /// The report as of now (everything the kernel queued so far is drained first).
    pub async fn report(&self, opts: ReportOptions) -> Result<ReportSnapshot, TaskGone> {
        self.ask(|reply| Request::Report {
            opts: Box::new(opts),
            reply,
        })
        .await
    }

    /// False once the ingest thread has ended (its queue is closed).
    pub fn is_alive(&self) -> bool {
        !self.tx.is_closed()
    }

    /// What `/metrics` shows (see `analysis::metrics`).
    pub async fn metrics(&self, pid_labels: usize) -> Result<MetricsSnapshot, TaskGone> {
        self.ask(|reply| Request::Metrics { pid_labels, reply }).await
    }

    /// An in-use profile (see `analysis::profile`).
    pub async fn profile(&self, kind: ProfileKind) -> Result<ProfileSnapshot, TaskGone> {
        self.ask(|reply| Request::Profile { kind, reply }).await
    }

    /// Where the agent's fd counts come from (`None`: it does not count).
    pub async fn count_source(&self) -> Result<Option<crate::probes::CountSource>, TaskGone> {
        self.ask(|reply| Request::CountSource { reply }).await
    }

    /// Traces `pid` with stacks from now on (the always-on mode's `asked` escalation):
    /// `Ok(false)` when it is traced already, `Err` with the reason when it cannot be.
    pub async fn escalate(&self, pid: u32) -> Result<Result<bool, String>, TaskGone> {
        self.ask(|reply| Request::Escalate { pid, reply }).await
    }

    pub async fn status(&self) -> Result<Status, TaskGone> {
        self.ask(|reply| Request::Status { reply }).await
    }

    pub async fn settle(&self) -> Result<(), TaskGone> {
        self.ask(|reply| Request::Settle { reply }).await
    }
}

/// The running task. Dropping it stops the thread (the programs detach with the agent).
pub struct IngestTask {
    client: Option<Client>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl IngestTask {
    /// Loads the programs and runs `setup` (follow processes) on the ingest thread; returns
    /// once both are done, with their error if any, so nothing is traced before the caller
    /// knows it worked.
    pub fn start<F>(probe: ProbeOptions, opts: TaskOptions, setup: F) -> Result<IngestTask, AgentError>
    where
        F: FnOnce(&mut Agent) -> Result<(), AgentError> + Send + 'static,
    {
        let (tx, rx) = mpsc::unbounded_channel();
        let (started_tx, started_rx) = std::sync::mpsc::channel::<Result<(), AgentError>>();
        let thread = std::thread::Builder::new()
            .name("tracer-ingest".into())
            .spawn(move || {
                let mut agent = match Agent::new(probe).and_then(|mut a| setup(&mut a).map(|()| a)) {
                    Ok(a) => a,
                    Err(e) => {
                        let _ = started_tx.send(Err(e));
                        return;
                    }
                };
                let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
                    Ok(r) => r,
                    Err(e) => {
                        let _ = started_tx.send(Err(AgentError::Thread(e)));
                        return;
                    }
                };
                let _ = started_tx.send(Ok(()));
                let detach = runtime.block_on(serve(&mut agent, rx, opts));
                match detach {
                    Detach::Wait => drop(agent),
                    Detach::Later => agent.detach_without_waiting(),
                }
            })
            .map_err(AgentError::Thread)?;
        match started_rx.recv() {
            Ok(Ok(())) => Ok(IngestTask {
                client: Some(Client { tx }),
                thread: Some(thread),
            }),
            Ok(Err(e)) => {
                let _ = thread.join();
                Err(e)
            }
            Err(_) => {
                let _ = thread.join();
                Err(AgentError::Thread(std::io::Error::other(
                    "the ingest thread died while starting",
                )))
            }
        }
    }

    /// Stops the task, detaching as `detach` says; dropping the task is `stop(Detach::Wait)`.
    pub fn stop(mut self, detach: Detach) {
        self.finish(detach);
    }

    fn finish(&mut self, detach: Detach) {
        // Clients may live on elsewhere (an HTTP connection): stop explicitly. Their later
        // queries get `TaskGone`.
        if let Some(c) = self.client.take() {
            let _ = c.tx.send(Request::Stop(detach));
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }

    pub fn client(&self) -> Client {
        match &self.client {
            Some(c) => c.clone(),
            // Only `drop` takes it.
            None => Client {
                tx: mpsc::unbounded_channel().0,
            },
        }
    }
}

impl Drop for IngestTask {
    fn drop(&mut self) {
        self.finish(Detach::Wait);
    }
}

/// The loop: queries first (they are rare and cheap without symbolization), then one budget of
/// records; sleep only when the ring is empty, until the kernel wakes us, a query arrives or the
/// tick is due.
async fn serve(agent: &mut Agent, mut rx: mpsc::UnboundedReceiver<Request>, opts: TaskOptions) -> Detach {
    let mut next_tick = Instant::now() + opts.tick;
    let mut host = super::escalation::HostWatch::default();
    loop {
        loop {
            match rx.try_recv() {
                Ok(Request::Stop(detach)) => return detach,
                Ok(req) => answer(agent, req).await,
                Err(mpsc::error::TryRecvError::Empty) => break,
                Err(mpsc::error::TryRecvError::Disconnected) => return Detach::Wait,
            }
        }
        if Instant::now() >= next_tick {
            agent.drain();
            agent.tracker.tick();
            host.tick(agent, opts.tick.as_nanos() as u64);
            next_tick = Instant::now() + opts.tick;
        }
        if agent.drain_up_to(DRAIN_BUDGET) == DRAIN_BUDGET {
            continue;
        }
        tokio::select! {
            r = agent.readable() => {
                if let Err(e) = r {
                    log::error!("waiting for kernel events: {e}");
                    tokio::time::sleep(opts.tick).await;
                }
            }
            _ = tokio::time::sleep_until(next_tick.into()) => {}
            req = rx.recv() => match req {
                Some(Request::Stop(detach)) => return detach,
                None => return Detach::Wait,
                Some(req) => answer(agent, req).await,
            },
        }
    }
}

async fn answer(agent: &mut Agent, req: Request) {
    match req {
        Request::Metrics { pid_labels, reply } => {
            agent.drain();
            agent.tracker.refresh_limits();
            let mut m = analysis::metrics::snapshot(&agent.tracker.state, clock::monotonic_ns(), pid_labels);
            agent.fill_health(&mut m.health);
            let _ = reply.send(m);
        }
        Request::Profile { kind, reply } => {
            agent.drain();
            let profile = analysis::profile::build(&agent.tracker.state, kind);
            let stacks = agent.tracker.stacks.share(&profile.stack_ids());
            let _ = reply.send(ProfileSnapshot { profile, stacks });
        }
        Request::Report { opts, reply } => {
            agent.drain();
            agent.tracker.refresh_limits();
            let mut opts = *opts;
            if opts.system.is_none() {
                opts.system = Some(sysv::system_limits());
            }
            let mut report =
                analysis::build_unresolved(&agent.tracker.state, clock::monotonic_ns(), agent.losses(), &opts);
            if let Some(e) = report.escalation.as_mut() {
                e.syscall_hook_attached = agent.tracker.syscall_hook();
                if !matches!(agent.tracker.count_source(), Some(crate::probes::CountSource::Iterator)) {
                    e.counts_from = "proc";
                }
            }
            let stacks = agent.tracker.stacks.share(&report.stack_ids());
            let _ = reply.send(ReportSnapshot { report, stacks });
        }
        Request::Status { reply } => {
            let _ = reply.send(agent.status());
        }
        Request::CountSource { reply } => {
            let _ = reply.send(agent.tracker.count_source().cloned());
        }
        Request::Escalate { pid, reply } => {
            let _ = reply.send(super::escalation::ask(agent, pid));
        }
        Request::Settle { reply } => {
            let deadline = Instant::now() + SETTLE_MAX;
            loop {
                while agent.drain() > 0 {}
                if !agent.tracker.state.exit_records_owed() || Instant::now() >= deadline {
                    break;
                }
                tokio::time::sleep(SETTLE_POLL).await;
            }
            agent.tracker.tick();
            let _ = reply.send(());
        }
        Request::Stop(_) => {}
    }
}
