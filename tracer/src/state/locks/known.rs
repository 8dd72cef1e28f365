//! Locks learnt from `/proc/locks` rather than from records: held before tracing started, or
//! held by a process that is not traced.

use tracer_common::lock::family;

use super::{FileId, HeldLock, KnownHolder, LockTable, Pending, Waiter, overlaps};
use crate::state::StackId;

impl LockTable {
    /// Locks /proc/locks shows on `file` (or on every file when `file` is None) that the table
    /// does not know: taken before tracing, or by processes that are not traced.
    pub fn learn(&mut self, known: &[KnownHolder], file: Option<FileId>, tgid: Option<u32>, now_ns: u64) {
        for k in known {
            if file.is_some_and(|f| f != k.file) || tgid.is_some_and(|t| t != k.tgid) {
                continue;
            }
            let f = self.files.entry(k.file).or_default();
            if k.waiting {
                // Blocked before tracing started: the wait is measured from now. Only for the
                // process being attached (untraced waiters would never be seen leaving).
                if tgid.is_some() && k.tgid != 0 && !f.waiting.iter().any(|w| w.tgid == k.tgid) {
                    f.waiting.push(Waiter {
                        tgid: k.tgid,
                        tid: k.tgid,
                        family: k.family,
                        exclusive: k.exclusive,
                        since_ns: now_ns,
                    });
                    let holder = f.held.first().map(|h| (h.tgid, h.stack));
                    self.wait_started.entry(k.tgid).or_insert((k.file, now_ns, holder));
                    self.pending.entry(k.tgid).or_insert(Pending::Waiting { file: k.file });
                }
                continue;
            }
            let posix = k.family == family::POSIX;
            let present = f.held.iter().any(|h| {
                h.tgid == k.tgid && h.family == k.family && (!posix || overlaps((h.start, h.end), (k.start, k.end)))
            });
            if !present {
                // Who a thread already waiting on this file was waiting for.
                for (file_id, _, holder) in self.wait_started.values_mut() {
                    if *file_id == k.file && holder.is_none() {
                        *holder = Some((k.tgid, StackId::NONE));
                    }
                }
                f.held.push(HeldLock {
                    family: k.family,
                    owner: 0,
                    tgid: k.tgid,
                    exclusive: k.exclusive,
                    start: k.start,
                    end: k.end,
                    since_ns: now_ns,
                    waited_ns: 0,
                    stack: StackId::NONE,
                    site: None,
                    waiters_seen: f.waiting.len() as u32,
                    traced: false,
                });
            }
        }
    }
}
