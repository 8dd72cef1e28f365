//! SysV IPC objects (semaphore sets, shared memory segments, message queues): who created each,
//! from which stack, and whether it was removed. They outlive their creator, which is the point:
//! a set whose creator exited without `IPC_RMID` is an orphan until someone runs `ipcrm`.

use std::collections::BTreeMap;

use tracer_common::syscalls::IpcKind;

use super::{Resource, SiteId, SiteKey, SiteTable, StackId, State, kind::FdKind, syscall::Syscall};

/// `IPC_CREAT` and `IPC_PRIVATE` (include/uapi/linux/ipc.h).
const IPC_CREAT: u64 = 0o1000;
const IPC_PRIVATE: i32 = 0;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IpcObject {
    pub kind: IpcKind,
    pub id: i32,
    pub key: i32,
    /// Semaphores in a set, bytes of a segment (0 for queues).
    pub size: u64,
    /// The traced process that created it (None: it existed before tracing or was made by an
    /// untraced process).
    pub creator: Option<u32>,
    pub created_ns: u64,
    pub stack: StackId,
    pub site: Option<SiteId>,
    /// When the creator exited (the object is then an orphan).
    pub creator_exited_ns: Option<u64>,
    /// The creator's IPC namespace when it is not the agent's (0: the agent's own, the one
    /// `/proc/sysvipc` lists).
    pub namespace: u64,
}

impl IpcObject {
    pub fn is_orphan(&self) -> bool {
        self.creator.is_some() && self.creator_exited_ns.is_some()
    }
}

/// An object as `/proc/sysvipc/*` lists it, passed in by the caller.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ListedIpc {
    pub kind: IpcKind,
    pub id: i32,
    pub key: i32,
    pub size: u64,
}

/// Every object the agent knows, by (kind, id).
#[derive(Debug, Default)]
pub struct IpcTable {
    pub objects: BTreeMap<(IpcKind, i32), IpcObject>,
    /// Objects removed while traced, per kind (sem, shm, msg): by a traced `IPC_RMID`, or, for
    /// objects a traced process created, by anyone. Objects that predate tracing and vanish
    /// from /proc are other programs' business (another service, `ipcrm`) and are not counted.
    pub removed: [u64; 3],
}

fn index(kind: IpcKind) -> usize {
    match kind {
        IpcKind::Sem => 0,
        IpcKind::Shm => 1,
        IpcKind::Msg => 2,
    }
}

/// What one `*get` call looked like.
#[derive(Clone, Copy, Debug)]
pub struct IpcGet {
    pub tgid: u32,
    pub ts_ns: u64,
    pub kind: IpcKind,
    pub key: i32,
    pub size: u64,
    pub flags: u64,
    pub id: i32,
    pub stack: StackId,
    /// See [`IpcObject::namespace`].
    pub namespace: u64,
}

impl IpcTable {
    /// Objects that existed before tracing (from /proc/sysvipc): known, never ours.
    pub fn preexisting(&mut self, listed: &[ListedIpc]) {
        for l in listed {
            self.objects.entry((l.kind, l.id)).or_insert(IpcObject {
                kind: l.kind,
                id: l.id,
                key: l.key,
                size: l.size,
                creator: None,
                created_ns: 0,
                stack: StackId::NONE,
                site: None,
                creator_exited_ns: None,
                namespace: 0,
            });
        }
    }

    /// A successful `semget`/`shmget`/`msgget`. A new id with `IPC_CREAT` (or `IPC_PRIVATE`) is a
    /// creation; an id already known is an existing object being opened.
    pub fn on_get(&mut self, g: &IpcGet, sites: &mut SiteTable) {
        if self.objects.contains_key(&(g.kind, g.id)) {
            return;
        }
        let created = g.key == IPC_PRIVATE || g.flags & IPC_CREAT != 0;
        let site = created.then(|| {
            let site = sites.intern(SiteKey {
                resource: Resource::from_ipc(g.kind),
                tgid: g.tgid,
                stack: g.stack,
                kind: FdKind::Unknown,
                family: 0,
                before_attach: false,
            });
            sites.opened(site, Some(describe_key(g.key).as_bytes()), 1);
            site
        });
        self.objects.insert(
            (g.kind, g.id),
            IpcObject {
                kind: g.kind,
                id: g.id,
                key: g.key,
                size: g.size,
                creator: created.then_some(g.tgid),
                created_ns: g.ts_ns,
                stack: g.stack,
                site,
                creator_exited_ns: None,
                namespace: g.namespace,
            },
        );
    }

    /// `IPC_RMID` succeeded (or the object vanished from /proc: removed by an untraced process).
    pub fn remove(&mut self, kind: IpcKind, id: i32, sites: &mut SiteTable) {
        self.drop_object(kind, id, sites, true);
    }

    fn drop_object(&mut self, kind: IpcKind, id: i32, sites: &mut SiteTable, by_traced: bool) {
        if let Some(o) = self.objects.remove(&(kind, id)) {
            if by_traced || o.creator.is_some() {
                self.removed[index(kind)] += 1;
            }
            if let Some(site) = o.site {
                sites.closed(site, 1);
            }
        }
    }

    /// The creator exited: what it created and did not remove is orphaned.
    pub fn creator_exited(&mut self, tgid: u32, now_ns: u64) {
        for o in self.objects.values_mut() {
            if o.creator == Some(tgid) && o.creator_exited_ns.is_none() {
                o.creator_exited_ns = Some(now_ns);
            }
        }
    }

    /// Reconciles with what `/proc/sysvipc` lists now: objects gone from it were removed by
    /// someone the agent does not trace (`ipcrm`, another service).
    /// Objects of other IPC namespaces (containers) are not listed there and are kept.
    pub fn sync(&mut self, kind: IpcKind, listed: &[ListedIpc], sites: &mut SiteTable) {
        let gone: Vec<i32> = self
            .objects
            .range((kind, i32::MIN)..=(kind, i32::MAX))
            .filter(|(_, o)| o.namespace == 0 && !listed.iter().any(|l| l.kind == kind && l.id == o.id))
            .map(|(_, o)| o.id)
            .collect();
        for id in gone {
            self.drop_object(kind, id, sites, false);
        }
    }

    pub fn orphans(&self) -> impl Iterator<Item = &IpcObject> {
        self.objects.values().filter(|o| o.is_orphan())
    }
}

impl State {
    /// `semget(key, nsems, flags)`, `shmget(key, size, flags)`, `msgget(key, flags)`.
    pub(super) fn on_ipc_get(&mut self, sc: &Syscall<'_>, kind: IpcKind, stack: StackId) {
        if sc.ret < 0 {
            self.on_limit_failure(sc, stack);
            return;
        }
        let (size, flags) = match kind {
            IpcKind::Msg => (0, sc.args[1]),
            IpcKind::Sem | IpcKind::Shm => (sc.args[1], sc.args[2]),
        };
        let get = IpcGet {
            tgid: sc.tgid,
            ts_ns: sc.ts_ns,
            kind,
            key: sc.args[0] as i32,
            size,
            flags,
            id: sc.ret as i32,
            stack,
            namespace: 0,
        };
        self.ipc.on_get(&get, &mut self.sites);
    }

    /// `*ctl(id, .., IPC_RMID)` succeeded (the kernel reports nothing else).
    pub(super) fn on_ipc_remove(&mut self, sc: &Syscall<'_>, kind: IpcKind) {
        if sc.ret >= 0 {
            self.ipc.remove(kind, sc.args[0] as i32, &mut self.sites);
        }
    }
}

/// `IPC_PRIVATE` or the key in hex, as `ipcs` shows it.
pub fn describe_key(key: i32) -> String {
    if key == IPC_PRIVATE {
        "key IPC_PRIVATE".to_owned()
    } else {
        format!("key 0x{:08x}", key as u32)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn get(tgid: u32, id: i32, key: i32, flags: u64) -> IpcGet {
        IpcGet {
            tgid,
            ts_ns: 10,
            kind: IpcKind::Sem,
            key,
            size: 2,
            flags,
            id,
            stack: StackId(5),
            namespace: 0,
        }
    }

    /// An object as /proc/sysvipc lists it.
    fn listed(kind: IpcKind, id: i32, key: i32) -> ListedIpc {
        ListedIpc {
            kind,
            id,
            key,
            size: 4096,
        }
    }

    #[test]
    fn creation_removal_and_orphans() {
        let mut t = IpcTable::default();
        let mut sites = SiteTable::default();
        t.on_get(&get(1, 100, 0, 0o600), &mut sites);
        t.on_get(&get(1, 101, 0x1234, IPC_CREAT | 0o600), &mut sites);
        // Opening an existing set by key is not a creation.
        t.on_get(&get(2, 101, 0x1234, 0), &mut sites);
        assert_eq!(t.objects.len(), 2);
        assert_eq!(t.objects.get(&(IpcKind::Sem, 101)).and_then(|o| o.creator), Some(1));
        let site = t.objects.get(&(IpcKind::Sem, 100)).and_then(|o| o.site);
        assert_eq!(site.and_then(|s| sites.get(s)).map(|s| s.outstanding), Some(2));
        t.remove(IpcKind::Sem, 100, &mut sites);
        assert_eq!(site.and_then(|s| sites.get(s)).map(|s| s.outstanding), Some(1));
        assert_eq!(t.removed[0], 1);
        assert_eq!(t.orphans().count(), 0, "creator alive: not an orphan");
        t.creator_exited(1, 50);
        assert_eq!(t.orphans().map(|o| o.id).collect::<Vec<_>>(), vec![101]);
    }

    #[test]
    fn preexisting_objects_are_never_orphans_and_sync_drops_removed_ones() {
        let mut t = IpcTable::default();
        let mut sites = SiteTable::default();
        let segment = [listed(IpcKind::Shm, 7, 9)];
        t.preexisting(&segment);
        t.on_get(
            &IpcGet {
                kind: IpcKind::Shm,
                id: 7,
                ..get(3, 7, 9, IPC_CREAT)
            },
            &mut sites,
        );
        t.creator_exited(3, 1);
        assert_eq!(t.orphans().count(), 0);
        t.on_get(&get(3, 8, 0, 0), &mut sites);
        t.creator_exited(3, 2);
        assert_eq!(t.orphans().count(), 1);
        // `ipcrm` by an untraced process: the sem set vanishes from /proc; the segment stays.
        t.sync(IpcKind::Sem, &[], &mut sites);
        t.sync(IpcKind::Shm, &segment, &mut sites);
        assert_eq!(t.orphans().count(), 0);
        assert!(t.objects.contains_key(&(IpcKind::Shm, 7)));
        assert_eq!(t.removed, [1, 0, 0], "a traced process's set removed by ipcrm counts");
        // A set that predates tracing vanishing: forgotten, not counted.
        t.preexisting(&[listed(IpcKind::Sem, 40, 1)]);
        t.sync(IpcKind::Sem, &[], &mut sites);
        assert!(!t.objects.contains_key(&(IpcKind::Sem, 40)));
        assert_eq!(t.removed, [1, 0, 0]);
        assert_eq!(describe_key(0), "key IPC_PRIVATE");
        assert_eq!(describe_key(0x1234), "key 0x00001234");
    }
}
