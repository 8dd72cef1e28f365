//! `tracer watch` on a process that was already running: fds from before the attach are known
//! (no stack), the leak that continues after attach is a suspect with its stack, Ctrl-C prints
//! the final report, also right after the readiness line; losses are reported under their names.

use std::{
    io::{BufRead, BufReader, Read},
    os::fd::{FromRawFd, OwnedFd},
    process::{Command, Stdio},
};

use integration_tests::{
    Background, WATCH_READY, can_trace, fixture, open_fds, sites, stack_functions, tracer, tracer_bin, wait_until,
};

fn spawn_leaker(iterations: &str) -> std::process::Child {
    Command::new(fixture("leaky_error_path"))
        .args([iterations, "10"])
        .stdout(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("{e}"))
}

/// Kills a helper process when the test ends, passed or not.
struct Reap(std::process::Child);

impl Drop for Reap {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn watch_attaches_to_a_running_leaker_and_reports_each_interval() {
    if !can_trace("watch interval") {
        return;
    }
    let leaker = spawn_leaker("600");
    let pid = leaker.id();
    let _leaker = Reap(leaker);
    // Stdio and the log file, then at least 50 leaks before the attach.
    wait_until("50 fds leaked before the attach", || open_fds(pid) >= 54);
    let out = tracer(&["watch", "-p", &pid.to_string(), "--format", "json", "1", "2"]);
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
    let leaker = spawn_leaker("3000");
    let pid = leaker.id();
    let _leaker = Reap(leaker);
    let mut tracer = Background::tracer(&["watch", "-p", &pid.to_string(), "60"]);
    tracer.wait_for_stderr(WATCH_READY);
    // Leaks after the attach, for the final report to name.
    let at_ready = open_fds(pid);
    wait_until("10 leaks after the attach", || open_fds(pid) >= at_ready + 10);
    tracer.signal(libc::SIGINT);
    let out = tracer.finish();
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    assert!(text.contains("final report"), "{text}");
    assert!(text.contains("load_config"), "{text}");
}

/// `/proc/PID/status` says the process catches `signal`.
fn catches(pid: u32, signal: i32) -> bool {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("SigCgt:"))
        .and_then(|mask| u64::from_str_radix(mask.trim(), 16).ok())
        .is_some_and(|mask| mask & (1 << (signal - 1)) != 0)
}

/// `/proc/PID/syscall`: the process is blocked in write(2, ..).
fn blocked_writing_stderr(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/syscall")).is_ok_and(|s| s.starts_with("1 0x2 "))
}

#[test]
fn sigint_right_after_the_readiness_line_gives_the_final_report() {
    if !can_trace("sigint_right_after_the_readiness_line_gives_the_final_report") {
        return;
    }
    let quiet = Command::new("sleep")
        .arg("600")
        .spawn()
        .unwrap_or_else(|e| panic!("{e}"));
    let pid = quiet.id().to_string();
    let _quiet = Reap(quiet);
    // The tracer's stderr is a one-page pipe filled up to a few bytes: its first write, the
    // readiness line, blocks. Caught there, the tracer must already catch SIGINT.
    let mut fds = [0i32; 2];
    // SAFETY: pipe2 fills the two descriptors, owned right after.
    assert_eq!(unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) }, 0);
    // SAFETY: fresh descriptors nothing else owns.
    let (read_end, write_end) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
    use std::os::fd::AsRawFd;
    // SAFETY: fcntl on a pipe this test owns.
    let size = unsafe { libc::fcntl(write_end.as_raw_fd(), libc::F_SETPIPE_SZ, 4096) };
    assert!(size > 0, "F_SETPIPE_SZ: {}", std::io::Error::last_os_error());
    let fill = vec![b'\n'; size as usize - 8];
    // SAFETY: writes from a live buffer of that length; the pipe has room for all of it.
    let wrote = unsafe { libc::write(write_end.as_raw_fd(), fill.as_ptr().cast(), fill.len()) };
    assert_eq!(wrote, fill.len() as isize);
    let mut tracer = Command::new(tracer_bin())
        .args(["watch", "-p", &pid, "60"])
        .stdout(Stdio::piped())
        .stderr(Stdio::from(write_end))
        .spawn()
        .unwrap_or_else(|e| panic!("{e}"));
    let tracer_pid = tracer.id();
    let mut stdout = tracer.stdout.take().unwrap_or_else(|| panic!("no stdout"));
    let report = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = stdout.read_to_string(&mut s);
        s
    });
    wait_until("the tracer blocked writing its first stderr line", || {
        blocked_writing_stderr(tracer_pid)
    });
    let caught_at_the_line = catches(tracer_pid, libc::SIGINT);
    // Let the line through, and signal as soon as it is read.
    let mut lines = BufReader::new(std::fs::File::from(read_end)).lines();
    let ready = lines
        .by_ref()
        .map_while(Result::ok)
        .find(|l| !l.is_empty())
        .unwrap_or_default();
    // SAFETY: a signal to the tracer this test started.
    unsafe { libc::kill(tracer_pid as i32, libc::SIGINT) };
    let rest = std::thread::spawn(move || lines.map_while(Result::ok).collect::<Vec<String>>());
    let status = tracer.wait().unwrap_or_else(|e| panic!("{e}"));
    let rest = rest.join().unwrap_or_default();
    let text = report.join().unwrap_or_default();
    assert!(
        ready.starts_with(WATCH_READY),
        "the first line is the readiness line: {ready}"
    );
    assert!(
        caught_at_the_line,
        "SIGINT is not caught when the readiness line is written"
    );
    use std::os::unix::process::ExitStatusExt;
    assert_eq!(status.signal(), None, "the tracer died of the signal: {rest:?}");
    assert_eq!(status.code(), Some(0), "{rest:?}");
    assert!(text.contains("final report"), "{text}");
}

#[test]
fn losses_are_counted_and_reported_never_silent() {
    if !can_trace("losses") {
        return;
    }
    // 1 MiB of ring buffer holds ~60 records with 16 KiB stack copies; two threads opening as
    // fast as they can overflow it: every lost record must be counted and reported.
    let churn = fixture("churn").to_string_lossy().into_owned();
    let overload = ["--ring-buffer-size", "1", "--stack-size", "16", "--stats"];
    let t = integration_tests::run_traced(&overload, &[&churn, "open", "200000", "2"]);
    assert_eq!(t.code, 0, "{}", t.stderr);
    let losses = &t.report["losses"];
    let names = [
        "ring_buffer_full",
        "traced_map_full",
        "stack_not_captured",
        "undecodable",
        "map_update_failed",
    ];
    for name in names {
        assert!(losses[name].is_u64(), "losses.{name} missing: {losses:#}");
    }
    assert_eq!(losses.as_object().map(|o| o.len()), Some(names.len()), "{losses:#}");
    let ring = losses["ring_buffer_full"].as_u64().unwrap_or(0);
    assert!(ring > 0, "expected ring-buffer losses: {losses:#}");
    assert_eq!(
        t.report["lost_events"].as_u64(),
        Some(ring + losses["undecodable"].as_u64().unwrap_or(0)),
        "lost_events is the whole records lost: {losses:#}"
    );
    // Nothing else was lost on the way (one process, no fork; stacks copied, not looked up).
    for name in ["traced_map_full", "undecodable", "map_update_failed"] {
        assert_eq!(losses[name], 0, "{name}: {losses:#}");
    }
    // --stats names every counter too.
    let stats = t
        .stderr
        .lines()
        .find(|l| l.starts_with("tracer-stats:"))
        .unwrap_or_else(|| panic!("no stats line: {}", t.stderr));
    for name in names {
        let value = stats
            .split_whitespace()
            .find_map(|w| w.strip_prefix(name).and_then(|v| v.strip_prefix('=')))
            .and_then(|v| v.parse::<u64>().ok());
        assert!(value.is_some(), "--stats has no {name}: {stats}");
    }

    // The text report warns, with each cause by name.
    let out = tracer(&[
        "run",
        "--ring-buffer-size",
        "1",
        "--stack-size",
        "16",
        "--",
        &churn,
        "open",
        "200000",
        "2",
    ]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    let warning = text
        .lines()
        .find(|l| l.starts_with("WARNING: ") && l.contains(" events were lost; counts may be off"))
        .unwrap_or_else(|| panic!("no loss warning:\n{text}"));
    let lost: u64 = warning
        .trim_start_matches("WARNING: ")
        .split_whitespace()
        .next()
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
    assert!(lost > 0, "{warning}");
    let causes = text
        .lines()
        .find(|l| l.starts_with("WARNING: losses by cause: "))
        .unwrap_or_else(|| panic!("no losses by cause:\n{text}"));
    for name in names {
        assert!(causes.contains(&format!("{name}=")), "{causes}");
    }
    assert!(!causes.contains("ring_buffer_full=0 "), "{causes}");
}
