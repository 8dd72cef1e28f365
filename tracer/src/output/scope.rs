//! What a host-wide mode traces, in words, for its start-up line.

use super::escape::escape_bytes;
use crate::tracker::policy::Policy;

/// What the agent traces with stacks, and what it only counts.
pub fn describe_agent(p: &Policy, trace_all: bool) -> String {
    if trace_all {
        return "every process on the host, every fd with stacks (--trace-all)".into();
    }
    let counted = "every process's open fds counted; a process whose count keeps rising or nears its limit \
                   is traced with stacks (escalated)";
    if p.whole_host() {
        counted.into()
    } else {
        format!("{} with stacks; {counted}", describe(p))
    }
}

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_agent_says_what_it_traces_and_what_it_counts() {
        let host = Policy::default();
        assert!(describe_agent(&host, true).starts_with("every process on the host"));
        assert!(describe_agent(&host, false).starts_with("every process's open fds counted"));
        let sel = Policy {
            pids: vec![42],
            ..Policy::default()
        };
        let text = describe_agent(&sel, false);
        assert!(
            text.starts_with("PID 42 and their children with stacks; every process"),
            "{text}"
        );
    }
}
