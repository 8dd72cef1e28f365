//! Interning allocation stacks: each distinct (process, return addresses) gets one `StackId`, and
//! is normalized to (module, file offset) at once, while the process is alive, so it can be
//! symbolized after the process exits.

use std::{
    collections::HashMap,
    hash::{BuildHasher, Hasher},
    ops::Range,
    sync::Arc,
};

use tracer_common::python::PyFrameRaw;

use crate::{
    state::{StackId, slab::Slab},
    symbolize::{ModuleMap, NormalizedFrame, python::PyFrame},
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

impl StoredStack {
    pub(super) fn heap_bytes(&self) -> usize {
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
}

/// x86_64 kernel addresses are in the canonical upper half.
pub fn is_kernel_address(addr: u64) -> bool {
    addr >= 0xffff_8000_0000_0000
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::symbolize::Symbols;

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
        assert_eq!(frames[0].address.native(), Some(kernel));
    }
}
