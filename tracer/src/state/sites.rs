//! Allocation sites: descriptors, SysV IPC objects and held locks grouped by (resource, process,
//! user stack, kind), with the count still open sampled over time so that analysis can tell
//! growth from a flat plateau.

use std::collections::HashMap;

use super::{kind::FdKind, series::Series, slab::Slab};

/// An interned user stack (0: none, e.g. fds open before attach).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct StackId(pub u32);

impl StackId {
    pub const NONE: StackId = StackId(0);
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SiteId(pub u32);

/// What a site allocates: descriptors, SysV IPC objects or held file locks.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub enum Resource {
    #[default]
    Fd,
    SemSet,
    ShmSegment,
    MsgQueue,
    Flock,
    PosixLock,
    /// Child processes: never a site of the tables, but the report lists a parent that forked
    /// until EAGAIN like one (see `analysis::children`).
    ChildProcess,
}

impl Resource {
    /// The `resource` field of the JSON report.
    pub fn as_str(self) -> &'static str {
        match self {
            Resource::Fd => "fd",
            Resource::SemSet => "sysv_sem",
            Resource::ShmSegment => "sysv_shm",
            Resource::MsgQueue => "sysv_msg",
            Resource::Flock => "flock",
            Resource::PosixLock => "posix_lock",
            Resource::ChildProcess => "process",
        }
    }

    /// What one unit is called in the text report.
    pub fn noun(self) -> &'static str {
        match self {
            Resource::Fd => "fd",
            Resource::SemSet => "semaphore set",
            Resource::ShmSegment => "shared memory segment",
            Resource::MsgQueue => "message queue",
            Resource::Flock => "flock lock held",
            Resource::PosixLock => "fcntl lock held",
            Resource::ChildProcess => "child process",
        }
    }

    pub fn from_ipc(kind: tracer_common::syscalls::IpcKind) -> Self {
        use tracer_common::syscalls::IpcKind;
        match kind {
            IpcKind::Sem => Resource::SemSet,
            IpcKind::Shm => Resource::ShmSegment,
            IpcKind::Msg => Resource::MsgQueue,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SiteKey {
    pub resource: Resource,
    pub tgid: u32,
    pub stack: StackId,
    pub kind: FdKind,
    /// Socket family (0 otherwise): a UNIX and a TCP socket from one stack are different leaks.
    pub family: u16,
    /// Fds open before attach are kept apart from traced allocations without a stack.
    pub before_attach: bool,
}

#[derive(Clone, Debug)]
pub struct SiteStats {
    pub key: SiteKey,
    /// Descriptors from this site still open now (or at the process's exit).
    pub outstanding: u32,
    /// What `outstanding` stands for when stacks are sampled: the sum of the open objects'
    /// sampling weights (each sampled stack stands for `period` allocations; unsampled ones
    /// count nowhere here). Equal to `outstanding` when every allocation has its stack.
    pub estimated: u64,
    /// Sampled allocations count for their sampling weight (see `estimated`).
    pub allocations: u64,
    /// One path (or other description) of an fd from this site: raw bytes, may be any encoding.
    pub example: Option<Box<[u8]>>,
    /// What the site's fds turned out to be when /proc was read (a path open may be a device).
    pub display_kind: Option<FdKind>,
    /// The outstanding count over time.
    pub samples: Series,
    /// Its process was forgotten while objects of the site still existed (SysV orphans): the
    /// site goes when the last of them does.
    orphaned: bool,
    /// The most `estimated` ever was.
    pub peak: u64,
    /// The last sample at which the count was at the highest any sample saw (0: none yet):
    /// where a site that was emptied at once (a process's teardown) stopped growing.
    pub peak_ns: u64,
    sampled_peak: u64,
}

impl SiteStats {
    fn new(key: SiteKey) -> Self {
        SiteStats {
            key,
            display_kind: None,
            outstanding: 0,
            estimated: 0,
            allocations: 0,
            example: None,
            samples: Series::default(),
            orphaned: false,
            peak: 0,
            peak_ns: 0,
            sampled_peak: 0,
        }
    }

    /// Records the current count; repeated equal values are kept so a plateau has a length.
    pub fn sample(&mut self, now_ns: u64, window_ns: Option<u64>) {
        let estimated = u32::try_from(self.estimated).unwrap_or(u32::MAX);
        self.samples.sample(now_ns, estimated, window_ns);
        if self.estimated > 0 && self.estimated >= self.sampled_peak {
            self.sampled_peak = self.estimated;
            self.peak_ns = now_ns;
        }
    }
}

#[derive(Debug, Default)]
pub struct SiteTable {
    ids: HashMap<SiteKey, SiteId, foldhash::fast::RandomState>,
    stats: Slab<SiteStats>,
    /// Each process's sites, so forgetting a process costs its own sites only.
    by_tgid: HashMap<u32, Vec<SiteId>, foldhash::fast::RandomState>,
    /// Trends over a sliding window (the agent) instead of the whole trace (`watch`, `run`).
    pub window_ns: Option<u64>,
    /// Sites dropped because nothing was open from them for a whole window.
    pub evicted: u64,
}

impl SiteTable {
    pub fn intern(&mut self, key: SiteKey) -> SiteId {
        if let Some(id) = self.ids.get(&key).copied() {
            if let Some(s) = self.stats.get_mut(id.0)
                && s.orphaned
            {
                // The pid came back (reused) with the same stack: the site is owned again.
                s.orphaned = false;
                self.by_tgid.entry(key.tgid).or_default().push(id);
            }
            return id;
        }
        // Full (16 million live sites): the allocation is counted nowhere rather than wrongly.
        let Some(raw) = self.stats.insert(SiteStats::new(key)) else {
            return SiteId(0);
        };
        let id = SiteId(raw);
        self.ids.insert(key, id);
        self.by_tgid.entry(key.tgid).or_default().push(id);
        id
    }

    pub fn get(&self, id: SiteId) -> Option<&SiteStats> {
        self.stats.get(id.0)
    }

    pub fn get_mut(&mut self, id: SiteId) -> Option<&mut SiteStats> {
        self.stats.get_mut(id.0)
    }

    pub fn len(&self) -> usize {
        self.stats.len()
    }

    pub fn is_empty(&self) -> bool {
        self.stats.is_empty()
    }

    /// One more object from the site, standing for `weight` (see [`SiteStats::estimated`]).
    pub fn opened(&mut self, id: SiteId, example: Option<&[u8]>, weight: u32) {
        if let Some(s) = self.get_mut(id) {
            s.outstanding = s.outstanding.saturating_add(1);
            s.estimated = s.estimated.saturating_add(u64::from(weight));
            s.allocations += u64::from(weight);
            s.peak = s.peak.max(s.estimated);
            if s.example.is_none()
                && let Some(e) = example
                && !e.is_empty()
            {
                s.example = Some(e.into());
            }
        }
    }

    /// One object from the site went; `weight` is the one it was opened with.
    pub fn closed(&mut self, id: SiteId, weight: u32) {
        let Some(s) = self.get_mut(id) else { return };
        s.outstanding = s.outstanding.saturating_sub(1);
        s.estimated = s.estimated.saturating_sub(u64::from(weight));
        if s.outstanding == 0 && s.orphaned {
            self.remove(id);
        }
    }

    pub fn set_example(&mut self, id: SiteId, example: &[u8]) {
        if let Some(s) = self.get_mut(id)
            && s.example.is_none()
            && !example.is_empty()
        {
            s.example = Some(example.into());
        }
    }

    pub fn iter(&self) -> impl Iterator<Item = (SiteId, &SiteStats)> {
        self.stats.iter().map(|(k, s)| (SiteId(k), s))
    }

    /// The sites of one process.
    pub fn of_process(&self, tgid: u32) -> &[SiteId] {
        self.by_tgid.get(&tgid).map_or(&[], Vec::as_slice)
    }

    fn remove(&mut self, id: SiteId) {
        if let Some(s) = self.stats.remove(id.0) {
            self.ids.remove(&s.key);
            if !s.orphaned
                && let Some(list) = self.by_tgid.get_mut(&s.key.tgid)
            {
                list.retain(|x| *x != id);
            }
        }
    }

    /// The process is gone for good: its sites go, but those whose objects still exist (SysV
    /// orphans), which go with their last object.
    pub fn forget_process(&mut self, tgid: u32) {
        for id in self.by_tgid.remove(&tgid).unwrap_or_default() {
            let Some(s) = self.stats.get_mut(id.0) else { continue };
            if s.outstanding == 0 {
                if let Some(s) = self.stats.remove(id.0) {
                    self.ids.remove(&s.key);
                }
            } else {
                s.orphaned = true;
            }
        }
    }

    /// Drops sites of `tgid` (a live process) with nothing open and a window of zeros: their
    /// history says nothing any more, and a busy host makes new ones all the time.
    pub fn evict_idle(&mut self, tgid: u32) {
        if self.window_ns.is_none() {
            return;
        }
        let idle: Vec<SiteId> = self
            .of_process(tgid)
            .iter()
            .copied()
            .filter(|id| {
                self.get(*id)
                    .is_some_and(|s| s.outstanding == 0 && s.samples.all_zero())
            })
            .collect();
        for id in idle {
            self.remove(id);
            self.evicted += 1;
        }
    }

    /// Samples every site of `tgid` (or of every process when `None`).
    pub fn sample(&mut self, tgid: Option<u32>, now_ns: u64) {
        let window = self.window_ns;
        match tgid {
            Some(t) => {
                let ids = self.by_tgid.get(&t).cloned().unwrap_or_default();
                for id in ids {
                    if let Some(s) = self.stats.get_mut(id.0) {
                        sample_site(s, now_ns, window);
                    }
                }
            }
            None => self.sample_where(|_| true, now_ns),
        }
    }

    /// Samples every site of the processes `wanted` accepts, in one pass.
    pub fn sample_where(&mut self, wanted: impl Fn(u32) -> bool, now_ns: u64) {
        let window = self.window_ns;
        for (_, s) in self.stats.iter_mut() {
            if wanted(s.key.tgid) {
                sample_site(s, now_ns, window);
            }
        }
    }
}

fn sample_site(s: &mut SiteStats, now_ns: u64, window: Option<u64>) {
    if s.outstanding > 0 || !s.samples.is_empty() {
        s.sample(now_ns, window);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(stack: u32) -> SiteKey {
        SiteKey {
            resource: Resource::Fd,
            tgid: 1,
            stack: StackId(stack),
            kind: FdKind::File,
            family: 0,
            before_attach: false,
        }
    }

    #[test]
    fn counts_and_examples() {
        let mut t = SiteTable::default();
        let a = t.intern(key(1));
        assert_eq!(t.intern(key(1)), a);
        let b = t.intern(key(2));
        assert_ne!(a, b);
        t.opened(a, Some(b"/etc/passwd"), 1);
        t.opened(a, Some(b"/etc/other"), 1);
        t.closed(a, 1);
        t.closed(b, 1);
        let s = t.get(a).map(|s| (s.outstanding, s.allocations, s.example.clone()));
        assert_eq!(s, Some((1, 2, Some(b"/etc/passwd".to_vec().into_boxed_slice()))));
        assert_eq!(t.get(b).map(|s| s.outstanding), Some(0));
    }

    #[test]
    fn forgotten_processes_take_their_sites_but_orphans_stay_until_their_last_object() {
        let mut t = SiteTable::default();
        let fd = t.intern(key(1));
        let ipc = t.intern(SiteKey {
            resource: Resource::SemSet,
            ..key(2)
        });
        let other = t.intern(SiteKey { tgid: 2, ..key(1) });
        t.opened(fd, None, 1);
        t.closed(fd, 1);
        t.opened(ipc, None, 1);
        t.forget_process(1);
        assert!(t.get(fd).is_none());
        assert_eq!(t.get(ipc).map(|s| s.outstanding), Some(1), "an orphan set still exists");
        assert!(t.get(other).is_some());
        assert_eq!(t.of_process(1), &[] as &[SiteId]);
        t.closed(ipc, 1);
        assert!(t.get(ipc).is_none(), "gone with its last object");
        assert_eq!(t.len(), 1);
        // A new site with the same key gets a new id: the old one finds nothing.
        let again = t.intern(key(1));
        assert_ne!(again, fd);
    }

    #[test]
    fn idle_sites_are_evicted_in_window_mode_only() {
        let mut t = SiteTable::default();
        let a = t.intern(key(1));
        let b = t.intern(key(2));
        t.opened(a, None, 1);
        t.opened(b, None, 1);
        t.closed(b, 1);
        t.sample(None, 1_000_000_000);
        t.evict_idle(1);
        assert_eq!(t.len(), 2, "no window: nothing evicted");
        t.window_ns = Some(10_000_000_000);
        t.evict_idle(1);
        assert!(t.get(a).is_some() && t.get(b).is_none());
        assert_eq!(t.evicted, 1);
    }
}
