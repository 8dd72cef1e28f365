//! `tracer agent`: production mode. Binds the HTTP port first (a taken port fails before
//! anything is attached), then loads the programs and seeds every selected process from /proc
//! on the ingest thread, then serves until SIGINT or SIGTERM, which detach and exit 0.

use anyhow::Context as _;

use super::capture::{STACK_BUDGET, probe_options};
use crate::{
    cli::AgentArgs,
    http::{self, HttpOptions},
    output,
    probes::CountSource,
    procfs::process as proc,
    runtime::{
        symbolizer::SymbolizerWorker,
        task::{IngestTask, TaskOptions},
    },
    state::host::{Budget, HostCounts},
    tracker::policy::{self, Policy},
};

/// The agent's ring buffer unless `--ring-buffer-size` says otherwise (MiB).
const RING_MIB: u32 = 16;

/// Sampling tick of the agent: counts every process (15-90 us with the iterator), samples the
/// traced ones. Fine enough to escalate a leak within seconds, cheap on a busy host.
const TICK: std::time::Duration = std::time::Duration::from_millis(500);
/// Without the iterator, /proc is walked every few ticks (see `runtime::escalation`).
const PROC_COUNT_SECONDS: u64 = 2;

pub async fn run(args: AgentArgs) -> anyhow::Result<i32> {
    for pid in &args.pids {
        if !proc::exists(*pid) {
            anyhow::bail!("PID {pid} does not exist (or has already exited)");
        }
    }
    // A bad web config, like a taken port, stops the agent before anything is attached.
    let web = match &args.web_config {
        Some(path) => Some(std::sync::Arc::new(http::WebState::load(path)?)),
        None => None,
    };
    let listener = http::bind(args.listen).await?;
    proc::check_ptrace_capability()?;
    let bound = listener.local_addr().unwrap_or(args.listen);
    let policy = Policy::from_args(&args.pids, &args.comms, &args.cgroups);
    let mut probe = probe_options(&args.capture);
    if args.capture.ring_buffer_size.is_none() {
        probe.ring_buffer_bytes = RING_MIB << 20;
    }
    // Write timing hooks the entry of every write on the host: opt-in for the agent.
    if args.capture.write_block.is_none() {
        probe.write_block_ns = 0;
    }
    probe.stack_budget = args.capture.stack_budget.unwrap_or(STACK_BUDGET);
    // Always on (the default): every process counted by the iterator, nothing hooked on
    // syscalls until a process is selected or escalated. `--trace-all`: every fd of every
    // process with stacks, as before.
    let counting = !args.trace_all;
    probe.trace_all = args.trace_all;
    probe.fd_counts = counting;
    probe.syscall_hook = !counting || !policy.whole_host();
    probe.discover_exec = policy.discovers_at_exec();
    let budget = Budget {
        max_processes: args.escalation_budget,
        max_records_per_s: args.escalation_records,
    };
    let symbolizer = SymbolizerWorker::spawn().context("cannot start the symbolizer")?;
    let ctx = http::Context::new(
        symbolizer,
        HttpOptions {
            pid_labels: args.pid_labels,
            report_top: args.top,
            min_age_ns: args.min_age.as_nanos() as u64,
            lock_hold_ns: args.capture.lock_hold.as_nanos() as u64,
            stack_mode: args.capture.stack.as_str(),
            profile_comments: vec![output::pprof::sampling_comment(
                args.capture.stack.as_str(),
                probe.stack_budget,
            )],
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
        output::scope::describe_agent(&policy, args.trace_all)
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
            if counting {
                let mut host = HostCounts::with_budget(budget);
                // Slow leaks are judged over the window, at its resolution.
                host.coarse_gap_ns = (window.as_nanos() as u64 / 64).max(1_000_000_000);
                t.state.host = Some(host);
            }
            agent.select_comms(&setup_policy.comms)?;
            if counting && setup_policy.whole_host() {
                // Nothing selected: processes are followed when escalated.
                return Ok(());
            }
            policy::seed(agent, &setup_policy)
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
    if counting {
        match task.client().count_source().await {
            Ok(Some(CountSource::Iterator)) => eprintln!("tracer: fd counts from the BPF task iterator"),
            Ok(Some(CountSource::Proc(why))) => {
                eprintln!("tracer: fd counts from /proc every {PROC_COUNT_SECONDS} s, slower and coarser: {why}")
            }
            _ => {}
        }
    }
    eprintln!("tracer: ready");
    shutdown.await;
    eprintln!("tracer: stopping");
    let _ = stop_tx.send(());
    let _ = server.await;
    drop(ctx);
    drop(task);
    Ok(0)
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
