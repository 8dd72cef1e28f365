//! Maps and load-time globals shared by the programs. Names match `tracer_common::config`.

use aya_ebpf::{
    Global,
    macros::map,
    maps::{Array, HashMap, PerCpuArray, RingBuf, StackTrace},
};
use tracer_common::config::{LOSS_COUNTERS, LossCounter, MAX_SYSCALL_NR, StackMode};

/// Resized by the loader (`--ring-buffer-size`).
#[map]
pub static EVENTS: RingBuf = RingBuf::with_byte_size(16 * 1024 * 1024, 0);

#[map]
pub static TRACED: HashMap<u32, u8> = HashMap::with_max_entries(65536, 0);

#[map]
pub static CAPTURE: Array<u32> = Array::with_max_entries(MAX_SYSCALL_NR, 0);

#[map]
pub static LOSSES: PerCpuArray<u64> = PerCpuArray::with_max_entries(LOSS_COUNTERS, 0);

#[map]
pub static STACKS: StackTrace = StackTrace::with_max_entries(16384, 0);

/// Clone flags of an in-flight clone/clone3, by thread id, read by `sched_process_fork`.
#[map]
pub static CLONE_FLAGS: HashMap<u32, u64> = HashMap::with_max_entries(16384, 0);

#[unsafe(no_mangle)]
pub static STACK_MODE: Global<u32> = Global::new(StackMode::FramePointer as u32);

#[unsafe(no_mangle)]
pub static TRACE_ALL: Global<u32> = Global::new(0);

#[inline(always)]
pub fn is_traced(tgid: u32) -> bool {
    // SAFETY: the value is a plain u8 and is only read.
    TRACE_ALL.load() != 0 || unsafe { TRACED.get(&tgid) }.is_some()
}

#[inline(always)]
pub fn count_loss(which: LossCounter) {
    if let Some(p) = LOSSES.get_ptr_mut(which as u32) {
        // SAFETY: per-CPU slot, so no other program writes it concurrently.
        unsafe { *p += 1 };
    }
}

/// CLOCK_MONOTONIC in nanoseconds.
#[inline(always)]
pub fn now() -> u64 {
    // SAFETY: the helper takes no arguments and touches no memory.
    unsafe { aya_ebpf::helpers::bpf_ktime_get_ns() }
}
