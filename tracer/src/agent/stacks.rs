//! Interning allocation stacks: each distinct (process, return addresses) gets one `StackId`, and
//! is normalized to (module, file offset) at once, while the process is alive, so it can be
//! symbolized after the process exits.

use std::{
    collections::HashMap,
    hash::{BuildHasher, Hasher},
    sync::Arc,
};

use crate::{
    analysis::Frame,
    state::{StackId, slab::Slab},
    symbolize::{ModuleMap, NormalizedFrame, SymbolizedFrame, Symbols},
};

pub struct StoredStack {
    pub tgid: u32,
    pub addresses: Box<[u64]>,
    /// One entry per address; `None` where no file-backed module covered it (JIT, vdso, gone).
    pub frames: Box<[Option<NormalizedFrame>]>,
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
    fn hash(&self, tgid: u32, addrs: &[u64]) -> u64 {
        let mut h = self.hasher.build_hasher();
        h.write_u32(tgid);
        for a in addrs {
            h.write_u64(*a);
        }
        h.finish()
    }

    /// The id of a stack already interned. Allocates nothing.
    pub fn find(&self, tgid: u32, addrs: &[u64]) -> Option<StackId> {
        if addrs.is_empty() {
            return Some(StackId::NONE);
        }
        let ids = self.by_hash.get(&self.hash(tgid, addrs))?;
        ids.iter()
            .copied()
            .find(|id| self.get(*id).is_some_and(|s| s.tgid == tgid && &*s.addresses == addrs))
    }

    /// Interns a new stack, normalizing its addresses with `modules` (a snapshot of the process's
    /// maps taken while it is alive). Call [`StackStore::find`] first.
    pub fn insert(&mut self, tgid: u32, addrs: &[u64], modules: Option<&ModuleMap>) -> StackId {
        if let Some(id) = self.find(tgid, addrs) {
            return id;
        }
        let frames: Box<[Option<NormalizedFrame>]> = match modules {
            Some(m) => addrs.iter().map(|a| m.lookup(*a)).collect(),
            None => addrs.iter().map(|_| None).collect(),
        };
        let stored = StoredStack {
            tgid,
            addresses: addrs.into(),
            frames,
        };
        let bytes = stored.heap_bytes();
        // Full (16 million stacks alive): the allocation gets no stack.
        let Some(key) = self.stacks.insert(Arc::new(stored)) else {
            return StackId::NONE;
        };
        self.bytes += bytes;
        let id = StackId(key);
        let h = self.hash(tgid, addrs);
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
                let h = self.hash(s.tgid, &s.addresses);
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
        for (addr, norm) in stack.addresses[kernel..].iter().zip(stack.frames[kernel..].iter()) {
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
        out
    }
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
