//! `tracer counts`: every process's open-fd count, one line each (the agent's always-on counts).

use std::io::Write;

use tracer_common::fd_counts::ProcessFdCount;

use crate::output::escape::escape_bytes;

/// `PID OPEN TABLE SOFT_LIMIT EXACT COMM` lines under a heading; `-` for an unlimited limit.
pub fn write_counts(out: &mut dyn Write, source: &str, counts: &[ProcessFdCount]) -> std::io::Result<()> {
    writeln!(out, "# source: {source}")?;
    writeln!(
        out,
        "{:>8} {:>8} {:>8} {:>10} {:>5} COMM",
        "PID", "OPEN", "TABLE", "SOFTLIM", "EXACT"
    )?;
    for c in counts {
        let limit = if c.nofile_soft == u64::MAX {
            "-".to_owned()
        } else {
            c.nofile_soft.to_string()
        };
        let exact = if c.is_exact() { "yes" } else { "no" };
        writeln!(
            out,
            "{:>8} {:>8} {:>8} {:>10} {:>5} {}",
            c.tgid,
            c.open_fds,
            c.max_fds,
            limit,
            exact,
            escape_bytes(c.comm())
        )?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_escape_odd_names() {
        let mut c = ProcessFdCount {
            tgid: 7,
            open_fds: 3,
            max_fds: 64,
            flags: 0,
            nofile_soft: u64::MAX,
            comm: [0; 16],
        };
        c.comm[..4].copy_from_slice(b"a\nb\xff");
        let mut out = Vec::new();
        write_counts(&mut out, "iterator", &[c]).expect("writes");
        let text = String::from_utf8(out).expect("utf-8");
        let line = text.lines().nth(2).expect("a line");
        assert!(line.ends_with(r"a\nb\xff"), "{line}");
        assert!(line.contains(" - "), "unlimited shown as -: {line}");
        assert_eq!(text.lines().count(), 3);
    }
}
