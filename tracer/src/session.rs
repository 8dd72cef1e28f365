//! The two ways to use tracer on the command line: `watch` running processes, `run` a command.
//! Both are clients of the ingest task (see `agent::task`): they ask it for reports at their
//! intervals, have the symbolizer worker resolve the stacks, and render them.

use std::{
    fs::File,
    io::{self, Write},
    time::{Duration, Instant},
};

use anyhow::Context;
use tokio::signal::unix::{SignalKind, signal as unix_signal};
use tracer_common::config::StackMode;

use crate::{
    agent::{
        proc,
        symbolizer::SymbolizerWorker,
        task::{Client, IngestTask, ReportSnapshot, TaskOptions},
    },
    analysis::ReportOptions,
    child::{self, HeldChild},
    cli::{CaptureArgs, CommonArgs, RunArgs, StackArg, WatchArgs},
    output::{self, Heading},
    probes::ProbeOptions,
};

/// Sampling period of site counts: fine enough to see a trend in a short `run`.
fn tick_period(interval: Option<Duration>) -> Duration {
    match interval {
        Some(i) => (i / 20).clamp(Duration::from_millis(100), Duration::from_secs(1)),
        None => Duration::from_millis(100),
    }
}

/// Ring buffer of `watch` and `run` unless `--ring-buffer-size` says otherwise (MiB).
const RING_MIB: u32 = 64;
/// `--write-block` of watch, run and top.
const WRITE_BLOCK: Duration = Duration::from_millis(100);

pub fn probe_options(c: &CaptureArgs) -> ProbeOptions {
    ProbeOptions {
        stack_mode: match c.stack {
            StackArg::Dwarf => StackMode::Dwarf,
            StackArg::Fp => StackMode::FramePointer,
            StackArg::None => StackMode::None,
        },
        stack_bytes: c.stack_size * 1024,
        ring_buffer_bytes: c.ring_buffer_size.unwrap_or(RING_MIB).saturating_mul(1024 * 1024),
        trace_all: false,
        discover_exec: false,
        report_ebadf: !c.no_ebadf,
        close_stacks: c.close_stacks,
        kernel_stack: c.kernel_stack,
        bpf_stats: c.bpf_stats,
        raw_sys_exit: false,
        stack_budget: c.stack_budget.unwrap_or(0),
        write_block_ns: c.write_block.unwrap_or(WRITE_BLOCK).as_nanos() as u64,
        python_frames: c.python_frames == crate::cli::OnOff::On,
    }
}

/// Writes reports: asks the ingest task for one, has the symbolizer worker resolve its stacks,
/// renders it here. Nothing of this runs on the task that drains the ring.
struct Reporter {
    out: Box<dyn Write>,
    common: CommonArgs,
    symbolizer: SymbolizerWorker,
    started: Instant,
}

impl Reporter {
    fn new(common: &CommonArgs) -> anyhow::Result<Self> {
        let out: Box<dyn Write> = match &common.output {
            Some(path) => {
                Box::new(File::create(path).with_context(|| format!("cannot write the report to {}", path.display()))?)
            }
            None => Box::new(io::stdout()),
        };
        Ok(Reporter {
            out,
            common: common.clone(),
            symbolizer: SymbolizerWorker::spawn().context("cannot start the symbolizer")?,
            started: Instant::now(),
        })
    }

    async fn report(&mut self, client: &Client, label: &'static str) -> anyhow::Result<()> {
        let opts = ReportOptions {
            min_age_ns: self.common.min_age.as_nanos() as u64,
            top: self.common.top,
            lock_hold_ns: self.common.capture.lock_hold.as_nanos() as u64,
            system: None,
            top_processes: None,
        };
        let ReportSnapshot { mut report, stacks } = client.report(opts).await?;
        let resolved = self.symbolizer.resolve(stacks).await;
        report.resolve_stacks(|id| resolved.get(&id).cloned().unwrap_or_default());
        let heading = Heading {
            elapsed_s: self.started.elapsed().as_secs_f64(),
            label,
            stack_mode: self.common.capture.stack.as_str(),
            all: self.common.all,
            color: output::color_wanted(self.common.output.is_none() && io::IsTerminal::is_terminal(&io::stdout())),
        };
        if self.common.format.is_snapshot()
            && let Some(path) = &self.common.output
        {
            // A picture of the moment: the file holds the latest one.
            self.out =
                Box::new(File::create(path).with_context(|| format!("cannot write the report to {}", path.display()))?);
        }
        output::write(&mut self.out, self.common.format, &report, &heading).context("writing the report")?;
        self.out.flush().context("writing the report")?;
        Ok(())
    }
}

/// The agent's own cost, for `--stats` (and the benchmark, which parses this line).
async fn print_stats(client: &Client) {
    let status = client.status().await.unwrap_or_default();
    let cost = crate::agent::cost::now();
    eprintln!(
        "tracer-stats: records={} lost={} cpu_ms={:.1} max_rss_kib={} rss_anon_kib={} tracked_fds={} stacks={} {} stack_copies={} short_stack_copies={} {}{}",
        status.records,
        status.lost,
        cost.cpu_seconds * 1e3,
        cost.max_rss_kib,
        cost.rss_anon_kib,
        status.tracked_fds,
        status.stacks,
        status.losses.pairs(),
        STACK_COPY_SIZES
            .iter()
            .zip(status.stack_copies)
            .map(|(size, n)| format!("{size}:{n}"))
            .collect::<Vec<_>>()
            .join(","),
        status.short_stack_copies,
        stage_fields(&status.stages),
        program_fields(&status.programs)
    );
}

/// The DWARF stack copy sizes, as `stack_copies=` names them.
const STACK_COPY_SIZES: [&str; 5] = ["1k", "2k", "4k", "8k", "16k"];

/// `stage_ns=decode:120,state:340,...`: mean agent nanoseconds per record by stage, and
/// `tick_ms=`: the periodic work's total.
fn stage_fields(c: &crate::agent::stages::StageClock) -> String {
    use crate::agent::stages::Stage;
    let per_record: Vec<String> = Stage::ALL
        .iter()
        .filter_map(|s| Some(format!("{}:{:.0}", s.name(), c.ns_per_record(*s)?)))
        .collect();
    format!(
        "stage_ns={} stage_sampled={} tick_ms={:.1}",
        if per_record.is_empty() {
            "-".into()
        } else {
            per_record.join(",")
        },
        c.sampled,
        c.seconds(Stage::Tick) * 1e3
    )
}

/// ` bpf=sys_exit:runs:ns_per_run,...` when the kernel timed the programs.
fn program_fields(programs: &[crate::probes::ProgramCost]) -> String {
    let timed: Vec<String> = programs
        .iter()
        .filter_map(|p| Some(format!("{}:{}:{:.0}", p.name, p.runs, p.ns_per_run()?)))
        .collect();
    if timed.is_empty() {
        String::new()
    } else {
        format!(" bpf={}", timed.join(","))
    }
}

/// `tracer floor`: the benchmark's floor (see [`crate::probes::Floor`]), attached until SIGINT
/// or SIGTERM.
pub async fn floor() -> anyhow::Result<i32> {
    let mut interrupt = unix_signal(SignalKind::interrupt())?;
    let mut terminate = unix_signal(SignalKind::terminate())?;
    let floor = crate::probes::Floor::attach()?;
    eprintln!("tracer: floor attached");
    tokio::select! {
        _ = interrupt.recv() => {}
        _ = terminate.recv() => {}
    }
    drop(floor);
    Ok(0)
}

/// `tracer watch -p PID.. [INTERVAL [COUNT]]`. Returns the process exit code.
pub async fn watch(args: WatchArgs) -> anyhow::Result<i32> {
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
            agent.follow(pid)
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
    Ok(status.map_or(1, child::exit_code))
}
