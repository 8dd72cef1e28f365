//! The FILE LOCKS section: per file, holders, waiters, the longest wait with both stacks.

use std::io::Write;

use super::{age, frames::stack, paint};
use crate::{model::locks::LockReport, output::escape::escape_bytes};

pub(super) fn write(out: &mut dyn Write, list: &[LockReport], color: bool) -> std::io::Result<()> {
    if list.is_empty() {
        return Ok(());
    }
    writeln!(out)?;
    writeln!(out, "FILE LOCKS: held, waited for, contended")?;
    for (n, l) in list.iter().enumerate() {
        let name = l
            .file_bytes
            .as_deref()
            .map_or_else(|| format!("dev {} inode {}", l.dev, l.ino), escape_bytes);
        let flag = if l.suspect {
            "  <- SUSPECT: held long while others waited"
        } else {
            ""
        };
        let line = format!(
            "[{}] {name}: {} wait(s), longest {}, total {}, {} failed attempt(s){flag}",
            n + 1,
            l.waits,
            age(l.max_wait_ms),
            age(l.total_wait_ms),
            l.failures
        );
        writeln!(out, "{}", paint(color && l.suspect, line))?;
        for h in &l.held {
            let mode = if h.exclusive { "exclusive" } else { "shared" };
            if h.traced {
                writeln!(
                    out,
                    "    held by pid {} ({} {mode}) for {}, {} waiter(s) meanwhile:",
                    h.pid,
                    h.lock,
                    age(h.held_ms),
                    h.waiters_seen
                )?;
                stack(out, &h.stack, "      ")?;
            } else {
                writeln!(
                    out,
                    "    held by pid {} ({} {mode}) for at least {}, {} waiter(s) meanwhile (from /proc/locks: \
                     taken before tracing or by an untraced process; trace it to see where)",
                    h.pid,
                    h.lock,
                    age(h.held_ms),
                    h.waiters_seen
                )?;
            }
        }
        for w in &l.waiting {
            writeln!(out, "    pid {} waiting for {}", w.pid, age(w.waiting_ms))?;
        }
        if let Some(w) = &l.max_waiter {
            writeln!(out, "    longest wait: pid {} waited {} in:", w.pid, age(l.max_wait_ms))?;
            stack(out, &w.stack, "      ")?;
        }
        if let Some(h) = &l.max_wait_holder {
            writeln!(out, "    while pid {} held it, taken in:", h.pid)?;
            stack(out, &h.stack, "      ")?;
        }
        if let Some(h) = &l.longest_hold
            && l.held.is_empty()
        {
            writeln!(
                out,
                "    longest hold: pid {} for {}, {} waiter(s) meanwhile",
                h.pid,
                age(h.held_ms),
                h.waiters_seen
            )?;
        }
    }
    Ok(())
}
