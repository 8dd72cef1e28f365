//! The tracker's side of the always-on mode: running the fd-count iterator, escalating a
//! process (tracing it from now on, seeded from /proc like an attach), releasing it (its state
//! stays as the evidence), and the syscall-exit hook that is attached only while something is
//! traced. Whom to escalate is decided in `state::host`; the runtime's tick ties them together.

use tracer_common::fd_counts::ProcessFdCount;

use super::{Tracker, TrackerError};
use crate::probes::CountSource;

impl Tracker {
    /// Where the counts come from (`None`: the iterator was not asked for).
    pub fn count_source(&self) -> Option<&CountSource> {
        self.probes.count_source()
    }

    /// Runs the fd-count iterator once (see `probes::fd_counts`).
    pub fn read_fd_counts(&mut self, buf: &mut Vec<u8>, out: &mut Vec<ProcessFdCount>) -> std::io::Result<()> {
        self.probes.read_fd_counts(buf, out)
    }

    /// Starts tracing a process because of its count: its fds so far are "before tracing".
    pub fn escalate(&mut self, pid: u32) -> Result<(), TrackerError> {
        self.probes.trace(pid)?;
        if let Err(e) = self.seed(pid) {
            self.probes.untrace(pid);
            return Err(e);
        }
        Ok(())
    }

    /// Stops tracing an escalated process; what its state says stays, as of `now_ns`.
    pub fn release(&mut self, pid: u32, now_ns: u64) {
        self.probes.untrace(pid);
        if let Some(p) = self.state.processes.get_mut(&pid) {
            p.released_ns = Some(now_ns);
        }
    }

    /// Attaches or detaches the syscall-exit hook (see `Probes::set_syscall_hook`).
    pub fn set_syscall_hook(&mut self, on: bool) -> Result<(), TrackerError> {
        Ok(self.probes.set_syscall_hook(on)?)
    }

    pub fn syscall_hook(&self) -> bool {
        self.probes.syscall_hook()
    }
}
