//! The always-on mode's part of the report (see `model::escalation`), from `state::host`.

use crate::{
    model::{
        bytes::text_and_hex,
        escalation::{EscalatedProcess, EscalationReport, ReleasedProcess, RisingProcess},
    },
    state::{
        State,
        host::{EscalationReason, ReleaseReason},
    },
};

/// Rising processes listed at most.
const RISING_SHOWN: usize = 20;

fn secs(ns: u64) -> f64 {
    (ns as f64 / 1e7).round() / 100.0
}

fn name(bytes: &[u8]) -> (String, Option<String>) {
    text_and_hex(bytes)
}

/// `None` unless the agent counts (its always-on mode).
pub fn report(state: &State, now_ns: u64) -> Option<EscalationReport> {
    let host = state.host.as_ref()?;
    let mut escalated: Vec<EscalatedProcess> = host
        .escalated()
        .map(|(c, e)| EscalatedProcess {
            pid: c.tgid,
            comm: name(c.comm()).0,
            comm_hex: name(c.comm()).1,
            comm_bytes: c.comm().to_vec(),
            reason: EscalationReason::NAMES[e.reason.index()],
            parent: match e.reason {
                EscalationReason::Inherited { parent } => Some(parent),
                _ => None,
            },
            escalated_for_s: secs(now_ns.saturating_sub(e.since_ns)),
            open_at_escalation: e.open_at_start,
            open_now: c.open,
            records_per_s: e.records_per_s.round(),
            named: e.named_ns.is_some(),
        })
        .collect();
    escalated.sort_by(|a, b| b.escalated_for_s.total_cmp(&a.escalated_for_s).then(a.pid.cmp(&b.pid)));
    let released = host
        .released
        .iter()
        .rev()
        .map(|r| {
            let comm_end = r.comm.iter().position(|b| *b == 0).unwrap_or(r.comm.len());
            ReleasedProcess {
                pid: r.tgid,
                comm: name(&r.comm[..comm_end]).0,
                comm_hex: name(&r.comm[..comm_end]).1,
                comm_bytes: r.comm[..comm_end].to_vec(),
                reason: ReleaseReason::NAMES[r.reason.index()],
                escalated_for_s: secs(r.at_ns.saturating_sub(r.escalated.since_ns)),
                released_ago_s: secs(now_ns.saturating_sub(r.at_ns)),
            }
        })
        .collect();
    let mut rising: Vec<RisingProcess> = host
        .processes()
        .filter_map(|c| {
            let ttl = c.time_to_limit_s()?;
            Some(RisingProcess {
                pid: c.tgid,
                comm: name(c.comm()).0,
                comm_hex: name(c.comm()).1,
                comm_bytes: c.comm().to_vec(),
                open_fds: c.open,
                fd_soft_limit: c.nofile_soft,
                time_to_limit_s: (ttl * 10.0).round() / 10.0,
                escalated: c.escalation.is_some(),
            })
        })
        .collect();
    rising.sort_by(|a, b| a.time_to_limit_s.total_cmp(&b.time_to_limit_s).then(a.pid.cmp(&b.pid)));
    rising.truncate(RISING_SHOWN);
    Some(EscalationReport {
        counts_from: "iterator",
        counted_processes: host.last_read as u64,
        syscall_hook_attached: false,
        budget_processes: host.budget.max_processes as u64,
        budget_records_per_s: host.budget.max_records_per_s,
        refused: host.counters.refused,
        escalated,
        released,
        rising,
    })
}
