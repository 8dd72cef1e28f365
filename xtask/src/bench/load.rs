//! Background load: commands run again and again on a period, each by a thread of its own,
//! until stopped; the processes they forked are counted. A run that fails, or prints what its
//! counter does not understand, stops that thread and is reported by `check` and `stop`.

use std::{
    io::Read,
    process::{Command, Stdio},
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    thread::JoinHandle,
    time::{Duration, Instant},
};

use super::guard::Guarded;
use crate::Result;

/// Longer than this, a single run is taken as hung (runs here take well under a second).
const RUN_TIMEOUT: Duration = Duration::from_secs(60);

#[derive(Default)]
pub(super) struct Load {
    stopping: Arc<AtomicBool>,
    processes: Arc<AtomicU64>,
    error: Arc<Mutex<Option<String>>>,
    threads: Vec<JoinHandle<()>>,
}

impl Load {
    /// Runs `make()` every `period` (back to back when a run takes longer). `count` reads a
    /// run's stdout: how many processes it forked, itself included (None: unexpected output).
    pub(super) fn repeat(
        &mut self,
        what: &'static str,
        period: Duration,
        mut make: impl FnMut() -> Command + Send + 'static,
        count: fn(&str) -> Option<u64>,
    ) {
        let stopping = self.stopping.clone();
        let processes = self.processes.clone();
        let error = self.error.clone();
        self.threads.push(std::thread::spawn(move || {
            while !stopping.load(Ordering::Relaxed) {
                let started = Instant::now();
                match run_once(&mut make(), what)
                    .and_then(|out| count(&out).ok_or_else(|| format!("{what} printed {out:?}")))
                {
                    Ok(n) => {
                        processes.fetch_add(n, Ordering::Relaxed);
                    }
                    Err(e) => {
                        if let Ok(mut slot) = error.lock() {
                            slot.get_or_insert(e);
                        }
                        return;
                    }
                }
                while started.elapsed() < period && !stopping.load(Ordering::Relaxed) {
                    std::thread::sleep(Duration::from_millis(20));
                }
            }
        }));
    }

    /// Processes forked so far (runs that completed).
    pub(super) fn processes(&self) -> u64 {
        self.processes.load(Ordering::Relaxed)
    }

    /// The first failure so far.
    pub(super) fn check(&self) -> Result {
        match self.error.lock().map(|e| e.clone()) {
            Ok(Some(e)) => Err(format!("background load: {e}")),
            _ => Ok(()),
        }
    }

    /// Lets the runs under way finish, then stops; the first failure, if any.
    pub(super) fn stop(&mut self) -> Result {
        self.stopping.store(true, Ordering::Relaxed);
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
        self.check()
    }
}

impl Drop for Load {
    fn drop(&mut self) {
        let _ = self.stop();
    }
}

/// Runs `cmd` to completion (killed when hung) and returns its stdout.
fn run_once(cmd: &mut Command, what: &str) -> Result<String> {
    let mut child = Guarded::spawn(
        cmd.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::null()),
        what,
    )?;
    let started = Instant::now();
    // The output is one short line: it fits the pipe, so waiting before reading is safe.
    let status = loop {
        if let Some(s) = child.try_wait().map_err(|e| format!("{what}: {e}"))? {
            break s;
        }
        if started.elapsed() > RUN_TIMEOUT {
            return Err(format!("{what} still running after {RUN_TIMEOUT:?}"));
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    let mut out = String::new();
    if let Some(mut stdout) = child.stdout.take() {
        stdout.read_to_string(&mut out).map_err(|e| format!("{what}: {e}"))?;
    }
    if !status.success() {
        return Err(format!("{what} failed ({status}): {out}"));
    }
    Ok(out)
}
