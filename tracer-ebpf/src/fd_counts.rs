//! `iter/task` ([`fd_counts`]): every process's open-fd count, for the agent's always-on mode.
//!
//! Called once per task on the host (threads included) with `struct bpf_iter__task { struct
//! bpf_iter_meta *meta; struct task_struct *task; }`, and a last time with `task == NULL`. For
//! each thread-group leader with an fd table it writes a [`ProcessFdCount`] to the seq file:
//! the popcount of `files->fdt->open_fds` (`max_fds` bits; `fs/file.c` keeps a bit per installed
//! fd), the table size, the soft `RLIMIT_NOFILE` and the command name. Field offsets come from
//! the loader ([`TASK_OFFSETS`], read from the kernel's BTF), and every kernel read goes through
//! `bpf_probe_read_kernel`, which fails instead of faulting. Threads with an fd table of their
//! own (`clone` without `CLONE_FILES`) are not counted: rare, and not what a process leaks.
//! Nor are kernel threads (`PF_KTHREAD`).

use aya_ebpf::{
    Global,
    bindings::seq_file,
    helpers::{
        bpf_probe_read_kernel,
        generated::{bpf_loop, bpf_seq_write},
    },
};
use tracer_common::fd_counts::{
    CHUNK_WORDS, MAX_WORDS, OFFSETS, PF_KTHREAD, ProcessFdCount, RLIMIT_NOFILE, RLIMIT_SIZE, flags, offset,
};

/// Field offsets (see [`tracer_common::fd_counts::offset`]), set by the loader.
#[unsafe(no_mangle)]
pub static TASK_OFFSETS: Global<[u32; OFFSETS]> = Global::new([0; OFFSETS]);

#[unsafe(no_mangle)]
#[unsafe(link_section = "iter/task")]
pub fn fd_counts(ctx: *mut core::ffi::c_void) -> i32 {
    // SAFETY: the kernel calls an `iter/task` program with a `struct bpf_iter__task *`.
    let _ = unsafe { try_fd_counts(ctx) };
    0
}

#[inline(always)]
fn at(base: u64, field: usize) -> u64 {
    let offsets = TASK_OFFSETS.load();
    base + u64::from(offsets[field])
}

#[inline(always)]
fn read<T>(addr: u64) -> Result<T, i32> {
    // SAFETY: `bpf_probe_read_kernel` copies from any kernel address and fails on a bad one.
    unsafe { bpf_probe_read_kernel(addr as *const T) }
}

/// # Safety
/// `ctx` must be the iterator's `struct bpf_iter__task *`.
unsafe fn try_fd_counts(ctx: *mut core::ffi::c_void) -> Result<(), i32> {
    if TASK_OFFSETS.load()[offset::FILLED] == 0 {
        return Ok(());
    }
    let slots = ctx as *const u64;
    // SAFETY: `meta` and `task` are the context's two pointers (loads the verifier checks
    // against the context's BTF type).
    let (meta, task) = unsafe { (*slots, *slots.add(1)) };
    if task == 0 || meta == 0 {
        return Ok(());
    }
    let pid: u32 = read(at(task, offset::TASK_PID))?;
    let tgid: u32 = read(at(task, offset::TASK_TGID))?;
    if pid != tgid {
        return Ok(());
    }
    let task_flags: u32 = read(at(task, offset::TASK_FLAGS))?;
    if task_flags & PF_KTHREAD != 0 {
        return Ok(());
    }
    let files: u64 = read(at(task, offset::TASK_FILES))?;
    if files == 0 {
        // Exited (a zombie): no fd table any more.
        return Ok(());
    }
    let fdt: u64 = read(at(files, offset::FILES_FDT))?;
    let max_fds: u32 = read(at(fdt, offset::FDT_MAX_FDS))?;
    let bitmap: u64 = read(at(fdt, offset::FDT_OPEN_FDS))?;
    let mut rec = ProcessFdCount {
        tgid,
        max_fds,
        nofile_soft: u64::MAX,
        ..ProcessFdCount::default()
    };
    let signal: u64 = read(at(task, offset::TASK_SIGNAL))?;
    if signal != 0 {
        let rlim = at(signal, offset::SIGNAL_RLIM) + u64::from(RLIMIT_NOFILE * RLIMIT_SIZE);
        rec.nofile_soft = read(rlim).unwrap_or(u64::MAX);
    }
    rec.comm = read(at(task, offset::TASK_COMM)).unwrap_or([0; 16]);
    let words = max_fds / 64;
    if words > MAX_WORDS {
        rec.flags |= flags::TRUNCATED;
    }
    let words = if words > MAX_WORDS { MAX_WORDS } else { words };
    // Whole chunks through `bpf_loop` (the verifier checks the callback once, whatever the
    // table's size), then the last words one by one (at most CHUNK_WORDS - 1 of them).
    let chunks = words / CHUNK_WORDS;
    let mut walk = Walk {
        bitmap,
        count: 0,
        failed: 0,
    };
    if chunks > 0 {
        // SAFETY: `count_chunk` has the callback signature `bpf_loop` expects, and `walk`
        // lives on this stack for the whole call.
        unsafe {
            bpf_loop(
                chunks,
                count_chunk as *mut core::ffi::c_void,
                &mut walk as *mut Walk as *mut core::ffi::c_void,
                0,
            )
        };
    }
    let mut count = walk.count;
    if walk.failed != 0 {
        rec.flags |= flags::READ_FAILED;
    }
    let tail = words - chunks * CHUNK_WORDS;
    let mut i = 0u32;
    while i < CHUNK_WORDS - 1 {
        if i >= tail {
            break;
        }
        match read::<u64>(bitmap + u64::from(chunks * CHUNK_WORDS + i) * 8) {
            Ok(w) => count += w.count_ones(),
            Err(_) => rec.flags |= flags::READ_FAILED,
        }
        i += 1;
    }
    rec.open_fds = count;
    // SAFETY: `meta` is the context's `struct bpf_iter_meta *`, whose first field is `seq`.
    let seq = unsafe { *(meta as *const *mut seq_file) };
    // SAFETY: `seq` is the iterator's seq file; `rec` is plain data of the size given.
    unsafe {
        bpf_seq_write(
            seq,
            &rec as *const ProcessFdCount as *const core::ffi::c_void,
            core::mem::size_of::<ProcessFdCount>() as u32,
        )
    };
    Ok(())
}

/// What the chunk callback works on: the bitmap, and the count so far.
#[repr(C)]
struct Walk {
    bitmap: u64,
    count: u32,
    failed: u32,
}

/// `bpf_loop` callback: adds the bits of chunk `index` (CHUNK_WORDS words) to the count.
/// Returns 0 to go on, 1 to stop (a read failed).
#[inline(never)]
extern "C" fn count_chunk(index: u64, ctx: *mut core::ffi::c_void) -> i64 {
    let walk = ctx as *mut Walk;
    // SAFETY: `ctx` is the `Walk` on the caller's stack that `try_fd_counts` handed over.
    let bitmap = unsafe { (*walk).bitmap };
    match read::<[u64; CHUNK_WORDS as usize]>(bitmap + index * u64::from(CHUNK_WORDS) * 8) {
        Ok(ws) => {
            let mut n = 0u32;
            for w in ws {
                n += w.count_ones();
            }
            // SAFETY: as above.
            unsafe { (*walk).count += n };
            0
        }
        Err(_) => {
            // SAFETY: as above.
            unsafe { (*walk).failed = 1 };
            1
        }
    }
}
