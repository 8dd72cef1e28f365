//! The IPC incidents of issue 11, each against a fixture built like distro code (plain `-O2 -g`,
//! no frame pointers) and its well-behaved twin: growth stopped by a limit (EMFILE), zombie
//! piles with merged SIGCHLDs, eventfd overflow, pipe and AF_UNIX send-buffer stalls. Stacks must
//! name the fixture's function at its marked line; twins must be silent, and each twin test
//! checks what the tracer saw of it, so that a tracer that saw nothing cannot pass.

use std::{
    io::{BufRead, BufReader},
    process::{Command, Stdio},
    time::Duration,
};

use integration_tests::{
    Build, Traced,
    agent::{AgentProcess, promtool_check, wait_for},
    can_trace, fixture_built, run_traced, workspace_root,
};
use serde_json::Value;

fn fixture(name: &str) -> String {
    fixture_built(name, Build::Optimized).to_string_lossy().into_owned()
}

fn list<'a>(report: &'a Value, key: &str) -> Vec<&'a Value> {
    report[key].as_array().map(|v| v.iter().collect()).unwrap_or_default()
}

/// Line of the `TAG` comment in `tests/fixtures/NAME.c`.
fn marked_line(name: &str, tag: &str) -> u64 {
    let path = workspace_root().join("tests/fixtures").join(format!("{name}.c"));
    let src = std::fs::read_to_string(&path).unwrap_or_default();
    src.lines()
        .position(|l| l.contains(tag))
        .map(|i| i as u64 + 1)
        .unwrap_or_else(|| panic!("no {tag} in {}", path.display()))
}

/// (function, file, line) of each frame of `v["stack"]`.
fn frames(v: &Value) -> Vec<(String, String, u64)> {
    v["stack"]
        .as_array()
        .map(|fs| {
            fs.iter()
                .map(|f| {
                    (
                        f["function"].as_str().unwrap_or("").to_owned(),
                        f["file"].as_str().unwrap_or("").to_owned(),
                        f["line"].as_u64().unwrap_or(0),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

/// The stack has `function` in `NAME.c` at the line marked `tag`, called by `caller`.
fn names_line(v: &Value, name: &str, function: &str, tag: &str, caller: Option<&str>) {
    let fs = frames(v);
    let at = fs
        .iter()
        .position(|f| f.0 == function)
        .unwrap_or_else(|| panic!("no {function} in the stack: {fs:#?}"));
    let (_, file, line) = &fs[at];
    assert!(file.ends_with(&format!("{name}.c")), "{file}: {fs:#?}");
    assert_eq!(*line, marked_line(name, tag), "{function}'s line: {fs:#?}");
    if let Some(c) = caller {
        assert!(
            fs[at + 1..].iter().any(|f| f.0 == c),
            "{function} called by {c}: {fs:#?}"
        );
    }
}

/// The report's summary of the traced command (the lowest pid: the command itself).
fn command_pid(report: &Value) -> u64 {
    list(report, "processes")
        .iter()
        .filter_map(|p| p["pid"].as_u64())
        .min()
        .unwrap_or_else(|| panic!("no process in the report:\n{report:#}"))
}

fn run(name: &str, args: &[&str]) -> Traced {
    let bin = fixture(name);
    let mut cmd = vec![bin.as_str()];
    cmd.extend_from_slice(args);
    let t = run_traced(&[], &cmd);
    assert_eq!(t.code, 0, "{name} {args:?} failed; stderr: {}", t.stderr);
    t
}

#[test]
fn a_leak_stopped_by_emfile_is_a_suspect_and_the_emfile_names_it() {
    if !can_trace("a_leak_stopped_by_emfile_is_a_suspect_and_the_emfile_names_it") {
        return;
    }
    let t = run("socket_emfile", &[]);
    assert!(t.stdout.contains("EMFILE after"), "{}", t.stdout);
    let suspect = list(&t.report, "suspects")
        .into_iter()
        .find(|s| s["stopped_by_limit"] == "EMFILE")
        .unwrap_or_else(|| panic!("no suspect stopped by EMFILE:\n{:#}", t.report["suspects"]));
    assert_eq!(suspect["kind"], "socket", "{suspect:#}");
    assert!(suspect["count"].as_u64().is_some_and(|c| c >= 55), "{suspect:#}");
    names_line(
        suspect,
        "socket_emfile",
        "leak_connection",
        "LEAK:emfile",
        Some("handle_request"),
    );
    let emfile = list(&t.report, "incidents")
        .into_iter()
        .find(|i| i["kind"] == "limit_failure" && i["errno"] == "EMFILE")
        .unwrap_or_else(|| panic!("no EMFILE problem:\n{:#}", t.report["incidents"]));
    let top = &emfile["top_site"];
    assert_eq!(top["kind"], "socket", "{emfile:#}");
    assert!(top["count"].as_u64().is_some_and(|c| c >= 55), "{emfile:#}");
    assert!(top["share"].as_f64().is_some_and(|s| s >= 0.85), "{emfile:#}");
    names_line(
        top,
        "socket_emfile",
        "leak_connection",
        "LEAK:emfile",
        Some("handle_request"),
    );
}

#[test]
fn a_pool_filling_below_the_limit_is_not_a_suspect() {
    if !can_trace("a_pool_filling_below_the_limit_is_not_a_suspect") {
        return;
    }
    let t = run("socket_emfile", &["--fixed"]);
    let pid = command_pid(&t.report);
    let suspects: Vec<_> = list(&t.report, "suspects")
        .into_iter()
        .filter(|s| s["pid"] == pid)
        .collect();
    assert!(suspects.is_empty(), "{suspects:#?}");
    assert!(
        !list(&t.report, "incidents")
            .iter()
            .any(|i| i["kind"] == "limit_failure"),
        "{:#}",
        t.report["incidents"]
    );
    // Seen: the pool's 40 sockets, from pool_connect.
    let pool = list(&t.report, "outstanding")
        .into_iter()
        .find(|s| s["pid"] == pid && s["kind"] == "socket" && s["count"] == 40)
        .unwrap_or_else(|| panic!("the pool was not seen:\n{:#}", t.report["outstanding"]));
    names_line(pool, "socket_emfile", "pool_connect", "POOL:socket", None);
}

#[test]
fn children_forked_until_eagain_are_a_suspect() {
    if !can_trace("children_forked_until_eagain_are_a_suspect") {
        return;
    }
    let t = run("fork_leak", &[]);
    assert!(t.stdout.contains("EAGAIN after"), "{}", t.stdout);
    let pid = command_pid(&t.report);
    let s = list(&t.report, "suspects")
        .into_iter()
        .find(|s| s["pid"] == pid && s["resource"] == "process")
        .unwrap_or_else(|| panic!("no children suspect:\n{:#}", t.report["suspects"]));
    assert_eq!(s["stopped_by_limit"], "EAGAIN", "{s:#}");
    assert_eq!(s["kind"], "child process", "{s:#}");
    assert!(s["count"].as_u64().is_some_and(|c| c >= 4), "{s:#}");
    names_line(s, "fork_leak", "spawn_worker", "FORK:worker", Some("main"));
}

#[test]
fn a_worker_pool_below_the_process_limit_is_not_a_suspect() {
    if !can_trace("a_worker_pool_below_the_process_limit_is_not_a_suspect") {
        return;
    }
    let t = run("fork_leak", &["--fixed"]);
    assert!(t.stdout.contains("POOL 8"), "{}", t.stdout);
    let pid = command_pid(&t.report);
    let suspects: Vec<_> = list(&t.report, "suspects")
        .into_iter()
        .filter(|s| s["pid"] == pid)
        .collect();
    assert!(suspects.is_empty(), "{suspects:#?}");
    // Seen: the parent and its 8 workers.
    let kids = list(&t.report, "processes")
        .iter()
        .filter(|p| p["pid"].as_u64().is_some_and(|p| p > pid))
        .count();
    assert!(kids >= 8, "{:#}", t.report["processes"]);
}

/// The entry of `zombies` for the traced command.
fn zombie_entry(t: &Traced) -> Value {
    let pid = command_pid(&t.report);
    list(&t.report, "zombies")
        .into_iter()
        .find(|z| z["pid"] == pid)
        .cloned()
        .unwrap_or_else(|| panic!("the parent's children were not seen:\n{:#}", t.report["zombies"]))
}

#[test]
fn a_zombie_pile_is_flagged_with_its_sigchld_handler_even_when_reaped_later() {
    if !can_trace("a_zombie_pile_is_flagged_with_its_sigchld_handler_even_when_reaped_later") {
        return;
    }
    let t = run("zombie_pile", &[]);
    assert!(t.stdout.contains("PEAK 40"), "{}", t.stdout);
    let z = zombie_entry(&t);
    assert_eq!(z["piled"], true, "{z:#}");
    assert_eq!(z["zombies"], 0, "all reaped by the end: {z:#}");
    assert!(z["max_zombies"].as_u64().is_some_and(|m| m >= 30), "{z:#}");
    assert!(z["sigchld"]["coalesced"].as_u64().is_some_and(|c| c >= 10), "{z:#}");
    assert!(z["mean_reap_delay_ms"].as_f64().is_some_and(|d| d > 0.0), "{z:#}");
    assert!(
        z["fix"]
            .as_str()
            .is_some_and(|f| f.contains("waitpid(-1, &status, WNOHANG)")),
        "{z:#}"
    );
    names_line(&z["sigchld_handler"], "zombie_pile", "on_sigchld", "HANDLER:one", None);
}

#[test]
fn a_handler_that_reaps_in_a_loop_leaves_no_pile() {
    if !can_trace("a_handler_that_reaps_in_a_loop_leaves_no_pile") {
        return;
    }
    let t = run("zombie_pile", &["--fixed"]);
    let z = zombie_entry(&t);
    assert_eq!(z["piled"], false, "{z:#}");
    assert!(z["fix"].is_null(), "{z:#}");
    // Seen: its 50 children exited and were reaped, its SIGCHLDs, and the looping handler.
    assert_eq!(z["reaped"], 50, "{z:#}");
    assert!(z["sigchld"]["generated"].as_u64().is_some_and(|g| g >= 40), "{z:#}");
    names_line(
        &z["sigchld_handler"],
        "zombie_pile",
        "on_sigchld_loop",
        "HANDLER:loop",
        None,
    );
}

#[test]
fn a_saturated_eventfd_drops_notifications_named_by_stack() {
    if !can_trace("a_saturated_eventfd_drops_notifications_named_by_stack") {
        return;
    }
    let t = run("eventfd_overflow", &[]);
    assert!(t.stdout.contains("DROPPED 19"), "{}", t.stdout);
    let i = list(&t.report, "incidents")
        .into_iter()
        .find(|i| i["kind"] == "eventfd_overflow")
        .unwrap_or_else(|| panic!("no eventfd overflow:\n{:#}", t.report["incidents"]));
    assert_eq!(i["count"], 19, "{i:#}");
    assert_eq!(i["errno"], "EAGAIN", "{i:#}");
    assert_eq!(i["syscall"], "write", "{i:#}");
    assert_eq!(
        i["value"].as_u64(),
        Some(u64::MAX - 1),
        "the counter at its ceiling: {i:#}"
    );
    names_line(i, "eventfd_overflow", "post_work", "NOTIFY:post", Some("main"));
    assert!(list(&t.report, "stalls").is_empty(), "{:#}", t.report["stalls"]);
}

#[test]
fn an_eventfd_whose_consumer_keeps_up_is_silent() {
    if !can_trace("an_eventfd_whose_consumer_keeps_up_is_silent") {
        return;
    }
    let t = run("eventfd_overflow", &["--fixed"]);
    assert!(
        !list(&t.report, "incidents")
            .iter()
            .any(|i| i["kind"] == "eventfd_overflow"),
        "{:#}",
        t.report["incidents"]
    );
    // Seen: its eventfd, open at exit.
    let pid = command_pid(&t.report);
    let p = list(&t.report, "processes")
        .into_iter()
        .find(|p| p["pid"] == pid)
        .cloned()
        .unwrap_or_default();
    assert_eq!(p["by_kind"]["eventfd"], 1, "{p:#}");
}

/// The stall entry of `kind` written by the traced command.
fn stall_of<'a>(t: &'a Traced, kind: &str) -> Option<&'a Value> {
    let pid = command_pid(&t.report);
    list(&t.report, "stalls")
        .into_iter()
        .find(|s| s["kind"] == kind && s["writers"].as_array().is_some_and(|w| w.iter().any(|p| *p == pid)))
}

fn check_stall(mode: &str) {
    let t = run("write_stall", &[mode]);
    assert!(t.stdout.contains("EAGAIN 1"), "{}", t.stdout);
    let consumer: u64 = t
        .stdout
        .lines()
        .find_map(|l| l.strip_prefix("CONSUMER ").and_then(|v| v.trim().parse().ok()))
        .unwrap_or_else(|| panic!("{}", t.stdout));
    let s = stall_of(&t, mode).unwrap_or_else(|| panic!("no {mode} stall:\n{:#}", t.report["stalls"]));
    assert!(s["blocked_writes"].as_u64().is_some_and(|n| n >= 2), "{s:#}");
    assert!(s["blocked_ms_max"].as_u64().is_some_and(|n| n >= 150), "{s:#}");
    assert!(s["blocked_ms_total"].as_u64().is_some_and(|n| n >= 400), "{s:#}");
    assert_eq!(s["eagain"], 1, "{s:#}");
    assert!(s["inode"].as_u64().is_some_and(|i| i > 0), "{s:#}");
    // The pipe's default 16 pages; the socket's SO_SNDBUF of 32 KiB, doubled by the kernel.
    assert_eq!(s["capacity_bytes"], 65536, "{s:#}");
    assert!(s["max_capacity_bytes"].as_u64().is_some_and(|m| m > 0), "{s:#}");
    if mode == "pipe" {
        assert!(
            s["readers"]
                .as_array()
                .is_some_and(|r| r.iter().any(|p| *p == consumer)),
            "the consumer {consumer} reads: {s:#}"
        );
        assert!(s["fix"].as_str().is_some_and(|f| f.contains("F_SETPIPE_SZ")), "{s:#}");
    } else {
        assert!(s["fix"].as_str().is_some_and(|f| f.contains("SO_SNDBUF")), "{s:#}");
    }
    let tag = format!("STALL:{mode}");
    names_line(&s["longest"], "write_stall", "ship_log", &tag, Some("main"));
    let tag = format!("REFUSED:{mode}");
    names_line(&s["refused"], "write_stall", "ship_log_nonblocking", &tag, Some("main"));
}

fn check_no_stall(mode: &str) {
    let t = run("write_stall", &[mode, "--fixed"]);
    assert!(stall_of(&t, mode).is_none(), "{:#}", t.report["stalls"]);
    assert!(list(&t.report, "stalls").is_empty(), "{:#}", t.report["stalls"]);
    // Seen: the producer made the pipe or socket pair and forked the consumer.
    let pid = command_pid(&t.report);
    let producer = list(&t.report, "processes")
        .into_iter()
        .find(|p| p["pid"] == pid)
        .cloned()
        .unwrap_or_default();
    assert!(producer["allocations"].as_u64().is_some_and(|a| a >= 2), "{producer:#}");
    assert!(
        list(&t.report, "processes").len() >= 2,
        "the consumer: {:#}",
        t.report["processes"]
    );
}

#[test]
fn a_producer_blocked_on_a_full_pipe_is_a_stall() {
    if !can_trace("a_producer_blocked_on_a_full_pipe_is_a_stall") {
        return;
    }
    check_stall("pipe");
}

#[test]
fn a_pipe_whose_consumer_keeps_up_is_silent() {
    if !can_trace("a_pipe_whose_consumer_keeps_up_is_silent") {
        return;
    }
    check_no_stall("pipe");
}

#[test]
fn a_sender_blocked_on_a_full_unix_socket_is_a_stall() {
    if !can_trace("a_sender_blocked_on_a_full_unix_socket_is_a_stall") {
        return;
    }
    check_stall("unix");
}

#[test]
fn a_unix_socket_whose_peer_keeps_up_is_silent() {
    if !can_trace("a_unix_socket_whose_peer_keeps_up_is_silent") {
        return;
    }
    check_no_stall("unix");
}

/// The value of the series whose line starts with `series` (name and labels, as exposed).
fn metric(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(series).and_then(|v| v.trim().parse().ok()))
}

#[test]
fn the_agent_exposes_stalls_overflows_piles_and_limit_stopped_leaks() {
    if !can_trace("the_agent_exposes_stalls_overflows_piles_and_limit_stopped_leaks") {
        return;
    }
    // Selected by name at exec (the kernel keeps a name's first 15 bytes); a short window, so
    // that trends are sampled often enough (every window/64) for a leak of a few seconds.
    // Write timing is opt-in for the agent.
    let agent = AgentProcess::start(&[
        "--write-block",
        "100ms",
        "--window",
        "30s",
        "--comm",
        "write_stall.O2",
        "--comm",
        "zombie_pile.O2",
        "--comm",
        "eventfd_overflow.O2",
        "--comm",
        "socket_emfile.O2",
    ]);
    // A leak stopped by EMFILE that stays alive (gauges are for live processes).
    let mut emfile = Command::new(fixture("socket_emfile"))
        .args(["64", "100", "30000"])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("socket_emfile: {e}"));
    let out = emfile.stdout.take().unwrap_or_else(|| panic!("no stdout"));
    let mut line = String::new();
    let _ = BufReader::new(out).read_line(&mut line);
    assert!(line.starts_with("EMFILE after"), "{line:?}");
    for (name, args) in [
        ("write_stall", &["pipe"][..]),
        ("zombie_pile", &[][..]),
        ("eventfd_overflow", &[][..]),
    ] {
        let st = Command::new(fixture(name))
            .args(args)
            .stdout(Stdio::null())
            .status()
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        assert!(st.success(), "{name} failed");
    }
    let c = r#"container="""#;
    let text = wait_for(Duration::from_secs(30), || {
        let t = agent.get("/metrics").text();
        (t.contains("tracer_write_stalls_total{")
            && t.contains("tracer_eventfd_overflows_total{")
            && t.contains("tracer_zombie_piles{")
            && metric(
                &t,
                &format!(r#"tracer_leak_suspects{{comm="socket_emfile.O",{c},kind="socket"}}"#),
            )
            .is_some_and(|v| v >= 1.0))
        .then_some(t)
    })
    .unwrap_or_else(|| {
        panic!(
            "the metrics never showed the incidents:\n{}\nagent stderr:\n{}",
            agent.get("/metrics").text(),
            agent.stderr()
        )
    });
    let _ = emfile.kill();
    let _ = emfile.wait();
    let series = |s: &str| metric(&text, s).unwrap_or_else(|| panic!("no {s} in:\n{text}"));
    assert!(
        series(&format!(
            r#"tracer_write_stalls_total{{comm="write_stall.O2",{c},kind="pipe"}}"#
        )) >= 2.0
    );
    assert!(
        series(&format!(
            r#"tracer_write_stall_seconds_total{{comm="write_stall.O2",{c},kind="pipe"}}"#
        )) >= 0.4
    );
    assert_eq!(
        series(&format!(
            r#"tracer_writes_refused_total{{comm="write_stall.O2",{c},kind="pipe"}}"#
        )),
        1.0
    );
    assert_eq!(
        series(&format!(
            r#"tracer_eventfd_overflows_total{{comm="eventfd_overflo",{c}}}"#
        )),
        19.0
    );
    assert_eq!(
        series(&format!(r#"tracer_zombie_piles{{comm="zombie_pile.O2",{c}}}"#)),
        1.0
    );
    let (ok, out) = promtool_check(text.as_bytes());
    assert!(ok, "promtool check metrics failed:\n{out}\n{text}");
    assert_eq!(agent.stop(), 0);
}
