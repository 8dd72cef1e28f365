//! SysV IPC in the report: objects left behind by their creators (orphans), grouped by the code
//! that created them, and the counts of live and removed objects.

use serde::Serialize;

use super::stack::Stack;
use crate::state::Resource;

#[derive(Clone, Debug, Serialize, PartialEq, Default)]
pub struct IpcReport {
    /// Objects whose creator exited without removing them, grouped by creating stack.
    pub orphans: Vec<OrphanGroup>,
    /// Objects created by traced processes that still exist (orphans included).
    pub live: u64,
    /// Removed while traced: sem, shm, msg.
    pub removed: [u64; 3],
}

#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct OrphanGroup {
    pub resource: Resource,
    pub count: u64,
    /// Ids to pass to `ipcrm` (the first 32).
    pub ids: Vec<i32>,
    pub keys: Vec<String>,
    pub creator_pids: Vec<u32>,
    pub oldest_age_ms: u64,
    pub stack: Stack,
}

impl OrphanGroup {
    /// Adds another group's objects (same resource, same code) to this one.
    pub fn absorb(&mut self, other: OrphanGroup) {
        self.count += other.count;
        for id in other.ids {
            if self.ids.len() < 32 {
                self.ids.push(id);
            }
        }
        for key in other.keys {
            if !self.keys.contains(&key) && self.keys.len() < 8 {
                self.keys.push(key);
            }
        }
        for c in other.creator_pids {
            if !self.creator_pids.contains(&c) && self.creator_pids.len() < 32 {
                self.creator_pids.push(c);
            }
        }
        self.oldest_age_ms = self.oldest_age_ms.max(other.oldest_age_ms);
    }
}

/// Orphans are grouped by stack id when the report is built; stacks are per process, so groups
/// of different creators whose stacks resolve to the same frames are one group.
pub fn merge_orphan_groups(groups: &mut Vec<OrphanGroup>) {
    let mut merged: Vec<OrphanGroup> = Vec::with_capacity(groups.len());
    for g in groups.drain(..) {
        match merged
            .iter_mut()
            .find(|m| m.resource == g.resource && m.stack.frames == g.stack.frames)
        {
            Some(m) => m.absorb(g),
            None => merged.push(g),
        }
    }
    merged.sort_by(|a, b| b.count.cmp(&a.count).then(a.resource.as_str().cmp(b.resource.as_str())));
    *groups = merged;
}
