//! A site in the text report: its head line (count, kind, growth, time to the limit, what
//! stopped it), an example path, and its stack.

use std::io::Write;

use super::{age, frames::frame, paint};
use crate::{model::SiteReport, output::escape::escape_bytes, state::Resource};

pub(super) fn same_site(a: &SiteReport, b: &SiteReport) -> bool {
    a.pid == b.pid
        && a.stack.id == b.stack.id
        && a.kind == b.kind
        && a.family == b.family
        && a.before_attach == b.before_attach
}

pub(super) fn write_site(
    out: &mut dyn Write,
    n: usize,
    s: &SiteReport,
    suspect: bool,
    color: bool,
) -> std::io::Result<()> {
    let mut head = String::new();
    site_head(&mut head, n, s, suspect);
    writeln!(out, "{}", paint(color, head))?;
    if let Some(e) = &s.example_bytes {
        writeln!(out, "    e.g. {}", escape_bytes(e))?;
    }
    if s.before_attach {
        writeln!(out, "    opened before tracing started: no allocation stack")?;
    } else if s.stack.is_empty() {
        writeln!(out, "    (no stack captured)")?;
    }
    for (i, f) in s.stack.iter().enumerate() {
        writeln!(out, "    #{i:<2} {}", frame(f))?;
    }
    Ok(())
}

fn site_head(out: &mut String, n: usize, s: &SiteReport, suspect: bool) {
    use std::fmt::Write;
    let kind = match s.family {
        Some(f) => format!("{} ({f})", s.kind),
        None => s.kind.to_owned(),
    };
    if suspect && let Some(peak) = s.released_at_exit {
        let _ = write!(
            out,
            "[{n}] pid {}: {peak} x {kind} held until the process exited, grew {:.1}/min; only its teardown closed them (nothing in the code did) ({} allocated in total)",
            s.pid, s.growth_per_min, s.allocations
        );
        return;
    }
    let _ = write!(
        out,
        "[{n}] pid {}: {} x {kind}{}",
        s.pid,
        s.count,
        if s.resource == Resource::Fd { " open" } else { "" },
    );
    if let Some(e) = s.estimated {
        let _ = write!(out, " (~{e} estimated from sampled stacks)");
    }
    let _ = write!(out, ", oldest {}", age(s.oldest_age_ms));
    if suspect && let Some(errno) = s.stopped_by_limit {
        let _ = write!(
            out,
            ", grew {:.1}/min until allocations failed with {errno} (stopped by the limit, not by the code)",
            s.growth_per_min
        );
    } else if suspect {
        let _ = write!(out, ", growing {:.1}/min", s.growth_per_min);
        if let Some(t) = s.time_to_limit_s {
            let limit = if s.resource == Resource::Fd {
                "the fd limit (EMFILE)"
            } else {
                "the system limit (ENOSPC)"
            };
            let _ = write!(out, ", reaches {limit} in ~{}", age((t * 1000.0) as u64));
        }
    }
    let _ = write!(out, " ({} allocated in total)", s.allocations);
}
