//! `tracer agent`: production mode. Binds the HTTP port first (a taken port fails before
//! anything is attached), then loads the programs and seeds every selected process from /proc
//! on the ingest thread, then serves until SIGINT or SIGTERM, which detach and exit 0.

use std::os::unix::ffi::OsStrExt;

use anyhow::Context as _;

use crate::{
    agent::{
        policy::{self, Policy},
        symbolizer::SymbolizerWorker,
        task::{IngestTask, TaskOptions},
    },
    cli::AgentArgs,
    http::{self, HttpOptions},
    session::probe_options,
};

/// The agent's ring buffer unless `--ring-buffer-size` says otherwise (MiB).
const RING_MIB: u32 = 16;

/// User stacks per second per CPU unless `--stack-budget` says otherwise: on a busy host not
/// every allocation can pay for a stack (see `tracer_common::sampling`).
pub const STACK_BUDGET: u32 = 1000;

/// How long `tracer top` keeps an exited process (the agent's `--exited-grace` default).
pub(crate) const EXITED_GRACE: std::time::Duration = std::time::Duration::from_secs(30);

/// Sampling tick of the agent: fine enough for a window of minutes, cheap on a busy host.
const TICK: std::time::Duration = std::time::Duration::from_secs(1);

fn policy_of(args: &AgentArgs) -> Policy {
    policy(&args.pids, &args.comms, &args.cgroups)
}

/// What is traced: these PIDs, names and cgroups (all empty: the whole host).
pub(crate) fn policy(pids: &[u32], comms: &[std::ffi::OsString], cgroups: &[std::path::PathBuf]) -> Policy {
    Policy {
        pids: pids.to_vec(),
        comms: comms
            .iter()
            .map(|c| {
                let b = c.as_bytes();
                // /proc/PID/comm holds at most 15 bytes: a longer name matches its prefix.
                b[..b.len().min(15)].to_vec()
            })
            .collect(),
        cgroups: cgroups.iter().map(|c| policy::normalize_cgroup(c)).collect(),
    }
}

pub async fn run(args: AgentArgs) -> anyhow::Result<i32> {
    for pid in &args.pids {
        if !crate::agent::proc::exists(*pid) {
            anyhow::bail!("PID {pid} does not exist (or has already exited)");
        }
    }
    // A bad web config, like a taken port, stops the agent before anything is attached.
    let web = match &args.web_config {
        Some(path) => Some(std::sync::Arc::new(http::WebState::load(path)?)),
        None => None,
    };
    let listener = http::bind(args.listen).await?;
    check_proc_access()?;
    let bound = listener.local_addr().unwrap_or(args.listen);
    let policy = policy_of(&args);
    let mut probe = probe_options(&args.capture);
    if args.capture.ring_buffer_size.is_none() {
        probe.ring_buffer_bytes = RING_MIB << 20;
    }
    // Write timing hooks the entry of every write on the host: opt-in for the agent.
    if args.capture.write_block.is_none() {
        probe.write_block_ns = 0;
    }
    probe.stack_budget = args.capture.stack_budget.unwrap_or(STACK_BUDGET);
    probe.trace_all = policy.whole_host();
    probe.discover_exec = policy.discovers_at_exec();
    let symbolizer = SymbolizerWorker::spawn().context("cannot start the symbolizer")?;
    let ctx = http::Context::new(
        symbolizer,
        HttpOptions {
            pid_labels: args.pid_labels,
            report_top: args.top,
            min_age_ns: args.min_age.as_nanos() as u64,
            lock_hold_ns: args.capture.lock_hold.as_nanos() as u64,
            stack_mode: args.capture.stack.as_str(),
            profile_comments: vec![sampling_comment(args.capture.stack.as_str(), probe.stack_budget)],
            endpoints: args.endpoints,
        },
    );
    let shutdown = shutdown_signal()?;
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let scheme = if web.as_ref().is_some_and(|w| w.is_tls()) {
        "https"
    } else {
        "http"
    };
    let server = tokio::spawn(http::serve(listener, ctx.clone(), web, async {
        let _ = stop_rx.await;
    }));
    let served = if args.endpoints == http::Endpoints::default() {
        "/metrics, /debug/pprof/{fds,sysv,locks}, /debug/folded/fds, /report, /healthy, /ready".to_owned()
    } else {
        format!("{} only; /healthy, /ready", args.endpoints.names())
    };
    eprintln!(
        "tracer: agent on {scheme}://{bound} ({served}); tracing {}",
        describe(&policy)
    );

    let window = args.window;
    let grace = args.exited_grace;
    let setup_policy = policy.clone();
    let started = tokio::task::spawn_blocking(move || {
        IngestTask::start(probe, TaskOptions { tick: TICK }, move |agent| {
            let t = &mut agent.tracker;
            t.state.sample_gap_ns = 2 * TICK.as_nanos() as u64;
            t.state.sites.window_ns = Some(window.as_nanos() as u64);
            t.state.exited_grace_ns = Some(grace.as_nanos() as u64);
            t.policy = setup_policy.clone();
            agent.select_comms(&setup_policy.comms)?;
            seed(agent, &setup_policy)
        })
    })
    .await
    .context("starting the ingest task")?;
    let task = match started {
        Ok(t) => t,
        Err(e) => {
            let _ = stop_tx.send(());
            let _ = server.await;
            return Err(anyhow::Error::new(e).context("cannot start tracing"));
        }
    };
    let _ = ctx.client.set(task.client());
    eprintln!("tracer: ready");
    shutdown.await;
    eprintln!("tracer: stopping");
    let _ = stop_tx.send(());
    let _ = server.await;
    drop(ctx);
    drop(task);
    Ok(0)
}

/// How the profile's stacks were taken, for its comments.
fn sampling_comment(stack: &str, budget: u32) -> String {
    if budget == 0 || stack == "none" {
        return format!("stacks: {stack}, every allocation's; values are exact");
    }
    format!(
        "stacks: {stack}, sampled past {budget} per second per CPU: each sampled stack stands for the \
         allocations of its sampling period, so values are estimates (tracer_open_fds is exact)"
    )
}

/// Follows every selected process now: the PIDs given, and every process whose name or cgroup
/// is selected (all of them for the whole host). Processes that exit meanwhile are skipped.
pub(crate) fn seed(agent: &mut crate::agent::Agent, policy: &Policy) -> Result<(), crate::agent::AgentError> {
    for pid in &policy.pids {
        agent.follow(*pid)?;
    }
    // Children the given processes already have are theirs too (later ones join at fork).
    for pid in policy::descendants(&policy.pids) {
        if let Err(e) = agent.follow(pid) {
            log::debug!("PID {pid} (a descendant) not seeded: {e}");
        }
    }
    if policy.pids.is_empty() || policy.discovers_at_exec() {
        let me = std::process::id();
        for pid in policy::all_processes(me) {
            if agent.tracker.state.processes.contains_key(&pid) {
                continue;
            }
            let selected = policy.whole_host()
                || policy.selects(&crate::agent::proc::comm(pid), policy::cgroup_of(pid).as_deref());
            if !selected {
                continue;
            }
            // Whole host: the kernel traces everyone already; a selection adds it to the set.
            let r = if policy.whole_host() {
                agent.tracker.adopt(pid)
            } else {
                agent.follow(pid)
            };
            if let Err(e) = r {
                log::debug!("PID {pid} not seeded: {e}");
            }
            // Keep the ring drained while seeding a big host.
            agent.drain_up_to(16_384);
        }
    }
    Ok(())
}

/// Seeding and resyncs read every process's /proc/PID/fd and maps. Those of other users (and
/// of non-dumpable processes) need CAP_SYS_PTRACE (`ptrace_may_access` with
/// PTRACE_MODE_READ_FSCREDS, fs/proc/base.c): without it such processes would look empty, so
/// the agent refuses at start instead. Tested on the capability itself: a readable /proc/1/fd
/// proves nothing where PID 1 runs as the agent's own user.
fn check_proc_access() -> anyhow::Result<()> {
    const CAP_SYS_PTRACE: u32 = 19;
    let status = std::fs::read_to_string("/proc/self/status").context("reading /proc/self/status")?;
    let effective = status
        .lines()
        .find_map(|l| l.strip_prefix("CapEff:"))
        .and_then(|v| u64::from_str_radix(v.trim(), 16).ok())
        .unwrap_or(0);
    if effective & (1 << CAP_SYS_PTRACE) == 0 {
        anyhow::bail!(
            "cannot read other users' /proc/PID/fd and maps without CAP_SYS_PTRACE: run as root or grant CAP_SYS_PTRACE (with CAP_BPF and CAP_PERFMON)"
        );
    }
    Ok(())
}

pub(crate) fn describe(p: &Policy) -> String {
    if p.whole_host() {
        return "every process on the host".into();
    }
    let mut parts = Vec::new();
    if !p.pids.is_empty() {
        parts.push(format!(
            "PID {}",
            p.pids.iter().map(u32::to_string).collect::<Vec<_>>().join(", ")
        ));
    }
    for c in &p.comms {
        parts.push(format!("comm {}", crate::output::escape::escape_bytes(c)));
    }
    for g in &p.cgroups {
        parts.push(format!("cgroup {g}"));
    }
    format!("{} and their children", parts.join(", "))
}

/// Resolves on the first SIGINT or SIGTERM.
fn shutdown_signal() -> anyhow::Result<impl std::future::Future<Output = ()>> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut int = signal(SignalKind::interrupt()).context("installing the SIGINT handler")?;
    let mut term = signal(SignalKind::terminate()).context("installing the SIGTERM handler")?;
    Ok(async move {
        tokio::select! {
            _ = int.recv() => {}
            _ = term.recv() => {}
        }
    })
}
