//! `signal/signal_generate` (kernel/signal.c `__send_signal_locked`, also for signals that are
//! ignored or merge into a pending one) and `signal/signal_deliver` (`get_signal`, when a task
//! takes a signal to handle it). Counting per signal is done in the agent.

use aya_ebpf::{helpers::bpf_get_current_pid_tgid, macros::tracepoint, programs::TracePointContext};
use tracer_common::{
    record::{RecordHeader, kind},
    signal::{SignalRecord, event},
    tracepoints::{signal_deliver, signal_generate},
};

use crate::{
    maps::{EVENTS, is_traced, now, ring_full, submit_flags},
    tracepoint::read_field,
};

/// Reads `sig`, `code`, `pid`, `group` and `result`. `pid` is the receiving task (the process's
/// leader for process-directed signals).
#[tracepoint]
pub fn signal_generate(ctx: TracePointContext) -> u32 {
    let target = read_field!(ctx, signal_generate::PID, i32).unwrap_or(0);
    if target <= 0 || !is_traced(target as u32) {
        return 0;
    }
    let sig = read_field!(ctx, signal_generate::SIG, i32).unwrap_or(0);
    let code = read_field!(ctx, signal_generate::CODE, i32).unwrap_or(0);
    let group = read_field!(ctx, signal_generate::GROUP, i32).unwrap_or(0);
    let result = read_field!(ctx, signal_generate::RESULT, i32).unwrap_or(0);
    emit(event::GENERATE, sig, code, target as u32, group, result, 0);
    0
}

/// Reads `sig`, `code` and `sa_handler`. Runs in the receiver.
#[tracepoint]
pub fn signal_deliver(ctx: TracePointContext) -> u32 {
    let tgid = (bpf_get_current_pid_tgid() >> 32) as u32;
    if !is_traced(tgid) {
        return 0;
    }
    let sig = read_field!(ctx, signal_deliver::SIG, i32).unwrap_or(0);
    let code = read_field!(ctx, signal_deliver::CODE, i32).unwrap_or(0);
    let handler = read_field!(ctx, signal_deliver::SA_HANDLER, u64).unwrap_or(0);
    emit(event::DELIVER, sig, code, tgid, 1, 0, handler);
    0
}

#[inline(always)]
fn emit(ev: u32, sig: i32, code: i32, target: u32, group: i32, result: i32, handler: u64) {
    let pid_tgid = bpf_get_current_pid_tgid();
    let Some(mut entry) = EVENTS.reserve::<SignalRecord>(0) else {
        ring_full();
        return;
    };
    entry.write(SignalRecord {
        header: RecordHeader {
            kind: kind::SIGNAL,
            tgid: (pid_tgid >> 32) as u32,
            tid: pid_tgid as u32,
            _pad: 0,
            ts_ns: now(),
        },
        event: ev,
        sig,
        code,
        target,
        group,
        result,
        handler,
    });
    entry.submit(submit_flags(false));
}
