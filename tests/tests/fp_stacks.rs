//! `--stack fp`, the kernel's frame-pointer walk: real frames named end to end, garbage return
//! addresses cut, and the kernel's stack map neither filling for good nor losing a stack
//! without counting it.

use std::{
    collections::HashSet,
    io::{BufRead, BufReader, Write},
    process::{Command, Stdio},
};

use integration_tests::{can_trace, fixture, run_json, sites, stack_functions};
use tracer::{
    modes::child::HeldChild,
    probes::ProbeOptions,
    state::{Origin, Resource, StackId},
    tracker::Pipeline,
};
use tracer_common::config::StackMode;

/// The site whose innermost function is `function`.
fn site_of<'a>(report: &'a serde_json::Value, function: &str) -> &'a serde_json::Value {
    sites(report, "outstanding")
        .into_iter()
        .find(|s| stack_functions(s).first().is_some_and(|f| f == function))
        .unwrap_or_else(|| panic!("no site starting in {function}:\n{report:#}"))
}

#[test]
fn fp_stacks_name_real_frames_and_stop_at_garbage() {
    if !can_trace("fp_stacks_name_real_frames_and_stop_at_garbage") {
        return;
    }
    let bin = fixture("fp_frames").to_string_lossy().into_owned();
    let (report, code, stderr) = run_json(&["--stack", "fp"], &[&bin, "frames", "20"]);
    assert_eq!(code, 0, "{stderr}");

    // A whole chain: the function with the syscall instruction, its callers, main.
    let direct = site_of(&report, "leak_direct");
    assert_eq!(direct["count"], 20, "{direct:#}");
    let fs = stack_functions(direct);
    assert_eq!(fs[..3], ["leak_direct", "serve_direct", "main"], "{direct:#}");
    let frames = direct["stack"].as_array().cloned().unwrap_or_default();
    assert!(
        frames[..3]
            .iter()
            .all(|f| f["module"].as_str().is_some_and(|m| m.ends_with("/fp_frames"))
                && f["file"].as_str().is_some_and(|s| s.ends_with("fp_frames.c"))
                && f["line"].as_u64().is_some_and(|l| l > 0)),
        "the fixture's frames, with file and line: {direct:#}"
    );
    for f in &frames {
        assert!(
            f["module"].is_string() && f["function"].is_string(),
            "past main, only real frames (libc's start code) or none: {direct:#}"
        );
    }

    // The frame pointer led to a return address in no module, then to a real one: the stack
    // ends at the garbage, it does not skip it.
    let garbage = site_of(&report, "leak_garbage");
    assert_eq!(garbage["count"], 20, "{garbage:#}");
    assert_eq!(stack_functions(garbage), ["leak_garbage"], "{garbage:#}");
    assert_eq!(garbage["stack"].as_array().map(Vec::len), Some(1), "{garbage:#}");
    assert_eq!(report["losses"]["stack_not_captured"], 0, "{:#}", report["losses"]);
}

/// Fds of `pid` opened by a syscall, with the stack of each (NONE when it was not captured).
fn traced_fd_stacks(agent: &Pipeline, pid: u32) -> Vec<StackId> {
    let state = &agent.tracker.state;
    let p = state.process(pid).unwrap_or_else(|| panic!("PID {pid} is not tracked"));
    p.fds
        .iter()
        .filter(|(_, o)| o.origin == Origin::Syscall)
        .filter_map(|(_, o)| state.sites.get(o.site).map(|s| s.key.stack))
        .collect()
}

/// Allocations of `pid` recorded without a stack.
fn stackless_allocations(agent: &Pipeline, pid: u32) -> u64 {
    agent
        .tracker
        .state
        .sites
        .iter()
        .filter(|(_, s)| {
            s.key.tgid == pid && s.key.resource == Resource::Fd && !s.key.before_attach && s.key.stack == StackId::NONE
        })
        .map(|(_, s)| s.allocations)
        .sum()
}

#[test]
fn the_fp_stack_map_is_freed_of_idle_stacks_and_every_loss_is_counted() {
    if !can_trace("the_fp_stack_map_is_freed_of_idle_stacks_and_every_loss_is_counted") {
        return;
    }
    let opts = ProbeOptions {
        stack_mode: StackMode::FramePointer,
        ring_buffer_bytes: 64 << 20,
        ..ProbeOptions::default()
    };
    let mut agent = Pipeline::new(opts).unwrap_or_else(|e| panic!("loading probes: {e}"));
    let mut cmd = Command::new(fixture("fp_frames"));
    cmd.args(["fill", "15"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit());
    let held = HeldChild::spawn_command(cmd, "fp_frames".into()).unwrap_or_else(|e| panic!("{e}"));
    let pid = held.pid;
    agent.follow(pid).unwrap_or_else(|e| panic!("follow: {e}"));
    let mut child = held.release().unwrap_or_else(|e| panic!("{e}"));
    let mut stdin = child.stdin.take().unwrap_or_else(|| panic!("no stdin"));
    let mut lines = BufReader::new(child.stdout.take().unwrap_or_else(|| panic!("no stdout"))).lines();
    let mut next_line = |want: &str| {
        let line = lines
            .next()
            .and_then(Result::ok)
            .unwrap_or_else(|| panic!("the fixture ended before {want}"));
        assert!(line.starts_with(want), "expected {want}, got {line}");
    };

    // 32768 distinct stacks, opened and closed: more than the map's 16384 entries.
    next_line("FILLED 32768");
    agent.drain();
    let filled = agent.losses();
    assert_eq!(
        filled.ring_buffer_full, 0,
        "records were lost: the counts cannot be checked"
    );
    assert!(
        filled.stack_not_captured > 1000,
        "32768 stacks into 16384 entries: {filled:?}"
    );
    assert_eq!(
        stackless_allocations(&agent, pid),
        filled.stack_not_captured,
        "every allocation without its stack is counted, and only those"
    );
    // Those captured are each their own path's: one allocation per stack, none mixed up.
    let fill_sites: Vec<u64> = agent
        .tracker
        .state
        .sites
        .iter()
        .filter(|(_, s)| s.key.tgid == pid && s.key.stack != StackId::NONE)
        .filter(|(_, s)| {
            let depth = agent.tracker.stacks.get(s.key.stack).map_or(0, |st| st.addresses.len());
            depth >= 18
        })
        .map(|(_, s)| s.allocations)
        .collect();
    assert!(fill_sites.iter().all(|n| *n == 1), "a stack given to several paths");
    assert_eq!(
        fill_sites.len() as u64 + filled.stack_not_captured,
        32768,
        "every open of the fill has its own stack or is counted lost"
    );

    // No record names those ids any more: the first sweep sees them idle since the records,
    // the second frees them.
    agent.tracker.sweep_stacks();
    agent.tracker.sweep_stacks();

    // 64 new distinct stacks, leaked: the map has room for them again.
    writeln!(stdin, "go").unwrap_or_else(|e| panic!("{e}"));
    next_line("LEAKED 64");
    agent.drain();
    let leaked = agent.losses();
    let stacks = traced_fd_stacks(&agent, pid);
    assert_eq!(stacks.len(), 64, "the 64 leaked fds are tracked");
    let lost = stacks.iter().filter(|s| **s == StackId::NONE).count() as u64;
    assert_eq!(
        lost,
        leaked.stack_not_captured - filled.stack_not_captured,
        "each stack lost after the sweep is counted"
    );
    assert!(
        lost <= 4,
        "{lost} of 64 stacks lost after the sweep: the map was not freed ({leaked:?})"
    );
    // Each leaked fd came from its own call path: no stack is given to two of them (a reused
    // bucket read for the wrong record would).
    let distinct: HashSet<StackId> = stacks.iter().copied().filter(|s| *s != StackId::NONE).collect();
    assert_eq!(distinct.len() as u64, 64 - lost, "stacks were mixed up");
    for id in &distinct {
        let frames = agent.tracker.stacks.get(*id).map(|s| s.addresses.len()).unwrap_or(0);
        assert!(
            frames >= 8,
            "a whole path (6 walk levels and its callers): {frames} frames"
        );
    }

    writeln!(stdin, "go").unwrap_or_else(|e| panic!("{e}"));
    drop(stdin);
    let status = child.wait().unwrap_or_else(|e| panic!("{e}"));
    assert!(status.success(), "fixture failed: {status}");
    assert_eq!(agent.losses().map_update_failed, 0);
}
