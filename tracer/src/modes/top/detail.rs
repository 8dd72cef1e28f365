//! The view of one process (Enter on a row): its sites with stacks, growing ones first, as the
//! report shows them.

use crate::{
    model::{Frame, Report, SiteReport},
    output::{
        escape::{escape_bytes, escape_str},
        frame_name::{frame_name, names_module},
        text::age,
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

/// A frame in the width of a terminal: its name, then the source file's name and line (or the
/// module's file name), without the address; `--format text` has the full paths.
fn short_frame(f: &Frame) -> String {
    let base = |p: &str| p.rsplit('/').next().unwrap_or(p).to_owned();
    if f.python {
        return format!("{} [py]", escape_str(&crate::output::frame_name::python_name(f, true)));
    }
    let mut s = frame_name(f);
    if let Some(file) = &f.file {
        s.push_str(&format!("  {}", escape_str(&base(file))));
        if let Some(l) = f.line {
            s.push_str(&format!(":{l}"));
        }
    } else if !names_module(f)
        && let Some(m) = &f.module
    {
        s.push_str(&format!("  in {}", escape_str(&base(m))));
    }
    if f.inlined {
        s.push_str(" [inlined]");
    }
    s
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
            out.push((format!("  #{i:<2} {}", short_frame(f)), false));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn growing_sites_first_with_short_frames_and_escaped_names() {
        let mut r = crate::output::tests::sample();
        // The suspect listed last among the outstanding sites: the view still puts it first.
        r.outstanding.rotate_left(1);
        let lines: Vec<String> = lines(&r, 4242).into_iter().map(|(l, _)| l).collect();
        assert!(lines[0].starts_with("PID 4242 svc\\xfe\\n: 122 fds open"), "{lines:?}");
        assert!(
            lines[1].starts_with("[1] 120 x file") && lines[1].contains("SUSPECT growing 600.0/min"),
            "{lines:?}"
        );
        assert!(
            lines.contains(&"  #1  load_config  config.c:20".to_owned()),
            "{lines:?}"
        );
        assert!(
            lines.iter().any(|l| l == "  #0  /opt/new\\nlib\\x1b[0m\\xff.so+0x1a2b"),
            "an unresolved frame is module+offset, escaped: {lines:?}"
        );
        assert!(lines.iter().all(|l| !l.contains('\n') && !l.contains('\x1b')));
    }

    #[test]
    fn python_frames_are_function_file_and_line_marked_py() {
        let f = Frame::python("Pool.get\n", "/srv/app/pool.py", Some(34));
        assert_eq!(short_frame(&f), "Pool.get\\n (pool.py:34) [py]");
    }
}
