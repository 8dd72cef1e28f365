//! `raw_tracepoint/sys_exit` (include/trace/events/syscalls.h: `TP_PROTO(struct pt_regs *regs,
//! long ret)`): one program sees every syscall result, so every way an fd appears or goes is
//! covered by the capture table the agent writes, not by a program per syscall.
//!
//! Reads: `regs->orig_ax` (syscall number), the argument registers, `regs->ip/sp/bp` (user
//! registers for unwinding), and user memory the capture spec points at.

use aya_ebpf::{
    helpers::{bpf_get_current_pid_tgid, bpf_probe_read_user},
    macros::{btf_tracepoint, raw_tracepoint},
    programs::{BtfTracePointContext, RawTracePointContext, tracing::StackIdContext},
};
use tracer_common::{
    config::{RECVMMSG_MAX, StackMode},
    fd::SyscallCore,
    record::{RecordHeader, kind},
    syscalls::{
        DERIVED_ARG, EAGAIN, EBADF, EMFILE, ENFILE, ENOBUFS, ENOSPC, FD_SETSIZE, IPC_RMID, bits, fcntl_is_dup,
        fcntl_is_lock, installs_sigchld_action, maps_code,
    },
};

use crate::{
    maps::{
        CAPTURE, NEEDS_MAPS, REPORT_EBADF, STACK_MODE, WRITE_BLOCK_NS, WRITE_START, now, stack_weight, traced_state,
    },
    msghdr::{CMSGHDR_SIZE, MMSGHDR_SIZE, any_control, control_of},
    regs,
    syscall_record::{Extra, emit_core, emit_detail, emit_with_stack},
};

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
