//! Python frames at a captured syscall: what the kernel needs to walk a CPython interpreter's
//! frame chain, and the record it writes.
//!
//! The agent finds a process's CPython runtime (`_PyRuntime`), picks the struct offsets of its
//! version and puts a [`PyProcess`] in the `PY_PROCS` map. At each captured allocation (one that
//! takes a user stack) of such a process, the kernel finds the calling thread's `PyThreadState`
//! (cached by thread id in `PY_THREADS`; on a miss, or when the cached one names another thread,
//! it walks the main interpreter's thread list matching `native_thread_id`), then follows
//! `current_frame` and `previous`, writing each frame's code object and instruction pointer
//! into a [`PyStackRecord`] sent just before the syscall record, with the same `tid` and
//! `ts_ns`. The agent reads the code objects (name, file, line table) from the process's memory.
//!
//! The kernel stays version-agnostic: it reads a fixed window of each interpreter frame and
//! copies three fields and a marker byte at the offsets given. What the marker means
//! (`is_entry` in 3.11, `owner` from 3.12) and how an instruction pointer becomes a line is
//! decided in the agent.

use crate::record::RecordHeader;

/// Python frames a record carries at most, innermost first; deeper stacks are truncated
/// (their outermost frames dropped) and say so ([`flags::TRUNCATED`]).
pub const PY_FRAMES_MAX: usize = 64;
/// Python threads of one interpreter the kernel looks through for the calling thread.
pub const PY_THREADS_SCAN: usize = 64;
/// Bytes of each `_PyInterpreterFrame` the kernel reads: every offset of [`PyOffsets`] that
/// points into a frame is below this (8-byte fields end at or before it).
pub const PY_FRAME_WINDOW: usize = 80;
/// An offset that does not exist in this version.
pub const NO_FIELD: u16 = u16::MAX;

/// `HashMap<u32 tgid, PyProcess>`: the CPython processes whose frames the kernel walks.
pub const PY_PROCS_MAP: &str = "PY_PROCS";
pub const PY_PROCS_ENTRIES: u32 = 4096;
/// `LruHashMap<u32 tid, u64>`: each thread's `PyThreadState` address, as the kernel found it.
pub const PY_THREADS_MAP: &str = "PY_THREADS";
pub const PY_THREADS_ENTRIES: u32 = 65536;
/// Global (`aya_ebpf::Global<u32>`): non-zero walks Python frames (`--python-frames on`).
pub const PYTHON_FRAMES_GLOBAL: &str = "PYTHON_FRAMES";

/// Byte offsets into CPython's structs for one version (see `tracer/src/symbolize/python`).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PyOffsets {
    /// `_PyRuntimeState.interpreters.main`.
    pub runtime_interp_main: u16,
    /// `PyInterpreterState.threads.head`.
    pub interp_threads_head: u16,
    /// `PyThreadState.next`.
    pub tstate_next: u16,
    /// `PyThreadState.native_thread_id`.
    pub tstate_native_thread_id: u16,
    /// `PyThreadState.cframe` (3.11, 3.12), or [`NO_FIELD`] when the thread state holds the
    /// current frame itself (3.13+).
    pub tstate_cframe: u16,
    /// `_PyCFrame.current_frame` (with `tstate_cframe`), else `PyThreadState.current_frame`.
    pub current_frame: u16,
    /// `_PyInterpreterFrame.f_code` (`f_executable` from 3.13: a tagged reference in 3.14).
    pub frame_code: u16,
    /// `_PyInterpreterFrame.previous`.
    pub frame_previous: u16,
    /// `_PyInterpreterFrame.prev_instr` (`instr_ptr` from 3.13).
    pub frame_instr: u16,
    /// The byte sent with each frame: `is_entry` (3.11) or `owner` (3.12+).
    pub frame_marker: u16,
    pub _pad: [u16; 2],
}

/// `PY_PROCS` value.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PyProcess {
    /// Address of `_PyRuntime` in the process.
    pub runtime: u64,
    pub offsets: PyOffsets,
}

/// Bytes of a [`PyProcess`] as the map holds it.
pub const PY_PROCESS_BYTES: usize = core::mem::size_of::<PyProcess>();

impl PyProcess {
    /// The value's bytes in the map's layout (`#[repr(C)]`, native endian), for loaders whose map
    /// API wants plain bytes.
    pub fn to_bytes(&self) -> [u8; PY_PROCESS_BYTES] {
        let o = &self.offsets;
        let words = [
            o.runtime_interp_main,
            o.interp_threads_head,
            o.tstate_next,
            o.tstate_native_thread_id,
            o.tstate_cframe,
            o.current_frame,
            o.frame_code,
            o.frame_previous,
            o.frame_instr,
            o.frame_marker,
            o._pad[0],
            o._pad[1],
        ];
        let mut out = [0u8; PY_PROCESS_BYTES];
        out[..8].copy_from_slice(&self.runtime.to_ne_bytes());
        for (i, w) in words.iter().enumerate() {
            out[8 + 2 * i..10 + 2 * i].copy_from_slice(&w.to_ne_bytes());
        }
        out
    }
}

/// One Python frame as the kernel found it.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PyFrameRaw {
    /// The frame's code object (`f_code`/`f_executable`, as read: tag bits included).
    pub code: u64,
    /// The instruction pointer in the low 56 bits, the marker byte in the top 8.
    pub instr: u64,
}

impl PyFrameRaw {
    pub const fn instr_ptr(&self) -> u64 {
        self.instr & ((1 << 56) - 1)
    }
    pub const fn marker(&self) -> u8 {
        (self.instr >> 56) as u8
    }
}

/// [`PyStackRecord::flags`].
pub mod flags {
    /// More frames than [`super::PY_FRAMES_MAX`]: the outermost ones are missing.
    pub const TRUNCATED: u16 = 1;
    /// The thread has no Python thread state (a native thread, or not found in the first
    /// [`super::PY_THREADS_SCAN`] of the interpreter's list).
    pub const NO_THREAD_STATE: u16 = 2;
    /// A read of interpreter memory failed mid-walk: the frames found so far are kept.
    pub const READ_FAILED: u16 = 4;
}

/// Header of a Python stack record; `frames` follow it, `n` of them (the record is sent with
/// exactly that many: its length is `size_of::<PyStackHead>() + n * 16`).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PyStackHead {
    /// `kind::PY_STACK`; `tid` and `ts_ns` equal those of the syscall record it belongs to.
    pub header: RecordHeader,
    pub n: u16,
    pub flags: u16,
    pub _pad: u32,
}

/// The whole record as the kernel builds it in per-CPU scratch memory.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PyStackRecord {
    pub head: PyStackHead,
    pub frames: [PyFrameRaw; PY_FRAMES_MAX],
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bytes_are_the_repr_c_layout() {
        let p = PyProcess {
            runtime: 0x1122_3344_5566_7788,
            offsets: PyOffsets {
                runtime_interp_main: 48,
                current_frame: 8,
                frame_marker: 68,
                _pad: [0, 7],
                ..Default::default()
            },
        };
        // SAFETY: reading the bytes of a repr(C) POD value (no padding: 8 + 12 * 2 bytes).
        let raw: [u8; PY_PROCESS_BYTES] = unsafe { core::mem::transmute(p) };
        assert_eq!(p.to_bytes(), raw);
        assert_eq!(PY_PROCESS_BYTES, 32);
        assert_eq!(core::mem::size_of::<PyStackHead>() % 8, 0);
    }
}
