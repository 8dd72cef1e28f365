//! The IPC incidents of issue 11, each against a fixture built like distro code (plain `-O2 -g`,
//! no frame pointers) and its well-behaved twin: growth stopped by a limit (EMFILE), zombie
//! piles with merged SIGCHLDs, eventfd overflow, pipe and AF_UNIX send-buffer stalls. Stacks must
//! name the fixture's function at its marked line; twins must be silent, and each twin test
//! checks what the tracer saw of it, so that a tracer that saw nothing cannot pass.

use integration_tests::{Build, Traced, can_trace, fixture_built, run_traced, workspace_root};
use serde_json::Value;

fn fixture(name: &str) -> String {
    fixture_built(name, Build::Optimized).to_string_lossy().into_owned()
}

fn list<'a>(report: &'a Value, key: &str) -> Vec<&'a Value> {
    report[key].as_array().map(|v| v.iter().collect()).unwrap_or_default()
}

/// Line of the `TAG` comment in `tests/fixtures/NAME.c`.
fn marked_line(name: &str, tag: &str) -> u64 {
    let path = workspace_root().join("tests/fixtures").join(format!("{name}.c"));
    let src = std::fs::read_to_string(&path).unwrap_or_default();
    src.lines()
        .position(|l| l.contains(tag))
        .map(|i| i as u64 + 1)
        .unwrap_or_else(|| panic!("no {tag} in {}", path.display()))
}

/// (function, file, line) of each frame of `v["stack"]`.
fn frames(v: &Value) -> Vec<(String, String, u64)> {
    v["stack"]
        .as_array()
        .map(|fs| {
            fs.iter()
                .map(|f| {
                    (
                        f["function"].as_str().unwrap_or("").to_owned(),
                        f["file"].as_str().unwrap_or("").to_owned(),
                        f["line"].as_u64().unwrap_or(0),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

/// The stack has `function` in `NAME.c` at the line marked `tag`, called by `caller`.
fn names_line(v: &Value, name: &str, function: &str, tag: &str, caller: Option<&str>) {
    let fs = frames(v);
    let at = fs
        .iter()
        .position(|f| f.0 == function)
        .unwrap_or_else(|| panic!("no {function} in the stack: {fs:#?}"));
    let (_, file, line) = &fs[at];
    assert!(file.ends_with(&format!("{name}.c")), "{file}: {fs:#?}");
    assert_eq!(*line, marked_line(name, tag), "{function}'s line: {fs:#?}");
    if let Some(c) = caller {
        assert!(
            fs[at + 1..].iter().any(|f| f.0 == c),
            "{function} called by {c}: {fs:#?}"
        );
    }
}

/// The report's summary of the traced command (the lowest pid: the command itself).
fn command_pid(report: &Value) -> u64 {
    list(report, "processes")
        .iter()
        .filter_map(|p| p["pid"].as_u64())
        .min()
        .unwrap_or_else(|| panic!("no process in the report:\n{report:#}"))
}

fn run(name: &str, args: &[&str]) -> Traced {
    let bin = fixture(name);
    let mut cmd = vec![bin.as_str()];
    cmd.extend_from_slice(args);
    let t = run_traced(&[], &cmd);
    assert_eq!(t.code, 0, "{name} {args:?} failed; stderr: {}", t.stderr);
    t
}

#[test]
fn a_leak_stopped_by_emfile_is_a_suspect_and_the_emfile_names_it() {
    if !can_trace("a_leak_stopped_by_emfile_is_a_suspect_and_the_emfile_names_it") {
        return;
    }
    let t = run("socket_emfile", &[]);
    assert!(t.stdout.contains("EMFILE after"), "{}", t.stdout);
    let suspect = list(&t.report, "suspects")
        .into_iter()
        .find(|s| s["stopped_by_limit"] == "EMFILE")
        .unwrap_or_else(|| panic!("no suspect stopped by EMFILE:\n{:#}", t.report["suspects"]));
    assert_eq!(suspect["kind"], "socket", "{suspect:#}");
    assert!(suspect["count"].as_u64().is_some_and(|c| c >= 55), "{suspect:#}");
    names_line(
        suspect,
        "socket_emfile",
        "leak_connection",
        "LEAK:emfile",
        Some("handle_request"),
    );
    let emfile = list(&t.report, "incidents")
        .into_iter()
        .find(|i| i["kind"] == "limit_failure" && i["errno"] == "EMFILE")
        .unwrap_or_else(|| panic!("no EMFILE problem:\n{:#}", t.report["incidents"]));
    let top = &emfile["top_site"];
    assert_eq!(top["kind"], "socket", "{emfile:#}");
    assert!(top["count"].as_u64().is_some_and(|c| c >= 55), "{emfile:#}");
    assert!(top["share"].as_f64().is_some_and(|s| s >= 0.85), "{emfile:#}");
    names_line(
        top,
        "socket_emfile",
        "leak_connection",
        "LEAK:emfile",
        Some("handle_request"),
    );
}

#[test]
fn a_pool_filling_below_the_limit_is_not_a_suspect() {
    if !can_trace("a_pool_filling_below_the_limit_is_not_a_suspect") {
        return;
    }
    let t = run("socket_emfile", &["--fixed"]);
    let pid = command_pid(&t.report);
    let suspects: Vec<_> = list(&t.report, "suspects")
        .into_iter()
        .filter(|s| s["pid"] == pid)
        .collect();
    assert!(suspects.is_empty(), "{suspects:#?}");
    assert!(
        !list(&t.report, "incidents")
            .iter()
            .any(|i| i["kind"] == "limit_failure"),
        "{:#}",
        t.report["incidents"]
    );
    // Seen: the pool's 40 sockets, from pool_connect.
    let pool = list(&t.report, "outstanding")
        .into_iter()
        .find(|s| s["pid"] == pid && s["kind"] == "socket" && s["count"] == 40)
        .unwrap_or_else(|| panic!("the pool was not seen:\n{:#}", t.report["outstanding"]));
    names_line(pool, "socket_emfile", "pool_connect", "POOL:socket", None);
}
