//! Resolving a stored stack to frames through `symbolize`: native frames by module and file
//! offset, each CPython eval-loop frame replaced by the run of Python frames it was executing.

use super::store::{PythonPart, StackStore, StoredStack, is_kernel_address};
use tracer_common::python::{PY_FRAMES_MAX, flags as py_flags};

use crate::{
    model::{Frame, frame::FrameAddress},
    state::StackId,
    symbolize::{NormalizedFrame, SymbolizedFrame, Symbols, python::PyFrame},
};

impl StackStore {
    /// Symbolized frames of a stack, innermost first (empty if it is not stored).
    pub fn frames(&self, symbols: &mut Symbols, id: StackId) -> Vec<Frame> {
        self.get(id).map(|s| s.frames(symbols)).unwrap_or_default()
    }
}

impl StoredStack {
    /// Symbolized frames, innermost first; unresolvable frames keep their address.
    pub fn frames(&self, symbols: &mut Symbols) -> Vec<Frame> {
        let stack = self;
        // Kernel frames (`--kernel-stack`) come first and live in the kernel's upper half.
        let kernel = stack.addresses.iter().take_while(|a| is_kernel_address(**a)).count();
        let mut out = Vec::with_capacity(stack.addresses.len());
        out.extend(
            symbols
                .symbolize_kernel(&stack.addresses[..kernel])
                .into_iter()
                .map(Frame::from),
        );
        let resolved: Vec<NormalizedFrame> = stack.frames[kernel..].iter().flatten().cloned().collect();
        let symbolized = symbols.symbolize(&resolved);
        let mut sym = symbolized.into_iter().peekable();
        let mut python = self.python.as_deref().map(PythonRuns::new);
        for (addr, norm) in stack.addresses[kernel..].iter().zip(stack.frames[kernel..].iter()) {
            // An eval-loop frame stands for the Python frames it was running.
            if let Some(py) = python.as_mut()
                && py.is_eval(*addr)
                && py.next_run(&mut out)
            {
                while sym.next_if(|f| f.address == *addr && f.inlined).is_some() {}
                let _ = sym.next_if(|f| f.address == *addr);
                continue;
            }
            let Some(norm) = norm else {
                out.push(Frame {
                    address: FrameAddress::Native(*addr),
                    ..Default::default()
                });
                continue;
            };
            let before = out.len();
            // This frame's entries: its inlined calls, then the function itself (a recursive
            // stack repeats the address, so the address alone does not end the group).
            while let Some(f) = sym.next_if(|f| f.address == *addr) {
                let last = !f.inlined;
                out.push(Frame::from(f).in_module(&norm.module));
                if last {
                    break;
                }
            }
            if out.len() == before {
                let unresolved = Frame {
                    address: FrameAddress::Native(*addr),
                    offset: Some(norm.file_offset),
                    ..Default::default()
                };
                out.push(unresolved.in_module(&norm.module));
            }
        }
        // Python frames no eval-loop frame stood for (a native stack cut short: frame pointers
        // through code built without them) go outermost, in order.
        if let Some(mut py) = python {
            while py.next_run(&mut out) {}
            if py.part.flags & py_flags::TRUNCATED != 0 {
                let mut more = Frame::python(&format!("[more Python frames: deeper than {PY_FRAMES_MAX}]"), "", None);
                more.file = None;
                out.push(more);
            }
        }
        out
    }
}

/// Hands out a stack's Python frames one eval-loop invocation at a time.
struct PythonRuns<'a> {
    part: &'a PythonPart,
    next: usize,
}

impl<'a> PythonRuns<'a> {
    fn new(part: &'a PythonPart) -> Self {
        PythonRuns { part, next: 0 }
    }

    fn is_eval(&self, addr: u64) -> bool {
        self.part.eval.iter().any(|r| r.contains(&addr))
    }

    /// Pushes the next run (up to and including an entry frame); false when none is left.
    fn next_run(&mut self, out: &mut Vec<Frame>) -> bool {
        let frames = &self.part.frames;
        if self.next >= frames.len() {
            return false;
        }
        while let Some(f) = frames.get(self.next) {
            self.next += 1;
            out.push(python_frame(f));
            if f.entry {
                break;
            }
        }
        true
    }
}

fn python_frame(f: &PyFrame) -> Frame {
    Frame::python(&f.qualname, &f.file, (f.line != 0).then_some(f.line))
}

impl From<SymbolizedFrame> for Frame {
    fn from(f: SymbolizedFrame) -> Self {
        Frame {
            address: FrameAddress::Native(f.address),
            function: f.function,
            file: f.file,
            line: f.line,
            module: f.module,
            offset: f.file_offset,
            inlined: f.inlined,
            ..Default::default()
        }
    }
}
