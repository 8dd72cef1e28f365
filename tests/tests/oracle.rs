//! The correctness oracle: at every checkpoint of a fixture that exercises every fd allocation
//! and close path, the agent's fd table for each traced process equals `/proc/PID/fd`: the same
//! numbers, and the kinds the agent learned from its own records.
//!
//! Some kinds only /proc can give, by design, and are checked apart (after the agent reads
//! /proc): fds open before the attach (read from /proc at attach), fds received over SCM_RIGHTS
//! (the message carries no kind; the agent reads /proc as it receives them), and which path
//! kind a path open gave (the syscall cannot tell a file from a device, a directory or a FIFO,
//! except `O_DIRECTORY`). Everything else (sockets, pipes, anonymous inodes, regular files,
//! duplicates, inherited fds) must be right from the records alone.

use std::{
    io::{BufRead, BufReader, Write},
    process::{Command, Stdio},
};

use integration_tests::{can_trace, fixture};
use tracer::{
    modes::child::HeldChild,
    probes::ProbeOptions,
    procfs::process as proc,
    state::{FdKind, Origin},
    tracker::Pipeline,
};
use tracer_common::config::StackMode;

/// Why an fd's kind is /proc's to give, or None when the records must give it.
fn from_proc_by_design(origin: Origin, recorded: FdKind, actual: FdKind) -> Option<&'static str> {
    match origin {
        Origin::BeforeAttach => Some("open before the attach"),
        Origin::Received => Some("received over SCM_RIGHTS"),
        Origin::Resynced => Some("found by a resync"),
        _ if recorded.is_path_kind() && actual.is_path_kind() && actual != FdKind::File => {
            Some("a path open that is not a regular file")
        }
        _ => None,
    }
}

fn compare(agent: &mut Pipeline, pid: u32, at: &str) {
    agent.drain();
    let actual = proc::scan_fds(pid).unwrap_or_else(|e| panic!("{at}: PID {pid}: the comparison cannot be made: {e}"));
    let Some(p) = agent.tracker.state.process(pid) else {
        panic!("{at}: PID {pid} is not tracked");
    };
    let targets = || -> String {
        actual
            .iter()
            .map(|f| format!("{}={}", f.fd, String::from_utf8_lossy(&f.target)))
            .collect::<Vec<_>>()
            .join(" ")
    };
    let mut ours: Vec<i32> = p.fds.iter().map(|(fd, _)| fd).collect();
    ours.sort_unstable();
    let mut theirs: Vec<i32> = actual.iter().map(|f| f.fd).collect();
    theirs.sort_unstable();
    if ours != theirs {
        let missing: Vec<_> = theirs.iter().filter(|t| !ours.contains(t)).collect();
        let extra: Vec<_> = ours.iter().filter(|o| !theirs.contains(o)).collect();
        panic!(
            "{at}: PID {pid}: agent table differs from /proc\n  only in /proc: {missing:?}\n  only in agent: {extra:?}\n  /proc: {}",
            targets()
        );
    }
    // Kinds as the records gave them. A path open keeps its recorded kind in its site's key
    // (the fd's own kind is refined in place when /proc is read).
    let mut wrong = Vec::new();
    let mut by_design = Vec::new();
    for f in &actual {
        let Some(o) = p.fds.get(f.fd) else { continue };
        let recorded = if o.kind.is_path_kind() {
            agent.tracker.state.sites.get(o.site).map_or(o.kind, |s| s.key.kind)
        } else {
            o.kind
        };
        match from_proc_by_design(o.origin, recorded, f.kind) {
            Some(why) => by_design.push((f.fd, f.kind, why)),
            None if recorded != f.kind => wrong.push((f.fd, recorded, f.kind, o.origin)),
            None => {}
        }
    }
    assert!(
        wrong.is_empty(),
        "{at}: PID {pid}: kinds from the records differ from /proc (fd, recorded, /proc, origin): {wrong:?}\n  /proc: {}",
        targets()
    );
    // The kinds only /proc can give: right once the agent has read /proc.
    agent.tracker.describe_pending(usize::MAX, 0);
    let Some(p) = agent.tracker.state.process(pid) else {
        panic!("{at}: PID {pid} is not tracked");
    };
    for (fd, kind, why) in by_design {
        let ours = p.fds.get(fd).map(|o| o.kind);
        assert_eq!(
            ours,
            Some(kind),
            "{at}: PID {pid}: fd {fd} ({why}): kind after reading /proc"
        );
    }
}

fn oracle(stack_mode: StackMode) {
    oracle_with(stack_mode, false);
}

fn oracle_with(stack_mode: StackMode, raw_sys_exit: bool) {
    let opts = ProbeOptions {
        stack_mode,
        ring_buffer_bytes: 16 << 20,
        raw_sys_exit,
        ..ProbeOptions::default()
    };
    let mut agent = Pipeline::new(opts).unwrap_or_else(|e| panic!("loading probes: {e}"));
    // This kernel has BTF: the typed hook is the one in use unless the raw one is asked for.
    assert_eq!(
        agent.tracker.typed_sys_exit(),
        !raw_sys_exit,
        "which sys_exit program is attached"
    );
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
                // The forked child lives until the fixture releases it after the last checkpoint.
                for c in &children {
                    compare(&mut agent, *c, &format!("{line} (child {c})"));
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

/// The fallback for kernels without BTF (`raw_tracepoint/sys_exit`, registers read by helper)
/// gives the same table.
#[test]
fn fd_table_matches_proc_at_every_checkpoint_raw_tracepoint() {
    if can_trace("oracle raw tracepoint") {
        oracle_with(StackMode::Dwarf, true);
    }
}

#[test]
fn fd_table_matches_proc_at_every_checkpoint_fp() {
    if can_trace("oracle fp") {
        oracle(StackMode::FramePointer);
    }
}
