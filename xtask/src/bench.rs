//! `cargo xtask bench`: tracer's cost measured side by side with what users would pick instead
//! (bpftrace, strace, valgrind), in one run, alternating configurations, reporting medians and
//! ratios (these machines are noisy: a single absolute time means little).
//!
//! Workloads: fd churn (open, socketpair, pipe2; 1 and 2 threads), bystander cost (an untraced
//! process while tracer watches another), ingest ceiling (and overload: losses counted, memory
//! bounded), memory per tracked fd, a real server's CPU per request (nginx under ab), a soak of
//! the production agent (memory and CPU over minutes of fork storm, churn and a slow leak),
//! what Python frames cost per allocation in a CPython loop, and how long `tracer run` of a
//! command that does nothing takes.

mod agent;
mod bystander;
mod churn;
mod guard;
mod ingest;
mod latency;
mod load;
mod memory;
mod nginx;
mod procfs;
mod python;
mod report;
mod scrape;
mod soak;
mod stats;
mod tools;
mod watch;
mod web;

use std::path::{Path, PathBuf};

use crate::Result;
use churn::Config;
use report::{json_str, num, opt};
use stats::{Stats, median, parse_stats};
use tools::{have, start_bpftrace, stop, wait_for_line};

/// What `--only` accepts.
const WORKLOADS: [&str; 8] = [
    "churn",
    "bystander",
    "ingest",
    "memory",
    "nginx",
    "python",
    "soak",
    "latency",
];

pub struct Options {
    pub quick: bool,
    /// Only this workload (one of `WORKLOADS`).
    pub only: Option<String>,
    pub runs: usize,
    pub out: PathBuf,
    /// Length of the soak (default: 600 s, 20 s in quick mode).
    pub soak_seconds: Option<u64>,
    /// Another tracer binary (built before a change) measured beside this one in the nginx
    /// workload: before and after in one run.
    pub baseline: Option<PathBuf>,
}

impl Options {
    pub fn parse(args: &[String], root: &Path) -> Result<Self> {
        let mut o = Options {
            quick: false,
            only: None,
            runs: 5,
            out: root.join("target/bench/bench.json"),
            soak_seconds: None,
            baseline: None,
        };
        let mut runs_given = false;
        let mut it = args.iter();
        while let Some(a) = it.next() {
            match a.as_str() {
                "--quick" => o.quick = true,
                "--runs" => {
                    o.runs = it
                        .next()
                        .and_then(|v| v.parse().ok())
                        .filter(|n| *n > 0)
                        .ok_or("--runs takes a number (at least 1)")?;
                    runs_given = true;
                }
                "--out" => o.out = it.next().map(PathBuf::from).ok_or("--out takes a file")?,
                "--only" => {
                    let w = it
                        .next()
                        .filter(|w| WORKLOADS.contains(&w.as_str()))
                        .ok_or_else(|| format!("--only takes one of {}", WORKLOADS.join(", ")))?;
                    o.only = Some(w.clone());
                }
                "--baseline" => {
                    let b = it.next().map(PathBuf::from).ok_or("--baseline takes a tracer binary")?;
                    if !b.is_file() {
                        return Err(format!("--baseline {}: no such file", b.display()));
                    }
                    o.baseline = Some(b);
                }
                "--soak-seconds" => {
                    o.soak_seconds = Some(
                        it.next()
                            .and_then(|v| v.parse().ok())
                            .filter(|s| *s > 0)
                            .ok_or("--soak-seconds takes a number of seconds (at least 1)")?,
                    )
                }
                other => {
                    return Err(format!(
                        "unknown bench option {other} (--quick, --runs N, --out FILE, --only WORKLOAD, --soak-seconds N, --baseline TRACER)"
                    ));
                }
            }
        }
        // Quick mode runs everything once, unless told how many times.
        if o.quick && !runs_given {
            o.runs = 1;
        }
        Ok(o)
    }
}

struct Env {
    tracer: PathBuf,
    churn: PathBuf,
    script: PathBuf,
}

impl Env {
    /// Another fixture, built beside churn.
    fn fixture(&self, name: &str) -> PathBuf {
        self.churn.with_file_name(name)
    }
}

pub fn run(env_tracer: PathBuf, churn: PathBuf, o: &Options) -> Result {
    let dir = o
        .out
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("."));
    std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let script = dir.join("fds.bt");
    std::fs::write(&script, churn::BPFTRACE_SCRIPT).map_err(|e| e.to_string())?;
    let env = Env {
        tracer: env_tracer,
        churn,
        script,
    };

    let mut configs = vec![
        Config::Untraced,
        Config::Tracer("dwarf"),
        Config::Tracer("fp"),
        Config::Tracer("none"),
    ];
    let mut skipped = Vec::new();
    for c in [Config::Bpftrace, Config::Strace, Config::Valgrind] {
        match c.tool() {
            Some(t) if have(t) => configs.push(c),
            Some(t) => skipped.push(t),
            None => {}
        }
    }
    if !skipped.is_empty() {
        eprintln!("bench: not installed, left out: {}", skipped.join(", "));
    }
    let wanted = |w: &str| o.only.as_deref().is_none_or(|only| only == w);
    // Missing tools fail now, not after the other workloads ran.
    if wanted("nginx") {
        web::check_installed()?;
    }
    let mut rows = Vec::new();
    if wanted("churn") {
        churn::churn_rows(&env, o, &configs, &mut rows)?;
    }
    if wanted("bystander") {
        bystander::rows(&env, o, &mut rows)?;
    }
    let ingest = if wanted("ingest") {
        ingest::ingest_rows(&env, o)?
    } else {
        Vec::new()
    };
    let memory = if wanted("memory") {
        Some(memory::run(&env, o)?)
    } else {
        None
    };
    let nginx = if wanted("nginx") {
        Some(web::run(&env, o)?)
    } else {
        None
    };
    let python = if wanted("python") {
        Some(python::run(&env, o)?)
    } else {
        None
    };
    let soak = if wanted("soak") {
        Some(soak::run(&env, o)?)
    } else {
        None
    };
    let latency = if wanted("latency") {
        Some(latency::run(&env.tracer, o)?)
    } else {
        None
    };

    let results = report::Results {
        rows,
        ingest,
        memory,
        nginx,
        python,
        soak,
        latency,
    };
    let machine = report::machine();
    results.print(&machine, o);
    std::fs::write(&o.out, results.json(&machine, o)).map_err(|e| format!("{}: {e}", o.out.display()))?;
    println!("\nbench: figures written to {}", o.out.display());
    Ok(())
}
