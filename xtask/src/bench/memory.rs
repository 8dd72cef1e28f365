//! The memory workload: the agent's memory per tracked fd.

use std::process::Command;

use super::{Env, Options, parse_stats};
use crate::Result;

/// Agent memory while tracking PROCS x FDS outstanding fds, against a baseline where the same
/// processes open and close as many. Measured as anonymous RSS at exit (the agent's heap: the
/// ring buffer's pages are shared memory and left out), processes started 20 ms apart so the
/// agent keeps up without losses.
pub(super) fn run(env: &Env, o: &Options) -> Result<(u64, u64, u64, f64)> {
    eprintln!("bench: memory");
    let (procs, fds) = if o.quick { (4u64, 100u64) } else { (100, 1000) };
    let rss = |mode: &str| -> Result<u64> {
        let work = if mode == "hold" {
            format!("hold {fds} 3")
        } else {
            format!("open {fds} 1; sleep 3")
        };
        let script = format!("for i in $(seq {procs}); do {{ \"$0\" {work}; }} & sleep 0.02; done; wait");
        let run = Command::new(&env.tracer)
            .args([
                "run",
                "--stack",
                "fp",
                "--stats",
                "-o",
                "/dev/null",
                "--",
                "sh",
                "-c",
                &script,
            ])
            .arg(&env.churn)
            .output()
            .map_err(|e| e.to_string())?;
        let stderr = String::from_utf8_lossy(&run.stderr);
        let stats = parse_stats(&stderr).ok_or_else(|| format!("memory run without stats: {stderr}"))?;
        if stats.lost > 0 {
            eprintln!(
                "bench: memory run lost {} records: the figure is a lower bound",
                stats.lost
            );
        }
        Ok(stats.rss_anon_kib)
    };
    let base = rss("churn")?;
    let loaded = rss("hold")?;
    let total = procs * fds;
    let per_fd = loaded.saturating_sub(base) as f64 * 1024.0 / total as f64;
    Ok((total, base, loaded, per_fd))
}
