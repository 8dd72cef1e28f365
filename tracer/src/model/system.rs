//! System-wide headroom in the report: SysV tables, file handles and the ceilings a process
//! may raise its limits to (read by `procfs::sysv` when a report is built).

/// Used and maximum of one system-wide table.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct Usage {
    pub used: u64,
    pub max: Option<u64>,
}

/// System-wide headroom, read when a report is built.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct SystemLimits {
    /// Semaphore sets against SEMMNI (4th field of /proc/sys/kernel/sem).
    pub sem_sets: Usage,
    /// Shared memory segments against SHMMNI.
    pub shm_segments: Usage,
    /// Message queues against MSGMNI.
    pub msg_queues: Usage,
    /// Allocated file handles against fs.file-max (/proc/sys/fs/file-nr).
    pub file_handles: Usage,
    /// fs.nr_open: the highest RLIMIT_NOFILE a process may set.
    pub nr_open: Option<u64>,
    /// fs.pipe-max-size: the largest pipe an unprivileged process may ask for (F_SETPIPE_SZ).
    pub pipe_max_size: Option<u64>,
    /// net.core.wmem_max: the largest SO_SNDBUF an unprivileged process may set.
    pub wmem_max: Option<u64>,
}
