//! Map failures: which are losses.

use super::is_not_found;
use aya::{maps::MapError, sys::SyscallError};

fn syscall_error(errno: i32) -> MapError {
    MapError::SyscallError(SyscallError {
        call: "bpf_map_update_elem",
        io_error: std::io::Error::from_raw_os_error(errno),
    })
}

#[test]
fn only_a_missing_key_is_not_a_failure() {
    // The kernel removed it first (exit, LRU eviction): nothing to count.
    assert!(is_not_found(&MapError::KeyNotFound));
    assert!(is_not_found(&syscall_error(libc::ENOENT)));
    // A full map, no memory, no right: a process not followed as asked, counted and logged.
    assert!(!is_not_found(&syscall_error(libc::E2BIG)));
    assert!(!is_not_found(&syscall_error(libc::ENOMEM)));
    assert!(!is_not_found(&syscall_error(libc::EPERM)));
}
