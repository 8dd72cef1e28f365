//! The text report's sections beyond fd sites: incidents, SysV IPC, file locks, zombies and
//! signals, system headroom. A section is printed only when it has something to say.

use std::io::Write;

use super::{
    condense::{signal_worth_saying, zombie_worth_saying},
    escape::escape_bytes,
    text::{age, paint},
};
use crate::analysis::{Frame, Report, locks::LockReport, resources::IncidentReport};

pub fn write(out: &mut dyn Write, r: &Report, h: &super::Heading) -> std::io::Result<()> {
    incidents(out, &r.incidents, h.color)?;
    ipc(out, r)?;
    locks(out, &r.locks, h.color)?;
    zombies_and_signals(out, r, h)?;
    super::text_stalls::write(out, &r.stalls)?;
    system(out, r)
}

pub(super) fn stack(out: &mut dyn Write, frames: &[Frame], indent: &str) -> std::io::Result<()> {
    if frames.is_empty() {
        return writeln!(out, "{indent}(no stack captured)");
    }
    for (i, f) in frames.iter().enumerate() {
        writeln!(out, "{indent}#{i:<2} {}", super::text::frame(f))?;
    }
    Ok(())
}

fn what(i: &IncidentReport) -> String {
    let errno = i.errno.unwrap_or("");
    let fd = i.fd.map(|f| format!(" on fd {f}")).unwrap_or_default();
    match i.kind {
        "limit_failure" => match (errno, i.value) {
            ("EMFILE", Some(open)) => format!("{} failed with EMFILE ({open} fds open)", i.syscall),
            _ => format!("{} failed with {errno}", i.syscall),
        },
        "select_beyond_fd_setsize" => format!(
            "{} called with nfds {} > FD_SETSIZE (1024): FD_SET wrote past the fd_set (memory corruption); use poll or epoll",
            i.syscall,
            i.value.unwrap_or(0)
        ),
        "close_not_open" => format!("close{fd} that was not open (EBADF)"),
        "double_close" => format!("double close{fd} (EBADF)"),
        "use_after_close" => format!("{} on closed fd{fd} (EBADF): use after close", i.syscall),
        "bad_descriptor" => format!("{}{fd} never opened (EBADF)", i.syscall),
        "eventfd_overflow" => format!(
            "{}{fd} refused with EAGAIN: notification dropped: eventfd counter saturated{}, the consumer is behind",
            i.syscall,
            i.value.map(|v| format!(" (count {v})")).unwrap_or_default()
        ),
        "lock_failure" => {
            let holder = i.holder_pid.map(|p| format!(", held by pid {p}")).unwrap_or_default();
            format!("{}{fd} failed with {errno}{holder}", i.syscall)
        }
        other => format!("{other}: {}", i.syscall),
    }
}

fn incidents(out: &mut dyn Write, list: &[IncidentReport], color: bool) -> std::io::Result<()> {
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

fn ipc(out: &mut dyn Write, r: &Report) -> std::io::Result<()> {
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
            g.resource,
            age(g.oldest_age_ms),
            ids.join(" "),
            g.keys.join(", "),
            pids.join(" ")
        )?;
        stack(out, &g.stack, "    ")?;
    }
    Ok(())
}

fn locks(out: &mut dyn Write, list: &[LockReport], color: bool) -> std::io::Result<()> {
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

fn zombies_and_signals(out: &mut dyn Write, r: &Report, h: &super::Heading) -> std::io::Result<()> {
    let zombies: Vec<_> = r.zombies.iter().filter(|z| h.all || zombie_worth_saying(z)).collect();
    if !zombies.is_empty() {
        writeln!(out)?;
        writeln!(out, "ZOMBIES: children exited and not reaped, per parent")?;
        for z in zombies {
            let flag = if z.growing {
                format!("  <- SUSPECT: growing {:.1}/min", z.growth_per_min)
            } else if z.piled {
                format!("  <- SUSPECT: {} zombies piled up while SIGCHLDs merged", z.max_zombies)
            } else {
                String::new()
            };
            let line = format!(
                "pid {}: {} zombie(s) now, at most {}, {} reaped{flag}",
                z.pid, z.zombies, z.max_zombies, z.reaped
            );
            writeln!(out, "{}", paint(h.color && z.growing, line))?;
            let c = &z.sigchld;
            writeln!(
                out,
                "    SIGCHLD: {} sent, {} delivered, {} merged into a pending one, {} ignored",
                c.generated, c.delivered, c.coalesced, c.ignored
            )?;
            if let Some(d) = z.mean_reap_delay_ms {
                writeln!(out, "    mean reap delay {}", age(d as u64))?;
            }
            if let Some(h) = &z.sigchld_handler {
                match h.stack.first() {
                    Some(f) => writeln!(out, "    SIGCHLD handler: {}", super::text::frame(f))?,
                    None => writeln!(out, "    SIGCHLD handler: {}", h.address)?,
                }
            }
            if let Some(fix) = z.fix {
                writeln!(out, "    fix: {fix}")?;
            }
        }
    }
    let signals: Vec<_> = r.signals.iter().filter(|s| h.all || signal_worth_saying(s)).collect();
    if !signals.is_empty() {
        writeln!(out)?;
        writeln!(
            out,
            "{:<8} {:<12} {:>9} {:>9} {:>9} {:>9} {:>7}",
            "PID", "SIGNAL", "SENT", "DELIVERED", "MERGED", "IGNORED", "FAILED"
        )?;
        for s in signals {
            let c = &s.counts;
            writeln!(
                out,
                "{:<8} {:<12} {:>9} {:>9} {:>9} {:>9} {:>7}",
                s.pid, s.signal, c.generated, c.delivered, c.coalesced, c.ignored, c.failed
            )?;
        }
    }
    Ok(())
}

fn system(out: &mut dyn Write, r: &Report) -> std::io::Result<()> {
    let Some(s) = &r.system else { return Ok(()) };
    let of = |u: crate::agent::sysv::Usage| match u.max {
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
