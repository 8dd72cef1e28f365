//! Zombies and signals: parents whose unreaped children pile up (with their SIGCHLD counts and
//! handler), and per-signal counts that show standard signals merging.

use super::trend;
use crate::{
    model::{
        Stack,
        signals::{HandlerReport, SigHandler, SignalCountsReport, SignalReport, ZOMBIE_FIX, ZombieReport},
    },
    state::{
        State,
        signals::{SIGCHLD, SignalCounts, signal_name},
    },
};

pub fn zombies(state: &State, now_ns: u64) -> Vec<ZombieReport> {
    let mut out = Vec::new();
    let mut pids: Vec<&u32> = state.processes.keys().collect();
    pids.sort_unstable();
    for pid in pids {
        let Some(p) = state.processes.get(pid) else { continue };
        let z = &p.zombies;
        let sigchld = p.signals.get(&SIGCHLD).copied().unwrap_or_default();
        if z.max == 0 && z.reaped == 0 && sigchld.coalesced == 0 {
            continue;
        }
        let mut samples = z.samples.points();
        if p.is_alive() && samples.last().is_none_or(|s| s.0 < now_ns) {
            samples.push((now_ns, z.pending.len() as u32));
        }
        let t = trend::classify(&samples);
        let piled = z.piled(sigchld.coalesced);
        let sigchld_handler = p.sigchld_handler.map(|h| HandlerReport {
            address: SigHandler::from_raw(h.address),
            stack: Stack::unresolved(h.stack),
        });
        out.push(ZombieReport {
            pid: p.tgid,
            zombies: z.pending.len() as u64,
            max_zombies: z.max,
            reaped: z.reaped,
            mean_reap_delay_ms: (z.reaped > 0)
                .then(|| ((z.reap_delay_ns as f64 / z.reaped as f64 / 1e6) * 100.0).round() / 100.0),
            growth_per_min: (t.growth_per_min * 100.0).round() / 100.0,
            growing: t.growing,
            piled,
            sigchld: sigchld.into(),
            sigchld_handler,
            fix: (piled || (t.growing && sigchld.coalesced > 0)).then_some(ZOMBIE_FIX),
        });
    }
    out
}

pub fn signals(state: &State) -> Vec<SignalReport> {
    let mut out = Vec::new();
    let mut pids: Vec<&u32> = state.processes.keys().collect();
    pids.sort_unstable();
    for pid in pids {
        let Some(p) = state.processes.get(pid) else { continue };
        for (sig, c) in &p.signals {
            out.push(SignalReport {
                pid: p.tgid,
                signal: signal_name(*sig),
                number: *sig,
                counts: (*c).into(),
            });
        }
    }
    out
}

impl From<SignalCounts> for SignalCountsReport {
    fn from(c: SignalCounts) -> Self {
        SignalCountsReport {
            generated: c.generated,
            delivered: c.delivered,
            ignored: c.ignored,
            coalesced: c.coalesced,
            failed: c.failed,
        }
    }
}
