//! The deployment files: the systemd unit passes `systemd-analyze verify`, and the capabilities
//! it grants (and the DaemonSet's) are enough for the agent, which refuses to start with less.

use std::{process::Command, time::Duration};

use integration_tests::{
    agent::{free_port, http_get, terminate, wait_for},
    can_trace, tracer_bin, workspace_root,
};

fn unit_text() -> String {
    let p = workspace_root().join("deploy/tracer-agent.service");
    std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

/// `CAP_BPF CAP_PERFMON ...` of the unit's bounding set, as setpriv spells them (`+bpf,...`).
fn unit_capabilities() -> Vec<String> {
    unit_text()
        .lines()
        .find_map(|l| l.strip_prefix("CapabilityBoundingSet="))
        .map(|caps| {
            caps.split_whitespace()
                .map(|c| c.trim_start_matches("CAP_").to_ascii_lowercase())
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn the_systemd_unit_verifies() {
    if Command::new("systemd-analyze").arg("--version").output().is_err() {
        // Where systemd is not installed there is nothing to verify against (cargo xtask setup
        // installs it).
        eprintln!("the_systemd_unit_verifies: skipped: systemd-analyze not installed");
        assert!(std::env::var("CI").is_err(), "CI must have systemd-analyze");
        return;
    }
    // The shipped unit, with ExecStart pointing at the binary built here.
    let dir = std::env::temp_dir().join(format!("tracer-unit-{}", std::process::id()));
    let _ = std::fs::create_dir_all(&dir);
    let unit = dir.join("tracer-agent.service");
    let text = unit_text().replace("/usr/local/bin/tracer", &tracer_bin().display().to_string());
    std::fs::write(&unit, text).unwrap_or_else(|e| panic!("{e}"));
    let out = Command::new("systemd-analyze")
        .arg("verify")
        .arg(&unit)
        .output()
        .unwrap_or_else(|e| panic!("{e}"));
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "systemd-analyze verify failed:\n{said}");
    let about_us: Vec<&str> = said.lines().filter(|l| l.contains("tracer-agent")).collect();
    assert!(about_us.is_empty(), "warnings about the unit: {about_us:?}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn the_units_capabilities_are_enough_and_fewer_are_refused() {
    if !can_trace("the_units_capabilities_are_enough_and_fewer_are_refused") {
        return;
    }
    let caps = unit_capabilities();
    assert_eq!(caps, vec!["bpf", "perfmon", "sys_ptrace"], "the test knows this set");
    let daemonset = std::fs::read_to_string(workspace_root().join("deploy/kubernetes/daemonset.yaml"))
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(
        daemonset.contains(r#"add: ["BPF", "PERFMON", "SYS_PTRACE"]"#),
        "the DaemonSet grants the same capabilities"
    );
    let run = |set: &[String]| {
        let bounding = format!(
            "-all,{}",
            set.iter().map(|c| format!("+{c}")).collect::<Vec<_>>().join(",")
        );
        let port = free_port();
        let child = Command::new("setpriv")
            .arg(format!("--bounding-set={bounding}"))
            .arg("--")
            .arg(tracer_bin())
            // Every process traced, so that every process's fds are read from /proc at once (by
            // default they are read when a process is escalated).
            .args(["agent", "--trace-all", "--listen", &format!("127.0.0.1:{port}")])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("setpriv (util-linux): {e}"));
        (child, port)
    };
    // With exactly the unit's capabilities: ready, and other processes' fds are read.
    let (mut child, port) = run(&caps);
    let addr = format!("127.0.0.1:{port}").parse().unwrap_or_else(|e| panic!("{e}"));
    let fds = wait_for(Duration::from_secs(30), || {
        let r = std::net::TcpStream::connect(addr)
            .ok()
            .map(|_| http_get(addr, "/metrics"))?;
        let text = r.text();
        let n: f64 = text
            .lines()
            .find_map(|l| l.strip_prefix("tracer_tracked_fds "))
            .and_then(|v| v.parse().ok())?;
        (n > 10.0).then_some(n)
    });
    assert_eq!(terminate(&mut child), 0);
    assert!(
        fds.is_some(),
        "the agent did not read other processes' fds with {caps:?}"
    );
    // Without CAP_SYS_PTRACE: a clear refusal, not an agent that sees nothing.
    let fewer: Vec<String> = caps.iter().filter(|c| *c != "sys_ptrace").cloned().collect();
    let (child, _) = run(&fewer);
    let out = child.wait_with_output().unwrap_or_else(|e| panic!("{e}"));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("CAP_SYS_PTRACE"), "{stderr}");
}

/// The DaemonSet serves TLS from its Secrets: the web config it names is in a mounted Secret,
/// the certificate paths of the example web config are where the TLS Secret is mounted, the
/// probes speak HTTPS, and the NetworkPolicy admits the monitoring namespace to that port only.
#[test]
fn the_daemonset_serves_tls_from_its_secrets_to_the_monitoring_namespace() {
    let read = |p: &str| std::fs::read_to_string(workspace_root().join(p)).unwrap_or_else(|e| panic!("{p}: {e}"));
    let ds = read("deploy/kubernetes/daemonset.yaml");
    let web = read("deploy/web-config.yml");
    let policy = read("deploy/kubernetes/networkpolicy.yaml");
    let arg = ds
        .lines()
        .find_map(|l| l.trim().strip_prefix("- --web-config="))
        .unwrap_or_else(|| panic!("the DaemonSet passes no --web-config"));
    let mounts: Vec<&str> = ds
        .lines()
        .filter_map(|l| l.trim().strip_prefix("mountPath: "))
        .collect();
    let under_a_mount = |p: &str| mounts.iter().any(|m| p.starts_with(&format!("{m}/")));
    assert!(under_a_mount(arg), "{arg} is not under any of {mounts:?}");
    for file in web
        .lines()
        .filter_map(|l| l.trim().split_once(": "))
        .filter(|(k, _)| k.ends_with("_file"))
        .map(|(_, v)| v)
    {
        assert!(under_a_mount(file), "{file} is not under any of {mounts:?}");
    }
    for secret in ["tracer-agent-web-config", "tracer-agent-tls"] {
        assert!(ds.contains(&format!("secretName: {secret}")), "{secret}");
    }
    assert_eq!(ds.matches("scheme: HTTPS").count(), 2, "both probes over TLS");
    assert!(ds.contains("prometheus.io/scheme: https"));
    assert!(ds.contains("containerPort: 9464") && policy.contains("port: 9464"));
    assert!(policy.contains("kubernetes.io/metadata.name: monitoring"));
    assert!(policy.contains("app.kubernetes.io/name: tracer-agent") && policy.contains("namespace: tracer"));
}
