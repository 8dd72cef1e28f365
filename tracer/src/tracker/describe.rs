//! Describing fds from /proc: kinds only /proc can tell (received fds, paths that are devices)
//! and socket peers.

use std::os::unix::fs::MetadataExt;

use super::Tracker;
use crate::procfs::{
    clock, process as proc,
    sockets::{self, Lookup},
};
use crate::state::syscall::Syscall;

/// The network namespace of a process (the nsfs inode of /proc/PID/ns/net); a key of its own
/// if it cannot be read.
fn netns_of(tgid: u32) -> u64 {
    std::fs::metadata(format!("/proc/{tgid}/ns/net")).map_or(u64::from(tgid) << 32, |m| m.ino())
}

impl Tracker {
    /// Reads `/proc/PID/fd/N` for fds whose kind or path only /proc can tell.
    /// Fds whose kind the syscall cannot tell (received over a socket, taken from another
    /// process, dup of an unknown) are read from /proc at once, so their site has the right kind
    /// from the start. They are rare: one readlink each.
    pub(super) fn describe_unknown_now(&mut self, sc: &Syscall<'_>) {
        let Some(p) = self.state.processes.get(&sc.tgid) else {
            return;
        };
        let mut unknown = [0i32; 64];
        let mut n = 0;
        let mut note = |fd: i32| {
            if p.fds
                .get(fd)
                .is_some_and(|o| o.kind == crate::state::FdKind::Unknown && !o.described)
                && let Some(slot) = unknown.get_mut(n)
            {
                *slot = fd;
                n += 1;
            }
        };
        if sc.data_kind == tracer_common::fd::data_kind::CONTROL {
            crate::state::scm::for_each_received_fd(sc.data, &mut note);
        } else if let Ok(fd) = i32::try_from(sc.ret) {
            note(fd);
        }
        for fd in &unknown[..n] {
            self.describe_one(sc.tgid, *fd);
        }
    }

    /// At most `budget` fds, each at least `min_age_ns` old.
    pub fn describe_pending(&mut self, budget: usize, min_age_ns: u64) {
        let now = clock::monotonic_ns();
        let mut todo: Vec<(u32, i32)> = Vec::new();
        for p in self.state.processes.values().filter(|p| p.is_alive()) {
            if todo.len() >= budget {
                break;
            }
            for (fd, o) in p.fds.iter() {
                if !o.described && now.saturating_sub(o.opened_ns) >= min_age_ns {
                    todo.push((p.tgid, fd));
                    if todo.len() >= budget {
                        break;
                    }
                }
            }
        }
        for (tgid, fd) in todo {
            self.describe_one(tgid, fd);
        }
        self.socket_tables.trim(now);
    }

    /// Reads one fd's kind and description (a socket's peer) from /proc.
    fn describe_one(&mut self, tgid: u32, fd: i32) {
        match proc::describe_fd(tgid, fd) {
            Some((kind, target)) => {
                let lookup = match sockets::socket_inode(&target) {
                    Some(ino) => {
                        let opened_ns = self
                            .state
                            .processes
                            .get(&tgid)
                            .and_then(|p| p.fds.get(fd))
                            .map_or(0, |o| o.opened_ns);
                        let now = clock::monotonic_ns();
                        self.socket_tables.lookup(tgid, netns_of(tgid), ino, opened_ns, now)
                    }
                    None => Lookup::Absent,
                };
                match lookup {
                    Lookup::Found(i) => self.state.describe(tgid, fd, kind, Some(i.family), &i.description),
                    Lookup::Absent => self.state.describe(tgid, fd, kind, None, &target),
                    // Tables were read moments ago: the peer on a later pass, but a kind only
                    // /proc could tell (a received fd) at once.
                    Lookup::Later => {
                        let unknown = self
                            .state
                            .processes
                            .get(&tgid)
                            .and_then(|p| p.fds.get(fd))
                            .is_some_and(|o| o.kind == crate::state::FdKind::Unknown);
                        if unknown {
                            self.state.describe(tgid, fd, kind, None, &target);
                        }
                    }
                }
            }
            None => {
                // Closed meanwhile (its close record is on the way) or the process is gone.
                if let Some(o) = self.state.processes.get_mut(&tgid).and_then(|p| p.fds.get_mut(fd)) {
                    o.described = true;
                }
            }
        }
    }
}
