//! `cargo xtask`: installs what the build needs, builds, runs the demo and the tests.
//!
//! Runs on the machine's default (stable) toolchain and has no dependencies, so it works on a
//! fresh machine; everything else is built with the pinned toolchain below.

mod bench;
mod layers;
mod layout;

use std::{
    env,
    path::{Path, PathBuf},
    process::{Command, ExitCode},
};

/// The toolchain that builds the agent and the eBPF programs: its LLVM (22.1.8) must not be newer
/// than bpf-linker's (22). Pinned: never float to the latest.
const TOOLCHAIN: &str = "1.98.0";
const BPF_LINKER_VERSION: &str = "0.13.0";
const LLVM_PREFIX: &str = "/usr/lib/llvm-22";
const APT_PACKAGES: &[&str] = &[
    "llvm-22-dev",
    "libpolly-22-dev",
    "libzstd-dev",
    "zlib1g-dev",
    "gcc",
    "libc6-dev",
    // Tests: valgrind is the reference for stacks, binutils strips fixtures, libc6-dbg names
    // libc's frames, util-linux has setpriv and unshare.
    "valgrind",
    "binutils",
    "libc6-dbg",
    "util-linux",
    // Production-mode tests use the real things: a Prometheus server and promtool, go tool pprof,
    // systemd-analyze for the unit file.
    "prometheus",
    "golang-go",
    "systemd",
    // The web-config tests: certificates made at test time, curl as the HTTPS client
    // (htpasswd makes bcrypt hashes; it comes with apache2-utils below).
    "openssl",
    "curl",
    // The always-on tests check that a killed agent leaves no program or link behind.
    "bpftool",
    // The benchmark's real-server workload: nginx serving a file to ApacheBench (ab).
    "nginx-light",
    "apache2-utils",
    // People's views: the flame graph is rendered in headless Chromium, `tracer top` is driven
    // in a real terminal under tmux.
    "chromium",
    "tmux",
    // Python frames at allocation sites: Debian's CPython 3.11 runs the Python fixtures, its
    // headers check tracer's struct offsets.
    "python3.11",
    "python3.11-dev",
];

type Result<T = ()> = std::result::Result<T, String>;

fn main() -> ExitCode {
    let args: Vec<String> = env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("setup") => setup(),
        Some("build") => setup().and_then(|()| build()),
        Some("demo") => setup().and_then(|()| build()).and_then(|()| demo(&args[1..])),
        Some("test") => setup().and_then(|()| test(&args[1..])),
        Some("bench") => bench::Options::parse(&args[1..], &root()).and_then(|o| bench(&o)),
        Some("fixtures") => build_fixtures().map(|dir| println!("{}", dir.display())),
        Some("layout") => layout::check(&root()),
        _ => {
            eprintln!(
                "usage: cargo xtask <command>\n\n  setup     install missing toolchain pieces (apt packages, Rust {TOOLCHAIN}, bpf-linker)\n  build     build tracer (release) at target/release/tracer\n  demo      build and run `tracer run` on the bundled leaky demo program\n  test      layout, formatting, clippy, unit and integration tests (integration tests need\n            root), then the benchmark once in quick mode so it cannot rot\n  bench     overhead, ingest and memory against bpftrace, strace, valgrind; nginx throughput\n            under the agent; an agent soak; `tracer run`'s latency [--quick] [--runs N] [--out FILE] [--only WORKLOAD]\n            [--soak-seconds N]\n  fixtures  compile the C fixture programs\n  layout    no source file over 500 lines; tracer/src's rooms import downwards only\n            (the layers are listed in xtask/src/layers.rs)"
            );
            return ExitCode::from(2);
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("xtask: {e}");
            ExitCode::FAILURE
        }
    }
}

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("."))
}

fn run(cmd: &mut Command) -> Result {
    eprintln!("xtask: running {cmd:?}");
    let status = cmd
        .status()
        .map_err(|e| format!("cannot run {:?}: {e}", cmd.get_program()))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("{:?} failed with {status}", cmd.get_program()))
    }
}

fn succeeds(cmd: &mut Command) -> bool {
    cmd.output().is_ok_and(|o| o.status.success())
}

fn stdout_of(cmd: &mut Command) -> String {
    cmd.output()
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .unwrap_or_default()
}

/// Cargo with the pinned toolchain, in the workspace root.
fn cargo() -> Command {
    let mut c = Command::new("cargo");
    c.env("RUSTUP_TOOLCHAIN", TOOLCHAIN).current_dir(root());
    c
}

fn setup() -> Result {
    let missing: Vec<&str> = APT_PACKAGES
        .iter()
        .copied()
        .filter(|p| !succeeds(Command::new("dpkg").args(["-s", p])))
        .collect();
    if !missing.is_empty() {
        run(Command::new("apt-get")
            .arg("update")
            .env("DEBIAN_FRONTEND", "noninteractive"))?;
        run(Command::new("apt-get")
            .args(["install", "-y", "--no-install-recommends"])
            .args(&missing)
            .env("DEBIAN_FRONTEND", "noninteractive"))?;
        // Debian starts the Prometheus it installs, on every interface, where systemd runs:
        // the tests start their own on loopback instead.
        if missing.contains(&"prometheus") && Path::new("/run/systemd/system").is_dir() {
            let _ = Command::new("systemctl")
                .args(["disable", "--now", "prometheus"])
                .status();
        }
        // Likewise nginx, on port 80: the benchmark starts its own on a loopback port.
        if missing.contains(&"nginx-light") && Path::new("/run/systemd/system").is_dir() {
            let _ = Command::new("systemctl").args(["disable", "--now", "nginx"]).status();
        }
    }
    let toolchains = stdout_of(Command::new("rustup").args(["toolchain", "list"]));
    if !toolchains.lines().any(|l| l.starts_with(TOOLCHAIN)) {
        run(Command::new("rustup").args(["toolchain", "install", TOOLCHAIN, "--profile", "minimal"]))?;
    }
    let installed =
        stdout_of(Command::new("rustup").args(["component", "list", "--installed", "--toolchain", TOOLCHAIN]));
    let want = ["rust-src", "clippy", "rustfmt"];
    let lacking: Vec<&str> = want
        .iter()
        .copied()
        .filter(|c| !installed.lines().any(|l| l.starts_with(c)))
        .collect();
    if !lacking.is_empty() {
        run(Command::new("rustup")
            .args(["component", "add", "--toolchain", TOOLCHAIN])
            .args(&lacking))?;
    }
    let linker_ok = stdout_of(Command::new("bpf-linker").arg("--version")).contains(BPF_LINKER_VERSION);
    if !linker_ok {
        let path = format!("{LLVM_PREFIX}/bin:{}", env::var("PATH").unwrap_or_default());
        run(Command::new("cargo")
            .env("RUSTUP_TOOLCHAIN", TOOLCHAIN)
            .env("LLVM_PREFIX", LLVM_PREFIX)
            .env("PATH", path)
            .args(["install", "bpf-linker", "--locked", "--version", BPF_LINKER_VERSION])
            .args(["--no-default-features", "--features", "llvm-22"]))?;
    }
    mount_tracefs();
    Ok(())
}

/// Plain tracepoints need tracefs; a fresh machine may not have it mounted (the agent also tries).
fn mount_tracefs() {
    if Path::new("/sys/kernel/tracing/events").is_dir() {
        return;
    }
    let _ = Command::new("mount")
        .args(["-t", "tracefs", "nodev", "/sys/kernel/tracing"])
        .status();
}

fn build() -> Result {
    run(cargo().args(["build", "--release", "-p", "tracer"]))
}

/// Compiles the C fixtures into target/fixtures (frame pointers on; see tests/fixtures/README.md).
fn build_fixtures() -> Result<PathBuf> {
    let src = root().join("tests/fixtures");
    let out = root().join("target/fixtures");
    std::fs::create_dir_all(&out).map_err(|e| format!("creating {}: {e}", out.display()))?;
    let entries = std::fs::read_dir(&src).map_err(|e| format!("reading {}: {e}", src.display()))?;
    for e in entries.flatten() {
        let path = e.path();
        if path.extension().is_some_and(|x| x == "c") {
            let stem = path
                .file_stem()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_default();
            run(Command::new("cc")
                .args(["-O0", "-g", "-fno-omit-frame-pointer", "-pthread", "-o"])
                .arg(out.join(&stem))
                .arg(&path))?;
        }
    }
    Ok(out)
}

fn demo(extra: &[String]) -> Result {
    let fixtures = build_fixtures()?;
    let tracer = root().join("target/release/tracer");
    run(Command::new(tracer)
        .arg("run")
        .args(extra)
        .arg("--")
        .arg(fixtures.join("demo_leaky_server")))
}

fn bench(o: &bench::Options) -> Result {
    setup()?;
    if !o.quick {
        // The tools compared against (quick mode uses whichever are present).
        let missing: Vec<&str> = ["bpftrace", "strace", "valgrind"]
            .into_iter()
            .filter(|p| !succeeds(Command::new("dpkg").args(["-s", p])))
            .collect();
        if !missing.is_empty() {
            run(Command::new("apt-get")
                .args(["install", "-y", "--no-install-recommends"])
                .args(&missing))?;
        }
    }
    build()?;
    let fixtures = build_fixtures()?;
    bench::run(root().join("target/release/tracer"), fixtures.join("churn"), o)
}

fn test(extra: &[String]) -> Result {
    layout::check(&root())?;
    build_fixtures()?;
    run(cargo().args(["fmt", "--all", "--check"]))?;
    run(cargo().args(["clippy", "--workspace", "--all-targets", "--", "-D", "warnings"]))?;
    // The integration tests run the binary, which `cargo test` of another package does not build.
    run(cargo().args(["build", "--release", "-p", "tracer", "--bins"]))?;
    // One test thread: integration tests share kernel state (attached programs, the PID space).
    // --all-targets leaves out doc-tests (there are none) so the last result line is a real one.
    let mut cmd = cargo();
    // --no-fail-fast: one run names every failing test, not only the first binary's.
    cmd.args(["test", "--workspace", "--release", "--all-targets", "--no-fail-fast"])
        .args(extra)
        .args(["--", "--test-threads=1"]);
    let totals = run_counting(&mut cmd)?;
    // The benchmark's figures never decide pass or fail, but a broken harness does.
    let quick = bench::Options {
        quick: true,
        only: None,
        runs: 1,
        out: root().join("target/bench/quick.json"),
        soak_seconds: None,
        baseline: None,
    };
    bench::run(
        root().join("target/release/tracer"),
        root().join("target/fixtures/churn"),
        &quick,
    )
    .map_err(|e| format!("the benchmark harness is broken (quick mode): {e}"))?;
    // The totals close the output, after the benchmark's table.
    println!("{totals}");
    Ok(())
}

/// Runs cargo test, echoing its output; returns the totals line over every test binary.
fn run_counting(cmd: &mut Command) -> Result<String> {
    use std::io::{BufRead, BufReader};
    eprintln!("xtask: running {cmd:?}");
    let mut child = cmd
        .stdout(std::process::Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot run {:?}: {e}", cmd.get_program()))?;
    let (mut passed, mut failed, mut ignored) = (0u64, 0u64, 0u64);
    if let Some(out) = child.stdout.take() {
        for line in BufReader::new(out).lines().map_while(std::result::Result::ok) {
            println!("{line}");
            if let Some(rest) = line.strip_prefix("test result: ") {
                for part in rest.split(';') {
                    let words: Vec<&str> = part.split_whitespace().collect();
                    let count = |w: &str| {
                        let i = words.iter().position(|x| *x == w)?;
                        words.get(i.checked_sub(1)?)?.parse::<u64>().ok()
                    };
                    passed += count("passed").unwrap_or(0);
                    failed += count("failed").unwrap_or(0);
                    ignored += count("ignored").unwrap_or(0);
                }
            }
        }
    }
    let status = child.wait().map_err(|e| format!("waiting for cargo test: {e}"))?;
    let totals = format!("tests: {passed} passed, {failed} failed, {ignored} skipped");
    println!("{totals}");
    if status.success() {
        Ok(totals)
    } else {
        Err(format!("cargo test failed with {status}; {totals}"))
    }
}
