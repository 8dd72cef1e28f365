//! What the lock code did (`filelock/*_lock_inode`: acquired, about to wait, failed, released)
//! and the `flock`/`fcntl` call that follows on the same thread with its stack.

use tracer_common::lock::{FILE_LOCK_DEFERRED, family, lock_type};

use super::{EndedHold, FileId, HeldLock, LockCall, LockEvent, LockTable, Pending, Waiter, overlaps};
use crate::state::{Resource, SiteKey, SiteTable, StackId, kind::FdKind};

impl LockTable {
    /// Applies what the lock code did.
    pub fn on_lock(&mut self, e: &LockEvent, sites: &mut SiteTable) {
        let file = self.files.entry(e.file).or_default();
        if e.lock_type == lock_type::UNLOCK {
            if e.ret == 0 {
                let posix = e.family == family::POSIX;
                let longest = &mut file.longest_hold;
                file.held.retain(|h| {
                    // A lock learned from /proc/locks has no known owner: its process releases it.
                    let same_owner = h.owner == e.owner || (!h.traced && h.tgid == e.tgid);
                    let released =
                        same_owner && h.family == e.family && (!posix || overlaps((h.start, h.end), (e.start, e.end)));
                    if released {
                        if let Some(s) = h.site {
                            sites.closed(s, 1);
                        }
                        let held_ns = e.ts_ns.saturating_sub(h.since_ns);
                        if longest.is_none_or(|l| held_ns > l.held_ns) {
                            *longest = Some(EndedHold {
                                held_ns,
                                tgid: h.tgid,
                                stack: h.stack,
                                waiters_seen: h.waiters_seen,
                            });
                        }
                    }
                    !released
                });
            }
            self.forget_if_idle(e.file);
            return;
        }
        let holder = file.held.iter().find(|h| h.owner != e.owner).map(|h| (h.tgid, h.stack));
        match e.ret {
            FILE_LOCK_DEFERRED => {
                for h in file.held.iter_mut().filter(|h| h.owner != e.owner) {
                    h.waiters_seen += 1;
                }
                file.waiting.retain(|w| w.tid != e.tid);
                file.waiting.push(Waiter {
                    tgid: e.tgid,
                    tid: e.tid,
                    family: e.family,
                    exclusive: e.lock_type == lock_type::WRITE,
                    since_ns: e.ts_ns,
                });
                self.wait_started.insert(e.tid, (e.file, e.ts_ns, holder));
                self.pending.insert(e.tid, Pending::Waiting { file: e.file });
            }
            0 => {
                let waited = self.end_wait(e.file, e.tid, e.ts_ns, None);
                let Some(file) = self.files.get_mut(&e.file) else {
                    return;
                };
                // A new lock by the same owner replaces what it held there (flock upgrade or
                // downgrade; a POSIX lock over its own range). A conflicting lock of another
                // owner is gone too, whether or not its release was seen (untraced holders).
                let posix = e.family == family::POSIX;
                let exclusive = e.lock_type == lock_type::WRITE;
                file.held.retain(|h| {
                    let same_range = h.family == e.family && (!posix || overlaps((h.start, h.end), (e.start, e.end)));
                    let replaced = same_range && h.owner == e.owner;
                    let conflicting = same_range && h.owner != e.owner && (exclusive || h.exclusive);
                    if (replaced || conflicting)
                        && let Some(s) = h.site
                    {
                        sites.closed(s, 1);
                    }
                    !(replaced || conflicting)
                });
                file.held.push(HeldLock {
                    family: e.family,
                    owner: e.owner,
                    tgid: e.tgid,
                    exclusive: e.lock_type == lock_type::WRITE,
                    start: e.start,
                    end: e.end,
                    since_ns: e.ts_ns,
                    waited_ns: waited,
                    stack: StackId::NONE,
                    site: None,
                    waiters_seen: 0,
                    traced: true,
                });
                self.pending.insert(
                    e.tid,
                    Pending::Acquired {
                        file: e.file,
                        owner: e.owner,
                    },
                );
            }
            _ => {
                file.failures += 1;
                self.pending.insert(e.tid, Pending::Failed { file: e.file });
            }
        }
    }

    /// Ends `tid`'s wait on `file` (acquired, or the call failed); returns how long it waited.
    fn end_wait(&mut self, file_id: FileId, tid: u32, now_ns: u64, stack: Option<StackId>) -> u64 {
        let Some((f, since, holder)) = self.wait_started.remove(&tid) else {
            return 0;
        };
        if f != file_id {
            return 0;
        }
        let Some(file) = self.files.get_mut(&file_id) else {
            return 0;
        };
        let waiter = file
            .waiting
            .iter()
            .position(|w| w.tid == tid)
            .map(|i| file.waiting.remove(i));
        let waited = now_ns.saturating_sub(since);
        let c = &mut file.contention;
        c.waits += 1;
        c.total_wait_ns += waited;
        if waited >= c.max_wait_ns {
            c.max_wait_ns = waited;
            c.max_waiter = waiter.map(|w| (w.tgid, stack.unwrap_or(StackId::NONE)));
            c.max_holder = holder;
        }
        waited
    }

    /// The `flock`/`fcntl` lock call of thread `tid` returned `ret` with `stack`: the held lock
    /// (if any) gets its stack and allocation site.
    pub fn on_call(
        &mut self,
        tgid: u32,
        tid: u32,
        ts_ns: u64,
        ret: i64,
        stack: StackId,
        sites: &mut SiteTable,
    ) -> LockCall {
        let pending = self.pending.remove(&tid);
        let mut call = LockCall::default();
        match pending {
            Some(Pending::Acquired { file, owner }) => {
                call.file = Some(file);
                let Some(f) = self.files.get_mut(&file) else {
                    return call;
                };
                if let Some(h) = f
                    .held
                    .iter_mut()
                    .find(|h| h.owner == owner && h.stack == StackId::NONE && h.site.is_none())
                {
                    let resource = if h.family == family::FLOCK {
                        Resource::Flock
                    } else {
                        Resource::PosixLock
                    };
                    let site = sites.intern(SiteKey {
                        resource,
                        tgid,
                        stack,
                        kind: FdKind::Unknown,
                        family: 0,
                        before_attach: false,
                    });
                    sites.opened(site, f.path.as_deref(), 1);
                    h.stack = stack;
                    h.site = Some(site);
                    call.waited_ns = h.waited_ns;
                }
                if let Some(c) = f.contention.max_waiter.as_mut()
                    && c.0 == tgid
                    && c.1 == StackId::NONE
                {
                    c.1 = stack;
                }
            }
            Some(Pending::Waiting { file }) => {
                // The wait ended without the lock (EINTR, EDEADLK, a signal).
                call.file = Some(file);
                call.waited_ns = self.end_wait(file, tid, ts_ns, Some(stack));
                if let Some(f) = self.files.get_mut(&file) {
                    f.failures += u64::from(ret < 0);
                }
            }
            Some(Pending::Failed { file }) => call.file = Some(file),
            None => {}
        }
        if let Some(f) = call.file.and_then(|id| self.files.get(&id)) {
            call.holder = f.held.iter().find(|h| h.tgid != tgid).map(|h| h.tgid);
        }
        call
    }
}
