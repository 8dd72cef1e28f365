//! Shared helpers for the integration tests: privileges, fixtures, running the tracer binary.
//!
//! Without root (or a tool a test needs) the tests skip with a printed reason; with `CI=true` a
//! skip is a failure. Tests that trace run one at a time whatever `--test-threads` says (they
//! share kernel state: attached programs, the PID space), and fixtures are compiled under a
//! lock into a temporary file renamed into place, so plain `cargo test` behaves like
//! `cargo xtask test`.

pub mod agent;
mod fixtures;
pub mod tls;

use fixtures::run_tool;
pub use fixtures::{Build, fixture, fixture_built, rust_fixture};

use std::{
    cell::RefCell,
    io::{BufRead, BufReader, Read},
    path::{Path, PathBuf},
    process::{Child, Command, Output, Stdio},
    sync::{Mutex, MutexGuard, Once, mpsc},
    time::{Duration, Instant},
};

pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_default()
}

/// Under `CI=true` (or 1) nothing may be skipped.
pub fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true" || v == "1")
}

/// A test cannot run here: prints why and returns false; under CI, fails instead.
pub fn skip(test: &str, why: &str) -> bool {
    let why = format!("{test}: skipped: {why}");
    if in_ci() {
        panic!("{why} (CI=true: a skip is a failure; `cargo xtask setup` installs what tests need)");
    }
    eprintln!("{why}");
    false
}

/// True when `tool --version` runs; otherwise skips (fails under CI).
pub fn have_tool(test: &str, tool: &str) -> bool {
    let runs = Command::new(tool)
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok();
    runs || skip(test, &format!("{tool} is not installed"))
}

/// Tests that trace run one at a time: the lock is taken by `can_trace` and held by the test's
/// thread until it ends (libtest runs each test on a thread of its own).
static TRACING: Mutex<()> = Mutex::new(());

thread_local! {
    static HELD: RefCell<Option<MutexGuard<'static, ()>>> = const { RefCell::new(None) };
}

fn serialize_tracing_tests() {
    HELD.with(|held| {
        let mut held = held.borrow_mut();
        if held.is_none() {
            // A test that panicked released it: nothing it guards is left inconsistent.
            *held = Some(TRACING.lock().unwrap_or_else(std::sync::PoisonError::into_inner));
        }
    });
}

/// True when the test may run; false (after printing why) when it must skip. Panics under CI.
/// Also makes the calling test the only one tracing until it ends.
pub fn can_trace(test: &str) -> bool {
    // SAFETY: geteuid has no preconditions.
    let root = unsafe { libc::geteuid() } == 0;
    if !root {
        return skip(test, "needs root to load eBPF programs");
    }
    serialize_tracing_tests();
    true
}

static BUILD_TRACER: Once = Once::new();

/// Path of the tracer binary, built (once per test process) from the sources being tested.
pub fn tracer_bin() -> PathBuf {
    // Integration tests live in another package, so CARGO_BIN_EXE_tracer is not set and cargo
    // does not build the binary for them: find it next to this test executable
    // (target/<profile>/deps/..) and have cargo bring it up to date, so that plain `cargo test`
    // never runs a stale or missing binary (a no-op after `cargo xtask test` built it).
    let exe = std::env::current_exe().unwrap_or_default();
    let profile_dir = exe
        .parent()
        .and_then(Path::parent)
        .map(Path::to_path_buf)
        .unwrap_or_default();
    let bin = profile_dir.join("tracer");
    BUILD_TRACER.call_once(|| {
        let profile = profile_dir
            .file_name()
            .map(|p| p.to_string_lossy().into_owned())
            .unwrap_or_default();
        let profile = if profile == "debug" { "dev".to_owned() } else { profile };
        let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
        let mut cmd = Command::new(cargo);
        cmd.current_dir(workspace_root())
            .args(["build", "--quiet", "-p", "tracer", "--bins", "--profile", &profile]);
        // What cargo set for this test binary is not the environment of a build: build scripts
        // that declare `rerun-if-env-changed` on such names (ring's, on CARGO_MANIFEST_DIR and
        // CARGO_PKG_*) would otherwise be rerun here, and again at the next plain build.
        for (name, _) in std::env::vars_os() {
            let n = name.to_string_lossy();
            let set_by_cargo = n.starts_with("CARGO_PKG_")
                || matches!(
                    n.as_ref(),
                    "CARGO_MANIFEST_DIR"
                        | "CARGO_MANIFEST_PATH"
                        | "CARGO_MANIFEST_LINKS"
                        | "CARGO_CRATE_NAME"
                        | "CARGO_PRIMARY_PACKAGE"
                        | "CARGO_TARGET_TMPDIR"
                        | "OUT_DIR"
                );
            if set_by_cargo {
                cmd.env_remove(&name);
            }
        }
        if let Some(target) = profile_dir.parent() {
            cmd.arg("--target-dir").arg(target);
        }
        run_tool(&mut cmd);
    });
    assert!(bin.exists(), "tracer binary not found at {}", bin.display());
    bin
}

/// Runs `tracer ARGS`, returning its output.
pub fn tracer(args: &[&str]) -> Output {
    Command::new(tracer_bin())
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("cannot run tracer: {e}"))
}

/// Runs `tracer run --format json ARGS -- CMD`, returning (report, exit code, stderr).
pub fn run_json(extra: &[&str], cmd: &[&str]) -> (serde_json::Value, i32, String) {
    let r = run_traced(extra, cmd);
    (r.report, r.code, r.stderr)
}

/// What `tracer run --format json` produced, with the command's own output.
pub struct Traced {
    pub report: serde_json::Value,
    pub code: i32,
    /// The traced command's standard output (the report goes to a file).
    pub stdout: String,
    pub stderr: String,
}

/// Runs `tracer run --format json ARGS -- CMD`, keeping the command's standard output.
pub fn run_traced(extra: &[&str], cmd: &[&str]) -> Traced {
    let dir = std::env::temp_dir().join(format!("tracer-test-{}-{}", std::process::id(), unique()));
    let _ = std::fs::create_dir_all(&dir);
    let out_file = dir.join("report.json");
    let out_path = out_file.to_string_lossy().into_owned();
    let mut args = vec!["run", "--format", "json", "-o", &out_path];
    args.extend_from_slice(extra);
    args.push("--");
    args.extend_from_slice(cmd);
    let out = tracer(&args);
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    let text = std::fs::read_to_string(&out_file)
        .unwrap_or_else(|e| panic!("no report written ({e}); tracer stderr:\n{stderr}"));
    let report = serde_json::from_str(&text).unwrap_or_else(|e| panic!("report is not JSON ({e}):\n{text}"));
    let _ = std::fs::remove_dir_all(&dir);
    Traced {
        report,
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr,
    }
}

pub(crate) fn unique() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    N.fetch_add(1, Ordering::Relaxed)
}

/// Function names of a site's stack, innermost first.
pub fn stack_functions(site: &serde_json::Value) -> Vec<String> {
    site["stack"]
        .as_array()
        .map(|frames| {
            frames
                .iter()
                .filter_map(|f| f["function"].as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

/// Sites of a report list (`suspects` or `outstanding`).
pub fn sites<'a>(report: &'a serde_json::Value, list: &str) -> Vec<&'a serde_json::Value> {
    report[list].as_array().map(|v| v.iter().collect()).unwrap_or_default()
}

/// How long a test waits for something a process must do before it gives up.
pub const PATIENCE: Duration = Duration::from_secs(60);

/// Polls `ok` until it holds; panics naming `what` after [`PATIENCE`]. Synchronises on a
/// condition the test can observe, never on a guess of how long something takes.
pub fn wait_until(what: &str, mut ok: impl FnMut() -> bool) {
    let deadline = Instant::now() + PATIENCE;
    while !ok() {
        assert!(Instant::now() < deadline, "gave up waiting: {what}");
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Descriptors `pid` has open now (0 if it is gone).
pub fn open_fds(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd")).map_or(0, |d| d.count())
}

/// The line `tracer watch` prints on stderr once it traces and handles Ctrl-C.
pub const WATCH_READY: &str = "tracer: tracing PID";

/// A tracer running in the background, its output read as it comes (so a full pipe never
/// blocks it), to wait for a line it prints.
pub struct Background {
    child: Child,
    stderr_lines: mpsc::Receiver<String>,
    stderr_seen: Vec<String>,
    stderr_reader: Option<std::thread::JoinHandle<()>>,
    stdout_reader: Option<std::thread::JoinHandle<Vec<u8>>>,
}

/// What a background tracer left when it ended.
pub struct Ended {
    /// The exit code; None when a signal killed it (see `signal`).
    pub code: Option<i32>,
    pub signal: Option<i32>,
    pub stdout: Vec<u8>,
    pub stderr: String,
}

impl Background {
    /// Starts `tracer ARGS`.
    pub fn tracer(args: &[&str]) -> Background {
        let mut child = Command::new(tracer_bin())
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run tracer: {e}"));
        let mut stdout = child.stdout.take().unwrap_or_else(|| panic!("no stdout"));
        let stderr = child.stderr.take().unwrap_or_else(|| panic!("no stderr"));
        let (tx, stderr_lines) = mpsc::channel();
        let stderr_reader = std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        let stdout_reader = std::thread::spawn(move || {
            let mut out = Vec::new();
            let _ = stdout.read_to_end(&mut out);
            out
        });
        Background {
            child,
            stderr_lines,
            stderr_seen: Vec::new(),
            stderr_reader: Some(stderr_reader),
            stdout_reader: Some(stdout_reader),
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Waits for a stderr line starting with `prefix` and returns it; panics with everything
    /// seen if the tracer ends or [`PATIENCE`] runs out first.
    pub fn wait_for_stderr(&mut self, prefix: &str) -> String {
        let deadline = Instant::now() + PATIENCE;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.stderr_lines.recv_timeout(left) {
                Ok(line) => {
                    self.stderr_seen.push(line.clone());
                    if line.starts_with(prefix) {
                        return line;
                    }
                }
                Err(e) => panic!(
                    "no stderr line starting with {prefix:?} ({e:?}); seen:\n{}",
                    self.stderr_seen.join("\n")
                ),
            }
        }
    }

    /// Sends `signal` to the tracer.
    pub fn signal(&self, signal: i32) {
        // SAFETY: a plain signal to a child process this test started (not yet reaped).
        let r = unsafe { libc::kill(self.child.id() as i32, signal) };
        assert_eq!(r, 0, "kill: {}", std::io::Error::last_os_error());
    }

    /// Waits for the tracer to end.
    pub fn finish(mut self) -> Ended {
        use std::os::unix::process::ExitStatusExt;
        let status = self.child.wait().unwrap_or_else(|e| panic!("waiting for tracer: {e}"));
        if let Some(t) = self.stderr_reader.take() {
            let _ = t.join();
        }
        self.stderr_seen.extend(self.stderr_lines.try_iter());
        let stdout = self
            .stdout_reader
            .take()
            .and_then(|t| t.join().ok())
            .unwrap_or_default();
        Ended {
            code: status.code(),
            signal: status.signal(),
            stdout,
            stderr: self.stderr_seen.join("\n"),
        }
    }
}

impl Drop for Background {
    fn drop(&mut self) {
        // A test that failed half-way leaves no tracer attached.
        if self.stdout_reader.is_some() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}
