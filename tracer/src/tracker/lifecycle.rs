//! Following processes: attaching to a running one (seeded from `/proc`), discovering one whose
//! fork was lost, fork, exec and exit, resynchronising tables after lost records, inferring
//! exits whose record was lost, and following a process that starts to match the selection at
//! its exec.

use tracer_common::process::{ExecRecord, ExitRecord, ForkRecord};

use super::{Tracker, TrackerError, dispatch::basename};
use crate::{
    procfs::{clock, locks as proc_locks, process as proc, tasks},
    symbolize::ModuleMap,
};

/// What seeding a process from /proc may expect of it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Seed {
    /// A process that runs (or ran) on its own.
    Running,
    /// A command tracer forked and holds before its exec (`run`).
    HeldBeforeExec,
}

impl Tracker {
    /// Starts tracing a running process: the kernel filter first, then what it already has open,
    /// so nothing opened in between is missed (a record for an fd the scan also saw just replaces it).
    pub fn follow(&mut self, pid: u32) -> Result<(), TrackerError> {
        self.follow_as(pid, Seed::Running)
    }

    /// Starts tracing a command tracer started and holds before its exec (`run`): as
    /// [`Tracker::follow`], without what its exec replaces or what it cannot have yet.
    pub fn follow_held(&mut self, pid: u32) -> Result<(), TrackerError> {
        self.follow_as(pid, Seed::HeldBeforeExec)
    }

    fn follow_as(&mut self, pid: u32, how: Seed) -> Result<(), TrackerError> {
        if !proc::exists(pid) {
            return Err(proc::ProcError::NoSuchProcess(pid).into());
        }
        self.probes.trace(pid)?;
        if let Err(e) = self.seed_as(pid, how) {
            self.probes.untrace(pid);
            return Err(e);
        }
        self.targets.push(pid);
        Ok(())
    }

    /// Starts following a process the kernel already traces (whole-host mode, or a selected
    /// process): its state is seeded from /proc like an attach.
    pub fn adopt(&mut self, pid: u32) -> Result<(), TrackerError> {
        self.seed(pid)
    }

    /// Seeds a process's state from /proc: its fds (no stacks: open before tracing), locks it
    /// holds or waits for, zombies it has, its memory maps. Syscall records older than the scan
    /// are skipped (the scan already shows their effect).
    pub(super) fn seed(&mut self, pid: u32) -> Result<(), TrackerError> {
        self.seed_as(pid, Seed::Running)
    }

    fn seed_as(&mut self, pid: u32, how: Seed) -> Result<(), TrackerError> {
        let now = clock::monotonic_ns();
        let existing = proc::scan_fds(pid)?;
        self.state
            .attach(pid, proc::comm(pid), proc::limits(pid), &existing, now);
        if let Some(p) = self.state.processes.get_mut(&pid) {
            p.container = tasks::container_of(pid).into();
        }
        if how == Seed::HeldBeforeExec {
            // Forked by tracer: it waits for no lock, has no children, and holds locks only
            // through the fds it inherited. /proc/locks costs an RCU grace period to read (the
            // kernel takes `file_rwsem` for writing): only if one of those fds carries a lock.
            // Its exec replaces its layout (the exec record has it read).
            let fds: Vec<i32> = existing.iter().map(|f| f.fd).collect();
            if proc::fds_hold_locks(pid, &fds) {
                self.seed_locks(pid, now);
            }
            return Ok(());
        }
        self.seed_locks(pid, now);
        for child in proc::zombie_children(pid) {
            if let Some(p) = self.state.processes.get_mut(&pid) {
                p.zombies.exited(child, now);
            }
            self.probes.expect_release(child);
        }
        if let Ok(m) = ModuleMap::read(pid as i32) {
            self.modules.insert(pid, m);
            // A running process has its libraries mapped: its records can be batched.
            self.probes.maps_known(pid);
            self.detect_python(pid);
        }
        Ok(())
    }

    /// Locks a process holds or waits for already (and who holds those).
    fn seed_locks(&mut self, pid: u32, now: u64) {
        let known = proc_locks::read();
        self.state.locks.learn(&known, None, Some(pid), now);
        for k in known.iter().filter(|k| k.waiting && k.tgid == pid) {
            self.state.locks.learn(&known, Some(k.file), None, now);
        }
        for k in known.iter().filter(|k| k.tgid == pid) {
            if let Some(path) = proc::path_of_file(pid, k.file.dev, k.file.ino) {
                self.state.locks.set_path(k.file, &path);
            }
        }
    }

    /// A record of a process the agent does not know: the kernel traces it, so its fork was
    /// lost, or it is new to a whole-host agent. Seeded from /proc; if it is gone already, it
    /// starts empty so that its records still count.
    pub(super) fn discover(&mut self, tgid: u32, ts_ns: u64) {
        if tgid == std::process::id() {
            return;
        }
        self.counters.discovered += 1;
        if self.seed(tgid).is_err() {
            self.state.attach(tgid, Vec::new(), Default::default(), &[], 0);
            if let Some(p) = self.state.processes.get_mut(&tgid) {
                p.since_ns = ts_ns;
            }
        }
    }

    /// The kernel lost records of these processes: their tables are read again from /proc.
    pub(super) fn resync_lossy(&mut self) {
        for (tgid, _lost) in self.probes.take_lost_by_process() {
            if !self.state.processes.get(&tgid).is_some_and(|p| p.is_alive()) {
                continue;
            }
            let start = clock::monotonic_ns();
            if let Ok(scan) = proc::scan_fds(tgid) {
                let r = self.state.resync(tgid, &scan, start);
                self.counters.resyncs += 1;
                self.counters.resync_dropped += u64::from(r.dropped);
                self.counters.resync_added += u64::from(r.added);
            }
        }
    }

    /// Processes believed alive whose exit record was lost are gone from /proc: they exited.
    pub(super) fn infer_exits(&mut self) {
        let now = clock::monotonic_ns();
        let gone: Vec<u32> = self
            .state
            .processes
            .values()
            .filter(|p| p.is_alive() && !proc::exists(p.tgid))
            .map(|p| p.tgid)
            .collect();
        for tgid in gone {
            self.counters.exits_inferred += 1;
            self.state.on_exit(tgid, now);
            self.modules.remove(&tgid);
            self.unwinder.forget(tgid as i32);
            self.forget_stack_tops(tgid);
            self.python.forget(tgid);
        }
    }

    /// An untraced process exec'd: follow it if its new name or its cgroup is selected.
    pub(super) fn on_exec_untraced(&mut self, e: &ExecRecord) {
        let tgid = e.header.tgid;
        if self.state.processes.get(&tgid).is_some_and(|p| p.is_alive()) {
            return;
        }
        // The kernel names the task after the file's base name (fs/exec.c, __set_task_comm of
        // kbasename(bprm->filename)), cut to TASK_COMM_LEN - 1 bytes.
        let name = basename(e.filename_bytes());
        let comm = &name[..name.len().min(15)];
        if self.policy.selects(comm, tasks::cgroup_of(tgid).as_deref()) {
            match self.probes.trace(tgid) {
                Ok(()) => {
                    // Gone already: nothing to follow. Otherwise its next record seeds it.
                    if let Err(e) = self.seed(tgid) {
                        log::debug!("PID {tgid} not seeded at its exec: {e}");
                    }
                }
                // Counted by the probes (`map_update_failed`).
                Err(err) => log::warn!("cannot follow PID {tgid}: {err}"),
            }
        }
    }

    /// A traced process forked: the child starts with its parent's fds and layout.
    pub(super) fn on_fork(&mut self, f: &ForkRecord) {
        if !self.state.processes.contains_key(&f.header.tgid) {
            self.discover(f.header.tgid, f.header.ts_ns);
        }
        self.state.on_fork(f.header.tgid, f.child_tgid, f.header.ts_ns);
        // Until it execs, the child has its parent's memory layout.
        if let Some(m) = self.modules.get(&f.header.tgid).cloned() {
            self.modules.insert(f.child_tgid, m);
            self.probes.maps_known(f.child_tgid);
        }
        self.python_forked(f.header.tgid, f.child_tgid);
    }

    /// A traced process exec'd: its layout is new, its fds stay (but those closed on exec).
    pub(super) fn on_exec(&mut self, e: &ExecRecord) {
        let tgid = e.header.tgid;
        if !self.state.processes.contains_key(&tgid) {
            self.discover(tgid, e.header.ts_ns);
        }
        self.modules.remove(&tgid);
        self.unwinder.forget(tgid as i32);
        self.forget_stack_tops(tgid);
        self.python.forget(tgid);
        self.loading_started(tgid, e.filename_bytes());
        // The new image and its loader at least; libraries follow (see `tick`, and
        // `layout` for a process gone before its maps could be read).
        self.refresh_modules(tgid);
        // A CPython linked into its executable is found at once.
        self.detect_python(tgid);
        self.maps_pending.insert(tgid, 0);
        let comm = proc::comm(tgid);
        let comm = if comm.is_empty() {
            basename(e.filename_bytes()).to_vec()
        } else {
            comm
        };
        self.state.on_exec(tgid, &comm, proc::fd_numbers(tgid).as_deref());
        if let Some(p) = self.state.processes.get_mut(&tgid) {
            p.limits = proc::limits(tgid);
        }
    }

    /// A traced process exited: what it held is released; its state stays for the report.
    pub(super) fn on_exit(&mut self, x: &ExitRecord) {
        self.loading_done(x.header.tgid);
        self.state.on_exit(x.header.tgid, x.header.ts_ns);
        self.modules.remove(&x.header.tgid);
        self.unwinder.forget(x.header.tgid as i32);
        self.forget_stack_tops(x.header.tgid);
        self.python.forget(x.header.tgid);
    }
}
