//! The text report's WRITE STALLS section: writers blocked on full pipes, FIFOs, eventfds and
//! AF_UNIX sockets, per object.

use std::io::Write;

use super::{age, frames::stack};
use crate::{model::stalls::StallReport, state::stalls::ChannelKind};

fn bytes(n: Option<u64>) -> String {
    match n {
        Some(b) if b % 1024 == 0 => format!("{} KiB", b / 1024),
        Some(b) => format!("{b} bytes"),
        None => "?".to_owned(),
    }
}

fn pids(v: &[u32]) -> String {
    if v.is_empty() {
        return "?".to_owned();
    }
    v.iter().map(u32::to_string).collect::<Vec<_>>().join(" ")
}

pub fn write(out: &mut dyn Write, list: &[StallReport]) -> std::io::Result<()> {
    if list.is_empty() {
        return Ok(());
    }
    writeln!(out)?;
    writeln!(out, "WRITE STALLS: writers blocked because the buffer was full")?;
    for (n, s) in list.iter().enumerate() {
        let capacity = match (s.kind, s.capacity_bytes) {
            (ChannelKind::EventFd, _) => String::new(),
            (ChannelKind::Pipe | ChannelKind::Fifo, None) => ", capacity unknown (default 64 KiB assumed)".to_owned(),
            (_, c) => format!(", capacity {}", bytes(c)),
        };
        let ceiling = match (s.kind, s.max_capacity_bytes) {
            (ChannelKind::Pipe | ChannelKind::Fifo, Some(m)) => format!(" (fs.pipe-max-size {})", bytes(Some(m))),
            (ChannelKind::Unix, Some(m)) => format!(" (net.core.wmem_max {})", bytes(Some(m))),
            _ => String::new(),
        };
        writeln!(
            out,
            "[{}] {} inode {}{capacity}{ceiling}: {} write(s) blocked, {} in total, longest {}; {} EAGAIN, {} ENOBUFS",
            n + 1,
            s.kind.as_str(),
            s.inode,
            s.blocked_writes,
            age(s.blocked_ms_total),
            age(s.blocked_ms_max),
            s.eagain,
            s.enobufs
        )?;
        writeln!(
            out,
            "    writers: pid {}; readers: pid {}",
            pids(&s.writers),
            pids(&s.readers)
        )?;
        if let Some(w) = &s.longest {
            writeln!(
                out,
                "    longest: pid {} (thread {}) blocked {} writing fd {} in:",
                w.pid,
                w.tid,
                age(w.blocked_ms),
                w.fd
            )?;
            stack(out, &w.stack, "      ")?;
        }
        if let Some(w) = &s.refused {
            writeln!(out, "    refused (non-blocking): pid {} writing fd {} in:", w.pid, w.fd)?;
            stack(out, &w.stack, "      ")?;
        }
        writeln!(out, "    fix: {}", s.fix)?;
    }
    Ok(())
}
