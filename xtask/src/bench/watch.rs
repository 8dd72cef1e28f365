//! `tracer watch -p PID.. --stats` as a measured configuration: started and attached before the
//! work, interrupted after it, its `tracer-stats:` line read back.

use std::{
    io::{BufReader, Read},
    path::Path,
    process::{ChildStderr, Command, Stdio},
};

use super::{Stats, guard::Guarded, parse_stats, wait_for_line};
use crate::Result;

pub(super) struct Watch {
    child: Guarded,
    stderr: BufReader<ChildStderr>,
    /// What it printed up to readiness.
    seen: String,
}

impl Watch {
    /// Starts `tracer watch` on `pids` with `--stack mode` and waits until it traces them.
    pub(super) fn start(tracer: &Path, pids: &[u32], mode: &str) -> Result<Self> {
        let mut cmd = Command::new(tracer);
        cmd.arg("watch");
        for pid in pids {
            cmd.args(["-p", &pid.to_string()]);
        }
        cmd.args(["--stack", mode, "--stats", "-o", "/dev/null", "3600"])
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        let mut child = Guarded::spawn(&mut cmd, "tracer watch")?;
        let mut stderr = BufReader::new(child.stderr.take().ok_or("tracer watch: no stderr")?);
        let seen = wait_for_line(&mut stderr, "tracer: tracing PID", "tracer watch")?;
        Ok(Watch { child, stderr, seen })
    }

    pub(super) fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Interrupts it (Ctrl-C: final report, then the stats line) and returns its stats. Its
    /// last words are small: they wait in the pipe until it has exited (or been killed).
    pub(super) fn finish(mut self) -> Result<Stats> {
        let _ = self.child.finish();
        let mut rest = String::new();
        let _ = self.stderr.read_to_string(&mut rest);
        self.seen.push_str(&rest);
        parse_stats(&self.seen).ok_or_else(|| format!("no tracer-stats line in: {}", self.seen))
    }
}
