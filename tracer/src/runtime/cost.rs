//! What the agent itself costs: CPU time and memory, for `--stats` and the agent's metrics.

pub use crate::model::health::Cost;

pub fn now() -> Cost {
    // SAFETY: getrusage fills the struct it is given.
    let usage = unsafe {
        let mut u: libc::rusage = std::mem::zeroed();
        libc::getrusage(libc::RUSAGE_SELF, &mut u);
        u
    };
    let secs = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    let status = procfs::process::Process::myself().and_then(|p| p.status()).ok();
    Cost {
        cpu_seconds: secs(usage.ru_utime) + secs(usage.ru_stime),
        max_rss_kib: usage.ru_maxrss.max(0) as u64,
        rss_bytes: status.as_ref().and_then(|s| s.vmrss).unwrap_or(0) * 1024,
        rss_anon_kib: status.as_ref().and_then(|s| s.rssanon).unwrap_or(0),
    }
}
