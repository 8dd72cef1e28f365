//! What the agent itself costs: CPU time and memory, for `--stats` and the agent's metrics.

#[derive(Clone, Copy, Debug, Default)]
pub struct Cost {
    /// User plus system CPU time of the whole agent (every thread).
    pub cpu_seconds: f64,
    /// Peak resident set (getrusage), KiB.
    pub max_rss_kib: u64,
    /// Resident set now, ring buffer pages included, bytes.
    pub rss_bytes: u64,
    /// Anonymous resident memory now (the heap, without the ring buffer's shared pages), KiB.
    pub rss_anon_kib: u64,
}

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
