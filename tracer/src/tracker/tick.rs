//! The tracker's periodic work: resyncs after losses, liveness, site samples, SysV
//! reconciliation, libraries of processes that just exec'd, `/proc` descriptions of long-lived
//! fds, expiry of exited processes, and the sweep of unreferenced stacks.

use tracer_common::syscalls::IpcKind;

use super::{DESCRIBE_BUDGET, DESCRIBE_MIN_AGE_NS, STACK_SWEEP_NS, Tracker};
use crate::{
    procfs::{clock, process as proc, sysv},
    state::State,
};

impl Tracker {
    /// Reconciles SysV objects with /proc/sysvipc (removed by untraced processes, e.g. ipcrm).
    pub fn sync_ipc(&mut self) {
        for kind in [IpcKind::Sem, IpcKind::Shm, IpcKind::Msg] {
            if self.state.ipc.objects.keys().any(|(k, _)| *k == kind) {
                let listed = sysv::listing(kind);
                let State { ipc, sites, .. } = &mut self.state;
                ipc.sync(kind, &listed, sites);
            }
        }
    }

    /// Periodic work: sample site counts, describe long-lived fds from /proc.
    pub fn tick(&mut self) {
        let started = std::time::Instant::now();
        self.tick_untimed();
        self.stages.add_tick(started.elapsed().as_nanos() as u64);
    }

    fn tick_untimed(&mut self) {
        self.resync_lossy();
        /// Ticks between liveness checks (a stat per traced process).
        const LIVENESS_TICKS: u32 = 10;
        self.ticks_since_liveness += 1;
        if self.ticks_since_liveness >= LIVENESS_TICKS {
            self.ticks_since_liveness = 0;
            self.infer_exits();
        }
        let now = clock::monotonic_ns();
        self.state.sample(now);
        self.sync_ipc();
        /// Unchanged reads after which a process's libraries are taken as loaded.
        const SETTLED: u8 = 5;
        let pending: Vec<u32> = self.maps_pending.keys().copied().collect();
        for tgid in pending {
            let changed = self.refresh_modules(tgid);
            let alive = self.modules.contains_key(&tgid) && proc::exists(tgid);
            match self.maps_pending.get_mut(&tgid) {
                Some(n) if alive && !changed && *n + 1 >= SETTLED => self.loading_done(tgid),
                Some(n) if alive => *n = if changed { 0 } else { *n + 1 },
                // Gone: what its records said stays until its exit record (records of it may
                // still be queued).
                _ => {
                    self.maps_pending.remove(&tgid);
                }
            }
        }
        self.describe_pending(DESCRIBE_BUDGET, DESCRIBE_MIN_AGE_NS);
        self.state.expire(now);
        if now.saturating_sub(self.last_sweep_ns) >= STACK_SWEEP_NS {
            self.last_sweep_ns = now;
            self.sweep_stacks();
        }
    }

    /// Drops the stacks nothing in the state refers to any more, and frees the kernel's
    /// frame-pointer stack ids no record named since the last sweep (see `fp_ids`). Call it
    /// right after a drain.
    pub fn sweep_stacks(&mut self) {
        let live = self.state.referenced_stacks();
        self.stacks.sweep(&|id| live.contains(&id));
        for id in self.fp.sweep(|id| live.contains(&id), clock::monotonic_ns()) {
            self.probes.forget_fp_stack(id);
        }
    }

    /// Refreshes RLIMIT_NOFILE of live processes (it can change with prlimit).
    pub fn refresh_limits(&mut self) {
        for p in self.state.processes.values_mut().filter(|p| p.is_alive()) {
            p.limits = proc::limits(p.tgid);
        }
    }
}
