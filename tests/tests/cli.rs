//! Bad input gets a clear message and a non-zero exit, never a panic; hostile names survive every
//! output format.

use std::process::{Command, Stdio};

use integration_tests::{
    Background, WATCH_READY, can_trace, fixture, have_tool, run_json, sites, stack_functions, tracer, tracer_bin,
};

fn no_panic(stderr: &str) {
    assert!(!stderr.contains("panicked"), "tracer panicked:\n{stderr}");
}

#[test]
fn unknown_pid_is_a_clear_error() {
    if !can_trace("unknown pid") {
        return;
    }
    let out = tracer(&["watch", "-p", "999999999", "1"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_ne!(out.status.code(), Some(0));
    assert!(stderr.contains("PID 999999999 does not exist"), "{stderr}");
    no_panic(&stderr);
}

#[test]
fn command_not_found_exits_127() {
    if !can_trace("cmd not found") {
        return;
    }
    let out = tracer(&["run", "--", "/nonexistent/definitely-not-here"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(127), "{stderr}");
    assert!(stderr.contains("command not found"), "{stderr}");
    no_panic(&stderr);
}

#[test]
fn run_returns_the_commands_exit_code() {
    if !can_trace("exit code") {
        return;
    }
    let (report, code, _) = run_json(&[], &["sh", "-c", "exit 7"]);
    assert_eq!(code, 7);
    assert!(report["processes"].as_array().is_some_and(|p| !p.is_empty()));
}

#[test]
fn watch_reports_a_process_that_exits_mid_trace() {
    if !can_trace("watch exit") {
        return;
    }
    // The victim lives until the tracer is ready, then exits: its stdin closes.
    let mut victim = Command::new("cat")
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("{e}"));
    let pid = victim.id().to_string();
    let mut watching = Background::tracer(&["watch", "-p", &pid, "--format", "json", "30"]);
    watching.wait_for_stderr(WATCH_READY);
    drop(victim.stdin.take());
    let _ = victim.wait();
    let out = watching.finish();
    let stderr = out.stderr;
    no_panic(&stderr);
    assert_eq!(out.code, Some(1), "{stderr}");
    assert!(stderr.contains(&format!("PID {pid} exited")), "{stderr}");
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {stderr}"));
    assert!(
        report["processes"]
            .as_array()
            .is_some_and(|p| p.iter().any(|p| p["exited"] == true))
    );
}

#[test]
fn without_privileges_the_error_says_what_to_do() {
    // Runs as an unprivileged user through setpriv (util-linux); skipped where it is missing.
    if !can_trace("no privileges") || !have_tool("no privileges", "setpriv") {
        return;
    }
    let out = Command::new("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups", "--inh-caps=-all"])
        .arg(tracer_bin())
        .args(["run", "--", "true"])
        .output()
        .unwrap_or_else(|e| panic!("{e}"));
    let stderr = String::from_utf8_lossy(&out.stderr);
    no_panic(&stderr);
    assert_ne!(out.status.code(), Some(0));
    assert!(stderr.contains("run as root"), "{stderr}");
}

#[test]
fn hostile_file_names_survive_text_and_json() {
    if !can_trace("odd names") {
        return;
    }
    let dir = std::env::temp_dir().join(format!("tracer-odd-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("{e}"));
    let bin = fixture("odd_names").to_string_lossy().into_owned();
    let d = dir.to_string_lossy().into_owned();
    let (report, code, _) = run_json(&[], &[&bin, &d]);
    assert_eq!(code, 0);
    let examples: Vec<String> = sites(&report, "outstanding")
        .iter()
        .filter_map(|s| s["example"].as_str().map(str::to_owned))
        .collect();
    assert!(examples.iter().any(|e| e.ends_with("new\nline")), "{examples:?}");
    assert!(examples.iter().any(|e| e.contains("\u{1b}[31mred")), "{examples:?}");
    let bad = sites(&report, "outstanding")
        .into_iter()
        .find(|s| s["example_hex"].is_string())
        .cloned();
    let bad = bad.unwrap_or_else(|| panic!("non-UTF-8 name has no lossless hex:\n{report:#}"));
    // "bad" then 0xff 0xfe, byte for byte.
    assert!(
        bad["example_hex"].as_str().is_some_and(|h| h.contains("626164fffe")),
        "{bad}"
    );

    let out = tracer(&["run", "--", &bin, &d]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("new\\nline"), "{text}");
    assert!(text.contains("\\x1b[31mred"), "{text}");
    assert!(text.contains("bad\\xff\\xfe"), "{text}");
    assert!(text.contains("back\\\\slash"), "{text}");
    assert!(!text.contains('\u{1b}'), "a raw escape sequence reached the terminal");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn missing_tracefs_is_mounted() {
    // In a private mount namespace (the host's mounts are untouched): unmount tracefs, run.
    if !can_trace("tracefs") || !have_tool("tracefs", "unshare") {
        return;
    }
    let script = format!(
        "umount /sys/kernel/tracing 2>/dev/null; umount /sys/kernel/debug/tracing 2>/dev/null; \
         test -d /sys/kernel/tracing/events && {{ echo still mounted; exit 9; }}; \
         {} run --format json -- true && test -d /sys/kernel/tracing/events",
        tracer_bin().display()
    );
    let out = Command::new("unshare")
        .args(["-m", "sh", "-c", &script])
        .output()
        .unwrap_or_else(|e| panic!("{e}"));
    let stderr = String::from_utf8_lossy(&out.stderr);
    no_panic(&stderr);
    assert!(out.status.success(), "{stderr}{}", String::from_utf8_lossy(&out.stdout));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {stderr}"));
    assert!(report["processes"].is_array());
}

/// `--kernel-stack` needs kprobes: where the kernel has them the leak's stack starts with kernel
/// frames; where it has not (our CI kernels), tracer refuses at start-up and says why.
#[test]
fn kernel_stack_is_given_or_refused_clearly() {
    if !can_trace("kernel_stack_is_given_or_refused_clearly") {
        return;
    }
    let kprobes = std::path::Path::new("/sys/bus/event_source/devices/kprobe").exists();
    let bin = fixture("leaky_error_path").to_string_lossy().into_owned();
    let out = tracer(&["run", "--kernel-stack", "--format", "json", "--", &bin, "60", "5"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    no_panic(&stderr);
    if kprobes {
        assert_eq!(out.status.code(), Some(0), "{stderr}");
        let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {stderr}"));
        let leak = report["suspects"][0].clone();
        assert_eq!(leak["stack"][0]["module"], "[kernel]", "{leak:#}");
        assert!(stack_functions(&leak).iter().any(|f| f == "load_config"), "{leak:#}");
    } else {
        assert_ne!(out.status.code(), Some(0));
        assert!(
            stderr.contains("--kernel-stack needs kprobes") && stderr.contains("run without --kernel-stack"),
            "a clear refusal: {stderr}"
        );
        assert!(
            out.stdout.is_empty(),
            "the command is not run without the probes it asked for"
        );
    }
}
