//! What a host-wide mode traces, in words, for its start-up line.

use super::escape::escape_bytes;
use crate::tracker::policy::Policy;

/// "every process on the host", or "PID 1, comm nginx, cgroup /x and their children".
pub fn describe(p: &Policy) -> String {
    if p.whole_host() {
        return "every process on the host".into();
    }
    let mut parts = Vec::new();
    if !p.pids.is_empty() {
        parts.push(format!(
            "PID {}",
            p.pids.iter().map(u32::to_string).collect::<Vec<_>>().join(", ")
        ));
    }
    for c in &p.comms {
        parts.push(format!("comm {}", escape_bytes(c)));
    }
    for g in &p.cgroups {
        parts.push(format!("cgroup {g}"));
    }
    format!("{} and their children", parts.join(", "))
}
