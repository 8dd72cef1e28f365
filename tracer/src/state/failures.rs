//! Failed calls and misuse: what a failed fd syscall does to the table, limit failures,
//! `select` beyond `FD_SETSIZE`, and descriptor misuse (close of a closed fd, EBADF).

use tracer_common::syscalls::{self, Effect};

use super::{
    Resource, StackId, State,
    incidents::{IncidentKind, Occurrence, TopSite},
    syscall::Syscall,
};

/// Errors that mean a limit was hit, per effect.
fn is_limit_errno(effect: Effect, ret: i64) -> bool {
    match effect {
        Effect::IpcGet(_) => ret == -syscalls::ENOSPC,
        Effect::Fork => ret == -syscalls::EAGAIN,
        _ => ret == -syscalls::EMFILE || ret == -syscalls::ENFILE,
    }
}

impl State {
    fn occurrence(&self, sc: &Syscall<'_>, kind: IncidentKind, stack: StackId) -> Occurrence {
        Occurrence {
            kind,
            tgid: sc.tgid,
            nr: sc.nr,
            errno: if sc.ret < 0 { (-sc.ret) as i32 } else { 0 },
            stack,
            ts_ns: sc.ts_ns,
            fd: -1,
            value: 0,
            previous_close: None,
            holder: None,
            top_site: None,
        }
    }

    /// A failed call of an fd syscall.
    pub(super) fn on_fd_failure(&mut self, sc: &Syscall<'_>, effect: Effect, stack: StackId) {
        match effect {
            Effect::Close if sc.ret == -syscalls::EBADF => self.bad_close(sc, stack),
            // close() releases the fd even when it reports an error such as EINTR or EIO.
            Effect::Close => self.close_fd(sc, sc.args[0] as i32, stack),
            _ if sc.ret == -syscalls::EBADF => self.bad_descriptor(sc, stack),
            _ if is_limit_errno(effect, sc.ret) => self.on_limit_failure(sc, stack),
            _ => {}
        }
    }

    /// An allocation failed on a limit (EMFILE, ENFILE, ENOSPC, EAGAIN from fork).
    pub(super) fn on_limit_failure(&mut self, sc: &Syscall<'_>, stack: StackId) {
        let Some(p) = self.processes.get_mut(&sc.tgid) else {
            return;
        };
        if sc.ret >= 0 {
            return;
        }
        let errno = (-sc.ret) as i32;
        p.limit_failures += 1;
        p.counters.limit_failure(sc.nr, errno);
        let fd_limit = errno == syscalls::EMFILE as i32 || errno == syscalls::ENFILE as i32;
        match syscalls::spec(sc.nr).map(|s| s.effect) {
            Some(Effect::IpcGet(_)) => p.limit_hits.note_sysv(sc.ts_ns, errno),
            Some(Effect::Fork) => p.limit_hits.note_forks(sc.ts_ns, errno),
            _ if fd_limit => p.limit_hits.note_fds(sc.ts_ns, errno),
            _ => {}
        }
        let open = p.fds.len() as u64;
        // Sites are sampled at the failure, so the trend up to the limit has its last point
        // (series drop samples closer than their resolution: a failure loop costs little).
        if sc.ts_ns > p.sampled_ns {
            self.sample_process_at(sc.tgid, sc.ts_ns);
        }
        if errno == syscalls::EAGAIN as i32 && matches!(syscalls::spec(sc.nr).map(|s| s.effect), Some(Effect::Fork)) {
            self.sample_children_of(sc.tgid, sc.ts_ns);
        }
        let mut o = self.occurrence(sc, IncidentKind::LimitFailure, stack);
        o.value = open;
        if fd_limit {
            o.top_site = self.top_fd_site(sc.tgid, open);
        }
        self.incidents.record(o);
    }

    /// The fd site of a process with the most fds open now (what filled its table).
    fn top_fd_site(&self, tgid: u32, open: u64) -> Option<TopSite> {
        let best = self
            .sites
            .of_process(tgid)
            .iter()
            .filter_map(|id| self.sites.get(*id))
            .filter(|s| s.key.resource == Resource::Fd && s.estimated > 0)
            .max_by_key(|s| (s.estimated, std::cmp::Reverse(s.key.stack)))?;
        Some(TopSite {
            stack: best.key.stack,
            kind: best.display_kind.unwrap_or(best.key.kind),
            family: best.key.family,
            count: best.estimated,
            open,
            before_attach: best.key.before_attach,
        })
    }

    /// `select`/`pselect6` with `nfds > FD_SETSIZE` (the kernel only reports those).
    pub(super) fn on_select_beyond_fd_setsize(&mut self, sc: &Syscall<'_>, stack: StackId) {
        if sc.ret == -syscalls::EBADF && sc.args[0] <= syscalls::FD_SETSIZE {
            self.bad_descriptor(sc, stack);
            return;
        }
        if let Some(p) = self.processes.get_mut(&sc.tgid) {
            p.counters.select_beyond_fd_setsize += 1;
        }
        let mut o = self.occurrence(sc, IncidentKind::SelectBeyondFdSetSize, stack);
        o.value = sc.args[0];
        self.incidents.record(o);
    }

    /// `close(fd)` failed with EBADF: a double close if this process closed `fd` before.
    fn bad_close(&mut self, sc: &Syscall<'_>, stack: StackId) {
        let fd = sc.args[0] as i32;
        let Some(p) = self.processes.get_mut(&sc.tgid) else {
            return;
        };
        p.bad_closes += 1;
        let previous = p.closed.get(&fd).copied();
        let kind = if previous.is_some() {
            IncidentKind::DoubleClose
        } else {
            IncidentKind::CloseNotOpen
        };
        count_misuse(p, kind);
        let mut o = self.occurrence(sc, kind, stack);
        o.fd = i64::from(fd);
        o.previous_close = previous;
        self.incidents.record(o);
    }

    /// Any other syscall failed with EBADF: its descriptor (the first argument of every
    /// fd-taking syscall the report names) was closed, or never open.
    pub(super) fn bad_descriptor(&mut self, sc: &Syscall<'_>, stack: StackId) {
        let fd = sc.args[0] as i32;
        let Some(p) = self.processes.get_mut(&sc.tgid) else {
            return;
        };
        let previous = p.closed.get(&fd).copied().filter(|_| p.fds.get(fd).is_none());
        let kind = if previous.is_some() {
            IncidentKind::UseAfterClose
        } else {
            IncidentKind::BadDescriptor
        };
        count_misuse(p, kind);
        let mut o = self.occurrence(sc, kind, stack);
        o.fd = i64::from(fd);
        o.previous_close = previous;
        self.incidents.record(o);
    }
}

fn count_misuse(p: &mut super::ProcessState, kind: IncidentKind) {
    if let Some(i) = super::counters::misuse_index(kind) {
        p.counters.misuse[i] += 1;
    }
}
