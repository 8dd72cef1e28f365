//! Resynchronising a process's fd table from `/proc/PID/fd` after records of it were lost:
//! a lost close would otherwise leave a phantom fd that looks like a leak, a lost open an fd
//! never counted. What /proc shows wins; fds the agent did not know get no stack (they are
//! kept with the fds open before tracing, which are never suspects).

use super::{FdKind, OpenFd, Origin, ProcFd, Resource, SiteKey, StackId, State};

/// What a resync changed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Resync {
    /// Fds the agent believed open that /proc does not show (lost closes).
    pub dropped: u32,
    /// Fds /proc shows that the agent did not know, or knew as another kind (lost opens).
    pub added: u32,
}

impl State {
    /// Makes `tgid`'s table what `/proc` showed in a scan that started at `scan_start_ns`.
    /// Queued records older than the scan are then skipped (see `ProcessState::seeded_ns`).
    pub fn resync(&mut self, tgid: u32, scan: &[ProcFd], scan_start_ns: u64) -> Resync {
        let mut out = Resync::default();
        let Some(p) = self.processes.get_mut(&tgid) else {
            return out;
        };
        if !p.is_alive() {
            return out;
        }
        p.resyncs += 1;
        p.seeded_ns = p.seeded_ns.max(scan_start_ns);
        let sites = &mut self.sites;
        // `scan` is sorted by fd number.
        let listed = |fd: i32| scan.binary_search_by_key(&fd, |f| f.fd).ok().map(|i| &scan[i]);
        p.fds.retain(
            |fd, o| listed(fd).is_some_and(|f| same_kind(o, f)),
            |_, o| {
                sites.closed(o.site, o.weight);
                out.dropped += 1;
            },
        );
        for f in scan {
            if p.fds.get(f.fd).is_some() {
                continue;
            }
            let key = SiteKey {
                resource: Resource::Fd,
                tgid,
                stack: StackId::NONE,
                kind: f.kind,
                family: 0,
                before_attach: true,
            };
            let site = sites.intern(key);
            sites.opened(site, Some(&f.target), 1);
            p.fds.insert(
                f.fd,
                OpenFd {
                    site,
                    kind: f.kind,
                    family: 0,
                    origin: Origin::Resynced,
                    opened_ns: scan_start_ns,
                    described: f.kind != FdKind::Socket,
                    weight: 1,
                },
            );
            out.added += 1;
        }
        out
    }
}

/// Is the fd the agent knows plausibly the one /proc shows? Kinds the syscall could not tell
/// (unknown, path opens that turned out to be devices) are refined by /proc, not a mismatch.
fn same_kind(o: &OpenFd, f: &ProcFd) -> bool {
    o.kind == f.kind || o.kind == FdKind::Unknown || (o.kind.is_path_kind() && f.kind.is_path_kind())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::{Limits, syscall::Syscall};

    fn open(s: &mut State, ts: u64, fd: i64) {
        let sc = Syscall {
            tgid: 1,
            tid: 1,
            ts_ns: ts,
            nr: libc::SYS_openat as u32,
            ret: fd,
            args: [0; 6],
            data_kind: 0,
            data: &[],
            weight: 1,
        };
        s.on_syscall(&sc, StackId(5));
    }

    fn proc_fd(fd: i32, kind: FdKind) -> ProcFd {
        ProcFd {
            fd,
            kind,
            target: format!("/f{fd}").into_bytes(),
        }
    }

    #[test]
    fn phantom_fds_go_and_unknown_ones_come_without_a_stack() {
        let mut s = State::default();
        s.attach(1, b"p".to_vec(), Limits::default(), &[], 10);
        for fd in 3..8 {
            open(&mut s, 20, fd);
        }
        // Closes of 4..7 were lost; 9 was opened by a lost record; 3 is now a pipe.
        let scan = [
            proc_fd(3, FdKind::Pipe),
            proc_fd(8, FdKind::File),
            proc_fd(9, FdKind::File),
        ];
        let r = s.resync(1, &scan, 100);
        assert_eq!(r, Resync { dropped: 5, added: 3 });
        let p = s.process(1).map(|p| (p.fds.numbers(), p.resyncs, p.seeded_ns));
        assert_eq!(p, Some((vec![3, 8, 9], 1, 100)));
        let stacked: u32 = s
            .sites
            .iter()
            .filter(|(_, st)| st.key.stack == StackId(5))
            .map(|(_, st)| st.outstanding)
            .sum();
        assert_eq!(stacked, 0, "the phantom fds left their site");
        let unstacked = s
            .sites
            .iter()
            .find(|(_, st)| st.key.before_attach && st.key.kind == FdKind::File);
        assert_eq!(unstacked.map(|(_, st)| st.outstanding), Some(2));
        // A queued open from before the scan is already in it: skipped.
        open(&mut s, 90, 12);
        assert!(s.process(1).is_some_and(|p| p.fds.get(12).is_none()));
        open(&mut s, 110, 12);
        assert!(s.process(1).is_some_and(|p| p.fds.get(12).is_some()));
    }
}
