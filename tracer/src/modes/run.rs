//! `tracer run -- CMD ARGS..`: starts the command held before exec until the probes follow it,
//! and reports once it has exited.

use tokio::signal::unix::{SignalKind, signal as unix_signal};

use super::{
    capture::{probe_options, tick_period},
    child::{self, HeldChild},
    reporter::{Reporter, print_stats},
};
use crate::{
    cli::RunArgs,
    runtime::task::{Detach, IngestTask, TaskOptions},
};

/// `tracer run -- CMD ARGS..`. Returns CMD's exit code.
pub async fn run(args: RunArgs) -> anyhow::Result<i32> {
    // Caught before anything starts: Ctrl-C reaches the command too (same process group), and
    // tracer must outlive it to report.
    let mut interrupt = unix_signal(SignalKind::interrupt())?;
    let mut reporter = Reporter::new(&args.common)?;
    let held = HeldChild::spawn(&args.command)?;
    let pid = held.pid;
    let tick = tick_period(None);
    let started = IngestTask::start(
        probe_options(&args.common.capture),
        TaskOptions { tick },
        move |agent| {
            agent.tracker.state.sample_gap_ns = 2 * tick.as_nanos() as u64;
            agent.follow_held(pid)
        },
    );
    let task = match started {
        Ok(t) => t,
        Err(e) => {
            let _ = held.release();
            return Err(anyhow::Error::new(e).context(format!("cannot follow the command (PID {pid})")));
        }
    };
    let client = task.client();
    let child = held.release()?;
    let (tx, rx) = tokio::sync::oneshot::channel();
    std::thread::spawn(move || {
        let mut child = child;
        let _ = tx.send(child.wait());
    });
    tokio::pin!(rx);
    let status = loop {
        tokio::select! {
            s = &mut rx => { break s.ok().and_then(|s| s.ok()); }
            // Ctrl-C reaches the command too (same process group); keep going until it exits.
            _ = interrupt.recv() => {}
        }
    };
    // Everything the command did is in the ring buffer by now (its exit preceded the wait),
    // except what the kernel does an RCU grace period later: the release of its exited
    // children (reaps) and of its last locks.
    client.settle().await?;
    reporter.report(&client, "final").await?;
    if args.common.stats {
        print_stats(&client).await;
    }
    // The report is out: the kernel may take its time over the plain tracepoints' detach.
    task.stop(Detach::Later);
    Ok(status.map_or(1, child::exit_code))
}
