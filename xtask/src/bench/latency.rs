//! The latency workload: how long a user waits for `tracer run -- /bin/true` (start to exit,
//! wall clock: loading and attaching the programs, the command, the report, the detach),
//! beside `valgrind --track-fds=yes /bin/true` and, with `--baseline`, the tracer before a
//! change. Alternating, medians of at least 7 runs.
//!
//! Each measured tracer run starts a second after the previous one: a run leaves the last of
//! its detach to a kernel worker (tracer/src/probes/detach.rs), which holds the kernel's
//! `event_mutex` for about 60 ms per tracepoint over the next second; a run started meanwhile
//! waits for it in its own attach. Runs back to back (the way a test suite runs them) are
//! measured too, and reported beside.

use std::{
    path::Path,
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use super::{Options, have, json_str, median, num};
use crate::Result;

/// The target for `tracer run -- /bin/true` (seconds).
pub(super) const TARGET_S: f64 = 0.25;
/// At least this many runs of each configuration, quick mode included (it takes seconds).
const MIN_RUNS: usize = 7;
/// Between measured runs: the previous run's detach finishes in the kernel meanwhile.
const PAUSE: Duration = Duration::from_secs(1);

/// What a row runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Tracer,
    BackToBack,
    Baseline,
    Valgrind,
}

/// One configuration's wall times (seconds).
pub(super) struct Row {
    kind: Kind,
    pub(super) config: String,
    pub(super) seconds: Vec<f64>,
}

impl Row {
    fn median(&self) -> f64 {
        median(&mut self.seconds.clone())
    }

    fn spread(&self) -> (f64, f64) {
        let min = self.seconds.iter().copied().fold(f64::INFINITY, f64::min);
        let max = self.seconds.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        (min, max)
    }
}

pub(super) struct Report {
    pub(super) rows: Vec<Row>,
}

const TRACER: &str = "tracer run";
const BACK_TO_BACK: &str = "tracer run, back to back";

pub(super) fn run(tracer: &Path, o: &Options) -> Result<Report> {
    eprintln!("bench: latency");
    let runs = o.runs.max(MIN_RUNS);
    let mut rows = vec![Row {
        kind: Kind::Tracer,
        config: TRACER.into(),
        seconds: Vec::new(),
    }];
    if o.baseline.is_some() {
        rows.push(Row {
            kind: Kind::Baseline,
            config: format!("{TRACER}, --baseline"),
            seconds: Vec::new(),
        });
    }
    if have("valgrind") {
        rows.push(Row {
            kind: Kind::Valgrind,
            config: "valgrind --track-fds=yes".into(),
            seconds: Vec::new(),
        });
    } else {
        eprintln!("bench: valgrind not installed, left out of the latency workload");
    }
    // One unmeasured run of each first (page cache, the BTF file).
    for round in 0..=runs {
        for row in &mut rows {
            let s = match (row.kind, &o.baseline) {
                (Kind::Valgrind, _) => time(Command::new("valgrind").args(["--track-fds=yes", "-q", "/bin/true"]))?,
                (kind, baseline) => {
                    std::thread::sleep(PAUSE);
                    let bin = match baseline {
                        Some(b) if kind == Kind::Baseline => b.as_path(),
                        _ => tracer,
                    };
                    time(Command::new(bin).args(["run", "-o", "/dev/null", "--", "/bin/true"]))?
                }
            };
            if round > 0 {
                row.seconds.push(s);
            }
        }
    }
    std::thread::sleep(PAUSE);
    let mut back = Row {
        kind: Kind::BackToBack,
        config: BACK_TO_BACK.into(),
        seconds: Vec::new(),
    };
    for _ in 0..runs {
        back.seconds.push(time(Command::new(tracer).args([
            "run",
            "-o",
            "/dev/null",
            "--",
            "/bin/true",
        ]))?);
    }
    rows.insert(1, back);
    Ok(Report { rows })
}

/// Wall time of `cmd`, which must succeed.
fn time(cmd: &mut Command) -> Result<f64> {
    let start = Instant::now();
    let status = cmd
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .map_err(|e| format!("{cmd:?}: {e}"))?;
    let s = start.elapsed().as_secs_f64();
    if !status.success() {
        return Err(format!("{cmd:?} failed: {status}"));
    }
    Ok(s)
}

impl Report {
    /// `tracer run`'s median against the target: (median, met).
    fn target(&self) -> Option<(f64, bool)> {
        let r = self.rows.iter().find(|r| r.kind == Kind::Tracer)?;
        let m = r.median();
        Some((m, m <= TARGET_S))
    }

    pub(super) fn print(&self) {
        let runs = self.rows.first().map_or(0, |r| r.seconds.len());
        println!(
            "\nLatency (`CMD /bin/true` start to exit, wall clock; medians of {runs} runs, tracer runs 1 s apart but the back-to-back row):"
        );
        println!("{:<34} {:>9} {:>17}", "configuration", "median", "min-max");
        for r in &self.rows {
            let (min, max) = r.spread();
            println!("{:<34} {:>7.3} s {:>7.3}-{:.3} s", r.config, r.median(), min, max);
        }
        if let Some((m, met)) = self.target() {
            println!(
                "target: `tracer run -- /bin/true` takes at most {TARGET_S} s: {} ({m:.3} s)",
                if met { "met" } else { "MISSED" }
            );
        }
    }

    pub(super) fn json(&self) -> String {
        let rows: Vec<String> = self
            .rows
            .iter()
            .map(|r| {
                let (min, max) = r.spread();
                let all: Vec<String> = r.seconds.iter().map(|s| num(*s)).collect();
                format!(
                    "      {{\"config\": {}, \"median_s\": {}, \"min_s\": {}, \"max_s\": {}, \"runs_s\": [{}]}}",
                    json_str(&r.config),
                    num(r.median()),
                    num(min),
                    num(max),
                    all.join(", ")
                )
            })
            .collect();
        let (m, met) = self.target().unwrap_or((f64::NAN, false));
        format!(
            "{{\n    \"command\": \"/bin/true\",\n    \"configs\": [\n{}\n    ],\n    \"target\": {{\"tracer_run_max_s\": {}, \"tracer_run_s\": {}, \"met\": {met}}}\n  }}",
            rows.join(",\n"),
            num(TARGET_S),
            num(m)
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report(tracer: &[f64]) -> Report {
        Report {
            rows: vec![
                Row {
                    kind: Kind::Tracer,
                    config: TRACER.into(),
                    seconds: tracer.to_vec(),
                },
                Row {
                    kind: Kind::BackToBack,
                    config: BACK_TO_BACK.into(),
                    seconds: vec![9.0; 3],
                },
            ],
        }
    }

    #[test]
    fn the_target_is_judged_on_the_median_of_the_spaced_runs() {
        let r = report(&[0.2, 0.3, 0.24]);
        assert_eq!(r.target(), Some((0.24, true)));
        assert_eq!(r.rows[0].spread(), (0.2, 0.3));
        assert!(r.json().contains("\"met\": true"), "{}", r.json());
        let r = report(&[0.2, 0.3, 0.26]);
        assert_eq!(r.target(), Some((0.26, false)));
        assert!(r.json().contains("\"met\": false"), "{}", r.json());
    }
}
