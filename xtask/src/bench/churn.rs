//! The fd churn workload: open, socketpair and pipe2 in a loop (1 and 2 threads), untraced and
//! under tracer, bpftrace, strace and valgrind, configurations alternated round by round.

use std::{
    io::{BufRead, BufReader, Write},
    process::{Child, ChildStdout, Command, Stdio},
};

use super::{Env, Options, median, start_bpftrace, watch::Watch};
use crate::Result;

/// Tools compared against, each with the way it is run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Config {
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

    pub(super) fn tool(self) -> Option<&'static str> {
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
pub(super) struct Sample {
    pub(super) ns_per_op: f64,
    agent_cpu_ms: Option<f64>,
    lost: Option<u64>,
    max_rss_kib: Option<u64>,
}

pub(super) const BPFTRACE_SCRIPT: &str = r#"// Same per-fd state as tracer: every open fd of PID $1 with its user stack.
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
pub(super) struct HeldChurn {
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

/// One churn run under `config`.
pub(super) fn measure(env: &Env, config: Config, kind: &str, n: u64, threads: u32) -> Result<Sample> {
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

/// Syscalls traced per churn operation (the creating call and the closes).
fn events_per_op(kind: &str) -> f64 {
    if kind == "open" { 2.0 } else { 3.0 }
}

pub(super) struct Row {
    pub(super) workload: String,
    pub(super) config: String,
    pub(super) median_ns_per_op: f64,
    pub(super) ratio: f64,
    pub(super) added_ns_per_event: f64,
    pub(super) agent_cpu_ns_per_event: Option<f64>,
    pub(super) lost: Option<u64>,
    pub(super) agent_max_rss_kib: Option<u64>,
    pub(super) runs: usize,
}

pub(super) fn churn_rows(env: &Env, o: &Options, configs: &[Config], rows: &mut Vec<Row>) -> Result {
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
