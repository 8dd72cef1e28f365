//! Beyond fds (issue 4): SysV IPC orphans, flock/fcntl contention, zombies with merged SIGCHLD,
//! EMFILE, select beyond FD_SETSIZE, double close and use after close. Each fixture has a
//! well-behaved twin (`--fixed`) that must produce no finding, and each twin test also checks
//! what the tracer must have seen of the twin (its objects, locks, signals, children, fds), so
//! that an agent that traced nothing cannot pass it.

use integration_tests::{Traced, can_trace, fixture, run_traced, stack_functions};
use serde_json::Value;

fn path_of(name: &str) -> String {
    fixture(name).to_string_lossy().into_owned()
}

fn list<'a>(report: &'a Value, key: &str) -> Vec<&'a Value> {
    report[key].as_array().map(|v| v.iter().collect()).unwrap_or_default()
}

fn incidents<'a>(report: &'a Value, kind: &str) -> Vec<&'a Value> {
    list(report, "incidents")
        .into_iter()
        .filter(|i| i["kind"] == kind)
        .collect()
}

/// Checks the stack order: `inner` is called (directly or not) by `outer`.
fn calls(v: &Value, outer: &str, inner: &str) -> bool {
    let fs = stack_functions(v);
    match (fs.iter().position(|s| s == inner), fs.iter().position(|s| s == outer)) {
        (Some(i), Some(o)) => i < o,
        _ => false,
    }
}

/// `PREFIX value` lines of the fixture's output.
fn announced(t: &Traced, prefix: &str) -> Vec<String> {
    t.stdout
        .lines()
        .filter_map(|l| l.strip_prefix(prefix).map(|v| v.trim().to_owned()))
        .collect()
}

/// The report's summary of the traced command (the lowest pid: the command itself).
fn command_process(report: &Value) -> Value {
    list(report, "processes")
        .into_iter()
        .min_by_key(|p| p["pid"].as_u64().unwrap_or(u64::MAX))
        .cloned()
        .unwrap_or_else(|| panic!("no process in the report:\n{report:#}"))
}

/// Fds the traced command created, closed ones included.
fn allocations(report: &Value) -> u64 {
    command_process(report)["allocations"].as_u64().unwrap_or(0)
}

/// Removes SysV objects a buggy fixture leaves, even when an assertion fails.
struct IpcCleanup(Vec<(&'static str, String)>);

impl Drop for IpcCleanup {
    fn drop(&mut self) {
        for (flag, id) in &self.0 {
            let _ = std::process::Command::new("ipcrm").args([flag, id.as_str()]).status();
        }
    }
}

#[test]
fn sysv_orphans_are_reported_with_the_creators_stack() {
    if !can_trace("sysv_orphans_are_reported_with_the_creators_stack") {
        return;
    }
    let t = run_traced(&[], &[&path_of("sysv_orphans"), "8", "50"]);
    let sems = announced(&t, "ORPHAN sem ");
    let shms = announced(&t, "ORPHAN shm ");
    let _cleanup = IpcCleanup(
        sems.iter()
            .map(|id| ("-s", id.clone()))
            .chain(shms.iter().map(|id| ("-m", id.clone())))
            .collect(),
    );
    assert_eq!(t.code, 0, "stderr: {}", t.stderr);
    assert_eq!(sems.len(), 8, "fixture output: {}", t.stdout);
    let orphans = list(&t.report["ipc"], "orphans");
    let sem = orphans
        .iter()
        .find(|g| g["resource"] == "sysv_sem")
        .unwrap_or_else(|| panic!("no orphaned semaphore sets:\n{:#}", t.report["ipc"]));
    assert_eq!(sem["count"], 8, "{sem:#}");
    assert!(
        calls(sem, "run_worker", "create_work_set"),
        "stack: {:?}",
        stack_functions(sem)
    );
    let ids: Vec<String> = sem["ids"]
        .as_array()
        .map(|a| a.iter().map(|v| v.to_string()).collect())
        .unwrap_or_default();
    for id in &sems {
        assert!(ids.contains(id), "orphan id {id} missing from {ids:?}");
    }
    assert_eq!(
        sem["creator_pids"].as_array().map(Vec::len),
        Some(8),
        "one creator per worker"
    );
    let shm = orphans
        .iter()
        .find(|g| g["resource"] == "sysv_shm")
        .unwrap_or_else(|| panic!("no orphaned segment:\n{:#}", t.report["ipc"]));
    assert!(stack_functions(shm).iter().any(|f| f == "create_shared_segment"));
    assert!(
        !orphans.iter().any(|g| g["resource"] == "sysv_msg"),
        "the queue was removed"
    );
    assert!(t.report["system"]["sem_sets"]["max"].as_u64().is_some_and(|m| m > 0));
}

#[test]
fn sysv_twin_leaves_no_orphans() {
    if !can_trace("sysv_twin_leaves_no_orphans") {
        return;
    }
    let t = run_traced(&[], &[&path_of("sysv_orphans"), "--fixed", "8", "50"]);
    assert_eq!(t.code, 0, "stderr: {}", t.stderr);
    assert_eq!(list(&t.report["ipc"], "orphans").len(), 0, "{:#}", t.report["ipc"]);
    // Seen: every set, the segment and the queue it created, each removed.
    assert_eq!(
        t.report["ipc"]["removed"],
        serde_json::json!([8, 1, 1]),
        "sem, shm, msg removed: {:#}",
        t.report["ipc"]
    );
    assert_eq!(t.report["ipc"]["live"], 0, "{:#}", t.report["ipc"]);
    assert!(list(&t.report, "suspects").is_empty(), "{:#}", t.report["suspects"]);
}

#[test]
fn semget_enospc_is_reported_with_the_stack() {
    if !can_trace("semget_enospc_is_reported_with_the_stack") {
        return;
    }
    // SEMMNI is per IPC namespace: lower it in a private one, not on the machine.
    let script = format!(
        "echo '250 32000 32 20' > /proc/sys/kernel/sem && exec {} enospc",
        path_of("sysv_orphans")
    );
    let t = run_traced(&[], &["unshare", "-i", "sh", "-c", &script]);
    assert_eq!(t.code, 0, "stderr: {}\nstdout: {}", t.stderr, t.stdout);
    let failures = incidents(&t.report, "limit_failure");
    let f = failures
        .iter()
        .find(|i| i["syscall"] == "semget")
        .unwrap_or_else(|| panic!("no semget failure:\n{:#}", t.report["incidents"]));
    assert_eq!(f["errno"], "ENOSPC");
    assert!(stack_functions(f).iter().any(|s| s == "exhaust_sets"), "{f:#}");
    assert!(
        list(&t.report["ipc"], "orphans").is_empty(),
        "the fixture removed its sets"
    );
}

fn flock_contention(posix: bool) {
    let bin = path_of("flock_contend");
    let lock = std::env::temp_dir().join(format!("tracer-flock-{}-{posix}.lock", std::process::id()));
    let lock_path = lock.to_string_lossy().into_owned();
    let mut cmd = vec![bin.as_str()];
    if posix {
        cmd.push("posix");
    }
    cmd.extend([lock_path.as_str(), "1500"]);
    let t = run_traced(&[], &cmd);
    let _ = std::fs::remove_file(&lock);
    assert_eq!(t.code, 0, "stderr: {}", t.stderr);
    let holder: u64 = announced(&t, "HOLDER ")
        .first()
        .and_then(|p| p.parse().ok())
        .unwrap_or(0);
    let waiter: u64 = announced(&t, "WAITER ")
        .first()
        .and_then(|p| p.parse().ok())
        .unwrap_or(0);
    let locks = list(&t.report, "locks");
    let l = locks
        .iter()
        .find(|l| l["file"] == lock_path.as_str())
        .unwrap_or_else(|| panic!("no lock report for {lock_path}:\n{:#}", t.report["locks"]));
    assert_eq!(l["suspect"], true, "{l:#}");
    let waited = l["max_wait_ms"].as_u64().unwrap_or(0);
    assert!((1000..5000).contains(&waited), "waited {waited} ms");
    assert_eq!(l["max_waiter"]["pid"], waiter, "{l:#}");
    assert_eq!(l["max_wait_holder"]["pid"], holder, "{l:#}");
    let (wait_fn, take_fn) = if posix {
        ("wait_for_posix_lock", "take_posix_lock")
    } else {
        ("wait_for_lock", "take_lock_and_work")
    };
    assert!(
        stack_functions(&l["max_waiter"]).iter().any(|f| f == wait_fn),
        "waiter stack: {:?}",
        stack_functions(&l["max_waiter"])
    );
    assert!(
        stack_functions(&l["max_wait_holder"]).iter().any(|f| f == take_fn),
        "holder stack: {:?}",
        stack_functions(&l["max_wait_holder"])
    );
    if !posix {
        let failed = incidents(&t.report, "lock_failure");
        let f = failed
            .iter()
            .find(|i| stack_functions(i).iter().any(|s| s == "try_lock_nonblocking"))
            .unwrap_or_else(|| panic!("no LOCK_NB failure:\n{:#}", t.report["incidents"]));
        assert_eq!(f["errno"], "EWOULDBLOCK");
        assert_eq!(f["holder_pid"], holder);
    }
}

#[test]
fn flock_contention_names_holder_waiter_and_wait_time() {
    if can_trace("flock_contention_names_holder_waiter_and_wait_time") {
        flock_contention(false);
    }
}

#[test]
fn posix_lock_contention_names_holder_and_waiter() {
    if can_trace("posix_lock_contention_names_holder_and_waiter") {
        flock_contention(true);
    }
}

#[test]
fn flock_twin_is_not_a_suspect() {
    if !can_trace("flock_twin_is_not_a_suspect") {
        return;
    }
    let lock = std::env::temp_dir().join(format!("tracer-flock-twin-{}.lock", std::process::id()));
    let lock_path = lock.to_string_lossy().into_owned();
    let t = run_traced(&[], &[&path_of("flock_contend"), "--fixed", &lock_path]);
    // The lock is found by inode: the twin closes its fds within milliseconds, often before the
    // agent reads the name from /proc.
    let ino = std::fs::metadata(&lock).map(|m| std::os::unix::fs::MetadataExt::ino(&m));
    let _ = std::fs::remove_file(&lock);
    let ino = ino.unwrap_or_else(|e| panic!("the fixture left no lock file: {e}"));
    assert_eq!(t.code, 0, "stderr: {}", t.stderr);
    assert!(
        list(&t.report, "locks").iter().all(|l| l["suspect"] == false),
        "{:#}",
        t.report["locks"]
    );
    // Seen: the short wait of the child for the parent's brief hold, with both named.
    let holder: u64 = announced(&t, "HOLDER ")
        .first()
        .and_then(|p| p.parse().ok())
        .unwrap_or(0);
    let waiter: u64 = announced(&t, "WAITER ")
        .first()
        .and_then(|p| p.parse().ok())
        .unwrap_or(0);
    let l = list(&t.report, "locks")
        .into_iter()
        .find(|l| l["ino"] == ino)
        .unwrap_or_else(|| panic!("the twin's lock (inode {ino}) was not seen:\n{:#}", t.report["locks"]));
    assert!(l["waits"].as_u64().is_some_and(|w| w >= 1), "{l:#}");
    assert_eq!(l["max_waiter"]["pid"], waiter, "{l:#}");
    assert_eq!(l["max_wait_holder"]["pid"], holder, "{l:#}");
    assert!(l["max_wait_ms"].as_u64().is_some_and(|w| w < 1000), "{l:#}");
    assert!(
        incidents(&t.report, "lock_failure").is_empty(),
        "{:#}",
        t.report["incidents"]
    );
}

#[test]
fn zombies_grow_when_one_child_is_reaped_per_sigchld() {
    if !can_trace("zombies_grow_when_one_child_is_reaped_per_sigchld") {
        return;
    }
    let t = run_traced(&[], &[&path_of("zombie_parent")]);
    assert_eq!(t.code, 0, "stderr: {}", t.stderr);
    let zombies = list(&t.report, "zombies");
    // The fixture reaps everything in a final loop (seen at its wait4 since issue 11), so its
    // count ends at 0: the pile is what flags it, with its growth while it piled up.
    let z = zombies
        .iter()
        .find(|z| z["piled"] == true)
        .unwrap_or_else(|| panic!("no zombie pile:\n{:#}", t.report["zombies"]));
    assert!(z["growth_per_min"].as_f64().is_some_and(|g| g > 0.0), "{z:#}");
    assert!(z["max_zombies"].as_u64().is_some_and(|m| m >= 40), "{z:#}");
    assert!(z["sigchld"]["coalesced"].as_u64().is_some_and(|c| c >= 40), "{z:#}");
    assert!(z["sigchld"]["generated"].as_u64().is_some_and(|g| g >= 90), "{z:#}");
    assert!(
        list(&t.report, "signals")
            .iter()
            .any(|s| s["signal"] == "SIGCHLD" && s["pid"] == z["pid"])
    );
}

#[test]
fn zombie_twin_reaps_everything() {
    if !can_trace("zombie_twin_reaps_everything") {
        return;
    }
    let t = run_traced(&[], &[&path_of("zombie_parent"), "--fixed"]);
    assert_eq!(t.code, 0, "stderr: {}", t.stderr);
    for z in list(&t.report, "zombies") {
        assert_eq!(z["growing"], false, "{z:#}");
        assert_eq!(z["piled"], false, "{z:#}");
        assert!(z["max_zombies"].as_u64().is_some_and(|m| m <= 10), "{z:#}");
    }
    // Seen: the parent's 100 children (20 bursts of 5) exited and reaped, and its SIGCHLDs.
    let parent = command_process(&t.report)["pid"].clone();
    let z = list(&t.report, "zombies")
        .into_iter()
        .find(|z| z["pid"] == parent)
        .unwrap_or_else(|| panic!("the twin's children were not seen:\n{:#}", t.report["zombies"]));
    assert_eq!(z["reaped"], 100, "{z:#}");
    assert_eq!(z["zombies"], 0, "{z:#}");
    assert!(z["sigchld"]["generated"].as_u64().is_some_and(|g| g >= 90), "{z:#}");
    assert!(z["sigchld"]["delivered"].as_u64().is_some_and(|d| d > 0), "{z:#}");
}

#[test]
fn emfile_is_reported_with_the_stack() {
    if !can_trace("emfile_is_reported_with_the_stack") {
        return;
    }
    let t = run_traced(&[], &[&path_of("emfile")]);
    assert_eq!(t.code, 0, "stderr: {}", t.stderr);
    let f = incidents(&t.report, "limit_failure");
    let f = f
        .iter()
        .find(|i| i["errno"] == "EMFILE")
        .unwrap_or_else(|| panic!("no EMFILE:\n{:#}", t.report["incidents"]));
    assert!(calls(f, "main", "leak_descriptor"), "{:?}", stack_functions(f));
    assert!(
        f["value"].as_u64().is_some_and(|open| open >= 60),
        "open fds at failure: {f:#}"
    );
    let p = list(&t.report, "processes");
    assert!(p.iter().any(|p| p["limit_failures"].as_u64().is_some_and(|n| n >= 3)));

    let twin = run_traced(&[], &[&path_of("emfile"), "--fixed"]);
    assert_eq!(twin.code, 0);
    assert!(
        incidents(&twin.report, "limit_failure").is_empty(),
        "{:#}",
        twin.report["incidents"]
    );
    // Seen: its LIMIT*2 opens (each closed at once).
    let opened: u64 = announced(&twin, "OPENED ")
        .first()
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
    assert_eq!(opened, 128, "fixture output: {}", twin.stdout);
    assert!(
        allocations(&twin.report) >= opened,
        "{:#}",
        command_process(&twin.report)
    );
    assert_eq!(command_process(&twin.report)["limit_failures"], 0);
}

#[test]
fn select_beyond_fd_setsize_is_reported() {
    if !can_trace("select_beyond_fd_setsize_is_reported") {
        return;
    }
    let t = run_traced(&[], &[&path_of("select_big")]);
    assert_eq!(t.code, 0, "stderr: {}", t.stderr);
    let s = incidents(&t.report, "select_beyond_fd_setsize");
    assert_eq!(s.len(), 1, "{:#}", t.report["incidents"]);
    assert_eq!(s[0]["count"], 3);
    assert_eq!(s[0]["value"], 1101, "nfds");
    assert!(stack_functions(s[0]).iter().any(|f| f == "wait_readable"));

    let twin = run_traced(&[], &[&path_of("select_big"), "--fixed"]);
    assert_eq!(twin.code, 0);
    assert!(
        list(&twin.report, "incidents").is_empty(),
        "a select on a small fd and poll on a big one are fine: {:#}",
        twin.report["incidents"]
    );
    // Seen: the open of /dev/null and its duplicate at 1100.
    assert!(allocations(&twin.report) >= 2, "{:#}", command_process(&twin.report));
}

#[test]
fn double_close_and_use_after_close_name_both_closes() {
    if !can_trace("double_close_and_use_after_close_name_both_closes") {
        return;
    }
    let t = run_traced(&["--close-stacks"], &[&path_of("double_close")]);
    assert_eq!(t.code, 0, "stderr: {}", t.stderr);
    let d = incidents(&t.report, "double_close");
    assert_eq!(d.len(), 1, "{:#}", t.report["incidents"]);
    assert!(
        stack_functions(d[0]).iter().any(|f| f == "cleanup_handle"),
        "{:#}",
        d[0]
    );
    let first = &d[0]["previous_close"];
    assert!(
        stack_functions(first).iter().any(|f| f == "release_handle"),
        "first close: {first:#}"
    );
    let u = incidents(&t.report, "use_after_close");
    assert!(!u.is_empty(), "{:#}", t.report["incidents"]);
    for i in &u {
        assert!(stack_functions(i).iter().any(|f| f == "worker_use"), "{i:#}");
        assert!(
            stack_functions(&i["previous_close"])
                .iter()
                .any(|f| f == "worker_close_again"),
            "the close that took the fd away: {i:#}"
        );
    }
    let bad = incidents(&t.report, "bad_descriptor");
    assert!(
        bad.iter().any(|i| i["fd"] == 999 && i["syscall"] == "read"),
        "{:#}",
        t.report["incidents"]
    );

    // Without --close-stacks the double close is still found, without the first close's stack.
    let plain = run_traced(&[], &[&path_of("double_close")]);
    let d = incidents(&plain.report, "double_close");
    assert_eq!(d.len(), 1, "{:#}", plain.report["incidents"]);
    assert!(d[0]["previous_close"]["tid"].as_u64().is_some());

    let twin = run_traced(&["--close-stacks"], &[&path_of("double_close"), "--fixed"]);
    assert_eq!(twin.code, 0);
    assert!(
        list(&twin.report, "incidents").is_empty(),
        "{:#}",
        twin.report["incidents"]
    );
    // Seen: its three opens (the fd closed once, thread A's, the one B reopens), none left open.
    assert_eq!(announced(&twin, "RACE reopen ").len(), 1, "{}", twin.stdout);
    assert!(allocations(&twin.report) >= 3, "{:#}", command_process(&twin.report));
    assert!(
        !list(&twin.report, "outstanding").iter().any(|s| stack_functions(s)
            .iter()
            .any(|f| f.starts_with("worker_") || f == "close_twice")),
        "{:#}",
        twin.report["outstanding"]
    );
}

#[test]
fn fork_failing_with_eagain_is_reported_with_the_stack() {
    if !can_trace("fork_failing_with_eagain_is_reported_with_the_stack") {
        return;
    }
    let t = run_traced(&[], &[&path_of("fork_limit")]);
    assert_eq!(t.code, 0, "stderr: {}\nstdout: {}", t.stderr, t.stdout);
    assert_eq!(announced(&t, "EAGAIN after ").len(), 1, "{}", t.stdout);
    let f = incidents(&t.report, "limit_failure");
    let f = f
        .iter()
        .find(|i| i["errno"] == "EAGAIN")
        .unwrap_or_else(|| panic!("no fork EAGAIN:\n{:#}", t.report["incidents"]));
    assert!(
        ["clone", "clone3", "fork"].contains(&f["syscall"].as_str().unwrap_or("")),
        "{f:#}"
    );
    assert!(stack_functions(f).iter().any(|s| s == "spawn_child"), "{f:#}");

    let twin = run_traced(&[], &[&path_of("fork_limit"), "--fixed"]);
    assert_eq!(twin.code, 0);
    assert!(
        incidents(&twin.report, "limit_failure").is_empty(),
        "{:#}",
        twin.report["incidents"]
    );
    // Seen: its 3 children, followed and reaped.
    assert_eq!(announced(&twin, "FORKED ").first().map(String::as_str), Some("3"));
    let parent = command_process(&twin.report)["pid"].clone();
    assert!(
        list(&twin.report, "processes").len() >= 4,
        "the parent and its 3 children: {:#}",
        twin.report["processes"]
    );
    let z = list(&twin.report, "zombies")
        .into_iter()
        .find(|z| z["pid"] == parent)
        .unwrap_or_else(|| panic!("the twin's children were not seen:\n{:#}", twin.report["zombies"]));
    assert_eq!(z["reaped"], 3, "{z:#}");
}
