//! The user stack a DWARF-mode record carries: how much of it is live, and copying it out of
//! user memory that may be mapped without being present.

use aya_ebpf::helpers::{bpf_get_current_pid_tgid, bpf_probe_read_user_buf};
use tracer_common::config::LossCounter;

use crate::maps::{STACK_TOPS, count_loss};

/// Bytes from `sp` to the end of the current thread's stack as the agent learnt it
/// (`STACK_TOPS`); `u64::MAX` when unknown, or when `sp` is not below it (another stack: a
/// signal's alternate stack, a coroutine's).
#[inline(always)]
pub fn live_stack_bytes(sp: u64) -> u64 {
    let tid = bpf_get_current_pid_tgid() as u32;
    // SAFETY: a plain u64 value, copied out.
    match unsafe { STACK_TOPS.get(&tid) } {
        Some(top) if *top > sp => *top - sp,
        _ => u64::MAX,
    }
}

/// Copies the user stack from `sp` upwards: the whole buffer if it can, else up to the end of
/// the last page that can be read. `bpf_probe_read_user` cannot fault pages in, and a range may
/// be mapped without being present: above a new image's auxv the kernel leaves a random gap
/// (`arch_align_stack`) whose pages were never touched, and a thread's stack ends at its mapping.
/// Reads that end on page boundaries find the longest readable prefix, so what was written (the
/// pointers and auxv an exec record needs, a thread's frames) is never cut short.
#[inline(always)]
pub fn copy_stack<const N: usize>(sp: u64, stack: &mut [u8; N]) -> u32 {
    const PAGE: usize = 4096;
    let src = sp as *const u8;
    // The whole buffer first (a copy shorter than a page may still cross into the next one).
    // SAFETY: bpf_probe_read_user fails instead of faulting on unmapped user memory.
    if unsafe { bpf_probe_read_user_buf(src, &mut stack[..]) }.is_ok() {
        return N as u32;
    }
    // Bytes from sp to the end of its page: 1..=PAGE.
    let to_page_end = PAGE - (sp as usize & (PAGE - 1));
    // Then ending on a page boundary, one page earlier each time.
    let mut pages = N / PAGE + 1;
    while pages > 0 {
        pages -= 1;
        let n = to_page_end + pages * PAGE;
        // SAFETY: as above.
        if n < N && unsafe { bpf_probe_read_user_buf(src, &mut stack[..n]) }.is_ok() {
            return n as u32;
        }
    }
    count_loss(LossCounter::StackLost);
    0
}
