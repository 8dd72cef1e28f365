//! One process's descriptor table as the agent believes it to be.

use std::collections::HashMap;

use super::{kind::FdKind, sites::SiteId};

/// How the agent learned about an fd.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Origin {
    /// Created by a traced syscall (the site has its stack).
    Syscall,
    /// Open when tracing started; read from `/proc/PID/fd`, no stack.
    BeforeAttach,
    /// Copied from the parent at fork.
    Inherited,
    /// Installed by `recvmsg`/`recvmmsg` from an SCM_RIGHTS message.
    Received,
    /// Found in `/proc/PID/fd` when the table was resynchronised after lost records: no stack.
    Resynced,
}

/// An open descriptor. Small on purpose: production hosts track hundreds of thousands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OpenFd {
    pub site: SiteId,
    pub kind: FdKind,
    /// Socket family (AF_*), 0 when not a socket or unknown.
    pub family: u16,
    pub origin: Origin,
    /// CLOCK_MONOTONIC nanoseconds of the allocation (of the attach, for `BeforeAttach`).
    pub opened_ns: u64,
    /// `/proc/PID/fd` was read for this fd (kind refined, example path known).
    pub described: bool,
    /// Its sampling weight (see `SiteStats::estimated`): 1 unless stacks are sampled.
    pub weight: u32,
}

#[derive(Clone, Debug, Default)]
pub struct FdTable {
    fds: HashMap<i32, OpenFd, foldhash::fast::RandomState>,
}

impl FdTable {
    pub fn get(&self, fd: i32) -> Option<&OpenFd> {
        self.fds.get(&fd)
    }

    pub fn get_mut(&mut self, fd: i32) -> Option<&mut OpenFd> {
        self.fds.get_mut(&fd)
    }

    /// Inserts, returning what was there (a stale entry when a close was missed).
    pub fn insert(&mut self, fd: i32, open: OpenFd) -> Option<OpenFd> {
        self.fds.insert(fd, open)
    }

    pub fn remove(&mut self, fd: i32) -> Option<OpenFd> {
        self.fds.remove(&fd)
    }

    pub fn len(&self) -> usize {
        self.fds.len()
    }

    pub fn is_empty(&self) -> bool {
        self.fds.is_empty()
    }

    pub fn iter(&self) -> impl Iterator<Item = (i32, &OpenFd)> {
        self.fds.iter().map(|(fd, o)| (*fd, o))
    }

    /// Removes every fd for which `keep` is false, calling `removed` for each.
    pub fn retain(&mut self, mut keep: impl FnMut(i32, &OpenFd) -> bool, mut removed: impl FnMut(i32, OpenFd)) {
        self.fds.retain(|fd, o| {
            let k = keep(*fd, o);
            if !k {
                removed(*fd, *o);
            }
            k
        });
    }

    /// Sorted fd numbers (for comparisons and stable output).
    pub fn numbers(&self) -> Vec<i32> {
        let mut v: Vec<i32> = self.fds.keys().copied().collect();
        v.sort_unstable();
        v
    }
}
