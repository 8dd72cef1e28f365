//! File lock records from `filelock/flock_lock_inode` and `filelock/posix_lock_inode`
//! (fs/locks.c): every attempt to take or release a lock, with the kernel's verdict.

use crate::record::RecordHeader;

/// Which lock family a record is about.
pub mod family {
    /// `flock(2)`: one lock per open file description.
    pub const FLOCK: u32 = 1;
    /// `fcntl(2)` byte-range locks: POSIX (owned by the process) or OFD (by the open file).
    pub const POSIX: u32 = 2;
}

/// `fl_type` values (include/uapi/asm-generic/fcntl.h).
pub mod lock_type {
    pub const READ: u8 = 0;
    pub const WRITE: u8 = 1;
    pub const UNLOCK: u8 = 2;
}

/// `fl_flags` bits (include/linux/filelock.h).
pub mod flags {
    pub const FL_POSIX: u32 = 1;
    pub const FL_FLOCK: u32 = 2;
    /// The unlock comes from the last close of the file (or a POSIX owner's close).
    pub const FL_CLOSE: u32 = 64;
    pub const FL_SLEEP: u32 = 128;
    pub const FL_OFDLCK: u32 = 1024;
}

/// `ret` of a lock attempt that will wait (`FILE_LOCK_DEFERRED`, include/linux/filelock.h).
pub const FILE_LOCK_DEFERRED: i32 = 1;

/// One lock operation as the lock code saw it.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LockRecord {
    pub header: RecordHeader,
    /// [`family`].
    pub family: u32,
    /// `fl_flags`.
    pub flags: u32,
    pub ino: u64,
    pub dev: u32,
    /// `fl_pid`: the process the lock is (or would be) held for.
    pub pid: u32,
    /// `fl_owner`: the open file (flock, OFD) or the fd table (POSIX): who holds it.
    pub owner: u64,
    pub start: i64,
    pub end: i64,
    /// 0 on success, [`FILE_LOCK_DEFERRED`] when the caller will wait, `-errno` on failure.
    pub ret: i32,
    /// [`lock_type`].
    pub lock_type: u8,
    pub _pad: [u8; 3],
}
