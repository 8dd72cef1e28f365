//! What /proc says about a process: its resident memory, its CPU time, its children.
//!
//! CPU time comes two ways. /proc/PID/stat's utime + stime covers the whole thread group
//! (exited threads included) and cutime + cstime its reaped children, but in clock ticks
//! (10 ms at 100 Hz): a third of a second of nginx CPU would be read to within a few percent,
//! too coarse against a 2% target. /proc/PID/task/TID/schedstat gives each live thread's run
//! time (the same `sum_exec_runtime` the kernel splits into utime and stime) in nanoseconds.
//! `CpuTime` keeps both: the precise sum when every thread seen before is still there after,
//! the ticks when one exited in between (its time would otherwise be lost).

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
    let st = parse_stat(&stat).ok_or_else(|| format!("PID {pid}: unreadable stat {stat:?}"))?;
    Ok(Usage {
        rss_kib: status_kib(&status, "VmRSS:").ok_or_else(|| format!("PID {pid}: no VmRSS"))?,
        peak_rss_kib: status_kib(&status, "VmHWM:").unwrap_or(0),
        cpu_ticks: st.utime + st.stime,
    })
}

/// VmRSS of a running process, in KiB.
pub(super) fn rss_kib(pid: u32) -> Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).map_err(|e| format!("PID {pid}: {e}"))?;
    status_kib(&status, "VmRSS:").ok_or_else(|| format!("PID {pid}: no VmRSS"))
}

/// A `Key:   1234 kB` line of /proc/PID/status.
fn status_kib(status: &str, key: &str) -> Option<u64> {
    status
        .lines()
        .find_map(|l| l.strip_prefix(key))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
}

/// The fields of /proc/PID/stat the benchmark reads; times in clock ticks.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct Stat {
    ppid: u32,
    utime: u64,
    stime: u64,
    /// The times of the children it waited for.
    cutime: u64,
    cstime: u64,
}

/// /proc/PID/stat. The command name (field 2) may hold spaces and parentheses: fields are
/// counted from its last ')'.
fn parse_stat(stat: &str) -> Option<Stat> {
    let rest = &stat[stat.rfind(')')? + 1..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    // rest starts at field 3 (state): ppid is field 4, utime 14, stime 15, cutime 16, cstime 17
    // (cutime and cstime are signed in proc(5), never negative in practice).
    let field = |n: usize| f.get(n - 3)?.parse::<u64>().ok();
    Some(Stat {
        ppid: u32::try_from(field(4)?).ok()?,
        utime: field(14)?,
        stime: field(15)?,
        cutime: field(16)?,
        cstime: field(17)?,
    })
}

/// The first field of /proc/PID/task/TID/schedstat: the thread's time on a CPU, in ns.
fn parse_schedstat(schedstat: &str) -> Option<u64> {
    schedstat.split_whitespace().next()?.parse().ok()
}

/// One reading of a process's CPU time (see the module's comment).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(super) struct CpuTime {
    /// (TID, ns on a CPU) of each live thread, sorted by TID.
    threads: Vec<(u32, u64)>,
    /// utime + stime of the thread group, in clock ticks.
    ticks: u64,
    /// cutime + cstime: its reaped children, in clock ticks.
    child_ticks: u64,
}

pub(super) fn cpu_time(pid: u32) -> Result<CpuTime> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).map_err(|e| format!("PID {pid}: {e}"))?;
    let st = parse_stat(&stat).ok_or_else(|| format!("PID {pid}: unreadable stat {stat:?}"))?;
    let dir = std::fs::read_dir(format!("/proc/{pid}/task")).map_err(|e| format!("PID {pid}: {e}"))?;
    let mut threads: Vec<(u32, u64)> = dir
        .flatten()
        .filter_map(|e| {
            let tid: u32 = e.file_name().to_str()?.parse().ok()?;
            // A thread may exit between the listing and the read: it is simply not there.
            let s = std::fs::read_to_string(e.path().join("schedstat")).ok()?;
            Some((tid, parse_schedstat(&s)?))
        })
        .collect();
    if threads.is_empty() {
        return Err(format!("PID {pid}: no readable /proc/{pid}/task/*/schedstat"));
    }
    threads.sort_unstable();
    Ok(CpuTime {
        threads,
        ticks: st.utime + st.stime,
        child_ticks: st.cutime + st.cstime,
    })
}

impl CpuTime {
    /// CPU time used since `before`, in ns, children reaped meanwhile included; and whether it
    /// is the precise figure (false: a thread exited in between, so the ticks were used).
    pub(super) fn ns_since(&self, before: &CpuTime, ticks_per_s: u64) -> (u64, bool) {
        let tick_ns = 1_000_000_000 / ticks_per_s.max(1);
        let children = self.child_ticks.saturating_sub(before.child_ticks) * tick_ns;
        let all_alive = before
            .threads
            .iter()
            .all(|(tid, _)| self.threads.binary_search_by_key(tid, |t| t.0).is_ok());
        if all_alive {
            let sum = |c: &CpuTime| c.threads.iter().map(|t| t.1).sum::<u64>();
            // Threads born meanwhile count from zero: all their time is in the interval.
            (sum(self).saturating_sub(sum(before)) + children, true)
        } else {
            (self.ticks.saturating_sub(before.ticks) * tick_ns + children, false)
        }
    }
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
                .is_some_and(|st| st.ppid == ppid)
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
        let stat = "42 (a) b (c)) S 7 42 42 0 -1 4194560 100 0 0 0 25 5 3 2 20 0 1 0 100 1000 50";
        let want = Stat {
            ppid: 7,
            utime: 25,
            stime: 5,
            cutime: 3,
            cstime: 2,
        };
        assert_eq!(parse_stat(stat), Some(want));
        assert_eq!(parse_stat("garbage"), None);
        // Cut before cstime: not a stat line.
        assert_eq!(parse_stat("42 (a) S 7 42 42 0 -1 4194560 100 0 0 0 25 5 3"), None);
    }

    #[test]
    fn reads_this_process() {
        let me = cpu_time(std::process::id());
        assert!(me.as_ref().is_ok_and(|c| !c.threads.is_empty()), "{me:?}");
        assert!(cpu_time(u32::MAX).is_err());
    }

    #[test]
    fn reads_schedstat() {
        assert_eq!(parse_schedstat("414108135 248502503 80\n"), Some(414_108_135));
        assert_eq!(parse_schedstat(""), None);
        assert_eq!(parse_schedstat("x 1 2"), None);
    }

    #[test]
    fn cpu_between_two_readings() {
        let at = |threads: &[(u32, u64)], ticks, child_ticks| CpuTime {
            threads: threads.to_vec(),
            ticks,
            child_ticks,
        };
        let before = at(&[(1, 1_000), (2, 5_000)], 10, 0);
        // Thread 2 ran 3 us more, thread 3 was born and ran 2 us, a child of 1 tick was reaped.
        let after = at(&[(1, 1_000), (2, 8_000), (3, 2_000)], 11, 1);
        assert_eq!(after.ns_since(&before, 100), (5_000 + 10_000_000, true));
        // Thread 2 exited: only the ticks can say what the group used.
        let gone = at(&[(1, 1_500)], 13, 0);
        assert_eq!(gone.ns_since(&before, 100), (30_000_000, false));
        assert_eq!(before.ns_since(&before, 100), (0, true));
    }

    #[test]
    fn reads_status_lines() {
        let status = "Name:\ttracer\nVmHWM:\t   20480 kB\nVmRSS:\t   10240 kB\n";
        assert_eq!(status_kib(status, "VmRSS:"), Some(10240));
        assert_eq!(status_kib(status, "VmHWM:"), Some(20480));
        assert_eq!(status_kib(status, "VmSwap:"), None);
    }
}
