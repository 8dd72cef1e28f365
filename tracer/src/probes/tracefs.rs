//! Plain tracepoints are attached through tracefs; a fresh machine may not have it mounted.
//! Their format files there say where each field of a record is: the programs' offsets are
//! checked against them before loading.

use std::path::{Path, PathBuf};

use tracer_common::tracepoints;

#[derive(Debug, thiserror::Error)]
pub enum TracefsError {
    #[error(
        "tracefs is not mounted and mounting it failed ({0}); mount it with: mount -t tracefs nodev /sys/kernel/tracing"
    )]
    MountFailed(std::io::Error),
    #[error("cannot read the tracepoint format {}: {source}", path.display())]
    Format {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Offsets(#[from] tracepoints::FormatMismatch),
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

/// Checks every tracepoint field the programs read (`tracer_common::tracepoints::OFFSETS`)
/// against this kernel's format files.
pub fn check_formats() -> Result<(), TracefsError> {
    let debugfs = Path::new("/sys/kernel/debug/tracing");
    let root = if Path::new(TRACEFS).join("events").is_dir() || !debugfs.join("events").is_dir() {
        Path::new(TRACEFS)
    } else {
        debugfs
    };
    check_formats_in(root)
}

fn check_formats_in(root: &Path) -> Result<(), TracefsError> {
    for event in tracepoints::OFFSETS {
        let path = root.join("events").join(event.category).join(event.name).join("format");
        let text = std::fs::read_to_string(&path).map_err(|source| TracefsError::Format { path, source })?;
        tracepoints::check_format(event, &text)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn this_kernels_formats_match_and_a_moved_field_fails_with_its_name() {
        ensure_mounted().unwrap_or_else(|e| panic!("{e}"));
        check_formats().unwrap_or_else(|e| panic!("{e}"));
        // A copy of this kernel's formats with one field moved.
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        for event in tracepoints::OFFSETS {
            let rel = Path::new("events").join(event.category).join(event.name);
            let text = std::fs::read_to_string(Path::new(TRACEFS).join(&rel).join("format"))
                .unwrap_or_else(|e| panic!("{e}"))
                .replace(
                    "field:bool group_dead;\toffset:32;",
                    "field:bool group_dead;\toffset:36;",
                );
            std::fs::create_dir_all(dir.path().join(&rel)).unwrap_or_else(|e| panic!("{e}"));
            std::fs::write(dir.path().join(&rel).join("format"), text).unwrap_or_else(|e| panic!("{e}"));
        }
        let err = check_formats_in(dir.path())
            .map(|()| String::new())
            .unwrap_or_else(|e| e.to_string());
        assert!(err.contains("sched/sched_process_exit field `group_dead`"), "{err}");
        assert!(err.contains("offset 32") && err.contains("offset 36"), "{err}");
        let err = check_formats_in(&dir.path().join("nowhere"))
            .map(|()| String::new())
            .unwrap_or_else(|e| e.to_string());
        assert!(err.contains("task_newtask/format"), "{err}");
    }
}
