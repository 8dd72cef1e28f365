//! `raw_tracepoint/sys_exit` (include/trace/events/syscalls.h: `TP_PROTO(struct pt_regs *regs,
//! long ret)`): one program sees every syscall result, so every way an fd appears or goes is
//! covered by the capture table the agent writes, not by a program per syscall.
//!
//! Reads: `regs->orig_ax` (syscall number), the argument registers, `regs->ip/sp/bp` (user
//! registers for unwinding), and user memory the capture spec points at.

use core::ptr::addr_of_mut;

use aya_ebpf::{
    bindings::BPF_F_USER_STACK,
    helpers::{bpf_get_current_pid_tgid, bpf_probe_read_user, bpf_probe_read_user_buf, bpf_probe_read_user_str_bytes},
    macros::{btf_tracepoint, raw_tracepoint},
    programs::{BtfTracePointContext, RawTracePointContext, tracing::StackIdContext},
};
use tracer_common::{
    config::{DATA_MAX, LossCounter, RECVMMSG_MAX, StackMode},
    fd::{StackRecord, SyscallCore, SyscallRecord, data_kind},
    record::{RecordHeader, kind},
    syscalls::{
        DERIVED_ARG, EAGAIN, EBADF, EMFILE, ENFILE, ENOBUFS, ENOSPC, FD_SETSIZE, IPC_RMID, bits, fcntl_is_dup,
        fcntl_is_lock, installs_sigchld_action, maps_code,
    },
};

use crate::{
    maps::{
        CAPTURE, EVENTS, KERNEL_STACK, KSTACK_PENDING, NEEDS_MAPS, REPORT_EBADF, STACK_BYTES, STACK_MODE, STACK_TOPS,
        STACKS, WRITE_BLOCK_NS, WRITE_START, count_loss, now, ring_full, stack_weight, submit_flags, traced_state,
    },
    regs,
};

/// `struct msghdr` offsets (include/linux/socket.h, user ABI).
const MSG_CONTROL: u64 = 32;
const MSG_CONTROLLEN: u64 = 40;
/// `struct mmsghdr` is a msghdr (56 bytes) plus `unsigned int msg_len`, padded to 64.
const MMSGHDR_SIZE: u64 = 64;
/// A control buffer shorter than one `struct cmsghdr` carries no descriptors.
const CMSGHDR_SIZE: u64 = 16;

/// `tp_btf/sys_exit`: the arguments are typed (`struct pt_regs *`), so the registers are read
/// with plain loads the verifier checks against BTF, instead of a helper call per read: the
/// one every syscall on the host pays (the syscall number) gets cheaper. Loaded when the kernel
/// has BTF; [`sys_exit`] otherwise.
#[btf_tracepoint(function = "sys_exit")]
pub fn sys_exit_btf(ctx: BtfTracePointContext) -> i32 {
    let regs: *const u8 = ctx.arg(0);
    let ret: i64 = ctx.arg(1);
    let _ = try_sys_exit::<_, true>(&ctx, regs, ret);
    0
}

/// `raw_tracepoint/sys_exit`: the same, with the registers read by `bpf_probe_read_kernel`.
#[raw_tracepoint(tracepoint = "sys_exit")]
pub fn sys_exit(ctx: RawTracePointContext) -> i32 {
    let regs: *const u8 = ctx.arg(0);
    let ret: i64 = ctx.arg(1);
    let _ = try_sys_exit::<_, false>(&ctx, regs, ret);
    0
}

/// The capture used for a syscall outside the table that failed with EBADF: a stack, no data.
const BADF_CAPTURE: u32 = bits::ENABLED | bits::STACK | bits::FAILURES | (bits::FAIL_ANY << bits::FAIL_CLASS_SHIFT);

/// The argument and failure tests of a capture spec: whether this call is worth a record.
#[inline(always)]
fn passes_filters(capture: u32, args: &[u64; 6], ret: i64, wants_stack: bool) -> bool {
    let mut class = (capture >> bits::FAIL_CLASS_SHIFT) & bits::FAIL_CLASS_MASK;
    if capture & bits::FCNTL_FILTER != 0 {
        let cmd = args[1];
        if fcntl_is_lock(cmd) {
            class = bits::FAIL_ANY;
        } else if !fcntl_is_dup(cmd) {
            return false;
        }
    }
    let filter = (capture >> bits::FILTER_SHIFT) & bits::FILTER_MASK;
    if filter != 0 {
        let i = ((capture >> bits::FILTER_ARG_SHIFT) & bits::ARG_MASK) as usize;
        let v = if i < 6 { args[i] } else { 0 };
        let pass = match filter {
            bits::FILTER_IPC_RMID => v & 0xff == IPC_RMID,
            bits::FILTER_CODE_MAPPING => maps_code(args),
            bits::FILTER_SIGCHLD_ACTION => installs_sigchld_action(args),
            _ => v > FD_SETSIZE,
        };
        if !pass {
            return false;
        }
    }
    // A failed call that captures a stack is reported only for the errors of its class (limit
    // pressure); failures without a stack (closes) are always reported.
    if ret < 0 && wants_stack {
        return match class {
            bits::FAIL_FD_LIMITS => ret == -EMFILE || ret == -ENFILE,
            bits::FAIL_NO_SPACE => ret == -ENOSPC,
            bits::FAIL_AGAIN => ret == -EAGAIN,
            _ => true,
        };
    }
    true
}

/// What a record carries besides the core fields.
#[derive(Clone, Copy)]
enum Extra {
    None,
    Path(u64),
    FdPair(u64),
    Control { ptr: u64, len: u64, index: u32 },
}

#[inline(always)]
fn try_sys_exit<C: StackIdContext, const BTF: bool>(ctx: &C, regs_ptr: *const u8, ret: i64) -> Result<(), i64> {
    let nr = regs::syscall_nr::<BTF>(regs_ptr)?;
    // Fast path for every syscall on the host: one array lookup.
    if nr >= u64::from(tracer_common::config::MAX_SYSCALL_NR) {
        return Ok(());
    }
    let nr = nr as u32;
    let capture = match CAPTURE.get(nr) {
        Some(c) => *c,
        None => return Ok(()),
    };
    // Any syscall failing with EBADF is misuse of a descriptor (closed, never opened).
    let badf = ret == -EBADF && REPORT_EBADF.load() != 0;
    if capture == 0 && !badf {
        return Ok(());
    }
    let pid_tgid = bpf_get_current_pid_tgid();
    // Timed calls (writes): only those whose entry a traced thread stashed, and only when they
    // blocked long enough or found the buffer full. One hash lookup for every other write.
    let mut took_ns = 0u64;
    let timed = capture & bits::TIMED != 0;
    if timed {
        let tid = pid_tgid as u32;
        // SAFETY: a plain u64 in map memory, only read.
        let start = unsafe { WRITE_START.get(&tid) }.copied();
        if let Some(start) = start {
            let _ = WRITE_START.remove(&tid);
            took_ns = now().saturating_sub(start);
        }
        if !badf && (start.is_none() || !(ret == -EAGAIN || ret == -ENOBUFS || took_ns >= WRITE_BLOCK_NS.load())) {
            return Ok(());
        }
    }
    let tgid = (pid_tgid >> 32) as u32;
    let traced = traced_state(tgid);
    if traced == 0 {
        return Ok(());
    }
    let capture = if capture == 0 { BADF_CAPTURE } else { capture };
    // Without stacks there are no maps to read: nothing is urgent.
    let urgent = traced == NEEDS_MAPS && STACK_MODE.load() != StackMode::None as u32;
    let mut wants_stack = capture & bits::STACK != 0;
    if ret < 0 {
        if badf {
            wants_stack = true;
        } else if capture & bits::FAILURES == 0 {
            return Ok(());
        }
    } else if capture & bits::FAILURES_ONLY != 0 {
        return Ok(());
    }
    let regs = regs::Regs::read::<BTF>(regs_ptr)?;
    let mut args = regs.args();
    if !badf && !passes_filters(capture, &args, ret, wants_stack) {
        return Ok(());
    }
    let data = (capture >> bits::DATA_SHIFT) & bits::DATA_MASK;
    let arg = ((capture >> bits::ARG_SHIFT) & bits::ARG_MASK) as usize;
    let arg_val = if arg < 6 { args[arg] } else { 0 };
    if timed && !badf {
        args[DERIVED_ARG] = took_ns;
    } else if data == bits::DATA_WORD {
        // SAFETY: a user pointer, read with bpf_probe_read_user (fails instead of faulting).
        args[DERIVED_ARG] = unsafe { bpf_probe_read_user(arg_val as *const u64) }.unwrap_or(0);
    }
    let header = RecordHeader {
        kind: kind::SYSCALL_CORE,
        tgid,
        tid: pid_tgid as u32,
        _pad: 0,
        ts_ns: now(),
    };
    let core = SyscallCore {
        header,
        nr,
        capture,
        ret,
        args,
    };
    if !wants_stack {
        return emit_core(core);
    }
    // Successful allocations spend the per-CPU stack budget (weight 0: no stack this time).
    let weight = || {
        if STACK_MODE.load() == StackMode::None as u32 {
            1
        } else {
            stack_weight()
        }
    };
    // What the record carries, and the weight of its stack. Failures (limit pressure, misuse)
    // and blocked writes are rare and always keep their stack; a stall wakes the agent at once:
    // it reads the object's inode and capacity from the writer's /proc while the writer is (most
    // likely) still there.
    let (extra, w, urgent) = if ret < 0 || timed {
        (Extra::None, 1, urgent || timed)
    } else {
        match data {
            // The new image's argc, argv, envp and auxv: where the program and its loader were
            // placed (enabled only with stacks). 4 KiB holds auxv unless argv and envp are huge.
            bits::DATA_INITIAL_STACK => {
                emit_with_stack::<_, 4096>(ctx, &regs, true, &core, Extra::None, 1);
                return Ok(());
            }
            bits::DATA_PATH => (Extra::Path(arg_val), weight(), urgent),
            bits::DATA_FD_PAIR => (Extra::FdPair(arg_val), weight(), urgent),
            bits::DATA_MSGHDR => {
                let (ptr, len) = control_of(arg_val)?;
                // Most received messages carry no control data: no record, no stack.
                if ptr == 0 || len < CMSGHDR_SIZE {
                    return Ok(());
                }
                (Extra::Control { ptr, len, index: 0 }, weight(), urgent)
            }
            // One record per message with control data (below); none, no stack.
            bits::DATA_MMSGHDR => {
                if !any_control(arg_val, ret as u32)? {
                    return Ok(());
                }
                (Extra::None, weight(), urgent)
            }
            _ => (Extra::None, weight(), urgent),
        }
    };
    // In a CPython process the thread's Python frames go first (one call site: the walk is
    // verified once).
    if w != 0 && STACK_MODE.load() != StackMode::None as u32 {
        crate::python::emit_python_stack(&core.header);
    }
    if data == bits::DATA_MMSGHDR && ret >= 0 && !timed {
        let received = ret as u32;
        for i in 0..RECVMMSG_MAX {
            if i >= received {
                break;
            }
            let (ptr, len) = control_of(arg_val + u64::from(i) * MMSGHDR_SIZE)?;
            if ptr != 0 && len >= CMSGHDR_SIZE {
                emit_detail(ctx, &regs, urgent, &core, Extra::Control { ptr, len, index: i }, w)?;
            }
        }
        return Ok(());
    }
    emit_detail(ctx, &regs, urgent, &core, extra, w)
}

/// Whether any of the `received` messages of a `recvmmsg` carries control data.
#[inline(always)]
fn any_control(mmsghdr: u64, received: u32) -> Result<bool, i64> {
    for i in 0..RECVMMSG_MAX {
        if i >= received {
            break;
        }
        let (ptr, len) = control_of(mmsghdr + u64::from(i) * MMSGHDR_SIZE)?;
        if ptr != 0 && len >= CMSGHDR_SIZE {
            return Ok(true);
        }
    }
    Ok(false)
}

/// `msg_control` and the `msg_controllen` the kernel wrote back (the bytes actually used).
#[inline(always)]
fn control_of(msghdr: u64) -> Result<(u64, u64), i64> {
    // SAFETY: user pointers are read with bpf_probe_read_user, which fails instead of faulting.
    let ptr: u64 = unsafe { bpf_probe_read_user((msghdr + MSG_CONTROL) as *const u64) }.map_err(i64::from)?;
    // SAFETY: as above.
    let len: u64 = unsafe { bpf_probe_read_user((msghdr + MSG_CONTROLLEN) as *const u64) }.map_err(i64::from)?;
    Ok((ptr, len))
}

#[inline(always)]
fn emit_core(core: SyscallCore) -> Result<(), i64> {
    let Some(mut entry) = EVENTS.reserve::<SyscallCore>(0) else {
        ring_full();
        return Ok(());
    };
    entry.write(core);
    entry.submit(submit_flags(false));
    Ok(())
}

#[inline(always)]
fn emit_detail<C: StackIdContext>(
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

/// Bytes from `sp` to the end of the current thread's stack as the agent learnt it
/// (`STACK_TOPS`); `u64::MAX` when unknown, or when `sp` is not below it (another stack: a
/// signal's alternate stack, a coroutine's).
#[inline(always)]
fn live_stack_bytes(sp: u64) -> u64 {
    let tid = bpf_get_current_pid_tgid() as u32;
    // SAFETY: a plain u64 value, copied out.
    match unsafe { STACK_TOPS.get(&tid) } {
        Some(top) if *top > sp => *top - sp,
        _ => u64::MAX,
    }
}

/// A record with `N` bytes of user stack for DWARF unwinding in the agent.
#[inline(always)]
fn emit_with_stack<C: StackIdContext, const N: usize>(
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
unsafe fn fill<C>(
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

/// Copies up to `DATA_MAX` control bytes, in power-of-two steps the verifier can bound.
#[inline(always)]
fn copy_control(ptr: u64, len: u64, data: &mut [u8; DATA_MAX]) -> usize {
    let src = ptr as *const u8;
    let sizes: [usize; 4] = [256, 128, 64, 32];
    let mut i = 0;
    while i < 4 {
        let n = sizes[i];
        // Reading past `len` is harmless while it stays mapped; a read crossing into an unmapped
        // page fails and the next, smaller size is tried.
        // SAFETY: bpf_probe_read_user fails instead of faulting on bad user pointers.
        if unsafe { bpf_probe_read_user_buf(src, &mut data[..n]) }.is_ok() {
            return if len < n as u64 { len as usize } else { n };
        }
        i += 1;
    }
    0
}

/// Copies the user stack from `sp` upwards: the whole buffer if it can, else up to the end of
/// the last page that can be read. `bpf_probe_read_user` cannot fault pages in, and a range may
/// be mapped without being present: above a new image's auxv the kernel leaves a random gap
/// (`arch_align_stack`) whose pages were never touched, and a thread's stack ends at its mapping.
/// Reads that end on page boundaries find the longest readable prefix, so what was written (the
/// pointers and auxv an exec record needs, a thread's frames) is never cut short.
#[inline(always)]
fn copy_stack<const N: usize>(sp: u64, stack: &mut [u8; N]) -> u32 {
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
