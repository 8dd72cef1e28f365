//! Names and sizes shared by the loader and the programs.

/// Ring buffer that carries every record (one buffer keeps the order of an fd's open and close).
pub const EVENTS_MAP: &str = "EVENTS";
/// `HashMap<u32 tgid, u8>`: the traced processes. The agent fills it; fork adds children. The
/// value is [`TRACED_NEEDS_MAPS`] until the agent has read the process's memory maps.
pub const TRACED_MAP: &str = "TRACED";
/// `TRACED` value: the agent has not read the process's maps yet: allocation records wake it.
pub const TRACED_NEEDS_MAPS: u8 = 1;
/// `TRACED` value: the agent has the maps; records are batched.
pub const TRACED_HAS_MAPS: u8 = 2;
/// `Array<u8>` of [`TRACED_HINT_SLOTS`], indexed by `tgid % TRACED_HINT_SLOTS`: 0 when no
/// process of that slot was ever traced, so the untraced processes' captured syscalls (a
/// bystander's opens and closes) cost an array read instead of a hash lookup. Slots are set
/// (by the agent before it adds a process, by the programs before they add a child) and never
/// cleared: a stale slot only costs the hash lookup again.
pub const TRACED_HINT_MAP: &str = "TRACED_HINT";
pub const TRACED_HINT_SLOTS: u32 = 65536;
/// `Array<u32>` indexed by syscall number: the capture spec (see [`crate::syscalls::Capture`]).
pub const CAPTURE_MAP: &str = "CAPTURE";
/// `PerCpuArray<u64>` of loss counters, indexed by [`LossCounter`].
pub const LOSS_MAP: &str = "LOSSES";
/// Stack-trace map for `--stack fp`.
pub const STACKS_MAP: &str = "STACKS";
/// User stacks in the stack-trace map with `--stack fp` (one entry in the other modes).
pub const STACKS_ENTRIES: u32 = 16384;
/// Kernel stack-trace map for `--kernel-stack` (one entry unless enabled).
pub const KSTACKS_MAP: &str = "KSTACKS";
/// Kernel stacks in the kernel map when the option is on.
pub const KSTACKS_ENTRIES: u32 = 16384;
/// Global (`aya_ebpf::Global<u32>`): non-zero attaches kernel stacks of fd installation.
pub const KERNEL_STACK_GLOBAL: &str = "KERNEL_STACK";
/// The kprobe program and the kernel function it hooks for `--kernel-stack`.
pub const KSTACK_PROGRAM: &str = "fd_install";

/// Global (`aya_ebpf::Global<u32>`) selecting how user stacks are captured: a [`StackMode`] value.
pub const STACK_MODE_GLOBAL: &str = "STACK_MODE";
/// Global (`aya_ebpf::Global<u64>`): unread ring-buffer bytes that make a submit wake the agent.
pub const WAKEUP_BYTES_GLOBAL: &str = "WAKEUP_BYTES";
/// Global (`aya_ebpf::Global<u32>`): non-zero reports any syscall of a traced process failing
/// with EBADF, with its stack (use of a closed or never-opened descriptor).
pub const BADF_GLOBAL: &str = "REPORT_EBADF";
/// `LruHashMap<u64 owner, u8>`: lock owners (open files, fd tables) that a traced process used
/// to take a lock, so their release is seen whoever releases them (a child, the last close).
pub const LOCK_OWNERS_MAP: &str = "LOCK_OWNERS";
/// `LruHashMap<u32 tgid, u8>`: traced processes that exited and were not released yet (zombies).
pub const EXITED_MAP: &str = "EXITED";
/// Global (`aya_ebpf::Global<u32>`): non-zero traces every process (production mode).
pub const TRACE_ALL_GLOBAL: &str = "TRACE_ALL";

/// Global (`aya_ebpf::Global<u32>`): the agent's own tgid, never traced.
pub const SELF_TGID_GLOBAL: &str = "SELF_TGID";
/// Global (`aya_ebpf::Global<u32>`): non-zero reports execs of untraced processes
/// ([`crate::record::kind::EXEC_UNTRACED`]).
pub const DISCOVER_EXEC_GLOBAL: &str = "DISCOVER_EXEC";
/// `HashMap<[u8; 16] comm, u8>`: command names selected with `--comm`, NUL-padded as
/// `bpf_get_current_comm` gives them. A process that execs into one is traced by the kernel at
/// once, so the children it forks before the agent reads its exec record are followed too.
pub const SELECTED_COMMS_MAP: &str = "SELECTED_COMMS";
/// Names `--comm` may select.
pub const SELECTED_COMMS_MAX: u32 = 64;
/// `LruHashMap<u32 tgid, u64>`: records lost to a full ring buffer, by process.
pub const LOST_BY_TGID_MAP: &str = "LOST_BY_TGID";
/// Where each thread's stack ends for unwinding (see `STACK_TOPS` in the programs): the agent
/// learns it from stacks it unwound to their root.
pub const STACK_TOPS_MAP: &str = "STACK_TOPS";
/// Threads whose stack top the kernel can hold.
pub const STACK_TOPS_ENTRIES: u32 = 65536;
/// The smallest DWARF stack copy: copies come in 1, 2, 4, 8 and 16 KiB, each a record kind.
pub const STACK_COPY_MIN: usize = 1024;

/// Highest syscall number the capture table covers (exclusive).
pub const MAX_SYSCALL_NR: u32 = 512;
/// Bytes of path or control-message data copied with a syscall record.
pub const DATA_MAX: usize = 256;
/// Bytes of user stack copied from the stack pointer for DWARF unwinding: one of these
/// (`--stack-size`); deeper stacks unwind until the copy ends.
pub const STACK_COPY_SIZES: [usize; 3] = [4096, 8192, 16384];
pub const STACK_COPY_DEFAULT: usize = 8192;
pub const STACK_COPY_MAX: usize = 16384;
/// Global (`aya_ebpf::Global<u32>`): bytes of user stack to copy, one of [`STACK_COPY_SIZES`].
pub const STACK_BYTES_GLOBAL: &str = "STACK_BYTES";
/// Global (`aya_ebpf::Global<u32>`): user stacks per second per CPU above which allocation
/// stacks are sampled (0: every allocation gets one). Counts stay exact either way.
pub const STACK_BUDGET_GLOBAL: &str = "STACK_BUDGET";
/// A write that took at least this many ns is reported (`--write-block`; 0: writes untimed).
pub const WRITE_BLOCK_GLOBAL: &str = "WRITE_BLOCK_NS";
/// When each thread of a traced process entered its current write-family syscall.
pub const WRITE_START_MAP: &str = "WRITE_START";
/// The entry program of the timed syscalls.
pub const WRITE_ENTRY_PROGRAM: &str = "sys_enter_write";
/// The budget is enforced over windows this long: the sampling period of a window follows
/// from the allocations the CPU saw in the one before.
pub const STACK_BUDGET_WINDOW_NS: u64 = 100_000_000;
/// Windows per second (the budget per window is the budget per second over this).
pub const STACK_BUDGET_WINDOWS_PER_S: u32 = 10;
/// A sampling period never exceeds this (one stack in a million allocations).
pub const STACK_PERIOD_MAX: u32 = 1 << 20;

/// Messages of one `recvmmsg` whose control data is captured.
pub const RECVMMSG_MAX: u32 = 4;

/// How user stacks are captured at allocation time.
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StackMode {
    None = 0,
    /// Kernel frame-pointer walk into the stack-trace map.
    FramePointer = 1,
    /// Registers plus a copy of the stack, unwound with CFI in the agent.
    Dwarf = 2,
}

/// Indices of the kernel's loss counters.
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LossCounter {
    /// `bpf_ringbuf_reserve` failed: the agent fell behind and a record was dropped.
    RingBufFull = 0,
    /// The traced-process map was full when a child was forked.
    TracedMapFull = 1,
    /// A stack could not be captured (stack map full or user memory unreadable).
    StackLost = 2,
}
pub const LOSS_COUNTERS: u32 = 3;

impl LossCounter {
    /// Every counter, in index order.
    pub const ALL: [LossCounter; LOSS_COUNTERS as usize] = [
        LossCounter::RingBufFull,
        LossCounter::TracedMapFull,
        LossCounter::StackLost,
    ];

    /// The counter's name in every output (report, `--stats`, JSON, metrics `reason` label).
    pub const fn name(self) -> &'static str {
        match self {
            LossCounter::RingBufFull => "ring_buffer_full",
            LossCounter::TracedMapFull => "traced_map_full",
            LossCounter::StackLost => "stack_not_captured",
        }
    }
}
