//! x86_64 `struct pt_regs` (arch/x86/include/asm/ptrace.h): the user registers saved at syscall
//! entry. The syscall leaves them untouched except `ax`, so arguments are still there at exit.

use aya_ebpf::helpers::{bpf_probe_read_kernel, bpf_probe_read_kernel_buf};

/// Offsets, in u64 words.
const BP: usize = 4;
const R10: usize = 7;
const R9: usize = 8;
const R8: usize = 9;
const DX: usize = 12;
const SI: usize = 13;
const DI: usize = 14;
const ORIG_AX: usize = 15;
const IP: usize = 16;
const SP: usize = 19;
/// Words up to and including `sp`.
const WORDS: usize = 20;

/// The syscall number alone: the one read every syscall on the host pays. With `BTF` (a
/// `tp_btf` program, whose `regs` the verifier knows as a `struct pt_regs *`) a plain load;
/// otherwise a `bpf_probe_read_kernel`.
#[inline(always)]
pub fn syscall_nr<const BTF: bool>(regs: *const u8) -> Result<u64, i64> {
    if BTF {
        // SAFETY: `regs` is the tracepoint's typed `struct pt_regs *`: the verifier checks this
        // load against the struct's BTF and turns it into a load that cannot fault.
        return Ok(unsafe { core::ptr::read_volatile(regs.add(ORIG_AX * 8).cast::<u64>()) });
    }
    // SAFETY: `regs` is the `struct pt_regs *` the tracepoint passes; bpf_probe_read_kernel
    // checks the access and fails instead of faulting.
    unsafe { bpf_probe_read_kernel(regs.add(ORIG_AX * 8).cast::<u64>()) }.map_err(i64::from)
}

/// All the registers a record needs.
#[derive(Clone, Copy)]
pub struct Regs([u64; WORDS]);

impl Regs {
    /// With `BTF`, one plain load per word (see [`syscall_nr`]); otherwise one helper call.
    #[inline(always)]
    pub fn read<const BTF: bool>(regs: *const u8) -> Result<Self, i64> {
        let mut r = Regs([0; WORDS]);
        if BTF {
            let words = regs.cast::<u64>();
            let mut i = 0;
            while i < WORDS {
                // SAFETY: as in `syscall_nr`: typed, verifier-checked loads within pt_regs.
                r.0[i] = unsafe { core::ptr::read_volatile(words.add(i)) };
                i += 1;
            }
            return Ok(r);
        }
        // SAFETY: the destination is a local array of exactly WORDS * 8 bytes.
        let dst = unsafe { core::slice::from_raw_parts_mut(r.0.as_mut_ptr().cast::<u8>(), WORDS * 8) };
        // SAFETY: the kernel-side pointer is checked by the helper.
        unsafe { bpf_probe_read_kernel_buf(regs, dst) }.map_err(i64::from)?;
        Ok(r)
    }

    /// The six syscall arguments in order (x86_64 passes the fourth in r10, not rcx).
    #[inline(always)]
    pub fn args(&self) -> [u64; 6] {
        [self.0[DI], self.0[SI], self.0[DX], self.0[R10], self.0[R8], self.0[R9]]
    }

    #[inline(always)]
    pub fn ip(&self) -> u64 {
        self.0[IP]
    }

    #[inline(always)]
    pub fn sp(&self) -> u64 {
        self.0[SP]
    }

    #[inline(always)]
    pub fn bp(&self) -> u64 {
        self.0[BP]
    }
}
