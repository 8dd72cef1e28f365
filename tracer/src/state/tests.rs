//! State machine tests: every transition without a kernel.

use super::{syscall::Syscall, *};
use tracer_common::fd::data_kind;

const T: u32 = 100;

fn sc(nr: u32, ret: i64, args: [u64; 6]) -> Syscall<'static> {
    Syscall {
        tgid: T,
        tid: T,
        ts_ns: 10,
        nr,
        ret,
        args,
        data_kind: data_kind::NONE,
        data: &[],
        weight: 1,
    }
}

fn state() -> State {
    let mut s = State::default();
    s.attach(T, b"proc".to_vec(), Limits::default(), &[], 1);
    s
}

fn fds(s: &State) -> Vec<i32> {
    s.process(T).map(|p| p.fds.numbers()).unwrap_or_default()
}

fn kind(s: &State, fd: i32) -> Option<FdKind> {
    s.process(T).and_then(|p| p.fds.get(fd)).map(|o| o.kind)
}

fn outstanding(s: &State) -> u32 {
    s.sites.iter().map(|(_, st)| st.outstanding).sum()
}

#[test]
fn attach_records_existing_fds_before_attach() {
    let mut s = State::default();
    let existing = vec![
        ProcFd {
            fd: 0,
            kind: FdKind::CharDevice,
            target: b"/dev/null".to_vec(),
        },
        ProcFd {
            fd: 7,
            kind: FdKind::Socket,
            target: b"socket:[1]".to_vec(),
        },
    ];
    s.attach(T, b"x".to_vec(), Limits::default(), &existing, 5);
    assert_eq!(fds(&s), vec![0, 7]);
    let o = s.process(T).and_then(|p| p.fds.get(7)).copied();
    assert_eq!(o.map(|o| o.origin), Some(Origin::BeforeAttach));
    let site = o
        .and_then(|o| s.sites.get(o.site))
        .map(|st| (st.key.before_attach, st.key.stack));
    assert_eq!(site, Some((true, StackId::NONE)));
}

#[test]
fn open_then_close() {
    let mut s = state();
    let path = b"/etc/passwd";
    let open = Syscall {
        data_kind: data_kind::PATH,
        data: path,
        weight: 1,
        ..sc(libc::SYS_openat as u32, 3, [0; 6])
    };
    s.on_syscall(&open, StackId(1));
    assert_eq!(fds(&s), vec![3]);
    assert_eq!(kind(&s, 3), Some(FdKind::File));
    let site = s.process(T).and_then(|p| p.fds.get(3)).map(|o| o.site);
    let ex = site.and_then(|id| s.sites.get(id)).and_then(|st| st.example.clone());
    assert_eq!(ex.as_deref(), Some(&path[..]));
    s.on_syscall(&sc(libc::SYS_close as u32, 0, [3, 0, 0, 0, 0, 0]), StackId::NONE);
    assert!(fds(&s).is_empty());
    assert_eq!(outstanding(&s), 0);
}

#[test]
fn open_directory_flag_gives_directory() {
    let mut s = state();
    s.on_syscall(&sc(libc::SYS_openat as u32, 4, [0, 0, 0o200000, 0, 0, 0]), StackId(1));
    s.on_syscall(&sc(libc::SYS_open as u32, 5, [0, 0o200000, 0, 0, 0, 0]), StackId(1));
    assert_eq!(kind(&s, 4), Some(FdKind::Directory));
    assert_eq!(kind(&s, 5), Some(FdKind::Directory));
}

#[test]
fn failed_calls_change_nothing_but_counters() {
    let mut s = state();
    s.on_syscall(&sc(libc::SYS_openat as u32, -24, [0; 6]), StackId(1));
    s.on_syscall(&sc(libc::SYS_close as u32, -9, [42, 0, 0, 0, 0, 0]), StackId::NONE);
    let p = s.process(T).map(|p| (p.limit_failures, p.bad_closes, p.fds.len()));
    assert_eq!(p, Some((1, 1, 0)));
}

#[test]
fn close_with_eintr_still_releases() {
    let mut s = state();
    s.on_syscall(&sc(libc::SYS_socket as u32, 3, [2, 1, 0, 0, 0, 0]), StackId(1));
    s.on_syscall(&sc(libc::SYS_close as u32, -4, [3, 0, 0, 0, 0, 0]), StackId::NONE);
    assert!(fds(&s).is_empty());
}

#[test]
fn dup2_over_an_open_fd_replaces_it() {
    let mut s = state();
    s.on_syscall(&sc(libc::SYS_socket as u32, 3, [10, 1, 0, 0, 0, 0]), StackId(1)); // socket AF_INET6
    s.on_syscall(&sc(libc::SYS_eventfd as u32, 4, [0; 6]), StackId(2)); // eventfd
    s.on_syscall(&sc(libc::SYS_dup2 as u32, 4, [3, 4, 0, 0, 0, 0]), StackId(3)); // dup2(3, 4)
    assert_eq!(fds(&s), vec![3, 4]);
    assert_eq!(kind(&s, 4), Some(FdKind::Socket));
    let fam = s.process(T).and_then(|p| p.fds.get(4)).map(|o| o.family);
    assert_eq!(fam, Some(10));
    assert_eq!(outstanding(&s), 2, "the eventfd's site no longer counts it");
}

#[test]
fn dup2_onto_itself_changes_nothing() {
    let mut s = state();
    s.on_syscall(&sc(libc::SYS_eventfd as u32, 3, [0; 6]), StackId(1));
    let before = s.process(T).and_then(|p| p.fds.get(3)).copied();
    s.on_syscall(&sc(libc::SYS_dup2 as u32, 3, [3, 3, 0, 0, 0, 0]), StackId(9));
    assert_eq!(s.process(T).and_then(|p| p.fds.get(3)).copied(), before);
}

#[test]
fn dup_and_fcntl_dupfd_copy_the_kind() {
    let mut s = state();
    s.on_syscall(&sc(libc::SYS_pipe2 as u32, 0, [0; 6]).with_pair(3, 4), StackId(1));
    s.on_syscall(&sc(libc::SYS_dup as u32, 5, [3, 0, 0, 0, 0, 0]), StackId(2));
    s.on_syscall(&sc(libc::SYS_fcntl as u32, 10, [4, 1030, 10, 0, 0, 0]), StackId(3));
    assert_eq!(fds(&s), vec![3, 4, 5, 10]);
    assert_eq!(kind(&s, 5), Some(FdKind::Pipe));
    assert_eq!(kind(&s, 10), Some(FdKind::Pipe));
    s.on_syscall(&sc(libc::SYS_dup as u32, 11, [99, 0, 0, 0, 0, 0]), StackId(2));
    assert_eq!(kind(&s, 11), Some(FdKind::Unknown), "source never seen");
}

#[test]
fn socketpair_and_accept_carry_the_family() {
    let mut s = state();
    s.on_syscall(
        &sc(libc::SYS_socketpair as u32, 0, [1, 1, 0, 0, 0, 0]).with_pair(3, 4),
        StackId(1),
    );
    assert_eq!(
        s.process(T).and_then(|p| p.fds.get(4)).map(|o| (o.kind, o.family)),
        Some((FdKind::Socket, 1))
    );
    s.on_syscall(&sc(libc::SYS_socket as u32, 5, [10, 1, 0, 0, 0, 0]), StackId(2));
    s.on_syscall(&sc(libc::SYS_accept4 as u32, 6, [5, 0, 0, 0, 0, 0]), StackId(3));
    assert_eq!(s.process(T).and_then(|p| p.fds.get(6)).map(|o| o.family), Some(10));
}

#[test]
fn signalfd_on_an_existing_fd_is_not_an_allocation() {
    let mut s = state();
    s.on_syscall(
        &sc(libc::SYS_signalfd4 as u32, 3, [u64::MAX, 0, 8, 0, 0, 0]),
        StackId(1),
    );
    s.on_syscall(&sc(libc::SYS_signalfd4 as u32, 3, [3, 0, 8, 0, 0, 0]), StackId(2));
    assert_eq!(fds(&s), vec![3]);
    let allocations: u64 = s.sites.iter().map(|(_, st)| st.allocations).sum();
    assert_eq!(allocations, 1);
}

#[test]
fn close_range_closes_a_range_but_not_with_cloexec() {
    let mut s = state();
    for fd in [3, 4, 6, 9, 12] {
        s.on_syscall(&sc(libc::SYS_eventfd as u32, fd, [0; 6]), StackId(1));
    }
    s.on_syscall(
        &sc(libc::SYS_close_range as u32, 0, [4, 9, 1 << 2, 0, 0, 0]),
        StackId::NONE,
    );
    assert_eq!(fds(&s), vec![3, 4, 6, 9, 12]);
    s.on_syscall(&sc(libc::SYS_close_range as u32, 0, [4, 9, 0, 0, 0, 0]), StackId::NONE);
    assert_eq!(fds(&s), vec![3, 12]);
    s.on_syscall(
        &sc(libc::SYS_close_range as u32, 0, [3, u32::MAX as u64, 0, 0, 0, 0]),
        StackId::NONE,
    );
    assert!(fds(&s).is_empty());
    assert_eq!(outstanding(&s), 0);
}

#[test]
fn scm_rights_receipt_adds_unknown_fds() {
    let mut s = state();
    let mut control = Vec::new();
    control.extend_from_slice(&24u64.to_ne_bytes());
    control.extend_from_slice(&1i32.to_ne_bytes());
    control.extend_from_slice(&1i32.to_ne_bytes());
    control.extend_from_slice(&7i32.to_ne_bytes());
    control.extend_from_slice(&8i32.to_ne_bytes());
    let rx = Syscall {
        data_kind: data_kind::CONTROL,
        data: &control,
        weight: 1,
        ..sc(libc::SYS_recvmsg as u32, 10, [3, 0, 0, 0, 0, 0])
    };
    s.on_syscall(&rx, StackId(4));
    assert_eq!(fds(&s), vec![7, 8]);
    let o = s.process(T).and_then(|p| p.fds.get(7)).copied();
    assert_eq!(o.map(|o| (o.kind, o.origin)), Some((FdKind::Unknown, Origin::Received)));
    s.describe(T, 7, FdKind::Pipe, None, b"pipe:[5]");
    assert_eq!(kind(&s, 7), Some(FdKind::Pipe));
    let per_kind: Vec<(FdKind, u32, u64)> = s
        .sites
        .iter()
        .filter(|(_, st)| st.outstanding > 0)
        .map(|(_, st)| (st.key.kind, st.outstanding, st.allocations))
        .collect();
    assert!(
        per_kind.contains(&(FdKind::Pipe, 1, 1)) && per_kind.contains(&(FdKind::Unknown, 1, 1)),
        "{per_kind:?}"
    );
}

#[test]
fn describe_does_not_turn_a_socket_into_a_file() {
    let mut s = state();
    s.on_syscall(&sc(libc::SYS_socket as u32, 3, [2, 1, 0, 0, 0, 0]), StackId(1));
    s.describe(T, 3, FdKind::File, None, b"/x");
    assert_eq!(kind(&s, 3), Some(FdKind::Socket));
    s.on_syscall(&sc(libc::SYS_openat as u32, 4, [0; 6]), StackId(1));
    s.describe(T, 4, FdKind::CharDevice, None, b"/dev/null");
    s.describe(T, 3, FdKind::Socket, Some(1), b"unix /x");
    let fam = s.process(T).and_then(|p| p.fds.get(3)).map(|o| o.family);
    assert_eq!(fam, Some(2), "the family from socket() wins");
    assert_eq!(kind(&s, 4), Some(FdKind::CharDevice));
}

#[test]
fn a_reused_number_replaces_a_stale_entry() {
    let mut s = state();
    s.on_syscall(&sc(libc::SYS_openat as u32, 3, [0; 6]), StackId(1));
    s.on_syscall(&sc(libc::SYS_socket as u32, 3, [2, 1, 0, 0, 0, 0]), StackId(2));
    assert_eq!(kind(&s, 3), Some(FdKind::Socket));
    assert_eq!(s.process(T).map(|p| p.stale_replaced), Some(1));
    assert_eq!(outstanding(&s), 1);
}

#[test]
fn fork_copies_the_table_and_tables_then_diverge() {
    let mut s = state();
    s.on_syscall(&sc(libc::SYS_openat as u32, 3, [0; 6]), StackId(1));
    s.on_fork(T, 200, 20);
    let child: Vec<i32> = s.process(200).map(|p| p.fds.numbers()).unwrap_or_default();
    assert_eq!(child, vec![3]);
    assert_eq!(
        s.process(200).and_then(|p| p.fds.get(3)).map(|o| o.origin),
        Some(Origin::Inherited)
    );
    s.on_syscall(
        &Syscall {
            tgid: 200,
            ..sc(libc::SYS_close as u32, 0, [3, 0, 0, 0, 0, 0])
        },
        StackId::NONE,
    );
    assert_eq!(fds(&s), vec![3], "the parent keeps its copy");
    assert!(s.process(200).is_some_and(|p| p.fds.is_empty()));
    s.on_fork(999, 300, 20);
    assert!(s.process(300).is_none(), "untracked parent");
}

#[test]
fn exec_keeps_only_what_proc_still_shows() {
    let mut s = state();
    for fd in [3, 4, 5] {
        s.on_syscall(&sc(libc::SYS_eventfd as u32, fd, [0; 6]), StackId(1));
    }
    s.on_exec(T, b"new", Some(&[0, 1, 2, 4]));
    assert_eq!(fds(&s), vec![4]);
    assert_eq!(s.process(T).map(|p| p.comm.clone()), Some(b"new".to_vec()));
    assert_eq!(outstanding(&s), 1);
    s.on_exec(T, b"", None);
    assert_eq!(fds(&s), vec![4], "process gone: its exit will follow");
}

#[test]
fn exit_keeps_the_table_as_open_at_exit_and_ignores_later_records() {
    let mut s = state();
    s.on_syscall(&sc(libc::SYS_openat as u32, 3, [0; 6]), StackId(1));
    s.on_exit(T, 50);
    assert_eq!(fds(&s), vec![3]);
    assert_eq!(s.process(T).and_then(|p| p.exited_ns), Some(50));
    s.on_syscall(&sc(libc::SYS_close as u32, 0, [3, 0, 0, 0, 0, 0]), StackId::NONE);
    assert_eq!(fds(&s), vec![3]);
    let sampled = s.sites.iter().any(|(_, st)| st.samples.last() == Some((50, 1)));
    assert!(sampled, "exit takes a final sample");
}

#[test]
fn pid_reuse_starts_clean() {
    let mut s = state();
    s.on_syscall(&sc(libc::SYS_openat as u32, 3, [0; 6]), StackId(1));
    s.on_exit(T, 50);
    s.attach(T, b"again".to_vec(), Limits::default(), &[], 60);
    assert!(fds(&s).is_empty());
    assert_eq!(outstanding(&s), 0);
}

trait WithPair {
    fn with_pair(self, a: i32, b: i32) -> Self;
}

impl WithPair for Syscall<'static> {
    fn with_pair(self, a: i32, b: i32) -> Self {
        let mut v = Vec::with_capacity(8);
        v.extend_from_slice(&a.to_ne_bytes());
        v.extend_from_slice(&b.to_ne_bytes());
        Syscall {
            data_kind: data_kind::FD_PAIR,
            data: Vec::leak(v),
            weight: 1,
            ..self
        }
    }
}

#[test]
fn a_path_refined_by_proc_stays_in_its_site() {
    let mut s = state();
    s.on_syscall(&sc(libc::SYS_openat as u32, 3, [0; 6]), StackId(1));
    s.sample(20);
    let before = s.process(T).and_then(|p| p.fds.get(3)).map(|o| o.site);
    s.describe(T, 3, FdKind::CharDevice, None, b"/dev/null");
    let o = s.process(T).and_then(|p| p.fds.get(3)).copied();
    assert_eq!(o.map(|o| o.site), before, "the trend of the site must not be split");
    assert_eq!(o.map(|o| o.kind), Some(FdKind::CharDevice), "the fd knows what it is");
    let site = before
        .and_then(|id| s.sites.get(id))
        .map(|st| (st.display_kind, st.outstanding, st.allocations));
    assert_eq!(site, Some((Some(FdKind::CharDevice), 1, 1)));
}

/// Opens one fd every 25 ms of record time, 40 times; `tick` runs before each (or not).
pub(crate) fn open_every_25ms(tick: impl Fn(&mut State, u64)) -> Vec<(u64, u32)> {
    let mut s = state();
    for i in 0..40u64 {
        let ts = 1 + i * 25_000_000;
        tick(&mut s, ts - 1);
        let mut open = sc(libc::SYS_openat as u32, 3 + i as i64, [0; 6]);
        open.ts_ns = ts;
        s.on_syscall(&open, StackId(1));
    }
    s.sites
        .iter()
        .find(|(_, st)| st.key.stack == StackId(1))
        .map(|(_, st)| st.samples.points())
        .unwrap_or_default()
}

#[test]
fn records_sample_their_process_when_the_agent_does_not() {
    // No tick for a whole second (the agent was stopped): the records' own times give the trend.
    let samples = open_every_25ms(|_, _| {});
    assert!(samples.len() >= 4, "{samples:?}");
    assert!(
        samples.windows(2).all(|w| w[0].0 < w[1].0 && w[0].1 < w[1].1),
        "{samples:?}"
    );
    // With ticks, records add nothing: the ticks sample.
    let ticked = open_every_25ms(|s, now| s.sample(now));
    assert!(
        ticked.len() >= 30 && ticked.iter().all(|x| x.0 % 25_000_000 == 0),
        "{ticked:?}"
    );
}

#[test]
fn a_traced_wait_reaps_at_once_and_the_later_release_is_not_counted_again() {
    let mut s = State::default();
    s.attach(10, b"parent".to_vec(), Limits::default(), &[], 0);
    for child in [11, 12] {
        s.on_fork(10, child, 1);
        s.on_exit(child, 5);
    }
    assert_eq!(s.processes[&10].zombies.pending.len(), 2);
    let wait = |ret: i64, ts: u64| Syscall {
        tgid: 10,
        tid: 10,
        ts_ns: ts,
        nr: libc::SYS_wait4 as u32,
        ret,
        args: [u64::MAX, 0, 1, 0, 0, 0],
        data_kind: 0,
        data: &[],
        weight: 1,
    };
    s.on_syscall(&wait(11, 7), StackId::NONE);
    // A pid from another pid namespace is not one of its zombies: ignored.
    s.on_syscall(&wait(4, 8), StackId::NONE);
    let z = &s.processes[&10].zombies;
    assert_eq!((z.pending.len(), z.reaped, z.reap_delay_ns), (1, 1, 2));
    // The kernel frees both later (RCU): 11 is not reaped twice, 12 is reaped then.
    s.on_reap(11, 100);
    s.on_reap(12, 100);
    let z = &s.processes[&10].zombies;
    assert_eq!((z.pending.len(), z.reaped, z.reap_delay_ns), (0, 2, 2 + 95));
}

#[test]
fn exit_records_are_owed_for_an_exited_parents_zombies_and_an_exited_holders_locks() {
    use tracer_common::lock::{family, lock_type};
    let mut s = State::default();
    s.attach(10, b"parent".to_vec(), Limits::default(), &[], 0);
    assert!(!s.exit_records_owed());
    s.on_fork(10, 11, 1);
    s.on_exit(11, 2);
    // A living parent may reap its zombie any time, or never: nothing is owed for it.
    assert!(!s.exit_records_owed());
    s.on_exit(10, 3);
    // The parent is gone: its new parent reaps the zombie, and the kernel says so later.
    assert!(s.exit_records_owed());
    s.on_reap(11, 4);
    assert!(!s.exit_records_owed());
    // A lock taken by a process that then exited: its release is owed.
    s.attach(20, b"holder".to_vec(), Limits::default(), &[], 5);
    let lock = |ty: u8, ts: u64| locks::LockEvent {
        tgid: 20,
        tid: 20,
        ts_ns: ts,
        family: family::FLOCK,
        file: locks::FileId { dev: 8, ino: 1 },
        owner: 0xa,
        lock_type: ty,
        start: 0,
        end: i64::MAX,
        ret: 0,
    };
    s.on_lock(&lock(lock_type::WRITE, 6));
    assert!(!s.exit_records_owed(), "held by a living process");
    s.on_exit(20, 7);
    assert!(s.exit_records_owed());
    s.on_lock(&lock(lock_type::UNLOCK, 8));
    assert!(!s.exit_records_owed());
}
