//! The agent's always-on mode in the text report: where counts come from, who is escalated
//! and why, the latest releases, and the processes rising toward their limit.

use std::io::Write;

use crate::{model::Report, output::escape::escape_bytes};

pub(super) fn write(out: &mut dyn Write, r: &Report) -> std::io::Result<()> {
    let Some(e) = &r.escalation else {
        return Ok(());
    };
    writeln!(out)?;
    let source = if e.counts_from == "iterator" {
        "the BPF task iterator"
    } else {
        "/proc (the iterator could not load)"
    };
    writeln!(
        out,
        "ALWAYS ON: {} processes counted from {source}; syscall hook {}; budget {} processes, {} records/s{}",
        e.counted_processes,
        if e.syscall_hook_attached {
            "attached"
        } else {
            "detached (nothing traced)"
        },
        e.budget_processes,
        e.budget_records_per_s,
        if e.refused > 0 {
            format!("; {} escalation(s) refused by the budget", e.refused)
        } else {
            String::new()
        }
    )?;
    if e.escalated.is_empty() {
        writeln!(out, "ESCALATED: none (no process's fd count kept rising)")?;
    } else {
        writeln!(out, "ESCALATED: traced with stacks because their fd count rose")?;
    }
    for p in &e.escalated {
        let why = match (p.reason, p.parent) {
            ("inherited", Some(parent)) => format!("forked by escalated PID {parent}"),
            ("near_limit", _) => "near its fd limit".to_owned(),
            ("asked", _) => "asked for (POST /escalate)".to_owned(),
            ("slow_rise", _) => "count rising slowly".to_owned(),
            _ => "count rising".to_owned(),
        };
        writeln!(
            out,
            "  PID {} {}: {why}, for {:.1}s, {} -> {} fds, {} records/s{}",
            p.pid,
            escape_bytes(&p.comm_bytes),
            p.escalated_for_s,
            p.open_at_escalation,
            p.open_now,
            p.records_per_s,
            if p.named {
                ", leak named (see LEAK SUSPECTS)"
            } else {
                ""
            }
        )?;
    }
    for p in e.released.iter().take(5) {
        writeln!(
            out,
            "  released PID {} {}: {} after {:.1}s, {:.1}s ago",
            p.pid,
            escape_bytes(&p.comm_bytes),
            p.reason,
            p.escalated_for_s,
            p.released_ago_s
        )?;
    }
    if !e.rising.is_empty() {
        writeln!(out, "RISING: fd counts heading for the soft limit")?;
    }
    for p in &e.rising {
        let limit = p
            .fd_soft_limit
            .map_or_else(|| "unlimited".to_owned(), |l| l.to_string());
        writeln!(
            out,
            "  PID {} {}: {} of {limit} fds, limit in ~{:.0}s{}",
            p.pid,
            escape_bytes(&p.comm_bytes),
            p.open_fds,
            p.time_to_limit_s,
            if p.escalated { " (escalated)" } else { "" }
        )?;
    }
    Ok(())
}
