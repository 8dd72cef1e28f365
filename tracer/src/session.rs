//! The two ways to use tracer: `watch` running processes, `run` a command. Each is one tokio task
//! that drains the ring buffer, ticks the state and prints reports.

use std::{
    fs::File,
    io::{self, Write},
    time::{Duration, Instant},
};

use anyhow::Context;
use tracer_common::config::StackMode;

use crate::{
    agent::{Agent, proc},
    analysis::{self, ReportOptions},
    child::{self, HeldChild},
    cli::{CommonArgs, RunArgs, StackArg, WatchArgs},
    output::{self, Heading},
    probes::ProbeOptions,
    symbolize::Symbols,
};

/// Sampling period of site counts: fine enough to see a trend in a short `run`.
fn tick_period(interval: Option<Duration>) -> Duration {
    match interval {
        Some(i) => (i / 20).clamp(Duration::from_millis(100), Duration::from_secs(1)),
        None => Duration::from_millis(100),
    }
}

fn probe_options(c: &CommonArgs) -> ProbeOptions {
    ProbeOptions {
        stack_mode: match c.stack {
            StackArg::Dwarf => StackMode::Dwarf,
            StackArg::Fp => StackMode::FramePointer,
            StackArg::None => StackMode::None,
        },
        stack_bytes: c.stack_size * 1024,
        ring_buffer_bytes: c.ring_buffer_size.saturating_mul(1024 * 1024),
        trace_all: false,
        report_ebadf: !c.no_ebadf,
        close_stacks: c.close_stacks,
        kernel_stack: c.kernel_stack,
    }
}

struct Reporter {
    out: Box<dyn Write>,
    common: CommonArgs,
    symbols: Symbols,
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
            symbols: Symbols::new(),
            started: Instant::now(),
        })
    }

    fn report(&mut self, agent: &mut Agent, label: &'static str) -> anyhow::Result<()> {
        agent.tracker.refresh_limits();
        let opts = ReportOptions {
            min_age_ns: self.common.min_age.as_nanos() as u64,
            top: self.common.top,
            lock_hold_ns: self.common.lock_hold.as_nanos() as u64,
            system: Some(crate::agent::sysv::system_limits()),
        };
        let lost = agent.lost_events();
        let now = proc::monotonic_ns();
        let symbols = &mut self.symbols;
        let stacks = &agent.tracker.stacks;
        let report = analysis::build(&agent.tracker.state, now, lost, &opts, |id| stacks.frames(symbols, id));
        let heading = Heading {
            elapsed_s: self.started.elapsed().as_secs_f64(),
            label,
            stack_mode: self.common.stack.as_str(),
        };
        output::write(&mut self.out, self.common.format, &report, &heading).context("writing the report")?;
        self.out.flush().context("writing the report")?;
        Ok(())
    }
}

/// The agent's own cost, for `--stats` (and the benchmark, which parses this line).
fn print_stats(agent: &Agent) {
    // SAFETY: getrusage fills the struct it is given.
    let usage = unsafe {
        let mut u: libc::rusage = std::mem::zeroed();
        libc::getrusage(libc::RUSAGE_SELF, &mut u);
        u
    };
    let ms = |t: libc::timeval| t.tv_sec as f64 * 1e3 + t.tv_usec as f64 / 1e3;
    let fds: usize = agent.tracker.state.processes.values().map(|p| p.fds.len()).sum();
    // Anonymous memory: the agent's own heap, without the ring buffer's shared pages.
    let rss_anon = procfs::process::Process::myself()
        .and_then(|p| p.status())
        .ok()
        .and_then(|s| s.rssanon)
        .unwrap_or(0);
    eprintln!(
        "tracer-stats: records={} lost={} cpu_ms={:.1} max_rss_kib={} rss_anon_kib={} tracked_fds={} stacks={}",
        agent.records(),
        agent.lost_events(),
        ms(usage.ru_utime) + ms(usage.ru_stime),
        usage.ru_maxrss,
        rss_anon,
        fds,
        agent.tracker.stacks.len()
    );
}

/// `tracer watch -p PID.. [INTERVAL [COUNT]]`. Returns the process exit code.
pub async fn watch(args: WatchArgs) -> anyhow::Result<i32> {
    for pid in &args.pids {
        if !proc::exists(*pid) {
            anyhow::bail!("PID {pid} does not exist (or has already exited)");
        }
    }
    let mut agent = Agent::new(probe_options(&args.common))?;
    for pid in &args.pids {
        agent
            .follow(*pid)
            .with_context(|| format!("cannot attach to PID {pid}"))?;
    }
    eprintln!(
        "tracer: tracing PID {} ({} stacks); report every {:.1}s, Ctrl-C for the final one",
        args.pids.iter().map(u32::to_string).collect::<Vec<_>>().join(", "),
        args.common.stack.as_str(),
        args.interval.as_secs_f64()
    );
    let mut reporter = Reporter::new(&args.common)?;
    agent.tracker.state.sample_gap_ns = 2 * tick_period(Some(args.interval)).as_nanos() as u64;
    let mut tick = tokio::time::interval(tick_period(Some(args.interval)));
    let mut report_timer = tokio::time::interval_at(tokio::time::Instant::now() + args.interval, args.interval);
    let mut reports = 0u64;
    let ctrl_c = tokio::signal::ctrl_c();
    tokio::pin!(ctrl_c);
    let mut sigterm = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    loop {
        tokio::select! {
            r = agent.readable() => { r.context("waiting for kernel events")?; agent.drain(); }
            _ = tick.tick() => {
                agent.drain();
                agent.tracker.tick();
                let all_gone = agent.tracker.targets.iter().all(|p| agent.tracker.state.process(*p).is_none_or(|s| !s.is_alive()));
                if all_gone {
                    reporter.report(&mut agent, "final")?;
                    if args.common.stats { print_stats(&agent); }
                    let pids: Vec<String> = args.pids.iter().map(u32::to_string).collect();
                    eprintln!("tracer: PID {} exited; the final report shows what was open at exit", pids.join(", "));
                    return Ok(1);
                }
            }
            _ = report_timer.tick() => {
                agent.drain();
                reports += 1;
                let last = args.count.is_some_and(|c| reports >= c);
                reporter.report(&mut agent, if last { "final" } else { "interval" })?;
                if last {
                    if args.common.stats { print_stats(&agent); }
                    return Ok(0);
                }
            }
            _ = &mut ctrl_c => { break; }
            _ = sigterm.recv() => { break; }
        }
    }
    agent.drain();
    agent.tracker.tick();
    reporter.report(&mut agent, "final")?;
    if args.common.stats {
        print_stats(&agent);
    }
    Ok(0)
}

/// `tracer run -- CMD ARGS..`. Returns CMD's exit code.
pub async fn run(args: RunArgs) -> anyhow::Result<i32> {
    let mut agent = Agent::new(probe_options(&args.common))?;
    let held = HeldChild::spawn(&args.command)?;
    let pid = held.pid;
    if let Err(e) = agent.follow(pid) {
        let _ = held.release();
        return Err(anyhow::Error::new(e).context(format!("cannot follow the command (PID {pid})")));
    }
    let mut reporter = Reporter::new(&args.common)?;
    let child = held.release()?;
    let (tx, mut rx) = tokio::sync::oneshot::channel();
    std::thread::spawn(move || {
        let mut child = child;
        let _ = tx.send(child.wait());
    });
    agent.tracker.state.sample_gap_ns = 2 * tick_period(None).as_nanos() as u64;
    let mut tick = tokio::time::interval(tick_period(None));
    let ctrl_c = tokio::signal::ctrl_c();
    tokio::pin!(ctrl_c);
    let status = loop {
        tokio::select! {
            r = agent.readable() => { r.context("waiting for kernel events")?; agent.drain(); }
            _ = tick.tick() => { agent.drain(); agent.tracker.tick(); }
            s = &mut rx => { break s.ok().and_then(|s| s.ok()); }
            // Ctrl-C reaches the command too (same process group); keep going until it exits.
            _ = &mut ctrl_c => {}
        }
    };
    // Everything the command did is in the ring buffer by now (its exit preceded the wait),
    // except what the kernel does an RCU grace period later: the release of its exited
    // children (reaps) and of its last locks.
    tokio::time::sleep(Duration::from_millis(50)).await;
    while agent.drain() > 0 {}
    agent.tracker.tick();
    reporter.report(&mut agent, "final")?;
    if args.common.stats {
        print_stats(&agent);
    }
    Ok(status.map_or(1, child::exit_code))
}
