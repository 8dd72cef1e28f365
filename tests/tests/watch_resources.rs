//! `tracer watch` attached to a process that is already in trouble: the zombies it has and the
//! lock it is blocked on (and who holds it) are known at once, from /proc, and what follows is
//! traced with stacks.

use std::{
    io::{BufRead, BufReader},
    process::{Child, Command, Stdio},
    time::Duration,
};

use integration_tests::{can_trace, fixture, stack_functions, tracer_bin, wait_until};
use serde_json::Value;

/// Runs `tracer watch -p PID --format json INTERVAL COUNT`, returning every report.
fn watch(pid: u32, interval: &str, count: &str) -> (Vec<Value>, String) {
    let out = Command::new(tracer_bin())
        .args(["watch", "-p", &pid.to_string(), "--format", "json", interval, count])
        .output()
        .unwrap_or_else(|e| panic!("{e}"));
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    let docs: Vec<Value> = serde_json::Deserializer::from_slice(&out.stdout)
        .into_iter::<Value>()
        .collect::<Result<_, _>>()
        .unwrap_or_else(|e| panic!("{e}; stderr: {stderr}"));
    (docs, stderr)
}

/// Children of `parent` that exited and were not reaped (state Z in /proc).
fn zombie_children(parent: u32) -> usize {
    let Ok(dir) = std::fs::read_dir("/proc") else { return 0 };
    dir.flatten()
        .filter_map(|e| std::fs::read_to_string(e.path().join("stat")).ok())
        .filter(|stat| {
            // "pid (comm) S ppid ...": the fields after the last ')'.
            let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
            let mut f = rest.split_whitespace();
            f.next() == Some("Z") && f.next().and_then(|p| p.parse::<u32>().ok()) == Some(parent)
        })
        .count()
}

/// /proc/locks shows `pid` blocked waiting for a lock (a "->" line).
fn blocked_on_a_lock(pid: u32) -> bool {
    let locks = std::fs::read_to_string("/proc/locks").unwrap_or_default();
    locks.lines().any(|l| {
        let f: Vec<&str> = l.split_whitespace().collect();
        f.get(1) == Some(&"->") && f.get(5).and_then(|p| p.parse::<u32>().ok()) == Some(pid)
    })
}

struct Reap(Child);

impl Drop for Reap {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn watch_a_parent_that_already_has_zombies() {
    if !can_trace("watch_a_parent_that_already_has_zombies") {
        return;
    }
    let parent = Command::new(fixture("zombie_parent"))
        .args(["40", "5", "100", "500"])
        .stdout(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("{e}"));
    let pid = parent.id();
    let _guard = Reap(parent);
    wait_until("36 zombies before the attach", || zombie_children(pid) >= 36);
    let (docs, stderr) = watch(pid, "1", "2");
    let last = docs.last().unwrap_or_else(|| panic!("no report; stderr: {stderr}"));
    let z = last["zombies"]
        .as_array()
        .and_then(|a| a.iter().find(|z| z["pid"] == pid))
        .unwrap_or_else(|| panic!("no zombies for {pid}:\n{:#}", last["zombies"]));
    assert!(z["max_zombies"].as_u64().is_some_and(|m| m >= 40), "{z:#}");
    assert_eq!(z["growing"], true, "{z:#}");
    assert!(z["sigchld"]["coalesced"].as_u64().is_some_and(|c| c > 0), "{z:#}");
    let first = &docs[0]["zombies"];
    assert!(
        first
            .as_array()
            .and_then(|a| a.iter().find(|z| z["pid"] == pid))
            .is_some_and(|z| z["zombies"].as_u64().is_some_and(|n| n >= 30)),
        "zombies from before the attach are counted in the first report: {first:#}"
    );
}

#[test]
fn watch_a_process_blocked_on_a_lock_names_the_holder() {
    if !can_trace("watch_a_process_blocked_on_a_lock_names_the_holder") {
        return;
    }
    let lock = std::env::temp_dir().join(format!("tracer-watch-lock-{}.lock", std::process::id()));
    let lock_path = lock.to_string_lossy().into_owned();
    let mut child = Command::new(fixture("flock_contend"))
        .args([lock_path.as_str(), "3000"])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("{e}"));
    let stdout = child.stdout.take().unwrap_or_else(|| panic!("no stdout"));
    let _guard = Reap(child);
    // Keep reading the fixture's output to its end: a closed pipe would kill it with SIGPIPE.
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let mut holder = 0u32;
    let mut waiter = 0u32;
    while let Ok(line) = rx.recv_timeout(Duration::from_secs(5)) {
        if let Some(p) = line.strip_prefix("HOLDER ") {
            holder = p.trim().parse().unwrap_or(0);
        }
        if let Some(p) = line.strip_prefix("WAITER ") {
            waiter = p.trim().parse().unwrap_or(0);
        }
        if line.starts_with("EWOULDBLOCK") {
            break;
        }
    }
    assert!(holder > 0 && waiter > 0, "fixture did not announce its processes");
    wait_until("the waiter blocked in flock() before the attach", || {
        blocked_on_a_lock(waiter)
    });
    let (docs, stderr) = watch(waiter, "1", "5");
    let _ = std::fs::remove_file(&lock);
    let file = |doc: &Value| -> Option<Value> {
        doc["locks"]
            .as_array()
            .and_then(|a| a.iter().find(|l| l["file"] == lock_path.as_str()).cloned())
    };
    let first = docs
        .first()
        .and_then(file)
        .unwrap_or_else(|| panic!("no lock in the first report; stderr: {stderr}\n{docs:#?}"));
    assert!(
        first["waiting"]
            .as_array()
            .is_some_and(|w| w.iter().any(|w| w["pid"] == waiter)),
        "the waiter is waiting: {first:#}"
    );
    assert!(
        first["held"]
            .as_array()
            .is_some_and(|h| h.iter().any(|h| h["pid"] == holder && h["traced"] == false)),
        "the untraced holder is named from /proc/locks: {first:#}"
    );
    let last = docs
        .last()
        .and_then(file)
        .unwrap_or_else(|| panic!("no lock in the last report"));
    assert_eq!(last["max_waiter"]["pid"], waiter, "{last:#}");
    assert_eq!(last["max_wait_holder"]["pid"], holder, "{last:#}");
    assert!(last["max_wait_ms"].as_u64().is_some_and(|w| w >= 1000), "{last:#}");
    assert!(
        stack_functions(&last["max_waiter"])
            .iter()
            .any(|f| f == "wait_for_lock"),
        "the blocked call's stack, taken when it returned: {last:#}"
    );
}
