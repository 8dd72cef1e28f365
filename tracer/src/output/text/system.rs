//! The SYSTEM section: headroom of the system-wide tables (SysV, file handles).

use std::io::Write;

use crate::model::Report;

pub(super) fn write(out: &mut dyn Write, r: &Report) -> std::io::Result<()> {
    let Some(s) = &r.system else { return Ok(()) };
    let of = |u: crate::model::system::Usage| match u.max {
        Some(m) => format!("{} of {m}", u.used),
        None => u.used.to_string(),
    };
    writeln!(out)?;
    writeln!(
        out,
        "SYSTEM: file handles {} (fs.file-max), fs.nr_open {}; SysV: sem sets {} (SEMMNI), shm {} (SHMMNI), msg queues {} (MSGMNI)",
        of(s.file_handles),
        s.nr_open.map_or_else(|| "?".to_owned(), |n| n.to_string()),
        of(s.sem_sets),
        of(s.shm_segments),
        of(s.msg_queues)
    )
}
