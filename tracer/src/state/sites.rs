//! Allocation sites: descriptors, SysV IPC objects and held locks grouped by (resource, process,
//! user stack, kind), with the count still open sampled over time so that analysis can tell
//! growth from a flat plateau.

use std::collections::HashMap;

use super::kind::FdKind;

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

/// Samples kept per site; when full, every other one is dropped so the whole run stays covered.
const MAX_SAMPLES: usize = 256;

#[derive(Clone, Debug)]
pub struct SiteStats {
    pub key: SiteKey,
    /// Descriptors from this site still open now (or at the process's exit).
    pub outstanding: u32,
    pub allocations: u64,
    /// One path (or other description) of an fd from this site: raw bytes, may be any encoding.
    pub example: Option<Box<[u8]>>,
    /// What the site's fds turned out to be when /proc was read (a path open may be a device).
    pub display_kind: Option<FdKind>,
    /// (CLOCK_MONOTONIC ns, outstanding) samples.
    pub samples: Vec<(u64, u32)>,
}

impl SiteStats {
    fn new(key: SiteKey) -> Self {
        SiteStats {
            key,
            display_kind: None,
            outstanding: 0,
            allocations: 0,
            example: None,
            samples: Vec::new(),
        }
    }

    /// Records the current count; repeated equal values are kept so a plateau has a length.
    pub fn sample(&mut self, now_ns: u64) {
        if let Some(last) = self.samples.last()
            && last.0 >= now_ns
        {
            return;
        }
        if self.samples.len() >= MAX_SAMPLES {
            // Keep the first and last; thin the rest evenly.
            let mut i = 0usize;
            self.samples.retain(|_| {
                i += 1;
                i % 2 == 1
            });
        }
        self.samples.push((now_ns, self.outstanding));
    }
}

#[derive(Debug, Default)]
pub struct SiteTable {
    ids: HashMap<SiteKey, SiteId, foldhash::fast::RandomState>,
    stats: Vec<SiteStats>,
}

impl SiteTable {
    pub fn intern(&mut self, key: SiteKey) -> SiteId {
        if let Some(id) = self.ids.get(&key) {
            return *id;
        }
        let id = SiteId(u32::try_from(self.stats.len()).unwrap_or(u32::MAX));
        self.stats.push(SiteStats::new(key));
        self.ids.insert(key, id);
        id
    }

    pub fn get(&self, id: SiteId) -> Option<&SiteStats> {
        self.stats.get(id.0 as usize)
    }

    pub fn get_mut(&mut self, id: SiteId) -> Option<&mut SiteStats> {
        self.stats.get_mut(id.0 as usize)
    }

    pub fn opened(&mut self, id: SiteId, example: Option<&[u8]>) {
        if let Some(s) = self.get_mut(id) {
            s.outstanding = s.outstanding.saturating_add(1);
            s.allocations += 1;
            if s.example.is_none()
                && let Some(e) = example
                && !e.is_empty()
            {
                s.example = Some(e.into());
            }
        }
    }

    pub fn closed(&mut self, id: SiteId) {
        if let Some(s) = self.get_mut(id) {
            s.outstanding = s.outstanding.saturating_sub(1);
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
        self.stats.iter().enumerate().map(|(i, s)| (SiteId(i as u32), s))
    }

    /// Samples every site of `tgid` (or of every process when `None`).
    pub fn sample(&mut self, tgid: Option<u32>, now_ns: u64) {
        self.sample_where(|t| tgid.is_none_or(|x| x == t), now_ns);
    }

    /// Samples every site of the processes `wanted` accepts, in one pass.
    pub fn sample_where(&mut self, wanted: impl Fn(u32) -> bool, now_ns: u64) {
        for s in &mut self.stats {
            if (s.outstanding > 0 || !s.samples.is_empty()) && wanted(s.key.tgid) {
                s.sample(now_ns);
            }
        }
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
        t.opened(a, Some(b"/etc/passwd"));
        t.opened(a, Some(b"/etc/other"));
        t.closed(a);
        t.closed(b);
        let s = t.get(a).map(|s| (s.outstanding, s.allocations, s.example.clone()));
        assert_eq!(s, Some((1, 2, Some(b"/etc/passwd".to_vec().into_boxed_slice()))));
        assert_eq!(t.get(b).map(|s| s.outstanding), Some(0));
    }

    #[test]
    fn samples_stay_bounded_and_span_the_run() {
        let mut s = SiteStats::new(key(1));
        for i in 0..10_000u64 {
            s.outstanding = i as u32;
            s.sample(i + 1);
        }
        assert!(s.samples.len() <= MAX_SAMPLES);
        assert_eq!(s.samples.first().map(|x| x.0), Some(1));
        assert_eq!(s.samples.last().map(|x| x.0), Some(10_000));
        s.sample(5);
        assert_eq!(s.samples.last().map(|x| x.0), Some(10_000), "time never goes back");
    }
}
