//! The ZOMBIES and SIGNALS sections: parents whose unreaped children pile up, and signals that
//! merged.

use std::io::Write;

use super::{
    Heading, age,
    condense::{signal_worth_saying, zombie_worth_saying},
    frames::frame,
    paint,
};
use crate::model::{Report, signals::SigHandler};

pub(super) fn write(out: &mut dyn Write, r: &Report, h: &Heading) -> std::io::Result<()> {
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
                    Some(f) => writeln!(out, "    SIGCHLD handler: {}", frame(f))?,
                    None => writeln!(out, "    SIGCHLD handler: {}", handler_text(h.address))?,
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

/// `sa_handler` as people read it: SIG_DFL, SIG_IGN, or the function's address.
fn handler_text(h: SigHandler) -> String {
    match h {
        SigHandler::Default => "SIG_DFL".to_owned(),
        SigHandler::Ignore => "SIG_IGN".to_owned(),
        SigHandler::Function(a) => format!("{a:#x}"),
    }
}
