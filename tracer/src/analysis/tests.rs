//! Report building without a kernel: suspects vs flat sites, --min-age, --top, time to EMFILE.

use super::build;
use crate::{
    model::{Frame, Losses, ReportOptions, frame::FrameAddress},
    state::{Limits, Resource, StackId, State, syscall::Syscall},
};
use tracer_common::fd::data_kind;

const MS: u64 = 1_000_000;
const T: u32 = 7;

fn open_at(s: &mut State, ts: u64, fd: i64, stack: u32, path: &'static [u8]) {
    open_weighted(s, ts, fd, stack, path, 1);
}

/// An open whose stack was sampled with `weight` (0: skipped by the budget; its stack is none).
fn open_weighted(s: &mut State, ts: u64, fd: i64, stack: u32, path: &'static [u8], weight: u32) {
    let sc = Syscall {
        tid: 1,
        tgid: T,
        ts_ns: ts,
        nr: libc::SYS_openat as u32,
        ret: fd,
        args: [0; 6],
        data_kind: data_kind::PATH,
        data: path,
        weight,
    };
    s.on_syscall(&sc, StackId(stack));
}

/// A process with: a leak (stack 1, one fd per 100 ms), a log (stack 2, one fd), a pool (stack 3,
/// 8 fds at the start), sampled every 100 ms for 3 s.
fn scenario() -> State {
    let mut s = State::default();
    s.attach(
        T,
        b"svc".to_vec(),
        Limits {
            nofile_soft: Some(1024),
            nofile_hard: Some(4096),
        },
        &[],
        0,
    );
    open_at(&mut s, 0, 3, 2, b"/var/log/svc.log");
    for i in 0..8 {
        open_at(&mut s, MS, 10 + i, 3, b"/dev/pool");
    }
    for (fd, tick) in (100..).zip(1..=30u64) {
        let now = tick * 100 * MS;
        open_at(&mut s, now, fd, 1, b"/etc/hostname");
        s.sample(now);
    }
    s
}

fn frames(id: StackId) -> Vec<Frame> {
    vec![Frame {
        address: FrameAddress::Native(u64::from(id.0)),
        function: Some(format!("f{}", id.0)),
        file: None,
        line: None,
        module: None,
        ..Default::default()
    }]
}

#[test]
fn the_growing_site_is_the_only_suspect() {
    let s = scenario();
    let r = build(&s, 3000 * MS, Losses::default(), &ReportOptions::default(), frames);
    assert_eq!(r.suspects.len(), 1, "{:#?}", r.suspects);
    let leak = &r.suspects[0];
    assert_eq!(
        (leak.count, leak.kind, leak.stack[0].function.as_deref()),
        (30, "file", Some("f1"))
    );
    assert!((leak.growth_per_min - 600.0).abs() < 1.0, "{}", leak.growth_per_min);
    // 1024 - 39 open = 985 fds left at 10/s.
    assert_eq!(leak.time_to_limit_s, Some(98.5));
    assert_eq!(leak.example.as_deref(), Some("/etc/hostname"));
    assert_eq!(r.outstanding.len(), 3);
    assert_eq!(r.outstanding[0].count, 30, "largest first");
    assert_eq!(r.processes[0].open_fds, 39);
    assert_eq!(r.processes[0].by_kind.get("file"), Some(&39));
}

#[test]
fn min_age_and_top_filter() {
    let s = scenario();
    let r = build(
        &s,
        3000 * MS,
        Losses::default(),
        &ReportOptions {
            min_age_ns: 2500 * MS,
            top: None,
            ..Default::default()
        },
        frames,
    );
    let leak = r.outstanding.iter().find(|o| o.stack.id == StackId(1)).map(|o| o.count);
    assert_eq!(leak, Some(5), "only fds opened at 100..500 ms are 2.5 s old");
    let r = build(
        &s,
        3000 * MS,
        Losses::default(),
        &ReportOptions {
            min_age_ns: 0,
            top: Some(1),
            ..Default::default()
        },
        frames,
    );
    assert_eq!(r.outstanding.len(), 1);
    assert_eq!(r.suspects.len(), 1);
}

#[test]
fn an_exited_process_has_no_time_to_limit_and_ages_at_exit() {
    let mut s = scenario();
    s.on_exit(T, 3000 * MS);
    let r = build(&s, 9000 * MS, Losses::default(), &ReportOptions::default(), frames);
    assert!(r.processes[0].exited);
    assert_eq!(r.suspects.len(), 1, "still a suspect: it grew until exit");
    assert_eq!(r.suspects[0].time_to_limit_s, None);
    assert_eq!(r.suspects[0].oldest_age_ms, 2900);
}

#[test]
fn fds_open_before_attach_are_never_suspects() {
    let mut s = State::default();
    let existing: Vec<_> = (0..50)
        .map(|fd| crate::state::ProcFd {
            fd,
            kind: crate::state::FdKind::File,
            target: b"/x".to_vec(),
        })
        .collect();
    s.attach(T, b"old".to_vec(), Limits::default(), &existing, 0);
    s.sample(1000 * MS);
    let r = build(&s, 2000 * MS, lost(3), &ReportOptions::default(), frames);
    assert!(r.suspects.is_empty());
    assert_eq!(r.outstanding.len(), 1, "{:#?}", r.outstanding);
    let site = &r.outstanding[0];
    assert!(site.before_attach);
    assert_eq!(site.count, 50);
    assert_eq!(site.stack.id, StackId::NONE, "no allocation stack before attach");
    // `frames` would name any id it is given: the report must not ask it for the missing stack.
    assert_eq!(site.stack.frames, Vec::new(), "no frames invented for a missing stack");
    assert_eq!((r.lost_events, r.losses), (3, lost(3)));
}

/// Losses whose whole-record part is `n` (ring buffer full, undecodable), with a stack lost.
fn lost(n: u64) -> Losses {
    Losses {
        ring_buffer_full: n - 1,
        undecodable: 1,
        stack_not_captured: 4,
        ..Losses::default()
    }
}

#[test]
fn an_exited_childs_inherited_fds_are_not_listed_as_its_sites() {
    let mut s = State::default();
    s.attach(T, b"server".to_vec(), Limits::default(), &[], 0);
    open_at(&mut s, MS, 3, 1, b"/srv/listen");
    s.on_fork(T, 8, 2 * MS);
    // The child leaks a file of its own, then exits with both.
    let own = Syscall {
        tid: 8,
        tgid: 8,
        ts_ns: 3 * MS,
        nr: libc::SYS_openat as u32,
        ret: 4,
        args: [0; 6],
        data_kind: data_kind::PATH,
        data: b"/tmp/own",
        weight: 1,
    };
    s.on_syscall(&own, StackId(2));
    s.on_exit(8, 4 * MS);
    let r = build(&s, 5 * MS, Losses::default(), &ReportOptions::default(), frames);
    let child: Vec<(u32, StackId)> = r
        .outstanding
        .iter()
        .filter(|o| o.pid == 8)
        .map(|o| (o.count, o.stack.id))
        .collect();
    assert_eq!(child, vec![(1, StackId(2))], "only the fd the child opened itself");
    assert!(r.outstanding.iter().any(|o| o.pid == T && o.stack.id == StackId(1)));
    let summary = r.processes.iter().find(|p| p.pid == 8).map(|p| p.open_fds);
    assert_eq!(summary, Some(2), "the summary still counts what was open at exit");
}

#[test]
fn sampled_stacks_stand_for_the_allocations_the_budget_skipped() {
    let mut s = State::default();
    s.attach(T, b"svc".to_vec(), Limits::default(), &[], 0);
    // Ten leaked fds every 100 ms for 3 s; one stack in five is taken, weighing 5.
    let mut fd = 100;
    for tick in 1..=30u64 {
        let now = tick * 100 * MS;
        for i in 0..10 {
            let sampled = i % 5 == 0;
            let (stack, weight) = if sampled { (1, 5) } else { (0, 0) };
            open_weighted(&mut s, now, fd, stack, b"/etc/hostname", weight);
            fd += 1;
        }
        s.sample(now);
    }
    let r = build(&s, 3000 * MS, Losses::default(), &ReportOptions::default(), frames);
    assert_eq!(r.processes[0].open_fds, 300, "the process's count stays exact");
    assert_eq!(r.suspects.len(), 1, "{:#?}", r.suspects);
    let leak = &r.suspects[0];
    assert_eq!((leak.count, leak.estimated, leak.allocations), (60, Some(300), 300));
    assert!((leak.growth_per_min - 6000.0).abs() < 10.0, "{}", leak.growth_per_min);
    // The skipped allocations are not a site of their own: the sampled one stands for them.
    assert_eq!(r.outstanding.len(), 1, "{:#?}", r.outstanding);
    let p = crate::analysis::profile::build(&s, crate::model::profile::ProfileKind::Fds);
    let values: Vec<i64> = p.samples.iter().map(|x| x.value).collect();
    assert_eq!(values, vec![300], "the profile's value is the estimate");
}

/// A leak (stack 1) rises for 2 s until open fails with EMFILE, then stays flat for 3 s; a
/// pool (stack 3) fills in the same 2 s below the limit and stays flat, with no failure.
fn limit_scenario(fail: bool) -> State {
    let mut s = State::default();
    s.attach(
        T,
        b"svc".to_vec(),
        Limits {
            nofile_soft: Some(64),
            nofile_hard: Some(4096),
        },
        &[],
        0,
    );
    let stack = if fail { 1 } else { 3 };
    let n = if fail { 61 } else { 40 };
    for i in 0..n {
        let ts = (i as u64 + 1) * 33 * MS;
        open_at(&mut s, ts, 3 + i, stack, b"/dev/null");
        s.sample(ts);
    }
    if fail {
        let sc = Syscall {
            tid: 1,
            tgid: T,
            ts_ns: 2100 * MS,
            nr: libc::SYS_openat as u32,
            ret: -24,
            args: [0; 6],
            data_kind: data_kind::PATH,
            data: b"/dev/null",
            weight: 1,
        };
        s.on_syscall(&sc, StackId(1));
    }
    for tick in 22..=50u64 {
        s.sample(tick * 100 * MS);
    }
    s
}

#[test]
fn growth_stopped_by_emfile_is_a_suspect_and_a_pool_is_not() {
    let s = limit_scenario(true);
    let r = build(&s, 5000 * MS, Losses::default(), &ReportOptions::default(), frames);
    assert_eq!(r.suspects.len(), 1, "{:#?}", r.suspects);
    let leak = &r.suspects[0];
    assert_eq!((leak.count, leak.stopped_by_limit), (61, Some("EMFILE")));
    assert!(
        leak.growth_per_min > 1000.0,
        "the rate before the limit: {}",
        leak.growth_per_min
    );
    assert!(
        leak.time_to_limit_s.is_some_and(|t| t < 1.0),
        "at the limit: {:?}",
        leak.time_to_limit_s
    );
    // The EMFILE problem names what filled the table: the leak, with all 61 fds.
    let emfile = r
        .incidents
        .iter()
        .find(|i| i.errno == Some("EMFILE"))
        .unwrap_or_else(|| panic!("{:#?}", r.incidents));
    let top = emfile.top_site.as_ref().unwrap_or_else(|| panic!("{emfile:#?}"));
    assert_eq!((top.count, top.share, top.kind), (61, 1.0, "file"));
    assert_eq!(top.stack[0].function.as_deref(), Some("f1"));

    let twin = limit_scenario(false);
    let r = build(&twin, 5000 * MS, Losses::default(), &ReportOptions::default(), frames);
    assert!(r.suspects.is_empty(), "{:#?}", r.suspects);
    assert_eq!(r.outstanding.first().map(|o| o.count), Some(40));
}

#[test]
fn a_burst_released_after_the_limit_is_not_a_leak() {
    let mut s = limit_scenario(true);
    // Everything the leak held is closed after the failure.
    for fd in 3..64 {
        let sc = Syscall {
            tid: 1,
            tgid: T,
            ts_ns: 5100 * MS,
            nr: libc::SYS_close as u32,
            ret: 0,
            args: [fd, 0, 0, 0, 0, 0],
            data_kind: 0,
            data: &[],
            weight: 1,
        };
        s.on_syscall(&sc, StackId::NONE);
    }
    s.sample(5200 * MS);
    let r = build(&s, 5200 * MS, Losses::default(), &ReportOptions::default(), frames);
    assert!(r.suspects.is_empty(), "{:#?}", r.suspects);
}

#[test]
fn semaphore_sets_created_until_enospc_are_a_suspect_stopped_by_the_limit() {
    let mut s = State::default();
    s.attach(T, b"svc".to_vec(), Limits::default(), &[], 0);
    let semget = |ts: u64, ret: i64| Syscall {
        tid: 1,
        tgid: T,
        ts_ns: ts,
        nr: libc::SYS_semget as u32,
        ret,
        args: [0, 1, 0o1600, 0, 0, 0],
        data_kind: 0,
        data: &[],
        weight: 1,
    };
    for i in 0..32u64 {
        let ts = (i + 1) * 50 * MS;
        s.on_syscall(&semget(ts, 100 + i as i64), StackId(4));
        s.sample(ts);
    }
    s.on_syscall(&semget(1700 * MS, -28), StackId(4));
    for tick in 18..=60u64 {
        s.sample(tick * 100 * MS);
    }
    let r = build(&s, 6000 * MS, Losses::default(), &ReportOptions::default(), frames);
    let sets = r
        .suspects
        .iter()
        .find(|x| x.resource == Resource::SemSet)
        .unwrap_or_else(|| panic!("{:#?}", r.suspects));
    assert_eq!((sets.count, sets.stopped_by_limit), (32, Some("ENOSPC")));
}

#[test]
fn children_forked_until_eagain_are_a_suspect_and_a_worker_pool_is_not() {
    for leak in [true, false] {
        let mut s = State::default();
        s.attach(T, b"spawner".to_vec(), Limits::default(), &[], 0);
        let n = if leak { 12 } else { 6 };
        for i in 0..n {
            let ts = (i + 1) * 100 * MS;
            s.on_fork(T, 100 + i as u32, ts);
            s.sample(ts);
        }
        if leak {
            let fork = Syscall {
                tid: 1,
                tgid: T,
                ts_ns: 1250 * MS,
                nr: libc::SYS_fork as u32,
                ret: -11,
                args: [0; 6],
                data_kind: 0,
                data: &[],
                weight: 1,
            };
            s.on_syscall(&fork, StackId(9));
        }
        for tick in 13..=40u64 {
            s.sample(tick * 100 * MS);
        }
        let r = build(&s, 4000 * MS, Losses::default(), &ReportOptions::default(), frames);
        let kids: Vec<_> = r
            .suspects
            .iter()
            .filter(|x| x.resource == Resource::ChildProcess)
            .collect();
        if leak {
            assert_eq!(kids.len(), 1, "{:#?}", r.suspects);
            let k = kids[0];
            assert_eq!(
                (k.count, k.stopped_by_limit, k.kind),
                (12, Some("EAGAIN"), "child process")
            );
            assert_eq!(k.stack[0].function.as_deref(), Some("f9"), "the failing fork's stack");
        } else {
            assert!(kids.is_empty(), "{:#?}", r.suspects);
        }
    }
}

fn close_at(s: &mut State, ts: u64, fd: i64) {
    let mut args = [0u64; 6];
    args[0] = fd as u64;
    let sc = Syscall {
        tid: 1,
        tgid: T,
        ts_ns: ts,
        nr: libc::SYS_close as u32,
        ret: 0,
        args,
        data_kind: data_kind::NONE,
        data: &[],
        weight: 1,
    };
    s.on_syscall(&sc, StackId::NONE);
}

/// The scenario's process closes every fd at `teardown_ms` (as CPython's finalization closes
/// every file object) and exits 5 ms later; samples go on after the exit.
fn teardown_scenario(teardown_ms: u64) -> State {
    let mut s = scenario();
    let mut fds: Vec<i64> = vec![3];
    fds.extend(10..18);
    fds.extend(100..130);
    for fd in fds {
        close_at(&mut s, teardown_ms * MS, fd);
    }
    if teardown_ms > 3000 {
        for tick in 31..=teardown_ms / 100 {
            s.sample(tick * 100 * MS);
        }
    }
    s.on_exit(T, (teardown_ms + 5) * MS);
    for tick in 1..=3 {
        s.sample((teardown_ms + tick * 100) * MS);
    }
    s
}

#[test]
fn a_site_emptied_only_by_the_exit_is_a_suspect_with_its_peak() {
    let s = teardown_scenario(3050);
    let r = build(&s, 4000 * MS, Losses::default(), &ReportOptions::default(), frames);
    assert_eq!(r.suspects.len(), 1, "{:#?}", r.suspects);
    let leak = &r.suspects[0];
    assert_eq!((leak.count, leak.released_at_exit), (0, Some(30)));
    assert_eq!(leak.stack.first().and_then(|f| f.function.as_deref()), Some("f1"));
    assert!(leak.growth_per_min > 100.0, "{}", leak.growth_per_min);
    // The pool (filled at once) and the log were emptied by the same teardown: not suspects.
    let json = serde_json::to_value(leak).unwrap_or_default();
    assert_eq!(json["released_at_exit"], 30);
}

#[test]
fn a_site_emptied_long_before_the_exit_is_not_a_suspect() {
    // The same growth, all closed at 3.05 s, the process living on (idle) until 9 s.
    let s = teardown_scenario(9000);
    let mut s2 = scenario();
    let mut fds: Vec<i64> = vec![3];
    fds.extend(10..18);
    fds.extend(100..130);
    for fd in &fds {
        close_at(&mut s2, 3050 * MS, *fd);
    }
    for tick in 31..=90 {
        s2.sample(tick * 100 * MS);
    }
    s2.on_exit(T, 9005 * MS);
    for s in [&s, &s2] {
        let r = build(s, 9500 * MS, Losses::default(), &ReportOptions::default(), frames);
        assert!(r.suspects.is_empty(), "{:#?}", r.suspects);
    }
}

#[test]
fn records_sampled_without_ticks_show_the_trend() {
    // No tick for a whole second (the agent was stopped): the records' own times give the trend.
    let samples = crate::state::tests::open_every_25ms(|_, _| {});
    assert!(super::trend::classify(&samples).growing, "{samples:?}");
}
