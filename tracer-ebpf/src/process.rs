//! Following processes: children join the traced set at fork, exec drops close-on-exec fds, exit
//! releases everything, and the release of the exited task ends its zombie state.

use aya_ebpf::{
    EbpfContext,
    helpers::{bpf_get_current_comm, bpf_get_current_pid_tgid, bpf_probe_read_kernel_str_bytes},
    macros::tracepoint,
    programs::TracePointContext,
};
use tracer_common::{
    config::LossCounter,
    process::{ExecRecord, ExitRecord, ForkRecord, ReapRecord},
    record::{RecordHeader, kind},
    syscalls::CLONE_THREAD,
    tracepoints::{sched_process_exec, sched_process_exit, sched_process_free, task_newtask},
};

use crate::{
    maps::{
        DISCOVER_EXEC, EVENTS, EXITED, NEEDS_MAPS, SELECTED_COMMS, SELF_TGID, STACK_TOPS, TRACE_ALL, TRACED,
        add_traced, count_loss, is_traced, now, ring_full, submit_flags,
    },
    tracepoint::read_field,
};

/// `task/task_newtask` (kernel/fork.c `copy_process`, once the new task is complete and
/// before it can run; runs in the forking thread): reads `pid` and `clone_flags`. One plain tracepoint gives the child and its clone flags for fork, vfork, clone and
/// clone3 alike, where hooking those syscalls' entries would put an extra tracepoint call on
/// every syscall of every task on the host.
#[tracepoint]
pub fn task_newtask(ctx: TracePointContext) -> u32 {
    let pid_tgid = bpf_get_current_pid_tgid();
    let tgid = (pid_tgid >> 32) as u32;
    let tid = pid_tgid as u32;
    if !is_traced(tgid) {
        return 0;
    }
    let flags = read_field!(ctx, task_newtask::CLONE_FLAGS, u64).unwrap_or(0);
    if flags & CLONE_THREAD != 0 {
        // A thread shares its process's fd table: nothing to follow.
        return 0;
    }
    let child: u32 = match read_field!(ctx, task_newtask::PID, i32) {
        Ok(c) if c > 0 => c as u32,
        _ => return 0,
    };
    if TRACE_ALL.load() == 0 && add_traced(child).is_err() {
        count_loss(LossCounter::TracedMapFull);
    }
    // A CPython parent's child runs the same interpreter at the same addresses (a forking
    // server's workers): its Python frames are walked from its first allocation, before the
    // agent has read this record.
    if let Some(p) = crate::python::PY_PROCS.get_ptr(&tgid) {
        // SAFETY: a plain value in map memory, copied out.
        let p = unsafe { *p };
        let _ = crate::python::PY_PROCS.insert(&child, &p, 0);
    }
    let Some(mut entry) = EVENTS.reserve::<ForkRecord>(0) else {
        ring_full();
        return 0;
    };
    entry.write(ForkRecord {
        header: RecordHeader {
            kind: kind::FORK,
            tgid,
            tid,
            _pad: 0,
            ts_ns: now(),
        },
        child_tgid: child,
        _pad: 0,
        clone_flags: flags,
    });
    entry.submit(submit_flags(true));
    0
}

/// `sched/sched_process_exec` (fs/exec.c, after the new image is in place and close-on-exec fds
/// are closed): reads `filename` (a `__data_loc`) and `old_pid`.
#[tracepoint]
pub fn sched_process_exec(ctx: TracePointContext) -> u32 {
    let pid_tgid = bpf_get_current_pid_tgid();
    let tgid = (pid_tgid >> 32) as u32;
    let record_kind = if is_traced(tgid) {
        // A new image, a new stack.
        let _ = STACK_TOPS.remove(&(pid_tgid as u32));
        // Whatever interpreter the old image ran is gone.
        let _ = crate::python::PY_PROCS.remove(&tgid);
        // A new image: the agent must read the maps again before symbolizing its stacks.
        if TRACE_ALL.load() == 0 {
            let _ = TRACED.insert(&tgid, &NEEDS_MAPS, 0);
        }
        kind::EXEC
    } else if DISCOVER_EXEC.load() != 0 && tgid != SELF_TGID.load() {
        // A name selected with --comm (the task has its new name by now: begin_new_exec sets
        // it before this tracepoint): traced from here, so that the children it forks before
        // the agent reads this record are followed too.
        let selected = bpf_get_current_comm().is_ok_and(|comm| {
            // SAFETY: a plain u8 value, only read.
            unsafe { SELECTED_COMMS.get(&comm) }.is_some()
        });
        if selected && add_traced(tgid).is_ok() {
            kind::EXEC
        } else {
            // Selection by cgroup (or a full map): the agent looks and may follow it.
            kind::EXEC_UNTRACED
        }
    } else {
        return 0;
    };
    let Some(mut entry) = EVENTS.reserve::<ExecRecord>(0) else {
        ring_full();
        return 0;
    };
    let p = entry.as_mut_ptr();
    let old_pid = read_field!(ctx, sched_process_exec::OLD_PID, i32).unwrap_or(0);
    let loc = read_field!(ctx, sched_process_exec::FILENAME, u32).unwrap_or(0);
    // SAFETY: exclusive reservation written in place; the filename is read from the trace
    // record (kernel memory) with a checked helper.
    unsafe {
        (*p).header = RecordHeader {
            kind: record_kind,
            tgid,
            tid: pid_tgid as u32,
            _pad: 0,
            ts_ns: now(),
        };
        (*p).old_tid = old_pid as u32;
        (*p).filename_len = 0;
        let off = (loc & 0xffff) as usize;
        let src = (ctx.as_ptr() as *const u8).add(off);
        if let Ok(s) = bpf_probe_read_kernel_str_bytes(src, &mut (*p).filename) {
            (*p).filename_len = s.len() as u32;
        }
    }
    entry.submit(submit_flags(true));
    0
}

/// `sched/sched_process_exit` (kernel/exit.c do_exit, before exit_files): `group_dead` is true
/// for the last thread of the process.
#[tracepoint]
pub fn sched_process_exit(ctx: TracePointContext) -> u32 {
    let pid_tgid = bpf_get_current_pid_tgid();
    let tgid = (pid_tgid >> 32) as u32;
    let group_dead = read_field!(ctx, sched_process_exit::GROUP_DEAD, u8).unwrap_or(0);
    if !is_traced(tgid) {
        return 0;
    }
    // The thread's stack goes with it (its id may be reused for another stack).
    let _ = STACK_TOPS.remove(&(pid_tgid as u32));
    let _ = crate::python::PY_THREADS.remove(&(pid_tgid as u32));
    if group_dead == 0 {
        return 0;
    }
    let _ = TRACED.remove(&tgid);
    let _ = crate::python::PY_PROCS.remove(&tgid);
    // A zombie from now until its parent reaps it (see `sched_process_free`).
    let _ = EXITED.insert(&tgid, &1, 0);
    let Some(mut entry) = EVENTS.reserve::<ExitRecord>(0) else {
        ring_full();
        return 0;
    };
    entry.write(ExitRecord {
        header: RecordHeader {
            kind: kind::EXIT,
            tgid,
            tid: pid_tgid as u32,
            _pad: 0,
            ts_ns: now(),
        },
    });
    entry.submit(submit_flags(false));
    0
}

/// `sched/sched_process_free` (kernel/exit.c `delayed_put_task_struct`, an RCU grace period after
/// `release_task`): reads `pid`. For a process's leader this is the end of its
/// zombie state: the parent reaped it (or it was auto-reaped).
#[tracepoint]
pub fn sched_process_free(ctx: TracePointContext) -> u32 {
    let pid = read_field!(ctx, sched_process_free::PID, i32).unwrap_or(0);
    if pid <= 0 {
        return 0;
    }
    let pid = pid as u32;
    if EXITED.get_ptr(&pid).is_none() {
        return 0;
    }
    let _ = EXITED.remove(&pid);
    let Some(mut entry) = EVENTS.reserve::<ReapRecord>(0) else {
        ring_full();
        return 0;
    };
    entry.write(ReapRecord {
        header: RecordHeader {
            kind: kind::REAP,
            tgid: pid,
            tid: pid,
            _pad: 0,
            ts_ns: now(),
        },
    });
    entry.submit(submit_flags(false));
    0
}
