//! The text report: per-process summary, leak suspects with stacks, then the other outstanding
//! sites (bcc memleak's "outstanding allocations by stack", split by trend).

use std::io::Write;

mod condense;
mod counts;
mod escalation;
mod frames;
mod incidents;
mod ipc;
mod locks;
mod signals;
mod sites;
mod stalls;
mod system;

pub use counts::write_counts;
use sites::{same_site, write_site};

use super::{
    Heading,
    escape::{escape_bytes, escape_str},
};
use crate::model::{Report, SiteReport};

pub fn write(out: &mut dyn Write, r: &Report, h: &Heading) -> std::io::Result<()> {
    writeln!(
        out,
        "tracer: {} report after {:.1}s, {} process(es), stacks: {}, lost events: {}",
        h.label,
        h.elapsed_s,
        r.processes.len(),
        h.stack_mode,
        r.lost_events
    )?;
    if h.stack_mode == "fp" {
        writeln!(
            out,
            "note: frame-pointer stacks stop at libc functions built without frame pointers, so sites \
             with different callers may merge; --stack dwarf names the callers"
        )?;
    }
    if r.lost_events > 0 {
        writeln!(
            out,
            "WARNING: {} events were lost; counts may be off (raise --ring-buffer-size)",
            r.lost_events
        )?;
    }
    if r.losses.any() {
        writeln!(out, "WARNING: losses by cause: {}", r.losses.pairs())?;
    }
    writeln!(out)?;
    let (listed, summed) = condense::split(r, h.all);
    writeln!(out, "{:<8} {:<16} {:>7} {:>9}  BY KIND", "PID", "COMM", "FDS", "LIMIT")?;
    for p in listed {
        let limit = p
            .fd_soft_limit
            .map_or_else(|| "unlimited".to_owned(), |l| l.to_string());
        let kinds: Vec<String> = p.by_kind.iter().map(|(k, n)| format!("{k}:{n}")).collect();
        let state = if p.exited { " (exited; fds open at exit)" } else { "" };
        let failures = if p.limit_failures > 0 {
            format!(" [{} allocations failed on a limit]", p.limit_failures)
        } else {
            String::new()
        };
        let zombies = if p.zombies > 0 {
            format!(" [{} zombie children]", p.zombies)
        } else {
            String::new()
        };
        let runtime = p
            .runtime
            .as_deref()
            .map_or_else(String::new, |r| format!(" [{}]", escape_str(r)));
        let line = format!(
            "{:<8} {:<16} {:>7} {:>9}  {}{}{}{}{}",
            p.pid,
            escape_bytes(&p.comm_bytes),
            p.open_fds,
            limit,
            kinds.join(" "),
            state,
            failures,
            zombies,
            runtime
        );
        let flagged = p.limit_failures > 0 || r.suspects.iter().any(|s| s.pid == p.pid);
        writeln!(out, "{}", paint(h.color && flagged, line))?;
    }
    for ((parent, comm, exited), n) in &summed {
        let whose = match parent {
            Some(pp) => format!("{n} {} of {pp}", if *n == 1 { "child" } else { "children" }),
            None => format!("{n} {}", if *n == 1 { "process" } else { "processes" }),
        };
        let what = if *exited {
            "exited, nothing left open"
        } else {
            "running, nothing to report"
        };
        writeln!(out, "  {whose} ({}): {what}", escape_bytes(comm))?;
    }
    if !summed.is_empty() && !h.all {
        writeln!(out, "  (--all lists every process)")?;
    }
    writeln!(out)?;
    if r.suspects.is_empty() {
        writeln!(out, "LEAK SUSPECTS: none (no allocation site kept growing)")?;
    } else {
        writeln!(out, "LEAK SUSPECTS: allocation sites whose open count keeps growing")?;
        for (i, s) in r.suspects.iter().enumerate() {
            write_site(out, i + 1, s, true, h.color)?;
        }
    }
    writeln!(out)?;
    let others: Vec<&SiteReport> = r
        .outstanding
        .iter()
        .filter(|o| !r.suspects.iter().any(|s| same_site(s, o)))
        .collect();
    if others.is_empty() {
        writeln!(out, "OTHER OUTSTANDING: none")?;
    } else {
        writeln!(
            out,
            "OTHER OUTSTANDING: open but not growing (long-lived, or a pool that filled)"
        )?;
        for (i, s) in others.iter().enumerate() {
            write_site(out, i + 1, s, false, false)?;
        }
    }
    incidents::write(out, &r.incidents, h.color)?;
    ipc::write(out, r)?;
    locks::write(out, &r.locks, h.color)?;
    signals::write(out, r, h)?;
    stalls::write(out, &r.stalls)?;
    system::write(out, r)?;
    escalation::write(out, r)
}

/// Red and bold when `on` (suspects, problems); the text is escaped already, so the only
/// escape sequences in the output are these.
pub(super) fn paint(on: bool, s: String) -> String {
    use crossterm::style::Stylize;
    if on { s.red().bold().to_string() } else { s }
}

/// Human duration from milliseconds: 850ms, 12.3s, 4m05s, 2h10m.
pub fn age(ms: u64) -> String {
    match ms {
        0..1_000 => format!("{ms}ms"),
        1_000..60_000 => format!("{:.1}s", ms as f64 / 1000.0),
        60_000..3_600_000 => format!("{}m{:02}s", ms / 60_000, (ms / 1000) % 60),
        _ => format!("{}h{:02}m", ms / 3_600_000, (ms / 60_000) % 60),
    }
}
