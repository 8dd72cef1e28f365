//! Command line: parsing and nothing else (`main.rs` dispatches).

use std::{ffi::OsString, path::PathBuf, time::Duration};

use clap::{Args, Parser, Subcommand, ValueEnum};

pub use crate::model::duration::parse_duration;
use crate::output::Format;

#[derive(Debug, Parser)]
#[command(
    name = "tracer",
    version,
    about = "Find file-descriptor leaks in live Linux processes, with the stack that allocated them",
    long_about = "Find file-descriptor leaks in live Linux processes with eBPF. Every fd a traced process \
                  creates is followed to its close; fds still open are grouped by the user stack that \
                  allocated them, and sites whose open count keeps growing are reported as leak suspects. \
                  Needs root (or CAP_BPF, CAP_PERFMON and CAP_SYS_ADMIN)."
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Attach to running processes (their threads, and children forked after attach).
    Watch(WatchArgs),
    /// Run a command under the tracer and report what it leaves open when it exits.
    Run(RunArgs),
    /// Production mode: trace the whole host (or a selection) continuously and serve
    /// Prometheus metrics, pprof profiles and the report over HTTP.
    Agent(AgentArgs),
    /// A live, full-screen view of every traced process (like top): fds against the limit, by
    /// kind, growth, time to EMFILE, suspects, zombies, SysV objects, lock waits, problems;
    /// Enter opens a process's allocation sites with their stacks. Plain lines when stdout is
    /// not a terminal.
    Top(TopArgs),
    /// For the benchmark: empty programs on the hooks tracer attaches, until SIGINT or SIGTERM
    /// (what any tracer on those hooks costs before it does anything).
    #[command(hide = true)]
    Floor,
    /// Every process's open-fd count as the agent's iterator reads it (or /proc where it
    /// cannot load), once: PID, open fds, table size, soft limit, command.
    #[command(hide = true)]
    Counts,
}

#[derive(Debug, Args)]
pub struct TopArgs {
    /// Show this process and its descendants (repeatable; default: every process on the host).
    #[arg(short = 'p', long = "pid", value_name = "PID")]
    pub pids: Vec<u32>,
    /// Show processes with this command name (repeatable), from start-up and at exec.
    #[arg(long = "comm", value_name = "NAME")]
    pub comms: Vec<OsString>,
    /// Time between refreshes.
    #[arg(short = 'd', long, value_name = "DURATION", value_parser = parse_duration, default_value = "1s")]
    pub interval: Duration,
    /// Plain-lines mode only: print this many tables, then exit.
    #[arg(short = 'n', long, value_name = "N")]
    pub count: Option<u64>,
    /// The column to sort by at start (keys change it).
    #[arg(long, value_enum, default_value_t = Column::Fds)]
    pub sort: Column,
    #[command(flatten)]
    pub capture: CaptureArgs,
}

#[derive(Debug, Args)]
pub struct AgentArgs {
    /// Address of the HTTP endpoints (loopback unless another address is named).
    /// An IPv6 address may come without brackets (`fd00::1:9464`, as a pod's address from the
    /// downward API is pasted).
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:9464", value_parser = parse_listen)]
    pub listen: std::net::SocketAddr,
    /// TLS and basic authentication for the endpoints, from a web configuration file in the
    /// format every Prometheus exporter reads (exporter-toolkit's: tls_server_config,
    /// basic_auth_users with bcrypt hashes, http_server_config.headers). Re-read when it or a
    /// certificate file it names changes, and on SIGHUP; a bad file keeps the previous one.
    #[arg(long, value_name = "FILE")]
    pub web_config: Option<PathBuf>,
    /// Serve only these groups of endpoints, comma-separated: metrics (/metrics), pprof
    /// (/debug/pprof/*, /debug/folded/*), report (/report). The others answer 404; /healthy and
    /// /ready are always served.
    #[arg(long, value_name = "LIST", default_value = "metrics,pprof,report", value_parser = crate::http::Endpoints::parse)]
    pub endpoints: crate::http::Endpoints,
    /// Trace this process and its descendants, those it has now and those it forks later
    /// (repeatable). With no --pid, --comm or --cgroup every process on the host is traced,
    /// including processes started later.
    #[arg(long = "pid", value_name = "PID")]
    pub pids: Vec<u32>,
    /// Trace processes with this command name (as /proc/PID/comm shows it; repeatable), from
    /// start-up and whenever a process execs into it.
    #[arg(long = "comm", value_name = "NAME")]
    pub comms: Vec<OsString>,
    /// Trace processes in this cgroup v2 or below it (`/system.slice/nginx.service`, or the
    /// path under /sys/fs/cgroup; repeatable).
    #[arg(long = "cgroup", value_name = "PATH")]
    pub cgroups: Vec<PathBuf>,
    /// Give the N processes with the most open fds Prometheus series of their own (a `pid`
    /// label); the rest are grouped by command and container.
    #[arg(long, value_name = "N", default_value_t = 0)]
    pub pid_labels: usize,
    /// Trends (leak suspects, growth rates) are judged over this sliding window; sites with
    /// nothing open for a whole window are dropped, and so are the totals of a group whose
    /// processes are all gone for that long.
    #[arg(long, value_name = "DURATION", value_parser = parse_duration, default_value = "15m")]
    pub window: Duration,
    /// State of an exited process is kept this long (its totals stay in the counters), or less
    /// when more than 512 exited processes wait: the oldest go first.
    #[arg(long, value_name = "DURATION", value_parser = parse_duration, default_value = "30s")]
    pub exited_grace: Duration,
    /// Sites shown by /report unless its query says otherwise.
    #[arg(long, value_name = "N", default_value_t = 20)]
    pub top: usize,
    /// Ignore fds younger than this in /report.
    #[arg(long, value_name = "DURATION", value_parser = parse_duration, default_value = "0s")]
    pub min_age: Duration,
    /// Trace every fd of every process with stacks (the costly way). By default every process's
    /// open fds are only counted (a BPF iterator, no syscall hook), and a process is traced with
    /// stacks only while it is selected, escalated (its count keeps rising or nears its limit) or
    /// asked about.
    #[arg(long, conflicts_with_all = ["pids", "comms", "cgroups"])]
    pub trace_all: bool,
    /// Processes traced at once because their count rose (escalated); more wait their turn,
    /// and the refusals are counted.
    #[arg(long, value_name = "N", default_value_t = 8)]
    pub escalation_budget: usize,
    /// Records per second the escalated processes may cost together; past it the noisiest
    /// escalated process is released early (counted).
    #[arg(long, value_name = "N", default_value_t = 20_000)]
    pub escalation_records: u64,
    #[command(flatten)]
    pub capture: CaptureArgs,
}

#[derive(Debug, Args)]
pub struct WatchArgs {
    /// Process to trace (repeat for several).
    #[arg(short = 'p', long = "pid", required = true, value_name = "PID")]
    pub pids: Vec<u32>,
    /// Seconds between reports.
    #[arg(value_name = "INTERVAL", default_value = "10", value_parser = parse_duration)]
    pub interval: Duration,
    /// Number of reports, then exit (default: until Ctrl-C or the processes exit).
    #[arg(value_name = "COUNT")]
    pub count: Option<u64>,
    #[command(flatten)]
    pub common: CommonArgs,
}

#[derive(Debug, Args)]
pub struct RunArgs {
    #[command(flatten)]
    pub common: CommonArgs,
    /// The command and its arguments (after `--`).
    #[arg(
        required = true,
        trailing_var_arg = true,
        allow_hyphen_values = true,
        value_name = "CMD"
    )]
    pub command: Vec<OsString>,
}

/// Options of `watch` and `run`: capture, plus how reports are written.
#[derive(Debug, Args, Clone)]
pub struct CommonArgs {
    #[command(flatten)]
    pub capture: CaptureArgs,
    /// Report format: text, json, folded (collapsed stacks weighted by open fds, for inferno or
    /// flamegraph.pl), svg (a flame graph of open fds by allocation stack; suspects in red).
    #[arg(long, value_enum, default_value_t = Format::Text)]
    pub format: Format,
    /// Write reports to FILE instead of standard output (a traced command keeps its own output).
    #[arg(short = 'o', long = "output", value_name = "FILE")]
    pub output: Option<PathBuf>,
    /// Ignore fds younger than this (e.g. 500ms, 10s, 2m).
    #[arg(long, value_name = "DURATION", value_parser = parse_duration, default_value = "0s")]
    pub min_age: Duration,
    /// Show at most N suspects and N other sites.
    #[arg(long, value_name = "N")]
    pub top: Option<usize>,
    /// List every process, zombie parent and signal in the text report (by default only those
    /// with something to say; the rest are summed per parent and command).
    #[arg(long)]
    pub all: bool,
    /// At exit, print the agent's own cost to stderr: records processed, lost, CPU, peak memory.
    #[arg(long)]
    pub stats: bool,
}

/// What is captured, and how (every command).
#[derive(Debug, Args, Clone)]
pub struct CaptureArgs {
    /// How user stacks are captured: dwarf (registers and stack copy, unwound with .eh_frame;
    /// works without frame pointers), fp (kernel frame-pointer walk; cheapest), none.
    #[arg(long, value_enum, default_value_t = StackArg::Dwarf)]
    pub stack: StackArg,
    /// KiB of user stack copied per allocation for --stack dwarf: 4, 8 or 16. Deeper stacks
    /// unwind until the copy ends; bigger copies cost more per allocation.
    #[arg(long, value_name = "KIB", default_value_t = 8, value_parser = parse_stack_size)]
    pub stack_size: u32,
    /// Kernel ring buffer size in MiB (a power of two; default 64 for watch and run, 16 for the
    /// agent, whose memory counts on every host: the buffer is mapped twice, so it is resident
    /// twice once filled).
    #[arg(long, value_name = "MIB", value_parser = parse_ring_size)]
    pub ring_buffer_size: Option<u32>,
    /// User stacks per second per CPU before allocation stacks are sampled, the way heap
    /// profilers sample: past it an allocation gets a stack with a probability that keeps each
    /// CPU near the budget, and each sampled stack stands for the allocations it represents.
    /// Counts stay exact. 0: every allocation gets its stack (default for watch and run; the
    /// agent's default is 1000).
    #[arg(long, value_name = "N")]
    pub stack_budget: Option<u32>,
    /// Capture a stack at every close too, so a double close or a use after close names the
    /// first close (like valgrind --track-fds=bad). Doubles the cost of fd churn.
    #[arg(long)]
    pub close_stacks: bool,
    /// Do not report syscalls failing with EBADF (programs that probe fds on purpose).
    #[arg(long)]
    pub no_ebadf: bool,
    /// Add the kernel stack of each fd's installation (kprobe on fd_install): which kernel path
    /// made it (io_uring, a socket accept, ...). Needs a kernel with kprobes; refused clearly
    /// where there are none.
    #[arg(long)]
    pub kernel_stack: bool,
    /// A lock held longer than this while others wait for it is a suspect.
    #[arg(long, value_name = "DURATION", value_parser = parse_duration, default_value = "1s")]
    pub lock_hold: Duration,
    /// Have the kernel time every BPF program on the host while tracer runs (BPF_ENABLE_STATS:
    /// two clock reads per program run), and show tracer's programs' runs and nanoseconds per
    /// run in `--stats` and the agent's metrics. Also shown without it when
    /// `kernel.bpf_stats_enabled` is 1.
    #[arg(long)]
    pub bpf_stats: bool,
    /// A write to a pipe, FIFO, eventfd or AF_UNIX socket that blocked this long is a stall
    /// (its buffer was full). Default 100ms for watch, run and top; off for the agent, where
    /// the entry hooks would run on every write of the host for days (give it to turn them on).
    /// 0 turns write timing off (no entry hook on write, writev, sendto, sendmsg; EAGAIN on a
    /// full buffer is then not seen either).
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    pub write_block: Option<Duration>,
    /// In CPython processes (3.11-3.14), walk the interpreter's frames at each allocation that
    /// takes a user stack, so the stack names the Python function, file and line, and two
    /// Python call sites are two sites. off: native frames only (CPython's eval loop).
    #[arg(long, value_enum, default_value_t = OnOff::On)]
    pub python_frames: OnOff,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum OnOff {
    On,
    Off,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum StackArg {
    Dwarf,
    Fp,
    None,
}

impl StackArg {
    pub fn as_str(self) -> &'static str {
        match self {
            StackArg::Dwarf => "dwarf",
            StackArg::Fp => "fp",
            StackArg::None => "none",
        }
    }
}

/// `500ms`, `10s`, `2m`, `1h`, or a bare number of seconds (`2.5`).
/// `IP:PORT`, `[IPv6]:PORT`, or an IPv6 address without brackets followed by `:PORT`.
pub fn parse_listen(s: &str) -> Result<std::net::SocketAddr, String> {
    if let Ok(a) = s.parse() {
        return Ok(a);
    }
    let bad = || format!("{s:?} is not an address and port (127.0.0.1:9464, [::1]:9464)");
    let (ip, port) = s.rsplit_once(':').ok_or_else(bad)?;
    let ip: std::net::Ipv6Addr = ip.parse().map_err(|_| bad())?;
    let port: u16 = port.parse().map_err(|_| bad())?;
    Ok(std::net::SocketAddr::from((ip, port)))
}

fn parse_stack_size(s: &str) -> Result<u32, String> {
    match s.parse::<u32>() {
        Ok(k @ (4 | 8 | 16)) => Ok(k),
        _ => Err(format!("stack size must be 4, 8 or 16 (KiB), not {s}")),
    }
}

fn parse_ring_size(s: &str) -> Result<u32, String> {
    let v: u32 = s.parse().map_err(|_| format!("'{s}' is not a number of MiB"))?;
    if v == 0 || !v.is_power_of_two() || v > 1024 {
        return Err(format!(
            "ring buffer size must be a power of two between 1 and 1024 MiB, not {v}"
        ));
    }
    Ok(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("10s"), Ok(Duration::from_secs(10)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("1.5"), Ok(Duration::from_millis(1500)));
        assert!(parse_duration("soon").is_err());
        assert!(parse_duration("-1s").is_err());
    }

    #[test]
    fn watch_parses_interval_count_and_pids() {
        let cli = Cli::try_parse_from(["tracer", "watch", "-p", "1", "-p", "2", "5", "3", "--format", "json"]);
        match cli.map(|c| c.command) {
            Ok(Command::Watch(w)) => {
                assert_eq!(w.pids, vec![1, 2]);
                assert_eq!(w.interval, Duration::from_secs(5));
                assert_eq!(w.count, Some(3));
                assert_eq!(w.common.format, Format::Json);
            }
            other => panic!("unexpected {other:?}"),
        }
        assert!(Cli::try_parse_from(["tracer", "watch"]).is_err(), "a PID is required");
    }

    #[test]
    fn run_takes_the_command_verbatim() {
        let cli = Cli::try_parse_from(["tracer", "run", "--top", "3", "--", "ls", "-l", "--color"]);
        match cli.map(|c| c.command) {
            Ok(Command::Run(r)) => {
                assert_eq!(r.command, vec![OsString::from("ls"), "-l".into(), "--color".into()]);
                assert_eq!(r.common.top, Some(3));
                assert_eq!(r.common.capture.stack, StackArg::Dwarf);
            }
            other => panic!("unexpected {other:?}"),
        }
        assert!(Cli::try_parse_from(["tracer", "run", "--ring-buffer-size", "3", "--", "x"]).is_err());
    }

    #[test]
    fn agent_defaults_to_loopback_and_the_whole_host() {
        match Cli::try_parse_from(["tracer", "agent"]).map(|c| c.command) {
            Ok(Command::Agent(a)) => {
                assert_eq!(a.listen.to_string(), "127.0.0.1:9464");
                assert!(a.pids.is_empty() && a.comms.is_empty() && a.cgroups.is_empty());
                assert_eq!(a.window, Duration::from_secs(900));
            }
            other => panic!("unexpected {other:?}"),
        }
        let a = Cli::try_parse_from([
            "tracer", "agent", "--comm", "nginx", "--pid", "7", "--cgroup", "/x", "--listen", "[::1]:1", "--stack",
            "fp",
        ]);
        match a.map(|c| c.command) {
            Ok(Command::Agent(a)) => {
                assert_eq!((a.pids, a.comms.len(), a.cgroups.len()), (vec![7], 1, 1));
                assert_eq!(a.capture.stack, StackArg::Fp);
            }
            other => panic!("unexpected {other:?}"),
        }
        assert!(Cli::try_parse_from(["tracer", "agent", "--listen", "nowhere"]).is_err());
        assert_eq!(
            parse_listen("fd00::1:9464").map(|a| a.to_string()),
            Ok("[fd00::1]:9464".into())
        );
        assert_eq!(
            parse_listen("10.1.2.3:80").map(|a| a.to_string()),
            Ok("10.1.2.3:80".into())
        );
        assert!(parse_listen("fd00::1").is_err() && parse_listen("1.2.3.4:x").is_err());
    }

    #[test]
    fn agent_endpoints_and_web_config() {
        match Cli::try_parse_from(["tracer", "agent"]).map(|c| c.command) {
            Ok(Command::Agent(a)) => {
                assert_eq!(a.endpoints, crate::http::Endpoints::default());
                assert!(a.web_config.is_none());
            }
            other => panic!("unexpected {other:?}"),
        }
        let a = Cli::try_parse_from([
            "tracer",
            "agent",
            "--endpoints",
            "metrics",
            "--web-config",
            "/etc/w.yml",
        ]);
        match a.map(|c| c.command) {
            Ok(Command::Agent(a)) => {
                assert_eq!(a.endpoints.names(), "metrics");
                assert_eq!(a.web_config, Some(PathBuf::from("/etc/w.yml")));
            }
            other => panic!("unexpected {other:?}"),
        }
        assert!(Cli::try_parse_from(["tracer", "agent", "--endpoints", "metrics,heap"]).is_err());
    }
}

/// The columns of `tracer top`, in order; each can sort the table (`--sort`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Column {
    Pid,
    Comm,
    Fds,
    Pct,
    Growth,
    Emfile,
    Suspects,
    Zombies,
    Sysv,
    LockWaits,
    Problems,
    Kinds,
}
