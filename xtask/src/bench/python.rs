//! The price of Python frames: a CPython 3.11 loop of `open()` + `close()` at a given Python call
//! depth, untraced and under `tracer run --stack dwarf` with `--python-frames off` and `on`,
//! alternating round by round. Besides the loop's own time per pair, the kernel's time in
//! tracer's programs per pair (BPF run-time statistics: every program's runs times its mean)
//! shows what walking the interpreter's frames adds to each captured allocation.

use std::process::Command;

use super::{Env, Options, json_str, median, num};
use crate::Result;

/// Debian's CPython (`cargo xtask setup` installs it).
const PYTHON: &str = "/usr/bin/python3.11";

/// The loop: `depth` Python calls, then `open()` and `close()`; prints ns per pair.
const SCRIPT: &str = r#"import sys, time
def pair(path):
    f = open(path)
    f.close()
def deep(n, path):
    if n == 0:
        return pair(path)
    return deep(n - 1, path)
n, depth = int(sys.argv[1]), int(sys.argv[2])
for _ in range(1000):
    deep(depth, "/dev/null")
t = time.perf_counter_ns()
for _ in range(n):
    deep(depth, "/dev/null")
print("ns_per_pair=%.1f" % ((time.perf_counter_ns() - t) / n))
"#;

#[derive(Clone, Copy, PartialEq)]
enum Setup {
    Untraced,
    FramesOff,
    FramesOn,
}

impl Setup {
    fn name(self) -> &'static str {
        match self {
            Setup::Untraced => "untraced",
            Setup::FramesOff => "tracer run --python-frames off",
            Setup::FramesOn => "tracer run --python-frames on",
        }
    }
}

struct Line {
    depth: u32,
    setup: Setup,
    ns_per_pair: f64,
    ratio: f64,
    /// Kernel time in tracer's programs per pair (None untraced).
    kernel_ns_per_pair: Option<f64>,
    runs: usize,
}

pub(super) struct Report {
    pairs: u64,
    lines: Vec<Line>,
}

/// One run: the loop's ns per pair, and tracer's programs' kernel ns per pair.
fn once(env: &Env, script: &str, setup: Setup, n: u64, depth: u32) -> Result<(f64, Option<f64>)> {
    let (n_s, depth_s) = (n.to_string(), depth.to_string());
    let mut cmd = match setup {
        Setup::Untraced => Command::new(PYTHON),
        Setup::FramesOff | Setup::FramesOn => {
            let mut c = Command::new(&env.tracer);
            let frames = if setup == Setup::FramesOn { "on" } else { "off" };
            c.args([
                "run",
                "--stack",
                "dwarf",
                "--bpf-stats",
                "--stats",
                "--python-frames",
                frames,
            ])
            .args(["-o", "/dev/null", "--", PYTHON]);
            c
        }
    };
    let out = cmd
        .args([script, n_s.as_str(), depth_s.as_str()])
        .output()
        .map_err(|e| format!("cannot run {PYTHON}: {e}"))?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    let ns = stdout
        .lines()
        .find_map(|l| l.strip_prefix("ns_per_pair="))
        .and_then(|v| v.trim().parse::<f64>().ok())
        .ok_or_else(|| format!("python bench printed no figure: {stdout}\n{stderr}"))?;
    let kernel = kernel_ns(&stderr).map(|total| total / n as f64);
    Ok((ns, kernel))
}

/// Total kernel ns of tracer's programs from `--stats`' `bpf=name:runs:ns_per_run,...`.
fn kernel_ns(stderr: &str) -> Option<f64> {
    let line = stderr.lines().find(|l| l.starts_with("tracer-stats:"))?;
    let field = line.split_whitespace().find_map(|w| w.strip_prefix("bpf="))?;
    let total = field
        .split(',')
        .filter_map(|p| {
            let mut it = p.rsplitn(3, ':');
            let ns: f64 = it.next()?.parse().ok()?;
            let runs: f64 = it.next()?.parse().ok()?;
            Some(ns * runs)
        })
        .sum();
    Some(total)
}

pub(super) fn run(env: &Env, o: &Options) -> Result<Report> {
    eprintln!("bench: python");
    if !std::path::Path::new(PYTHON).is_file() {
        return Err(format!("{PYTHON} is missing (cargo xtask setup installs python3.11)"));
    }
    let script = env.script.with_file_name("py_open_close.py");
    std::fs::write(&script, SCRIPT).map_err(|e| format!("{}: {e}", script.display()))?;
    let script = script.to_string_lossy().into_owned();
    let n: u64 = if o.quick { 2_000 } else { 100_000 };
    let setups = [Setup::Untraced, Setup::FramesOff, Setup::FramesOn];
    let mut lines = Vec::new();
    // Depth 5: a handful of frames; 70: past the 64 frames a record carries.
    for depth in [5u32, 70] {
        let mut ns: Vec<Vec<f64>> = vec![Vec::new(); setups.len()];
        let mut kernel: Vec<Vec<f64>> = vec![Vec::new(); setups.len()];
        for round in 0..usize::from(!o.quick) + o.runs {
            for (i, s) in setups.iter().enumerate() {
                let (t, k) = once(env, &script, *s, n, depth)?;
                // The first round warms up.
                if round >= usize::from(!o.quick) {
                    ns[i].push(t);
                    kernel[i].extend(k);
                }
            }
        }
        let base = median(&mut ns[0].clone());
        for (i, s) in setups.iter().enumerate() {
            let m = median(&mut ns[i].clone());
            lines.push(Line {
                depth,
                setup: *s,
                ns_per_pair: m,
                ratio: m / base,
                kernel_ns_per_pair: (!kernel[i].is_empty()).then(|| median(&mut kernel[i].clone())),
                runs: ns[i].len(),
            });
        }
    }
    Ok(Report { pairs: n, lines })
}

impl Report {
    pub(super) fn print(&self) {
        println!(
            "\nPython frames (CPython 3.11 open()+close() at a Python call depth, {} pairs; kernel ns = tracer's programs per pair, BPF statistics on):",
            self.pairs
        );
        println!(
            "{:<6} {:<32} {:>10} {:>7} {:>10}",
            "depth", "configuration", "ns/pair", "ratio", "kernel ns"
        );
        for l in &self.lines {
            println!(
                "{:<6} {:<32} {:>10.0} {:>6.2}x {:>10}",
                l.depth,
                l.setup.name(),
                l.ns_per_pair,
                l.ratio,
                l.kernel_ns_per_pair.map_or_else(|| "-".into(), |k| format!("{k:.0}"))
            );
        }
        for depth in [5u32, 70] {
            let k = |s: Setup| {
                self.lines
                    .iter()
                    .find(|l| l.depth == depth && l.setup == s)
                    .and_then(|l| l.kernel_ns_per_pair)
            };
            if let (Some(off), Some(on)) = (k(Setup::FramesOff), k(Setup::FramesOn)) {
                println!(
                    "depth {depth}: walking the Python frames adds {:.0} ns of kernel time per allocation",
                    on - off
                );
            }
        }
    }

    pub(super) fn json(&self) -> String {
        let lines: Vec<String> = self
            .lines
            .iter()
            .map(|l| {
                format!(
                    "{{\"depth\": {}, \"config\": {}, \"ns_per_pair\": {}, \"ratio\": {}, \"kernel_ns_per_pair\": {}, \"runs\": {}}}",
                    l.depth,
                    json_str(l.setup.name()),
                    num(l.ns_per_pair),
                    num(l.ratio),
                    l.kernel_ns_per_pair.map_or_else(|| "null".into(), num),
                    l.runs
                )
            })
            .collect();
        format!("{{\"pairs\": {}, \"lines\": [{}]}}", self.pairs, lines.join(", "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sums_every_programs_kernel_time() {
        let e = "x\ntracer-stats: records=3 bpf=sys_exit_btf:1000:150,task_newtask:10:400 stage_ns=decode:1\n";
        assert_eq!(kernel_ns(e), Some(1000.0 * 150.0 + 10.0 * 400.0));
        assert_eq!(kernel_ns("tracer-stats: records=1\n"), None);
    }
}
