//! What the agent keeps per traced process.

use std::collections::HashMap;

use super::{
    fd_table::FdTable,
    incidents::ClosedFd,
    signals::{SignalTable, Zombies},
};

#[derive(Clone, Debug, Default)]
pub struct Limits {
    /// RLIMIT_NOFILE soft and hard limits (None: unlimited or unreadable).
    pub nofile_soft: Option<u64>,
    pub nofile_hard: Option<u64>,
}

#[derive(Clone, Debug, Default)]
pub struct ProcessState {
    pub tgid: u32,
    pub parent: Option<u32>,
    /// Command name (raw bytes of /proc/PID/comm or the exec'd file name).
    pub comm: Vec<u8>,
    pub fds: FdTable,
    pub limits: Limits,
    /// When tracing of this process started (CLOCK_MONOTONIC ns).
    pub since_ns: u64,
    /// Set when its last thread exited; the table then holds what was open at exit.
    pub exited_ns: Option<u64>,
    /// Allocations that failed on a limit (EMFILE/ENFILE, ENOSPC, EAGAIN from fork).
    pub limit_failures: u64,
    /// `close` of an fd that was not open (EBADF).
    pub bad_closes: u64,
    /// An allocation reused a number the agent still thought open (a missed close).
    pub stale_replaced: u64,
    /// The last close of each descriptor number (double close, use after close).
    pub closed: HashMap<i32, ClosedFd, foldhash::fast::RandomState>,
    /// Signals received, by number.
    pub signals: SignalTable,
    /// Children that exited and were not reaped.
    pub zombies: Zombies,
    /// Its traced children alive, over time (see `children`).
    pub children: super::series::Series,
    /// Its parent reaped it with a traced `wait4` (its later release is not a reap again).
    pub reaped: bool,
    /// The SIGCHLD handler it installed last (`rt_sigaction`), if traced.
    pub sigchld_handler: Option<super::signals::SigHandler>,
    /// When its sites were last sampled (CLOCK_MONOTONIC ns, agent tick or record time).
    pub sampled_ns: u64,
    /// When `/proc/PID/fd` was last read into the table (attach, discovery, resync): syscall
    /// records older than this are already reflected in it and are skipped.
    pub seeded_ns: u64,
    /// Times the table was resynchronised from /proc after lost records.
    pub resyncs: u64,
    /// Container id from `/proc/PID/cgroup` (empty outside containers).
    pub container: std::sync::Arc<str>,
    /// The language runtime whose frames its stacks carry (`CPython 3.11.2`), or why they do
    /// not (`CPython 3.10.12: native frames only ...`).
    pub runtime: Option<std::sync::Arc<str>>,
    /// Totals for the Prometheus counters (see `counters`).
    pub counters: super::counters::Counters,
    /// When allocations first and last failed on a limit, per limit (growth stopped by it).
    pub limit_hits: LimitHits,
    /// When the agent stopped tracing it after an escalation (its state kept as evidence).
    pub released_ns: Option<u64>,
}

/// First and last failure on a limit (CLOCK_MONOTONIC ns), with its errno.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LimitHit {
    pub first_ns: u64,
    pub last_ns: u64,
    /// Positive errno of the last failure (EMFILE, ENFILE, ENOSPC, EAGAIN).
    pub errno: i32,
}

impl LimitHit {
    fn note(hit: &mut Option<LimitHit>, ts_ns: u64, errno: i32) {
        match hit {
            Some(h) => {
                h.last_ns = h.last_ns.max(ts_ns);
                h.errno = errno;
            }
            None => {
                *hit = Some(LimitHit {
                    first_ns: ts_ns,
                    last_ns: ts_ns,
                    errno,
                })
            }
        }
    }
}

/// A process's limit failures by what ran out: a site that grew until one of them is a leak
/// whose growth the limit stopped, not a plateau.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LimitHits {
    /// EMFILE or ENFILE: fds.
    pub fds: Option<LimitHit>,
    /// ENOSPC from semget/shmget/msgget: a SysV table.
    pub sysv: Option<LimitHit>,
    /// EAGAIN from fork/clone: processes (RLIMIT_NPROC, pid_max).
    pub forks: Option<LimitHit>,
}

impl LimitHits {
    pub fn note_fds(&mut self, ts_ns: u64, errno: i32) {
        LimitHit::note(&mut self.fds, ts_ns, errno);
    }
    pub fn note_sysv(&mut self, ts_ns: u64, errno: i32) {
        LimitHit::note(&mut self.sysv, ts_ns, errno);
    }
    pub fn note_forks(&mut self, ts_ns: u64, errno: i32) {
        LimitHit::note(&mut self.forks, ts_ns, errno);
    }
}

impl ProcessState {
    pub fn new(tgid: u32, since_ns: u64) -> Self {
        ProcessState {
            tgid,
            since_ns,
            ..Default::default()
        }
    }

    pub fn is_alive(&self) -> bool {
        self.exited_ns.is_none()
    }

    /// Alive and still traced: not released after an escalation (a released process's state is
    /// the evidence as of its release, and its counts come from the fd-count iterator).
    pub fn is_traced(&self) -> bool {
        self.is_alive() && self.released_ns.is_none()
    }

    pub fn group(&self) -> super::counters::GroupKey {
        super::counters::GroupKey {
            comm: self.comm.as_slice().into(),
            container: self.container.clone(),
        }
    }
}
