//! Write stalls in the report: per pipe, FIFO, eventfd or AF_UNIX socket, how often and how long
//! writers were blocked because it was full, refusals of non-blocking writes, its capacity
//! against the system's ceiling, who is at both ends, and what to do about it.

use crate::{
    model::{
        Stack,
        stalls::{StallReport, StallWriter},
        system::SystemLimits,
    },
    state::{
        State,
        stalls::{Channel, ChannelKind, Writer},
    },
};

const MS: u64 = 1_000_000;

fn writer(w: Option<Writer>) -> Option<StallWriter> {
    w.map(|w| StallWriter {
        pid: w.tgid,
        tid: w.tid,
        fd: w.fd,
        blocked_ms: w.blocked_ns / MS,
        stack: Stack::unresolved(w.stack),
    })
}

fn fix(kind: ChannelKind) -> &'static str {
    match kind {
        ChannelKind::Pipe | ChannelKind::Fifo => {
            "the reader falls behind and the pipe fills: raise its size with fcntl(fd, F_SETPIPE_SZ, bytes) (up to \
             fs.pipe-max-size), buffer in user space, or make the writer non-blocking (O_NONBLOCK with poll) so its \
             other work does not wait"
        }
        ChannelKind::Unix => {
            "the peer falls behind and the send buffer fills: raise SO_SNDBUF (up to net.core.wmem_max) or the \
             peer's receive queue (net.unix.max_dgram_qlen for datagrams), buffer in user space, or send \
             non-blocking (MSG_DONTWAIT with poll)"
        }
        ChannelKind::EventFd => {
            "the counter is near its ceiling (UINT64_MAX - 1): the consumer does not read it; read it (or reset it) \
             in the consumer, or use EFD_SEMAPHORE semantics with a bounded producer"
        }
    }
}

fn report(c: &Channel, now_ns: u64, system: Option<&SystemLimits>) -> StallReport {
    let max_capacity_bytes = match c.kind {
        ChannelKind::Pipe | ChannelKind::Fifo => system.and_then(|s| s.pipe_max_size),
        ChannelKind::Unix => system.and_then(|s| s.wmem_max),
        ChannelKind::EventFd => None,
    };
    StallReport {
        kind: c.kind,
        inode: c.ino,
        capacity_bytes: c.capacity,
        max_capacity_bytes,
        blocked_writes: c.blocked,
        blocked_ms_total: c.blocked_ns / MS,
        blocked_ms_max: c.longest.map_or(0, |w| w.blocked_ns / MS),
        eagain: c.eagain,
        enobufs: c.enobufs,
        writers: c.writers.iter().copied().collect(),
        readers: c.readers.iter().copied().collect(),
        longest: writer(c.longest),
        refused: writer(c.refused),
        first_age_ms: now_ns.saturating_sub(c.first_ns) / MS,
        last_age_ms: now_ns.saturating_sub(c.last_ns) / MS,
        fix: fix(c.kind),
    }
}

/// Every object writes stalled on, longest total blocked time first.
pub fn stalls(state: &State, now_ns: u64, system: Option<&SystemLimits>) -> Vec<StallReport> {
    let mut out: Vec<StallReport> = state
        .stalls
        .channels
        .values()
        .map(|c| report(c, now_ns, system))
        .collect();
    out.sort_by(|a, b| {
        b.blocked_ms_total
            .cmp(&a.blocked_ms_total)
            .then((b.eagain + b.enobufs).cmp(&(a.eagain + a.enobufs)))
            .then(a.kind.as_str().cmp(b.kind.as_str()))
            .then(a.inode.cmp(&b.inode))
    });
    out
}
