//! `tracer agent --web-config` and `--endpoints` against real components: a Prometheus server
//! scraping the agent over https with basic auth and client certificates, `go tool pprof`
//! fetching a profile over https, `promtool check web-config` on the shipped examples, curl as
//! the client, certificates made by openssl at test time; and the abuse a TLS port meets.

use std::{
    io::Write,
    net::TcpStream,
    time::{Duration, Instant},
};

use integration_tests::{
    agent::{AgentProcess, Prometheus, Service, http_get, http_raw, terminate, wait_for},
    can_trace, fixture,
    tls::{Pki, bcrypt_hash, closed, cpu_seconds, curl, tools, write_atomic},
};

const PASSWORD: &str = "s3cret-pw";

/// TLS with the server certificate, basic auth for `prometheus`, one header.
fn tls_with_auth(pki: &Pki, password: &str) -> String {
    format!(
        "tls_server_config:\n  cert_file: server.pem\n  key_file: server.key\nhttp_server_config:\n  headers:\n    \
         X-Content-Type-Options: nosniff\nbasic_auth_users:\n  prometheus: '{}'\n",
        bcrypt_hash(password)
    )
    .replace("server.pem", &pki.p("server.pem"))
    .replace("server.key", &pki.p("server.key"))
}

fn write_config(pki: &Pki, text: &str) -> String {
    let path = pki.path("web.yml");
    write_atomic(&path, text);
    path.display().to_string()
}

fn value_of(sample: &serde_json::Value) -> f64 {
    sample["value"][1]
        .as_str()
        .and_then(|v| v.parse().ok())
        .unwrap_or(f64::NAN)
}

fn url(agent: &AgentProcess, path: &str) -> String {
    format!("https://{}{path}", agent.addr)
}

#[test]
fn prometheus_and_pprof_reach_a_tls_agent_with_basic_auth_and_others_get_401() {
    if !tools(
        "prometheus_and_pprof_reach_a_tls_agent_with_basic_auth_and_others_get_401",
        &["prometheus", "go"],
    ) {
        return;
    }
    let pki = Pki::new("prom");
    let config = write_config(&pki, &tls_with_auth(&pki, PASSWORD));
    let agent = AgentProcess::start(&["--comm", "agent_leaker", "--web-config", &config]);
    let leaker = Service::start(&fixture("agent_leaker"), &["20"]);
    let (target, ca) = (agent.addr, pki.p("ca.pem"));
    let job = |name: &str, auth: &str| {
        format!(
            "  - job_name: {name}\n    scheme: https\n{auth}    tls_config:\n      ca_file: {ca}\n    \
             static_configs:\n      - targets: ['{target}']\n"
        )
    };
    let prom = Prometheus::start_with(&format!(
        "{}{}{}  - job_name: plain_http\n    static_configs:\n      - targets: ['{target}']\n",
        job(
            "tracer",
            &format!("    basic_auth:\n      username: prometheus\n      password: {PASSWORD}\n")
        ),
        job("no_credentials", ""),
        job(
            "wrong_password",
            "    basic_auth:\n      username: prometheus\n      password: nope\n"
        ),
    ));
    let open = wait_for(Duration::from_secs(60), || {
        let r = prom.query(r#"tracer_open_fds{job="tracer",comm="agent_leaker",kind="socket"}"#);
        r.first().map(value_of).filter(|v| *v >= 5.0)
    });
    assert!(
        open.is_some(),
        "Prometheus never saw the fixture's sockets over https; targets: {}\nagent:\n{}",
        prom.target_health(),
        agent.stderr()
    );
    // Each job's first scrape may come a second after another's.
    let up = |job: &str| {
        wait_for(Duration::from_secs(10), || {
            prom.query(&format!(r#"up{{job="{job}"}}"#)).first().map(value_of)
        })
    };
    assert_eq!(up("tracer"), Some(1.0));
    for job in ["no_credentials", "wrong_password", "plain_http"] {
        assert_eq!(up(job), Some(0.0), "{job}: {}", prom.target_health());
    }
    let health = prom.target_health();
    assert!(health.contains("401 Unauthorized"), "{health}");

    // The same through curl: the status, the challenge, the configured header.
    let r = curl(&["--cacert", &ca], &url(&agent, "/metrics"));
    assert_eq!(r.status, 401, "{r:?}");
    assert!(r.headers.contains("www-authenticate: basic"), "{r:?}");
    let wrong = format!("prometheus:{PASSWORD}x");
    assert_eq!(
        curl(&["--cacert", &ca, "-u", &wrong], &url(&agent, "/metrics")).status,
        401
    );
    let right = format!("prometheus:{PASSWORD}");
    let r = curl(&["--cacert", &ca, "-u", &right], &url(&agent, "/report"));
    assert_eq!(r.status, 200, "{r:?}");
    assert!(r.headers.contains("x-content-type-options: nosniff"), "{r:?}");
    // Health answers without credentials (kubelet's probes have none), over TLS.
    assert_eq!(curl(&["--cacert", &ca], &url(&agent, "/healthy")).status, 200);

    // go tool pprof fetches the profile itself, over https with the credentials in the URL.
    // Go's bundled pprof fetches URLs with its own client, which ignores -tls_ca (google/pprof
    // honours it): the CA is given the way every Go program takes one, SSL_CERT_FILE.
    let fetched = format!("https://prometheus:{PASSWORD}@{}/debug/pprof/fds", agent.addr);
    let out = std::process::Command::new("go")
        .args(["tool", "pprof", &format!("-tls_ca={ca}"), "-tags", &fetched])
        .env("HOME", pki.path("."))
        .env("SSL_CERT_FILE", &ca)
        .output()
        .unwrap_or_else(|e| panic!("go tool pprof: {e}"));
    let tags = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && tags.contains("agent_leaker"),
        "{tags}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    drop(leaker);
    assert_eq!(agent.stop(), 0);
}

#[test]
fn mutual_tls_admits_certificates_of_its_ca_only() {
    if !tools("mutual_tls_admits_certificates_of_its_ca_only", &["prometheus"]) {
        return;
    }
    let pki = Pki::new("mtls");
    let config = write_config(
        &pki,
        &format!(
            "tls_server_config:\n  cert_file: {}\n  key_file: {}\n  client_auth_type: RequireAndVerifyClientCert\n  \
             client_ca_file: {}\n",
            pki.p("server.pem"),
            pki.p("server.key"),
            pki.p("ca.pem")
        ),
    );
    let agent = AgentProcess::start(&["--comm", "agent_leaker", "--web-config", &config]);
    let ca = pki.p("ca.pem");
    let with = |cert: &str| {
        curl(
            &[
                "--cacert",
                &ca,
                "--cert",
                &pki.p(&format!("{cert}.pem")),
                "--key",
                &pki.p(&format!("{cert}.key")),
            ],
            &url(&agent, "/metrics"),
        )
    };
    assert_eq!(with("client").status, 200);
    let none = curl(&["--cacert", &ca], &url(&agent, "/metrics"));
    assert_eq!(none.status, 0, "no certificate, no answer: {none:?}");
    let stranger = with("stranger");
    assert_eq!(stranger.status, 0, "a certificate of another CA: {stranger:?}");

    let prom = Prometheus::start_with(&format!(
        "  - job_name: tracer\n    scheme: https\n    tls_config:\n      ca_file: {ca}\n      cert_file: {}\n      \
         key_file: {}\n    static_configs:\n      - targets: ['{}']\n",
        pki.p("client.pem"),
        pki.p("client.key"),
        agent.addr
    ));
    let up = wait_for(Duration::from_secs(30), || {
        prom.query(r#"up{job="tracer"}"#)
            .first()
            .map(value_of)
            .filter(|v| *v == 1.0)
    });
    assert!(up.is_some(), "{}", prom.target_health());
    assert_eq!(agent.stop(), 0);
}

#[test]
fn a_bad_web_config_is_refused_before_anything_is_attached() {
    if !tools("a_bad_web_config_is_refused_before_anything_is_attached", &[]) {
        return;
    }
    let pki = Pki::new("bad");
    let good = tls_with_auth(&pki, PASSWORD);
    // Built (or found up to date) before the clock starts.
    let bin = integration_tests::tracer_bin();
    let cases = [
        (None, "cannot read the web config"),
        (Some(good.replace("server.pem", "gone.pem")), "gone.pem: No such file"),
        (Some(good.replace("server.key", "client.key")), "do not go together"),
        (
            Some("basic_auth_users:\n  prometheus: s3cret-pw\n".to_owned()),
            "is not a bcrypt hash",
        ),
        (Some(format!("{good}unknown_key: 1\n")), "unknown_key"),
        (Some("tls_server_config: [\n".to_owned()), "web config"),
    ];
    for (text, needle) in cases {
        let path = match &text {
            Some(t) => write_config(&pki, t),
            None => pki.p("missing.yml"),
        };
        let started = Instant::now();
        let mut child = std::process::Command::new(&bin)
            .args(["agent", "--listen", "127.0.0.1:0", "--web-config", &path])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("{e}"));
        // An agent that accepted the file would run until stopped.
        let exited = wait_for(Duration::from_secs(20), || child.try_wait().ok().flatten());
        if exited.is_none() {
            terminate(&mut child);
        }
        let out = child.wait_with_output().unwrap_or_else(|e| panic!("{e}"));
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(exited.and_then(|s| s.code()), Some(2), "{needle}: {stderr}");
        assert!(stderr.contains(needle) && stderr.contains(&path), "{needle}: {stderr}");
        assert!(!stderr.contains("agent on"), "nothing was bound or attached: {stderr}");
        assert!(started.elapsed() < Duration::from_secs(5), "{:?}", started.elapsed());
    }
}

#[test]
fn the_web_config_is_reloaded_on_change_and_sighup_and_a_bad_one_is_kept_out() {
    if !tools(
        "the_web_config_is_reloaded_on_change_and_sighup_and_a_bad_one_is_kept_out",
        &[],
    ) {
        return;
    }
    let pki = Pki::new("reload");
    let config = write_config(&pki, &tls_with_auth(&pki, "first"));
    let agent = AgentProcess::start(&["--comm", "agent_leaker", "--web-config", &config]);
    // Health needs no password: it tells which certificate is served.
    let health = |ca: &str| curl(&["--cacert", &pki.p(ca)], &url(&agent, "/healthy")).status;
    let metrics = |ca: &str, password: &str| {
        curl(
            &["--cacert", &pki.p(ca), "-u", &format!("prometheus:{password}")],
            &url(&agent, "/metrics"),
        )
        .status
    };
    assert_eq!(metrics("ca.pem", "first"), 200);
    // A new password: picked up from the file's change alone.
    write_config(&pki, &tls_with_auth(&pki, "second"));
    let changed = wait_for(Duration::from_secs(10), || {
        (metrics("ca.pem", "second") == 200).then_some(())
    });
    assert!(changed.is_some(), "the new password never worked:\n{}", agent.stderr());
    assert_eq!(metrics("ca.pem", "first"), 401);
    assert!(agent.stderr().contains("reloaded the web config"), "{}", agent.stderr());

    // Certificate rotation: a server certificate from another CA, in the same files.
    pki.issue(
        "rotated",
        "other-ca",
        "subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth\n",
    );
    let read = |f: &str| std::fs::read_to_string(pki.path(f)).unwrap_or_else(|e| panic!("{e}"));
    let (cert, key) = (read("rotated.pem"), read("rotated.key"));
    write_atomic(&pki.path("server.key"), &key);
    write_atomic(&pki.path("server.pem"), &cert);
    let rotated = wait_for(Duration::from_secs(10), || {
        (health("other-ca.pem") == 200).then_some(())
    });
    assert!(
        rotated.is_some(),
        "the rotated certificate was never served:\n{}",
        agent.stderr()
    );
    assert_eq!(health("ca.pem"), 0, "the old CA no longer vouches for the agent");

    // A broken file: the previous config stays, and it is said once (not at every poll).
    let kept = "the previous web config stays in force";
    let before = agent.stderr().matches(kept).count();
    write_config(&pki, "tls_server_config: [\n");
    std::thread::sleep(Duration::from_secs(7));
    assert_eq!(metrics("other-ca.pem", "second"), 200);
    assert_eq!(agent.stderr().matches(kept).count(), before + 1, "{}", agent.stderr());
    // SIGHUP re-reads it (still broken: said once more), and does not stop the agent.
    // SAFETY: kill(2) on our own child.
    unsafe { libc::kill(agent.child.id() as i32, libc::SIGHUP) };
    let said = wait_for(Duration::from_secs(5), || {
        (agent.stderr().matches(kept).count() == before + 2).then_some(())
    });
    assert!(said.is_some(), "{}", agent.stderr());
    assert_eq!(metrics("other-ca.pem", "second"), 200);
    // Turning TLS off takes a restart: refused, TLS stays.
    write_config(
        &pki,
        &format!("basic_auth_users:\n  prometheus: '{}'\n", bcrypt_hash("third")),
    );
    let refused = wait_for(Duration::from_secs(10), || {
        agent.stderr().contains("takes a restart").then_some(())
    });
    assert!(refused.is_some(), "{}", agent.stderr());
    assert_eq!(metrics("other-ca.pem", "second"), 200);
    // A good file and SIGHUP: in force at once.
    write_config(&pki, &tls_with_auth(&pki, "third"));
    // SAFETY: as above.
    unsafe { libc::kill(agent.child.id() as i32, libc::SIGHUP) };
    let third = wait_for(Duration::from_secs(5), || {
        (metrics("other-ca.pem", "third") == 200).then_some(())
    });
    assert!(third.is_some(), "{}", agent.stderr());
    assert_eq!(agent.stop(), 0);
}

#[test]
fn abuse_of_the_tls_port_does_not_stop_the_agent() {
    if !tools("abuse_of_the_tls_port_does_not_stop_the_agent", &[]) {
        return;
    }
    let pki = Pki::new("abuse");
    let config = write_config(&pki, &tls_with_auth(&pki, PASSWORD));
    let agent = AgentProcess::start(&["--comm", "agent_leaker", "--web-config", &config]);
    let addr = agent.addr;
    let logged_at_start = agent.stderr();
    let connect = || TcpStream::connect(addr).unwrap_or_else(|e| panic!("{e}"));
    // Clients that connect and never start the handshake, and ones that stop halfway through a
    // ClientHello.
    let silent: Vec<TcpStream> = (0..20).map(|_| connect()).collect();
    let halfway: Vec<TcpStream> = (0..5)
        .map(|_| {
            let mut s = connect();
            let _ = s.write_all(&[0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00, 0x01, 0xfc, 0x03, 0x03]);
            s
        })
        .collect();
    // Garbage instead of a ClientHello: the connection is closed at once.
    let mut garbage = connect();
    let _ = garbage.write_all(b"\x00\xff\xfegarbage\r\n\r\n");
    let _ = garbage.set_read_timeout(Some(Duration::from_secs(3)));
    let mut buf = [0u8; 64];
    assert!(closed(&mut garbage, &mut buf), "garbage kept its connection");
    // Plain HTTP to the TLS port: told so, as Go's servers do.
    let plain = http_raw(addr, b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_eq!(plain.status, 400);
    assert!(
        plain.text().contains("HTTP request to an HTTPS server"),
        "{}",
        plain.text()
    );
    assert_eq!(http_get(addr, "/healthy").status, 400);
    // Wrong passwords, each a bcrypt of its own.
    let ca = pki.p("ca.pem");
    for i in 0..10 {
        let r = curl(
            &["--cacert", &ca, "-u", &format!("prometheus:guess{i}")],
            &url(&agent, "/report"),
        );
        assert_eq!(r.status, 401, "{r:?}");
    }

    // Meanwhile the agent traces and serves: a new process is seen by 50 concurrent scrapes.
    let leaker = Service::start(&fixture("agent_leaker"), &["20"]);
    let right = format!("prometheus:{PASSWORD}");
    let seen = wait_for(Duration::from_secs(20), || {
        let r = curl(&["--cacert", &ca, "-u", &right], &url(&agent, "/metrics"));
        r.body
            .contains(r#"tracer_open_fds{comm="agent_leaker",container="",kind="socket"}"#)
            .then_some(())
    });
    assert!(seen.is_some(), "the agent stopped tracing under abuse");
    let cpu_before = cpu_seconds(agent.child.id());
    let started = Instant::now();
    let scrapes: Vec<_> = (0..50)
        .map(|i| {
            let (ca, right) = (ca.clone(), right.clone());
            let path = if i % 5 == 0 { "/debug/pprof/fds" } else { "/metrics" };
            let u = format!("https://{addr}{path}");
            std::thread::spawn(move || curl(&["--cacert", &ca, "-u", &right], &u).status)
        })
        .collect();
    let statuses: Vec<u16> = scrapes.into_iter().map(|t| t.join().unwrap_or(0)).collect();
    let elapsed = started.elapsed();
    let cpu = cpu_seconds(agent.child.id()) - cpu_before;
    assert!(statuses.iter().all(|s| *s == 200), "{statuses:?}");
    eprintln!("50 concurrent TLS scrapes with basic auth: {elapsed:?}, agent CPU {cpu:.2} s");
    assert!(elapsed < Duration::from_secs(30), "{elapsed:?}");
    // One bcrypt at most per distinct credentials: 50 would be several seconds of CPU.
    assert!(cpu < 2.0, "agent CPU {cpu:.2} s for 50 scrapes");

    // The silent clients were dropped at the handshake deadline.
    let mut first = silent.into_iter().next().unwrap_or_else(|| panic!("no client"));
    let _ = first.set_read_timeout(Some(Duration::from_secs(10)));
    assert!(closed(&mut first, &mut buf), "a silent client kept its connection");
    drop(halfway);
    // Nothing was logged for any of it.
    assert_eq!(agent.stderr(), logged_at_start, "per-request logging");
    drop(leaker);
    assert_eq!(agent.stop(), 0);
}

#[test]
fn endpoints_serves_only_the_groups_named() {
    if !can_trace("endpoints_serves_only_the_groups_named") {
        return;
    }
    let agent = AgentProcess::start(&["--comm", "agent_leaker", "--endpoints", "metrics"]);
    assert!(
        agent.stderr().contains("(metrics only; /healthy, /ready)"),
        "{}",
        agent.stderr()
    );
    assert_eq!(agent.get("/metrics").status, 200);
    for hidden in [
        "/debug/pprof/fds",
        "/debug/pprof/locks",
        "/debug/folded/fds",
        "/report?format=json",
    ] {
        assert_eq!(agent.get(hidden).status, 404, "{hidden}");
    }
    for always in ["/healthy", "/ready", "/"] {
        assert_eq!(agent.get(always).status, 200, "{always}");
    }
    let index = agent.get("/").text();
    assert!(
        index.contains("/metrics") && !index.contains("/report") && !index.contains("pprof"),
        "{index}"
    );
    assert_eq!(agent.stop(), 0);
    let agent = AgentProcess::start(&["--comm", "agent_leaker", "--endpoints", "pprof,report"]);
    assert_eq!(agent.get("/metrics").status, 404);
    assert_eq!(agent.get("/debug/pprof/fds").status, 200);
    assert_eq!(agent.get("/report").status, 200);
    assert_eq!(agent.stop(), 0);
}

#[test]
fn promtool_and_the_agent_accept_the_example_web_configs() {
    if !tools("promtool_and_the_agent_accept_the_example_web_configs", &["promtool"]) {
        return;
    }
    let pki = Pki::new("examples");
    // The examples' certificate directory (a kubernetes.io/tls Secret's keys), made here.
    for (made, named) in [
        ("server.pem", "tls.crt"),
        ("server.key", "tls.key"),
        ("ca.pem", "ca.crt"),
    ] {
        std::fs::copy(pki.path(made), pki.path(named)).unwrap_or_else(|e| panic!("{e}"));
    }
    let ca = pki.p("ca.pem");
    for (example, client) in [
        ("deploy/web-config.yml", vec!["-u", "prometheus:change-me"]),
        (
            "deploy/web-config-mtls.yml",
            vec!["--cert", "CLIENT.pem", "--key", "CLIENT.key"],
        ),
    ] {
        let shipped = integration_tests::workspace_root().join(example);
        let text = std::fs::read_to_string(&shipped).unwrap_or_else(|e| panic!("{}: {e}", shipped.display()));
        assert!(
            text.contains("/etc/tracer/tls/tls.crt"),
            "{example} names the Secret's files"
        );
        let here = text.replace("/etc/tracer/tls/", &format!("{}/", pki.dir.display()));
        let path = write_config(&pki, &here);
        let out = std::process::Command::new("promtool")
            .args(["check", "web-config", &path])
            .output()
            .unwrap_or_else(|e| panic!("promtool: {e}"));
        assert!(
            out.status.success(),
            "promtool check web-config {example}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        let agent = AgentProcess::start(&["--comm", "agent_leaker", "--web-config", &path]);
        let client: Vec<String> = client.iter().map(|a| a.replace("CLIENT", &pki.p("client"))).collect();
        let mut args: Vec<&str> = vec!["--cacert", &ca];
        args.extend(client.iter().map(String::as_str));
        let r = curl(&args, &url(&agent, "/metrics"));
        assert_eq!(r.status, 200, "{example}: {r:?}");
        assert_eq!(agent.stop(), 0);
    }
}
