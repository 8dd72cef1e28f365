//! `filelock/flock_lock_inode` and `filelock/posix_lock_inode` (fs/locks.c): every attempt to
//! take or release a flock or fcntl lock, traced at the end of the attempt with its result
//! (0, `FILE_LOCK_DEFERRED` when the caller is about to wait, or -errno).
//!
//! Both tracepoints share one format (include/trace/events/filelock.h, `filelock_lock`); the
//! fields read are in `tracer_common::tracepoints::filelock_lock`.

use aya_ebpf::{helpers::bpf_get_current_pid_tgid, macros::tracepoint, programs::TracePointContext};
use tracer_common::{
    lock::{LockRecord, family, lock_type},
    record::{RecordHeader, kind},
    tracepoints::filelock_lock as field,
};

use crate::{
    maps::{EVENTS, LOCK_OWNERS, is_traced, now, ring_full, submit_flags},
    tracepoint::read_field,
};

#[tracepoint]
pub fn flock_lock_inode(ctx: TracePointContext) -> u32 {
    let _ = try_lock(&ctx, family::FLOCK);
    0
}

#[tracepoint]
pub fn posix_lock_inode(ctx: TracePointContext) -> u32 {
    let _ = try_lock(&ctx, family::POSIX);
    0
}

#[inline(always)]
fn try_lock(ctx: &TracePointContext, fam: u32) -> Result<(), i64> {
    let pid_tgid = bpf_get_current_pid_tgid();
    let tgid = (pid_tgid >> 32) as u32;
    let owner = read_field!(ctx, field::OWNER, u64).map_err(|_| 1i64)?;
    let ty = read_field!(ctx, field::TYPE, u8).map_err(|_| 1i64)?;
    let ret = read_field!(ctx, field::RET, i32).map_err(|_| 1i64)?;
    if is_traced(tgid) {
        if ret == 0 && ty != lock_type::UNLOCK {
            let _ = LOCK_OWNERS.insert(&owner, &1, 0);
        }
    } else if ty != lock_type::UNLOCK || LOCK_OWNERS.get_ptr(&owner).is_none() {
        // Releases of a traced process's locks are reported whoever releases them.
        return Ok(());
    }
    let Some(mut entry) = EVENTS.reserve::<LockRecord>(0) else {
        ring_full();
        return Ok(());
    };
    let flags = read_field!(ctx, field::FLAGS, u32).unwrap_or(0);
    let ino = read_field!(ctx, field::INODE, u64).unwrap_or(0);
    let dev = read_field!(ctx, field::DEV, u32).unwrap_or(0);
    let pid = read_field!(ctx, field::PID, u32).unwrap_or(0);
    let start = read_field!(ctx, field::START, i64).unwrap_or(0);
    let end = read_field!(ctx, field::END, i64).unwrap_or(0);
    let p = entry.as_mut_ptr();
    // SAFETY: exclusive reservation written in place.
    unsafe {
        (*p).header = RecordHeader {
            kind: kind::LOCK,
            tgid,
            tid: pid_tgid as u32,
            _pad: 0,
            ts_ns: now(),
        };
        (*p).family = fam;
        (*p).flags = flags;
        (*p).ino = ino;
        (*p).dev = dev;
        (*p).pid = pid;
        (*p).owner = owner;
        (*p).start = start;
        (*p).end = end;
        (*p).ret = ret;
        (*p).lock_type = ty;
        (*p)._pad = [0; 3];
    }
    entry.submit(submit_flags(false));
    Ok(())
}
