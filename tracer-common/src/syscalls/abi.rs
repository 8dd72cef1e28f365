//! Kernel ABI values the kernel side tests in syscall arguments and results (x86_64). Plain
//! numbers: the programs are `no_std` for the BPF target, where `libc` has none of them.

/// `fcntl` commands that duplicate (`include/uapi/linux/fcntl.h`).
pub const F_DUPFD: u64 = 0;
pub const F_DUPFD_CLOEXEC: u64 = 1030;
/// `fcntl` commands that take a lock (`include/uapi/asm-generic/fcntl.h`): POSIX and OFD locks.
pub const F_SETLK: u64 = 6;
pub const F_SETLKW: u64 = 7;
pub const F_OFD_SETLK: u64 = 37;
pub const F_OFD_SETLKW: u64 = 38;

/// True for the fcntl commands the kernel reports.
pub const fn fcntl_is_lock(cmd: u64) -> bool {
    cmd == F_SETLK || cmd == F_SETLKW || cmd == F_OFD_SETLK || cmd == F_OFD_SETLKW
}
pub const fn fcntl_is_dup(cmd: u64) -> bool {
    cmd == F_DUPFD || cmd == F_DUPFD_CLOEXEC
}

/// `IPC_RMID` (include/uapi/linux/ipc.h); glibc ORs `IPC_64` (0x100) into `*ctl` commands.
pub const IPC_RMID: u64 = 0;
/// `FD_SETSIZE`: bits in an `fd_set` (glibc).
pub const FD_SETSIZE: u64 = 1024;
/// `mmap` prot and flags (include/uapi/asm-generic/mman-common.h).
pub const PROT_EXEC: u64 = 0x4;
pub const MAP_ANONYMOUS: u64 = 0x20;

/// Whether `mmap` arguments map code from a file (what the dynamic loader does per library).
pub const fn maps_code(args: &[u64; 6]) -> bool {
    args[2] & PROT_EXEC != 0 && args[3] & MAP_ANONYMOUS == 0 && (args[4] as i32) >= 0
}

/// Errors the kernel side tests (include/uapi/asm-generic/errno-base.h, errno.h).
pub const EBADF: i64 = 9;
pub const EAGAIN: i64 = 11;
pub const ENFILE: i64 = 23;
pub const EMFILE: i64 = 24;
pub const ENOSPC: i64 = 28;
pub const EPIPE: i64 = 32;
pub const ENOBUFS: i64 = 105;
/// `SIGCHLD` on x86_64.
pub const SIGCHLD: u64 = 17;

/// Whether `rt_sigaction` arguments install a SIGCHLD action (`act` not NULL).
pub const fn installs_sigchld_action(args: &[u64; 6]) -> bool {
    args[0] == SIGCHLD && args[1] != 0
}

/// Clone flags the kernel side inspects (`include/uapi/linux/sched.h`).
pub const CLONE_FILES: u64 = 0x0000_0400;
pub const CLONE_THREAD: u64 = 0x0001_0000;
