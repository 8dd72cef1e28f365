//! Leak reports on real leaky programs: the suspect names the leaking function, and legitimate
//! long-lived fds (a log file, a pool that filled) are not suspects.

use integration_tests::{can_trace, fixture, run_json, sites, stack_functions};

fn path_of(name: &str) -> String {
    fixture(name).to_string_lossy().into_owned()
}

fn has_function(site: &serde_json::Value, f: &str) -> bool {
    stack_functions(site).iter().any(|s| s == f)
}

/// Checks the stack order: `inner` appears before (is called by) `outer`.
fn calls(site: &serde_json::Value, outer: &str, inner: &str) -> bool {
    let fs = stack_functions(site);
    match (fs.iter().position(|s| s == inner), fs.iter().position(|s| s == outer)) {
        (Some(i), Some(o)) => i < o,
        _ => false,
    }
}

fn leak_on_error_path(stack: &str) {
    let bin = path_of("leaky_error_path");
    let (report, code, stderr) = run_json(&["--stack", stack], &[&bin, "150", "10"]);
    assert_eq!(code, 0, "exit code is the command's; stderr: {stderr}");
    let suspects = sites(&report, "suspects");
    let leak = suspects
        .iter()
        .find(|s| has_function(s, "load_config"))
        .unwrap_or_else(|| panic!("no suspect names load_config:\n{report:#}"));
    assert_eq!(leak["kind"], "file");
    assert_eq!(leak["resource"], "fd");
    assert!(
        leak["count"].as_u64().is_some_and(|c| c >= 140),
        "count {}",
        leak["count"]
    );
    assert!(
        calls(leak, "run_loop", "load_config"),
        "stack order: {:?}",
        stack_functions(leak)
    );
    assert!(
        leak["growth_per_min"].as_f64().is_some_and(|g| g > 1000.0),
        "growth {}",
        leak["growth_per_min"]
    );
    assert!(
        leak["example"].as_str().is_some_and(|e| e.starts_with("/etc/")),
        "example {}",
        leak["example"]
    );
    let frame = leak["stack"]
        .as_array()
        .and_then(|f| f.iter().find(|f| f["function"] == "load_config"))
        .cloned();
    let frame = frame.unwrap_or_default();
    assert!(
        frame["file"]
            .as_str()
            .is_some_and(|f| f.ends_with("leaky_error_path.c")),
        "file:line {frame}"
    );
    assert!(frame["line"].as_u64().is_some_and(|l| l > 0));
    // The log file is open at exit but flat: outstanding, not a suspect.
    assert!(
        !suspects.iter().any(|s| has_function(s, "open_log_file")),
        "log file must not be a suspect"
    );
    assert!(
        sites(&report, "outstanding")
            .iter()
            .any(|s| has_function(s, "open_log_file") && s["count"] == 1),
        "log file missing from outstanding:\n{report:#}"
    );
    let procs = report["processes"].as_array().cloned().unwrap_or_default();
    assert!(
        procs
            .iter()
            .any(|p| p["fd_soft_limit"].as_u64().is_some() && p["exited"] == true)
    );
    assert_eq!(report["lost_events"], 0);
}

#[test]
fn leak_on_error_path_names_the_leaking_function_dwarf() {
    if can_trace("leak dwarf") {
        leak_on_error_path("dwarf");
    }
}

#[test]
fn leak_on_error_path_fp_mode_reports_the_site() {
    if !can_trace("leak fp") {
        return;
    }
    // Frame pointers break in libc's open64 (it uses rbp as a general register): the kernel's
    // walk reads data as return addresses past it. The agent cuts the stack at the first
    // address outside executable code, so the site is the libc frame alone, resolved, and every
    // open of the process lands in it (the config leaks and the log file: sites merge, as the
    // docs/cli.md says of fp mode).
    let bin = path_of("leaky_error_path");
    let (report, code, stderr) = run_json(&["--stack", "fp"], &[&bin, "150", "10"]);
    assert_eq!(code, 0, "{stderr}");
    let suspects = sites(&report, "suspects");
    let leak = suspects
        .iter()
        .find(|s| s["kind"] == "file" && s["count"].as_u64().is_some_and(|c| c >= 150))
        .unwrap_or_else(|| panic!("no file suspect with the 150 leaks and the log:\n{report:#}"));
    let frames = leak["stack"].as_array().cloned().unwrap_or_default();
    assert!(!frames.is_empty(), "fp mode names a frame: {leak:#}");
    for f in &frames {
        assert!(
            f["module"].as_str().is_some() && f["function"].as_str().is_some(),
            "every frame is real code, resolved (no garbage past libc): {leak:#}"
        );
    }
    assert!(
        frames[0]["module"].as_str().is_some_and(|m| m.contains("libc"))
            && frames[0]["function"].as_str().is_some_and(|f| f.contains("open")),
        "the walk starts in libc's open wrapper: {leak:#}"
    );
    assert_eq!(report["losses"]["stack_not_captured"], 0, "{:#}", report["losses"]);
}

#[test]
fn a_pool_that_filled_is_not_a_suspect() {
    if !can_trace("pool") {
        return;
    }
    let bin = path_of("pool_fills");
    let (report, code, _) = run_json(&[], &[&bin, "16", "1500"]);
    assert_eq!(code, 0);
    assert!(
        sites(&report, "suspects").is_empty(),
        "no suspects expected:\n{report:#}"
    );
    let pool = sites(&report, "outstanding")
        .into_iter()
        .find(|s| has_function(s, "pool_connect"))
        .cloned();
    let pool = pool.unwrap_or_else(|| panic!("pool missing:\n{report:#}"));
    assert_eq!(pool["count"], 16);
    assert_eq!(pool["kind"], "socket");
    assert_eq!(pool["family"], "inet");
    // do_work() closes what it opens: nothing of it is outstanding.
    assert!(!sites(&report, "outstanding").iter().any(|s| has_function(s, "do_work")));
}

#[test]
fn scm_rights_leak_in_a_child_process_is_found() {
    if !can_trace("scm") {
        return;
    }
    let bin = path_of("scm_rights_leak");
    let (report, code, _) = run_json(&[], &[&bin, "100", "10"]);
    assert_eq!(code, 0);
    let procs = report["processes"].as_array().cloned().unwrap_or_default();
    assert!(procs.len() >= 2, "parent and child expected: {procs:?}");
    let leak = sites(&report, "suspects")
        .into_iter()
        .find(|s| has_function(s, "receive_request"))
        .cloned();
    let leak = leak.unwrap_or_else(|| panic!("no suspect names receive_request:\n{report:#}"));
    let parent = procs.iter().filter_map(|p| p["pid"].as_u64()).min().unwrap_or(0);
    assert_ne!(leak["pid"].as_u64(), Some(parent), "the leak is in the child");
    // The fds arrive in receive_request's recvmsg, called from the child's loop in main;
    // handle_request (which fails and so leaks them) is not on the allocation path.
    assert!(
        calls(&leak, "main", "receive_request"),
        "stack: {:?}",
        stack_functions(&leak)
    );
    assert!(
        !has_function(&leak, "handle_request"),
        "stack: {:?}",
        stack_functions(&leak)
    );
    // The batch receiver closes what it gets.
    assert!(
        !sites(&report, "outstanding")
            .iter()
            .any(|s| has_function(s, "receive_batch")),
        "{report:#}"
    );
}
