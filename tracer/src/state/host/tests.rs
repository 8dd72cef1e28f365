use tracer_common::fd_counts::ProcessFdCount;

use super::*;

const S: u64 = 1_000_000_000;
const TICK: u64 = S / 2;

fn count(tgid: u32, open: u32, soft: u64) -> ProcessFdCount {
    let mut comm = [0u8; 16];
    comm[..4].copy_from_slice(b"proc");
    ProcessFdCount {
        tgid,
        open_fds: open,
        max_fds: 1024,
        flags: 0,
        nofile_soft: soft,
        comm,
    }
}

/// Feeds `ticks` reads; `open(tick)` gives each process's count.
/// A process and its count at each tick.
type Proc = (u32, fn(u64) -> u32);

fn feed(h: &mut HostCounts, from: u64, ticks: u64, procs: &[Proc]) -> Vec<Plan> {
    let mut plans = Vec::new();
    for i in from..from + ticks {
        let now = S + i * TICK;
        let counts: Vec<ProcessFdCount> = procs.iter().map(|(t, f)| count(*t, f(i), 1024)).collect();
        h.update(now, &counts, 0);
        let p = h.plan(now, |_| false);
        plans.push(Plan {
            escalate: p.escalate.clone(),
            release: p.release.clone(),
        });
    }
    plans
}

#[test]
fn a_leak_of_33_fds_a_second_is_escalated_within_three_seconds() {
    let mut h = HostCounts::default();
    // 33 fds/s at 0.5 s ticks: +16 or +17 a tick.
    let plans = feed(&mut h, 0, 12, &[(10, |i| 5 + (i as u32 * 33) / 2), (11, |_| 40)]);
    let first = plans.iter().position(|p| !p.escalate.is_empty()).expect("escalated");
    assert_eq!(plans[first].escalate, vec![(10, EscalationReason::Rising)]);
    assert!(first as u64 * TICK <= 3 * S, "after {} ticks", first);
    assert_eq!(h.counters.escalations[EscalationReason::Rising.index()], 1);
    let c = h.process(10).expect("counted");
    let ttl = c.time_to_limit_s().expect("rising: a time to the limit");
    // (1024 - open) / 33 s, within the least-squares error.
    let expected = (1024.0 - f64::from(c.open)) / 33.0;
    assert!((ttl - expected).abs() < 2.0, "{ttl} vs {expected}");
    assert!(h.process(11).expect("flat").time_to_limit_s().is_none());
}

#[test]
fn servers_that_come_and_go_and_pools_that_fill_are_not_escalated() {
    let mut h = HostCounts::default();
    let plans = feed(
        &mut h,
        0,
        60,
        &[
            // Connections up and down (a server under load).
            (20, |i| 50 + ((i * 7) % 13) as u32),
            // A pool filling in one burst, then flat.
            (21, |i| if i < 3 { 5 } else { 200 }),
            // A pool filling slowly and stopping: three small steps.
            (22, |i| 10 + i.min(3) as u32),
        ],
    );
    assert!(plans.iter().all(|p| p.escalate.is_empty()), "{plans:?}");
}

#[test]
fn near_the_limit_is_escalated_even_when_flat_and_the_nearest_goes_first() {
    let mut h = HostCounts::with_budget(Budget {
        max_processes: 1,
        max_records_per_s: 1_000,
    });
    let now = S;
    h.update(now, &[count(30, 900, 1024), count(31, 1000, 1024)], 0);
    let plan = h.plan(now, |_| false);
    assert_eq!(plan.escalate.len(), 1, "the budget allows one");
    assert_eq!(h.counters.refused, 1, "the other is refused, counted");
    // Refusals are counted once per episode, not every tick.
    h.update(now + TICK, &[count(30, 900, 1024), count(31, 1000, 1024)], 0);
    let _ = h.plan(now + TICK, |_| false);
    assert_eq!(h.counters.refused, 1);
    // Processes traced for another reason are never escalated here.
    let mut h2 = HostCounts::default();
    h2.update(now, &[count(32, 1000, 1024)], 0);
    assert!(h2.plan(now, |t| t == 32).escalate.is_empty());
}

#[test]
fn releases_quiet_named_over_budget_and_exited() {
    let mut h = HostCounts::default();
    let _ = feed(&mut h, 0, 8, &[(40, |i| 10 + 10 * i as u32)]);
    assert!(h.process(40).and_then(|c| c.escalation).is_some());
    // It stops rising: released as quiet after QUIET_NS, and cooled down.
    let plans = feed(&mut h, 8, 70, &[(40, |_| 80)]);
    let released = plans.iter().flat_map(|p| p.release.clone()).collect::<Vec<_>>();
    assert_eq!(released, vec![(40, ReleaseReason::Quiet)]);
    assert_eq!(h.counters.releases[ReleaseReason::Quiet.index()], 1);
    assert_eq!(h.released.back().map(|r| r.tgid), Some(40));

    // Named: released once its evidence was kept for EVIDENCE_NS.
    let mut h = HostCounts::default();
    let _ = feed(&mut h, 0, 8, &[(41, |i| 10 + 10 * i as u32)]);
    let t = S + 8 * TICK;
    if let Some(e) = h.process_mut(41).and_then(|c| c.escalation.as_mut()) {
        e.named_ns = Some(t);
    }
    let plans = feed(&mut h, 8, 2 * EVIDENCE_NS / TICK + 2, &[(41, |i| 10 + 10 * i as u32)]);
    let released: Vec<_> = plans.iter().flat_map(|p| p.release.clone()).collect();
    assert_eq!(
        released,
        vec![(41, ReleaseReason::Named)],
        "released once, then cooling down"
    );

    // Over the records budget: the noisiest goes.
    let mut h = HostCounts::with_budget(Budget {
        max_processes: 8,
        max_records_per_s: 100,
    });
    let _ = feed(
        &mut h,
        0,
        8,
        &[(42, |i| 10 + 10 * i as u32), (43, |i| 10 + 10 * i as u32)],
    );
    let now = S + 8 * TICK;
    h.note_records(42, 10, now, TICK);
    h.note_records(43, 1_000, now, TICK);
    h.update(now, &[count(42, 200, 1024), count(43, 200, 1024)], 0);
    let plan = h.plan(now, |_| false);
    assert_eq!(plan.release, vec![(43, ReleaseReason::Budget)]);

    // Gone from the counts for a few reads: exited.
    let mut h = HostCounts::default();
    let _ = feed(&mut h, 0, 8, &[(44, |i| 10 + 10 * i as u32)]);
    let plans = feed(&mut h, 8, 4, &[]);
    let released: Vec<_> = plans.iter().flat_map(|p| p.release.clone()).collect();
    assert_eq!(released, vec![(44, ReleaseReason::Exited)]);
    assert!(h.process(44).is_none());
}

#[test]
fn an_exec_or_reused_pid_starts_a_new_history() {
    let mut h = HostCounts::default();
    let _ = feed(&mut h, 0, 3, &[(50, |i| 10 + 10 * i as u32)]);
    let mut other = count(50, 100, 1024);
    other.comm[..4].copy_from_slice(b"next");
    h.update(S + 10 * TICK, &[other], 0);
    assert_eq!(h.process(50).map(|c| c.recent().len()), Some(1));
    // The agent itself is never counted.
    h.update(S + 11 * TICK, &[count(7, 1, 1024)], 7);
    assert!(h.process(7).is_none());
}

#[test]
fn asking_escalates_at_once_outside_the_budget() {
    let mut h = HostCounts::with_budget(Budget {
        max_processes: 1,
        max_records_per_s: 1_000,
    });
    h.update(S, &[count(60, 10, 1024), count(61, 1000, 1024)], 0);
    assert_eq!(h.ask(60, S), Ok(true));
    assert_eq!(h.ask(60, S), Ok(false), "once");
    assert_eq!(h.ask(99, S), Err(NotCounted(99)));
    // The budget's one process is still free for the near-limit one.
    assert_eq!(h.plan(S, |_| false).escalate, vec![(61, EscalationReason::NearLimit)]);
    assert_eq!(h.counters.escalations, [0, 1, 0, 1, 0]);
    // Asked and never named: released as quiet like any other.
    let _ = feed(&mut h, 1, 2 * QUIET_NS / TICK, &[(60, |_| 10), (61, |_| 1000)]);
    assert_eq!(h.counters.releases[ReleaseReason::Quiet.index()], 1);
}

#[test]
fn a_leak_under_churn_is_seen_by_its_floor() {
    let mut h = HostCounts::default();
    // 1 fd a second under churn (+0..5 on top): never 4 steps up in a row, but the floor rises.
    let plans = feed(&mut h, 0, 40, &[(70, |i| 20 + (i / 2) as u32 + ((i * 7) % 5) as u32)]);
    let first = plans.iter().position(|p| !p.escalate.is_empty()).expect("escalated");
    assert_eq!(plans[first].escalate, vec![(70, EscalationReason::Rising)]);
    assert!(first <= 20, "after {first} ticks");
}

#[test]
fn a_leak_of_one_fd_a_minute_is_seen_over_minutes() {
    let mut h = HostCounts::with_budget(Budget::default());
    // 30 minutes at 0.5 s ticks; 1 fd a minute under churn of 0..3.
    let plans = feed(
        &mut h,
        0,
        3600,
        &[(80, |i| 50 + (i / 120) as u32 + ((i * 5) % 4) as u32)],
    );
    let first = plans.iter().position(|p| !p.escalate.is_empty()).expect("escalated");
    assert_eq!(plans[first].escalate, vec![(80, EscalationReason::SlowRise)]);
    let minutes = first as f64 * 0.5 / 60.0;
    assert!(minutes <= 10.0, "after {minutes} minutes");
    // Rising once a minute: not released as quiet while it keeps leaking.
    let quiet: Vec<_> = plans[first..]
        .iter()
        .flat_map(|p| p.release.clone())
        .filter(|(_, r)| *r == ReleaseReason::Quiet)
        .collect();
    assert!(quiet.is_empty(), "{quiet:?}");
    // A flat process with the same churn is never escalated.
    let mut flat = HostCounts::with_budget(Budget::default());
    let plans = feed(&mut flat, 0, 3600, &[(81, |i| 50 + ((i * 5) % 4) as u32)]);
    assert!(plans.iter().all(|p| p.escalate.is_empty()));
}
