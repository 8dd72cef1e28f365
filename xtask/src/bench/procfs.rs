//! What /proc says about a process: its resident memory, its CPU time, its children.

use std::process::Command;

use crate::Result;

/// One reading of a process's cost.
#[derive(Clone, Copy, Debug, Default)]
pub(super) struct Usage {
    /// VmRSS: resident memory, the agent's ring-buffer pages included.
    pub rss_kib: u64,
    /// VmHWM: the peak of VmRSS so far.
    pub peak_rss_kib: u64,
    /// utime + stime, in clock ticks.
    pub cpu_ticks: u64,
}

pub(super) fn usage(pid: u32) -> Result<Usage> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).map_err(|e| format!("PID {pid}: {e}"))?;
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).map_err(|e| format!("PID {pid}: {e}"))?;
    let (_, cpu_ticks) = parse_stat(&stat).ok_or_else(|| format!("PID {pid}: unreadable stat {stat:?}"))?;
    Ok(Usage {
        rss_kib: status_kib(&status, "VmRSS:").ok_or_else(|| format!("PID {pid}: no VmRSS"))?,
        peak_rss_kib: status_kib(&status, "VmHWM:").unwrap_or(0),
        cpu_ticks,
    })
}

/// A `Key:   1234 kB` line of /proc/PID/status.
fn status_kib(status: &str, key: &str) -> Option<u64> {
    status
        .lines()
        .find_map(|l| l.strip_prefix(key))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
}

/// (ppid, utime + stime) from /proc/PID/stat. The command name (field 2) may hold spaces and
/// parentheses: fields are counted from its last ')'.
fn parse_stat(stat: &str) -> Option<(u32, u64)> {
    let rest = &stat[stat.rfind(')')? + 1..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    // rest starts at field 3 (state): ppid is field 4, utime 14, stime 15.
    let ppid = f.get(1)?.parse().ok()?;
    let utime: u64 = f.get(11)?.parse().ok()?;
    let stime: u64 = f.get(12)?.parse().ok()?;
    Some((ppid, utime + stime))
}

/// The processes whose parent is `ppid`.
pub(super) fn children(ppid: u32) -> Vec<u32> {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    let mut out: Vec<u32> = dir
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            std::fs::read_to_string(format!("/proc/{pid}/stat"))
                .ok()
                .and_then(|s| parse_stat(&s))
                .is_some_and(|(parent, _)| parent == ppid)
        })
        .collect();
    out.sort_unstable();
    out
}

/// Clock ticks per second, the unit of /proc/PID/stat's times.
pub(super) fn clock_ticks() -> u64 {
    Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8_lossy(&o.stdout).trim().parse().ok())
        .filter(|t| *t > 0)
        .unwrap_or(100)
}

/// CPU used between two readings `secs` apart, in percent of one core.
pub(super) fn cpu_percent(before: Usage, after: Usage, secs: f64, ticks_per_s: u64) -> f64 {
    let used = after.cpu_ticks.saturating_sub(before.cpu_ticks) as f64 / ticks_per_s as f64;
    if secs > 0.0 { used / secs * 100.0 } else { f64::NAN }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_stat_past_odd_names() {
        let stat = "42 (a) b (c)) S 7 42 42 0 -1 4194560 100 0 0 0 25 5 0 0 20 0 1 0 100 1000 50";
        assert_eq!(parse_stat(stat), Some((7, 30)));
        assert_eq!(parse_stat("garbage"), None);
    }

    #[test]
    fn reads_status_lines() {
        let status = "Name:\ttracer\nVmHWM:\t   20480 kB\nVmRSS:\t   10240 kB\n";
        assert_eq!(status_kib(status, "VmRSS:"), Some(10240));
        assert_eq!(status_kib(status, "VmHWM:"), Some(20480));
        assert_eq!(status_kib(status, "VmSwap:"), None);
    }
}
