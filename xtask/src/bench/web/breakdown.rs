//! Where the nginx workload's cost goes: one run per agent configuration with `--bpf-stats`,
//! the kernel's program times and the agent's stage times read from its `/metrics`.

use super::ab;
use crate::{
    Result,
    bench::{Env, agent::Agent, json_str, nginx::Nginx, num, scrape},
};

/// Agent configurations whose cost is broken down (one extra run each, with `--bpf-stats`).
/// nginx selected (`--comm nginx`): what an escalated process costs, by stack mode (an agent at
/// its defaults traces nothing on a healthy nginx: nothing to break down).
pub(super) const BREAKDOWN: [(&str, &[&str]); 4] = [
    ("nginx traced (dwarf, budget)", &["--comm", "nginx"]),
    ("nginx traced, every stack", &["--comm", "nginx", "--stack-budget", "0"]),
    ("nginx traced, --stack fp", &["--comm", "nginx", "--stack", "fp"]),
    ("nginx traced, --stack none", &["--comm", "nginx", "--stack", "none"]),
];
/// Where one configuration's cost goes, from one run with `--bpf-stats` (the kernel times every
/// program run: two clock reads each, so these runs are not among the throughput rounds).
pub(super) struct Breakdown {
    config: &'static str,
    requests: u64,
    records: f64,
    /// Kernel programs: (name, runs, seconds) during the run.
    programs: Vec<(String, f64, f64)>,
    /// Agent seconds by stage during the run.
    stages: Vec<(String, f64)>,
    agent_cpu_s: f64,
    lost: f64,
}

impl Breakdown {
    fn kernel_ns_per_request(&self) -> f64 {
        self.programs.iter().map(|p| p.2).sum::<f64>() * 1e9 / self.requests as f64
    }

    fn ns_per_run(&self, program: &str) -> Option<f64> {
        // `sys_exit_btf` or `sys_exit`, whichever the kernel took.
        let (_, runs, secs) = self.programs.iter().find(|p| p.0.starts_with(program))?;
        (*runs > 0.0).then(|| secs * 1e9 / runs)
    }

    fn stage_ns_per_record(&self, stage: &str) -> Option<f64> {
        let (_, secs) = self.stages.iter().find(|s| s.0 == stage)?;
        (self.records > 0.0).then(|| secs * 1e9 / self.records)
    }
}

/// Counter increases between two scrapes, by label value.
fn delta(before: &str, after: &str, name: &str, label: &str) -> Vec<(String, f64)> {
    let old = scrape::by_label(before, name, label);
    scrape::by_label(after, name, label)
        .into_iter()
        .map(|(k, v)| {
            let was = old.iter().find(|(ok, _)| *ok == k).map_or(0.0, |o| o.1);
            (k, v - was)
        })
        .collect()
}

pub(super) fn breakdown_run(
    env: &Env,
    nginx: &Nginx,
    config: &'static str,
    args: &[&str],
    requests: u64,
) -> Result<Breakdown> {
    let mut args = args.to_vec();
    args.push("--bpf-stats");
    let agent = Agent::start(&env.tracer, &args)?;
    let before = agent.metrics()?;
    ab(&nginx.url(), requests)?;
    // The records of the last requests reach the agent within its tick.
    std::thread::sleep(std::time::Duration::from_millis(1200));
    let after = agent.metrics()?;
    agent.stop();
    let counter =
        |name: &str| scrape::sum(&after, name, &[]).unwrap_or(0.0) - scrape::sum(&before, name, &[]).unwrap_or(0.0);
    let runs = delta(&before, &after, "tracer_bpf_program_runs_total", "program");
    let secs = delta(&before, &after, "tracer_bpf_program_run_seconds_total", "program");
    if runs.is_empty() {
        return Err(format!(
            "{config}: no tracer_bpf_program_runs_total in /metrics: is {} older than --bpf-stats?",
            env.tracer.display()
        ));
    }
    let programs = runs
        .into_iter()
        .map(|(name, n)| {
            let s = secs.iter().find(|(k, _)| *k == name).map_or(0.0, |x| x.1);
            (name, n, s)
        })
        .filter(|p| p.1 > 0.0)
        .collect();
    Ok(Breakdown {
        config,
        requests,
        records: counter("tracer_records_total"),
        programs,
        stages: delta(&before, &after, "tracer_agent_stage_seconds_total", "stage"),
        agent_cpu_s: counter("tracer_agent_cpu_seconds_total"),
        lost: counter("tracer_kernel_lost_events_total"),
    })
}

/// The table printed under the nginx workload's.
pub(super) fn print(breakdown: &[Breakdown], requests: u64) {
    if breakdown.is_empty() {
        return;
    }
    println!(
        "\nWhere the cost goes (one run of {} requests per configuration, --bpf-stats):",
        requests
    );
    println!(
        "{:<32} {:>9} {:>9} {:>8} {:>7} | {:>6} {:>6} {:>6} {:>7} {:>8} | {:>10} {:>5}",
        "configuration",
        "kern ns/r",
        "exit ns",
        "rec/req",
        "exit/r",
        "decode",
        "state",
        "unwind",
        "modules",
        "describe",
        "agent µs/r",
        "lost"
    );
    let f = |v: Option<f64>| v.map_or_else(|| "-".into(), |v| format!("{v:.0}"));
    for b in breakdown {
        let exit_runs = b
            .programs
            .iter()
            .find(|p| p.0.starts_with("sys_exit"))
            .map_or(0.0, |p| p.1);
        println!(
            "{:<32} {:>9.0} {:>9} {:>8.2} {:>7.1} | {:>6} {:>6} {:>6} {:>7} {:>8} | {:>10.1} {:>5}",
            b.config,
            b.kernel_ns_per_request(),
            f(b.ns_per_run("sys_exit")),
            b.records / b.requests as f64,
            exit_runs / b.requests as f64,
            f(b.stage_ns_per_record("decode")),
            f(b.stage_ns_per_record("state")),
            f(b.stage_ns_per_record("unwind")),
            f(b.stage_ns_per_record("modules")),
            f(b.stage_ns_per_record("describe")),
            b.agent_cpu_s * 1e6 / b.requests as f64,
            b.lost
        );
    }
    println!(
        "(kern ns/r: all of tracer's programs, ns per request; exit ns: sys_exit per run, every syscall on the host; rec/req: records per request; exit/r: sys_exit runs per request; decode to describe: agent ns per record by stage, one record in 8 timed; agent µs/r: the agent's CPU per request)"
    );
}

impl Breakdown {
    /// One configuration's entry in the nginx report's `breakdown` array.
    pub(super) fn json(&self) -> String {
        let programs: Vec<String> = self
            .programs
            .iter()
            .map(|(n, runs, secs)| {
                format!(
                    "{{\"program\": {}, \"runs\": {}, \"seconds\": {}}}",
                    json_str(n),
                    num(*runs),
                    num(*secs)
                )
            })
            .collect();
        let stages: Vec<String> = self
            .stages
            .iter()
            .map(|(n, secs)| format!("{}: {}", json_str(n), num(*secs)))
            .collect();
        format!(
            "      {{\"config\": {}, \"requests\": {}, \"records\": {}, \"kernel_ns_per_request\": {}, \"agent_cpu_seconds\": {}, \"lost\": {}, \"programs\": [{}], \"agent_stage_seconds\": {{{}}}}}",
            json_str(self.config),
            self.requests,
            num(self.records),
            num(self.kernel_ns_per_request()),
            num(self.agent_cpu_s),
            num(self.lost),
            programs.join(", "),
            stages.join(", ")
        )
    }
}
