//! `tracer watch` on a process that was already running: fds from before the attach are known
//! (no stack), the leak that continues after attach is a suspect with its stack, Ctrl-C prints
//! the final report.

use std::{
    process::{Command, Stdio},
    thread::sleep,
    time::Duration,
};

use integration_tests::{can_trace, fixture, sites, stack_functions, tracer_bin};

fn spawn_leaker(iterations: &str) -> std::process::Child {
    Command::new(fixture("leaky_error_path"))
        .args([iterations, "10"])
        .stdout(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("{e}"))
}

#[test]
fn watch_attaches_to_a_running_leaker_and_reports_each_interval() {
    if !can_trace("watch interval") {
        return;
    }
    let mut leaker = spawn_leaker("600");
    sleep(Duration::from_millis(500)); // ~50 fds leaked before the attach
    let pid = leaker.id().to_string();
    let out = Command::new(tracer_bin())
        .args(["watch", "-p", &pid, "--format", "json", "1", "2"])
        .output()
        .unwrap_or_else(|e| panic!("{e}"));
    let _ = leaker.kill();
    let _ = leaker.wait();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    let docs: Vec<serde_json::Value> = serde_json::Deserializer::from_slice(&out.stdout)
        .into_iter::<serde_json::Value>()
        .collect::<Result<_, _>>()
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(docs.len(), 2, "one report per interval, COUNT of them");
    let last = &docs[1];
    let leak = sites(last, "suspects")
        .into_iter()
        .find(|s| stack_functions(s).iter().any(|f| f == "load_config"))
        .cloned();
    let leak = leak.unwrap_or_else(|| panic!("no suspect names load_config:\n{last:#}"));
    assert!(leak["count"].as_u64().is_some_and(|c| c >= 100), "{leak}");
    assert!(
        leak["time_to_limit_s"].as_f64().is_some_and(|t| t > 0.0),
        "a live leaker has a time to EMFILE: {leak}"
    );
    let before = sites(last, "outstanding")
        .into_iter()
        .find(|s| s["before_attach"] == true && s["kind"] == "file" && s["count"].as_u64().is_some_and(|c| c >= 20))
        .cloned();
    assert!(
        before.is_some(),
        "fds leaked before the attach are reported without a stack:\n{last:#}"
    );
    assert!(sites(last, "suspects").iter().all(|s| s["before_attach"] == false));
}

#[test]
fn ctrl_c_prints_the_final_report() {
    if !can_trace("watch ctrl-c") {
        return;
    }
    let mut leaker = spawn_leaker("1000");
    let pid = leaker.id().to_string();
    let tracer = Command::new(tracer_bin())
        .args(["watch", "-p", &pid, "60"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("{e}"));
    sleep(Duration::from_millis(2000));
    // SAFETY: sending SIGINT to our own child process.
    unsafe { libc::kill(tracer.id() as i32, libc::SIGINT) };
    let out = tracer.wait_with_output().unwrap_or_else(|e| panic!("{e}"));
    let _ = leaker.kill();
    let _ = leaker.wait();
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(text.contains("final report"), "{text}");
    assert!(text.contains("load_config"), "{text}");
}

#[test]
fn losses_are_counted_and_reported_never_silent() {
    if !can_trace("losses") {
        return;
    }
    // 1 MiB of ring buffer holds ~60 records with 16 KiB stack copies; two threads opening as
    // fast as they can overflow it: every lost record must be counted and reported.
    let churn = fixture("churn").to_string_lossy().into_owned();
    let (report, code, stderr) = integration_tests::run_json(
        &["--ring-buffer-size", "1", "--stack-size", "16"],
        &[&churn, "open", "200000", "2"],
    );
    assert_eq!(code, 0, "{stderr}");
    assert!(
        report["lost_events"].as_u64().is_some_and(|l| l > 0),
        "expected losses: {report:#}"
    );
}
