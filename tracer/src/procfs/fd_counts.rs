//! Every process's open-fd count from /proc: the fallback of the fd-count iterator (kernels
//! before 5.8, no BTF, refused), and the reference the tests compare the iterator with.
//! A walk of /proc/*/fd costs 18-42 ms for ~20k fds, against 15-90 us for the iterator.

use tracer_common::fd_counts::ProcessFdCount;

use super::{process, tasks};

/// The open fds of `pid` (entries of /proc/PID/fd), `None` once it is gone.
pub fn open_fds(pid: u32) -> Option<u32> {
    let entries = std::fs::read_dir(format!("/proc/{pid}/fd")).ok()?;
    Some(entries.count() as u32)
}

/// Every process but `except` into `out` (cleared first), as the iterator would give them.
pub fn host_counts(except: u32, out: &mut Vec<ProcessFdCount>) {
    out.clear();
    for pid in tasks::all_processes(except) {
        let Some(open) = open_fds(pid) else {
            continue;
        };
        let mut comm = [0u8; 16];
        let name = process::comm(pid);
        let n = name.len().min(15);
        comm[..n].copy_from_slice(&name[..n]);
        out.push(ProcessFdCount {
            tgid: pid,
            open_fds: open,
            max_fds: 0,
            flags: 0,
            nofile_soft: process::limits(pid).nofile_soft.unwrap_or(u64::MAX),
            comm,
        });
    }
}
