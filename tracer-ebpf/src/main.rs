//! tracer's kernel programs. Small and dumb on purpose: filter by the traced process set, capture,
//! emit. What a syscall means for an fd table is decided in the agent.
//!
//! Hooks (all but the optional kprobe load on kernels without kprobes or BPF trampolines):
//! - `tp_btf/sys_exit` ([`sys_exit`]; `raw_tracepoint/sys_exit` without BTF): results of the
//!   syscalls in the capture table, as records ([`syscall_record`]) with the received control
//!   data ([`msghdr`]) and user stack ([`user_stack`]) they need.
//!   In a CPython process the thread's Python frames go with it ([`python`]).
//! - `task/task_newtask` and `sched/sched_process_{exec,exit}` ([`process`]): follow children,
//!   exec and exit; `sched/sched_process_free`: zombies reaped.
//! - `filelock/{flock,posix}_lock_inode` ([`lock`]): lock attempts, waits and releases.
//! - `signal/signal_{generate,deliver}` ([`signal`]): signals sent, merged, ignored, handled.
//! - `syscalls/sys_enter_{write,writev,sendto,sendmsg}` ([`write`]): when a write started, for
//!   writes that block on a full pipe, eventfd or socket (not attached with `--write-block 0`).
//! - Optional, where kprobes exist: `kprobe/fd_install` ([`kstack`]) for `--kernel-stack`.
//! - [`floor`]: empty programs for the same hooks, for the benchmark's floor (`tracer floor`).
#![cfg_attr(target_arch = "bpf", no_std)]
#![cfg_attr(target_arch = "bpf", no_main)]

#[cfg(target_arch = "bpf")]
mod floor;
#[cfg(target_arch = "bpf")]
mod kstack;
#[cfg(target_arch = "bpf")]
mod lock;
#[cfg(target_arch = "bpf")]
mod maps;
#[cfg(target_arch = "bpf")]
mod msghdr;
#[cfg(target_arch = "bpf")]
mod process;
#[cfg(target_arch = "bpf")]
mod python;
#[cfg(target_arch = "bpf")]
mod regs;
#[cfg(target_arch = "bpf")]
mod signal;
#[cfg(target_arch = "bpf")]
mod sys_exit;
#[cfg(target_arch = "bpf")]
mod syscall_record;
#[cfg(target_arch = "bpf")]
mod tracepoint;
#[cfg(target_arch = "bpf")]
mod user_stack;
#[cfg(target_arch = "bpf")]
mod write;

#[cfg(target_arch = "bpf")]
#[panic_handler]
fn panic(_info: &core::panic::PanicInfo) -> ! {
    // SAFETY: the verifier rejects programs that can reach this; it is never executed.
    unsafe { core::hint::unreachable_unchecked() }
}

#[cfg(target_arch = "bpf")]
#[unsafe(link_section = "license")]
#[unsafe(no_mangle)]
static LICENSE: [u8; 4] = *b"GPL\0";

#[cfg(not(target_arch = "bpf"))]
fn main() {}
