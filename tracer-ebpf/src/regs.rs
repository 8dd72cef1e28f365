//! x86_64 `struct pt_regs` (arch/x86/include/asm/ptrace.h): the user registers saved at syscall
//! entry. The syscall leaves them untouched except `ax`, so arguments are still there at exit.

use aya_ebpf::helpers::bpf_probe_read_kernel;

pub const BP: usize = 32;
pub const R10: usize = 56;
pub const R9: usize = 64;
pub const R8: usize = 72;
pub const DX: usize = 96;
pub const SI: usize = 104;
pub const DI: usize = 112;
pub const ORIG_AX: usize = 120;
pub const IP: usize = 128;
pub const SP: usize = 152;

/// Reads one saved register.
#[inline(always)]
pub fn read(regs: *const u8, offset: usize) -> Result<u64, i64> {
    // SAFETY: `regs` is the `struct pt_regs *` the tracepoint passes; bpf_probe_read_kernel
    // checks the access and fails instead of faulting.
    unsafe { bpf_probe_read_kernel(regs.add(offset).cast::<u64>()) }.map_err(i64::from)
}

/// The six syscall arguments in order (x86_64 passes the fourth in r10, not rcx).
#[inline(always)]
pub fn args(regs: *const u8) -> Result<[u64; 6], i64> {
    Ok([
        read(regs, DI)?,
        read(regs, SI)?,
        read(regs, DX)?,
        read(regs, R10)?,
        read(regs, R8)?,
        read(regs, R9)?,
    ])
}
