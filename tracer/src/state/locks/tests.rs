use tracer_common::lock::{FILE_LOCK_DEFERRED, family, lock_type};

use super::*;
use crate::state::SiteTable;

const FILE: FileId = FileId { dev: 8, ino: 1234 };

fn ev(tgid: u32, owner: u64, ts: u64, ty: u8, ret: i32) -> LockEvent {
    LockEvent {
        tgid,
        tid: tgid,
        ts_ns: ts,
        family: family::FLOCK,
        file: FILE,
        owner,
        lock_type: ty,
        start: 0,
        end: i64::MAX,
        ret,
    }
}

#[test]
fn holder_waiter_and_wait_time() {
    let mut t = LockTable::default();
    let mut sites = SiteTable::default();
    // Holder 10 takes the lock; its flock() returns with stack 1.
    t.on_lock(&ev(10, 0xa, 1_000, lock_type::WRITE, 0), &mut sites);
    let c = t.on_call(10, 10, 1_001, 0, StackId(1), &mut sites);
    assert_eq!(c.file, Some(FILE));
    // Waiter 20 blocks at 2_000, gets the lock at 5_000 after the holder's release.
    t.on_lock(&ev(20, 0xb, 2_000, lock_type::WRITE, FILE_LOCK_DEFERRED), &mut sites);
    let f = &t.files[&FILE];
    assert_eq!(f.waiting.len(), 1);
    assert_eq!(f.held[0].waiters_seen, 1);
    t.on_lock(&ev(10, 0xa, 4_900, lock_type::UNLOCK, 0), &mut sites);
    t.on_lock(&ev(20, 0xb, 5_000, lock_type::WRITE, 0), &mut sites);
    let c = t.on_call(20, 20, 5_001, 0, StackId(2), &mut sites);
    assert_eq!(c.waited_ns, 3_000);
    let f = &t.files[&FILE];
    assert!(f.waiting.is_empty());
    assert_eq!(f.held.len(), 1);
    assert_eq!((f.held[0].tgid, f.held[0].stack), (20, StackId(2)));
    assert_eq!(f.contention.waits, 1);
    assert_eq!(f.contention.max_wait_ns, 3_000);
    assert_eq!(f.contention.max_waiter, Some((20, StackId(2))));
    assert_eq!(f.contention.max_holder, Some((10, StackId(1))));
    let longest = f.longest_hold.map(|l| (l.held_ns, l.tgid, l.stack, l.waiters_seen));
    assert_eq!(longest, Some((3_900, 10, StackId(1), 1)));
    // Sites count held locks: the holder's was released, the waiter's is held.
    let held: Vec<u32> = sites.iter().map(|(_, s)| s.outstanding).collect();
    assert_eq!(held, vec![0, 1]);
}

#[test]
fn nonblocking_failure_names_the_holder() {
    let mut t = LockTable::default();
    let mut sites = SiteTable::default();
    t.on_lock(&ev(10, 0xa, 1, lock_type::WRITE, 0), &mut sites);
    t.on_call(10, 10, 2, 0, StackId(1), &mut sites);
    t.on_lock(&ev(20, 0xb, 3, lock_type::WRITE, -11), &mut sites);
    let c = t.on_call(20, 20, 4, -11, StackId(2), &mut sites);
    assert_eq!(c.holder, Some(10));
    assert_eq!(t.files[&FILE].failures, 1);
}

#[test]
fn interrupted_wait_counts_as_contention_and_upgrade_replaces() {
    let mut t = LockTable::default();
    let mut sites = SiteTable::default();
    t.on_lock(&ev(10, 0xa, 1, lock_type::READ, 0), &mut sites);
    t.on_call(10, 10, 1, 0, StackId(1), &mut sites);
    // Upgrade by the same owner: still one lock.
    t.on_lock(&ev(10, 0xa, 2, lock_type::WRITE, 0), &mut sites);
    t.on_call(10, 10, 2, 0, StackId(1), &mut sites);
    assert_eq!(t.files[&FILE].held.len(), 1);
    assert!(t.files[&FILE].held[0].exclusive);
    t.on_lock(&ev(20, 0xb, 10, lock_type::WRITE, FILE_LOCK_DEFERRED), &mut sites);
    let c = t.on_call(20, 20, 110, -4, StackId(3), &mut sites);
    assert_eq!(c.waited_ns, 100);
    let f = &t.files[&FILE];
    assert!(f.waiting.is_empty());
    assert_eq!(f.contention.waits, 1);
    assert_eq!(f.failures, 1);
    // Release by the last close (another process may trigger it): the lock is gone.
    t.on_lock(&ev(30, 0xa, 200, lock_type::UNLOCK, 0), &mut sites);
    assert!(t.files[&FILE].held.is_empty());
}

#[test]
fn posix_unlock_releases_only_overlapping_ranges() {
    let mut t = LockTable::default();
    let mut sites = SiteTable::default();
    let range = |start, end, ty, ret| LockEvent {
        family: family::POSIX,
        start,
        end,
        ..ev(10, 0xf, 1, ty, ret)
    };
    t.on_lock(&range(0, 9, lock_type::WRITE, 0), &mut sites);
    t.on_call(10, 10, 1, 0, StackId(1), &mut sites);
    t.on_lock(&range(100, 109, lock_type::WRITE, 0), &mut sites);
    t.on_call(10, 10, 1, 0, StackId(2), &mut sites);
    t.on_lock(&range(0, 50, lock_type::UNLOCK, 0), &mut sites);
    let held: Vec<i64> = t.files[&FILE].held.iter().map(|h| h.start).collect();
    assert_eq!(held, vec![100]);
}

#[test]
fn holders_learned_from_proc_locks_are_waited_for_and_replaced() {
    let mut t = LockTable::default();
    let mut sites = SiteTable::default();
    // A traced process starts waiting; /proc/locks names the (untraced) holder, pid 99.
    t.on_lock(&ev(20, 0xb, 1_000, lock_type::WRITE, FILE_LOCK_DEFERRED), &mut sites);
    let known = [
        KnownHolder {
            file: FILE,
            family: family::FLOCK,
            tgid: 99,
            exclusive: true,
            start: 0,
            end: i64::MAX,
            waiting: false,
        },
        KnownHolder {
            file: FileId { dev: 1, ino: 1 },
            family: family::FLOCK,
            tgid: 98,
            exclusive: true,
            start: 0,
            end: i64::MAX,
            waiting: false,
        },
    ];
    t.learn(&known, Some(FILE), None, 1_000);
    t.learn(&known, Some(FILE), None, 1_500);
    let f = &t.files[&FILE];
    assert_eq!(f.held.len(), 1, "only the waited-for file, once");
    assert_eq!(
        (f.held[0].tgid, f.held[0].traced, f.held[0].waiters_seen),
        (99, false, 1)
    );
    // Its release is not seen (untraced); the waiter's acquisition proves it.
    t.on_lock(&ev(20, 0xb, 4_000, lock_type::WRITE, 0), &mut sites);
    t.on_call(20, 20, 4_001, 0, StackId(2), &mut sites);
    let f = &t.files[&FILE];
    assert_eq!(f.held.iter().map(|h| h.tgid).collect::<Vec<_>>(), vec![20]);
    assert_eq!(f.contention.max_holder, Some((99, StackId::NONE)));
    assert_eq!(f.contention.max_wait_ns, 3_000);
}

#[test]
fn a_traced_process_releases_a_lock_it_held_before_attach() {
    let mut t = LockTable::default();
    let mut sites = SiteTable::default();
    let known = [KnownHolder {
        file: FILE,
        family: family::FLOCK,
        tgid: 10,
        exclusive: true,
        start: 0,
        end: i64::MAX,
        waiting: false,
    }];
    t.learn(&known, None, Some(10), 5);
    t.learn(&known, None, Some(11), 5);
    assert_eq!(t.files[&FILE].held.len(), 1);
    t.on_lock(&ev(10, 0xa, 9, lock_type::UNLOCK, 0), &mut sites);
    assert!(t.files.get(&FILE).is_none_or(|f| f.held.is_empty()));
    // A learned lock of an exited process is dropped with it.
    t.learn(&known, None, Some(10), 20);
    t.process_exited(10);
    assert!(t.files[&FILE].held.is_empty());
}

#[test]
fn a_wait_that_began_before_attach_is_measured_from_attach() {
    let mut t = LockTable::default();
    let mut sites = SiteTable::default();
    let holder = KnownHolder {
        file: FILE,
        family: family::FLOCK,
        tgid: 99,
        exclusive: true,
        start: 0,
        end: i64::MAX,
        waiting: false,
    };
    let waiter = KnownHolder {
        tgid: 20,
        waiting: true,
        ..holder
    };
    // Holders are listed before their waiters in /proc/locks.
    t.learn(&[holder, waiter], None, Some(20), 1_000);
    assert!(
        t.files
            .get(&FILE)
            .is_some_and(|f| f.held.is_empty() && f.waiting.len() == 1)
    );
    t.learn(&[holder, waiter], Some(FILE), None, 1_000);
    t.on_lock(&ev(20, 0xb, 3_000, lock_type::WRITE, 0), &mut sites);
    let c = t.on_call(20, 20, 3_001, 0, StackId(7), &mut sites);
    assert_eq!(c.waited_ns, 2_000);
    let f = &t.files[&FILE];
    assert!(f.waiting.is_empty());
    assert_eq!(f.contention.max_waiter, Some((20, StackId(7))));
}

#[test]
fn an_exited_waiters_threads_leave_no_stale_wait_for_a_reused_tid() {
    let mut t = LockTable::default();
    let mut sites = SiteTable::default();
    t.on_lock(&ev(10, 0xa, 1_000, lock_type::WRITE, 0), &mut sites);
    t.on_call(10, 10, 1_001, 0, StackId(1), &mut sites);
    // Thread 21 of process 20 blocks, then the whole process dies (killed while waiting: its
    // flock() never returns, so no syscall record ever consumes the thread's verdict).
    let waiter = LockEvent {
        tid: 21,
        ..ev(20, 0xb, 2_000, lock_type::WRITE, FILE_LOCK_DEFERRED)
    };
    t.on_lock(&waiter, &mut sites);
    assert!(t.pending.contains_key(&21) && t.wait_started.contains_key(&21));
    t.process_exited(20);
    assert!(t.files[&FILE].waiting.is_empty());
    assert!(!t.pending.contains_key(&21), "the dead thread's verdict is dropped");
    assert!(!t.wait_started.contains_key(&21), "the dead thread's wait is dropped");
    // Tid 21 is reused by a thread of process 30 whose flock() returns at once: it must not
    // inherit the dead thread's wait (no file, no wait time, no contention recorded).
    let c = t.on_call(30, 21, 9_000, 0, StackId(3), &mut sites);
    assert_eq!(c, LockCall::default());
    assert_eq!(t.files[&FILE].contention.waits, 0);
}
