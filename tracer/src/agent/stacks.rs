//! Interning allocation stacks: each distinct (process, return addresses) gets one `StackId`, and
//! is normalized to (module, file offset) at once, while the process is alive, so it can be
//! symbolized after the process exits.

use std::{
    collections::HashMap,
    hash::{BuildHasher, Hasher},
    ops::Range,
    sync::Arc,
};

use tracer_common::python::{PY_FRAMES_MAX, PyFrameRaw, flags as py_flags};

use crate::{
    analysis::Frame,
    state::{StackId, slab::Slab},
    symbolize::{ModuleMap, NormalizedFrame, SymbolizedFrame, Symbols, python::PyFrame},
};

pub struct StoredStack {
    pub tgid: u32,
    pub addresses: Box<[u64]>,
    /// One entry per address; `None` where no file-backed module covered it (JIT, vdso, gone).
    pub frames: Box<[Option<NormalizedFrame>]>,
    /// The Python frames of the allocation, for a CPython process (see [`PythonPart`]).
    pub python: Option<Box<PythonPart>>,
}

/// The Python side of a stack: the frames the kernel walked (part of the stack's identity:
/// two Python call sites are two stacks even where their native frames are the same) and
/// what they resolved to while the process lived.
pub struct PythonPart {
    pub raw: Box<[PyFrameRaw]>,
    /// Resolved, innermost first.
    pub frames: Box<[PyFrame]>,
    /// Where the interpreter's eval loop is: each native frame in it stands for a run of
    /// Python frames (those up to and including the next `entry` frame).
    pub eval: Box<[Range<u64>]>,
    /// `tracer_common::python::flags` of the record.
    pub flags: u16,
}

/// A Python stack as the kernel sent it, with what resolves it: the key half of [`PythonPart`].
#[derive(Clone, Copy)]
pub struct PythonKey<'a> {
    pub raw: &'a [PyFrameRaw],
    pub flags: u16,
}

#[derive(Default)]
pub struct StackStore {
    by_hash: HashMap<u64, Vec<StackId>, foldhash::fast::RandomState>,
    /// Shared with queries: a report hands the stacks it names to the symbolizer worker.
    /// A slab: stacks nothing refers to any more are dropped (see [`StackStore::sweep`]).
    stacks: Slab<Arc<StoredStack>>,
    hasher: foldhash::fast::RandomState,
    /// Stacks dropped because nothing referred to them.
    pub evicted: u64,
    /// Approximate heap bytes of the stored stacks.
    pub bytes: usize,
}

impl StackStore {
    fn hash(&self, tgid: u32, addrs: &[u64], py: &[PyFrameRaw]) -> u64 {
        let mut h = self.hasher.build_hasher();
        h.write_u32(tgid);
        for a in addrs {
            h.write_u64(*a);
        }
        for f in py {
            h.write_u64(f.code);
            h.write_u64(f.instr);
        }
        h.finish()
    }

    /// The id of a stack already interned. Allocates nothing.
    pub fn find(&self, tgid: u32, addrs: &[u64]) -> Option<StackId> {
        self.find_with(tgid, addrs, None)
    }

    /// The id of a stack with these Python frames already interned. Allocates nothing.
    pub fn find_with(&self, tgid: u32, addrs: &[u64], py: Option<PythonKey<'_>>) -> Option<StackId> {
        let raw = py.map_or(&[][..], |p| p.raw);
        if addrs.is_empty() && raw.is_empty() {
            return Some(StackId::NONE);
        }
        let ids = self.by_hash.get(&self.hash(tgid, addrs, raw))?;
        ids.iter().copied().find(|id| {
            self.get(*id).is_some_and(|s| {
                s.tgid == tgid && &*s.addresses == addrs && s.python.as_ref().map_or(&[][..], |p| &p.raw[..]) == raw
            })
        })
    }

    /// Interns a new stack, normalizing its addresses with `modules` (a snapshot of the process's
    /// maps taken while it is alive). Call [`StackStore::find`] first.
    pub fn insert(&mut self, tgid: u32, addrs: &[u64], modules: Option<&ModuleMap>) -> StackId {
        self.insert_with(tgid, addrs, modules, None)
    }

    /// [`StackStore::insert`] with the allocation's Python frames, resolved already.
    pub fn insert_with(
        &mut self,
        tgid: u32,
        addrs: &[u64],
        modules: Option<&ModuleMap>,
        python: Option<PythonPart>,
    ) -> StackId {
        let key = python.as_ref().map(|p| PythonKey {
            raw: &p.raw,
            flags: p.flags,
        });
        if let Some(id) = self.find_with(tgid, addrs, key) {
            return id;
        }
        let frames: Box<[Option<NormalizedFrame>]> = match modules {
            Some(m) => addrs.iter().map(|a| m.lookup(*a)).collect(),
            None => addrs.iter().map(|_| None).collect(),
        };
        let python = python.filter(|p| !p.raw.is_empty()).map(Box::new);
        let stored = StoredStack {
            tgid,
            addresses: addrs.into(),
            frames,
            python,
        };
        let bytes = stored.heap_bytes();
        // Full (16 million stacks alive): the allocation gets no stack.
        let Some(key) = self.stacks.insert(Arc::new(stored)) else {
            return StackId::NONE;
        };
        self.bytes += bytes;
        let id = StackId(key);
        let raw = self
            .get(id)
            .and_then(|s| s.python.as_ref())
            .map_or(&[][..], |p| &p.raw[..]);
        let h = self.hash(tgid, addrs, raw);
        self.by_hash.entry(h).or_default().push(id);
        id
    }

    pub fn get(&self, id: StackId) -> Option<&Arc<StoredStack>> {
        self.stacks.get(id.0)
    }

    /// Drops every stack not in `live` (what the state still refers to); returns how many.
    /// Their module files close once no other stack or process map holds them.
    pub fn sweep(&mut self, live: &impl Fn(StackId) -> bool) -> usize {
        let dead: Vec<StackId> = self
            .stacks
            .iter()
            .map(|(k, _)| StackId(k))
            .filter(|id| !live(*id))
            .collect();
        for id in &dead {
            if let Some(s) = self.stacks.remove(id.0) {
                self.bytes = self.bytes.saturating_sub(s.heap_bytes());
                let raw = s.python.as_ref().map_or(&[][..], |p| &p.raw[..]);
                let h = self.hash(s.tgid, &s.addresses, raw);
                if let Some(ids) = self.by_hash.get_mut(&h) {
                    ids.retain(|x| x != id);
                    if ids.is_empty() {
                        self.by_hash.remove(&h);
                    }
                }
            }
        }
        self.evicted += dead.len() as u64;
        dead.len()
    }

    /// The stacks named by `ids` (those still stored), for the symbolizer worker.
    pub fn share(&self, ids: &[StackId]) -> Vec<(StackId, Arc<StoredStack>)> {
        ids.iter()
            .filter_map(|id| Some((*id, self.get(*id)?.clone())))
            .collect()
    }

    pub fn len(&self) -> usize {
        self.stacks.len()
    }

    pub fn is_empty(&self) -> bool {
        self.stacks.is_empty()
    }
}

impl StackStore {
    /// Symbolized frames of a stack, innermost first (empty if it is not stored).
    pub fn frames(&self, symbols: &mut Symbols, id: StackId) -> Vec<Frame> {
        self.get(id).map(|s| s.frames(symbols)).unwrap_or_default()
    }
}

impl StoredStack {
    fn heap_bytes(&self) -> usize {
        std::mem::size_of::<Self>()
            + self.addresses.len() * 8
            + self.frames.len() * std::mem::size_of::<Option<NormalizedFrame>>()
            + self.python.as_ref().map_or(0, |p| {
                std::mem::size_of::<PythonPart>()
                    + p.raw.len() * std::mem::size_of::<PyFrameRaw>()
                    + p.frames.len() * std::mem::size_of::<PyFrame>()
                    + p.eval.len() * std::mem::size_of::<Range<u64>>()
            })
    }

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
                    address: format!("{addr:#x}"),
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
                    address: format!("{addr:#x}"),
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
            address: format!("{:#x}", f.address),
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

/// x86_64 kernel addresses are in the canonical upper half.
pub fn is_kernel_address(addr: u64) -> bool {
    addr >= 0xffff_8000_0000_0000
}

#[cfg(test)]
mod tests {
    use super::*;

    const MAPS: &str = "555555554000-555555556000 r-xp 00001000 08:01 42 /usr/bin/demo\n";

    #[test]
    fn interns_once_per_process_and_normalizes() {
        let mut store = StackStore::default();
        let map = ModuleMap::from_maps_text(MAPS);
        assert_eq!(store.find(1, &[0x5555_5555_4010, 0x1]), None);
        let a = store.insert(1, &[0x5555_5555_4010, 0x1], Some(&map));
        assert_eq!(store.find(1, &[0x5555_5555_4010, 0x1]), Some(a));
        let b = store.insert(1, &[0x5555_5555_4010, 0x1], None);
        let c = store.insert(2, &[0x5555_5555_4010, 0x1], None);
        assert_eq!(a, b);
        assert_ne!(a, c);
        assert_eq!(store.find(1, &[]), Some(StackId::NONE));
        let s = store
            .get(a)
            .map(|s| (s.frames[0].as_ref().map(|f| f.file_offset), s.frames[1].is_none()));
        assert_eq!(s, Some((Some(0x1010), true)));
        assert!(store.get(c).is_some_and(|s| s.frames.iter().all(Option::is_none)));
    }

    #[test]
    fn kernel_frames_come_first_and_are_not_normalized() {
        let mut store = StackStore::default();
        let map = ModuleMap::from_maps_text(MAPS);
        let kernel = 0xffff_ffff_8100_0000u64;
        assert!(is_kernel_address(kernel) && !is_kernel_address(0x7fff_ffff_f000));
        let id = store.insert(1, &[kernel, kernel + 0x40, 0x5555_5555_4010], Some(&map));
        let frames = store.frames(&mut Symbols::new(), id);
        let modules: Vec<Option<&str>> = frames.iter().map(|f| f.module.as_deref()).collect();
        assert_eq!(modules, vec![Some("[kernel]"), Some("[kernel]"), Some("/usr/bin/demo")]);
        assert_eq!(frames[0].address, format!("{kernel:#x}"));
    }
}
