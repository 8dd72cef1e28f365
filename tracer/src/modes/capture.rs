//! The capture options every mode hands the probes, and the defaults the host-wide modes
//! (`agent`, `top`) share.

use std::time::Duration;

use tracer_common::config::StackMode;

use crate::{
    cli::{CaptureArgs, StackArg},
    probes::ProbeOptions,
};

/// Sampling period of site counts: fine enough to see a trend in a short `run`.
pub fn tick_period(interval: Option<Duration>) -> Duration {
    match interval {
        Some(i) => (i / 20).clamp(Duration::from_millis(100), Duration::from_secs(1)),
        None => Duration::from_millis(100),
    }
}

/// Ring buffer of `watch` and `run` unless `--ring-buffer-size` says otherwise (MiB).
const RING_MIB: u32 = 64;
/// `--write-block` of watch, run and top.
const WRITE_BLOCK: Duration = Duration::from_millis(100);

pub fn probe_options(c: &CaptureArgs) -> ProbeOptions {
    ProbeOptions {
        stack_mode: match c.stack {
            StackArg::Dwarf => StackMode::Dwarf,
            StackArg::Fp => StackMode::FramePointer,
            StackArg::None => StackMode::None,
        },
        stack_bytes: c.stack_size * 1024,
        ring_buffer_bytes: c.ring_buffer_size.unwrap_or(RING_MIB).saturating_mul(1024 * 1024),
        trace_all: false,
        discover_exec: false,
        report_ebadf: !c.no_ebadf,
        close_stacks: c.close_stacks,
        kernel_stack: c.kernel_stack,
        bpf_stats: c.bpf_stats,
        raw_sys_exit: false,
        stack_budget: c.stack_budget.unwrap_or(0),
        write_block_ns: c.write_block.unwrap_or(WRITE_BLOCK).as_nanos() as u64,
        python_frames: c.python_frames == crate::cli::OnOff::On,
    }
}

/// User stacks per second per CPU unless `--stack-budget` says otherwise: on a busy host not
/// every allocation can pay for a stack (see `tracer_common::sampling`).
pub const STACK_BUDGET: u32 = 1000;

/// How long `tracer top` keeps an exited process (the agent's `--exited-grace` default).
pub const EXITED_GRACE: Duration = Duration::from_secs(30);
