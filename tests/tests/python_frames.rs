//! Python frames at allocation sites, on a real CPython 3.11 (Debian's `/usr/bin/python3.11`)
//! running `tests/fixtures/py_leaks.py`: the suspect names the Python function and line that
//! leaked, two Python call sites of `open()` are two sites, and with `--python-frames off` they
//! merge again into CPython's one native site.

use integration_tests::{can_trace, have_tool, run_traced, sites, workspace_root};
use serde_json::Value;

const PYTHON: &str = "/usr/bin/python3.11";

fn script() -> String {
    workspace_root()
        .join("tests/fixtures/py_leaks.py")
        .to_string_lossy()
        .into_owned()
}

/// The line of the fixture marked `# LINE:name`.
fn line_of(name: &str) -> u64 {
    let text = std::fs::read_to_string(script()).unwrap_or_default();
    let marker = format!("# LINE:{name}");
    let at = text.lines().position(|l| l.trim_end().ends_with(&marker));
    at.map(|i| i as u64 + 1)
        .unwrap_or_else(|| panic!("no {marker} in the fixture"))
}

fn ready(test: &str) -> bool {
    can_trace(test) && have_tool(test, PYTHON)
}

fn python_frames(site: &Value) -> Vec<&Value> {
    site["stack"]
        .as_array()
        .map(|f| f.iter().filter(|f| f["python"] == true).collect())
        .unwrap_or_default()
}

/// The innermost Python frame's (function, line) and whether its file is the fixture.
fn top_python(site: &Value) -> Option<(String, u64, bool)> {
    let f = python_frames(site).into_iter().next()?;
    Some((
        f["function"].as_str()?.to_owned(),
        f["line"].as_u64().unwrap_or(0),
        f["file"].as_str().is_some_and(|p| p.ends_with("py_leaks.py")),
    ))
}

fn run(mode: &str, extra: &[&str]) -> Value {
    run_with(PYTHON, mode, extra)
}

fn run_with(python: &str, mode: &str, extra: &[&str]) -> Value {
    let s = script();
    let t = run_traced(extra, &[python, &s, mode]);
    assert_eq!(t.code, 0, "the fixture failed; tracer stderr:\n{}", t.stderr);
    assert!(t.stdout.contains("done"), "stdout: {}", t.stdout);
    t.report
}

/// Whether a process of the report names its runtime with this prefix.
fn says_runtime(report: &Value, prefix: &str) -> bool {
    let procs = report["processes"].as_array().cloned().unwrap_or_default();
    let found = procs
        .iter()
        .any(|p| p["runtime"].as_str().is_some_and(|r| r.starts_with(prefix)));
    if !found {
        eprintln!("no runtime {prefix}...: {procs:#?}");
    }
    found
}

fn fd_suspects(report: &Value) -> Vec<&Value> {
    sites(report, "suspects")
        .into_iter()
        .filter(|s| s["resource"] == "fd")
        .collect()
}

fn one_suspect_named<'a>(report: &'a Value, function: &str) -> &'a Value {
    let suspects = fd_suspects(report);
    assert_eq!(suspects.len(), 1, "one suspect expected:\n{report:#}");
    let s = suspects[0];
    let (f, line, ours) = top_python(s).unwrap_or_else(|| panic!("no Python frame:\n{s:#}"));
    assert_eq!((f.as_str(), line, ours), (function, line_of(function), true), "{s:#}");
    s
}

#[test]
fn the_suspect_is_the_python_line_that_leaked_and_the_log_is_a_site_of_its_own() {
    if !ready("python main") {
        return;
    }
    for stack in ["dwarf", "fp"] {
        let report = run("main", &["--stack", stack]);
        let leak = one_suspect_named(&report, "leak_a");
        // CPython's teardown closed the files at exit: a suspect all the same, with its peak.
        let peak = leak["released_at_exit"].as_u64().unwrap_or(0);
        assert!(peak >= 20, "{stack}: peak {peak}\n{leak:#}");
        // Every allocation of this site leaked: leak_b's opens are another site.
        assert_eq!(leak["allocations"].as_u64(), Some(peak), "{stack}: {leak:#}");
        // The caller chain, innermost first: leak_a, the lambda, churn, main, <module>.
        let names: Vec<&str> = python_frames(leak)
            .iter()
            .filter_map(|f| f["function"].as_str())
            .collect();
        let churn = names.iter().position(|n| *n == "churn");
        let main = names.iter().position(|n| *n == "main");
        assert!(churn.is_some() && churn < main, "{stack}: {names:?}");
        assert_eq!(names.last(), Some(&"<module>"), "{stack}: {names:?}");
        if stack == "dwarf" {
            // libc's open and CPython's C stay above the Python frames; the eval loop is replaced.
            let all: Vec<&Value> = leak["stack"].as_array().map(|a| a.iter().collect()).unwrap_or_default();
            let first_py = all.iter().position(|f| f["python"] == true).unwrap_or(0);
            assert!(first_py > 0, "native frames above the Python ones: {leak:#}");
            assert!(
                all[..first_py]
                    .iter()
                    .any(|f| f["module"].as_str().is_some_and(|m| m.ends_with("python3.11"))),
                "CPython's C frames kept above the Python ones: {leak:#}"
            );
            assert!(
                !all.iter().any(|f| f["function"] == "_PyEval_EvalFrameDefault"),
                "each eval loop frame stands for its Python frames: {leak:#}"
            );
        }
        // The log (a raw descriptor the teardown leaves open) is a site of its own, flat.
        let outstanding = sites(&report, "outstanding");
        let log = outstanding
            .iter()
            .find(|s| top_python(s).is_some_and(|(f, ..)| f == "open_log"))
            .unwrap_or_else(|| panic!("{stack}: no open_log site:\n{report:#}"));
        assert_eq!(log["count"], 1);
        assert!(
            top_python(log).is_some_and(|(_, line, _)| line == line_of("open_log")),
            "{log:#}"
        );
        assert!(says_runtime(&report, "CPython 3.11."), "{stack}: the runtime is said");
    }
}

#[test]
fn without_python_frames_the_two_call_sites_merge_again() {
    if !ready("python off") {
        return;
    }
    let report = run("main", &["--python-frames", "off"]);
    let all: Vec<&Value> = sites(&report, "suspects")
        .into_iter()
        .chain(sites(&report, "outstanding"))
        .collect();
    assert!(
        all.iter().all(|s| python_frames(s).is_empty()),
        "no Python frames when off:\n{report:#}"
    );
    // One native site for both open() calls: leak_b's closed files count in its allocations.
    let merged = fd_suspects(&report)
        .into_iter()
        .find(|s| s["allocations"].as_u64() > s["released_at_exit"].as_u64().map(|p| p * 3))
        .is_some();
    assert!(merged, "leak_a and leak_b are one site again:\n{report:#}");
}

#[test]
fn a_leak_from_a_thread_names_its_line() {
    if !ready("python thread") {
        return;
    }
    let report = run("thread", &[]);
    let leak = one_suspect_named(&report, "leak_a");
    let names: Vec<&str> = python_frames(leak)
        .iter()
        .filter_map(|f| f["function"].as_str())
        .collect();
    // The thread's frames end in threading's bootstrap, not in the main module.
    assert!(names.contains(&"churn"), "{names:?}");
    assert!(names.iter().any(|n| n.contains("_bootstrap")), "{names:?}");
    assert!(!names.contains(&"main"), "{names:?}");
}

#[test]
fn os_open_and_socket_leaks_name_their_lines() {
    if !ready("python os.open socket") {
        return;
    }
    // Raw descriptors: nothing closes them at exit, so they are open at exit and growing.
    let report = run("osopen", &[]);
    let leak = one_suspect_named(&report, "leak_os");
    assert!(leak["count"].as_u64().is_some_and(|c| c >= 20), "{leak:#}");
    assert!(leak["released_at_exit"].is_null(), "{leak:#}");
    // socket.socket is a Python class: the standard library's __init__ is innermost, then the
    // fixture's line.
    let report = run("socket", &[]);
    let suspects = fd_suspects(&report);
    assert_eq!(suspects.len(), 1, "one suspect expected:\n{report:#}");
    let leak = suspects[0];
    assert_eq!(leak["kind"], "socket", "{leak:#}");
    let py = python_frames(leak);
    let top = py
        .first()
        .and_then(|f| Some((f["function"].as_str()?, f["file"].as_str()?)));
    assert!(
        top.is_some_and(|(f, file)| f == "socket.__init__" && file.ends_with("/socket.py")),
        "{leak:#}"
    );
    let ours = py
        .iter()
        .find(|f| f["file"].as_str().is_some_and(|p| p.ends_with("py_leaks.py")))
        .map(|f| (f["function"].clone(), f["line"].as_u64()));
    assert_eq!(
        ours,
        Some((Value::from("leak_socket"), Some(line_of("leak_socket")))),
        "{leak:#}"
    );
}

#[test]
fn a_200_deep_recursion_is_truncated_and_says_so() {
    if !ready("python recursion") {
        return;
    }
    let report = run("recursion", &[]);
    let leak = one_suspect_named(&report, "leak_a");
    let py = python_frames(leak);
    let recurse = py.iter().filter(|f| f["function"] == "recurse").count();
    assert!((50..=64).contains(&recurse), "{recurse} recurse frames");
    let last = py.last().and_then(|f| f["function"].as_str()).unwrap_or("");
    assert!(last.starts_with("[more Python frames"), "truncation is stated: {last}");
}

#[test]
fn a_python_process_that_exits_before_the_report_is_still_named() {
    if !ready("python short") {
        return;
    }
    let report = run("short", &[]);
    let leak = one_suspect_named(&report, "leak_a");
    let procs = report["processes"].as_array().cloned().unwrap_or_default();
    let child = procs
        .iter()
        .find(|p| p["pid"] == leak["pid"])
        .cloned()
        .unwrap_or_default();
    assert_eq!(child["exited"], true, "{child:#}");
    assert!(procs.len() >= 2, "parent and child: {procs:#?}");
}

/// The fixture leaking for a minute under a whole `tracer agent` scoped to it: the profile read
/// by `go tool pprof` and the collapsed stacks name the Python function, file and line.
#[test]
fn the_agent_profile_and_folded_stacks_name_python_frames() {
    use integration_tests::agent::{AgentProcess, go_pprof};
    use std::io::{BufRead, BufReader};
    if !ready("python agent") || !have_tool("python agent", "go") {
        return;
    }
    let s = script();
    let mut child = std::process::Command::new(PYTHON)
        .args([s.as_str(), "main", "60"])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {PYTHON}: {e}"));
    struct Kill(std::process::Child);
    impl Drop for Kill {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let out = child.stdout.take();
    let child = Kill(child);
    let mut line = String::new();
    if let Some(out) = out {
        let _ = BufReader::new(out).read_line(&mut line);
    }
    assert_eq!(line.trim(), "ready");
    let pid = child.0.id().to_string();
    let agent = AgentProcess::start(&["--pid", &pid]);
    std::thread::sleep(std::time::Duration::from_secs(3));
    let r = agent.get("/debug/pprof/fds");
    assert_eq!(r.status, 200, "{}", r.text());
    let dir = std::env::temp_dir().join(format!("tracer-python-pprof-{}", std::process::id()));
    let _ = std::fs::create_dir_all(&dir);
    let file = dir.join("fds.pb.gz");
    std::fs::write(&file, &r.body).unwrap_or_else(|e| panic!("{e}"));
    // The walks are counted; the fixture is the one CPython process followed.
    let metrics = agent.get("/metrics").text();
    let value = |series: &str| {
        metrics
            .lines()
            .find_map(|l| l.strip_prefix(series)?.trim().parse::<f64>().ok())
    };
    assert_eq!(value("tracer_python_processes "), Some(1.0), "{metrics}");
    assert!(
        value("tracer_python_stacks_total{outcome=\"walked\"} ").is_some_and(|n| n >= 10.0),
        "{metrics}"
    );
    let top = go_pprof(&["-top", "-sample_index=inuse_objects"], &file);
    assert!(top.contains("leak_a"), "{top}");
    // pprof reads the fixture's source at the line the profile names.
    let listing = go_pprof(&["-list", "^leak_a$"], &file);
    assert!(listing.contains("# LINE:leak_a"), "{listing}");
    let _ = std::fs::remove_dir_all(&dir);
    let folded = agent.get("/debug/folded/fds").text();
    let leak_a = format!("leak_a ({s}:{})", line_of("leak_a"));
    let leak = folded
        .lines()
        .find(|l| l.contains(&leak_a))
        .unwrap_or_else(|| panic!("no {leak_a} in:\n{folded}"));
    let frames: Vec<&str> = leak.rsplit_once(' ').map_or(leak, |(s, _)| s).split(';').collect();
    let at = |f: &str| frames.iter().position(|x| x.starts_with(f));
    assert!(
        at("<module>") < at("churn (") && at("churn (") < at("leak_a ("),
        "root first: {leak}"
    );
    drop(child);
}

#[test]
fn a_forked_child_has_python_frames_from_its_first_allocation() {
    if !ready("python fork") {
        return;
    }
    let report = run("fork", &[]);
    let leak = one_suspect_named(&report, "leak_a");
    let child = leak["pid"].clone();
    // Left with os._exit: no teardown, the files are open at exit.
    assert!(leak["count"].as_u64().is_some_and(|c| c >= 50), "{leak:#}");
    // Every fd the child opened has its Python frames: none went to a native-only site.
    let native_only: Vec<&Value> = sites(&report, "outstanding")
        .into_iter()
        .filter(|s| s["pid"] == child && !s["before_attach"].as_bool().unwrap_or(false))
        .filter(|s| python_frames(s).is_empty())
        .collect();
    assert!(native_only.is_empty(), "sites without Python frames: {native_only:#?}");
    assert_eq!(leak["allocations"], leak["count"], "{leak:#}");
}

/// CPython 3.12+ interpreters besides Debian's 3.11: `TRACER_EXTRA_PYTHONS` (colon-separated
/// paths) and pyenv's under `/root/.pyenv/versions`, where present.
fn newer_interpreters() -> Vec<String> {
    let mut v: Vec<String> = std::env::var("TRACER_EXTRA_PYTHONS")
        .map(|e| e.split(':').filter(|s| !s.is_empty()).map(str::to_owned).collect())
        .unwrap_or_default();
    if let Ok(dirs) = std::fs::read_dir("/root/.pyenv/versions") {
        for d in dirs.flatten() {
            let name = d.file_name().to_string_lossy().into_owned();
            let minor: Option<u32> = name.strip_prefix("3.").and_then(|r| r.split('.').next()?.parse().ok());
            if let Some(m) = minor.filter(|m| (12..=14).contains(m)) {
                let bin = d.path().join(format!("bin/python3.{m}"));
                if bin.is_file() {
                    v.push(bin.to_string_lossy().into_owned());
                }
            }
        }
    }
    v.sort();
    v.dedup();
    v
}

#[test]
fn newer_cpython_versions_name_the_line_too() {
    if !ready("python 3.12+") {
        return;
    }
    let pythons = newer_interpreters();
    if pythons.is_empty() {
        eprintln!("python 3.12+: none installed here (TRACER_EXTRA_PYTHONS, pyenv); 3.11 is covered above");
        return;
    }
    for python in pythons {
        let report = run_with(&python, "main", &[]);
        let leak = one_suspect_named(&report, "leak_a");
        assert!(
            leak["released_at_exit"].as_u64().is_some_and(|p| p >= 20),
            "{python}: {leak:#}"
        );
        assert!(says_runtime(&report, "CPython 3.1"), "{python}: the runtime is said");
        eprintln!("python 3.12+: {python} names leak_a at its line");
    }
}
