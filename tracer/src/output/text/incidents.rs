//! The INCIDENTS section: calls that failed on a limit, select beyond FD_SETSIZE, descriptor
//! misuse, each with its stack (and the earlier close, the site that filled the table).

use std::io::Write;

use super::{age, frames::stack, paint};
use crate::{model::incidents::IncidentReport, state::incidents::IncidentKind};

fn what(i: &IncidentReport) -> String {
    let errno = i.errno.unwrap_or("");
    let fd = i.fd.map(|f| format!(" on fd {f}")).unwrap_or_default();
    match i.kind {
        IncidentKind::LimitFailure => match (errno, i.value) {
            ("EMFILE", Some(open)) => format!("{} failed with EMFILE ({open} fds open)", i.syscall),
            _ => format!("{} failed with {errno}", i.syscall),
        },
        IncidentKind::SelectBeyondFdSetSize => format!(
            "{} called with nfds {} > FD_SETSIZE (1024): FD_SET wrote past the fd_set (memory corruption); use poll or epoll",
            i.syscall,
            i.value.unwrap_or(0)
        ),
        IncidentKind::CloseNotOpen => format!("close{fd} that was not open (EBADF)"),
        IncidentKind::DoubleClose => format!("double close{fd} (EBADF)"),
        IncidentKind::UseAfterClose => format!("{} on closed fd{fd} (EBADF): use after close", i.syscall),
        IncidentKind::BadDescriptor => format!("{}{fd} never opened (EBADF)", i.syscall),
        IncidentKind::EventfdOverflow => format!(
            "{}{fd} refused with EAGAIN: notification dropped: eventfd counter saturated{}, the consumer is behind",
            i.syscall,
            i.value.map(|v| format!(" (count {v})")).unwrap_or_default()
        ),
        IncidentKind::LockFailure => {
            let holder = i.holder_pid.map(|p| format!(", held by pid {p}")).unwrap_or_default();
            format!("{}{fd} failed with {errno}{holder}", i.syscall)
        }
    }
}

pub(super) fn write(out: &mut dyn Write, list: &[IncidentReport], color: bool) -> std::io::Result<()> {
    if list.is_empty() {
        return Ok(());
    }
    writeln!(out)?;
    writeln!(out, "PROBLEMS: calls that hit a limit or misused a descriptor")?;
    for (n, i) in list.iter().enumerate() {
        let line = format!(
            "[{}] pid {}: {} x{} (last {} ago)",
            n + 1,
            i.pid,
            what(i),
            i.count,
            age(i.last_age_ms)
        );
        writeln!(out, "{}", paint(color, line))?;
        stack(out, &i.stack, "    ")?;
        if let Some(t) = &i.top_site {
            let kind = match t.family {
                Some(f) => format!("{} ({f})", t.kind),
                None => t.kind.to_owned(),
            };
            let whence = if t.before_attach {
                ", open before tracing started (no allocation stack)"
            } else {
                ", allocated at:"
            };
            writeln!(
                out,
                "    the site holding the most fds then: {} x {kind}, {:.0}% of the process's fds{whence}",
                t.count,
                t.share * 100.0
            )?;
            if !t.before_attach {
                stack(out, &t.stack, "      ")?;
            }
        }
        if let Some(c) = &i.previous_close {
            writeln!(out, "    closed before by thread {}, {} earlier:", c.tid, age(c.age_ms))?;
            if c.stack.is_empty() {
                writeln!(out, "      (run with --close-stacks to see where)")?;
            } else {
                stack(out, &c.stack, "      ")?;
            }
        }
    }
    Ok(())
}
