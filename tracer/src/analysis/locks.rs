//! The file-lock part of the report: per file, who holds it, who waits, the longest wait with both
//! stacks, the longest hold; suspects are locks held long while others wait.

use tracer_common::lock::family;

use crate::{
    model::{
        Stack,
        locks::{EndedHoldReport, HeldReport, LockReport, Party, WaiterReport},
        text_and_hex,
    },
    state::{
        StackId, State,
        locks::{HeldLock, LockedFile},
    },
};

const MS: u64 = 1_000_000;

fn lock_name(h: &HeldLock) -> &'static str {
    if h.family == family::FLOCK { "flock" } else { "posix" }
}

pub fn locks(state: &State, now_ns: u64, hold_threshold_ns: u64) -> Vec<LockReport> {
    let mut out: Vec<LockReport> = Vec::new();
    let mut files: Vec<_> = state.locks.files.iter().collect();
    files.sort_by_key(|(id, _)| **id);
    for (id, f) in files {
        if !worth_reporting(f) {
            continue;
        }
        let party = |p: Option<(u32, StackId)>| {
            p.map(|(pid, s)| Party {
                pid,
                stack: Stack::unresolved(s),
            })
        };
        let max_waiter = party(f.contention.max_waiter);
        let max_wait_holder = party(f.contention.max_holder);
        let held: Vec<HeldReport> = f
            .held
            .iter()
            .map(|h| HeldReport {
                pid: h.tgid,
                lock: lock_name(h),
                exclusive: h.exclusive,
                start: h.start,
                end: h.end,
                held_ms: now_ns.saturating_sub(h.since_ns) / MS,
                waited_ms: h.waited_ns / MS,
                waiters_seen: h.waiters_seen,
                traced: h.traced,
                stack: Stack::unresolved(h.stack),
            })
            .collect();
        let longest_hold = f.longest_hold.map(|l| EndedHoldReport {
            pid: l.tgid,
            held_ms: l.held_ns / MS,
            waiters_seen: l.waiters_seen,
            stack: Stack::unresolved(l.stack),
        });
        let long = |ms: u64, waiters: bool| waiters && ms * MS >= hold_threshold_ns;
        let suspect = held
            .iter()
            .any(|h| long(h.held_ms, h.waiters_seen > 0 || !f.waiting.is_empty()))
            || longest_hold
                .as_ref()
                .is_some_and(|l| long(l.held_ms, l.waiters_seen > 0))
            || f.contention.max_wait_ns >= hold_threshold_ns;
        let (file, file_hex) = match &f.path {
            Some(p) => {
                let (t, h) = text_and_hex(p);
                (Some(t), h)
            }
            None => (None, None),
        };
        out.push(LockReport {
            file,
            file_hex,
            file_bytes: f.path.clone(),
            dev: format!("{:x}:{:x}", id.dev >> 20, id.dev & 0xfffff),
            ino: id.ino,
            held,
            waiting: f
                .waiting
                .iter()
                .map(|w| WaiterReport {
                    pid: w.tgid,
                    exclusive: w.exclusive,
                    waiting_ms: now_ns.saturating_sub(w.since_ns) / MS,
                })
                .collect(),
            waits: f.contention.waits,
            total_wait_ms: f.contention.total_wait_ns / MS,
            max_wait_ms: f.contention.max_wait_ns / MS,
            max_waiter,
            max_wait_holder,
            longest_hold,
            failures: f.failures,
            suspect,
        });
    }
    out.sort_by(|a, b| b.suspect.cmp(&a.suspect).then(b.max_wait_ms.cmp(&a.max_wait_ms)));
    out
}

/// A file is in the report while locked, waited for, or after contention or failures.
fn worth_reporting(f: &LockedFile) -> bool {
    !f.held.is_empty() || !f.waiting.is_empty() || f.contention.waits > 0 || f.failures > 0
}
