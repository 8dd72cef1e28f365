//! The nginx workload: what tracing costs a real server's throughput. nginx (2 workers) serves
//! a 6-byte file to `ab -c 8` (one connection per request), untraced and under each way of
//! tracing it, configurations alternated round by round; median requests per second.

mod breakdown;

use std::{process::Command, time::Instant};

use super::{
    Env, Options, agent::Agent, guard::Guarded, have, json_str, median, nginx, nginx::Nginx, num, opt, procfs, scrape,
    start_bpftrace, watch::Watch,
};
use crate::Result;
use breakdown::{BREAKDOWN, Breakdown, breakdown_run};

/// ab's concurrency.
const CONCURRENCY: u32 = 8;
/// The issue's target: the agent at its defaults costs at most this much throughput (%).
const TARGET_LOSS_PCT: f64 = 3.0;

/// How nginx runs in one measurement.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Setup {
    Untraced,
    /// `tracer agent` on the whole host, `--stack` given or at its default.
    Agent(Option<&'static str>),
    /// The agent stopped (SIGSTOP) for 1 s a second into the run, then continued: does its ring
    /// buffer (MiB given, or the default) hold what the kernel sends meanwhile?
    AgentStopped(Option<&'static str>),
    /// `tracer watch -p` on the master and its workers, with this `--stack`.
    Watch(&'static str),
    /// A bpftrace script keeping the same per-fd state (every open fd of nginx with its
    /// `ustack`): what a user would write instead. Needs bpftrace.
    Bpftrace,
    /// The floor: `tracer floor`, empty programs on exactly the hooks tracer attaches, attached
    /// the same way (`tp_btf/sys_exit` and the plain tracepoints): the syscall-exit hook
    /// switches every task onto the kernel's syscall-tracepoint path (shared/KERNEL.md). What
    /// any such tracer pays; the other rows show what tracer adds.
    Floor,
    /// The same with bpftrace (perf-event tracepoints: `raw_syscalls:sys_exit` costs more than
    /// a BTF tracepoint, so this floor is high). Needs bpftrace.
    BpftraceFloor,
    /// `--baseline`: another tracer binary (the one before a change), agent at its defaults,
    /// and watch with DWARF stacks: before and after in one run.
    BaselineAgent,
    BaselineWatch,
}

/// bpftrace's BEGIN runs once every probe is attached: the marker file says so. bpftrace 0.17
/// has no raw tracepoints: `raw_syscalls:sys_exit` as a perf tracepoint costs a little more
/// than tracer's raw one, so the floor is, if anything, high.
pub(super) const FLOOR_SCRIPT: &str = "BEGIN { system(\"touch %s\", str($1)); }
tracepoint:raw_syscalls:sys_exit { }
tracepoint:task:task_newtask, tracepoint:sched:sched_process_exec, tracepoint:sched:sched_process_exit,
tracepoint:sched:sched_process_free, tracepoint:filelock:flock_lock_inode,
tracepoint:filelock:posix_lock_inode, tracepoint:signal:signal_generate,
tracepoint:signal:signal_deliver { }
";

/// The per-fd state tracer keeps, for nginx, written the way a bpftrace user would.
const BPFTRACE_NGINX_SCRIPT: &str = r#"BEGIN { system("touch %s", str($1)); }
tracepoint:syscalls:sys_exit_accept4, tracepoint:syscalls:sys_exit_accept,
tracepoint:syscalls:sys_exit_openat, tracepoint:syscalls:sys_exit_socket
/comm == "nginx" && args->ret >= 0/ { @fds[pid, args->ret] = ustack; }
tracepoint:syscalls:sys_enter_close /comm == "nginx"/ { delete(@fds[pid, args->fd]); }
END { clear(@fds); }
"#;

const SETUPS: [Setup; 14] = [
    Setup::Untraced,
    Setup::Floor,
    Setup::BpftraceFloor,
    Setup::Agent(None),
    Setup::AgentStopped(None),
    Setup::AgentStopped(Some("64")),
    Setup::Agent(Some("fp")),
    Setup::Agent(Some("none")),
    Setup::Watch("dwarf"),
    Setup::Watch("fp"),
    Setup::Watch("none"),
    Setup::Bpftrace,
    Setup::BaselineAgent,
    Setup::BaselineWatch,
];

impl Setup {
    fn name(self) -> String {
        match self {
            Setup::Untraced => "untraced".into(),
            Setup::Agent(None) => "tracer agent (defaults)".into(),
            Setup::Agent(Some(mode)) => format!("tracer agent --stack {mode}"),
            Setup::AgentStopped(None) => "agent (defaults), stopped 1 s".into(),
            Setup::AgentStopped(Some(mib)) => format!("agent, {mib} MiB ring, stopped 1 s"),
            Setup::Watch(mode) => format!("tracer watch -p ({mode})"),
            Setup::Bpftrace => "bpftrace (ustack per fd)".into(),
            Setup::Floor => "floor: tracer floor (empty)".into(),
            Setup::BpftraceFloor => "floor: bpftrace, same hooks".into(),
            Setup::BaselineAgent => "baseline: agent (defaults)".into(),
            Setup::BaselineWatch => "baseline: watch -p (dwarf)".into(),
        }
    }

    fn available(self, o: &Options) -> bool {
        match self {
            Setup::BpftraceFloor | Setup::Bpftrace => have("bpftrace"),
            Setup::BaselineAgent | Setup::BaselineWatch => o.baseline.is_some(),
            _ => true,
        }
    }
}

/// The tracer running around one ab run.
enum Tracer {
    None,
    Agent(Agent),
    Watch(Watch),
    Bpftrace(Guarded),
}

impl Tracer {
    fn start(env: &Env, o: &Options, setup: Setup, nginx: &Nginx) -> Result<Self> {
        let baseline = || o.baseline.clone().ok_or("no --baseline binary");
        Ok(match setup {
            Setup::Untraced => Tracer::None,
            Setup::Agent(mode) => {
                let args = mode.map_or_else(Vec::new, |m| vec!["--stack", m]);
                Tracer::Agent(Agent::start(&env.tracer, &args)?)
            }
            Setup::AgentStopped(ring) => {
                let args = ring.map_or_else(Vec::new, |r| vec!["--ring-buffer-size", r]);
                Tracer::Agent(Agent::start(&env.tracer, &args)?)
            }
            Setup::Watch(mode) => Tracer::Watch(Watch::start(&env.tracer, &nginx.pids(), mode)?),
            Setup::Floor => Tracer::Bpftrace(start_floor(&env.tracer)?),
            Setup::BpftraceFloor => Tracer::Bpftrace(start_script(env, "floor.bt", FLOOR_SCRIPT)?),
            Setup::Bpftrace => Tracer::Bpftrace(start_script(env, "nginx-fds.bt", BPFTRACE_NGINX_SCRIPT)?),
            Setup::BaselineAgent => Tracer::Agent(Agent::start(&baseline()?, &[])?),
            Setup::BaselineWatch => Tracer::Watch(Watch::start(&baseline()?, &nginx.pids(), "dwarf")?),
        })
    }

    fn pid(&self) -> Option<u32> {
        match self {
            Tracer::None => None,
            Tracer::Agent(a) => Some(a.pid()),
            Tracer::Watch(w) => Some(w.pid()),
            Tracer::Bpftrace(b) => Some(b.id()),
        }
    }

    /// Stops it; the records the kernel could not deliver meanwhile.
    fn finish(self) -> Result<Option<u64>> {
        match self {
            Tracer::None => Ok(None),
            Tracer::Agent(a) => {
                let metrics = a.metrics()?;
                let lost = scrape::sum(&metrics, "tracer_kernel_lost_events_total", &[])
                    .ok_or("no tracer_kernel_lost_events_total in the agent's /metrics")?;
                a.stop();
                Ok(Some(lost as u64))
            }
            Tracer::Watch(w) => Ok(Some(w.finish()?.lost)),
            Tracer::Bpftrace(b) => {
                let _ = b.finish();
                Ok(None)
            }
        }
    }
}

/// `tracer floor`, once its programs are attached.
pub(super) fn start_floor(tracer: &std::path::Path) -> Result<Guarded> {
    let mut floor = Guarded::spawn(
        Command::new(tracer)
            .arg("floor")
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped()),
        "tracer floor",
    )?;
    let mut stderr = std::io::BufReader::new(floor.stderr.take().ok_or("tracer floor: no stderr")?);
    super::wait_for_line(&mut stderr, "tracer: floor attached", "tracer floor")?;
    Ok(floor)
}

pub(super) fn start_script(env: &Env, name: &str, text: &str) -> Result<Guarded> {
    let script = env.script.with_file_name(name);
    std::fs::write(&script, text).map_err(|e| format!("writing {}: {e}", script.display()))?;
    start_bpftrace(&script, &[])
}

/// One ab run.
#[derive(Clone, Copy, Debug)]
struct Sample {
    requests_per_s: f64,
    /// The tracer's CPU during the run, in percent of one core.
    tracer_cpu_pct: Option<f64>,
    lost: Option<u64>,
}

/// ab's figures; an error unless every request succeeded with a 2xx.
fn parse_ab(out: &str, requests: u64) -> Result<f64> {
    let field = |key: &str| {
        out.lines()
            .find_map(|l| l.trim().strip_prefix(key))
            .and_then(|v| v.split_whitespace().next())
    };
    let complete: u64 = field("Complete requests:")
        .and_then(|v| v.parse().ok())
        .ok_or_else(|| format!("ab printed no request count:\n{out}"))?;
    let failed: u64 = field("Failed requests:")
        .and_then(|v| v.parse().ok())
        .ok_or_else(|| format!("ab printed no failure count:\n{out}"))?;
    let non_2xx: u64 = field("Non-2xx responses:").and_then(|v| v.parse().ok()).unwrap_or(0);
    if complete != requests || failed != 0 || non_2xx != 0 {
        return Err(format!(
            "ab: {complete} of {requests} requests complete, {failed} failed, {non_2xx} not 2xx:\n{out}"
        ));
    }
    field("Requests per second:")
        .and_then(|v| v.parse().ok())
        .ok_or_else(|| format!("ab printed no rate:\n{out}"))
}

fn ab(url: &str, requests: u64) -> Result<f64> {
    let out = Command::new("ab")
        .args(["-q", "-c", &CONCURRENCY.to_string(), "-n", &requests.to_string(), url])
        .output()
        .map_err(|e| format!("running ab: {e}"))?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    if !out.status.success() {
        return Err(format!(
            "ab failed ({}): {}{stdout}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    parse_ab(&stdout, requests)
}

fn measure(env: &Env, o: &Options, setup: Setup, nginx: &Nginx, requests: u64, ticks: u64) -> Result<Sample> {
    let tracer = Tracer::start(env, o, setup, nginx)?;
    let usage = || tracer.pid().map(procfs::usage).transpose();
    let before = usage()?;
    let t = Instant::now();
    let pause = match (setup, tracer.pid()) {
        (Setup::AgentStopped(_), Some(pid)) => Some(std::thread::spawn(move || {
            let signal = |sig: &str| {
                let _ = Command::new("kill").args([sig, &pid.to_string()]).status();
            };
            std::thread::sleep(std::time::Duration::from_secs(1));
            signal("-STOP");
            std::thread::sleep(std::time::Duration::from_secs(1));
            signal("-CONT");
        })),
        _ => None,
    };
    let requests_per_s = ab(&nginx.url(), requests)?;
    let secs = t.elapsed().as_secs_f64();
    if let Some(p) = pause {
        let _ = p.join();
    }
    let after = usage()?;
    let tracer_cpu_pct = before.zip(after).map(|(b, a)| procfs::cpu_percent(b, a, secs, ticks));
    let lost = tracer.finish()?;
    Ok(Sample {
        requests_per_s,
        tracer_cpu_pct,
        lost,
    })
}

pub(super) struct Row {
    config: String,
    median_requests_per_s: f64,
    /// Untraced over this configuration: the throughput cost as a factor (1.03x).
    ratio: f64,
    /// Throughput lost against untraced, in percent.
    loss_pct: f64,
    tracer_cpu_pct: Option<f64>,
    /// The most records lost in one run.
    lost: Option<u64>,
    runs: usize,
}

pub(super) struct Report {
    requests: u64,
    rounds: usize,
    rows: Vec<Row>,
    breakdown: Vec<Breakdown>,
}

/// Fails early, with the way out, when nginx or ab is missing.
pub(super) fn check_installed() -> Result {
    if nginx::binary().is_none() || !have("ab") {
        return Err(
            "the nginx workload needs nginx and ab (Debian packages nginx-light and apache2-utils): run `cargo xtask setup`"
                .into(),
        );
    }
    Ok(())
}

pub(super) fn run(env: &Env, o: &Options) -> Result<Report> {
    check_installed()?;
    let (requests, rounds) = if o.quick { (2_000, 1) } else { (30_000, o.runs.max(5)) };
    eprintln!("bench: nginx ({rounds} round(s) of {requests} requests per configuration)");
    let ticks = procfs::clock_ticks();
    let nginx = Nginx::start()?;
    if !o.quick {
        // Warm-up: caches, the TCP stack, nginx's first connections.
        ab(&nginx.url(), 5_000)?;
    }
    let setups: Vec<Setup> = SETUPS.iter().copied().filter(|s| s.available(o)).collect();
    let mut samples: Vec<Vec<Sample>> = vec![Vec::new(); setups.len()];
    // Alternate configurations within each round so drift hits them all alike.
    for _ in 0..rounds {
        for (i, s) in setups.iter().enumerate() {
            samples[i].push(measure(env, o, *s, &nginx, requests, ticks)?);
        }
    }
    let rate = |s: &[Sample]| median(&mut s.iter().map(|x| x.requests_per_s).collect::<Vec<_>>());
    let base = rate(&samples[0]);
    let rows = setups
        .iter()
        .zip(&samples)
        .map(|(setup, s)| {
            let rps = rate(s);
            let cpu: Vec<f64> = s.iter().filter_map(|x| x.tracer_cpu_pct).collect();
            Row {
                config: setup.name(),
                median_requests_per_s: rps,
                ratio: base / rps,
                loss_pct: (1.0 - rps / base) * 100.0,
                tracer_cpu_pct: (!cpu.is_empty()).then(|| median(&mut cpu.clone())),
                lost: s.iter().filter_map(|x| x.lost).max(),
                runs: s.len(),
            }
        })
        .collect();
    let mut breakdown = Vec::new();
    for (config, args) in BREAKDOWN {
        breakdown.push(breakdown_run(env, &nginx, config, args, requests)?);
    }
    Ok(Report {
        requests,
        rounds,
        rows,
        breakdown,
    })
}

impl Report {
    /// The agent at its defaults against the target: (loss %, met).
    fn target(&self) -> Option<(f64, bool)> {
        let name = Setup::Agent(None).name();
        let r = self.rows.iter().find(|r| r.config == name)?;
        Some((r.loss_pct, r.loss_pct <= TARGET_LOSS_PCT))
    }

    pub(super) fn print(&self) {
        println!(
            "\nnginx (2 workers, 6-byte file; ab -c {CONCURRENCY}, {} requests per run; medians of {} round(s)):",
            self.requests, self.rounds
        );
        println!(
            "{:<34} {:>10} {:>7} {:>8} {:>11} {:>11}",
            "configuration", "req/s", "cost", "loss", "tracer CPU", "lost events"
        );
        for r in &self.rows {
            println!(
                "{:<34} {:>10.0} {:>6.2}x {:>7.1}% {:>11} {:>11}",
                r.config,
                r.median_requests_per_s,
                r.ratio,
                r.loss_pct,
                r.tracer_cpu_pct.map_or_else(|| "-".into(), |v| format!("{v:.0}% core")),
                r.lost.map_or_else(|| "-".into(), |v| v.to_string())
            );
        }
        println!(
            "(cost: untraced req/s over the configuration's; loss: throughput lost; tracer CPU: % of one core during the run; lost events: most records the kernel dropped in one run)"
        );
        if let Some((loss, met)) = self.target() {
            println!(
                "target: the agent at its defaults loses at most {TARGET_LOSS_PCT}% of the throughput: {} ({loss:.1}%)",
                if met { "met" } else { "MISSED" }
            );
        }
        breakdown::print(&self.breakdown, self.requests);
    }

    pub(super) fn json(&self) -> String {
        let rows: Vec<String> = self
            .rows
            .iter()
            .map(|r| {
                format!(
                    "      {{\"config\": {}, \"median_requests_per_s\": {}, \"ratio\": {}, \"throughput_loss_pct\": {}, \"tracer_cpu_pct\": {}, \"lost\": {}, \"runs\": {}}}",
                    json_str(&r.config),
                    num(r.median_requests_per_s),
                    num(r.ratio),
                    num(r.loss_pct),
                    r.tracer_cpu_pct.map_or_else(|| "null".into(), num),
                    opt(r.lost),
                    r.runs
                )
            })
            .collect();
        let (loss, met) = self.target().unwrap_or((f64::NAN, false));
        let breakdown: Vec<String> = self.breakdown.iter().map(Breakdown::json).collect();
        format!(
            "{{\n    \"requests_per_run\": {}, \"concurrency\": {CONCURRENCY}, \"rounds\": {},\n    \"configs\": [\n{}\n    ],\n    \"target\": {{\"agent_defaults_max_loss_pct\": {}, \"agent_defaults_loss_pct\": {}, \"met\": {met}}},\n    \"breakdown\": [\n{}\n    ]\n  }}",
            self.requests,
            self.rounds,
            rows.join(",\n"),
            num(TARGET_LOSS_PCT),
            num(loss),
            breakdown.join(",\n")
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const AB: &str = "Server Software:        nginx/1.22.1\n\
        Document Length:        6 bytes\n\
        Complete requests:      100\n\
        Failed requests:        0\n\
        Requests per second:    7316.36 [#/sec] (mean)\n";

    #[test]
    fn reads_ab() {
        assert_eq!(parse_ab(AB, 100), Ok(7316.36));
        assert!(parse_ab(AB, 200).is_err());
        let failed = AB.replace("Failed requests:        0", "Failed requests:        3");
        assert!(parse_ab(&failed, 100).is_err());
        let not_found = format!("{AB}Non-2xx responses:      100\n");
        assert!(parse_ab(&not_found, 100).is_err());
        assert!(parse_ab("", 100).is_err());
    }
}
