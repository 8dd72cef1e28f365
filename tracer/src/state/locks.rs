//! File locks (flock and fcntl byte-range locks): who holds which lock since when and from which
//! stack, who waits and for how long.
//!
//! Two record streams meet here. The `filelock/*_lock_inode` tracepoints say what the lock code
//! did (acquired, about to wait, failed, released: also releases by the last close or by exit,
//! whoever triggers them); the syscall record that follows on the same thread carries the stack
//! of the `flock`/`fcntl` call. They are joined by thread id.

use std::collections::HashMap;

use tracer_common::lock::{FILE_LOCK_DEFERRED, family, lock_type};

use super::{
    Resource, SiteId, SiteKey, SiteTable, StackId, State,
    apply::Syscall,
    incidents::{IncidentKind, Occurrence},
    kind::FdKind,
};

/// The locked file: device and inode (what the kernel locks).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct FileId {
    pub dev: u32,
    pub ino: u64,
}

/// One lock event from the lock code, decoded.
#[derive(Clone, Copy, Debug)]
pub struct LockEvent {
    pub tgid: u32,
    pub tid: u32,
    pub ts_ns: u64,
    pub family: u32,
    pub file: FileId,
    pub owner: u64,
    pub lock_type: u8,
    pub start: i64,
    pub end: i64,
    pub ret: i32,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HeldLock {
    pub family: u32,
    pub owner: u64,
    pub tgid: u32,
    pub exclusive: bool,
    pub start: i64,
    pub end: i64,
    pub since_ns: u64,
    /// How long the taker waited for it.
    pub waited_ns: u64,
    pub stack: StackId,
    pub site: Option<SiteId>,
    /// Waits that began on this file while this lock was held.
    pub waiters_seen: u32,
    /// False for a lock learned from /proc/locks (taken before tracing, or by an untraced
    /// process): owner, start time and stack unknown.
    pub traced: bool,
}

/// A held lock as /proc/locks lists it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct KnownHolder {
    pub file: FileId,
    pub family: u32,
    /// 0 when no process owns it (OFD locks).
    pub tgid: u32,
    pub exclusive: bool,
    pub start: i64,
    pub end: i64,
    /// A process blocked waiting for this lock rather than holding it.
    pub waiting: bool,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Waiter {
    pub tgid: u32,
    pub tid: u32,
    pub family: u32,
    pub exclusive: bool,
    pub since_ns: u64,
}

/// Waits on one file: contention.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Contention {
    pub waits: u64,
    pub total_wait_ns: u64,
    pub max_wait_ns: u64,
    /// The process that waited longest and the stack of its call.
    pub max_waiter: Option<(u32, StackId)>,
    /// Who held the lock when that wait began.
    pub max_holder: Option<(u32, StackId)>,
}

#[derive(Clone, Debug, Default)]
pub struct LockedFile {
    pub held: Vec<HeldLock>,
    pub waiting: Vec<Waiter>,
    pub contention: Contention,
    /// Attempts that failed (EWOULDBLOCK, EINTR, ENOLCK, EDEADLK).
    pub failures: u64,
    /// A path of the file (raw bytes), read from /proc when a lock call is seen.
    pub path: Option<Box<[u8]>>,
    /// The longest hold that ended, with who held it and how many waited meanwhile.
    pub longest_hold: Option<EndedHold>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EndedHold {
    pub held_ns: u64,
    pub tgid: u32,
    pub stack: StackId,
    pub waiters_seen: u32,
}

/// What the lock code said last on a thread, waiting for that thread's syscall record.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Pending {
    Acquired { file: FileId, owner: u64 },
    Waiting { file: FileId },
    Failed { file: FileId },
}

/// What a `flock`/`fcntl` lock call amounted to, for the caller's incident report.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct LockCall {
    pub file: Option<FileId>,
    /// A process holding a conflicting lock on the file when the call failed or returned.
    pub holder: Option<u32>,
    pub waited_ns: u64,
}

/// Where and when a thread began waiting, and who held the lock then (pid, stack).
type WaitStart = (FileId, u64, Option<(u32, StackId)>);

#[derive(Debug, Default)]
pub struct LockTable {
    pub files: HashMap<FileId, LockedFile>,
    pending: HashMap<u32, Pending>,
    /// Which wait a thread is in, to account a wait that ends with an error (EINTR).
    wait_started: HashMap<u32, WaitStart>,
}

fn overlaps(a: (i64, i64), b: (i64, i64)) -> bool {
    a.0 <= b.1 && b.0 <= a.1
}

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

    /// A process exited: its waits end (its locks are released by the kernel's own records; those
    /// learned from /proc/locks, whose owner is unknown, are dropped).
    pub fn process_exited(&mut self, tgid: u32) {
        // The waiting threads' pending verdicts go with them (collected before they are dropped).
        let tids: Vec<u32> = self
            .files
            .values()
            .flat_map(|f| f.waiting.iter().filter(|w| w.tgid == tgid).map(|w| w.tid))
            .collect();
        for t in tids {
            self.pending.remove(&t);
            self.wait_started.remove(&t);
        }
        for f in self.files.values_mut() {
            f.waiting.retain(|w| w.tgid != tgid);
            f.held.retain(|h| h.traced || h.tgid != tgid);
        }
    }

    /// Keeps at most `max_idle` files with nothing held or waited for (their history), the
    /// most contended first; returns how many were dropped. Verdicts of threads whose syscall
    /// record never came (lost) are dropped past a bound too.
    pub fn trim(&mut self, max_idle: usize) -> usize {
        const MAX_PENDING: usize = 65_536;
        if self.pending.len() > MAX_PENDING {
            self.pending.clear();
        }
        if self.wait_started.len() > MAX_PENDING {
            self.wait_started.clear();
        }
        let mut idle: Vec<(u64, FileId)> = self
            .files
            .iter()
            .filter(|(_, f)| f.held.is_empty() && f.waiting.is_empty())
            .map(|(id, f)| (f.contention.total_wait_ns.saturating_add(f.failures), *id))
            .collect();
        if idle.len() <= max_idle {
            return 0;
        }
        idle.sort_unstable();
        let drop = idle.len() - max_idle;
        for (_, id) in &idle[..drop] {
            self.files.remove(id);
        }
        drop
    }

    /// Stacks the lock table refers to.
    pub fn stacks(&self, out: &mut impl Extend<StackId>) {
        for f in self.files.values() {
            out.extend(f.held.iter().map(|h| h.stack));
            out.extend(f.contention.max_waiter.map(|(_, s)| s));
            out.extend(f.contention.max_holder.map(|(_, s)| s));
            out.extend(f.longest_hold.map(|l| l.stack));
        }
        out.extend(self.wait_started.values().filter_map(|(_, _, h)| h.map(|(_, s)| s)));
    }

    pub fn set_path(&mut self, file: FileId, path: &[u8]) {
        if let Some(f) = self.files.get_mut(&file)
            && f.path.is_none()
            && !path.is_empty()
        {
            f.path = Some(path.into());
        }
    }

    /// Files with nothing held, nobody waiting and no history are dropped.
    fn forget_if_idle(&mut self, id: FileId) {
        if self.files.get(&id).is_some_and(|f| {
            f.held.is_empty()
                && f.waiting.is_empty()
                && f.contention.waits == 0
                && f.failures == 0
                && f.longest_hold.is_none_or(|l| l.waiters_seen == 0)
        }) {
            self.files.remove(&id);
        }
    }
}

impl State {
    /// `flock(fd, op)` or `fcntl(fd, F_SETLK*/F_OFD_SETLK*, ..)` returned. Failures are incidents.
    pub(super) fn on_lock_call(&mut self, sc: &Syscall<'_>, stack: StackId) -> Option<FileId> {
        let call = self
            .locks
            .on_call(sc.tgid, sc.tid, sc.ts_ns, sc.ret, stack, &mut self.sites);
        if let Some(p) = self.processes.get_mut(&sc.tgid) {
            if call.waited_ns > 0 {
                p.counters.lock_wait(call.waited_ns);
            }
            if sc.ret < 0 {
                p.counters.lock_failure((-sc.ret) as i32);
            }
        }
        if sc.ret < 0 {
            self.incidents.record(Occurrence {
                kind: IncidentKind::LockFailure,
                tgid: sc.tgid,
                nr: sc.nr,
                errno: (-sc.ret) as i32,
                stack,
                ts_ns: sc.ts_ns,
                fd: sc.args[0] as i32 as i64,
                value: call.waited_ns / 1_000_000,
                previous_close: None,
                holder: call.holder,
                top_site: None,
            });
        }
        call.file
    }
}

#[cfg(test)]
mod tests;
