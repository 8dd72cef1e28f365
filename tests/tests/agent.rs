//! Production mode against real components: a Prometheus server scraping the agent and queried
//! through its HTTP API, `promtool check metrics`, and the bad input a long-running HTTP agent
//! meets. The profiles it serves are tested in `agent_profiles.rs`.

use std::{
    io::{BufRead, BufReader, Write},
    net::TcpStream,
    os::unix::ffi::OsStrExt,
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use integration_tests::{
    agent::{
        AgentProcess, Prometheus, Service, go_pprof, http_get, http_raw, metric, promtool_check, temp_dir, terminate,
        wait_for,
    },
    can_trace, fixture, tracer,
};

fn value_of(sample: &serde_json::Value) -> f64 {
    sample["value"][1]
        .as_str()
        .and_then(|v| v.parse().ok())
        .unwrap_or(f64::NAN)
}

#[test]
fn prometheus_scrapes_the_leak_from_a_whole_host_agent() {
    if !can_trace("prometheus_scrapes_the_leak_from_a_whole_host_agent") {
        return;
    }
    // No selection: every process on the host, the fixture started after the agent.
    let agent = AgentProcess::start(&["--window", "30s"]);
    let leaker = Service::start(&fixture("agent_leaker"), &["20"]);
    let prom = Prometheus::start(agent.addr);
    let suspects = wait_for(Duration::from_secs(90), || {
        let r = prom.query(r#"tracer_leak_suspects{comm="agent_leaker",kind="socket"}"#);
        r.first().map(value_of).filter(|v| *v >= 1.0)
    });
    assert!(
        suspects.is_some(),
        "Prometheus never saw the leak; targets: {}\nagent stderr:\n{}",
        prom.target_health(),
        agent.stderr()
    );
    let open = prom.query(r#"tracer_open_fds{comm="agent_leaker",kind="socket"}"#);
    assert!(open.first().map(value_of).is_some_and(|v| v >= 5.0), "{open:?}");
    // Outside a container the label is empty, which Prometheus stores as absent.
    assert!(open[0]["metric"].get("container").is_none(), "{open:?}");
    // The churn (open + close of /dev/null every tick) is not a suspect.
    let churn = prom.query(r#"tracer_leak_suspects{comm="agent_leaker",kind="char_device"}"#);
    assert!(churn.iter().all(|s| value_of(s) == 0.0), "{churn:?}");
    let allocations = prom.query(r#"tracer_fd_allocations_total{comm="agent_leaker",kind="socket"}"#);
    assert!(
        allocations.first().map(value_of).is_some_and(|v| v >= 5.0),
        "{allocations:?}"
    );
    // Time to EMFILE is known for the suspect's process.
    let ttl = prom.query(r#"tracer_time_to_fd_limit_seconds{comm="agent_leaker"}"#);
    assert!(ttl.first().map(value_of).is_some_and(|v| v > 0.0), "{ttl:?}");

    let exposition = agent.get("/metrics");
    assert_eq!(exposition.status, 200);
    assert!(
        exposition
            .header("content-type")
            .is_some_and(|c| c.starts_with("text/plain; version=0.0.4")),
        "{:?}",
        exposition.headers
    );
    let (ok, out) = promtool_check(&exposition.body);
    assert!(ok, "promtool check metrics failed:\n{out}\n{}", exposition.text());
    // Loss counters are there from the start (zero or not).
    assert!(
        exposition
            .text()
            .contains("tracer_kernel_lost_events_total{reason=\"ring_buffer_full\"}")
    );
    drop(leaker);
    assert_eq!(agent.stop(), 0, "SIGTERM detaches and exits 0");
}

#[test]
fn short_lived_processes_leave_no_state_and_no_series() {
    if !can_trace("short_lived_processes_leave_no_state_and_no_series") {
        return;
    }
    // Every process traced (in the default mode short-lived processes are only counted).
    let agent = AgentProcess::start(&["--trace-all", "--exited-grace", "1s", "--window", "3s"]);
    let out = Command::new(fixture("short_lived"))
        .arg("2000")
        .output()
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(String::from_utf8_lossy(&out.stdout).contains("DONE 2000"));
    // While fresh, the group is visible (the agent did see them).
    let seen = agent.get("/metrics").text();
    assert!(
        seen.contains("comm=\"short_lived\""),
        "the short-lived processes were never seen:\n{seen}"
    );
    let gone = wait_for(Duration::from_secs(30), || {
        let m = agent.get("/metrics").text();
        (!m.contains("short_lived")).then_some(m)
    });
    assert!(gone.is_some(), "series of processes long gone are still exported");
    let report = agent.get("/report?format=json&top=100000");
    let v: serde_json::Value = serde_json::from_slice(&report.body).unwrap_or_else(|e| panic!("{e}"));
    let left: Vec<&serde_json::Value> = v["processes"]
        .as_array()
        .map(|a| a.iter().filter(|p| p["comm"] == "short_lived").collect())
        .unwrap_or_default();
    assert!(left.is_empty(), "state of exited processes kept: {left:?}");
    let m = gone.unwrap_or_default();
    let tracked: f64 = m
        .lines()
        .find_map(|l| l.strip_prefix("tracer_tracked_processes "))
        .and_then(|v| v.parse().ok())
        .unwrap_or(f64::NAN);
    assert!(tracked < 1000.0, "{tracked} processes tracked after 2000 came and went");
    let evicted = m
        .lines()
        .find_map(|l| l.strip_prefix("tracer_evictions_total{what=\"process\"} "))
        .and_then(|v| v.parse::<f64>().ok())
        .unwrap_or(0.0);
    assert!(evicted >= 2000.0, "evictions counted: {evicted}");
    assert_eq!(agent.stop(), 0);
}

#[test]
fn a_taken_port_is_a_clear_error_before_anything_is_attached() {
    if !can_trace("a_taken_port_is_a_clear_error_before_anything_is_attached") {
        return;
    }
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap_or_else(|e| panic!("{e}"));
    let addr = taken.local_addr().unwrap_or_else(|e| panic!("{e}")).to_string();
    // The binary is built (or found fresh) first: the time is the agent's, not cargo's.
    let _ = integration_tests::tracer_bin();
    let started = Instant::now();
    let out = tracer(&["agent", "--listen", &addr]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("port is in use"), "{stderr}");
    assert!(!stderr.contains("ready"), "nothing was attached: {stderr}");
    // Refused before loading anything: no wait for programs, however busy the machine.
    assert!(started.elapsed() < Duration::from_secs(10), "{:?}", started.elapsed());
    // An address this host does not have.
    let out = tracer(&["agent", "--listen", "192.0.2.1:9464"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("cannot listen on 192.0.2.1:9464"), "{stderr}");
}

#[test]
fn bad_requests_slow_clients_and_many_scrapes_do_not_stop_the_agent() {
    if !can_trace("bad_requests_slow_clients_and_many_scrapes_do_not_stop_the_agent") {
        return;
    }
    let agent = AgentProcess::start(&["--comm", "agent_leaker"]);
    let addr = agent.addr;
    assert_eq!(agent.get("/healthy").status, 200);
    assert_eq!(agent.get("/ready").status, 200);
    let r = agent.get("/nope");
    assert_eq!(r.status, 404, "{}", r.text());
    assert!(r.text().contains("/metrics"), "the 404 lists the endpoints");
    assert_eq!(agent.get("/debug/pprof/heap").status, 404);
    for garbage in ["/report?%zz", "/report?format=xml", "/report?top=-3", "/report?a=b&&=="] {
        let r = agent.get(garbage);
        assert_eq!(r.status, 400, "{garbage}: {}", r.text());
    }
    // A query the endpoints ignore (Prometheus and profilers may add their own).
    assert_eq!(agent.get("/metrics?%00%ff=%22&&x==").status, 200);
    // A URI hyper cannot parse at all.
    assert_eq!(agent.get("/metrics?\"").status, 400);
    let post = http_raw(
        addr,
        b"POST /metrics HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
    );
    assert_eq!(post.status, 405);
    let junk = http_raw(addr, b"\x00\x01\x02 garbage \xff\r\n\r\n");
    assert_eq!(junk.status, 400, "malformed request line");

    // Clients that never finish their request, or never read the answer.
    let mut silent = TcpStream::connect(addr).unwrap_or_else(|e| panic!("{e}"));
    let _ = silent.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\n");
    let mut non_reader = TcpStream::connect(addr).unwrap_or_else(|e| panic!("{e}"));
    let _ = non_reader.write_all(b"GET /report?format=text&top=100000 HTTP/1.1\r\nHost: x\r\n\r\n");

    // The agent keeps tracing: a process started now shows up.
    let leaker = Service::start(&fixture("agent_leaker"), &["20"]);
    // 50 concurrent scrapes, all answered.
    let started = Instant::now();
    let scrapes: Vec<_> = (0..50)
        .map(|i| {
            std::thread::spawn(move || http_get(addr, if i % 5 == 0 { "/debug/pprof/fds" } else { "/metrics" }).status)
        })
        .collect();
    let statuses: Vec<u16> = scrapes.into_iter().map(|t| t.join().unwrap_or(0)).collect();
    assert!(statuses.iter().all(|s| *s == 200), "{statuses:?}");
    assert!(started.elapsed() < Duration::from_secs(30), "{:?}", started.elapsed());
    let seen = wait_for(Duration::from_secs(20), || {
        let m = agent.get("/metrics").text();
        m.contains(r#"tracer_open_fds{comm="agent_leaker",container="",kind="socket"}"#)
            .then_some(())
    });
    assert!(seen.is_some(), "the agent stopped tracing while clients stalled");
    drop(leaker);
    drop((silent, non_reader));
    assert_eq!(agent.stop(), 0);
}

#[test]
fn hostile_names_survive_labels_and_profile_strings() {
    if !can_trace("hostile_names_survive_labels_and_profile_strings") {
        return;
    }
    let dir = temp_dir("hostile");
    // comm is the exec'd file's name cut to 15 bytes: a quote, a backslash, a newline and a
    // byte that is not UTF-8.
    let name: &[u8] = b"lk\"q\\\n\xff";
    let bin = dir.join(std::ffi::OsStr::from_bytes(name));
    std::fs::copy(fixture("agent_leaker"), &bin).unwrap_or_else(|e| panic!("{e}"));
    let path = dir.join(std::ffi::OsStr::from_bytes(b"f\"i\\le\n\xfe"));
    let agent = AgentProcess::start(&[]);
    let path_arg = std::ffi::OsString::from(path.as_os_str());
    let mut child = Command::new(&bin)
        .arg("20")
        .arg(&path_arg)
        .stdout(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("{e}"));
    let escaped = r#"lk\"q\\\\\\n\\xff"#;
    let m = wait_for(Duration::from_secs(30), || {
        let r = agent.get("/metrics");
        r.text().contains(&format!("comm=\"{escaped}\"")).then_some(r)
    });
    let m = m.unwrap_or_else(|| panic!("the hostile comm never showed:\n{}", agent.get("/metrics").text()));
    let (ok, out) = promtool_check(&m.body);
    assert!(ok, "promtool check metrics failed on hostile names:\n{out}");
    // Through a real Prometheus: the label value is the escaped name, intact.
    let prom = Prometheus::start(agent.addr);
    let got = wait_for(Duration::from_secs(30), || {
        let r = prom.query(r#"tracer_open_fds{kind="socket",comm=~"lk.*"}"#);
        r.first().and_then(|s| s["metric"]["comm"].as_str().map(str::to_owned))
    });
    assert_eq!(got.as_deref(), Some(r#"lk"q\\\n\xff"#));
    let p = agent.get("/debug/pprof/fds");
    let file = dir.join("fds.pb.gz");
    std::fs::write(&file, &p.body).unwrap_or_else(|e| panic!("{e}"));
    let tags = go_pprof(&["-tags"], &file);
    assert!(tags.contains(r#"lk"q\\\n\xff"#), "{tags}");
    let report = agent.get("/report?format=json&top=1000");
    let v: serde_json::Value = serde_json::from_slice(&report.body).unwrap_or_else(|e| panic!("{e}"));
    assert!(
        v["processes"]
            .as_array()
            .is_some_and(|a| a.iter().any(|p| p["comm_hex"].is_string()))
    );
    terminate(&mut child);
    drop(prom);
    assert_eq!(agent.stop(), 0);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn processes_exiting_mid_scrape_keep_the_exposition_valid() {
    if !can_trace("processes_exiting_mid_scrape_keep_the_exposition_valid") {
        return;
    }
    let agent = AgentProcess::start(&["--exited-grace", "100ms", "--pid-labels", "5"]);
    let churn = std::thread::spawn(|| {
        for _ in 0..20 {
            let _ = Command::new(fixture("short_lived")).arg("50").output();
        }
    });
    for _ in 0..20 {
        let r = agent.get("/metrics");
        assert_eq!(r.status, 200);
        let (ok, out) = promtool_check(&r.body);
        assert!(ok, "{out}");
        assert_eq!(agent.get("/debug/pprof/fds").status, 200);
        assert_eq!(agent.get("/report?format=json").status, 200);
    }
    let _ = churn.join();
    assert_eq!(agent.stop(), 0);
}

/// The fixture's fds as /proc has them: how many, and how many of each kind.
fn proc_kinds(pid: u32) -> (u64, std::collections::BTreeMap<String, u64>) {
    let fds = tracer::procfs::process::scan_fds(pid).unwrap_or_else(|e| panic!("scanning /proc/{pid}/fd: {e}"));
    let mut kinds = std::collections::BTreeMap::new();
    for f in &fds {
        *kinds.entry(f.kind.as_str().to_owned()).or_insert(0) += 1;
    }
    (fds.len() as u64, kinds)
}

#[test]
fn an_agent_stopped_for_a_second_under_churn_recovers_the_exact_fd_table() {
    if !can_trace("an_agent_stopped_for_a_second_under_churn_recovers_the_exact_fd_table") {
        return;
    }
    let mut churn = Command::new(fixture("churn"))
        .args(["spin", "4", "2"])
        .env("CHURN_WAIT", "1")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start churn: {e}"));
    let pid = churn.id();
    let mut out = BufReader::new(churn.stdout.take().unwrap_or_else(|| panic!("no stdout")));
    let mut stdin = churn.stdin.take().unwrap_or_else(|| panic!("no stdin"));
    let mut line = String::new();
    let _ = out.read_line(&mut line);
    assert_eq!(line.trim(), "ready", "churn said {line:?}");
    // The agent at its defaults (16 MiB ring, DWARF stacks under the per-CPU budget).
    let agent = AgentProcess::start(&["--pid", &pid.to_string()]);
    writeln!(stdin, "go").unwrap_or_else(|e| panic!("starting churn: {e}"));
    stdin.flush().unwrap_or_else(|e| panic!("starting churn: {e}"));
    std::thread::sleep(Duration::from_millis(1000));
    let agent_pid = agent.child.id() as i32;
    // SAFETY: kill(2) on our own child.
    unsafe { libc::kill(agent_pid, libc::SIGSTOP) };
    std::thread::sleep(Duration::from_secs(1));
    // SAFETY: as above.
    unsafe { libc::kill(agent_pid, libc::SIGCONT) };
    line.clear();
    let _ = out.read_line(&mut line);
    assert_eq!(line.trim(), "done", "churn said {line:?}");
    // The churn is over and its table fixed: the agent must come to the same table as /proc
    // (records, or a resync after lost ones), with no suspect, and without having slept
    // through the churn (a tracer that saw nothing would also agree on three fds).
    let (want_count, want_kinds) = proc_kinds(pid);
    let seen = wait_for(Duration::from_secs(20), || {
        let v: serde_json::Value = serde_json::from_slice(&agent.get("/report?format=json").body).ok()?;
        let p = v["processes"].as_array()?.iter().find(|p| p["pid"] == pid)?.clone();
        let kinds: std::collections::BTreeMap<String, u64> = p["by_kind"]
            .as_object()?
            .iter()
            .filter_map(|(k, n)| Some((k.clone(), n.as_u64()?)))
            .filter(|(_, n)| *n > 0)
            .collect();
        (p["open_fds"].as_u64() == Some(want_count) && kinds == want_kinds).then_some((v, p))
    });
    let m = agent.get("/metrics").text();
    let (v, p) = seen.unwrap_or_else(|| {
        panic!(
            "the agent's table for PID {pid} never matched /proc ({want_count} fds: {want_kinds:?}):\n{}\n{m}",
            agent.get("/report?format=text").text()
        )
    });
    let allocations = p["allocations"].as_u64().unwrap_or(0);
    assert!(
        allocations > 10_000,
        "the agent saw only {allocations} allocations of the churn: {p}"
    );
    let suspects: Vec<_> = v["suspects"]
        .as_array()
        .map(|s| s.iter().filter(|s| s["pid"] == pid).collect())
        .unwrap_or_default();
    assert!(
        suspects.is_empty(),
        "a churn with a fixed table is not a leak: {suspects:?}"
    );
    let lost = metric(&m, r#"tracer_kernel_lost_events_total{reason="ring_buffer_full"}"#).unwrap_or(f64::NAN);
    let resyncs = metric(&m, "tracer_resyncs_total").unwrap_or(f64::NAN);
    eprintln!("stopped 1 s under churn: {allocations} allocations seen, {lost} records lost, {resyncs} resyncs");
    // Lost records are repaired by reading /proc again, never left standing.
    assert!(lost == 0.0 || resyncs >= 1.0, "{lost} records lost and no resync:\n{m}");
    let _ = writeln!(stdin, "exit");
    let _ = churn.wait();
    assert_eq!(agent.stop(), 0);
}
