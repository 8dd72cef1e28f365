//! `tracer agent` as the benchmark runs it: on a loopback port of its own choosing, ready once
//! it says so, its /metrics scraped, stopped with SIGINT (which it treats like SIGTERM).

use std::{
    io::{BufRead, BufReader},
    net::SocketAddr,
    path::Path,
    process::{Command, Stdio},
    sync::{Arc, Mutex},
    thread::JoinHandle,
};

use super::{guard::Guarded, scrape, wait_for_line};
use crate::Result;

/// The last bytes of the agent's stderr kept for error messages.
const LOG_KEEP: usize = 16 << 10;

pub(super) struct Agent {
    child: Guarded,
    addr: SocketAddr,
    /// Its stderr after readiness, drained by a thread so it never blocks on a full pipe.
    log: Arc<Mutex<String>>,
    drain: Option<JoinHandle<()>>,
}

impl Agent {
    /// Starts `tracer agent --listen 127.0.0.1:0 ARGS` and waits for `tracer: ready`.
    pub(super) fn start(tracer: &Path, args: &[&str]) -> Result<Self> {
        let mut child = Guarded::spawn(
            Command::new(tracer)
                .args(["agent", "--listen", "127.0.0.1:0"])
                .args(args)
                .stdout(Stdio::null())
                .stderr(Stdio::piped()),
            "tracer agent",
        )?;
        let mut stderr = BufReader::new(child.stderr.take().ok_or("tracer agent: no stderr")?);
        let seen = wait_for_line(&mut stderr, "tracer: ready", "tracer agent")?;
        let addr = seen
            .lines()
            .find_map(|l| l.strip_prefix("tracer: agent on http://"))
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|a| a.parse().ok())
            .ok_or_else(|| format!("tracer agent did not say where it listens: {seen}"))?;
        let log = Arc::new(Mutex::new(String::new()));
        let sink = log.clone();
        let drain = std::thread::spawn(move || {
            for line in stderr.lines().map_while(std::result::Result::ok) {
                if let Ok(mut l) = sink.lock() {
                    l.push_str(&line);
                    l.push('\n');
                    if l.len() > 2 * LOG_KEEP {
                        let cut = l.len() - LOG_KEEP;
                        let cut = (cut..l.len()).find(|i| l.is_char_boundary(*i)).unwrap_or(0);
                        l.drain(..cut);
                    }
                }
            }
        });
        Ok(Agent {
            child,
            addr,
            log,
            drain: Some(drain),
        })
    }

    pub(super) fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The /metrics exposition (Prometheus text 0.0.4).
    pub(super) fn metrics(&self) -> Result<String> {
        scrape::get(self.addr, "/metrics").map_err(|e| format!("{e}; agent stderr:\n{}", self.log()))
    }

    /// An error (with what it printed) if it is no longer running.
    pub(super) fn check_alive(&mut self) -> Result {
        match self.child.try_wait() {
            Ok(None) => Ok(()),
            Ok(Some(status)) => Err(format!("tracer agent exited ({status}); stderr:\n{}", self.log())),
            Err(e) => Err(format!("tracer agent: {e}")),
        }
    }

    fn log(&self) -> String {
        self.log.lock().map(|l| l.clone()).unwrap_or_default()
    }

    /// Stops it; a stop that is not a clean exit 0 is reported on stderr, not as a failure
    /// (the figures were taken already).
    pub(super) fn stop(self) {
        let Agent { child, log, drain, .. } = self;
        let status = child.finish();
        if let Some(d) = drain {
            let _ = d.join();
        }
        if !status.is_some_and(|s| s.success()) {
            let log = log.lock().map(|l| l.clone()).unwrap_or_default();
            eprintln!("bench: tracer agent did not exit cleanly on SIGINT ({status:?}); stderr:\n{log}");
        }
    }
}
