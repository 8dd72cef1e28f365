//! Running the tools a workload measures: bpftrace scripts, waiting for a line of output,
//! stopping a tool the way a user would.

use std::{
    io::{BufRead, BufReader},
    path::Path,
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use super::guard::Guarded;
use crate::Result;

/// Runs a bpftrace script with `args` and then a marker file's path, which the script's BEGIN
/// probe creates (BEGIN fires once every probe is attached; bpftrace buffers its output when it
/// is not a terminal, so no line can say so); returns once it exists.
pub(super) fn start_bpftrace(script: &Path, args: &[String]) -> Result<Guarded> {
    let ready = script.with_extension("ready");
    let _ = std::fs::remove_file(&ready);
    let mut bt = Guarded::spawn(
        Command::new("bpftrace")
            .arg("--unsafe")
            .arg(script)
            .args(args)
            .arg(&ready)
            .stdout(Stdio::null())
            .stderr(Stdio::null()),
        "bpftrace",
    )?;
    let deadline = Instant::now() + Duration::from_secs(60);
    while !ready.exists() {
        if Instant::now() > deadline || bt.try_wait().map_err(|e| e.to_string())?.is_some() {
            return Err(format!("bpftrace did not start (try {} by hand)", script.display()));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    Ok(bt)
}

/// Waits until `child`'s stream (stderr or stdout) has a line containing `marker`; returns the
/// reader so the rest can be collected later.
pub(super) fn wait_for_line<R: std::io::Read>(reader: &mut BufReader<R>, marker: &str, what: &str) -> Result<String> {
    let mut seen = String::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let mut line = String::new();
        let n = reader.read_line(&mut line).map_err(|e| e.to_string())?;
        if n == 0 || Instant::now() > deadline {
            return Err(format!("{what} never said {marker:?}: {seen}"));
        }
        seen.push_str(&line);
        if line.contains(marker) {
            return Ok(seen);
        }
    }
}

pub(super) fn interrupt(child: &Child) {
    let _ = Command::new("kill").args(["-INT", &child.id().to_string()]).status();
}

/// Stops a tool the way a user would (SIGINT, which bpftrace sometimes misses right after its
/// BEGIN probe ran: it is sent again every second), killing it after 30 s.
pub(super) fn stop(child: &mut Child) {
    for _ in 0..30 {
        interrupt(child);
        for _ in 0..10 {
            if child.try_wait().ok().flatten().is_some() {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
    let _ = child.kill();
    let _ = child.wait();
}

pub(super) fn have(tool: &str) -> bool {
    Command::new(tool)
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok()
}
