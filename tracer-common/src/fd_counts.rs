//! The fd-count iterator (`iter/task`): one [`ProcessFdCount`] per process on the host, written
//! to the iterator's seq file, without any syscall hook. The agent reads it every tick to count
//! every process's open fds, and traces with stacks only the processes whose count grows.
//!
//! The count is the popcount of the process's open-fd bitmap (`files->fdt->open_fds`, as
//! `fd_install`/`close_fd` keep it; `fs/file.c`), so it is exact at the moment of reading.
//! The kernel's struct layouts are not known when the program is built: the loader reads the
//! field offsets from the running kernel's BTF and hands them over in [`TASK_OFFSETS_GLOBAL`].

/// The iterator program (`iter/task` section).
pub const FD_COUNTS_PROGRAM: &str = "fd_counts";
/// Global (`aya_ebpf::Global<[u32; OFFSETS]>`): the field offsets, indexed by [`offset`].
pub const TASK_OFFSETS_GLOBAL: &str = "TASK_OFFSETS";

/// Indices into [`TASK_OFFSETS_GLOBAL`]: byte offsets of the fields the program reads.
pub mod offset {
    /// `task_struct.pid`
    pub const TASK_PID: usize = 0;
    /// `task_struct.tgid`
    pub const TASK_TGID: usize = 1;
    /// `task_struct.files`
    pub const TASK_FILES: usize = 2;
    /// `task_struct.signal`
    pub const TASK_SIGNAL: usize = 3;
    /// `task_struct.comm`
    pub const TASK_COMM: usize = 4;
    /// `files_struct.fdt`
    pub const FILES_FDT: usize = 5;
    /// `fdtable.max_fds`
    pub const FDT_MAX_FDS: usize = 6;
    /// `fdtable.open_fds`
    pub const FDT_OPEN_FDS: usize = 7;
    /// `signal_struct.rlim`
    pub const SIGNAL_RLIM: usize = 8;
    /// `task_struct.flags`
    pub const TASK_FLAGS: usize = 9;
    /// Non-zero once the loader filled the table (a program run without offsets writes nothing).
    pub const FILLED: usize = 10;
}
/// Entries of [`TASK_OFFSETS_GLOBAL`].
pub const OFFSETS: usize = 11;

/// `PF_KTHREAD` (include/linux/sched.h): kernel threads are not counted (they share the
/// kernel's own fd table and leak nothing a user can fix).
pub const PF_KTHREAD: u32 = 0x0020_0000;

/// `RLIMIT_NOFILE`, and the size of a `struct rlimit` (two `unsigned long`s) on 64-bit kernels.
pub const RLIMIT_NOFILE: u32 = 7;
pub const RLIMIT_SIZE: u32 = 16;

/// Bitmap words (64 fds each) read per process at most: 8,388,608 fds, past any `nr_open` in
/// use. A bigger table is counted up to there and flagged [`flags::TRUNCATED`].
pub const MAX_WORDS: u32 = 1 << 17;
/// Words read per `bpf_probe_read_kernel` call (one `bpf_loop` step; the verifier checks the
/// step once, so the loop's length costs nothing at load).
pub const CHUNK_WORDS: u32 = 8;

pub mod flags {
    /// The bitmap was longer than [`super::MAX_WORDS`]: `open_fds` is a lower bound.
    pub const TRUNCATED: u32 = 1;
    /// A read of the bitmap failed part way: `open_fds` is a lower bound.
    pub const READ_FAILED: u32 = 2;
}

/// One process (thread-group leader with an fd table) as the iterator saw it.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ProcessFdCount {
    pub tgid: u32,
    /// Open fds: bits set in the open-fd bitmap.
    pub open_fds: u32,
    /// Size of the fd table now (it grows by doubling up to the hard limit).
    pub max_fds: u32,
    /// [`flags`].
    pub flags: u32,
    /// Soft `RLIMIT_NOFILE` (`u64::MAX`: unlimited).
    pub nofile_soft: u64,
    pub comm: [u8; 16],
}

/// Bytes of one record in the seq file.
pub const RECORD_SIZE: usize = core::mem::size_of::<ProcessFdCount>();

#[cfg(feature = "user")]
impl ProcessFdCount {
    /// Decodes one record from the iterator's output (`None` if `bytes` is short).
    pub fn decode(bytes: &[u8]) -> Option<ProcessFdCount> {
        let b = bytes.get(..RECORD_SIZE)?;
        let u32_at = |i: usize| u32::from_ne_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]]);
        let mut nofile = [0u8; 8];
        nofile.copy_from_slice(&b[16..24]);
        let mut comm = [0u8; 16];
        comm.copy_from_slice(&b[24..40]);
        Some(ProcessFdCount {
            tgid: u32_at(0),
            open_fds: u32_at(4),
            max_fds: u32_at(8),
            flags: u32_at(12),
            nofile_soft: u64::from_ne_bytes(nofile),
            comm,
        })
    }

    /// The command name up to its first NUL.
    pub fn comm(&self) -> &[u8] {
        let end = self.comm.iter().position(|b| *b == 0).unwrap_or(self.comm.len());
        &self.comm[..end]
    }

    /// Exact unless the table was too big or a read failed.
    pub fn is_exact(&self) -> bool {
        self.flags == 0
    }
}

#[cfg(all(test, feature = "user"))]
mod tests {
    use super::*;

    #[test]
    fn record_round_trips() {
        assert_eq!(RECORD_SIZE, 40);
        let r = ProcessFdCount {
            tgid: 4242,
            open_fds: 19_005,
            max_fds: 32_768,
            flags: 0,
            nofile_soft: 1024,
            comm: *b"nginx\0\0\0\0\0\0\0\0\0\0\0",
        };
        // SAFETY: `ProcessFdCount` is `repr(C)` plain data without padding (40 bytes).
        let bytes: [u8; RECORD_SIZE] = unsafe { core::mem::transmute(r) };
        assert_eq!(ProcessFdCount::decode(&bytes), Some(r));
        assert_eq!(r.comm(), b"nginx");
        assert!(r.is_exact());
        assert_eq!(ProcessFdCount::decode(&bytes[..39]), None);
    }
}
