//! Writes that stalled on a full buffer, per object written to (a pipe or FIFO by inode, an
//! eventfd, an AF_UNIX socket), and eventfd notifications dropped on a saturated counter.
//!
//! How "blocked because full" is told from a slow write: the kernel reports a write-family call
//! only when it took at least `--write-block` or failed with EAGAIN/ENOBUFS (see
//! `tracer-ebpf/src/write.rs`), and this module keeps only those on pipes, FIFOs, eventfds and
//! AF_UNIX sockets. For these objects the only place a writer sleeps is the wait for room:
//! `pipe_write` in `wait_event_interruptible_exclusive(pipe->wr_wait, pipe_writable(pipe))` while
//! the pipe is full (fs/pipe.c), `eventfd_write` while `ULLONG_MAX - count <= value`
//! (fs/eventfd.c), AF_UNIX `sock_alloc_send_pskb` in `sock_wait_for_wmem` while the send buffer
//! is used up and `unix_wait_for_peer` while a datagram peer's queue is full
//! (net/unix/af_unix.c); the same conditions give EAGAIN with O_NONBLOCK. What else can hold a
//! write there (the pipe mutex held by another writer, a page fault on the user buffer) is short
//! next to a 100 ms threshold. So the duration alone decides, and no scheduler hook (a
//! `sched_switch` program would run at every context switch of the host) is needed.

use std::collections::{BTreeSet, HashMap};

use tracer_common::syscalls::{self, DERIVED_ARG};

use super::{
    FdKind, StackId, State,
    incidents::{IncidentKind, Occurrence},
    syscall::Syscall,
};

/// What a stalled write wrote to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ChannelKind {
    Pipe,
    Fifo,
    EventFd,
    /// An AF_UNIX socket (stream, datagram or seqpacket).
    Unix,
}

/// Channel kinds, for per-kind counter arrays (`ChannelKind::index`).
pub const CHANNEL_KINDS: [ChannelKind; 4] = [
    ChannelKind::Pipe,
    ChannelKind::Fifo,
    ChannelKind::EventFd,
    ChannelKind::Unix,
];

/// `AF_UNIX`.
const AF_UNIX: u16 = 1;

impl ChannelKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ChannelKind::Pipe => "pipe",
            ChannelKind::Fifo => "fifo",
            ChannelKind::EventFd => "eventfd",
            ChannelKind::Unix => "unix",
        }
    }

    pub fn index(self) -> usize {
        self as usize
    }

    /// The kinds whose writers block only when the buffer is full.
    pub fn of_fd(kind: FdKind, family: u16) -> Option<Self> {
        match kind {
            FdKind::Pipe => Some(ChannelKind::Pipe),
            FdKind::Fifo => Some(ChannelKind::Fifo),
            FdKind::EventFd => Some(ChannelKind::EventFd),
            FdKind::Socket if family == AF_UNIX => Some(ChannelKind::Unix),
            _ => None,
        }
    }
}

/// What the caller read from `/proc` (and the fd itself) about the object written to.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct WriteTarget {
    /// Inode of the pipe, FIFO, eventfd or socket (0: unknown, e.g. the writer is gone).
    pub ino: u64,
    /// Pipe capacity (`F_GETPIPE_SZ`) or socket send buffer (`SO_SNDBUF`), in bytes.
    pub capacity: Option<u64>,
    /// An eventfd's counter (`eventfd-count` in `/proc/PID/fdinfo`).
    pub eventfd_count: Option<u64>,
    /// Traced processes holding the object open for reading, and for writing (pipes, FIFOs).
    pub readers: Vec<u32>,
    pub writers: Vec<u32>,
}

/// A writer at one moment: who, where.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Writer {
    pub tgid: u32,
    pub tid: u32,
    pub fd: i32,
    pub stack: StackId,
    /// How long it was blocked (ns; 0 for an EAGAIN).
    pub blocked_ns: u64,
}

/// Stalls on one object.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Channel {
    pub kind: ChannelKind,
    pub ino: u64,
    pub capacity: Option<u64>,
    /// Writes that blocked at least `--write-block`, their total and longest time.
    pub blocked: u64,
    pub blocked_ns: u64,
    pub longest: Option<Writer>,
    /// Non-blocking writes refused because the buffer was full (EAGAIN), ENOBUFS.
    pub eagain: u64,
    pub enobufs: u64,
    /// The first refused writer.
    pub refused: Option<Writer>,
    pub readers: BTreeSet<u32>,
    pub writers: BTreeSet<u32>,
    pub first_ns: u64,
    pub last_ns: u64,
}

/// Objects kept; past it the one stalled longest ago goes.
const MAX_CHANNELS: usize = 1024;
/// Processes listed per end.
const MAX_ENDS: usize = 16;

#[derive(Debug, Default)]
pub struct StallTable {
    pub channels: HashMap<(ChannelKind, u64), Channel>,
    /// Channels dropped to stay bounded.
    pub evicted: u64,
}

impl StallTable {
    fn channel(&mut self, kind: ChannelKind, ino: u64, ts_ns: u64) -> &mut Channel {
        if !self.channels.contains_key(&(kind, ino)) && self.channels.len() >= MAX_CHANNELS {
            let oldest = self.channels.iter().min_by_key(|(_, c)| c.last_ns).map(|(k, _)| *k);
            if let Some(k) = oldest {
                self.channels.remove(&k);
                self.evicted += 1;
            }
        }
        self.channels.entry((kind, ino)).or_insert_with(|| Channel {
            kind,
            ino,
            capacity: None,
            blocked: 0,
            blocked_ns: 0,
            longest: None,
            eagain: 0,
            enobufs: 0,
            refused: None,
            readers: BTreeSet::new(),
            writers: BTreeSet::new(),
            first_ns: ts_ns,
            last_ns: ts_ns,
        })
    }

    /// Stacks the table refers to.
    pub fn stacks(&self, out: &mut impl Extend<StackId>) {
        for c in self.channels.values() {
            out.extend(c.longest.map(|w| w.stack));
            out.extend(c.refused.map(|w| w.stack));
        }
    }
}

fn add_ends(set: &mut BTreeSet<u32>, pids: impl IntoIterator<Item = u32>) {
    for p in pids {
        if set.len() >= MAX_ENDS {
            return;
        }
        set.insert(p);
    }
}

impl State {
    /// What a write on `fd` of `tgid` writes to, if it is an object whose writers block only
    /// when it is full.
    pub fn write_channel(&self, tgid: u32, fd: i32) -> Option<ChannelKind> {
        let o = self.processes.get(&tgid)?.fds.get(fd)?;
        ChannelKind::of_fd(o.kind, o.family)
    }

    /// A write the kernel reported (it blocked at least `--write-block`, or found the buffer
    /// full) on a `kind` object, described by `target`.
    pub fn on_write(&mut self, sc: &Syscall<'_>, stack: StackId, kind: ChannelKind, target: &WriteTarget) {
        let Some(p) = self.processes.get_mut(&sc.tgid) else {
            return;
        };
        let fd = sc.args[0] as i32;
        let took_ns = sc.args[DERIVED_ARG];
        let full = sc.ret == -syscalls::EAGAIN || sc.ret == -syscalls::ENOBUFS;
        if kind == ChannelKind::EventFd && sc.ret == -syscalls::EAGAIN {
            // A non-blocking eventfd whose counter would pass ULLONG_MAX - 1: the notification
            // is dropped. A problem of its own, by stack.
            p.counters.eventfd_overflows += 1;
            self.incidents.record(Occurrence {
                kind: IncidentKind::EventfdOverflow,
                tgid: sc.tgid,
                nr: sc.nr,
                errno: (-sc.ret) as i32,
                stack,
                ts_ns: sc.ts_ns,
                fd: i64::from(fd),
                value: target.eventfd_count.unwrap_or(0),
                previous_close: None,
                holder: None,
                top_site: None,
            });
            return;
        }
        let i = kind.index();
        if full {
            p.counters.writes_refused[i] += 1;
        } else {
            p.counters.write_stalls[i] += 1;
            p.counters.write_stall_ns[i] += took_ns;
        }
        let c = self.stalls.channel(kind, target.ino, sc.ts_ns);
        c.last_ns = c.last_ns.max(sc.ts_ns);
        if target.capacity.is_some() {
            c.capacity = target.capacity;
        }
        add_ends(
            &mut c.writers,
            std::iter::once(sc.tgid).chain(target.writers.iter().copied()),
        );
        add_ends(&mut c.readers, target.readers.iter().copied());
        let w = Writer {
            tgid: sc.tgid,
            tid: sc.tid,
            fd,
            stack,
            blocked_ns: if full { 0 } else { took_ns },
        };
        if full {
            if sc.ret == -syscalls::EAGAIN {
                c.eagain += 1;
            } else {
                c.enobufs += 1;
            }
            if c.refused.is_none() {
                c.refused = Some(w);
            }
        } else {
            c.blocked += 1;
            c.blocked_ns += took_ns;
            if c.longest.is_none_or(|l| took_ns > l.blocked_ns) {
                c.longest = Some(w);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::Limits;

    const MS: u64 = 1_000_000;

    fn write(s: &mut State, ts: u64, fd: i64, ret: i64, took_ns: u64, stack: u32, target: &WriteTarget) {
        let sc = Syscall {
            tgid: 7,
            tid: 8,
            ts_ns: ts,
            nr: libc::SYS_write as u32,
            ret,
            args: [fd as u64, 0, 65536, 0, 0, took_ns],
            data_kind: 0,
            data: &[],
            weight: 1,
        };
        if let Some(kind) = s.write_channel(7, fd as i32) {
            s.on_write(&sc, StackId(stack), kind, target);
        }
    }

    fn with_fds() -> State {
        let mut s = State::default();
        s.attach(7, b"producer".to_vec(), Limits::default(), &[], 0);
        let make = |nr: u32, ret: i64, args: [u64; 6], data: &'static [u8]| Syscall {
            tgid: 7,
            tid: 7,
            ts_ns: MS,
            nr,
            ret,
            args,
            data_kind: if data.is_empty() {
                0
            } else {
                tracer_common::fd::data_kind::FD_PAIR
            },
            data,
            weight: 1,
        };
        // pipe2 -> fds 3 (read), 4 (write); eventfd2 -> 5; socket(AF_INET) -> 6; socket(AF_UNIX) -> 9.
        s.on_syscall(&make(293, 0, [0; 6], &[3, 0, 0, 0, 4, 0, 0, 0]), StackId(1));
        s.on_syscall(&make(290, 5, [0; 6], &[]), StackId(1));
        s.on_syscall(&make(41, 6, [2, 1, 0, 0, 0, 0], &[]), StackId(1));
        s.on_syscall(&make(41, 9, [1, 1, 0, 0, 0, 0], &[]), StackId(1));
        s
    }

    #[test]
    fn blocked_writes_and_refusals_per_pipe() {
        let mut s = with_fds();
        let pipe = WriteTarget {
            ino: 4242,
            capacity: Some(65536),
            readers: vec![9],
            ..Default::default()
        };
        write(&mut s, 10 * MS, 4, 65536, 150 * MS, 2, &pipe);
        write(&mut s, 20 * MS, 4, 4096, 400 * MS, 3, &pipe);
        write(&mut s, 30 * MS, 4, -11, 0, 4, &pipe);
        // A slow write to a TCP socket is not a stall we know the cause of.
        write(&mut s, 40 * MS, 6, 100, 500 * MS, 2, &pipe);
        assert_eq!(s.stalls.channels.len(), 1);
        let c = &s.stalls.channels[&(ChannelKind::Pipe, 4242)];
        assert_eq!((c.blocked, c.blocked_ns, c.eagain), (2, 550 * MS, 1));
        assert_eq!(
            c.longest.map(|w| (w.stack, w.blocked_ns, w.fd)),
            Some((StackId(3), 400 * MS, 4))
        );
        assert_eq!(c.refused.map(|w| w.stack), Some(StackId(4)));
        assert_eq!(c.capacity, Some(65536));
        assert_eq!(
            (
                c.writers.iter().copied().collect::<Vec<_>>(),
                c.readers.iter().copied().collect::<Vec<_>>()
            ),
            (vec![7], vec![9])
        );
        let p = &s.processes[&7];
        assert_eq!(p.counters.write_stalls[ChannelKind::Pipe.index()], 2);
        assert_eq!(p.counters.writes_refused[ChannelKind::Pipe.index()], 1);
        let mut stacks = Vec::new();
        s.stalls.stacks(&mut stacks);
        assert_eq!(stacks, vec![StackId(3), StackId(4)]);
    }

    #[test]
    fn eventfd_eagain_is_a_dropped_notification_and_unix_sockets_stall() {
        let mut s = with_fds();
        let efd = WriteTarget {
            ino: 77,
            eventfd_count: Some(u64::MAX - 1),
            ..Default::default()
        };
        write(&mut s, 10 * MS, 5, -11, 0, 5, &efd);
        write(&mut s, 11 * MS, 5, -11, 0, 5, &efd);
        assert!(
            s.stalls.channels.is_empty(),
            "a refused eventfd write is a problem, not a stall"
        );
        let i = &s.incidents.list[0];
        assert_eq!(
            (i.kind, i.count, i.fd, i.value, i.stack),
            (IncidentKind::EventfdOverflow, 2, 5, u64::MAX - 1, StackId(5))
        );
        assert_eq!(s.processes[&7].counters.eventfd_overflows, 2);
        // A blocked eventfd write is a stall like a pipe's.
        write(&mut s, 12 * MS, 5, 8, 300 * MS, 6, &efd);
        write(
            &mut s,
            13 * MS,
            9,
            100,
            200 * MS,
            7,
            &WriteTarget {
                ino: 88,
                ..Default::default()
            },
        );
        assert_eq!(s.stalls.channels[&(ChannelKind::EventFd, 77)].blocked, 1);
        assert_eq!(s.stalls.channels[&(ChannelKind::Unix, 88)].blocked, 1);
    }

    #[test]
    fn with_a_window_an_object_quiet_for_a_whole_window_goes() {
        let mut s = with_fds();
        s.sites.window_ns = Some(1000 * MS);
        let pipe = WriteTarget {
            ino: 1,
            ..Default::default()
        };
        write(&mut s, 10 * MS, 4, 10, 150 * MS, 2, &pipe);
        s.expire(900 * MS);
        assert_eq!(s.stalls.channels.len(), 1);
        s.expire(1010 * MS);
        assert!(s.stalls.channels.is_empty());
        assert_eq!(s.stalls.evicted, 1);
    }

    #[test]
    fn bounded_by_evicting_the_stalest() {
        let mut t = StallTable::default();
        for ino in 0..(MAX_CHANNELS as u64 + 5) {
            t.channel(ChannelKind::Pipe, ino, ino);
        }
        assert_eq!(t.channels.len(), MAX_CHANNELS);
        assert_eq!(t.evicted, 5);
        assert!(!t.channels.contains_key(&(ChannelKind::Pipe, 0)));
    }
}
