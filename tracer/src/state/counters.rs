//! Monotonic totals for Prometheus counters. Each process counts its own events (a few array
//! increments on the hot path, no lookups); when a process is forgotten (or renamed by exec) its
//! counts retire into its group's totals, keyed by (comm, container), so a group's counter
//! never goes back when its processes come and go.

use std::{collections::HashMap, sync::Arc};

use super::{FdKind, incidents::IncidentKind};

/// Fd kinds, for per-kind arrays (`FdKind as usize`).
pub const KINDS: usize = FdKind::Unknown as usize + 1;

/// Upper bounds of the lock-wait histogram, in seconds.
pub const LOCK_WAIT_BUCKETS: [f64; 8] = [0.001, 0.005, 0.025, 0.1, 0.5, 1.0, 5.0, 30.0];

/// Misuse kinds counted (index: [`misuse_index`]).
pub const MISUSE: [IncidentKind; 4] = [
    IncidentKind::CloseNotOpen,
    IncidentKind::DoubleClose,
    IncidentKind::UseAfterClose,
    IncidentKind::BadDescriptor,
];

pub fn misuse_index(kind: IncidentKind) -> Option<usize> {
    MISUSE.iter().position(|k| *k == kind)
}

#[derive(Clone, Debug, Default, PartialEq)]
pub struct Counters {
    pub allocations: [u64; KINDS],
    pub closes: [u64; KINDS],
    /// (syscall nr, errno) -> failures on a limit (EMFILE, ENFILE, ENOSPC, EAGAIN).
    pub limit_failures: Vec<((u32, i32), u64)>,
    /// Lock waits: counts per bucket of [`LOCK_WAIT_BUCKETS`] (not cumulative), sum in ns.
    pub lock_wait_buckets: [u64; LOCK_WAIT_BUCKETS.len() + 1],
    pub lock_wait_ns: u64,
    /// errno -> failed lock calls.
    pub lock_failures: Vec<(i32, u64)>,
    /// signal -> sent while one was pending already (merged).
    pub signals_merged: Vec<(i32, u64)>,
    pub select_beyond_fd_setsize: u64,
    pub misuse: [u64; MISUSE.len()],
    /// Writes that blocked at least `--write-block` on a full object, by `ChannelKind`, and the
    /// ns they were blocked; writes refused with EAGAIN/ENOBUFS (eventfds aside).
    pub write_stalls: [u64; CHANNELS],
    pub write_stall_ns: [u64; CHANNELS],
    pub writes_refused: [u64; CHANNELS],
    /// Non-blocking eventfd writes refused on a saturated counter (notifications dropped).
    pub eventfd_overflows: u64,
}

/// Channel kinds counted (`super::stalls::ChannelKind::index`).
pub const CHANNELS: usize = super::stalls::CHANNEL_KINDS.len();

fn bump<K: PartialEq + Copy>(list: &mut Vec<(K, u64)>, key: K, by: u64) {
    match list.iter_mut().find(|(k, _)| *k == key) {
        Some((_, n)) => *n += by,
        None => list.push((key, by)),
    }
}

impl Counters {
    pub fn limit_failure(&mut self, nr: u32, errno: i32) {
        bump(&mut self.limit_failures, (nr, errno), 1);
    }

    pub fn signals_merged_one(&mut self, sig: i32) {
        bump(&mut self.signals_merged, sig, 1);
    }

    pub fn lock_failure(&mut self, errno: i32) {
        bump(&mut self.lock_failures, errno, 1);
    }

    pub fn lock_wait(&mut self, waited_ns: u64) {
        let secs = waited_ns as f64 / 1e9;
        let i = LOCK_WAIT_BUCKETS
            .iter()
            .position(|b| secs <= *b)
            .unwrap_or(LOCK_WAIT_BUCKETS.len());
        self.lock_wait_buckets[i] += 1;
        self.lock_wait_ns += waited_ns;
    }

    pub fn lock_waits(&self) -> u64 {
        self.lock_wait_buckets.iter().sum()
    }

    /// Adds `other` to these totals.
    pub fn add(&mut self, other: &Counters) {
        for (a, b) in self.allocations.iter_mut().zip(other.allocations) {
            *a += b;
        }
        for (a, b) in self.closes.iter_mut().zip(other.closes) {
            *a += b;
        }
        for (k, n) in &other.limit_failures {
            bump(&mut self.limit_failures, *k, *n);
        }
        for (a, b) in self.lock_wait_buckets.iter_mut().zip(other.lock_wait_buckets) {
            *a += b;
        }
        self.lock_wait_ns += other.lock_wait_ns;
        for (k, n) in &other.lock_failures {
            bump(&mut self.lock_failures, *k, *n);
        }
        for (k, n) in &other.signals_merged {
            bump(&mut self.signals_merged, *k, *n);
        }
        self.select_beyond_fd_setsize += other.select_beyond_fd_setsize;
        for (a, b) in self.misuse.iter_mut().zip(other.misuse) {
            *a += b;
        }
        for (a, b) in self.write_stalls.iter_mut().zip(other.write_stalls) {
            *a += b;
        }
        for (a, b) in self.write_stall_ns.iter_mut().zip(other.write_stall_ns) {
            *a += b;
        }
        for (a, b) in self.writes_refused.iter_mut().zip(other.writes_refused) {
            *a += b;
        }
        self.eventfd_overflows += other.eventfd_overflows;
    }
}

/// A metrics group: processes with one command name in one container.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct GroupKey {
    pub comm: Box<[u8]>,
    pub container: Arc<str>,
}

#[derive(Clone, Debug, Default)]
pub struct RetiredGroup {
    pub counters: Counters,
    /// When a process of the group was last retired (CLOCK_MONOTONIC ns).
    pub retired_ns: u64,
}

/// Totals of forgotten processes, by group. Groups nobody added to for a long time go (their
/// counter series end, as the series of a restarted exporter would).
#[derive(Debug, Default)]
pub struct Groups {
    pub retired: HashMap<GroupKey, RetiredGroup, foldhash::fast::RandomState>,
    pub evicted: u64,
}

impl Groups {
    pub fn retire(&mut self, key: GroupKey, counters: &Counters, now_ns: u64) {
        let g = self.retired.entry(key).or_default();
        g.counters.add(counters);
        g.retired_ns = now_ns;
    }

    /// Drops groups retired longer ago than `idle_ns` that `alive` says have no process now.
    pub fn expire(&mut self, now_ns: u64, idle_ns: u64, alive: impl Fn(&GroupKey) -> bool) {
        let before = self.retired.len();
        self.retired
            .retain(|k, g| alive(k) || now_ns.saturating_sub(g.retired_ns) < idle_ns);
        self.evicted += (before - self.retired.len()) as u64;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn totals_add_up_and_buckets_place_waits() {
        let mut a = Counters::default();
        a.allocations[FdKind::Socket as usize] = 3;
        a.limit_failure(257, 24);
        a.limit_failure(257, 24);
        a.lock_wait(2_000_000); // 2 ms: the 5 ms bucket
        a.lock_wait(60_000_000_000); // beyond the last bound: +Inf
        let mut b = Counters::default();
        b.allocations[FdKind::Socket as usize] = 1;
        b.limit_failure(41, 24);
        b.add(&a);
        assert_eq!(b.allocations[FdKind::Socket as usize], 4);
        assert_eq!(b.limit_failures, vec![((41, 24), 1), ((257, 24), 2)]);
        assert_eq!(b.lock_wait_buckets[1], 1);
        assert_eq!(b.lock_wait_buckets[LOCK_WAIT_BUCKETS.len()], 1);
        assert_eq!(b.lock_waits(), 2);
        assert_eq!(KINDS, 21);
    }

    #[test]
    fn idle_groups_expire_unless_alive() {
        let mut g = Groups::default();
        let key = |c: &[u8]| GroupKey {
            comm: c.into(),
            container: Arc::from(""),
        };
        g.retire(key(b"a"), &Counters::default(), 10);
        g.retire(key(b"b"), &Counters::default(), 10);
        g.expire(1_000, 100, |k| &*k.comm == b"b");
        assert_eq!(g.retired.len(), 1);
        assert_eq!(g.evicted, 1);
    }
}
