//! Empty programs for the hooks tracer attaches: what any tracer on those hooks pays before it
//! does anything (the kernel's syscall-tracepoint path, the program dispatch). `tracer floor`
//! attaches them for the benchmark's floor row; tracer itself never loads them.

use aya_ebpf::{
    macros::{btf_tracepoint, tracepoint},
    programs::{BtfTracePointContext, TracePointContext},
};

/// `tp_btf/sys_exit`, doing nothing.
#[btf_tracepoint(function = "sys_exit")]
pub fn floor_sys_exit(_ctx: BtfTracePointContext) -> i32 {
    0
}

/// Any plain tracepoint, doing nothing.
#[tracepoint]
pub fn floor_tracepoint(_ctx: TracePointContext) -> u32 {
    0
}
