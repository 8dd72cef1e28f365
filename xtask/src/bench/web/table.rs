//! The nginx workload's figures: CPU per request by configuration, its ratio to untraced, the
//! targets, the table printed and the JSON written.

use super::{
    CONCURRENCY, Sample,
    breakdown::{self, Breakdown},
    setup::Setup,
};
use crate::bench::{json_str, num, opt, stats::Spread};

/// The issue's targets: CPU per request of a configuration over untraced, at most this much.
const TARGETS: [(Setup, f64, &str); 2] = [
    (Setup::Agent, 1.02, "the agent at its defaults, nothing escalated"),
    (
        Setup::AgentSelected,
        1.10,
        "nginx escalated: selected, traced with stacks",
    ),
];

/// CPU time per request, in microseconds.
pub(super) fn us_per_request(ns: u64, requests: u64) -> f64 {
    if requests == 0 {
        return f64::NAN;
    }
    ns as f64 / requests as f64 / 1e3
}

/// Each round's figure over the reference's figure in the same round (rounds are paired, so
/// drift between rounds cancels).
fn paired_ratios(runs: &[f64], reference: &[f64]) -> Vec<f64> {
    runs.iter().zip(reference).map(|(r, base)| r / base).collect()
}

pub(super) struct Row {
    config: &'static str,
    runs: usize,
    /// nginx's processes and the tracer, µs of CPU per request.
    cpu_us: Spread,
    /// The two parts (medians).
    nginx_us: f64,
    tracer_us: Option<f64>,
    /// CPU per request over untraced's, round by round.
    cpu_ratio: Spread,
    requests_per_s: Spread,
    /// Untraced req/s over this configuration's (medians): the throughput cost.
    throughput_ratio: f64,
    /// The tracer's VmRSS at the end of a run, the largest of the runs.
    rss_kib: Option<u64>,
    /// Records the kernel dropped, the most in one run.
    lost: Option<u64>,
    /// Runs whose CPU came from clock ticks (a thread exited meanwhile), not the precise sum.
    coarse_runs: usize,
}

impl Row {
    /// One configuration's row; `reference` is untraced's runs, round for round.
    pub(super) fn new(setup: Setup, runs: &[Sample], reference: &[Sample]) -> Row {
        let cpu = |s: &[Sample]| s.iter().map(Sample::cpu_us_per_request).collect::<Vec<_>>();
        let rate = |s: &[Sample]| s.iter().map(|x| x.requests_per_s).collect::<Vec<_>>();
        let tracer: Vec<f64> = runs
            .iter()
            .filter_map(|s| s.tracer_ns.map(|ns| us_per_request(ns, s.requests)))
            .collect();
        let nginx: Vec<f64> = runs.iter().map(|s| us_per_request(s.nginx_ns, s.requests)).collect();
        let requests_per_s = Spread::of(&rate(runs));
        Row {
            config: setup.name(),
            runs: runs.len(),
            cpu_us: Spread::of(&cpu(runs)),
            nginx_us: Spread::of(&nginx).median,
            tracer_us: (!tracer.is_empty()).then(|| Spread::of(&tracer).median),
            cpu_ratio: Spread::of(&paired_ratios(&cpu(runs), &cpu(reference))),
            throughput_ratio: Spread::of(&rate(reference)).median / requests_per_s.median,
            requests_per_s,
            rss_kib: runs.iter().filter_map(|s| s.rss_kib).max(),
            lost: runs.iter().filter_map(|s| s.lost).max(),
            coarse_runs: runs.iter().filter(|s| !s.precise).count(),
        }
    }
}

/// A target against its configuration's median ratio.
struct Target {
    what: &'static str,
    config: &'static str,
    max_ratio: f64,
    ratio: f64,
}

impl Target {
    fn met(&self) -> bool {
        self.ratio <= self.max_ratio
    }

    /// How far over (positive: missed) or under the target, as a ratio.
    fn by(&self) -> f64 {
        self.ratio - self.max_ratio
    }
}

pub(in crate::bench) struct Report {
    pub(super) requests: u64,
    pub(super) rounds: usize,
    pub(super) rows: Vec<Row>,
    pub(super) breakdown: Vec<Breakdown>,
}

impl Report {
    fn targets(&self) -> Vec<Target> {
        TARGETS
            .iter()
            .filter_map(|(setup, max_ratio, what)| {
                let row = self.rows.iter().find(|r| r.config == setup.name())?;
                Some(Target {
                    what,
                    config: row.config,
                    max_ratio: *max_ratio,
                    ratio: row.cpu_ratio.median,
                })
            })
            .collect()
    }

    pub(in crate::bench) fn print(&self) {
        println!(
            "\nnginx (2 workers, 6-byte file; ab -c {CONCURRENCY}, {} requests per run; {} alternating round(s); medians, min-max):",
            self.requests, self.rounds
        );
        println!(
            "{:<31} {:>8} {:>13} {:>6} {:>11} {:>7} {:>7} | {:>7} {:>5} | {:>7} {:>5}",
            "configuration",
            "CPU µs/r",
            "min-max",
            "ratio",
            "min-max",
            "nginx",
            "tracer",
            "req/s",
            "tput",
            "RSS MiB",
            "lost"
        );
        for r in &self.rows {
            println!(
                "{:<31} {:>8.2} {:>13} {:>5.3}x {:>11} {:>7.2} {:>7} | {:>7.0} {:>4.2}x | {:>7} {:>5}",
                r.config,
                r.cpu_us.median,
                format!("{:.2}-{:.2}", r.cpu_us.min, r.cpu_us.max),
                r.cpu_ratio.median,
                format!("{:.3}-{:.3}", r.cpu_ratio.min, r.cpu_ratio.max),
                r.nginx_us,
                r.tracer_us.map_or_else(|| "-".into(), |v| format!("{v:.2}")),
                r.requests_per_s.median,
                r.throughput_ratio,
                r.rss_kib
                    .map_or_else(|| "-".into(), |k| format!("{:.1}", k as f64 / 1024.0)),
                r.lost.map_or_else(|| "-".into(), |v| v.to_string())
            );
        }
        println!(
            "(CPU µs/r: utime+stime of nginx's master and workers plus the tracer's, per request served; ratio: that over untraced's in the same round; nginx, tracer: the two parts; tput: untraced req/s over the configuration's; RSS: the tracer's VmRSS at the end of a run, largest; lost: most records the kernel dropped in one run)"
        );
        let coarse: usize = self.rows.iter().map(|r| r.coarse_runs).sum();
        if coarse > 0 {
            println!("({coarse} run(s) read from clock ticks: a thread exited during the run)");
        }
        for t in self.targets() {
            let verdict = if t.met() {
                format!("met, {:.3}x under", -t.by())
            } else {
                format!("MISSED by {:.3}x", t.by())
            };
            println!(
                "target ({}): at most {:.2}x CPU per request: {verdict} ({:.3}x)",
                t.what, t.max_ratio, t.ratio
            );
        }
        breakdown::print(&self.breakdown, self.requests);
    }

    pub(in crate::bench) fn json(&self) -> String {
        let spread = |s: &Spread| {
            format!(
                "{{\"median\": {}, \"min\": {}, \"max\": {}, \"q1\": {}, \"q3\": {}}}",
                num(s.median),
                num(s.min),
                num(s.max),
                num(s.q1),
                num(s.q3)
            )
        };
        let rows: Vec<String> = self
            .rows
            .iter()
            .map(|r| {
                format!(
                    "      {{\"config\": {}, \"runs\": {}, \"cpu_us_per_request\": {}, \"nginx_us_per_request\": {}, \"tracer_us_per_request\": {}, \"cpu_ratio\": {}, \"requests_per_s\": {}, \"throughput_ratio\": {}, \"tracer_rss_kib\": {}, \"lost\": {}, \"coarse_runs\": {}}}",
                    json_str(r.config),
                    r.runs,
                    spread(&r.cpu_us),
                    num(r.nginx_us),
                    r.tracer_us.map_or_else(|| "null".into(), num),
                    spread(&r.cpu_ratio),
                    spread(&r.requests_per_s),
                    num(r.throughput_ratio),
                    opt(r.rss_kib),
                    opt(r.lost),
                    r.coarse_runs
                )
            })
            .collect();
        let targets: Vec<String> = self
            .targets()
            .iter()
            .map(|t| {
                format!(
                    "      {{\"target\": {}, \"config\": {}, \"max_cpu_ratio\": {}, \"cpu_ratio\": {}, \"met\": {}, \"by\": {}}}",
                    json_str(t.what),
                    json_str(t.config),
                    num(t.max_ratio),
                    num(t.ratio),
                    t.met(),
                    num(t.by())
                )
            })
            .collect();
        let breakdown: Vec<String> = self.breakdown.iter().map(Breakdown::json).collect();
        format!(
            "{{\n    \"requests_per_run\": {}, \"concurrency\": {CONCURRENCY}, \"rounds\": {},\n    \"configs\": [\n{}\n    ],\n    \"targets\": [\n{}\n    ],\n    \"breakdown\": [\n{}\n    ]\n  }}",
            self.requests,
            self.rounds,
            rows.join(",\n"),
            targets.join(",\n"),
            breakdown.join(",\n")
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(requests: u64, nginx_ns: u64, tracer_ns: Option<u64>, requests_per_s: f64) -> Sample {
        Sample {
            requests,
            requests_per_s,
            nginx_ns,
            tracer_ns,
            precise: true,
            rss_kib: tracer_ns.map(|_| 2048),
            lost: tracer_ns.map(|_| 0),
        }
    }

    #[test]
    fn cpu_per_request() {
        assert_eq!(us_per_request(40_000_000, 2_000), 20.0);
        assert!(us_per_request(1, 0).is_nan());
        // The tracer's time is added to nginx's.
        assert_eq!(
            sample(1_000, 20_000_000, Some(1_000_000), 1.0).cpu_us_per_request(),
            21.0
        );
        assert_eq!(sample(1_000, 20_000_000, None, 1.0).cpu_us_per_request(), 20.0);
    }

    #[test]
    fn ratios_are_paired_by_round() {
        assert_eq!(paired_ratios(&[22.0, 33.0], &[20.0, 30.0]), vec![1.1, 1.1]);
        // Round 2 of the reference is missing: no ratio for it.
        assert_eq!(paired_ratios(&[22.0, 33.0], &[20.0]), vec![1.1]);
    }

    #[test]
    fn a_row_and_its_targets() {
        // Untraced 20 µs then 22 µs per request; the agent 1.01x and 1.02x of them, round by round.
        let base = [
            sample(1_000, 20_000_000, None, 100.0),
            sample(1_000, 22_000_000, None, 90.0),
        ];
        let agent = [
            sample(1_000, 20_000_000, Some(200_000), 95.0),
            sample(1_000, 22_000_000, Some(440_000), 85.0),
        ];
        let row = Row::new(Setup::Agent, &agent, &base);
        assert_eq!(row.runs, 2);
        assert!((row.cpu_us.median - 21.32).abs() < 1e-9, "{:?}", row.cpu_us);
        assert!((row.cpu_ratio.median - 1.015).abs() < 1e-9, "{:?}", row.cpu_ratio);
        assert!((row.cpu_ratio.min - 1.01).abs() < 1e-9 && (row.cpu_ratio.max - 1.02).abs() < 1e-9);
        assert!((row.nginx_us - 21.0).abs() < 1e-9);
        assert!((row.tracer_us.unwrap_or(f64::NAN) - 0.32).abs() < 1e-9);
        assert!((row.throughput_ratio - 95.0 / 90.0).abs() < 1e-9);
        assert_eq!((row.rss_kib, row.lost, row.coarse_runs), (Some(2048), Some(0), 0));

        let untraced = Row::new(Setup::Untraced, &base, &base);
        assert_eq!(untraced.cpu_ratio.median, 1.0);
        let selected = Row::new(Setup::AgentSelected, &agent, &base);
        let report = Report {
            requests: 1_000,
            rounds: 2,
            rows: vec![untraced, row, selected],
            breakdown: Vec::new(),
        };
        let t = report.targets();
        assert_eq!(t.len(), 2);
        // 1.015 against 1.02: met, 0.005 under; against 1.10: met, 0.085 under.
        assert!(t[0].met() && (t[0].by() + 0.005).abs() < 1e-9, "{}", t[0].by());
        assert!(t[1].met() && (t[1].by() + 0.085).abs() < 1e-9);
        let json = report.json();
        assert!(
            json.contains("\"max_cpu_ratio\": 1.100, \"cpu_ratio\": 1.015, \"met\": true"),
            "{json}"
        );
    }

    #[test]
    fn a_missed_target_says_by_how_much() {
        let t = Target {
            what: "x",
            config: "y",
            max_ratio: 1.02,
            ratio: 1.09,
        };
        assert!(!t.met());
        assert!((t.by() - 0.07).abs() < 1e-9);
    }
}
