//! File locks (flock and fcntl byte-range locks): who holds which lock since when and from which
//! stack, who waits and for how long.
//!
//! Two record streams meet here. The `filelock/*_lock_inode` tracepoints say what the lock code
//! did (acquired, about to wait, failed, released: also releases by the last close or by exit,
//! whoever triggers them); the syscall record that follows on the same thread carries the stack
//! of the `flock`/`fcntl` call. They are joined by thread id.

mod calls;
mod known;

use std::collections::HashMap;

use super::{
    SiteId, StackId, State,
    incidents::{IncidentKind, Occurrence},
    syscall::Syscall,
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
pub(super) enum Pending {
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
    pub(super) fn forget_if_idle(&mut self, id: FileId) {
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
