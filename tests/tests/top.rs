//! `tracer top` the way a person uses it: in a real terminal (tmux, 80x24), against a leaking
//! fixture and a busy one that holds more fds but does not grow. Keys are sent with
//! `send-keys`, the screen is read with `capture-pane`.

use std::{
    path::PathBuf,
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use integration_tests::{can_trace, fixture, have_tool, open_fds, tracer_bin, wait_until};

/// Kills a helper process when the test ends, passed or not.
struct Reap(Child);

impl Drop for Reap {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A tmux server of this test's own (its own socket), killed at the end.
struct Tmux {
    socket: String,
}

impl Tmux {
    fn cmd(&self) -> Command {
        let mut c = Command::new("tmux");
        c.args(["-L", &self.socket]);
        c
    }

    fn run(&self, args: &[&str]) {
        let st = self
            .cmd()
            .args(args)
            .status()
            .unwrap_or_else(|e| panic!("tmux {args:?}: {e}"));
        assert!(st.success(), "tmux {args:?}: {st}");
    }

    fn screen(&self) -> String {
        self.capture(&[])
    }

    /// The pane's text; with `-e`, its colours as escape sequences too.
    fn capture(&self, extra: &[&str]) -> String {
        let out = self
            .cmd()
            .args(["capture-pane", "-p", "-t", "top"])
            .args(extra)
            .output()
            .unwrap_or_else(|e| panic!("capture-pane: {e}"));
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Polls the screen until `ok` holds; panics with the last screen after `secs`.
    fn wait_screen(&self, what: &str, secs: u64, ok: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + Duration::from_secs(secs);
        loop {
            let s = self.screen();
            if ok(&s) {
                return s;
            }
            assert!(Instant::now() < deadline, "{what}: the screen shows\n{s}");
            std::thread::sleep(Duration::from_millis(200));
        }
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = self.cmd().arg("kill-server").stderr(Stdio::null()).status();
    }
}

/// The SUS (suspects) cell of `pid`'s row.
fn suspects_of(screen: &str, pid: u32) -> Option<u32> {
    let line = screen
        .lines()
        .find(|l| l.split_whitespace().next() == Some(&pid.to_string()))?;
    line.split_whitespace().nth(6)?.parse().ok()
}

/// The leaker's row as tmux draws it, escape sequences included.
fn colored_row(tmux: &Tmux, pid: u32) -> String {
    let s = tmux.capture(&["-e"]);
    s.lines()
        .find(|l| l.contains(&pid.to_string()) && l.contains("leaky_error_pat"))
        .unwrap_or_else(|| panic!("no row for {pid}:\n{s}"))
        .to_owned()
}

/// Whether a captured line carries red (SGR 31, or palette colour 1 or 9 however tmux spells it).
fn is_red(s: &str) -> bool {
    [
        "[31m", ";31m", "[31;", ";31;", "38;5;1m", "38;5;1;", "38;5;9m", "38;5;9;",
    ]
    .iter()
    .any(|p| s.contains(p))
}

/// PIDs of the table's rows, top first.
fn row_pids(screen: &str) -> Vec<u32> {
    screen
        .lines()
        .skip_while(|l| !l.contains("PID") || !l.contains("COMM"))
        .skip(1)
        .filter_map(|l| l.split_whitespace().next()?.parse().ok())
        .collect()
}

#[test]
fn top_in_a_terminal_puts_the_leaker_on_top_by_growth_and_shows_its_stack() {
    if !can_trace("top") || !have_tool("top", "tmux") {
        return;
    }
    // Built (if needed) before the fixtures start, so the leaker has not outgrown the busy one.
    let tracer = tracer_bin();
    // The leaker: one fd every 50 ms from load_config. The busy one: 300 sockets held flat.
    let leaker = Command::new(fixture("leaky_error_path"))
        .args(["2000", "50"])
        .stdout(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("{e}"));
    let busy = Command::new(fixture("pool_fills"))
        .args(["300", "120000"])
        .stdout(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("{e}"));
    let (lp, bp) = (leaker.id(), busy.id());
    let (_l, _b) = (Reap(leaker), Reap(busy));
    wait_until("the pool filled", || open_fds(bp) >= 300);
    let dir: PathBuf = std::env::temp_dir().join(format!("tracer-top-{}", std::process::id()));
    let _ = std::fs::create_dir_all(&dir);
    let status_file = dir.join("status");
    let _ = std::fs::remove_file(&status_file);
    let tmux = Tmux {
        socket: format!("tracer-top-test-{}", std::process::id()),
    };
    let command = format!(
        "{} top -p {lp} -p {bp}; echo exit=$? > {}",
        tracer.display(),
        status_file.display()
    );
    tmux.run(&["new-session", "-d", "-s", "top", "-x", "80", "-y", "24", &command]);

    // Sorted by open fds at start: the busy process is on top.
    let s = tmux.wait_screen("both processes listed", 60, |s| {
        let p = row_pids(s);
        p.contains(&lp) && p.contains(&bp)
    });
    assert_eq!(row_pids(&s).first(), Some(&bp), "by fds the busy one leads:\n{s}");
    assert!(s.lines().all(|l| l.chars().count() <= 80), "fits 80 columns:\n{s}");
    assert!(
        s.contains("GROW/M") && s.contains("q quit"),
        "columns and keys shown:\n{s}"
    );

    // `g` sorts by growth: the leaker comes on top once its slope is measured.
    tmux.run(&["send-keys", "-t", "top", "g"]);
    let s = tmux.wait_screen("the leaker on top by growth", 30, |s| {
        s.contains("sort GROW/M") && row_pids(s).first() == Some(&lp)
    });
    assert!(s.contains("leaky_error_pat"), "{s}");
    // Once a suspect, its row is red (a terminal, no NO_COLOR).
    tmux.wait_screen("the leaker a suspect", 30, |s| {
        suspects_of(s, lp).is_some_and(|n| n >= 1)
    });
    let red = colored_row(&tmux, lp);
    assert!(is_red(&red), "a suspect's row is red: {red:?}");

    // Enter opens the selected (top) process: its sites with the stack naming the leak.
    tmux.run(&["send-keys", "-t", "top", "Enter"]);
    let s = tmux.wait_screen("the leaker's stack", 30, |s| s.contains("load_config"));
    assert!(s.contains(&format!("PID {lp}")), "{s}");
    assert!(s.contains("run_loop"), "the caller too:\n{s}");

    // `q` quits: tracer exits 0 and its probes are gone with it.
    tmux.run(&["send-keys", "-t", "top", "q"]);
    wait_until("tracer top exited", || status_file.exists());
    wait_until("its status written", || {
        std::fs::read_to_string(&status_file).is_ok_and(|s| s.ends_with('\n'))
    });
    let status = std::fs::read_to_string(&status_file).unwrap_or_default();
    assert_eq!(status.trim(), "exit=0", "a clean exit");
    assert!(open_fds(lp) > 0, "the traced process lives on");

    // NO_COLOR: the same suspect, no colour (reverse video for the selection stays).
    let _ = std::fs::remove_file(&status_file);
    let command = format!(
        "env NO_COLOR=1 {} top -p {lp} --sort growth; echo exit=$? > {}",
        tracer.display(),
        status_file.display()
    );
    // The first session ended with its command (and its server with it).
    let _ = tmux.cmd().arg("kill-server").stderr(Stdio::null()).status();
    tmux.run(&["new-session", "-d", "-s", "top", "-x", "80", "-y", "24", &command]);
    tmux.wait_screen("the leaker a suspect again", 60, |s| {
        suspects_of(s, lp).is_some_and(|n| n >= 1)
    });
    let plain = colored_row(&tmux, lp);
    assert!(!is_red(&plain), "no colour with NO_COLOR: {plain:?}");
    tmux.run(&["send-keys", "-t", "top", "q"]);
    wait_until("tracer top exited again", || {
        std::fs::read_to_string(&status_file).is_ok_and(|s| s.trim() == "exit=0")
    });
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn top_prints_plain_lines_when_stdout_is_not_a_terminal() {
    if !can_trace("top_plain") {
        return;
    }
    let tracer = tracer_bin();
    let leaker = Command::new(fixture("leaky_error_path"))
        .args(["2000", "50"])
        .stdout(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("{e}"));
    let lp = leaker.id();
    let _l = Reap(leaker);
    let out = Command::new(&tracer)
        .args(["top", "-p", &lp.to_string(), "-n", "3", "-d", "500ms"])
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8(out.stdout).unwrap_or_else(|e| panic!("{e}"));
    assert!(!text.contains('\x1b'), "no escape sequences in a pipe:\n{text:?}");
    assert_eq!(text.matches("tracer top after").count(), 3, "-n 3 tables:\n{text}");
    let rows: Vec<&str> = text
        .lines()
        .filter(|l| l.split_whitespace().next() == Some(&lp.to_string()))
        .collect();
    assert_eq!(rows.len(), 3, "the process in each table:\n{text}");
    assert!(
        rows.iter()
            .all(|r| r.contains("leaky_error_pat") && r.contains("file:")),
        "{rows:?}"
    );
    assert!(
        text.contains("GROW/M") && text.contains("files "),
        "header and system line:\n{text}"
    );
}
