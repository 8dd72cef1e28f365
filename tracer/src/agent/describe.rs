//! Describing fds from /proc: kinds only /proc can tell (received fds, paths that are devices)
//! and socket peers.

use std::collections::HashMap;

use super::{Tracker, proc, sockets};
use crate::state::apply::Syscall;

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
            self.describe_one(sc.tgid, *fd, &mut HashMap::new());
        }
    }

    /// At most `budget` fds, each at least `min_age_ns` old.
    pub fn describe_pending(&mut self, budget: usize, min_age_ns: u64) {
        let now = proc::monotonic_ns();
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
        // One read of a process's socket tables per pass, and only if it has sockets to describe.
        let mut tables: HashMap<u32, sockets::SocketTable> = HashMap::new();
        for (tgid, fd) in todo {
            self.describe_one(tgid, fd, &mut tables);
        }
    }

    /// Reads one fd's kind and description (a socket's peer) from /proc.
    fn describe_one(&mut self, tgid: u32, fd: i32, tables: &mut HashMap<u32, sockets::SocketTable>) {
        match proc::describe_fd(tgid, fd) {
            Some((kind, target)) => {
                let info = sockets::socket_inode(&target).and_then(|ino| {
                    tables
                        .entry(tgid)
                        .or_insert_with(|| sockets::SocketTable::read(tgid))
                        .get(ino)
                        .cloned()
                });
                match info {
                    Some(i) => self.state.describe(tgid, fd, kind, Some(i.family), &i.description),
                    None => self.state.describe(tgid, fd, kind, None, &target),
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
