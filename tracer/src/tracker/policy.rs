//! Which processes are traced: the whole host, or the processes given (`--pid`), named
//! (`--comm`) or in a cgroup (`--cgroup`), each with the children it forks from then on.
//!
//! The kernel follows children at fork by itself (`task/task_newtask`); a process that starts
//! matching later (an exec to a selected name, an exec inside a selected cgroup) is reported by
//! the kernel's exec hook and followed from then on.

use std::{
    ffi::OsString,
    os::unix::ffi::OsStrExt,
    path::{Path, PathBuf},
};

use super::{Pipeline, TrackerError};
use crate::procfs::{process as proc, tasks};

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Policy {
    pub pids: Vec<u32>,
    /// Command names as `/proc/PID/comm` shows them (15 bytes at most).
    pub comms: Vec<Vec<u8>>,
    /// Cgroup v2 paths, relative to the cgroup root (`/system.slice/nginx.service`).
    pub cgroups: Vec<String>,
}

impl Policy {
    /// What is traced: these PIDs, names and cgroups (all empty: the whole host).
    pub fn from_args(pids: &[u32], comms: &[OsString], cgroups: &[PathBuf]) -> Policy {
        Policy {
            pids: pids.to_vec(),
            comms: comms
                .iter()
                .map(|c| {
                    let b = c.as_bytes();
                    // /proc/PID/comm holds at most 15 bytes: a longer name matches its prefix.
                    b[..b.len().min(15)].to_vec()
                })
                .collect(),
            cgroups: cgroups.iter().map(|c| normalize_cgroup(c)).collect(),
        }
    }

    /// Every process on the host, including processes started later.
    pub fn whole_host(&self) -> bool {
        self.pids.is_empty() && self.comms.is_empty() && self.cgroups.is_empty()
    }

    /// Processes may start to match at exec: the kernel must report execs of untraced ones.
    pub fn discovers_at_exec(&self) -> bool {
        !self.comms.is_empty() || !self.cgroups.is_empty()
    }

    /// Does a process with this name and cgroup match a `--comm` or `--cgroup` selector?
    pub fn selects(&self, comm: &[u8], cgroup: Option<&str>) -> bool {
        if self.comms.iter().any(|c| c.as_slice() == comm) {
            return true;
        }
        cgroup.is_some_and(|g| self.cgroups.iter().any(|sel| cgroup_within(g, sel)))
    }
}

/// `--cgroup` accepts the path inside the cgroup hierarchy or under its mount point.
pub fn normalize_cgroup(arg: &Path) -> String {
    let text = arg.to_string_lossy();
    let inner = text
        .strip_prefix("/sys/fs/cgroup/unified")
        .or_else(|| text.strip_prefix("/sys/fs/cgroup"))
        .unwrap_or(&text);
    let trimmed = inner.trim_end_matches('/');
    if trimmed.is_empty() {
        "/".to_owned()
    } else if trimmed.starts_with('/') {
        trimmed.to_owned()
    } else {
        format!("/{trimmed}")
    }
}

/// Is cgroup `path` the selected one or below it (whole path components only)?
fn cgroup_within(path: &str, selected: &str) -> bool {
    if selected == "/" {
        return true;
    }
    path == selected || path.strip_prefix(selected).is_some_and(|rest| rest.starts_with('/'))
}

/// Follows every selected process now: the PIDs given, and every process whose name or cgroup
/// is selected (all of them for the whole host). Processes that exit meanwhile are skipped.
pub fn seed(agent: &mut Pipeline, policy: &Policy) -> Result<(), TrackerError> {
    for pid in &policy.pids {
        agent.follow(*pid)?;
    }
    // Children the given processes already have are theirs too (later ones join at fork).
    for pid in tasks::descendants(&policy.pids) {
        if let Err(e) = agent.follow(pid) {
            log::debug!("PID {pid} (a descendant) not seeded: {e}");
        }
    }
    if policy.pids.is_empty() || policy.discovers_at_exec() {
        let me = std::process::id();
        for pid in tasks::all_processes(me) {
            if agent.tracker.state.processes.contains_key(&pid) {
                continue;
            }
            let selected = policy.whole_host() || policy.selects(&proc::comm(pid), tasks::cgroup_of(pid).as_deref());
            if !selected {
                continue;
            }
            // Whole host: the kernel traces everyone already; a selection adds it to the set.
            let r = if policy.whole_host() {
                agent.tracker.adopt(pid)
            } else {
                agent.follow(pid)
            };
            if let Err(e) = r {
                log::debug!("PID {pid} not seeded: {e}");
            }
            // Keep the ring drained while seeding a big host.
            agent.drain_up_to(16_384);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn selection_by_name_and_cgroup() {
        let p = Policy {
            pids: vec![],
            comms: vec![b"nginx".to_vec()],
            cgroups: vec![normalize_cgroup(Path::new("/sys/fs/cgroup/system.slice/app.service/"))],
        };
        assert!(!p.whole_host() && p.discovers_at_exec());
        assert_eq!(p.cgroups, vec!["/system.slice/app.service".to_owned()]);
        assert!(p.selects(b"nginx", None));
        assert!(!p.selects(b"nginx2", Some("/system.slice/other.service")));
        assert!(p.selects(b"x", Some("/system.slice/app.service")));
        assert!(p.selects(b"x", Some("/system.slice/app.service/worker")));
        assert!(!p.selects(b"x", Some("/system.slice/app.service2")));
        assert!(Policy::default().whole_host());
        assert_eq!(normalize_cgroup(Path::new("system.slice")), "/system.slice");
    }
}
