//! Stacks that name the leaking function in ordinary binaries: no frame pointers (plain -O2 -g),
//! stripped with a debuglink, a process that exited before the report, and valgrind's view of the
//! same binary as the reference.

use std::process::Command;

use integration_tests::{Build, can_trace, fixture_built, have_tool, run_json, sites, workspace_root};

/// Line of the "LEAK:<marker>" comment in the fixture source.
fn marked_line(marker: &str) -> u64 {
    let src = std::fs::read_to_string(workspace_root().join("tests/fixtures/nofp_leaks.c")).unwrap_or_default();
    let tag = format!("LEAK:{marker} ");
    src.lines()
        .position(|l| l.contains(&tag))
        .map(|i| i as u64 + 1)
        .unwrap_or_else(|| panic!("no {tag} in source"))
}

/// (function, file, line, module) of each frame.
fn frames(site: &serde_json::Value) -> Vec<(String, String, u64, String)> {
    site["stack"]
        .as_array()
        .map(|fs| {
            fs.iter()
                .map(|f| {
                    (
                        f["function"].as_str().unwrap_or("").to_owned(),
                        f["file"].as_str().unwrap_or("").to_owned(),
                        f["line"].as_u64().unwrap_or(0),
                        f["module"].as_str().unwrap_or("").to_owned(),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

/// The suspect whose stack has `function`.
fn suspect_with<'a>(report: &'a serde_json::Value, function: &str) -> &'a serde_json::Value {
    sites(report, "suspects")
        .into_iter()
        .find(|s| frames(s).iter().any(|f| f.0 == function))
        .unwrap_or_else(|| panic!("no suspect with {function}:\n{report:#}"))
}

/// libc wrapper (or syscall site) first, then the leaking function at the marked line, then its caller.
fn check_site(report: &serde_json::Value, leak_fn: &str, caller: &str, marker: &str) {
    let site = suspect_with(report, leak_fn);
    let fs = frames(site);
    let at = fs.iter().position(|f| f.0 == leak_fn).unwrap_or(usize::MAX);
    assert!(at >= 1, "{leak_fn} must follow the libc frame: {fs:#?}");
    assert!(
        fs[..at].iter().all(|f| f.3.contains("libc")),
        "frames before {leak_fn} are libc's: {fs:#?}"
    );
    let (_, file, line, _) = &fs[at];
    assert!(file.ends_with("nofp_leaks.c"), "{file}");
    assert_eq!(*line, marked_line(marker), "{leak_fn} line");
    assert_eq!(
        fs.get(at + 1).map(|f| f.0.as_str()),
        Some(caller),
        "caller of {leak_fn}: {fs:#?}"
    );
}

fn leaks_named(build: Build) {
    let bin = fixture_built("nofp_leaks", build).to_string_lossy().into_owned();
    let (report, code, stderr) = run_json(&[], &[&bin, "40", "20"]);
    assert_eq!(code, 0, "{stderr}");
    check_site(&report, "leak_open", "serve_files", "open");
    check_site(&report, "leak_socket", "serve_sockets", "socket");
    check_site(&report, "leak_accept", "serve_connections", "accept");
    check_site(&report, "leak_received", "serve_messages", "scm");
    // The process exited before the report: it was still symbolized (run reports at exit).
    assert!(report["processes"][0]["exited"] == true);
}

#[test]
fn without_frame_pointers_the_leaking_function_and_line_are_named() {
    if can_trace("nofp") {
        leaks_named(Build::Optimized);
    }
}

#[test]
fn stripped_binary_is_symbolized_from_its_debuglink() {
    if can_trace("debuglink") {
        let bin = fixture_built("nofp_leaks", Build::StrippedWithDebuglink);
        let syms = Command::new("nm")
            .arg(&bin)
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
            .unwrap_or_else(|e| panic!("nm (binutils): {e}"));
        assert!(!syms.contains("leak_open"), "the fixture must really be stripped");
        leaks_named(Build::StrippedWithDebuglink);
    }
}

/// valgrind --track-fds=yes stacks: for each leaked fd, the function names of its frames.
fn valgrind_stacks(bin: &str) -> Option<Vec<Vec<String>>> {
    let out = Command::new("valgrind")
        .args(["--track-fds=yes", "--num-callers=12", bin, "3", "1"])
        .output()
        .ok()?;
    let text = String::from_utf8_lossy(&out.stderr).into_owned();
    let mut stacks = Vec::new();
    let mut current: Option<Vec<String>> = None;
    for line in text.lines() {
        let body = line.split_once("== ").map(|(_, b)| b.trim()).unwrap_or("");
        if body.starts_with("Open file descriptor") || (body.starts_with("Open ") && body.contains(" socket ")) {
            current = Some(Vec::new());
        } else if let (Some(st), Some(rest)) = (
            current.as_mut(),
            body.strip_prefix("at ").or_else(|| body.strip_prefix("by ")),
        ) {
            // "0x109393: leak_open (nofp_leaks.c:18)"
            if let Some(name) = rest
                .split_once(": ")
                .map(|(_, r)| r.split(' ').next().unwrap_or("").to_owned())
            {
                st.push(name);
            }
        } else if let Some(st) = current.take()
            && !st.is_empty()
        {
            stacks.push(st);
        }
    }
    Some(stacks)
}

#[test]
fn our_stacks_match_valgrind_track_fds() {
    if !can_trace("valgrind") || !have_tool("valgrind", "valgrind") {
        return;
    }
    let bin = fixture_built("nofp_leaks", Build::Optimized)
        .to_string_lossy()
        .into_owned();
    let theirs = valgrind_stacks(&bin).unwrap_or_default();
    assert!(!theirs.is_empty(), "valgrind reported no open fds");
    let (report, _, _) = run_json(&[], &[&bin, "3", "1"]);
    for leak_fn in ["leak_open", "leak_socket", "leak_accept", "leak_received"] {
        let vg = theirs
            .iter()
            .find(|s| s.iter().any(|f| f == leak_fn))
            .unwrap_or_else(|| panic!("valgrind has no stack with {leak_fn}: {theirs:?}"));
        let ours_site = sites(&report, "outstanding")
            .into_iter()
            .find(|s| frames(s).iter().any(|f| f.0 == leak_fn))
            .unwrap_or_else(|| panic!("we have no stack with {leak_fn}:\n{report:#}"));
        let ours: Vec<String> = frames(ours_site).into_iter().map(|f| f.0).collect();
        // Frames of the program itself (from the leaking function up to main) must be identical;
        // libc's frames carry aliases (valgrind says `open`, the debug info `__libc_open64`).
        let tail = |s: &[String]| -> Vec<String> {
            let start = s.iter().position(|f| f == leak_fn).unwrap_or(s.len());
            let end = s.iter().position(|f| f == "main").map_or(s.len(), |m| m + 1);
            s[start..end.max(start)].to_vec()
        };
        assert_eq!(tail(&ours), tail(vg), "{leak_fn}: ours {ours:?} vs valgrind {vg:?}");
        assert!(
            ours.iter().position(|f| f == leak_fn) >= Some(1),
            "a libc frame precedes {leak_fn}"
        );
    }
}

#[test]
fn rust_release_binary_names_the_leaking_function() {
    if !can_trace("rust") {
        return;
    }
    let bin = integration_tests::rust_fixture("rust_leak")
        .to_string_lossy()
        .into_owned();
    let (report, code, stderr) = run_json(&[], &[&bin, "40", "20"]);
    assert_eq!(code, 0, "{stderr}");
    let site = suspect_with(&report, "rust_leak::leak_config");
    let fs = frames(site);
    let at = fs.iter().position(|f| f.0 == "rust_leak::leak_config").unwrap_or(0);
    assert!(fs[0].3.contains("libc"), "innermost frame is libc's open: {fs:#?}");
    assert!(
        fs[..at]
            .iter()
            .any(|f| f.0.contains("std::fs::File") && f.0.contains("open")),
        "std frames: {fs:#?}"
    );
    let src = std::fs::read_to_string(workspace_root().join("tests/fixtures/rust_leak.rs")).unwrap_or_default();
    let line = src.lines().position(|l| l.contains("LEAK:rust")).map(|i| i as u64 + 1);
    assert_eq!(Some(fs[at].2), line);
    assert_eq!(fs.get(at + 1).map(|f| f.0.as_str()), Some("rust_leak::serve"));
}

#[test]
fn every_stack_copy_size_unwinds() {
    if !can_trace("stack sizes") {
        return;
    }
    let bin = fixture_built("nofp_leaks", Build::Optimized)
        .to_string_lossy()
        .into_owned();
    for size in ["4", "16"] {
        let (report, code, stderr) = run_json(&["--stack-size", size], &[&bin, "40", "20"]);
        assert_eq!(code, 0, "{stderr}");
        check_site(&report, "leak_open", "serve_files", "open");
    }
}

#[test]
fn a_binary_deleted_while_running_is_still_symbolized() {
    // Like a package upgrade under a running service: the file is gone by the time of the report.
    if !can_trace("deleted binary") {
        return;
    }
    let dir = std::env::temp_dir().join(format!("tracer-deleted-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("{e}"));
    let bin = dir.join("deleted_leaker");
    std::fs::copy(fixture_built("nofp_leaks", Build::Optimized), &bin).unwrap_or_else(|e| panic!("{e}"));
    let bin = bin.to_string_lossy().into_owned();
    let script = "\"$0\" 40 20 & sleep 0.3; rm -f \"$0\"; wait";
    let (report, code, stderr) = run_json(&[], &["sh", "-c", script, &bin]);
    assert_eq!(code, 0, "{stderr}");
    assert!(
        !std::path::Path::new(&bin).exists(),
        "the binary must be gone before the report"
    );
    check_site(&report, "leak_open", "serve_files", "open");
    let _ = std::fs::remove_dir_all(&dir);
}

/// Waits for `path` to exist (at most 60 s).
fn wait_for(path: &std::path::Path) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while !path.exists() {
        assert!(
            std::time::Instant::now() < deadline,
            "{} never appeared",
            path.display()
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

/// Resumes (and on failure kills) a tracer the test stopped.
struct Stopped(u32);

impl Drop for Stopped {
    fn drop(&mut self) {
        // SAFETY: plain signals to a child process this test started.
        unsafe {
            libc::kill(self.0 as i32, libc::SIGCONT);
            if std::thread::panicking() {
                libc::kill(self.0 as i32, libc::SIGKILL);
            }
        }
    }
}

#[test]
fn a_process_gone_before_the_agent_looked_is_still_symbolized() {
    // The agent is stopped from before the program's exec until after its exit, as an agent on a
    // loaded host is late: /proc/PID/maps is never readable for it, so its stacks can only come
    // from its own records (auxv at exec, the loader's opens and code mappings).
    if !can_trace("gone before the agent looked") {
        return;
    }
    let dir = std::env::temp_dir().join(format!("tracer-gone-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("{e}"));
    let (fifo, ready, done, out) = (
        dir.join("go"),
        dir.join("ready"),
        dir.join("done"),
        dir.join("report.json"),
    );
    let c_fifo = std::ffi::CString::new(fifo.to_string_lossy().as_bytes()).unwrap_or_default();
    // SAFETY: a valid NUL-terminated path.
    assert_eq!(unsafe { libc::mkfifo(c_fifo.as_ptr(), 0o600) }, 0, "mkfifo");
    // Under a name no output may mangle: newline, escape sequence, a byte that is not UTF-8.
    use std::os::unix::ffi::OsStrExt;
    let bin = dir.join(std::ffi::OsStr::from_bytes(b"leak\ner\x1b[0m\xff"));
    std::fs::copy(fixture_built("nofp_leaks", Build::Optimized), &bin).unwrap_or_else(|e| panic!("{e}"));
    let script = "echo > \"$1\"; read x < \"$2\"; \"$0\" 40 20; echo > \"$3\"";
    let child = Command::new(integration_tests::tracer_bin())
        .args(["run", "--format", "json", "-o"])
        .arg(&out)
        .args(["--", "sh", "-c", script])
        .args([&bin, &ready, &fifo, &done])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run tracer: {e}"));
    let stopped = Stopped(child.id());
    wait_for(&ready);
    // Let the agent take in the shell, then stop it for the fixture's whole life.
    std::thread::sleep(std::time::Duration::from_millis(300));
    // SAFETY: a signal to the tracer this test started.
    unsafe { libc::kill(child.id() as i32, libc::SIGSTOP) };
    std::fs::write(&fifo, "go\n").unwrap_or_else(|e| panic!("{e}"));
    wait_for(&done);
    drop(stopped);
    let result = child.wait_with_output().unwrap_or_else(|e| panic!("{e}"));
    let stderr = String::from_utf8_lossy(&result.stderr);
    assert_eq!(result.status.code(), Some(0), "{stderr}");
    let text = std::fs::read_to_string(&out).unwrap_or_else(|e| panic!("no report ({e}): {stderr}"));
    let report: serde_json::Value = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}: {text}"));
    check_site(&report, "leak_open", "serve_files", "open");
    check_site(&report, "leak_socket", "serve_sockets", "socket");
    check_site(&report, "leak_accept", "serve_connections", "accept");
    check_site(&report, "leak_received", "serve_messages", "scm");
    let hex: String = bin.as_os_str().as_bytes().iter().map(|b| format!("{b:02x}")).collect();
    let frame = &suspect_with(&report, "leak_open")["stack"][1];
    assert_eq!(frame["module_hex"].as_str(), Some(hex.as_str()), "{frame:#}");
    let _ = std::fs::remove_dir_all(&dir);
}

/// The count of fds of the one outstanding site whose stack has `leaf` and `root`, and its
/// functions; fails if the fds of that call path fell into several sites (a stack cut short
/// would make a site of its own).
fn one_site(report: &serde_json::Value, leaf: &str, root: &str) -> (u64, Vec<String>) {
    let matching: Vec<_> = sites(report, "outstanding")
        .into_iter()
        .filter(|s| {
            let f = integration_tests::stack_functions(s);
            f.iter().any(|x| x == leaf) && (f.iter().any(|x| x == root))
        })
        .collect();
    assert_eq!(matching.len(), 1, "one site for {leaf} under {root}:\n{report:#}");
    (
        matching[0]["count"].as_u64().unwrap_or(0),
        integration_tests::stack_functions(matching[0]),
    )
}

#[test]
fn stack_copies_shrink_to_the_live_stack_and_stay_whole() {
    if !can_trace("stack_copies_shrink_to_the_live_stack_and_stay_whole") {
        return;
    }
    let bin = fixture_built("stack_depths", Build::Optimized)
        .to_string_lossy()
        .into_owned();
    // 10 ms apart: the agent learns a thread's stack top from its first stacks (within a tick),
    // and the kernel copies less from then on.
    let t = integration_tests::run_traced(&["--stats"], &[&bin, "50", "40", "10"]);
    assert_eq!(t.code, 0, "{}", t.stderr);
    // Every stack of each call path, the first (copied whole) and the later ones (copied to the
    // thread's stack top), in the main thread and another, shallow and 40 frames deep: one site
    // each, with every frame down to the thread's root.
    for root in ["main", "thread_main"] {
        let (count, _) = one_site(&t.report, "leak_shallow", root);
        assert_eq!(count, 50, "leak_shallow under {root}");
        let (count, f) = one_site(&t.report, "leak_deep", root);
        assert_eq!(count, 50, "leak_deep under {root}");
        // descend(40) down to descend(0): 41 frames, each once (a recursive stack repeats one
        // return address; each frame is still named once).
        let depth = f.iter().filter(|x| *x == "descend").count();
        assert_eq!(depth, 41, "descend frames under {root}: {f:?}");
    }
    // The copies did shrink: most of the shallow stacks fit 1 or 2 KiB.
    let stats = t
        .stderr
        .lines()
        .find(|l| l.starts_with("tracer-stats:"))
        .unwrap_or_else(|| panic!("no stats line:\n{}", t.stderr));
    let field = |k: &str| {
        stats
            .split_whitespace()
            .find_map(|w| w.strip_prefix(k))
            .unwrap_or_else(|| panic!("no {k} in {stats}"))
            .to_owned()
    };
    let copies: std::collections::HashMap<String, u64> = field("stack_copies=")
        .split(',')
        .filter_map(|p| p.split_once(':'))
        .map(|(k, v)| (k.to_owned(), v.parse().unwrap_or(0)))
        .collect();
    let small = copies.get("1k").copied().unwrap_or(0) + copies.get("2k").copied().unwrap_or(0);
    // 100 shallow stacks over 1 s, in two threads: all but those before each thread's first
    // stack was unwound (a tick, 100 ms) are copied short.
    assert!(small >= 50, "shallow stacks should be copied in 1 or 2 KiB: {stats}");
    assert_eq!(field("short_stack_copies="), "0", "{stats}");
}
