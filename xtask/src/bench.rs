//! `cargo xtask bench`: tracer's cost measured side by side with what users would pick instead
//! (bpftrace, strace, valgrind), in one run, alternating configurations, reporting medians and
//! ratios (these machines are noisy: a single absolute time means little).
//!
//! Workloads: fd churn (open, socketpair, pipe2; 1 and 2 threads), bystander cost (an untraced
//! process while tracer watches another), ingest ceiling (and overload: losses counted, memory
//! bounded), memory per tracked fd, a real server's throughput (nginx under ab), and a soak of
//! the production agent (memory and CPU over minutes of fork storm, churn and a slow leak), and
//! what Python frames cost per allocation in a CPython loop.

mod agent;
mod guard;
mod load;
mod nginx;
mod procfs;
mod python;
mod scrape;
mod soak;
mod watch;
mod web;

use std::{
    io::{BufRead, BufReader, Write},
    path::{Path, PathBuf},
    process::{Child, ChildStdout, Command, Stdio},
    time::{Duration, Instant},
};

use crate::Result;
use guard::Guarded;
use watch::Watch;

/// What `--only` accepts.
const WORKLOADS: [&str; 7] = ["churn", "bystander", "ingest", "memory", "nginx", "python", "soak"];

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
        let mut it = args.iter();
        while let Some(a) = it.next() {
            match a.as_str() {
                "--quick" => o.quick = true,
                "--runs" => o.runs = it.next().and_then(|v| v.parse().ok()).ok_or("--runs takes a number")?,
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
        if o.quick {
            o.runs = 1;
        }
        Ok(o)
    }
}

/// Tools compared against, each with the way it is run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Config {
    Untraced,
    Tracer(&'static str),
    Bpftrace,
    Strace,
    Valgrind,
}

impl Config {
    fn name(self) -> String {
        match self {
            Config::Untraced => "untraced".into(),
            Config::Tracer(mode) => format!("tracer --stack {mode}"),
            Config::Bpftrace => "bpftrace (ustack per fd)".into(),
            Config::Strace => "strace -f".into(),
            Config::Valgrind => "valgrind --track-fds=yes".into(),
        }
    }

    /// Slow tools run a fraction of the operations (per-operation figures stay comparable).
    fn scale(self) -> u64 {
        match self {
            Config::Strace => 50,
            Config::Valgrind => 20,
            _ => 1,
        }
    }

    fn tool(self) -> Option<&'static str> {
        match self {
            Config::Bpftrace => Some("bpftrace"),
            Config::Strace => Some("strace"),
            Config::Valgrind => Some("valgrind"),
            _ => None,
        }
    }
}

/// One measured run.
#[derive(Clone, Debug, Default)]
struct Sample {
    ns_per_op: f64,
    agent_cpu_ms: Option<f64>,
    lost: Option<u64>,
    max_rss_kib: Option<u64>,
}

/// What tracer's `--stats` printed.
#[derive(Clone, Debug, Default)]
struct Stats {
    records: u64,
    lost: u64,
    cpu_ms: f64,
    max_rss_kib: u64,
    /// Anonymous memory at exit: the agent's own state, without ring-buffer pages.
    rss_anon_kib: u64,
}

fn parse_stats(stderr: &str) -> Option<Stats> {
    let line = stderr.lines().find(|l| l.starts_with("tracer-stats:"))?;
    let field = |k: &str| {
        line.split_whitespace()
            .find_map(|w| w.strip_prefix(k).and_then(|v| v.strip_prefix('=')).map(str::to_owned))
    };
    Some(Stats {
        records: field("records")?.parse().ok()?,
        lost: field("lost")?.parse().ok()?,
        cpu_ms: field("cpu_ms")?.parse().ok()?,
        max_rss_kib: field("max_rss_kib")?.parse().ok()?,
        rss_anon_kib: field("rss_anon_kib").and_then(|v| v.parse().ok()).unwrap_or(0),
    })
}

fn median(v: &mut [f64]) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(f64::total_cmp);
    let m = v.len() / 2;
    if v.len() % 2 == 1 {
        v[m]
    } else {
        (v[m - 1] + v[m]) / 2.0
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

/// Runs a bpftrace script with `args` and then a marker file's path, which the script's BEGIN
/// probe creates (BEGIN fires once every probe is attached; bpftrace buffers its output when it
/// is not a terminal, so no line can say so); returns once it exists.
fn start_bpftrace(script: &Path, args: &[String]) -> Result<Guarded> {
    let ready = script.with_extension("ready");
    let _ = std::fs::remove_file(&ready);
    let mut bt = Guarded::spawn(
        Command::new("bpftrace")
            .arg("--unsafe")
            .arg(script)
            .args(args)
            .arg(&ready)
            .stdout(Stdio::null())
            .stderr(Stdio::null()),
        "bpftrace",
    )?;
    let deadline = Instant::now() + Duration::from_secs(60);
    while !ready.exists() {
        if Instant::now() > deadline || bt.try_wait().map_err(|e| e.to_string())?.is_some() {
            return Err(format!("bpftrace did not start (try {} by hand)", script.display()));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    Ok(bt)
}

const BPFTRACE_SCRIPT: &str = r#"// Same per-fd state as tracer: every open fd of PID $1 with its user stack.
// $2: a file to create once attached (bpftrace buffers its own output when piped).
BEGIN { system("touch %s", str($2)); }
tracepoint:syscalls:sys_exit_openat /pid == $1 && args->ret >= 0/ { @fds[pid, args->ret] = ustack; }
tracepoint:syscalls:sys_enter_pipe2 /pid == $1/ { @p[tid] = args->fildes; }
tracepoint:syscalls:sys_enter_socketpair /pid == $1/ { @p[tid] = args->usockvec; }
tracepoint:syscalls:sys_exit_pipe2, tracepoint:syscalls:sys_exit_socketpair /pid == $1 && @p[tid] != 0/ {
  if (args->ret == 0) { $f = (int32 *)@p[tid]; @fds[pid, *$f] = ustack; @fds[pid, *($f + 1)] = ustack; }
  delete(@p[tid]);
}
tracepoint:syscalls:sys_enter_close /pid == $1/ { delete(@fds[pid, args->fd]); }
END { clear(@p); clear(@fds); }
"#;

/// A churn process started with CHURN_WAIT: it has printed "ready" and waits for "go".
struct HeldChurn {
    child: Child,
    stdout: BufReader<ChildStdout>,
}

impl HeldChurn {
    fn start(env: &Env, kind: &str, n: u64, threads: u32) -> Result<Self> {
        let mut child = Command::new(&env.churn)
            .args([kind, &n.to_string(), &threads.to_string()])
            .env("CHURN_WAIT", "1")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .map_err(|e| format!("starting churn: {e}"))?;
        let mut stdout = BufReader::new(child.stdout.take().ok_or("churn stdout")?);
        let mut line = String::new();
        stdout.read_line(&mut line).map_err(|e| e.to_string())?;
        if line.trim() != "ready" {
            return Err(format!("churn said {line:?} instead of ready"));
        }
        Ok(HeldChurn { child, stdout })
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Releases it and returns its elapsed nanoseconds.
    fn go(mut self) -> Result<u64> {
        if let Some(stdin) = self.child.stdin.as_mut() {
            stdin.write_all(b"go\n").map_err(|e| e.to_string())?;
        }
        let mut line = String::new();
        self.stdout.read_line(&mut line).map_err(|e| e.to_string())?;
        let status = self.child.wait().map_err(|e| e.to_string())?;
        if !status.success() {
            return Err(format!("churn failed: {status}"));
        }
        line.trim().parse().map_err(|_| format!("churn printed {line:?}"))
    }
}

/// Waits until `child`'s stream (stderr or stdout) has a line containing `marker`; returns the
/// reader so the rest can be collected later.
fn wait_for_line<R: std::io::Read>(reader: &mut BufReader<R>, marker: &str, what: &str) -> Result<String> {
    let mut seen = String::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let mut line = String::new();
        let n = reader.read_line(&mut line).map_err(|e| e.to_string())?;
        if n == 0 || Instant::now() > deadline {
            return Err(format!("{what} never said {marker:?}: {seen}"));
        }
        seen.push_str(&line);
        if line.contains(marker) {
            return Ok(seen);
        }
    }
}

fn interrupt(child: &Child) {
    let _ = Command::new("kill").args(["-INT", &child.id().to_string()]).status();
}

/// Stops a tool the way a user would (SIGINT, which bpftrace sometimes misses right after its
/// BEGIN probe ran: it is sent again every second), killing it after 30 s.
fn stop(child: &mut Child) {
    for _ in 0..30 {
        interrupt(child);
        for _ in 0..10 {
            if child.try_wait().ok().flatten().is_some() {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
    let _ = child.kill();
    let _ = child.wait();
}

/// One churn run under `config`.
fn measure(env: &Env, config: Config, kind: &str, n: u64, threads: u32) -> Result<Sample> {
    let n = (n / config.scale()).max(100);
    match config {
        Config::Untraced => {
            let churn = HeldChurn::start(env, kind, n, threads)?;
            Ok(Sample {
                ns_per_op: churn.go()? as f64 / n as f64,
                ..Default::default()
            })
        }
        Config::Tracer(mode) => {
            let churn = HeldChurn::start(env, kind, n, threads)?;
            let tracer = Watch::start(&env.tracer, &[churn.pid()], mode)?;
            let elapsed = churn.go()?;
            let stats = tracer.finish()?;
            Ok(Sample {
                ns_per_op: elapsed as f64 / n as f64,
                agent_cpu_ms: Some(stats.cpu_ms),
                lost: Some(stats.lost),
                max_rss_kib: Some(stats.max_rss_kib),
            })
        }
        Config::Bpftrace => {
            let churn = HeldChurn::start(env, kind, n, threads)?;
            let bt = start_bpftrace(&env.script, &[churn.pid().to_string()])?;
            let elapsed = churn.go()?;
            let _ = bt.finish();
            Ok(Sample {
                ns_per_op: elapsed as f64 / n as f64,
                ..Default::default()
            })
        }
        Config::Strace | Config::Valgrind => {
            let mut cmd = if config == Config::Strace {
                let mut c = Command::new("strace");
                c.args(["-f", "-e", "trace=openat,close,socketpair,pipe2", "-o", "/dev/null"]);
                c
            } else {
                let mut c = Command::new("valgrind");
                c.args(["--track-fds=yes", "-q", "--log-file=/dev/null"]);
                c
            };
            let out = cmd
                .arg(&env.churn)
                .args([kind, &n.to_string(), &threads.to_string()])
                .output()
                .map_err(|e| format!("{}: {e}", config.name()))?;
            let elapsed: u64 = String::from_utf8_lossy(&out.stdout).trim().parse().map_err(|_| {
                format!(
                    "{} run printed {:?}",
                    config.name(),
                    String::from_utf8_lossy(&out.stdout)
                )
            })?;
            Ok(Sample {
                ns_per_op: elapsed as f64 / n as f64,
                ..Default::default()
            })
        }
    }
}

fn have(tool: &str) -> bool {
    Command::new(tool)
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok()
}

/// Syscalls traced per churn operation (the creating call and the closes).
fn events_per_op(kind: &str) -> f64 {
    if kind == "open" { 2.0 } else { 3.0 }
}

struct Row {
    workload: String,
    config: String,
    median_ns_per_op: f64,
    ratio: f64,
    added_ns_per_event: f64,
    agent_cpu_ns_per_event: Option<f64>,
    lost: Option<u64>,
    agent_max_rss_kib: Option<u64>,
    runs: usize,
}

fn churn_rows(env: &Env, o: &Options, configs: &[Config], rows: &mut Vec<Row>) -> Result {
    let n: u64 = if o.quick { 2_000 } else { 200_000 };
    let warmup = usize::from(!o.quick);
    for kind in ["open", "socketpair", "pipe2"] {
        for threads in [1u32, 2] {
            let workload = format!("churn {kind} x{threads}");
            eprintln!("bench: {workload}");
            let mut samples: Vec<Vec<Sample>> = vec![Vec::new(); configs.len()];
            // Alternate configurations within each round so drift hits them all alike.
            for round in 0..warmup + o.runs {
                for (i, c) in configs.iter().enumerate() {
                    let s = measure(env, *c, kind, n, threads)?;
                    if round >= warmup {
                        samples[i].push(s);
                    }
                }
            }
            let base = median(&mut samples[0].iter().map(|s| s.ns_per_op).collect::<Vec<_>>());
            for (i, c) in configs.iter().enumerate() {
                let ns = median(&mut samples[i].iter().map(|s| s.ns_per_op).collect::<Vec<_>>());
                let per_event = events_per_op(kind);
                let cpu: Vec<f64> = samples[i].iter().filter_map(|s| s.agent_cpu_ms).collect();
                let agent =
                    (!cpu.is_empty()).then(|| median(&mut cpu.clone()) * 1e6 / ((n / c.scale()) as f64 * per_event));
                rows.push(Row {
                    workload: workload.clone(),
                    config: c.name(),
                    median_ns_per_op: ns,
                    ratio: ns / base,
                    added_ns_per_event: (ns - base) / per_event,
                    agent_cpu_ns_per_event: agent,
                    lost: samples[i].iter().filter_map(|s| s.lost).max(),
                    agent_max_rss_kib: samples[i].iter().filter_map(|s| s.max_rss_kib).max(),
                    runs: samples[i].len(),
                });
            }
        }
    }
    Ok(())
}

/// The price an untraced process pays while tracer watches another one, beside the floor
/// (empty programs on the same hooks: what any such tracer costs) and, with `--baseline`, the
/// tracer before a change.
fn bystander_rows(env: &Env, o: &Options, rows: &mut Vec<Row>) -> Result {
    eprintln!("bench: bystander");
    let n: u64 = if o.quick { 2_000 } else { 200_000 };
    #[derive(Clone, Copy, PartialEq)]
    enum Setup {
        Alone,
        Floor,
        BpftraceFloor,
        Watching,
        Baseline,
    }
    let mut setups = vec![Setup::Alone, Setup::Floor];
    if have("bpftrace") {
        setups.push(Setup::BpftraceFloor);
    }
    setups.push(Setup::Watching);
    if o.baseline.is_some() {
        setups.push(Setup::Baseline);
    }
    let mut samples: Vec<Vec<f64>> = vec![Vec::new(); setups.len()];
    let target = Guarded::spawn(Command::new("sleep").arg("3600"), "sleep")?;
    for round in 0..usize::from(!o.quick) + o.runs {
        for (i, setup) in setups.iter().enumerate() {
            let ns = match setup {
                Setup::Alone => measure(env, Config::Untraced, "open", n, 1)?.ns_per_op,
                Setup::Floor => {
                    let floor = web::start_floor(&env.tracer)?;
                    let ns = measure(env, Config::Untraced, "open", n, 1)?.ns_per_op;
                    let _ = floor.finish();
                    ns
                }
                Setup::BpftraceFloor => {
                    let bt = web::start_script(env, "floor.bt", web::FLOOR_SCRIPT)?;
                    let ns = measure(env, Config::Untraced, "open", n, 1)?.ns_per_op;
                    let _ = bt.finish();
                    ns
                }
                Setup::Watching | Setup::Baseline => {
                    let bin = match (setup, &o.baseline) {
                        (Setup::Baseline, Some(b)) => b.clone(),
                        _ => env.tracer.clone(),
                    };
                    let tracer = Watch::start(&bin, &[target.id()], "dwarf")?;
                    let ns = measure(env, Config::Untraced, "open", n, 1)?.ns_per_op;
                    tracer.finish()?;
                    ns
                }
            };
            // The first round warms up.
            if round >= usize::from(!o.quick) {
                samples[i].push(ns);
            }
        }
    }
    drop(target);
    let base = median(&mut samples[0].clone());
    for (setup, s) in setups.iter().zip(&samples) {
        let ns = median(&mut s.clone());
        let config = match setup {
            Setup::Alone => "no tracer running",
            Setup::Floor => "floor: tracer floor (empty)",
            Setup::BpftraceFloor => "floor: bpftrace, same hooks",
            Setup::Watching => "tracer watching another process",
            Setup::Baseline => "baseline tracer watching another",
        };
        rows.push(Row {
            workload: "bystander churn open x1".into(),
            config: config.into(),
            median_ns_per_op: ns,
            ratio: ns / base,
            added_ns_per_event: (ns - base) / 2.0,
            agent_cpu_ns_per_event: None,
            lost: None,
            agent_max_rss_kib: None,
            runs: s.len(),
        });
    }
    Ok(())
}

struct Ingest {
    mode: &'static str,
    ring_mib: u32,
    events_per_s: f64,
    records: u64,
    lost: u64,
    max_rss_kib: u64,
}

/// The highest rate the producer reaches (2 threads), and what happens when the buffer is too
/// small: losses counted and reported, memory bounded, the agent keeps going.
fn ingest_rows(env: &Env, o: &Options) -> Result<Vec<Ingest>> {
    eprintln!("bench: ingest");
    let n: u64 = if o.quick { 5_000 } else { 1_000_000 };
    let mut out = Vec::new();
    for (mode, ring) in [("none", 64u32), ("fp", 64), ("dwarf", 64), ("dwarf", 1)] {
        let run = Command::new(&env.tracer)
            .args([
                "run",
                "--stack",
                mode,
                "--ring-buffer-size",
                &ring.to_string(),
                "--stats",
                "-o",
                "/dev/null",
                "--",
            ])
            .arg(&env.churn)
            .args(["open", &n.to_string(), "2"])
            .output()
            .map_err(|e| e.to_string())?;
        let stderr = String::from_utf8_lossy(&run.stderr);
        let stats = parse_stats(&stderr).ok_or_else(|| format!("ingest run without stats: {stderr}"))?;
        let elapsed: f64 = String::from_utf8_lossy(&run.stdout).trim().parse().unwrap_or(f64::NAN);
        out.push(Ingest {
            mode,
            ring_mib: ring,
            events_per_s: (stats.records + stats.lost) as f64 / (elapsed / 1e9),
            records: stats.records,
            lost: stats.lost,
            max_rss_kib: stats.max_rss_kib,
        });
    }
    Ok(out)
}

/// Agent memory while tracking PROCS x FDS outstanding fds, against a baseline where the same
/// processes open and close as many. Measured as anonymous RSS at exit (the agent's heap: the
/// ring buffer's pages are shared memory and left out), processes started 20 ms apart so the
/// agent keeps up without losses.
fn memory(env: &Env, o: &Options) -> Result<(u64, u64, u64, f64)> {
    eprintln!("bench: memory");
    let (procs, fds) = if o.quick { (4u64, 100u64) } else { (100, 1000) };
    let rss = |mode: &str| -> Result<u64> {
        let work = if mode == "hold" {
            format!("hold {fds} 3")
        } else {
            format!("open {fds} 1; sleep 3")
        };
        let script = format!("for i in $(seq {procs}); do {{ \"$0\" {work}; }} & sleep 0.02; done; wait");
        let run = Command::new(&env.tracer)
            .args([
                "run",
                "--stack",
                "fp",
                "--stats",
                "-o",
                "/dev/null",
                "--",
                "sh",
                "-c",
                &script,
            ])
            .arg(&env.churn)
            .output()
            .map_err(|e| e.to_string())?;
        let stderr = String::from_utf8_lossy(&run.stderr);
        let stats = parse_stats(&stderr).ok_or_else(|| format!("memory run without stats: {stderr}"))?;
        if stats.lost > 0 {
            eprintln!(
                "bench: memory run lost {} records: the figure is a lower bound",
                stats.lost
            );
        }
        Ok(stats.rss_anon_kib)
    };
    let base = rss("churn")?;
    let loaded = rss("hold")?;
    let total = procs * fds;
    let per_fd = loaded.saturating_sub(base) as f64 * 1024.0 / total as f64;
    Ok((total, base, loaded, per_fd))
}

fn machine() -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|c| {
            c.lines()
                .find(|l| l.starts_with("model name"))
                .map(|l| l.split(':').nth(1).unwrap_or("").trim().to_owned())
        })
        .unwrap_or_default();
    let kernel = Command::new("uname")
        .arg("-r")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned());
    let cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0);
    format!("{cores} cores ({cpu}), Linux {}", kernel.unwrap_or_default())
}

fn json_str(s: &str) -> String {
    let mut o = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => o.push_str("\\\""),
            '\\' => o.push_str("\\\\"),
            c if (c as u32) < 0x20 => o.push_str(&format!("\\u{:04x}", c as u32)),
            c => o.push(c),
        }
    }
    o.push('"');
    o
}

fn num(x: f64) -> String {
    if x.is_finite() {
        format!("{x:.3}")
    } else {
        "null".into()
    }
}

fn opt<T: std::fmt::Display>(x: Option<T>) -> String {
    x.map_or_else(|| "null".into(), |v| v.to_string())
}

pub fn run(env_tracer: PathBuf, churn: PathBuf, o: &Options) -> Result {
    let dir = o
        .out
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("."));
    std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let script = dir.join("fds.bt");
    std::fs::write(&script, BPFTRACE_SCRIPT).map_err(|e| e.to_string())?;
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
        churn_rows(&env, o, &configs, &mut rows)?;
    }
    if wanted("bystander") {
        bystander_rows(&env, o, &mut rows)?;
    }
    let ingest = if wanted("ingest") {
        ingest_rows(&env, o)?
    } else {
        Vec::new()
    };
    let (mem_fds, mem_base, mem_loaded, mem_per_fd) = if wanted("memory") {
        memory(&env, o)?
    } else {
        (0, 0, 0, f64::NAN)
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

    // The table.
    let machine = machine();
    println!(
        "\nMachine: {machine}; medians of {} run(s) per configuration{}",
        o.runs,
        if o.quick {
            " (quick mode: tiny N, figures meaningless)"
        } else {
            ""
        }
    );
    if !rows.is_empty() {
        println!(
            "{:<26} {:<34} {:>10} {:>7} {:>12} {:>12} {:>6}",
            "workload", "configuration", "ns/op", "ratio", "+ns/event", "agent ns/ev", "lost"
        );
    }
    for r in &rows {
        println!(
            "{:<26} {:<34} {:>10.0} {:>6.2}x {:>12.0} {:>12} {:>6}",
            r.workload,
            r.config,
            r.median_ns_per_op,
            r.ratio,
            r.added_ns_per_event,
            r.agent_cpu_ns_per_event
                .map_or_else(|| "-".into(), |v| format!("{v:.0}")),
            r.lost.map_or_else(|| "-".into(), |v| v.to_string())
        );
    }
    if !ingest.is_empty() {
        println!("\nIngest (churn open x2 under `tracer run`):");
        println!(
            "{:<8} {:>9} {:>14} {:>10} {:>9} {:>12}",
            "stacks", "ring MiB", "events/s", "records", "lost", "agent RSS"
        );
    }
    for i in &ingest {
        println!(
            "{:<8} {:>9} {:>14.0} {:>10} {:>9} {:>9} KiB",
            i.mode, i.ring_mib, i.events_per_s, i.records, i.lost, i.max_rss_kib
        );
    }
    if wanted("memory") {
        println!(
            "\nMemory: {mem_fds} outstanding fds tracked: agent anonymous RSS {mem_loaded} KiB vs {mem_base} KiB holding none: {mem_per_fd:.0} bytes per tracked fd"
        );
    }
    if let Some(n) = &nginx {
        n.print();
    }
    if let Some(p) = &python {
        p.print();
    }
    if let Some(s) = &soak {
        s.print();
    }

    // The JSON.
    let mut j = String::from("{\n");
    j.push_str(&format!(
        "  \"machine\": {},\n  \"quick\": {},\n  \"runs\": {},\n",
        json_str(&machine),
        o.quick,
        o.runs
    ));
    j.push_str("  \"churn\": [\n");
    for (i, r) in rows.iter().enumerate() {
        j.push_str(&format!(
            "    {{\"workload\": {}, \"config\": {}, \"median_ns_per_op\": {}, \"ratio\": {}, \"added_ns_per_event\": {}, \"agent_cpu_ns_per_event\": {}, \"lost\": {}, \"agent_max_rss_kib\": {}, \"runs\": {}}}{}\n",
            json_str(&r.workload),
            json_str(&r.config),
            num(r.median_ns_per_op),
            num(r.ratio),
            num(r.added_ns_per_event),
            r.agent_cpu_ns_per_event.map_or_else(|| "null".into(), num),
            opt(r.lost),
            opt(r.agent_max_rss_kib),
            r.runs,
            if i + 1 < rows.len() { "," } else { "" }
        ));
    }
    j.push_str("  ],\n  \"ingest\": [\n");
    for (k, i) in ingest.iter().enumerate() {
        j.push_str(&format!(
            "    {{\"stack\": {}, \"ring_mib\": {}, \"events_per_s\": {}, \"records\": {}, \"lost\": {}, \"agent_max_rss_kib\": {}}}{}\n",
            json_str(i.mode),
            i.ring_mib,
            num(i.events_per_s),
            i.records,
            i.lost,
            i.max_rss_kib,
            if k + 1 < ingest.len() { "," } else { "" }
        ));
    }
    j.push_str(&format!(
        "  ],\n  \"memory\": {{\"tracked_fds\": {mem_fds}, \"base_rss_anon_kib\": {mem_base}, \"loaded_rss_anon_kib\": {mem_loaded}, \"bytes_per_fd\": {}}},\n",
        num(mem_per_fd)
    ));
    j.push_str(&format!(
        "  \"nginx\": {},\n  \"python\": {},\n  \"soak\": {}\n}}\n",
        nginx.as_ref().map_or_else(|| "null".into(), web::Report::json),
        python.as_ref().map_or_else(|| "null".into(), python::Report::json),
        soak.as_ref().map_or_else(|| "null".into(), soak::Soak::json)
    ));
    std::fs::write(&o.out, j).map_err(|e| format!("{}: {e}", o.out.display()))?;
    println!("\nbench: figures written to {}", o.out.display());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_stats_line() {
        let s = parse_stats("x\ntracer-stats: records=10 lost=2 cpu_ms=3.5 max_rss_kib=100 tracked_fds=1 stacks=2\n");
        let s = s.unwrap_or_default();
        assert_eq!((s.records, s.lost, s.max_rss_kib), (10, 2, 100));
        assert!((s.cpu_ms - 3.5).abs() < 1e-9);
        assert!(parse_stats("nothing").is_none());
    }

    #[test]
    fn medians() {
        assert_eq!(median(&mut [3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&mut [4.0, 1.0, 2.0, 3.0]), 2.5);
        assert!(median(&mut []).is_nan());
    }
}
