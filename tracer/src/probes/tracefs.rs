//! Plain tracepoints are attached through tracefs; a fresh machine may not have it mounted.

use std::path::Path;

#[derive(Debug, thiserror::Error)]
pub enum TracefsError {
    #[error(
        "tracefs is not mounted and mounting it failed ({0}); mount it with: mount -t tracefs nodev /sys/kernel/tracing"
    )]
    MountFailed(std::io::Error),
}

const TRACEFS: &str = "/sys/kernel/tracing";

pub fn ensure_mounted() -> Result<(), TracefsError> {
    if Path::new(TRACEFS).join("events").is_dir() || Path::new("/sys/kernel/debug/tracing/events").is_dir() {
        return Ok(());
    }
    let target = c"/sys/kernel/tracing";
    // SAFETY: all pointers are valid NUL-terminated strings; mount(2) does not keep them.
    let rc = unsafe {
        libc::mount(
            c"nodev".as_ptr(),
            target.as_ptr(),
            c"tracefs".as_ptr(),
            0,
            std::ptr::null(),
        )
    };
    if rc != 0 {
        return Err(TracefsError::MountFailed(std::io::Error::last_os_error()));
    }
    Ok(())
}
