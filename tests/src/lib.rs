//! Shared helpers for the integration tests: privileges, fixtures, running the tracer binary.
//!
//! Without root the tests skip with a printed reason; with `CI=true` a skip is a failure.

pub mod agent;

use std::{
    path::{Path, PathBuf},
    process::{Command, Output},
    sync::Once,
};

pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_default()
}

/// True when the test may run; false (after printing why) when it must skip. Panics under CI.
pub fn can_trace(test: &str) -> bool {
    // SAFETY: geteuid has no preconditions.
    let root = unsafe { libc::geteuid() } == 0;
    if root {
        return true;
    }
    let why = format!("{test}: skipped: needs root to load eBPF programs");
    if std::env::var("CI").is_ok_and(|v| v == "true" || v == "1") {
        panic!("{why} (CI=true: a skip is a failure)");
    }
    eprintln!("{why}");
    false
}

static BUILD_FIXTURES: Once = Once::new();

/// How a fixture is compiled.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Build {
    /// `-O0 -g -fno-omit-frame-pointer`: frame pointers everywhere but libc.
    FramePointers,
    /// Plain `-O2 -g`, the way distro code is built: no frame pointers.
    Optimized,
    /// `Optimized`, then stripped, with its debug info in a `.gnu_debuglink` file beside it.
    StrippedWithDebuglink,
}

/// Path of a compiled fixture from `tests/fixtures/NAME.c` (compiled on first use).
pub fn fixture(name: &str) -> PathBuf {
    fixture_built(name, Build::FramePointers)
}

fn run_tool(cmd: &mut Command) {
    let status = cmd.status().unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    assert!(status.success(), "{cmd:?} failed");
}

/// Path of a fixture compiled the given way.
pub fn fixture_built(name: &str, build: Build) -> PathBuf {
    let out = workspace_root().join("target/fixtures");
    BUILD_FIXTURES.call_once(|| {
        let _ = std::fs::create_dir_all(&out);
    });
    let suffix = match build {
        Build::FramePointers => "",
        Build::Optimized => ".O2",
        Build::StrippedWithDebuglink => ".stripped",
    };
    let bin = out.join(format!("{name}{suffix}"));
    let src = workspace_root().join("tests/fixtures").join(format!("{name}.c"));
    let fresh = match (
        bin.metadata().and_then(|m| m.modified()),
        src.metadata().and_then(|m| m.modified()),
    ) {
        (Ok(b), Ok(s)) => b >= s,
        _ => false,
    };
    if fresh {
        return bin;
    }
    let flags: &[&str] = match build {
        Build::FramePointers => &["-O0", "-g", "-fno-omit-frame-pointer"],
        Build::Optimized | Build::StrippedWithDebuglink => &["-O2", "-g"],
    };
    run_tool(
        Command::new("cc")
            .args(flags)
            .args(["-pthread", "-o"])
            .arg(&bin)
            .arg(&src),
    );
    if build == Build::StrippedWithDebuglink {
        let debug = out.join(format!("{name}{suffix}.debug"));
        run_tool(Command::new("objcopy").arg("--only-keep-debug").arg(&bin).arg(&debug));
        run_tool(
            Command::new("strip")
                .args(["--strip-debug", "--strip-unneeded"])
                .arg(&bin),
        );
        run_tool(
            Command::new("objcopy")
                .arg(format!("--add-gnu-debuglink={}", debug.display()))
                .arg(&bin),
        );
    }
    bin
}

/// Path of the tracer binary built with this test run.
pub fn tracer_bin() -> PathBuf {
    // Integration tests live in another package, so CARGO_BIN_EXE_tracer is not set: find it next
    // to this test executable (target/<profile>/deps/..).
    let exe = std::env::current_exe().unwrap_or_default();
    let profile_dir = exe
        .parent()
        .and_then(Path::parent)
        .map(Path::to_path_buf)
        .unwrap_or_default();
    let bin = profile_dir.join("tracer");
    assert!(
        bin.exists(),
        "tracer binary not found at {}: build it first (cargo xtask test does)",
        bin.display()
    );
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

fn unique() -> u64 {
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

/// Path of a Rust fixture `tests/fixtures/NAME.rs`, built as a release binary with debug info
/// (`-C opt-level=2 -g`: no frame pointers), with the toolchain running the tests.
pub fn rust_fixture(name: &str) -> PathBuf {
    let out = workspace_root().join("target/fixtures");
    let _ = std::fs::create_dir_all(&out);
    let bin = out.join(name);
    let src = workspace_root().join("tests/fixtures").join(format!("{name}.rs"));
    run_tool(
        Command::new("rustc")
            .args(["-C", "opt-level=2", "-g", "--edition", "2021", "-o"])
            .arg(&bin)
            .arg(&src),
    );
    bin
}
