//! Write stalls in the report: per pipe, FIFO, eventfd or AF_UNIX socket, how long writers
//! were blocked, refusals, capacity and the ends.

use serde::Serialize;

use super::stack::Stack;
use crate::state::stalls::ChannelKind;

#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct StallReport {
    /// `pipe`, `fifo`, `eventfd`, `unix`.
    pub kind: ChannelKind,
    /// The object's inode (`pipe:[N]`, `socket:[N]`), 0 when unknown.
    pub inode: u64,
    /// Pipe capacity (F_GETPIPE_SZ) or socket send buffer (SO_SNDBUF) in bytes; `null` when it
    /// could not be read (a pipe then has the default, 65536).
    pub capacity_bytes: Option<u64>,
    /// The ceiling an unprivileged process can raise it to: `fs.pipe-max-size` for pipes and
    /// FIFOs, `net.core.wmem_max` for sockets.
    pub max_capacity_bytes: Option<u64>,
    /// Writes blocked at least `--write-block`, their total and longest time.
    pub blocked_writes: u64,
    pub blocked_ms_total: u64,
    pub blocked_ms_max: u64,
    /// Non-blocking writes refused because it was full.
    pub eagain: u64,
    pub enobufs: u64,
    /// Traced processes writing to it and reading from it (pipes and FIFOs: as found in the
    /// writer's family; sockets: the writers).
    pub writers: Vec<u32>,
    pub readers: Vec<u32>,
    /// The longest blocked write: who and where.
    pub longest: Option<StallWriter>,
    /// The first refused write.
    pub refused: Option<StallWriter>,
    pub first_age_ms: u64,
    pub last_age_ms: u64,
    pub fix: &'static str,
}

#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct StallWriter {
    pub pid: u32,
    pub tid: u32,
    pub fd: i32,
    pub blocked_ms: u64,
    pub stack: Stack,
}
