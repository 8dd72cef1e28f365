//! `--kernel-stack`: a kprobe on `fd_install` (fs/file.c: every descriptor a syscall installs
//! goes through it) takes the kernel stack of the installation; the thread's `sys_exit` record
//! picks it up. Needs kprobes, which the agent probes for at start-up and refuses clearly without.

use aya_ebpf::{
    helpers::bpf_get_current_pid_tgid,
    macros::kprobe,
    programs::{ProbeContext, tracing::StackIdContext},
};
use tracer_common::config::LossCounter;

use crate::maps::{KSTACK_PENDING, KSTACKS, count_loss, is_traced};

#[kprobe]
pub fn fd_install(ctx: ProbeContext) -> u32 {
    let pid_tgid = bpf_get_current_pid_tgid();
    if !is_traced((pid_tgid >> 32) as u32) {
        return 0;
    }
    match ctx.get_stackid(&KSTACKS, 0) {
        Ok(id) => {
            let _ = KSTACK_PENDING.insert(&(pid_tgid as u32), &id, 0);
        }
        Err(_) => count_loss(LossCounter::StackLost),
    }
    0
}
