//! The nginx workload: what tracing costs a real server, paid as CPU per request. nginx (a
//! master, 2 workers) serves a 6-byte file to `ab -c 8` (one connection per request), untraced
//! and under each way of tracing it, configurations alternated round by round.
//!
//! What is counted: the CPU time (utime + stime) of nginx's master and workers, where tracer's
//! kernel programs run (inside their syscalls), plus the tracer process's own, from just before
//! ab starts to just after it ends, divided by the requests served. The tracer is ready (its
//! start-up over) before the first reading. ab's own CPU is not counted: it is the client.
//! Throughput (ab's requests per second) stays beside it: on a shared 2-core machine it mixes
//! the server's cost with the client's and the neighbours'.

mod breakdown;
mod setup;
mod table;

use std::process::Command;

use super::{Env, Options, guard::Guarded, have, nginx, nginx::Nginx, procfs, start_bpftrace};
use crate::Result;
use breakdown::{BREAKDOWN, breakdown_run};
use setup::{SETUPS, Setup, Tracer};
pub(super) use table::Report;
use table::{Row, us_per_request};

/// ab's concurrency.
const CONCURRENCY: u32 = 8;
/// Rounds by default (`--runs` raises it).
const ROUNDS: usize = 7;

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
    requests: u64,
    requests_per_s: f64,
    /// CPU of nginx's master and workers during the run, in ns.
    nginx_ns: u64,
    /// The tracer's, in ns.
    tracer_ns: Option<u64>,
    /// False when some process's time came from clock ticks (a thread exited meanwhile).
    precise: bool,
    /// The tracer's VmRSS at the end, for an agent or watch.
    rss_kib: Option<u64>,
    lost: Option<u64>,
}

impl Sample {
    /// nginx's and the tracer's CPU per request, in µs.
    fn cpu_us_per_request(&self) -> f64 {
        us_per_request(self.nginx_ns + self.tracer_ns.unwrap_or(0), self.requests)
    }
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

/// CPU of `pids` between two readings (ns), and whether every figure was the precise one.
fn cpu_between(before: &[procfs::CpuTime], after: &[procfs::CpuTime], ticks: u64) -> (u64, bool) {
    before
        .iter()
        .zip(after)
        .map(|(b, a)| a.ns_since(b, ticks))
        .fold((0, true), |(ns, precise), (n, p)| (ns + n, precise && p))
}

fn measure(env: &Env, o: &Options, setup: Setup, nginx: &Nginx, requests: u64, ticks: u64) -> Result<Sample> {
    let tracer = Tracer::start(env, o, setup, nginx)?;
    let pids = nginx.pids();
    let nginx_cpu = || pids.iter().map(|p| procfs::cpu_time(*p)).collect::<Result<Vec<_>>>();
    let tracer_cpu = || tracer.pid().map(procfs::cpu_time).transpose();
    let nginx_before = nginx_cpu()?;
    // Last, right before ab: nothing of the tracer's start-up is counted.
    let tracer_before = tracer_cpu()?;
    let requests_per_s = ab(&nginx.url(), requests)?;
    let nginx_after = nginx_cpu()?;
    let tracer_after = tracer_cpu()?;
    let (nginx_ns, mut precise) = cpu_between(&nginx_before, &nginx_after, ticks);
    let tracer_ns = match (tracer_before, tracer_after) {
        (Some(b), Some(a)) => {
            let (ns, p) = a.ns_since(&b, ticks);
            precise &= p;
            Some(ns)
        }
        _ => None,
    };
    let rss_kib = tracer.rss_kib();
    let lost = tracer.finish()?;
    Ok(Sample {
        requests,
        requests_per_s,
        nginx_ns,
        tracer_ns,
        precise,
        rss_kib,
        lost,
    })
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
    // Quick mode: every configuration once (or `--runs` times), few requests.
    let (requests, rounds) = if o.quick {
        (2_000, o.runs.max(1))
    } else {
        (30_000, o.runs.max(ROUNDS))
    };
    eprintln!("bench: nginx ({rounds} round(s) of {requests} requests per configuration)");
    let ticks = procfs::clock_ticks();
    let nginx = Nginx::start()?;
    if !o.quick {
        // Warm-up: caches, the TCP stack, nginx's first connections.
        ab(&nginx.url(), 5_000)?;
    }
    let setups: Vec<Setup> = SETUPS.iter().copied().filter(|s| s.available(o)).collect();
    let mut samples: Vec<Vec<Sample>> = vec![Vec::new(); setups.len()];
    // Every configuration in every round, so drift hits them all alike; each round starts one
    // further along, so none always follows the same neighbour.
    for round in 0..rounds {
        for k in 0..setups.len() {
            let i = (round + k) % setups.len();
            samples[i].push(measure(env, o, setups[i], &nginx, requests, ticks)?);
        }
    }
    let rows = setups
        .iter()
        .zip(&samples)
        .map(|(setup, s)| Row::new(*setup, s, &samples[0]))
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
