//! The agent's always-on mode (issue 20): every process counted by the `iter/task` program,
//! a growing process escalated and named with its stack, healthy ones left alone, the budget
//! counted, and nothing left in the kernel after `kill -9`.

use std::{
    collections::BTreeMap,
    process::Command,
    time::{Duration, Instant},
};

use integration_tests::{
    agent::{AgentProcess, Service, metric},
    can_trace, fixture, have_tool, open_fds, stack_functions, tracer,
};

/// `tracer counts`: (source line, pid -> open fds).
fn counts() -> (String, BTreeMap<u32, u64>) {
    let out = tracer(&["counts"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let source = text.lines().next().unwrap_or_default().to_owned();
    let map = text
        .lines()
        .skip(2)
        .filter_map(|l| {
            let mut f = l.split_whitespace();
            Some((f.next()?.parse().ok()?, f.next()?.parse().ok()?))
        })
        .collect();
    (source, map)
}

fn proc_counts() -> BTreeMap<u32, u64> {
    std::fs::read_dir("/proc")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter_map(|pid| Some((pid, std::fs::read_dir(format!("/proc/{pid}/fd")).ok()?.count() as u64)))
        .collect()
}

#[test]
fn the_iterator_counts_every_process_as_proc_does() {
    if !can_trace("the_iterator_counts_every_process_as_proc_does") {
        return;
    }
    let big = Service::start(&fixture("many_fds"), &["19000"]);
    let before = proc_counts();
    let (source, iter) = counts();
    let after = proc_counts();
    assert_eq!(source, "# source: iterator", "the iterator loads on this kernel");
    let big_open = open_fds(big.pid()) as u64;
    assert!(big_open >= 19_000, "{big_open}");
    assert_eq!(iter.get(&big.pid()), Some(&big_open), "the 19,000-fd process, exactly");
    // Every process whose /proc count did not move around the read has the same count.
    let mut compared = 0;
    for (pid, n) in &before {
        if after.get(pid) != Some(n) {
            continue;
        }
        match iter.get(pid) {
            Some(c) => {
                assert_eq!(c, n, "PID {pid}: iterator {c}, /proc {n}");
                compared += 1;
            }
            // Kernel threads are not counted (and have nothing open); the task iterator skips
            // PID 1 on our kernels (the agent counts it from /proc).
            None => assert!(*pid == 1 || *n == 0, "PID {pid} ({n} fds) not counted"),
        }
    }
    // Kernel threads are not counted: a quiet machine has only a handful of processes.
    assert!(compared >= 3, "only {compared} processes compared");
}

/// Polls the agent's JSON report until `found` says yes, or `limit` passes.
fn poll_report<T>(
    agent: &AgentProcess,
    limit: Duration,
    mut found: impl FnMut(&serde_json::Value) -> Option<T>,
) -> Option<T> {
    let start = Instant::now();
    while start.elapsed() < limit {
        let r = agent.get("/report?format=json&top=1000");
        if let Ok(v) = serde_json::from_slice::<serde_json::Value>(&r.body)
            && let Some(t) = found(&v)
        {
            return Some(t);
        }
        std::thread::sleep(Duration::from_millis(250));
    }
    None
}

fn escalated_pids(report: &serde_json::Value, list: &str) -> Vec<(u64, String)> {
    report["escalation"][list]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|e| {
                    (
                        e["pid"].as_u64().unwrap_or(0),
                        e["reason"].as_str().unwrap_or("").to_owned(),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

/// A leaker under `prlimit --nofile=1024`, leaking one socket every `ms`.
fn leaker(ms: &str) -> Service {
    let bin = fixture("agent_leaker");
    let bin = bin.to_str().unwrap_or_else(|| panic!("fixture path"));
    Service::start(
        std::path::Path::new("prlimit"),
        &["--nofile=1024:1024", bin, ms, "/dev/null"],
    )
}

#[test]
fn a_leak_nobody_selected_is_escalated_and_named_before_emfile() {
    if !can_trace("a_leak_nobody_selected_is_escalated_and_named_before_emfile") {
        return;
    }
    let agent = AgentProcess::start(&[]);
    assert!(
        agent.stderr().contains("tracer: fd counts from the BPF task iterator"),
        "{}",
        agent.stderr()
    );
    // 33 fds a second under a soft limit of 1024: EMFILE after ~31 s.
    let leak = leaker("30");
    let pid = u64::from(leak.pid());
    let named = poll_report(&agent, Duration::from_secs(25), |r| {
        let site = r["suspects"]
            .as_array()?
            .iter()
            .find(|s| s["pid"].as_u64() == Some(pid))?
            .clone();
        stack_functions(&site)
            .iter()
            .any(|f| f == "leak_connection")
            .then(|| (r.clone(), site))
    });
    let Some((report, site)) = named else {
        panic!(
            "the leak was not named within 25 s; agent stderr:\n{}\nreport:\n{}",
            agent.stderr(),
            agent.get("/report").text()
        );
    };
    let open = open_fds(leak.pid());
    assert!(open < 1024, "named before EMFILE: it holds {open}");
    assert_eq!(site["kind"], "socket");
    assert!(
        escalated_pids(&report, "escalated").contains(&(pid, "rising".to_owned())),
        "{}",
        report["escalation"]
    );
    assert_eq!(report["escalation"]["counts_from"], "iterator");
    assert_eq!(report["escalation"]["syscall_hook_attached"], true);
    let m = agent.get("/metrics").text();
    assert!(
        metric(&m, r#"tracer_escalations_total{reason="rising"}"#).is_some_and(|v| v >= 1.0),
        "{m}"
    );
    assert_eq!(metric(&m, "tracer_syscall_hook_attached"), Some(1.0));
    let ttl = metric(
        &m,
        r#"tracer_time_to_fd_limit_seconds{comm="agent_leaker",container=""}"#,
    );
    assert!(ttl.is_some_and(|t| t > 0.0 && t < 40.0), "time to EMFILE: {ttl:?}");
    let profile = agent.get("/debug/folded/fds").text();
    assert!(profile.contains("leak_connection"), "{profile}");
    assert_eq!(agent.stop(), 0);
}

#[test]
fn healthy_processes_are_counted_but_never_escalated() {
    if !can_trace("healthy_processes_are_counted_but_never_escalated") {
        return;
    }
    let agent = AgentProcess::start(&[]);
    // A pool that fills at once and stays flat, and a churn of open+close with a few fds held.
    let pool = Command::new(fixture("pool_fills"))
        .args(["64", "8000"])
        .spawn()
        .unwrap_or_else(|e| panic!("{e}"));
    let churn = Command::new(fixture("churn"))
        .args(["spin", "8", "2"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("{e}"));
    let watched = [u64::from(pool.id()), u64::from(churn.id())];
    let start = Instant::now();
    let mut seen_pool = false;
    while start.elapsed() < Duration::from_secs(7) {
        let r = agent.get("/report?format=json");
        let v: serde_json::Value = serde_json::from_slice(&r.body).unwrap_or_else(|e| panic!("{e}"));
        for list in ["escalated", "released"] {
            let hit: Vec<_> = escalated_pids(&v, list)
                .into_iter()
                .filter(|(p, _)| watched.contains(p))
                .collect();
            assert!(
                hit.is_empty(),
                "a healthy process was escalated: {hit:?}\n{}",
                v["escalation"]
            );
        }
        let m = agent.get("/metrics").text();
        // Counted all along, under kind "unknown" (not traced).
        seen_pool |=
            metric(&m, r#"tracer_open_fds{comm="pool_fills",container="",kind="unknown"}"#).is_some_and(|n| n >= 64.0);
        std::thread::sleep(Duration::from_millis(500));
    }
    assert!(seen_pool, "the pool's 64 sockets were never counted");
    let m = agent.get("/metrics").text();
    assert!(metric(&m, "tracer_counted_processes").is_some_and(|n| n >= 5.0), "{m}");
    assert_eq!(metric(&m, r#"tracer_fd_count_source{source="iterator"}"#), Some(1.0));
    if metric(&m, "tracer_escalated_processes") == Some(0.0) {
        // Nothing on the host grows: no syscall hook at all.
        assert_eq!(metric(&m, "tracer_syscall_hook_attached"), Some(0.0), "{m}");
    }
    for mut c in [pool, churn] {
        let _ = c.kill();
        let _ = c.wait();
    }
    assert_eq!(agent.stop(), 0);
}

#[test]
fn the_budget_refuses_and_releases_and_a_released_process_costs_nothing() {
    if !can_trace("the_budget_refuses_and_releases_and_a_released_process_costs_nothing") {
        return;
    }
    // One process at a time, 50 records a second: a leaker makes ~100.
    let agent = AgentProcess::start(&["--escalation-budget", "1", "--escalation-records", "50"]);
    let first = leaker("30");
    let second = leaker("30");
    let pids = [u64::from(first.pid()), u64::from(second.pid())];
    let released = poll_report(&agent, Duration::from_secs(30), |r| {
        escalated_pids(r, "released")
            .into_iter()
            .find(|(p, why)| pids.contains(p) && why == "budget")
            .map(|(p, _)| (p, r.clone()))
    });
    let Some((gone, report)) = released else {
        panic!("no release for the budget:\n{}", agent.get("/report").text());
    };
    assert!(
        report["escalation"]["refused"].as_u64().is_some_and(|n| n >= 1),
        "{}",
        report["escalation"]
    );
    let m = agent.get("/metrics").text();
    assert!(
        metric(&m, "tracer_escalations_refused_total").is_some_and(|n| n >= 1.0),
        "{m}"
    );
    assert!(metric(&m, r#"tracer_escalation_releases_total{reason="budget"}"#).is_some_and(|n| n >= 1.0));
    // The other one goes too, for the same reason; then nothing of theirs is recorded.
    drop(if gone == pids[0] { first } else { second });
    let quiet = poll_report(&agent, Duration::from_secs(20), |r| {
        let still: Vec<_> = escalated_pids(r, "escalated")
            .into_iter()
            .filter(|(p, _)| pids.contains(p))
            .collect();
        still.is_empty().then_some(())
    });
    assert!(quiet.is_some(), "{}", agent.get("/report").text());
    let records = |m: &str| metric(m, "tracer_records_total").unwrap_or(f64::NAN);
    let r0 = records(&agent.get("/metrics").text());
    std::thread::sleep(Duration::from_secs(2));
    let r1 = records(&agent.get("/metrics").text());
    // A leaker traced makes ~200 records in 2 s; released, none (other processes may make a few).
    assert!(r1 - r0 < 50.0, "records went on: {r0} -> {r1}");
    assert_eq!(agent.stop(), 0);
}

/// `prog_id`s and `link_id`s the process holds (its fds' fdinfo).
fn bpf_ids(pid: u32) -> (Vec<String>, Vec<String>) {
    let (mut progs, mut links) = (Vec::new(), Vec::new());
    for e in std::fs::read_dir(format!("/proc/{pid}/fdinfo"))
        .into_iter()
        .flatten()
        .flatten()
    {
        let text = std::fs::read_to_string(e.path()).unwrap_or_default();
        for l in text.lines() {
            if let Some(id) = l.strip_prefix("prog_id:") {
                progs.push(id.trim().to_owned());
            }
            if let Some(id) = l.strip_prefix("link_id:") {
                links.push(id.trim().to_owned());
            }
        }
    }
    (progs, links)
}

#[test]
fn a_killed_agent_leaves_no_program_or_link_behind() {
    if !can_trace("a_killed_agent_leaves_no_program_or_link_behind") || !have_tool("a_killed_agent", "bpftool") {
        return;
    }
    let mut agent = AgentProcess::start(&[]);
    let leak = leaker("20");
    // Escalated: the syscall hook is attached too.
    let attached = poll_report(&agent, Duration::from_secs(20), |r| {
        (r["escalation"]["syscall_hook_attached"] == true).then_some(())
    });
    assert!(attached.is_some(), "{}", agent.get("/report").text());
    let (progs, links) = bpf_ids(agent.child.id());
    // Every program, and at least the syscall hook's link.
    assert!(progs.len() >= 9 && !links.is_empty(), "{progs:?} {links:?}");
    let _ = agent.child.kill();
    let _ = agent.child.wait();
    drop(leak);
    std::thread::sleep(Duration::from_millis(500));
    let left = |what: &str, id: &String| {
        Command::new("bpftool")
            .args([what, "show", "id", id])
            .output()
            .is_ok_and(|o| o.status.success())
    };
    let progs_left: Vec<_> = progs.iter().filter(|id| left("prog", id)).collect();
    let links_left: Vec<_> = links.iter().filter(|id| left("link", id)).collect();
    assert!(
        progs_left.is_empty() && links_left.is_empty(),
        "left behind: programs {progs_left:?}, links {links_left:?}"
    );
}

#[test]
fn asking_about_a_process_traces_it_at_once() {
    if !can_trace("asking_about_a_process_traces_it_at_once") {
        return;
    }
    let agent = AgentProcess::start(&["--escalation-budget", "1"]);
    // Flat: it would never be escalated by its count.
    let mut pool = Command::new(fixture("pool_fills"))
        .args(["64", "60000"])
        .spawn()
        .unwrap_or_else(|e| panic!("{e}"));
    let pid = pool.id();
    // Counted at the next tick.
    std::thread::sleep(Duration::from_secs(2));
    let post = |query: &str| {
        integration_tests::agent::http_raw(
            agent.addr,
            format!("POST /escalate{query} HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
                .as_bytes(),
        )
    };
    let r = post(&format!("?pid={pid}"));
    assert_eq!(r.status, 200, "{}", r.text());
    assert!(r.text().contains("escalated"), "{}", r.text());
    assert!(post(&format!("?pid={pid}")).text().contains("traced already"));
    assert_eq!(post("?pid=4000000000").status, 409);
    assert_eq!(post("?pid=abc").status, 400);
    assert_eq!(agent.get("/escalate").status, 405);
    let v: serde_json::Value =
        serde_json::from_slice(&agent.get("/report?format=json&top=1000").body).unwrap_or_else(|e| panic!("{e}"));
    assert!(
        escalated_pids(&v, "escalated").contains(&(u64::from(pid), "asked".to_owned())),
        "{}",
        v["escalation"]
    );
    // Seeded from /proc: its sockets are known, by kind.
    let proc = v["processes"]
        .as_array()
        .and_then(|a| a.iter().find(|p| p["pid"].as_u64() == Some(u64::from(pid))))
        .cloned()
        .unwrap_or_default();
    assert!(proc["by_kind"]["socket"].as_u64().is_some_and(|n| n >= 64), "{proc}");
    let m = agent.get("/metrics").text();
    assert_eq!(metric(&m, r#"tracer_escalations_total{reason="asked"}"#), Some(1.0));
    let _ = pool.kill();
    let _ = pool.wait();
    assert_eq!(agent.stop(), 0);
}
