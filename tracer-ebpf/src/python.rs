//! CPython frames at a captured syscall (see `tracer_common::python`): the calling thread's
//! interpreter frame chain, walked in user memory, sent as a [`PyStackRecord`] just before the
//! syscall record it belongs to.
//!
//! During the syscall CPython has released the GIL, and from 3.12 the "current thread state"
//! thread-local is cleared too; the thread's `PyThreadState` and its current frame stay. So the
//! thread state is found by native thread id in the interpreter's thread list (cached by tid),
//! not through the GIL holder.

use aya_ebpf::{
    Global,
    helpers::{bpf_probe_read_user, bpf_probe_read_user_buf},
    macros::map,
    maps::{HashMap, LruHashMap, PerCpuArray},
};
use tracer_common::{
    python::{
        NO_FIELD, PY_FRAME_WINDOW, PY_FRAMES_MAX, PY_PROCS_ENTRIES, PY_THREADS_ENTRIES, PY_THREADS_SCAN, PyOffsets,
        PyProcess, PyStackHead, PyStackRecord, flags,
    },
    record::{RecordHeader, kind},
};

use crate::maps::{EVENTS, ring_full};

/// CPython processes whose frames are walked (see `tracer_common::python`), filled by the agent.
#[map]
pub static PY_PROCS: HashMap<u32, PyProcess> = HashMap::with_max_entries(PY_PROCS_ENTRIES, 0);

/// Each Python thread's `PyThreadState`, by thread id, as the kernel found it (checked against
/// the thread state's `native_thread_id` at each use: a reused id finds its own again).
#[map]
pub static PY_THREADS: LruHashMap<u32, u64> = LruHashMap::with_max_entries(PY_THREADS_ENTRIES, 0);

/// Each CPU's Python stack record under construction (1 KiB: far above the BPF stack).
#[map]
pub static PY_SCRATCH: PerCpuArray<PyStackRecord> = PerCpuArray::with_max_entries(1, 0);

/// Each CPU's block of user memory around the Python frames being read (see [`Walk`]).
#[map]
pub static PY_WINDOW: PerCpuArray<Walk> = PerCpuArray::with_max_entries(1, 0);

/// Non-zero: Python frames are walked (`--python-frames on`).
#[unsafe(no_mangle)]
pub static PYTHON_FRAMES: Global<u32> = Global::new(1);

/// A pointer-sized read of user memory; 0 when it fails.
#[inline(always)]
fn read_ptr(addr: u64) -> u64 {
    // SAFETY: bpf_probe_read_user fails instead of faulting on a bad user address.
    unsafe { bpf_probe_read_user(addr as *const u64) }.unwrap_or(0)
}

/// Sends the Python frames of the calling thread if its process is a known CPython one.
/// `header` is the syscall record's (the Python record copies its tid and time).
#[inline(always)]
pub fn emit_python_stack(header: &RecordHeader) {
    if PYTHON_FRAMES.load() == 0 {
        return;
    }
    let _ = tracer_python_stack(header.tgid, header.tid, header.ts_ns);
}

/// [`emit_python_stack`]'s work, a global BPF function (see `build.rs`): scalars in, a scalar
/// out, verified once whatever path of the caller reaches it.
#[unsafe(no_mangle)]
#[inline(never)]
pub extern "C" fn tracer_python_stack(tgid: u32, tid: u32, ts_ns: u64) -> i64 {
    let header = RecordHeader {
        kind: kind::PY_STACK,
        tgid,
        tid,
        _pad: 0,
        ts_ns,
    };
    emit(&header);
    0
}

#[inline(always)]
fn emit(header: &RecordHeader) {
    let Some(proc) = PY_PROCS.get_ptr(&header.tgid) else {
        return;
    };
    let Some(rec) = PY_SCRATCH.get_ptr_mut(0) else {
        return;
    };
    // SAFETY: this CPU's scratch slot; a program does not migrate while it runs, and nothing
    // else on this CPU runs it concurrently (tracepoint programs do not nest on one CPU). The
    // process entry is map memory read in place (the BPF stack is too small for copies).
    let (rec, proc) = unsafe { (&mut *rec, &*proc) };
    rec.head.header.kind = kind::PY_STACK;
    rec.head.header.tgid = header.tgid;
    rec.head.header.tid = header.tid;
    rec.head.header._pad = 0;
    rec.head.header.ts_ns = header.ts_ns;
    rec.head.n = 0;
    rec.head.flags = 0;
    rec.head._pad = 0;
    let tstate = thread_state(proc, header.tid);
    if tstate == 0 {
        rec.head.flags = flags::NO_THREAD_STATE;
    } else {
        walk(rec, &proc.offsets, tstate);
    }
    let n = rec.head.n as usize;
    let len = core::mem::size_of::<PyStackHead>() + n * core::mem::size_of::<tracer_common::python::PyFrameRaw>();
    // SAFETY: `rec` is a whole PyStackRecord in map memory; `len` never exceeds its size.
    let bytes = unsafe { core::slice::from_raw_parts((rec as *const PyStackRecord).cast::<u8>(), len_bounded(len)) };
    if EVENTS.output(bytes, 0).is_err() {
        ring_full();
    }
}

/// `len`, made provably at most a record's size for the verifier.
#[inline(always)]
fn len_bounded(len: usize) -> usize {
    let max = core::mem::size_of::<PyStackRecord>();
    if len > max { max } else { len }
}

/// The thread's `PyThreadState`: the cached one if it still names this thread, else found in
/// the main interpreter's thread list (and cached). 0: none.
#[inline(always)]
fn thread_state(proc: &PyProcess, tid: u32) -> u64 {
    let o = &proc.offsets;
    // SAFETY: a plain u64 in map memory, copied out.
    if let Some(t) = unsafe { PY_THREADS.get(&tid) }.copied()
        && t != 0
        && read_ptr(t + u64::from(o.tstate_native_thread_id)) == u64::from(tid)
    {
        return t;
    }
    let interp = read_ptr(proc.runtime + u64::from(o.runtime_interp_main));
    if interp == 0 {
        return 0;
    }
    let mut t = read_ptr(interp + u64::from(o.interp_threads_head));
    let mut i = 0;
    while i < PY_THREADS_SCAN {
        if t == 0 {
            return 0;
        }
        if read_ptr(t + u64::from(o.tstate_native_thread_id)) == u64::from(tid) {
            let _ = PY_THREADS.insert(&tid, &t, 0);
            return t;
        }
        t = read_ptr(t + u64::from(o.tstate_next));
        i += 1;
    }
    0
}

/// Bytes of user memory read at once around the frames (a page): CPython allocates a thread's
/// frames one after the other in its data stack (a caller's frame below its callee's), so one
/// read usually covers many frames, and a read costs about 120 ns here whatever its size.
const BLOCK: usize = 4096;
/// A block of user memory in map memory: fields are read at offsets known only at run time,
/// which the verifier accepts in a map value (bounded by masks) but not on the stack. The slack
/// holds any masked field offset (0..=127) plus an 8-byte read past the block's last frame.
pub type Block = [u8; BLOCK_ROOM];
pub const BLOCK_ROOM: usize = BLOCK + PY_FRAME_WINDOW + 136;

/// A CPU's walk in progress: the block and the user addresses it holds, `[lo, hi)`. The bounds
/// live in map memory, read and written through volatile accesses, so that the verifier sees
/// them as unknown at every step whichever way the step went (a block kept or read anew): the
/// states of the two ways then match and the walk is verified once per step, not once per
/// combination of ways (2^64 of them).
#[repr(C)]
pub struct Walk {
    pub lo: u64,
    pub hi: u64,
    pub block: Block,
}

/// The u64 at `at + off` in a block (`at` masked to the block, `off` to 0..=127).
#[inline(always)]
fn field(block: &Block, at: usize, off: u16) -> u64 {
    let i = (at & (BLOCK - 1)) + ((off as usize) & 0x7f);
    // SAFETY: i + 8 <= 4095 + 127 + 8 < BLOCK_ROOM; an unaligned read of plain bytes.
    unsafe { core::ptr::read_unaligned(block.as_ptr().add(i).cast::<u64>()) }
}

/// The byte at `at + off` in a block (masked as in [`field`]).
#[inline(always)]
fn byte(block: &Block, at: usize, off: u16) -> u8 {
    let i = (at & (BLOCK - 1)) + ((off as usize) & 0x7f);
    // SAFETY: i <= 4095 + 127 < BLOCK_ROOM.
    unsafe { *block.as_ptr().add(i) }
}

/// Reads the user memory from the start of `frame`'s page to the end of its window (mapped,
/// since the frame is): the frame and the callers' frames below it in the same page. Returns
/// the block's start.
#[inline(always)]
fn load(block: &mut Block, frame: u64) -> Option<u64> {
    let page = frame & !(BLOCK as u64 - 1);
    let len = ((frame & (BLOCK as u64 - 1)) as usize) + PY_FRAME_WINDOW;
    let len = if len > BLOCK + PY_FRAME_WINDOW {
        BLOCK + PY_FRAME_WINDOW
    } else {
        len
    };
    // SAFETY: bpf_probe_read_user fails instead of faulting; `len` is at most the block's room.
    unsafe { bpf_probe_read_user_buf(page as *const u8, &mut block[..len]) }.ok()?;
    Some(page)
}

/// Follows `current_frame` and `previous` from `tstate`, innermost first.
#[inline(always)]
fn walk(rec: &mut PyStackRecord, o: &PyOffsets, tstate: u64) {
    let mut frame = if o.tstate_cframe == NO_FIELD {
        read_ptr(tstate + u64::from(o.current_frame))
    } else {
        let cframe = read_ptr(tstate + u64::from(o.tstate_cframe));
        if cframe == 0 {
            return;
        }
        read_ptr(cframe + u64::from(o.current_frame))
    };
    let Some(w) = PY_WINDOW.get_ptr_mut(0) else {
        return;
    };
    // SAFETY: this CPU's slot (see `emit_python_stack`); `lo` and `hi` are plain u64s in it.
    let (lo_p, hi_p, block) = unsafe { (&raw mut (*w).lo, &raw mut (*w).hi, &mut (*w).block) };
    // SAFETY: as above.
    unsafe {
        lo_p.write_volatile(0);
        hi_p.write_volatile(0);
    }
    let mut i = 0;
    while i < PY_FRAMES_MAX {
        if frame == 0 {
            return;
        }
        // SAFETY: as above.
        let (lo, hi) = unsafe { (lo_p.read_volatile(), hi_p.read_volatile()) };
        if frame < lo || frame + PY_FRAME_WINDOW as u64 > hi {
            let Some(start) = load(block, frame) else {
                rec.head.flags |= flags::READ_FAILED;
                return;
            };
            // SAFETY: as above.
            unsafe {
                lo_p.write_volatile(start);
                hi_p.write_volatile(frame + PY_FRAME_WINDOW as u64);
            }
        }
        // SAFETY: as above.
        let lo = unsafe { lo_p.read_volatile() };
        let at = (frame.wrapping_sub(lo)) as usize;
        let marker = byte(block, at, o.frame_marker);
        let instr = field(block, at, o.frame_instr) & ((1 << 56) - 1);
        if let Some(slot) = rec.frames.get_mut(i) {
            slot.code = field(block, at, o.frame_code);
            slot.instr = instr | (u64::from(marker) << 56);
        }
        rec.head.n = (i + 1) as u16;
        frame = field(block, at, o.frame_previous);
        i += 1;
    }
    if frame != 0 {
        rec.head.flags |= flags::TRUNCATED;
    }
}
