//! The always-on mode: how many processes are counted and escalated, every escalation, release
//! and refusal by reason, the cost of the counts, and whether the syscall hook is attached.

use prometheus_client::{encoding::DescriptorEncoder, registry::Unit};

use super::families::{Labels, counters, gauges};
use crate::{
    model::health::EscalationHealth,
    state::host::{EscalationReason, ReleaseReason},
};

pub(super) fn encode(enc: &mut DescriptorEncoder, e: &EscalationHealth) -> std::fmt::Result {
    let one = |v: u64| vec![(Labels::new(), v)];
    gauges(
        enc,
        "tracer_counted_processes",
        "Processes whose open fds the last count saw (every process on the host)",
        None,
        one(e.counted_processes),
    )?;
    gauges(
        enc,
        "tracer_fd_count_source",
        "Where the counts come from: the BPF task iterator, or /proc where it cannot load (1 for the one in use)",
        None,
        vec![
            (vec![("source", "iterator".to_owned())], u64::from(e.from_iterator)),
            (vec![("source", "proc".to_owned())], u64::from(!e.from_iterator)),
        ],
    )?;
    counters(
        enc,
        "tracer_fd_count_reads",
        "Reads of every process's count, by outcome",
        None,
        vec![
            (vec![("outcome", "ok".to_owned())], e.count_reads),
            (vec![("outcome", "failed".to_owned())], e.count_read_errors),
        ],
    )?;
    gauges(
        enc,
        "tracer_fd_count_read_duration",
        "Time the last read of every process's count took",
        Some(&Unit::Seconds),
        vec![(Labels::new(), e.count_read_seconds)],
    )?;
    gauges(
        enc,
        "tracer_escalated_processes",
        "Processes traced with stacks now because their fd count kept rising or neared their limit",
        None,
        one(e.escalated),
    )?;
    gauges(
        enc,
        "tracer_escalation_budget_processes",
        "Processes that may be escalated at once (--escalation-budget)",
        None,
        one(e.budget_processes),
    )?;
    counters(
        enc,
        "tracer_escalations",
        "Processes escalated, by reason: rising (count rose at every tick), near_limit (80% of the soft limit), inherited (forked by an escalated process), asked (POST /escalate), slow_rise (its floor rose over minutes)",
        None,
        EscalationReason::NAMES
            .iter()
            .zip(e.escalations)
            .map(|(r, n)| (vec![("reason", (*r).to_owned())], n)),
    )?;
    counters(
        enc,
        "tracer_escalation_releases",
        "Escalated processes released, by reason: named (its growing sites named and kept), quiet (stopped rising), budget (records over --escalation-records), exited",
        None,
        ReleaseReason::NAMES
            .iter()
            .zip(e.releases)
            .map(|(r, n)| (vec![("reason", (*r).to_owned())], n)),
    )?;
    counters(
        enc,
        "tracer_escalations_refused",
        "Escalations refused because the budget's processes were escalated already (once per rise)",
        None,
        one(e.refused),
    )?;
    gauges(
        enc,
        "tracer_syscall_hook_attached",
        "1 while the syscall-exit hook is attached (some process is traced), else 0",
        None,
        one(u64::from(e.syscall_hook)),
    )
}
