//! The soak: `tracer agent` at its defaults (the whole host) for minutes under a fork storm, fd
//! churn and one slow leak. Its resident memory and CPU are sampled from /proc on a period; at
//! the end /metrics must name the leak. Targets: RSS at most 100 MiB and flat, CPU at most 2% of
//! one core. Figures never fail the run: a target missed, or the leak not named, is reported.

use std::{
    io::BufReader,
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use super::{
    Env, Options, agent::Agent, guard::Guarded, json_str, load::Load, num, procfs, procfs::Usage, scrape, wait_for_line,
};
use crate::Result;

const TARGET_RSS_MIB: f64 = 100.0;
/// Growth from the end of the first third to the end that still counts as flat (%).
const FLAT_GROWTH_PCT: f64 = 10.0;
const TARGET_CPU_PCT: f64 = 2.0;
/// The fork storm: this many short-lived processes per batch, one batch per period.
const FORK_BATCH: u64 = 100;
const FORK_PERIOD: Duration = Duration::from_secs(1);
/// The fd churn: this many create+close pairs per run, one run per period.
const CHURN_OPS: u64 = 2_000;
const CHURN_PERIOD: Duration = Duration::from_secs(1);
/// The slow leak: one socket per this many milliseconds.
const LEAK_INTERVAL_MS: u64 = 1_000;
const LEAKER_COMM: &str = "agent_leaker";

/// One reading of the agent.
struct Point {
    t_s: f64,
    rss_kib: u64,
    /// CPU since the previous reading, in percent of one core (None for the first).
    cpu_pct: Option<f64>,
}

pub(super) struct Soak {
    seconds: u64,
    interval_s: u64,
    points: Vec<Point>,
    processes: u64,
    /// Leak suspects /metrics shows for the leaker at the end.
    suspects: f64,
    lost: f64,
    tracked_processes: Option<f64>,
    peak_rss_kib: u64,
    /// RSS at the end minus RSS at the end of the first third.
    growth_kib: i64,
    growth_pct: f64,
    avg_cpu_pct: f64,
}

fn count_short_lived(out: &str) -> Option<u64> {
    let n: u64 = out.trim().strip_prefix("DONE ")?.parse().ok()?;
    Some(n + 1)
}

fn count_churn(out: &str) -> Option<u64> {
    out.trim().parse::<u64>().ok().map(|_| 1)
}

pub(super) fn run(env: &Env, o: &Options) -> Result<Soak> {
    let seconds = o.soak_seconds.unwrap_or(if o.quick { 20 } else { 600 });
    let every: u64 = if o.quick { 2 } else { 10 };
    let interval_s = every.min(seconds).max(1);
    eprintln!("bench: soak ({seconds} s, the agent sampled every {interval_s} s)");
    let ticks = procfs::clock_ticks();
    let mut agent = Agent::start(&env.tracer, &[])?;
    let pid = agent.pid();

    let mut leaker = Guarded::spawn(
        Command::new(env.fixture(LEAKER_COMM))
            .arg(LEAK_INTERVAL_MS.to_string())
            .stdin(Stdio::null())
            .stdout(Stdio::piped()),
        LEAKER_COMM,
    )?;
    let mut out = BufReader::new(leaker.stdout.take().ok_or("agent_leaker: no stdout")?);
    wait_for_line(&mut out, "READY", LEAKER_COMM)?;
    let mut load = Load::default();
    let short_lived = env.fixture("short_lived");
    load.repeat(
        "short_lived",
        FORK_PERIOD,
        move || {
            let mut c = Command::new(&short_lived);
            c.arg(FORK_BATCH.to_string());
            c
        },
        count_short_lived,
    );
    let churn = env.churn.clone();
    let mut runs = 0usize;
    load.repeat(
        "churn",
        CHURN_PERIOD,
        move || {
            let kind = ["open", "socketpair", "pipe2"][runs % 3];
            runs += 1;
            let mut c = Command::new(&churn);
            c.args([kind, &CHURN_OPS.to_string(), "1"]);
            c
        },
        count_churn,
    );

    let start = Instant::now();
    let first = procfs::usage(pid)?;
    let mut points = vec![Point {
        t_s: 0.0,
        rss_kib: first.rss_kib,
        cpu_pct: None,
    }];
    let (mut prev, mut prev_t) = (first, 0.0);
    let mut last: Usage = first;
    for k in 1.. {
        let due = Duration::from_secs(k * interval_s);
        if due > Duration::from_secs(seconds) {
            break;
        }
        std::thread::sleep(due.saturating_sub(start.elapsed()));
        agent.check_alive()?;
        load.check()?;
        let now = procfs::usage(pid)?;
        let t = start.elapsed().as_secs_f64();
        points.push(Point {
            t_s: t,
            rss_kib: now.rss_kib,
            cpu_pct: Some(procfs::cpu_percent(prev, now, t - prev_t, ticks)),
        });
        (prev, prev_t, last) = (now, t, now);
    }
    let elapsed = points.last().map_or(0.0, |p| p.t_s);
    load.stop()?;
    // Scraped while the leaker runs: suspects are judged among live processes.
    let metrics = agent.metrics()?;
    let suspects = scrape::sum(&metrics, "tracer_leak_suspects", &[("comm", LEAKER_COMM)]).unwrap_or(0.0);
    let lost = scrape::sum(&metrics, "tracer_kernel_lost_events_total", &[])
        .ok_or("no tracer_kernel_lost_events_total in the agent's /metrics")?;
    let tracked_processes = scrape::sum(&metrics, "tracer_tracked_processes", &[]);
    let peak = procfs::usage(pid).map_or(0, |u| u.peak_rss_kib);
    let _ = leaker.finish();
    agent.stop();

    let third = points
        .iter()
        .find(|p| p.t_s >= elapsed / 3.0)
        .map_or(first.rss_kib, |p| p.rss_kib);
    let end = points.last().map_or(first.rss_kib, |p| p.rss_kib);
    let growth_kib = end as i64 - third as i64;
    Ok(Soak {
        seconds,
        interval_s,
        peak_rss_kib: points.iter().map(|p| p.rss_kib).max().unwrap_or(0).max(peak),
        growth_kib,
        growth_pct: growth_kib as f64 * 100.0 / third as f64,
        avg_cpu_pct: procfs::cpu_percent(first, last, elapsed, ticks),
        points,
        // The leaker itself, and what the load forked.
        processes: load.processes() + 1,
        suspects,
        lost,
        tracked_processes,
    })
}

fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

impl Soak {
    fn rss_met(&self) -> bool {
        mib(self.peak_rss_kib) <= TARGET_RSS_MIB
    }

    fn flat(&self) -> bool {
        self.growth_pct <= FLAT_GROWTH_PCT
    }

    fn cpu_met(&self) -> bool {
        self.avg_cpu_pct <= TARGET_CPU_PCT
    }

    fn leak_found(&self) -> bool {
        self.suspects >= 1.0
    }

    pub(super) fn print(&self) {
        let verdict = |ok: bool| if ok { "met" } else { "MISSED" };
        println!(
            "\nSoak: tracer agent at its defaults (whole host) for {} s; load: {FORK_BATCH} short-lived processes every {FORK_PERIOD:?}, {CHURN_OPS} fd create+close pairs every {CHURN_PERIOD:?}, {LEAKER_COMM} leaking a socket every {LEAK_INTERVAL_MS} ms",
            self.seconds
        );
        println!("{:>8} {:>9} {:>14}", "t (s)", "RSS MiB", "CPU % of core");
        // At most ~20 rows (every reading is in the JSON), the last one always.
        let stride = self.points.len().div_ceil(20).max(1);
        for (i, p) in self.points.iter().enumerate() {
            if i % stride == 0 || i + 1 == self.points.len() {
                println!(
                    "{:>8.0} {:>9.1} {:>14}",
                    p.t_s,
                    mib(p.rss_kib),
                    p.cpu_pct.map_or_else(|| "-".into(), |c| format!("{c:.1}"))
                );
            }
        }
        println!(
            "processes forked: {}; records lost by the kernel: {}; processes tracked at the end: {}",
            self.processes,
            self.lost,
            self.tracked_processes.map_or_else(|| "-".into(), |v| v.to_string())
        );
        println!(
            "peak RSS {:.1} MiB (target <= {TARGET_RSS_MIB} MiB: {}); from the first third to the end {:+.1} MiB ({:+.1}%; flat, within {FLAT_GROWTH_PCT}%: {})",
            mib(self.peak_rss_kib),
            verdict(self.rss_met()),
            self.growth_kib as f64 / 1024.0,
            self.growth_pct,
            verdict(self.flat())
        );
        println!(
            "agent CPU {:.2}% of one core on average (target <= {TARGET_CPU_PCT}%: {})",
            self.avg_cpu_pct,
            verdict(self.cpu_met())
        );
        println!(
            "the leak ({LEAKER_COMM}) is a suspect at the end: {}",
            if self.leak_found() {
                format!("yes ({} suspect site(s))", self.suspects)
            } else {
                "no (MISSED)".into()
            }
        );
    }

    pub(super) fn json(&self) -> String {
        let points: Vec<String> = self
            .points
            .iter()
            .map(|p| {
                format!(
                    "      {{\"t_s\": {}, \"rss_kib\": {}, \"cpu_pct\": {}}}",
                    num(p.t_s),
                    p.rss_kib,
                    p.cpu_pct.map_or_else(|| "null".into(), num)
                )
            })
            .collect();
        format!(
            "{{\n    \"seconds\": {}, \"sample_interval_s\": {}, \"leaker\": {}, \"processes_forked\": {}, \"lost\": {}, \"tracked_processes_at_end\": {},\n    \"leak_suspects\": {}, \"leak_found\": {},\n    \"peak_rss_kib\": {}, \"rss_growth_kib\": {}, \"rss_growth_pct\": {}, \"avg_cpu_pct\": {},\n    \"targets\": {{\"max_rss_mib\": {}, \"rss_met\": {}, \"max_flat_growth_pct\": {}, \"flat\": {}, \"max_cpu_pct\": {}, \"cpu_met\": {}}},\n    \"samples\": [\n{}\n    ]\n  }}",
            self.seconds,
            self.interval_s,
            json_str(LEAKER_COMM),
            self.processes,
            num(self.lost),
            self.tracked_processes.map_or_else(|| "null".into(), num),
            num(self.suspects),
            self.leak_found(),
            self.peak_rss_kib,
            self.growth_kib,
            num(self.growth_pct),
            num(self.avg_cpu_pct),
            num(TARGET_RSS_MIB),
            self.rss_met(),
            num(FLAT_GROWTH_PCT),
            self.flat(),
            num(TARGET_CPU_PCT),
            self.cpu_met(),
            points.join(",\n")
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_forks() {
        assert_eq!(count_short_lived("DONE 100\n"), Some(101));
        assert_eq!(count_short_lived("oops"), None);
        assert_eq!(count_churn("123456\n"), Some(1));
        assert_eq!(count_churn(""), None);
    }
}
