//! Detaching without waiting for the kernel. Closing the last reference to a plain tracepoint's
//! perf event unregisters it in `perf_trace_event_unreg()` (kernel/trace/trace_event_perf.c),
//! which waits for `tracepoint_synchronize_unregister()` (an RCU Tasks Trace and an RCU grace
//! period) under the global `event_mutex`, after `perf_event_detach_bpf_prog()` waited for
//! another: about 60 ms per tracepoint here, one after the other, so 0.7-0.9 s for the twelve a
//! capture attaches. A process pays that at its exit, before its parent sees it end.
//!
//! `tracer run` has nothing left to learn by then, so it hands those last references to the
//! kernel: a new reference to each link goes into an io_uring's file table, and the ring is
//! closed. The kernel frees a closed ring's file table in a worker
//! (io_uring/io_uring.c `io_ring_exit_work`), so the links detach there, within about a second,
//! whether tracer is still running or not. Where io_uring is unavailable (disabled by the
//! `kernel.io_uring_disabled` sysctl or a seccomp filter, or a kernel before 5.1) or a link is no
//! BPF link (kernels before 5.15 attach perf events by ioctl), the links detach as usual, waiting.

use std::{
    io,
    os::fd::{AsRawFd, FromRawFd, OwnedFd},
};

use aya::programs::{links::FdLink, trace_point::TracePointLink};

use super::Probes;

/// `BPF_LINK_GET_FD_BY_ID` (include/uapi/linux/bpf.h `enum bpf_cmd`).
const BPF_LINK_GET_FD_BY_ID: libc::c_long = 30;
/// `IORING_REGISTER_FILES` (include/uapi/linux/io_uring.h).
const IORING_REGISTER_FILES: libc::c_long = 2;
/// `struct io_uring_params` is 120 bytes; all zero asks for nothing special.
const IO_URING_PARAMS_WORDS: usize = 30;

impl Probes {
    /// Detaches everything without waiting for the kernel to unregister the plain tracepoints:
    /// `tp_btf/sys_exit` (a raw tracepoint, cheap to detach) and every map and program go now;
    /// the plain tracepoints' links go to a kernel worker (see the module's comment), their
    /// programs doing nothing meanwhile since no process is traced any more.
    pub fn detach_without_waiting(mut self) {
        let traced: Vec<u32> = self.traced.keys().filter_map(Result::ok).collect();
        for tgid in traced {
            self.untrace(tgid);
        }
        let links = std::mem::take(&mut self.perf_links);
        let mut fds = Vec::with_capacity(links.len());
        // Our own references to the links go with `links`, after the kernel holds its own.
        let mut fd_links = Vec::with_capacity(links.len());
        for link in links {
            // Not a BPF link (an old kernel's ioctl attachment): it detaches here, waiting.
            let Ok(fd_link) = FdLink::try_from(link) else {
                continue;
            };
            match fd_link
                .info()
                .map(|i| i.id())
                .map_err(io::Error::other)
                .and_then(link_fd)
            {
                Ok(fd) => fds.push(fd),
                Err(e) => log::debug!("link kept for a detach in place: {e}"),
            }
            fd_links.push(fd_link);
        }
        let ring = if fds.is_empty() {
            None
        } else {
            hand_to_kernel(&fds)
                .inspect_err(|e| log::debug!("io_uring unavailable ({e}); detaching in place"))
                .ok()
        };
        drop(fds);
        drop(fd_links);
        drop(self);
        // Closed last: the kernel's references must be the last ones.
        drop(ring);
    }

    /// Keeps the link of a plain tracepoint apart, for [`Probes::detach_without_waiting`].
    pub(super) fn keep_perf_link(&mut self, link: TracePointLink) {
        self.perf_links.push(link);
    }
}

/// A new file descriptor for the BPF link `id` (`BPF_LINK_GET_FD_BY_ID`, CAP_SYS_ADMIN).
fn link_fd(id: u32) -> io::Result<OwnedFd> {
    // The `BPF_*_GET_FD_BY_ID` part of `union bpf_attr`: the id, `next_id`, `open_flags`.
    let attr: [u32; 3] = [id, 0, 0];
    // SAFETY: `attr` is valid for its size for the whole call; the kernel only reads it.
    let fd = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            BPF_LINK_GET_FD_BY_ID,
            attr.as_ptr(),
            std::mem::size_of_val(&attr),
        )
    };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: the kernel returned a new file descriptor that nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as i32) })
}

/// Registers `fds` in a new io_uring's file table. Once the caller has dropped its own
/// references and then the ring, the kernel drops the ring's in a worker.
fn hand_to_kernel(fds: &[OwnedFd]) -> io::Result<OwnedFd> {
    let mut params = [0u32; IO_URING_PARAMS_WORDS];
    // SAFETY: `params` is a zeroed `struct io_uring_params` the kernel fills in; one entry.
    let ring = unsafe { libc::syscall(libc::SYS_io_uring_setup, 1u32, params.as_mut_ptr()) };
    if ring < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: the kernel returned a new file descriptor that nothing else owns; the ring's
    // memory is never mapped here.
    let ring = unsafe { OwnedFd::from_raw_fd(ring as i32) };
    let raw: Vec<i32> = fds.iter().map(AsRawFd::as_raw_fd).collect();
    // SAFETY: `raw` holds `raw.len()` open file descriptors for the duration of the call.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_io_uring_register,
            ring.as_raw_fd(),
            IORING_REGISTER_FILES,
            raw.as_ptr(),
            raw.len() as u32,
        )
    };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(ring)
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant};

    use super::*;
    use crate::probes::ProbeOptions;

    #[test]
    fn the_links_left_to_the_kernel_are_gone_soon_after() {
        let mut probes = Probes::load(ProbeOptions::default()).unwrap_or_else(|e| panic!("{e}"));
        let mut ids = Vec::new();
        for link in std::mem::take(&mut probes.perf_links) {
            let fd_link = FdLink::try_from(link).unwrap_or_else(|e| panic!("not a BPF link: {e}"));
            ids.push(fd_link.info().unwrap_or_else(|e| panic!("{e}")).id());
            let link = TracePointLink::try_from(fd_link).unwrap_or_else(|e| panic!("{e}"));
            probes.keep_perf_link(link);
        }
        assert!(ids.len() >= 8, "{ids:?}");
        probes.detach_without_waiting();
        // The kernel's worker needs about 60 ms a link.
        let deadline = Instant::now() + Duration::from_secs(10);
        let alive = |id: &u32| link_fd(*id).is_ok();
        while ids.iter().any(alive) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(50));
        }
        let left: Vec<u32> = ids.iter().copied().filter(alive).collect();
        assert!(left.is_empty(), "links still attached 10 s later: {left:?}");
    }
}
