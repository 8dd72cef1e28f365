//! The SysV IPC section: objects their creators left behind, grouped by the code that made them.

use std::io::Write;

use super::{age, frames::stack};
use crate::model::Report;

pub(super) fn write(out: &mut dyn Write, r: &Report) -> std::io::Result<()> {
    if r.ipc.orphans.is_empty() {
        return Ok(());
    }
    writeln!(out)?;
    writeln!(
        out,
        "ORPHANED SYSV IPC OBJECTS: their creator exited without IPC_RMID (remove with ipcrm)"
    )?;
    for (n, g) in r.ipc.orphans.iter().enumerate() {
        let ids: Vec<String> = g.ids.iter().map(i32::to_string).collect();
        let more = if g.count as usize > g.ids.len() { " ..." } else { "" };
        let pids: Vec<String> = g.creator_pids.iter().map(u32::to_string).collect();
        writeln!(
            out,
            "[{}] {} x {}, oldest {}, ids {}{more}, {}; created by pid {}",
            n + 1,
            g.count,
            g.resource.as_str(),
            age(g.oldest_age_ms),
            ids.join(" "),
            g.keys.join(", "),
            pids.join(" ")
        )?;
        stack(out, &g.stack, "    ")?;
    }
    Ok(())
}
