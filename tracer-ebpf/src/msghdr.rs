//! Received descriptors: `recvmsg` and `recvmmsg` return `SCM_RIGHTS` control messages in the
//! caller's `struct msghdr` (include/linux/socket.h, user ABI). After the call the kernel has
//! written back `msg_controllen`, the bytes of control data actually used; the agent parses the
//! `struct cmsghdr`s in the bytes copied here.

use aya_ebpf::helpers::{bpf_probe_read_user, bpf_probe_read_user_buf};
use tracer_common::config::{DATA_MAX, RECVMMSG_MAX};

/// `struct msghdr` offsets (include/linux/socket.h, user ABI).
pub const MSG_CONTROL: u64 = 32;
pub const MSG_CONTROLLEN: u64 = 40;
/// `struct mmsghdr` is a msghdr (56 bytes) plus `unsigned int msg_len`, padded to 64.
pub const MMSGHDR_SIZE: u64 = 64;
/// A control buffer shorter than one `struct cmsghdr` carries no descriptors.
pub const CMSGHDR_SIZE: u64 = 16;

/// Whether any of the `received` messages of a `recvmmsg` carries control data.
#[inline(always)]
pub fn any_control(mmsghdr: u64, received: u32) -> Result<bool, i64> {
    for i in 0..RECVMMSG_MAX {
        if i >= received {
            break;
        }
        let (ptr, len) = control_of(mmsghdr + u64::from(i) * MMSGHDR_SIZE)?;
        if ptr != 0 && len >= CMSGHDR_SIZE {
            return Ok(true);
        }
    }
    Ok(false)
}

/// `msg_control` and the `msg_controllen` the kernel wrote back (the bytes actually used).
#[inline(always)]
pub fn control_of(msghdr: u64) -> Result<(u64, u64), i64> {
    // SAFETY: user pointers are read with bpf_probe_read_user, which fails instead of faulting.
    let ptr: u64 = unsafe { bpf_probe_read_user((msghdr + MSG_CONTROL) as *const u64) }.map_err(i64::from)?;
    // SAFETY: as above.
    let len: u64 = unsafe { bpf_probe_read_user((msghdr + MSG_CONTROLLEN) as *const u64) }.map_err(i64::from)?;
    Ok((ptr, len))
}

/// Copies up to `DATA_MAX` control bytes, in power-of-two steps the verifier can bound.
#[inline(always)]
pub fn copy_control(ptr: u64, len: u64, data: &mut [u8; DATA_MAX]) -> usize {
    let src = ptr as *const u8;
    let sizes: [usize; 4] = [256, 128, 64, 32];
    let mut i = 0;
    while i < 4 {
        let n = sizes[i];
        // Reading past `len` is harmless while it stays mapped; a read crossing into an unmapped
        // page fails and the next, smaller size is tried.
        // SAFETY: bpf_probe_read_user fails instead of faulting on bad user pointers.
        if unsafe { bpf_probe_read_user_buf(src, &mut data[..n]) }.is_ok() {
            return if len < n as u64 { len as usize } else { n };
        }
        i += 1;
    }
    0
}
