//! `tracer watch -p PID.. [INTERVAL [COUNT]]`: follows running processes and reports at each
//! interval and at the end.

use tokio::signal::unix::{SignalKind, signal as unix_signal};

use super::{
    capture::{probe_options, tick_period},
    reporter::{Reporter, print_stats},
};
use crate::{
    cli::WatchArgs,
    procfs::process as proc,
    runtime::task::{IngestTask, TaskOptions},
};

/// `tracer watch -p PID.. [INTERVAL [COUNT]]`. Returns the process exit code.
pub async fn run(args: WatchArgs) -> anyhow::Result<i32> {
    for pid in &args.pids {
        if !proc::exists(*pid) {
            anyhow::bail!("PID {pid} does not exist (or has already exited)");
        }
    }
    // Ctrl-C and SIGTERM are caught from here on: from the readiness line below, a signal
    // always gets the final report (tokio's `ctrl_c()` would only register at its first poll).
    let mut interrupt = unix_signal(SignalKind::interrupt())?;
    let mut sigterm = unix_signal(SignalKind::terminate())?;
    let mut reporter = Reporter::new(&args.common)?;
    let tick = tick_period(Some(args.interval));
    let pids = args.pids.clone();
    let task = IngestTask::start(
        probe_options(&args.common.capture),
        TaskOptions { tick },
        move |agent| {
            agent.tracker.state.sample_gap_ns = 2 * tick.as_nanos() as u64;
            pids.iter().try_for_each(|pid| agent.follow(*pid))
        },
    )?;
    let client = task.client();
    eprintln!(
        "tracer: tracing PID {} ({} stacks); report every {:.1}s, Ctrl-C for the final one",
        args.pids.iter().map(u32::to_string).collect::<Vec<_>>().join(", "),
        args.common.capture.stack.as_str(),
        args.interval.as_secs_f64()
    );
    let mut alive_check = tokio::time::interval(tick);
    let mut report_timer = tokio::time::interval_at(tokio::time::Instant::now() + args.interval, args.interval);
    let mut reports = 0u64;
    loop {
        tokio::select! {
            _ = alive_check.tick() => {
                if !client.status().await?.targets_alive {
                    client.settle().await?;
                    reporter.report(&client, "final").await?;
                    if args.common.stats { print_stats(&client).await; }
                    let pids: Vec<String> = args.pids.iter().map(u32::to_string).collect();
                    eprintln!("tracer: PID {} exited; the final report shows what was open at exit", pids.join(", "));
                    return Ok(1);
                }
            }
            _ = report_timer.tick() => {
                reports += 1;
                let last = args.count.is_some_and(|c| reports >= c);
                reporter.report(&client, if last { "final" } else { "interval" }).await?;
                if last {
                    if args.common.stats { print_stats(&client).await; }
                    return Ok(0);
                }
            }
            _ = interrupt.recv() => { break; }
            _ = sigterm.recv() => { break; }
        }
    }
    client.settle().await?;
    reporter.report(&client, "final").await?;
    if args.common.stats {
        print_stats(&client).await;
    }
    Ok(0)
}
