//! `signal/signal_generate` (kernel/signal.c `__send_signal_locked`, also for signals that are
//! ignored or merge into a pending one) and `signal/signal_deliver` (`get_signal`, when a task
//! takes a signal to handle it). Counting per signal is done in the agent.

use aya_ebpf::{helpers::bpf_get_current_pid_tgid, macros::tracepoint, programs::TracePointContext};
use tracer_common::{
    record::{RecordHeader, kind},
    signal::{SignalRecord, event},
};

use crate::maps::{EVENTS, is_traced, now, ring_full, submit_flags};

/// Format: `sig` 8, `errno` 12, `code` 16, `comm[16]` 20, `pid` 36, `group` 40, `result` 44.
/// `pid` is the receiving task (the process's leader for process-directed signals).
#[tracepoint]
pub fn signal_generate(ctx: TracePointContext) -> u32 {
    // SAFETY: offset from /sys/kernel/tracing/events/signal/signal_generate/format.
    let target: i32 = unsafe { ctx.read_at(36) }.unwrap_or(0);
    if target <= 0 || !is_traced(target as u32) {
        return 0;
    }
    // SAFETY: offsets from the format file; read_at is checked.
    let (sig, code, group, result) = unsafe {
        (
            ctx.read_at::<i32>(8).unwrap_or(0),
            ctx.read_at::<i32>(16).unwrap_or(0),
            ctx.read_at::<i32>(40).unwrap_or(0),
            ctx.read_at::<i32>(44).unwrap_or(0),
        )
    };
    emit(event::GENERATE, sig, code, target as u32, group, result, 0);
    0
}

/// Format: `sig` 8, `errno` 12, `code` 16, `sa_handler` 24, `sa_flags` 32. Runs in the receiver.
#[tracepoint]
pub fn signal_deliver(ctx: TracePointContext) -> u32 {
    let tgid = (bpf_get_current_pid_tgid() >> 32) as u32;
    if !is_traced(tgid) {
        return 0;
    }
    // SAFETY: offsets from /sys/kernel/tracing/events/signal/signal_deliver/format.
    let (sig, code, handler) = unsafe {
        (
            ctx.read_at::<i32>(8).unwrap_or(0),
            ctx.read_at::<i32>(16).unwrap_or(0),
            ctx.read_at::<u64>(24).unwrap_or(0),
        )
    };
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
