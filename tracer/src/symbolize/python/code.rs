//! Code objects to names and lines, cached per process.

use std::{collections::HashMap, sync::Arc};

use tracer_common::python::PyFrameRaw;

use super::{
    PyRuntime,
    linetable::addr2line,
    mem::{MAX_LINETABLE, Mem},
    offsets::{EntryMark, FRAME_OWNED_BY_GENERATOR, Layout},
};

/// One Python frame, named.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct PyFrame {
    /// `co_qualname` (`<code 0x...>` when the code object cannot be read).
    pub qualname: Arc<str>,
    /// `co_filename` (empty when the code object cannot be read).
    pub file: Arc<str>,
    /// 0: unknown.
    pub line: u32,
    /// The first (outermost) frame of its eval-loop invocation: the frames from the previous
    /// entry frame (exclusive) to this one (inclusive) stand for one `_PyEval_EvalFrameDefault`
    /// native frame.
    pub entry: bool,
    /// The code object's address.
    pub code: u64,
    /// Byte offset of the instruction in the code (`f_lasti * 2`; 0 when unknown).
    pub instr_offset: u32,
}

/// What is kept of one code object.
struct Code {
    qualname: Arc<str>,
    file: Arc<str>,
    firstlineno: i32,
    linetable: Box<[u8]>,
    /// `_co_firsttraceable` in code units, when read and plausible.
    firsttraceable: Option<u32>,
}

/// Code objects kept at most; the cache is emptied when full.
const CODE_CACHE_MAX: usize = 16384;

/// Per-process cache of code objects (qualname, file name, first line, location table), keyed
/// by address. Code objects are not freed while a function exists; one that is freed and whose
/// address is reused by another code object would be named wrongly until the cache is dropped
/// with the process.
pub struct CodeCache {
    mem: Option<Mem>,
    layout: Option<Layout>,
    codes: HashMap<u64, Arc<Code>>,
}

impl CodeCache {
    pub fn new(pid: i32, runtime: &PyRuntime) -> Self {
        Self {
            mem: Mem::open(pid).ok(),
            layout: runtime.layout.clone(),
            codes: HashMap::new(),
        }
    }

    /// Code objects cached.
    pub fn len(&self) -> usize {
        self.codes.len()
    }

    pub fn is_empty(&self) -> bool {
        self.codes.is_empty()
    }

    /// Forgets every code object (e.g. when the process has replaced code at reused addresses).
    pub fn clear(&mut self) {
        self.codes.clear();
    }

    fn code(&mut self, addr: u64) -> Option<Arc<Code>> {
        if let Some(c) = self.codes.get(&addr) {
            return Some(c.clone());
        }
        let (mem, l) = (self.mem.as_ref()?, self.layout.as_ref()?);
        let c = Arc::new(read_code(mem, l, addr)?);
        if self.codes.len() >= CODE_CACHE_MAX {
            self.codes.clear();
        }
        self.codes.insert(addr, c.clone());
        Some(c)
    }

    /// Raw kernel frames (innermost first) to Python frames (innermost first). Shim frames
    /// (3.12+) are dropped, the frame before each (in walk order) marked `entry`; in 3.11
    /// `entry` is the frame's `is_entry`. Incomplete frames (`_PyFrame_IsIncomplete`: not yet
    /// at `_co_firsttraceable`) are skipped. A code object that cannot be read gives a frame
    /// named `<code 0x...>` with line 0.
    pub fn resolve(&mut self, raw: &[PyFrameRaw]) -> Vec<PyFrame> {
        let Some(layout) = self.layout.clone() else {
            return Vec::new();
        };
        let mut out: Vec<PyFrame> = Vec::with_capacity(raw.len());
        // Frames pushed since the last shim frame (3.12+): the last of them is the entry.
        let mut in_run = false;
        for r in raw {
            let marker = r.marker();
            if layout.is_shim(marker) {
                if in_run && let Some(last) = out.last_mut() {
                    last.entry = true;
                }
                in_run = false;
                continue;
            }
            let code_addr = if layout.tagged_code { r.code & !3 } else { r.code };
            if code_addr == 0 {
                continue;
            }
            let code = self.code(code_addr);
            let start = code_addr + u64::from(layout.code_adaptive);
            let instr = r.instr_ptr();
            let generator = matches!(layout.entry, EntryMark::Owner { .. }) && marker == FRAME_OWNED_BY_GENERATOR;
            if let Some(c) = &code
                && !generator
                && let Some(first) = c.firsttraceable
                && instr < start + u64::from(first) * 2
            {
                // Incomplete: pushed, not yet started (at a syscall: only in theory; in 3.11 an
                // `is_entry` it carries goes with it).
                continue;
            }
            // An instruction pointer outside the code (not expected) gives no line.
            let offset = instr.checked_sub(start).and_then(|o| u32::try_from(o).ok());
            let instr_offset = offset.unwrap_or(0);
            let entry = layout.entry == EntryMark::IsEntry && marker != 0;
            let frame = match code {
                Some(c) => PyFrame {
                    qualname: c.qualname.clone(),
                    file: c.file.clone(),
                    line: offset
                        .and_then(|o| addr2line(&c.linetable, c.firstlineno, o))
                        .and_then(|l| u32::try_from(l).ok())
                        .unwrap_or(0),
                    entry,
                    code: code_addr,
                    instr_offset,
                },
                None => PyFrame {
                    qualname: format!("<code {code_addr:#x}>").into(),
                    file: "".into(),
                    line: 0,
                    entry,
                    code: code_addr,
                    instr_offset,
                },
            };
            out.push(frame);
            in_run = true;
        }
        out
    }
}

fn read_code(mem: &Mem, l: &Layout, addr: u64) -> Option<Code> {
    let head = mem.vec(addr, usize::from(l.code_adaptive)).ok()?;
    let ptr = |at: u16| -> Option<u64> {
        let at = usize::from(at);
        Some(u64::from_le_bytes(head.get(at..at + 8)?.try_into().ok()?))
    };
    let int = |at: u16| -> Option<i32> {
        let at = usize::from(at);
        Some(i32::from_le_bytes(head.get(at..at + 4)?.try_into().ok()?))
    };
    let qualname = mem.str_object(ptr(l.code_qualname)?, l).ok()?;
    let file = mem.str_object(ptr(l.code_filename)?, l).unwrap_or_default();
    let firstlineno = int(l.code_firstlineno)?;
    // A code object without a readable table is still named, without lines.
    let linetable = ptr(l.code_linetable)
        .and_then(|t| mem.bytes_object(t, l, MAX_LINETABLE).ok())
        .unwrap_or_default()
        .into_boxed_slice();
    let firsttraceable = int(l.code_firsttraceable)
        .and_then(|v| u32::try_from(v).ok())
        .filter(|&v| v < 4096);
    Some(Code {
        qualname: qualname.into(),
        file: file.into(),
        firstlineno,
        linetable,
        firsttraceable,
    })
}
