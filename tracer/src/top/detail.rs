//! The view of one process (Enter on a row): its sites with stacks, growing ones first, as the
//! report shows them.

use crate::{
    analysis::{Report, SiteReport},
    output::{
        escape::escape_bytes,
        text::{age, frame},
    },
    state::StackId,
};

/// The process's sites, growing ones first (fastest first), then the largest.
pub fn sites(r: &Report, pid: u32) -> Vec<&SiteReport> {
    let mut v: Vec<&SiteReport> = r.outstanding.iter().filter(|s| s.pid == pid).collect();
    let growing = |s: &SiteReport| {
        r.suspects
            .iter()
            .any(|x| x.pid == s.pid && x.stack.id == s.stack.id && x.kind == s.kind)
    };
    v.sort_by(|a, b| {
        growing(b)
            .cmp(&growing(a))
            .then(b.growth_per_min.total_cmp(&a.growth_per_min))
            .then(b.count.cmp(&a.count))
    });
    v
}

/// Stacks to symbolize for the view.
pub fn stack_ids(r: &Report, pid: u32) -> Vec<StackId> {
    sites(r, pid)
        .iter()
        .map(|s| s.stack.id)
        .filter(|id| *id != StackId::NONE)
        .collect()
}

/// The lines of the view (plain text, escaped), and which of them are suspects' headings.
pub fn lines(r: &Report, pid: u32) -> Vec<(String, bool)> {
    let mut out = Vec::new();
    let Some(p) = r.processes.iter().find(|p| p.pid == pid) else {
        out.push((format!("PID {pid} is gone"), false));
        return out;
    };
    let limit = p.fd_soft_limit.map_or_else(|| "unlimited".into(), |l| l.to_string());
    let kinds: Vec<String> = p.by_kind.iter().map(|(k, n)| format!("{k}:{n}")).collect();
    out.push((
        format!(
            "PID {} {}: {} fds open, soft limit {limit}{}; {}",
            p.pid,
            escape_bytes(&p.comm_bytes),
            p.open_fds,
            if p.exited { " (exited)" } else { "" },
            kinds.join(" ")
        ),
        false,
    ));
    let list = sites(r, pid);
    if list.is_empty() {
        out.push(("no sites with anything open".into(), false));
    }
    for (n, s) in list.iter().enumerate() {
        let suspect = r
            .suspects
            .iter()
            .any(|x| x.pid == s.pid && x.stack.id == s.stack.id && x.kind == s.kind);
        let kind = match s.family {
            Some(f) => format!("{} ({f})", s.kind),
            None => s.kind.to_owned(),
        };
        let mut head = format!("[{}] {} x {kind}, oldest {}", n + 1, s.count, age(s.oldest_age_ms));
        if suspect {
            head.push_str(&format!(", SUSPECT growing {:.1}/min", s.growth_per_min));
            if let Some(t) = s.time_to_limit_s {
                head.push_str(&format!(", limit in ~{}", age((t * 1000.0) as u64)));
            }
        }
        out.push((head, suspect));
        if let Some(e) = &s.example_bytes {
            out.push((format!("    e.g. {}", escape_bytes(e)), false));
        }
        if s.before_attach {
            out.push(("    opened before tracing: no stack".into(), false));
        }
        for (i, f) in s.stack.frames.iter().enumerate() {
            out.push((format!("    #{i:<2} {}", frame(f)), false));
        }
    }
    out
}
