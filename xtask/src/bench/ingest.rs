//! The ingest workload: the highest record rate the producer reaches, and what happens when
//! the ring buffer is too small.

use std::process::Command;

use super::{Env, Options, parse_stats};
use crate::Result;

pub(super) struct Ingest {
    pub(super) mode: &'static str,
    pub(super) ring_mib: u32,
    pub(super) events_per_s: f64,
    pub(super) records: u64,
    pub(super) lost: u64,
    pub(super) max_rss_kib: u64,
}

/// The highest rate the producer reaches (2 threads), and what happens when the buffer is too
/// small: losses counted and reported, memory bounded, the agent keeps going.
pub(super) fn ingest_rows(env: &Env, o: &Options) -> Result<Vec<Ingest>> {
    eprintln!("bench: ingest");
    let n: u64 = if o.quick { 5_000 } else { 1_000_000 };
    let mut out = Vec::new();
    for (mode, ring) in [("none", 64u32), ("fp", 64), ("dwarf", 64), ("dwarf", 1)] {
        let run = Command::new(&env.tracer)
            .args([
                "run",
                "--stack",
                mode,
                "--ring-buffer-size",
                &ring.to_string(),
                "--stats",
                "-o",
                "/dev/null",
                "--",
            ])
            .arg(&env.churn)
            .args(["open", &n.to_string(), "2"])
            .output()
            .map_err(|e| e.to_string())?;
        let stderr = String::from_utf8_lossy(&run.stderr);
        let stats = parse_stats(&stderr).ok_or_else(|| format!("ingest run without stats: {stderr}"))?;
        let elapsed: f64 = String::from_utf8_lossy(&run.stdout).trim().parse().unwrap_or(f64::NAN);
        out.push(Ingest {
            mode,
            ring_mib: ring,
            events_per_s: (stats.records + stats.lost) as f64 / (elapsed / 1e9),
            records: stats.records,
            lost: stats.lost,
            max_rss_kib: stats.max_rss_kib,
        });
    }
    Ok(out)
}
