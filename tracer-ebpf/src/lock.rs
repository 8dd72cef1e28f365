//! `filelock/flock_lock_inode` and `filelock/posix_lock_inode` (fs/locks.c): every attempt to
//! take or release a flock or fcntl lock, traced at the end of the attempt with its result
//! (0, `FILE_LOCK_DEFERRED` when the caller is about to wait, or -errno).
//!
//! Both tracepoints share one format (include/trace/events/filelock.h, `filelock_lock`):
//! `fl` 8, `i_ino` 16, `s_dev` 24, `blocker` 32, `owner` 40, `pid` 48, `flags` 52, `type` 56,
//! `fl_start` 64, `fl_end` 72, `ret` 80.

use aya_ebpf::{helpers::bpf_get_current_pid_tgid, macros::tracepoint, programs::TracePointContext};
use tracer_common::{
    lock::{LockRecord, family, lock_type},
    record::{RecordHeader, kind},
};

use crate::maps::{EVENTS, LOCK_OWNERS, is_traced, now, ring_full, submit_flags};

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
    // SAFETY: offsets from /sys/kernel/tracing/events/filelock/*/format; read_at is checked.
    let owner: u64 = unsafe { ctx.read_at(40) }.map_err(|_| 1i64)?;
    // SAFETY: as above.
    let ty: u8 = unsafe { ctx.read_at(56) }.map_err(|_| 1i64)?;
    // SAFETY: as above.
    let ret: i32 = unsafe { ctx.read_at(80) }.map_err(|_| 1i64)?;
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
    let p = entry.as_mut_ptr();
    // SAFETY: exclusive reservation written in place; fields read with checked helpers.
    unsafe {
        (*p).header = RecordHeader {
            kind: kind::LOCK,
            tgid,
            tid: pid_tgid as u32,
            _pad: 0,
            ts_ns: now(),
        };
        (*p).family = fam;
        (*p).flags = ctx.read_at(52).unwrap_or(0);
        (*p).ino = ctx.read_at(16).unwrap_or(0);
        (*p).dev = ctx.read_at(24).unwrap_or(0);
        (*p).pid = ctx.read_at(48).unwrap_or(0);
        (*p).owner = owner;
        (*p).start = ctx.read_at(64).unwrap_or(0);
        (*p).end = ctx.read_at(72).unwrap_or(0);
        (*p).ret = ret;
        (*p).lock_type = ty;
        (*p)._pad = [0; 3];
    }
    entry.submit(submit_flags(false));
    Ok(())
}
