//! The processes of the host from `/proc`: all of them, their parents, their cgroups and
//! containers.

/// The parent pid and the flags of /proc/PID/stat.
fn stat_of(pid: u32) -> Option<(u32, u64)> {
    let stat = procfs::process::Process::new(i32::try_from(pid).ok()?)
        .ok()?
        .stat()
        .ok()?;
    Some((u32::try_from(stat.ppid).ok()?, u64::from(stat.flags)))
}

/// `PF_KTHREAD` in the flags field of /proc/PID/stat (include/linux/sched.h).
fn is_kernel_thread(pid: u32) -> bool {
    const PF_KTHREAD: u64 = 0x0020_0000;
    stat_of(pid).is_some_and(|(_, flags)| flags & PF_KTHREAD != 0)
}

/// Every process below `roots` now (children, their children, ...), from /proc.
pub fn descendants(roots: &[u32]) -> Vec<u32> {
    let parents: Vec<(u32, u32)> = all_processes(0)
        .into_iter()
        .filter_map(|p| stat_of(p).map(|(ppid, _)| (p, ppid)))
        .collect();
    descendants_in(roots, &parents)
}

/// The processes below `roots` given (pid, parent pid) pairs.
fn descendants_in(roots: &[u32], parents: &[(u32, u32)]) -> Vec<u32> {
    let mut found: Vec<u32> = Vec::new();
    let mut frontier: Vec<u32> = roots.to_vec();
    while let Some(parent) = frontier.pop() {
        for (pid, _) in parents.iter().filter(|(p, pp)| *pp == parent && !roots.contains(p)) {
            if !found.contains(pid) {
                found.push(*pid);
                frontier.push(*pid);
            }
        }
    }
    found.sort_unstable();
    found
}

/// The cgroup v2 path of a process (the `0::` line of `/proc/PID/cgroup`).
pub fn cgroup_of(pid: u32) -> Option<String> {
    let groups = procfs::process::Process::new(i32::try_from(pid).ok()?)
        .ok()?
        .cgroups()
        .ok()?;
    groups
        .0
        .into_iter()
        .find(|g| g.hierarchy == 0 && g.controllers.is_empty())
        .map(|g| g.pathname)
}

/// The container id in a process's cgroup file, the way Alloy's `discovery.process` finds it
/// (`^.*/(?:.*-)?([0-9a-f]{64})(?:\.|\s*$)` on any line), empty outside containers.
pub fn container_id(cgroup_file: &str) -> String {
    for line in cgroup_file.lines() {
        let Some(slash) = line.rfind('/') else { continue };
        let last = &line[slash + 1..];
        // The id is the last 64 hex digits before an optional `.scope` suffix, after an
        // optional `docker-`/`cri-containerd-` style prefix.
        let stem = last.split('.').next().unwrap_or(last).trim_end();
        let id = stem.rsplit('-').next().unwrap_or(stem);
        if id.len() == 64 && id.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)) {
            return id.to_owned();
        }
    }
    String::new()
}

/// The container id of a process (empty outside containers or if it is gone).
pub fn container_of(pid: u32) -> String {
    std::fs::read_to_string(format!("/proc/{pid}/cgroup"))
        .map(|t| container_id(&t))
        .unwrap_or_default()
}

/// Every user-space process on the host now, but `except` (the agent itself). Kernel threads
/// make no syscalls and have no fds of their own: left out.
pub fn all_processes(except: u32) -> Vec<u32> {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    let mut pids: Vec<u32> = dir
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|p| *p != except && !is_kernel_thread(*p))
        .collect();
    pids.sort_unstable();
    pids
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn container_ids_as_alloy_finds_them() {
        let id = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
        for text in [
            format!("0::/kubepods.slice/kubepods-pod1.slice/cri-containerd-{id}.scope\n"),
            format!("0::/system.slice/docker-{id}.scope"),
            format!("12:pids:/docker/{id}\n0::/docker/{id}"),
            format!("0::/kubepods/besteffort/pod1/{id}"),
        ] {
            assert_eq!(container_id(&text), id, "{text}");
        }
        assert_eq!(container_id("0::/user.slice/user-0.slice/session-1.scope\n"), "");
        assert_eq!(container_id("0::/\n"), "");
        // 63 digits, or a non-hex digit: not an id.
        assert_eq!(container_id(&format!("0::/docker/{}", &id[1..])), "");
        assert_eq!(container_id(&format!("0::/docker/{}g", &id[1..])), "");
    }

    #[test]
    fn parents_cgroups_and_kernel_threads() {
        let own = std::fs::read_to_string("/proc/self/cgroup").unwrap_or_default();
        let v2 = own.lines().find_map(|l| l.strip_prefix("0::")).map(str::to_owned);
        assert_eq!(cgroup_of(std::process::id()), v2);
        assert!(is_kernel_thread(2), "kthreadd");
        assert!(!is_kernel_thread(std::process::id()));
        assert_eq!(
            stat_of(std::process::id()).map(|s| s.0),
            Some(std::os::unix::process::parent_id())
        );
        let tree = [(10, 1), (11, 10), (12, 11), (13, 1), (14, 12)];
        assert_eq!(descendants_in(&[10], &tree), vec![11, 12, 14]);
        assert_eq!(descendants_in(&[13], &tree), Vec::<u32>::new());
    }
}
