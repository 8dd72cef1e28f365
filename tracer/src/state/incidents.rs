//! Incidents: single calls that went wrong and are worth a stack, grouped by (process, kind,
//! syscall, errno, stack) with a count. Limit pressure (EMFILE, ENFILE, ENOSPC, ENOLCK, EAGAIN
//! from fork), `select` given descriptors beyond `FD_SETSIZE`, and descriptor misuse the way
//! valgrind's `--track-fds=bad` reports it, on a live process.

use std::collections::HashMap;

use super::{FdKind, StackId};

/// The allocation site holding the most fds of a process when one of its allocations failed
/// with EMFILE/ENFILE: what filled the table.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TopSite {
    pub stack: StackId,
    pub kind: FdKind,
    /// Socket family (0 otherwise).
    pub family: u16,
    /// Fds open from the site then (its estimate when stacks are sampled).
    pub count: u64,
    /// Fds the process had open then.
    pub open: u64,
    /// Open before tracing started (no stack).
    pub before_attach: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum IncidentKind {
    /// An allocation failed on a limit: EMFILE/ENFILE (fds), ENOSPC (SysV IPC), EAGAIN (fork).
    LimitFailure,
    /// `select`/`pselect6` with `nfds > FD_SETSIZE`: glibc's `FD_SET` wrote past the `fd_set`.
    SelectBeyondFdSetSize,
    /// `close` of a descriptor that was never open (as far as the trace knows).
    CloseNotOpen,
    /// `close` of a descriptor this process already closed.
    DoubleClose,
    /// Another syscall failed with EBADF on a descriptor this process closed.
    UseAfterClose,
    /// A syscall failed with EBADF on a descriptor never seen open.
    BadDescriptor,
    /// `flock`/`fcntl` lock call failed (EWOULDBLOCK, EINTR, ENOLCK, EDEADLK).
    LockFailure,
    /// A write to a non-blocking eventfd refused with EAGAIN: its counter is saturated, the
    /// notification is dropped.
    EventfdOverflow,
}

impl IncidentKind {
    pub fn as_str(self) -> &'static str {
        match self {
            IncidentKind::LimitFailure => "limit_failure",
            IncidentKind::SelectBeyondFdSetSize => "select_beyond_fd_setsize",
            IncidentKind::CloseNotOpen => "close_not_open",
            IncidentKind::DoubleClose => "double_close",
            IncidentKind::UseAfterClose => "use_after_close",
            IncidentKind::BadDescriptor => "bad_descriptor",
            IncidentKind::LockFailure => "lock_failure",
            IncidentKind::EventfdOverflow => "eventfd_overflow",
        }
    }
}

/// The last close of a descriptor number in a process (for double close and use after close).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ClosedFd {
    pub ts_ns: u64,
    pub tid: u32,
    /// The close's stack (only with `--close-stacks`).
    pub stack: StackId,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Incident {
    pub kind: IncidentKind,
    pub tgid: u32,
    pub nr: u32,
    /// Positive errno (0 when the call did not fail, e.g. a select beyond FD_SETSIZE).
    pub errno: i32,
    pub stack: StackId,
    pub count: u64,
    pub first_ns: u64,
    pub last_ns: u64,
    /// The descriptor involved (-1: none).
    pub fd: i64,
    /// The largest related value seen: `nfds` for select, open fds at an EMFILE.
    pub value: u64,
    /// For double close and use after close: the earlier close.
    pub previous_close: Option<ClosedFd>,
    /// For lock failures: a process holding the lock at the time.
    pub holder: Option<u32>,
    /// For EMFILE/ENFILE: the site holding the most fds at the latest failure.
    pub top_site: Option<TopSite>,
}

/// One occurrence, before grouping.
#[derive(Clone, Copy, Debug)]
pub struct Occurrence {
    pub kind: IncidentKind,
    pub tgid: u32,
    pub nr: u32,
    pub errno: i32,
    pub stack: StackId,
    pub ts_ns: u64,
    pub fd: i64,
    pub value: u64,
    pub previous_close: Option<ClosedFd>,
    pub holder: Option<u32>,
    pub top_site: Option<TopSite>,
}

/// Distinct incidents kept; beyond this only counts of known ones grow.
const MAX_INCIDENTS: usize = 4096;

type Key = (u32, IncidentKind, u32, i32, StackId);

#[derive(Debug, Default)]
pub struct IncidentTable {
    index: HashMap<Key, usize>,
    pub list: Vec<Incident>,
    /// Occurrences not kept because the table was full.
    pub dropped: u64,
}

impl IncidentTable {
    pub fn record(&mut self, o: Occurrence) {
        let key = (o.tgid, o.kind, o.nr, o.errno, o.stack);
        if let Some(i) = self.index.get(&key).copied()
            && let Some(inc) = self.list.get_mut(i)
        {
            inc.count += 1;
            inc.last_ns = o.ts_ns;
            inc.value = inc.value.max(o.value);
            if o.previous_close.is_some() {
                inc.previous_close = o.previous_close;
            }
            if o.holder.is_some() {
                inc.holder = o.holder;
            }
            if o.top_site.is_some() {
                inc.top_site = o.top_site;
            }
            return;
        }
        if self.list.len() >= MAX_INCIDENTS {
            self.dropped += 1;
            return;
        }
        self.index.insert(key, self.list.len());
        self.list.push(Incident {
            kind: o.kind,
            tgid: o.tgid,
            nr: o.nr,
            errno: o.errno,
            stack: o.stack,
            count: 1,
            first_ns: o.ts_ns,
            last_ns: o.ts_ns,
            fd: o.fd,
            value: o.value,
            previous_close: o.previous_close,
            holder: o.holder,
            top_site: o.top_site,
        });
    }
}

impl IncidentTable {
    /// Drops a forgotten process's incidents (their counts stay in the agent's counters).
    pub fn forget_process(&mut self, tgid: u32) {
        if !self.list.iter().any(|i| i.tgid == tgid) {
            return;
        }
        self.list.retain(|i| i.tgid != tgid);
        self.index = self
            .list
            .iter()
            .enumerate()
            .map(|(n, i)| ((i.tgid, i.kind, i.nr, i.errno, i.stack), n))
            .collect();
    }
}

/// Names of the errnos incidents carry (include/uapi/asm-generic/errno*.h).
pub fn errno_name(errno: i32) -> &'static str {
    match errno {
        0 => "",
        4 => "EINTR",
        9 => "EBADF",
        11 => "EAGAIN",
        12 => "ENOMEM",
        13 => "EACCES",
        22 => "EINVAL",
        23 => "ENFILE",
        24 => "EMFILE",
        28 => "ENOSPC",
        32 => "EPIPE",
        105 => "ENOBUFS",
        35 => "EDEADLK",
        37 => "ENOLCK",
        _ => "errno",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn occ(kind: IncidentKind, stack: u32, ts: u64, value: u64) -> Occurrence {
        Occurrence {
            kind,
            tgid: 1,
            nr: libc::SYS_open as u32,
            errno: 24,
            stack: StackId(stack),
            ts_ns: ts,
            fd: -1,
            value,
            previous_close: None,
            holder: None,
            top_site: None,
        }
    }

    #[test]
    fn grouped_by_kind_and_stack() {
        let mut t = IncidentTable::default();
        t.record(occ(IncidentKind::LimitFailure, 1, 10, 61));
        t.record(occ(IncidentKind::LimitFailure, 1, 20, 60));
        t.record(occ(IncidentKind::LimitFailure, 2, 30, 0));
        t.record(occ(IncidentKind::DoubleClose, 1, 40, 0));
        assert_eq!(t.list.len(), 3);
        let first = &t.list[0];
        assert_eq!(
            (first.count, first.first_ns, first.last_ns, first.value),
            (2, 10, 20, 61)
        );
        assert_eq!(errno_name(24), "EMFILE");
    }

    #[test]
    fn bounded() {
        let mut t = IncidentTable::default();
        for i in 0..(MAX_INCIDENTS as u32 + 10) {
            t.record(occ(IncidentKind::BadDescriptor, i, 1, 0));
        }
        assert_eq!(t.list.len(), MAX_INCIDENTS);
        assert_eq!(t.dropped, 10);
    }
}
