//! `syscalls/sys_enter_{write,writev,sendto,sendmsg}`: when a traced thread enters a write, so
//! that `sys_exit` ([`crate::sys_exit`]) can tell how long it took. A writer blocks in these calls when
//! the buffer it writes to is full: `pipe_write` sleeps on `pipe->wr_wait` while the pipe is full
//! (fs/pipe.c), `eventfd_write` while the counter would pass `ULLONG_MAX - 1` (fs/eventfd.c),
//! `sock_alloc_send_pskb` in `sock_wait_for_wmem` while the send buffer is full and
//! `unix_wait_for_peer` while a datagram peer's queue is (net/unix/af_unix.c). The agent keeps
//! only writes to those fds; a slow write to a file or a TCP socket is not its business.
//!
//! Per-syscall tracepoints rather than `raw_tracepoint/sys_enter`: the entry-side dispatch is on
//! already (`sys_enter_clone` and friends are attached), and the kernel runs a per-syscall
//! program only for its own syscall number (`perf_syscall_enter` tests a bitmap), so no other
//! syscall of the host pays anything new. Reads nothing from the tracepoint's fields.

use aya_ebpf::{helpers::bpf_get_current_pid_tgid, macros::tracepoint, programs::TracePointContext};

use crate::maps::{WRITE_START, is_traced, now};

#[tracepoint]
pub fn sys_enter_write(_ctx: TracePointContext) -> u32 {
    let pid_tgid = bpf_get_current_pid_tgid();
    if is_traced((pid_tgid >> 32) as u32) {
        // Full (16,384 threads inside a write at once, LRU): the oldest entry goes.
        let _ = WRITE_START.insert(&(pid_tgid as u32), &now(), 0);
    }
    0
}
