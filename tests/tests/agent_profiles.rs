//! The agent's pprof profiles read by `go tool pprof`: the leaking function first with and
//! without frame pointers, sampled stacks, SysV objects and locks.

use std::{
    process::{Command, Stdio},
    time::Duration,
};

use integration_tests::{
    Build,
    agent::{AgentProcess, Service, go_pprof, metric, temp_dir, wait_for},
    can_trace, fixture, fixture_built,
};

/// The fixture's own functions in the order `go tool pprof -top` lists them.
fn fixture_functions(top: &str) -> Vec<String> {
    const OURS: [&str; 4] = ["leak_connection", "handle_request", "serve", "main"];
    top.lines()
        .filter_map(|l| l.split_whitespace().last())
        .filter(|f| OURS.contains(f))
        .map(str::to_owned)
        .collect()
}

fn pprof_names_the_leak(build: Build, stack: &str) {
    let bin = fixture_built("agent_leaker", build);
    let comm = bin
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let agent = AgentProcess::start(&["--comm", &comm, "--stack", stack]);
    let leaker = Service::start(&bin, &["10"]);
    std::thread::sleep(Duration::from_secs(2));
    let r = agent.get("/debug/pprof/fds");
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.header("content-type"), Some("application/octet-stream"));
    assert_eq!(&r.body[..2], &[0x1f, 0x8b], "gzipped");
    let dir = temp_dir(&format!("pprof-{stack}"));
    let file = dir.join("fds.pb.gz");
    std::fs::write(&file, &r.body).unwrap_or_else(|e| panic!("{e}"));
    let focus = format!("comm=^{}$", comm.replace('.', "\\."));
    let top = go_pprof(
        &["-top", "-sample_index=inuse_objects", &format!("-tagfocus={focus}")],
        &file,
    );
    let ours = fixture_functions(&top);
    assert_eq!(
        ours.first().map(String::as_str),
        Some("leak_connection"),
        "the leaking function comes first among the fixture's frames:\n{top}"
    );
    // Function, file and line come from our own symbolization (no symbols needed by pprof).
    let lines = go_pprof(&["-traces", &format!("-tagfocus={focus}")], &file);
    assert!(lines.contains("leak_connection"), "{lines}");
    let tags = go_pprof(&["-tags"], &file);
    // (`container` is empty outside containers, which pprof does not list.)
    for key in ["pid", "comm", "kind"] {
        assert!(tags.contains(key), "label {key} missing:\n{tags}");
    }
    assert!(tags.contains(&leaker.pid().to_string()), "{tags}");
    let listing = go_pprof(&["-list", "leak_connection", &format!("-tagfocus={focus}")], &file);
    assert!(
        listing.contains("LEAK:socket"),
        "file:line resolve to the leaking line:\n{listing}"
    );
    let _ = std::fs::remove_dir_all(&dir);

    // The same snapshot as collapsed stacks (inferno, flamegraph.pl): root first, weighted.
    let folded = agent.get("/debug/folded/fds");
    assert_eq!(folded.status, 200);
    assert_eq!(folded.header("content-type"), Some("text/plain; charset=utf-8"));
    let text = folded.text();
    let prefix = format!("{};pid {};", &comm[..comm.len().min(15)], leaker.pid());
    let leak = text
        .lines()
        .find(|l| l.starts_with(&prefix) && l.contains(";leak_connection;"))
        .unwrap_or_else(|| panic!("no {prefix}...;leak_connection; line:\n{text}"));
    let (stack, weight) = leak.rsplit_once(' ').unwrap_or_default();
    assert!(weight.parse::<u64>().is_ok_and(|w| w > 0), "{leak}");
    let frames: Vec<&str> = stack.split(';').collect();
    let at = |f: &str| frames.iter().position(|x| *x == f);
    assert!(
        at("main") < at("serve") && at("serve") < at("leak_connection"),
        "root first: {leak}"
    );
}

#[test]
fn pprof_profile_puts_the_leaking_function_first_with_frame_pointers() {
    if can_trace("pprof_profile_puts_the_leaking_function_first_with_frame_pointers") {
        pprof_names_the_leak(Build::FramePointers, "dwarf");
    }
}

#[test]
fn pprof_profile_puts_the_leaking_function_first_without_frame_pointers() {
    if can_trace("pprof_profile_puts_the_leaking_function_first_without_frame_pointers") {
        pprof_names_the_leak(Build::Optimized, "dwarf");
    }
}

#[test]
fn sampled_stacks_still_name_the_leak_and_estimate_its_count() {
    if !can_trace("sampled_stacks_still_name_the_leak_and_estimate_its_count") {
        return;
    }
    // A budget of 20 stacks per second per CPU against about 1,000 allocations a second (a
    // leaked socket and a churned open every 2 ms): most allocations get no stack.
    let agent = AgentProcess::start(&["--comm", "agent_leaker", "--stack-budget", "20", "--window", "30s"]);
    let leaker = Service::start(&fixture("agent_leaker"), &["2"]);
    let suspect = wait_for(Duration::from_secs(60), || {
        let m = agent.get("/metrics").text();
        (metric(
            &m,
            r#"tracer_leak_suspects{comm="agent_leaker",container="",kind="socket"}"#,
        )? >= 1.0)
            .then_some(m)
    });
    let m = suspect.unwrap_or_else(|| panic!("no suspect with sampled stacks:\n{}", agent.get("/metrics").text()));
    let skipped = metric(&m, r#"tracer_allocation_stacks_total{outcome="skipped"}"#).unwrap_or(0.0);
    let taken = metric(&m, r#"tracer_allocation_stacks_total{outcome="taken"}"#).unwrap_or(0.0);
    assert!(
        skipped > 4.0 * taken,
        "the budget skipped {skipped} stacks and took {taken}"
    );

    let r = agent.get("/debug/pprof/fds");
    assert_eq!(r.status, 200);
    // Counts stay exact while the profile's values are estimates from the sampled stacks.
    let open = metric(
        &agent.get("/metrics").text(),
        r#"tracer_open_fds{comm="agent_leaker",container="",kind="socket"}"#,
    )
    .unwrap_or(f64::NAN);
    let dir = temp_dir("sampled");
    let file = dir.join("fds.pb.gz");
    std::fs::write(&file, &r.body).unwrap_or_else(|e| panic!("{e}"));
    let top = go_pprof(
        &["-top", "-tagfocus=comm=^agent_leaker$", "-tagfocus=kind=socket"],
        &file,
    );
    assert_eq!(
        fixture_functions(&top).first().map(String::as_str),
        Some("leak_connection"),
        "the leaking function comes first with sampled stacks:\n{top}"
    );
    // "Showing nodes accounting for N, P% of N total": the estimate of open sockets.
    let total: f64 = top
        .lines()
        .find_map(|l| l.split(" of ").nth(1)?.split_whitespace().next()?.parse().ok())
        .unwrap_or(f64::NAN);
    assert!(
        (total - open).abs() <= 0.35 * open,
        "estimated {total} open sockets from sampled stacks, {open} counted exactly:\n{top}"
    );
    let comments = go_pprof(&["-comments"], &file);
    assert!(comments.contains("sampled past 20 per second per CPU"), "{comments}");
    let report = agent.get("/report?format=json&top=5");
    let v: serde_json::Value = serde_json::from_slice(&report.body).unwrap_or_else(|e| panic!("{e}"));
    let leak = &v["suspects"][0];
    assert!(
        leak["estimated"]
            .as_u64()
            .is_some_and(|e| e > leak["count"].as_u64().unwrap_or(u64::MAX)),
        "the report gives the estimate beside the sampled count: {leak}"
    );
    drop(leaker);
    assert_eq!(agent.stop(), 0);
    let _ = std::fs::remove_dir_all(&dir);
}

/// Removes SysV objects the fixture leaves, even when an assertion fails.
struct IpcCleanup(Vec<(&'static str, String)>);

impl Drop for IpcCleanup {
    fn drop(&mut self) {
        for (flag, id) in &self.0 {
            let _ = Command::new("ipcrm").args([flag, id.as_str()]).status();
        }
    }
}

/// The functions of the first trace of `go tool pprof -traces` that holds `needle`, leaf first.
fn trace_with(traces: &str, needle: &str) -> Vec<String> {
    traces
        .split("-----------+-------------------------------------------------------")
        .find(|t| t.contains(needle))
        .map(|t| {
            t.lines()
                .filter_map(|l| l.split_whitespace().last())
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default()
}

fn before(trace: &[String], inner: &str, outer: &str) -> bool {
    let at = |f: &str| trace.iter().position(|x| x == f);
    matches!((at(inner), at(outer)), (Some(i), Some(o)) if i < o)
}

#[test]
fn sysv_and_locks_profiles_name_the_creating_and_the_locking_stack() {
    if !can_trace("sysv_and_locks_profiles_name_the_creating_and_the_locking_stack") {
        return;
    }
    let agent = AgentProcess::start(&["--comm", "sysv_orphans", "--comm", "flock_contend"]);
    let dir = temp_dir("sysv-locks");

    // SysV: four workers each leave a semaphore set behind and exit (orphans).
    let out = Command::new(fixture("sysv_orphans"))
        .args(["4", "20"])
        .output()
        .unwrap_or_else(|e| panic!("{e}"));
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let orphans = |prefix: &str| -> Vec<String> {
        stdout
            .lines()
            .filter_map(|l| l.strip_prefix(prefix).map(|v| v.trim().to_owned()))
            .collect()
    };
    let sems = orphans("ORPHAN sem ");
    let _cleanup = IpcCleanup(
        sems.iter()
            .map(|id| ("-s", id.clone()))
            .chain(orphans("ORPHAN shm ").into_iter().map(|id| ("-m", id)))
            .collect(),
    );
    assert_eq!(sems.len(), 4, "{stdout}");
    let r = agent.get("/debug/pprof/sysv");
    assert_eq!(
        (r.status, r.header("content-type")),
        (200, Some("application/octet-stream"))
    );
    let file = dir.join("sysv.pb.gz");
    std::fs::write(&file, &r.body).unwrap_or_else(|e| panic!("{e}"));
    // One sample per worker (each its own pid), every one with the creating stack. (pprof's
    // "of N total" counts the shm segment too: -tagfocus filters nodes, not the total.)
    let traces = go_pprof(&["-traces", "-tagfocus=kind=^sysv_sem$"], &file);
    let creating = traces.matches("create_work_set").count();
    assert_eq!(creating, 4, "four orphan sets, by creating stack:\n{traces}");
    let t = trace_with(&traces, "create_work_set");
    assert!(before(&t, "create_work_set", "run_worker"), "{traces}");

    // Locks: the holder keeps an flock for 3 s while its child waits.
    let mut contend = Command::new(fixture("flock_contend"))
        .arg(dir.join("lock").as_os_str())
        .arg("3000")
        .stdout(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("{e}"));
    let held = wait_for(Duration::from_secs(10), || {
        let r = agent.get("/debug/pprof/locks");
        let file = dir.join("locks.pb.gz");
        std::fs::write(&file, &r.body).ok()?;
        let traces = go_pprof(&["-traces", "-tagfocus=kind=flock"], &file);
        let t = trace_with(&traces, "take_lock_and_work");
        before(&t, "take_lock_and_work", "main").then_some(traces)
    });
    let _ = contend.wait();
    assert!(held.is_some(), "the held flock never showed in /debug/pprof/locks");
    assert_eq!(agent.stop(), 0);
    let _ = std::fs::remove_dir_all(&dir);
}
