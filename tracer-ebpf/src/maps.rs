//! Maps and load-time globals shared by the programs. Names match `tracer_common::config`.
//! The Python frame walk keeps its own in [`crate::python`].

use aya_ebpf::{
    Global,
    macros::map,
    maps::{Array, HashMap, LruHashMap, PerCpuArray, RingBuf, StackTrace},
};
use tracer_common::{
    config::{LOSS_COUNTERS, LossCounter, MAX_SYSCALL_NR, STACKS_ENTRIES, StackMode},
    sampling::StackSampler,
};

/// Resized by the loader (`--ring-buffer-size`).
#[map]
pub static EVENTS: RingBuf = RingBuf::with_byte_size(16 * 1024 * 1024, 0);

#[map]
pub static TRACED: HashMap<u32, u8> = HashMap::with_max_entries(65536, 0);

/// See `tracer_common::config::TRACED_HINT_MAP`.
#[map]
pub static TRACED_HINT: Array<u8> = Array::with_max_entries(tracer_common::config::TRACED_HINT_SLOTS, 0);

/// Marks `tgid`'s hint slot before `tgid` goes into `TRACED`.
#[inline(always)]
pub fn hint_traced(tgid: u32) {
    if let Some(p) = TRACED_HINT.get_ptr_mut(tgid % tracer_common::config::TRACED_HINT_SLOTS) {
        // SAFETY: a plain u8 in an array map; racing writers all store 1.
        unsafe { *p = 1 };
    }
}

/// Adds a process to the traced set (its hint slot first, so no reader skips it).
#[inline(always)]
pub fn add_traced(tgid: u32) -> Result<(), i32> {
    hint_traced(tgid);
    TRACED.insert(&tgid, &NEEDS_MAPS, 0)
}

#[map]
pub static CAPTURE: Array<u32> = Array::with_max_entries(MAX_SYSCALL_NR, 0);

#[map]
pub static LOSSES: PerCpuArray<u64> = PerCpuArray::with_max_entries(LOSS_COUNTERS, 0);

/// `--stack fp`. Without `BPF_F_REUSE_STACKID` on purpose: reuse would overwrite a bucket whose id
/// a queued record still names, and the agent would read another stack for it. A stack that finds
/// its bucket taken is counted lost instead, and the agent frees the ids no record named for a
/// while (tracer/src/agent/fp_ids.rs), so the map holds the stacks in use now. One entry in the
/// other stack modes (resized by the loader).
#[map]
pub static STACKS: StackTrace = StackTrace::with_max_entries(STACKS_ENTRIES, 0);

/// Kernel stacks for `--kernel-stack` (resized by the loader; one entry otherwise).
#[map]
pub static KSTACKS: StackTrace = StackTrace::with_max_entries(1, 0);

/// Kernel stack id of the last fd installed by a thread, read by its `sys_exit`.
#[map]
pub static KSTACK_PENDING: HashMap<u32, i64> = HashMap::with_max_entries(16384, 0);

/// Non-zero: `--kernel-stack` (the kprobe is attached).
#[unsafe(no_mangle)]
pub static KERNEL_STACK: Global<u32> = Global::new(0);

/// Lock owners (`fl_owner`: an open file or an fd table) a traced process took a lock with, so
/// their release is seen whoever releases them (a forked child, the last close, exit).
#[map]
pub static LOCK_OWNERS: LruHashMap<u64, u8> = LruHashMap::with_max_entries(16384, 0);

/// Traced processes that exited and have not been released yet (zombies until reaped).
#[map]
pub static EXITED: LruHashMap<u32, u8> = LruHashMap::with_max_entries(65536, 0);

/// Non-zero: report any syscall of a traced process that fails with EBADF.
#[unsafe(no_mangle)]
pub static REPORT_EBADF: Global<u32> = Global::new(0);

#[unsafe(no_mangle)]
pub static STACK_MODE: Global<u32> = Global::new(StackMode::FramePointer as u32);

#[unsafe(no_mangle)]
pub static TRACE_ALL: Global<u32> = Global::new(0);

/// The agent's own process: never traced (in whole-host mode its /proc reads would feed it).
#[unsafe(no_mangle)]
pub static SELF_TGID: Global<u32> = Global::new(0);

/// Non-zero: an exec by an untraced process is reported too (`--comm`/`--cgroup` selection:
/// the agent decides whether to follow it).
#[unsafe(no_mangle)]
pub static DISCOVER_EXEC: Global<u32> = Global::new(0);

/// Names selected with `--comm` (see `tracer_common::config::SELECTED_COMMS_MAP`).
#[map]
pub static SELECTED_COMMS: HashMap<[u8; 16], u8> =
    HashMap::with_max_entries(tracer_common::config::SELECTED_COMMS_MAX, 0);

/// Records lost to a full ring buffer, by the process whose record it was: the agent
/// resynchronises those processes' fd tables from /proc.
#[map]
pub static LOST_BY_TGID: LruHashMap<u32, u64> = LruHashMap::with_max_entries(8192, 0);

/// Where each thread's stack ends, as far as unwinding goes: the highest byte the agent's
/// unwinder read in a stack of this thread that it unwound to its root (`_start`, a thread's
/// start), by thread id. A DWARF-mode record copies only from `sp` to there, in the smallest of
/// the 1, 2, 4, 8 and 16 KiB record sizes that holds it (never more than `STACK_BYTES`); a
/// thread without an entry gets `STACK_BYTES`. Entries go when the thread exits or execs.
#[map]
pub static STACK_TOPS: LruHashMap<u32, u64> =
    LruHashMap::with_max_entries(tracer_common::config::STACK_TOPS_ENTRIES, 0);

/// Bytes of user stack a DWARF-mode record copies at most: 4096, 8192 or 16384.
#[unsafe(no_mangle)]
pub static STACK_BYTES: Global<u32> = Global::new(8192);

/// User stacks per second per CPU before allocation stacks are sampled (0: every allocation).
#[unsafe(no_mangle)]
pub static STACK_BUDGET: Global<u32> = Global::new(0);

/// A write-family syscall taking at least this long is reported (`--write-block`).
#[unsafe(no_mangle)]
pub static WRITE_BLOCK_NS: Global<u64> = Global::new(100_000_000);

/// When each thread of a traced process entered its current write-family syscall (ns), set by
/// `syscalls/sys_enter_{write,writev,sendto,sendmsg}` and taken by `sys_exit`. LRU: a thread
/// killed inside a write leaves an entry nothing removes.
#[map]
pub static WRITE_START: LruHashMap<u32, u64> = LruHashMap::with_max_entries(16384, 0);

/// Each CPU's stack budget (see `tracer_common::sampling`).
#[map]
pub static STACK_SAMPLER: PerCpuArray<StackSampler> = PerCpuArray::with_max_entries(1, 0);

/// The weight of the stack an allocation on this CPU gets now: 1 with no budget or below it,
/// the sampling period if this one is sampled, 0 if it is not (no stack is taken).
#[inline(always)]
pub fn stack_weight() -> u32 {
    let budget = STACK_BUDGET.load();
    if budget == 0 {
        return 1;
    }
    let Some(s) = STACK_SAMPLER.get_ptr_mut(0) else {
        return 1;
    };
    // SAFETY: this CPU's slot; programs do not migrate while they run, so nothing else writes it.
    let period = unsafe { (*s).admit(now(), budget) };
    // SAFETY: the helper takes no arguments and touches no memory.
    tracer_common::sampling::weight(period, unsafe { aya_ebpf::helpers::bpf_get_prandom_u32() })
}

/// Unread bytes in the ring buffer above which a submit wakes the agent. Below it the agent
/// finds records on its periodic drain: a wakeup per record would cost more than the tracing.
#[unsafe(no_mangle)]
pub static WAKEUP_BYTES: Global<u64> = Global::new(1 << 20);

/// Flags for `bpf_ringbuf_submit`: wake the agent only when enough is waiting, or when the
/// record is `urgent` (the agent has not read the process's memory maps yet: a short-lived
/// process must be looked at before it exits, or its stacks cannot be symbolized).
#[inline(always)]
pub fn submit_flags(urgent: bool) -> u64 {
    use aya_ebpf::bindings::{BPF_RB_AVAIL_DATA, BPF_RB_FORCE_WAKEUP, BPF_RB_NO_WAKEUP};
    if urgent || EVENTS.query(u64::from(BPF_RB_AVAIL_DATA)) >= WAKEUP_BYTES.load() {
        u64::from(BPF_RB_FORCE_WAKEUP)
    } else {
        u64::from(BPF_RB_NO_WAKEUP)
    }
}

/// `TRACED` value: traced, the agent has no memory map of it yet (after fork or exec).
pub const NEEDS_MAPS: u8 = tracer_common::config::TRACED_NEEDS_MAPS;

/// 0: not traced; otherwise the `TRACED` value (see `tracer_common::config`).
#[inline(always)]
pub fn traced_state(tgid: u32) -> u8 {
    if tgid == SELF_TGID.load() {
        return 0;
    }
    if TRACE_ALL.load() != 0 {
        return tracer_common::config::TRACED_HAS_MAPS;
    }
    // No process of this slot was ever traced: not this one either (an array read).
    if TRACED_HINT
        .get(tgid % tracer_common::config::TRACED_HINT_SLOTS)
        .is_some_and(|h| *h == 0)
    {
        return 0;
    }
    // SAFETY: the value is a plain u8 and is only read.
    unsafe { TRACED.get(&tgid) }.copied().unwrap_or(0)
}

#[inline(always)]
pub fn is_traced(tgid: u32) -> bool {
    traced_state(tgid) != 0
}

#[inline(always)]
pub fn count_loss(which: LossCounter) {
    if let Some(p) = LOSSES.get_ptr_mut(which as u32) {
        // SAFETY: per-CPU slot, so no other program writes it concurrently.
        unsafe { *p += 1 };
    }
}

/// A record of the current process could not be reserved: counted, and by process.
#[inline(always)]
pub fn ring_full() {
    count_loss(LossCounter::RingBufFull);
    let tgid = (aya_ebpf::helpers::bpf_get_current_pid_tgid() >> 32) as u32;
    match LOST_BY_TGID.get_ptr_mut(&tgid) {
        // SAFETY: a u64 counter in map memory; a racing increment may be lost, which only
        // delays a resync by one loss.
        Some(n) => unsafe { *n += 1 },
        None => {
            let _ = LOST_BY_TGID.insert(&tgid, &1, 0);
        }
    }
}

/// CLOCK_MONOTONIC in nanoseconds.
#[inline(always)]
pub fn now() -> u64 {
    // SAFETY: the helper takes no arguments and touches no memory.
    unsafe { aya_ebpf::helpers::bpf_ktime_get_ns() }
}
