//! `--stack fp`: the kernel's stack-map ids the agent has read, and which to free.
//!
//! The kernel's stack map (`STACKS`, filled by `bpf_get_stackid`) is a fixed table of hash
//! buckets, and an id is a bucket. A stack whose bucket holds another stack is not captured
//! (-EEXIST), nor is any new stack once every preallocated entry is in use (-ENOMEM): the kernel
//! counts both (`stack_not_captured`). `BPF_F_REUSE_STACKID` would overwrite the bucket instead,
//! and a record still queued with the old stack's id, or this cache, would then name the new
//! stack: a wrong stack, silently. So no reuse. The agent copies a stack out of the map the first
//! time a record names its id and keeps it in its own store; the map only has to hold the stacks
//! in use now. Each sweep (every 30 s) frees the ids no record named since the previous sweep,
//! whether or not the agent still refers to the stack (it has its own copy), so a long trace
//! does not fill the map with the stacks of its first minutes. A record taken before a sweep
//! with an id that sweep freed finds its stack gone, or another stack in the bucket: it is
//! counted as lost, never given that stack.

use std::collections::{HashMap, HashSet};

use crate::state::StackId;

/// A record's stack key: (process, user stack id, kernel stack id). A negative id is the
/// kernel's error (nothing captured, counted by the kernel).
pub type FpKey = (u32, i64, i32);

#[derive(Debug, Default)]
pub struct FpStackIds {
    /// The stack interned for each key read from the map.
    cache: HashMap<FpKey, StackId, foldhash::fast::RandomState>,
    /// Ids read from the map, and whether a record named them since the last sweep.
    ids: HashMap<i64, bool, foldhash::fast::RandomState>,
    /// Ids the last sweep freed, and when.
    freed: HashSet<i64, foldhash::fast::RandomState>,
    freed_at_ns: u64,
}

/// What to do with a record's stack key.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Lookup {
    /// Read before: this stack.
    Cached(StackId),
    /// Read the id from the kernel's map (or nothing to read: a negative id).
    Read,
    /// The record was taken before the sweep that freed its id: its stack is gone.
    Gone,
}

impl FpStackIds {
    /// The stack of a record taken at `ts_ns` (CLOCK_MONOTONIC) with `key`.
    pub fn lookup(&mut self, key: FpKey, ts_ns: u64) -> Lookup {
        if let Some(seen) = self.ids.get_mut(&key.1) {
            *seen = true;
        }
        // First: the id may have been read again since, by a record taken after the sweep.
        if ts_ns < self.freed_at_ns && self.freed.contains(&key.1) {
            return Lookup::Gone;
        }
        match self.cache.get(&key) {
            Some(id) => Lookup::Cached(*id),
            None => Lookup::Read,
        }
    }

    /// The stack of `key` was read from the map (or there was none: a negative id) and interned
    /// as `id`.
    pub fn read(&mut self, key: FpKey, id: StackId) {
        self.cache.insert(key, id);
        if key.1 >= 0 {
            self.ids.insert(key.1, true);
        }
    }

    /// At `now_ns`, after every record queued so far was handled: forgets the stacks the agent
    /// dropped (`live` says which it keeps), and returns the ids to free in the kernel's map,
    /// those no record named since the previous sweep.
    pub fn sweep(&mut self, live: impl Fn(StackId) -> bool, now_ns: u64) -> Vec<i64> {
        let idle: Vec<i64> = self.ids.iter().filter(|(_, seen)| !**seen).map(|(id, _)| *id).collect();
        self.freed.clear();
        for id in &idle {
            self.ids.remove(id);
            self.freed.insert(*id);
        }
        self.freed_at_ns = now_ns;
        for seen in self.ids.values_mut() {
            *seen = false;
        }
        let freed = &self.freed;
        self.cache.retain(|key, id| live(*id) && !freed.contains(&key.1));
        idle
    }

    /// Ids read and not freed yet.
    #[cfg(test)]
    fn len(&self) -> usize {
        self.ids.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ALL: fn(StackId) -> bool = |_| true;

    #[test]
    fn an_id_is_read_once_then_served_from_the_cache() {
        let mut f = FpStackIds::default();
        assert_eq!(f.lookup((1, 5, -1), 10), Lookup::Read);
        f.read((1, 5, -1), StackId(7));
        assert_eq!(f.lookup((1, 5, -1), 11), Lookup::Cached(StackId(7)));
        // Another process with the same kernel id (a forked child) reads it for itself.
        assert_eq!(f.lookup((2, 5, -1), 12), Lookup::Read);
    }

    #[test]
    fn ids_in_use_stay_and_idle_ones_are_freed_even_while_their_stack_is_kept() {
        let mut f = FpStackIds::default();
        f.read((1, 5, -1), StackId(7));
        f.read((1, 6, -1), StackId(8));
        // Both were named since the start: nothing is freed by the first sweep.
        assert!(f.sweep(ALL, 100).is_empty());
        // Only id 5 is named again before the next one.
        assert_eq!(f.lookup((1, 5, -1), 150), Lookup::Cached(StackId(7)));
        assert_eq!(
            f.sweep(ALL, 200),
            vec![6],
            "the site of stack 8 still exists: no matter"
        );
        assert_eq!(f.len(), 1);
        // A record taken before that sweep named id 6: its stack may be gone or replaced.
        assert_eq!(f.lookup((1, 6, -1), 199), Lookup::Gone);
        // A record taken after it: the kernel put its stack there again.
        assert_eq!(f.lookup((1, 6, -1), 201), Lookup::Read);
        f.read((1, 6, -1), StackId(9));
        // A late record from before the sweep still does not get what is there now.
        assert_eq!(f.lookup((1, 6, -1), 198), Lookup::Gone);
        assert_eq!(f.lookup((1, 6, -1), 202), Lookup::Cached(StackId(9)));
    }

    #[test]
    fn a_dropped_stack_leaves_the_cache_but_a_busy_id_stays_in_the_map() {
        let mut f = FpStackIds::default();
        f.read((1, 5, -1), StackId(7));
        assert!(f.sweep(|id| id != StackId(7), 100).is_empty());
        assert_eq!(f.lookup((1, 5, -1), 150), Lookup::Read, "read again, not a dead id");
        // Still named since the sweep: kept in the map.
        assert!(f.sweep(ALL, 200).is_empty());
        // Then idle for a whole period: freed.
        assert_eq!(f.sweep(ALL, 300), vec![5]);
        assert_eq!(f.len(), 0);
    }

    #[test]
    fn kernel_errors_are_cached_but_never_freed() {
        let mut f = FpStackIds::default();
        f.read((1, -17, -1), StackId::NONE);
        assert_eq!(f.lookup((1, -17, -1), 1), Lookup::Cached(StackId::NONE));
        assert!(f.sweep(ALL, 100).is_empty());
        assert!(f.sweep(ALL, 200).is_empty());
    }
}
