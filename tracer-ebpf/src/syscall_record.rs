//! The records of a captured syscall: the core alone, or the full record with registers, the
//! extra data the capture spec asks for (a path, an fd pair, control data), and a user stack
//! (a stack id in frame-pointer mode, the stack bytes in DWARF mode).

use core::ptr::addr_of_mut;

use aya_ebpf::{
    bindings::BPF_F_USER_STACK,
    helpers::{bpf_get_current_pid_tgid, bpf_probe_read_user_buf, bpf_probe_read_user_str_bytes},
    programs::tracing::StackIdContext,
};
use tracer_common::{
    config::{LossCounter, StackMode},
    fd::{StackRecord, SyscallCore, SyscallRecord, data_kind},
    record::kind,
};

use crate::{
    maps::{
        EVENTS, KERNEL_STACK, KSTACK_PENDING, STACK_BYTES, STACK_MODE, STACKS, count_loss, ring_full, submit_flags,
    },
    msghdr::copy_control,
    regs,
    user_stack::{copy_stack, live_stack_bytes},
};

/// What a record carries besides the core fields.
#[derive(Clone, Copy)]
pub enum Extra {
    None,
    Path(u64),
    FdPair(u64),
    Control { ptr: u64, len: u64, index: u32 },
}

#[inline(always)]
pub fn emit_core(core: SyscallCore) -> Result<(), i64> {
    let Some(mut entry) = EVENTS.reserve::<SyscallCore>(0) else {
        ring_full();
        return Ok(());
    };
    entry.write(core);
    entry.submit(submit_flags(false));
    Ok(())
}

#[inline(always)]
pub fn emit_detail<C: StackIdContext>(
    ctx: &C,
    regs: &regs::Regs,
    urgent: bool,
    core: &SyscallCore,
    extra: Extra,
    weight: u32,
) -> Result<(), i64> {
    let mode = STACK_MODE.load();
    if mode == StackMode::Dwarf as u32 && weight != 0 {
        let max = STACK_BYTES.load() as u64;
        let need = live_stack_bytes(regs.sp());
        // The smallest record size that holds the thread's live stack, at most `max`.
        let size = if need <= 1024 {
            1024
        } else if need <= 2048 {
            2048
        } else if need <= 4096 {
            4096
        } else if need <= 8192 {
            8192
        } else {
            16384
        };
        match if size < max { size } else { max } {
            1024 => emit_with_stack::<_, 1024>(ctx, regs, urgent, core, extra, weight),
            2048 => emit_with_stack::<_, 2048>(ctx, regs, urgent, core, extra, weight),
            4096 => emit_with_stack::<_, 4096>(ctx, regs, urgent, core, extra, weight),
            16384 => emit_with_stack::<_, 16384>(ctx, regs, urgent, core, extra, weight),
            _ => emit_with_stack::<_, 8192>(ctx, regs, urgent, core, extra, weight),
        }
    } else {
        let Some(mut entry) = EVENTS.reserve::<SyscallRecord>(0) else {
            ring_full();
            return Ok(());
        };
        let p = entry.as_mut_ptr();
        // SAFETY: as above, an exclusive reservation written in place.
        unsafe {
            fill(ctx, regs, p, core, extra, kind::SYSCALL, weight);
            if mode == StackMode::FramePointer as u32 && weight != 0 {
                (*p).stack_id = match ctx.get_stackid(&STACKS, u64::from(BPF_F_USER_STACK)) {
                    Ok(id) => id,
                    Err(e) => {
                        count_loss(LossCounter::StackLost);
                        i64::from(e)
                    }
                };
            }
        }
        entry.submit(submit_flags(urgent));
    }
    Ok(())
}

/// A record with `N` bytes of user stack for DWARF unwinding in the agent.
#[inline(always)]
pub fn emit_with_stack<C: StackIdContext, const N: usize>(
    ctx: &C,
    regs: &regs::Regs,
    urgent: bool,
    core: &SyscallCore,
    extra: Extra,
    weight: u32,
) {
    let Some(mut entry) = EVENTS.reserve::<StackRecord<N>>(0) else {
        ring_full();
        return;
    };
    let p = entry.as_mut_ptr();
    // SAFETY: `p` points at an exclusive ring-buffer reservation of the right size; fields are
    // written in place (the record is far larger than the 512-byte BPF stack).
    unsafe {
        let rec = addr_of_mut!((*p).record);
        fill(ctx, regs, rec, core, extra, kind::stack_kind(N), weight);
        let sp = (*rec).user_sp;
        (*rec).stack_len = copy_stack(sp, &mut (*p).stack);
    }
    entry.submit(submit_flags(urgent));
}

/// Writes the header, registers and extra data of a record in place.
///
/// # Safety
/// `rec` must point at writable memory for a whole `SyscallRecord`.
#[inline(always)]
pub unsafe fn fill<C>(
    _ctx: &C,
    regs: &regs::Regs,
    rec: *mut SyscallRecord,
    core: &SyscallCore,
    extra: Extra,
    record_kind: u32,
    weight: u32,
) {
    // SAFETY: the caller guarantees `rec` is a valid, exclusive record.
    unsafe {
        let mut c = *core;
        c.header.kind = record_kind;
        (*rec).core = c;
        (*rec).stack_id = -1;
        (*rec).user_ip = regs.ip();
        (*rec).user_sp = regs.sp();
        (*rec).user_bp = regs.bp();
        (*rec).data_kind = data_kind::NONE;
        (*rec).data_len = 0;
        (*rec).stack_len = 0;
        (*rec).msg_index = 0;
        (*rec).kernel_stack_id = -1;
        (*rec).stack_weight = weight;
        (*rec)._pad = 0;
        if KERNEL_STACK.load() != 0 {
            let tid = bpf_get_current_pid_tgid() as u32;
            if let Some(id) = KSTACK_PENDING.get_ptr(&tid) {
                (*rec).kernel_stack_id = *id as i32;
                let _ = KSTACK_PENDING.remove(&tid);
            }
        }
        let data = &mut (*rec).data;
        match extra {
            Extra::None => {}
            Extra::Path(ptr) => {
                if let Ok(s) = bpf_probe_read_user_str_bytes(ptr as *const u8, data) {
                    (*rec).data_len = s.len() as u16;
                    (*rec).data_kind = data_kind::PATH;
                }
            }
            Extra::FdPair(ptr) => {
                if bpf_probe_read_user_buf(ptr as *const u8, &mut data[..8]).is_ok() {
                    (*rec).data_len = 8;
                    (*rec).data_kind = data_kind::FD_PAIR;
                }
            }
            Extra::Control { ptr, len, index } => {
                (*rec).msg_index = index;
                let n = copy_control(ptr, len, data);
                if n > 0 {
                    (*rec).data_len = n as u16;
                    (*rec).data_kind = data_kind::CONTROL;
                }
            }
        }
    }
}
