//! The correctness oracle: at every checkpoint of a fixture that exercises every fd allocation
//! and close path, the agent's fd table for each traced process equals `/proc/PID/fd` (numbers
//! and kinds).

use std::{
    io::{BufRead, BufReader, Write},
    process::{Command, Stdio},
};

use integration_tests::{can_trace, fixture};
use tracer::{
    agent::{Agent, proc},
    child::HeldChild,
    probes::ProbeOptions,
    state::FdKind,
};
use tracer_common::config::StackMode;

fn compare(agent: &mut Agent, pid: u32, at: &str) {
    agent.drain();
    agent.tracker.describe_pending(usize::MAX, 0);
    let Ok(actual) = proc::scan_fds(pid) else {
        return;
    };
    let Some(p) = agent.tracker.state.process(pid) else {
        panic!("{at}: PID {pid} is not tracked");
    };
    let ours: Vec<(i32, FdKind)> = {
        let mut v: Vec<(i32, FdKind)> = p.fds.iter().map(|(fd, o)| (fd, o.kind)).collect();
        v.sort();
        v
    };
    let theirs: Vec<(i32, FdKind)> = actual.iter().map(|f| (f.fd, f.kind)).collect();
    if ours != theirs {
        let missing: Vec<_> = theirs.iter().filter(|t| !ours.contains(t)).collect();
        let extra: Vec<_> = ours.iter().filter(|o| !theirs.contains(o)).collect();
        let targets: Vec<String> = actual
            .iter()
            .map(|f| format!("{}={}", f.fd, String::from_utf8_lossy(&f.target)))
            .collect();
        panic!(
            "{at}: PID {pid}: agent table differs from /proc\n  only in /proc: {missing:?}\n  only in agent: {extra:?}\n  /proc: {}",
            targets.join(" ")
        );
    }
}

fn oracle(stack_mode: StackMode) {
    let opts = ProbeOptions {
        stack_mode,
        ring_buffer_bytes: 16 << 20,
        ..ProbeOptions::default()
    };
    let mut agent = Agent::new(opts).unwrap_or_else(|e| panic!("loading probes: {e}"));
    let mut cmd = Command::new(fixture("fd_oracle"));
    cmd.arg("--checkpoints")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit());
    let held = HeldChild::spawn_command(cmd, "fd_oracle".into()).unwrap_or_else(|e| panic!("{e}"));
    let pid = held.pid;
    agent.follow(pid).unwrap_or_else(|e| panic!("follow: {e}"));
    let mut child = held.release().unwrap_or_else(|e| panic!("{e}"));
    let mut stdin = child.stdin.take().unwrap_or_else(|| panic!("no stdin"));
    let stdout = BufReader::new(child.stdout.take().unwrap_or_else(|| panic!("no stdout")));
    let mut children: Vec<u32> = Vec::new();
    let mut checkpoints = 0;
    let mut done = false;
    for line in stdout.lines() {
        let line = line.unwrap_or_else(|e| panic!("reading fixture output: {e}"));
        let words: Vec<&str> = line.split_whitespace().collect();
        match words.as_slice() {
            ["CHILD", c] => children.push(c.parse().unwrap_or_else(|_| panic!("bad CHILD line {line}"))),
            ["CHECKPOINT", ..] => {
                checkpoints += 1;
                compare(&mut agent, pid, &line);
                for c in &children {
                    if proc::exists(*c) {
                        compare(&mut agent, *c, &format!("{line} (child {c})"));
                    }
                }
                writeln!(stdin, "go").unwrap_or_else(|e| panic!("resuming fixture: {e}"));
                stdin.flush().unwrap_or_else(|e| panic!("resuming fixture: {e}"));
            }
            ["DONE"] => done = true,
            _ => {}
        }
    }
    let status = child.wait().unwrap_or_else(|e| panic!("waiting: {e}"));
    assert!(status.success(), "fixture failed: {status}");
    assert!(done, "fixture did not finish");
    assert!(checkpoints >= 10, "only {checkpoints} checkpoints were compared");
    assert!(!children.is_empty(), "the fork phase was not compared");
    assert_eq!(
        agent.lost_events(),
        0,
        "events were lost; the comparison is not trustworthy"
    );
}

#[test]
fn fd_table_matches_proc_at_every_checkpoint_dwarf() {
    if can_trace("oracle dwarf") {
        oracle(StackMode::Dwarf);
    }
}

#[test]
fn fd_table_matches_proc_at_every_checkpoint_fp() {
    if can_trace("oracle fp") {
        oracle(StackMode::FramePointer);
    }
}
