//! DWARF CFI unwinding of a copied user stack with framehop (what samply uses).
//!
//! Unwind tables are parsed once per module file and shared by every process mapping it; each
//! process gets a framehop unwinder describing its own address layout, rebuilt when its maps change.

use std::{
    collections::{HashMap, hash_map::Entry},
    hash::{Hash, Hasher},
    ops::Range,
    path::{Path, PathBuf},
    sync::Arc,
};

use framehop::{
    Module, Unwinder,
    x86_64::{CacheX86_64, UnwindRegsX86_64, UnwinderX86_64},
};

use super::{
    maps::{Mapping, ModuleMap},
    unwind_info::{Data, FileUnwindInfo},
};

/// User registers at syscall entry.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct UserRegs {
    pub ip: u64,
    pub sp: u64,
    pub bp: u64,
}

/// How a walk ended, and how much of the copied stack it used.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct UnwindEnd {
    /// The walk reached the stack's root (the unwind tables said there is no caller: `_start`,
    /// a thread's start), so the bytes it read are all a stack of this thread can need above
    /// `sp` at this depth.
    pub completed: bool,
    /// One past the highest stack byte read, as an offset from `sp`.
    pub used: u64,
    /// A read fell outside the copy: the copy was too short for this stack.
    pub overran: bool,
}

/// A module file: the same path can name different files over time (upgrades, containers).
type FileKey = (i32, i32, u64, Arc<Path>);

struct ProcessUnwinder {
    /// Of the maps the unwinder was built from.
    fingerprint: u64,
    /// The maps' generation last checked against the fingerprint.
    generation: u64,
    unwinder: UnwinderX86_64<Data>,
    cache: CacheX86_64,
    /// Keeps the files' entries in [`DwarfUnwinder::files`] alive (see `forget`).
    _files: Vec<Arc<FileUnwindInfo>>,
}

/// DWARF unwinder with per-file and per-process caches.
pub struct DwarfUnwinder {
    /// Parsed files; None for files that could not be read or parsed (retried after `forget`).
    files: HashMap<FileKey, Option<Arc<FileUnwindInfo>>>,
    processes: HashMap<i32, ProcessUnwinder>,
}

impl Default for DwarfUnwinder {
    fn default() -> Self {
        Self::new()
    }
}

impl DwarfUnwinder {
    pub fn new() -> Self {
        DwarfUnwinder {
            files: HashMap::new(),
            processes: HashMap::new(),
        }
    }

    /// Unwinds; pushes return addresses (first = `regs.ip`) into `out`, at most `max_frames`.
    /// `stack` is user memory copied from `regs.sp` upwards. Garbage in gives a short stack.
    pub fn unwind(
        &mut self,
        pid: i32,
        maps: &ModuleMap,
        regs: UserRegs,
        stack: &[u8],
        max_frames: usize,
        out: &mut Vec<u64>,
    ) -> UnwindEnd {
        out.clear();
        let mut end = UnwindEnd::default();
        if regs.ip == 0 || max_frames == 0 {
            return end;
        }
        let p = self.process(pid, maps);
        let sp = regs.sp;
        let (mut used, mut overran) = (0u64, false);
        // Only the copied bytes are readable: anything else ends the walk (framehop stops on Err).
        let mut read_stack = |addr: u64| -> Result<u64, ()> {
            let off = addr.checked_sub(sp).ok_or(())?;
            let Some(bytes) = usize::try_from(off).ok().and_then(|o| stack.get(o..o.checked_add(8)?)) else {
                // Above sp but past the copy: the copy was short (below sp is garbage).
                overran |= off < (1 << 20);
                return Err(());
            };
            used = used.max(off + 8);
            Ok(u64::from_le_bytes(bytes.try_into().map_err(|_| ())?))
        };
        let mut frames = p.unwinder.iter_frames(
            regs.ip,
            UnwindRegsX86_64::new(regs.ip, regs.sp, regs.bp),
            &mut p.cache,
            &mut read_stack,
        );
        while out.len() < max_frames {
            match frames.next() {
                Ok(Some(f)) => out.push(f.address()),
                Ok(None) => {
                    end.completed = true;
                    break;
                }
                // Err also ends normal walks (framehop cannot always tell the root frame).
                Err(_) => break,
            }
        }
        end.used = used;
        end.overran = overran;
        end
    }

    /// Builds the process's unwinder for this module map if it has none for it yet (parsing the
    /// unwind tables of files not seen before); `unwind` would do it too, this lets the caller
    /// tell the two costs apart.
    pub fn prepare(&mut self, pid: i32, maps: &ModuleMap) {
        self.process(pid, maps);
    }

    /// Drops a process's unwinder (it exited or exec'd), and the parsed files no process uses.
    pub fn forget(&mut self, pid: i32) {
        self.processes.remove(&pid);
        self.files
            .retain(|_, info| info.as_ref().is_some_and(|i| Arc::strong_count(i) > 1));
    }

    fn process(&mut self, pid: i32, maps: &ModuleMap) -> &mut ProcessUnwinder {
        let files = &mut self.files;
        match self.processes.entry(pid) {
            // The same maps as last time (the common case: one check per stack, no hashing).
            Entry::Occupied(e) if e.get().generation == maps.generation && maps.generation != 0 => e.into_mut(),
            Entry::Occupied(mut e) => {
                let fp = fingerprint(maps);
                if e.get().fingerprint != fp {
                    *e.get_mut() = build_process(files, maps, fp);
                }
                e.get_mut().generation = maps.generation;
                e.into_mut()
            }
            Entry::Vacant(v) => v.insert(build_process(files, maps, fingerprint(maps))),
        }
    }
}

/// Each loaded module instance with code: its executable mapping (which gives the load bias) and
/// the span of all its mappings. An instance is a run of consecutive mappings of one file at
/// increasing offsets (the loader reserves a module's whole span, so nothing else sits between);
/// runs without code (a file the program mmaps) are left out.
fn modules(mappings: &[Mapping]) -> impl Iterator<Item = (&Mapping, Range<u64>)> {
    mappings
        .chunk_by(|a, b| a.path == b.path && a.inode == b.inode && a.dev == b.dev && b.offset >= a.offset)
        .filter_map(|run| Some((run.iter().find(|m| m.executable)?, run.first()?.start..run.last()?.end)))
}

/// A framehop unwinder describing one process's modules.
fn build_process(
    files: &mut HashMap<FileKey, Option<Arc<FileUnwindInfo>>>,
    maps: &ModuleMap,
    fingerprint: u64,
) -> ProcessUnwinder {
    let mut unwinder = UnwinderX86_64::new();
    let mut used = Vec::new();
    for (code, span) in modules(&maps.mappings) {
        let key = (code.dev.0, code.dev.1, code.inode, code.path.clone());
        let info = files
            .entry(key)
            .or_insert_with(|| FileUnwindInfo::parse(&read_path(maps, code)).map(Arc::new));
        let Some(info) = info.clone() else {
            continue;
        };
        let Some(base) = info.base_avma(code) else {
            continue;
        };
        unwinder.add_module(Module::new(
            code.path.display().to_string(),
            span,
            base,
            info.sections.clone(),
        ));
        used.push(info);
    }
    ProcessUnwinder {
        fingerprint,
        generation: maps.generation,
        unwinder,
        cache: CacheX86_64::new(),
        _files: used,
    }
}

/// Where to read a module from: the file the process has mapped, held open since the maps were
/// read (right even if the path was deleted or replaced since), else the path through its root.
fn read_path(maps: &ModuleMap, m: &Mapping) -> PathBuf {
    match maps.files.get(&m.path) {
        Some(f) => f.path_for(&m.path).to_path_buf(),
        None => maps.open_path(&m.path),
    }
}

/// What the process's unwinder is built from (so maps that change only by data mappings, as a
/// program mmaps files, reuse the unwinder).
fn fingerprint(maps: &ModuleMap) -> u64 {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    for (code, span) in modules(&maps.mappings) {
        (span, code.start, code.offset, code.inode, &code.path).hash(&mut h);
    }
    h.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn modules_span_all_mappings_of_one_instance() {
        let maps = ModuleMap::from_maps_text(
            "\
1000-2000 r--p 00000000 08:01 100 /usr/bin/demo
2000-3000 r-xp 00001000 08:01 100 /usr/bin/demo
3000-4000 rw-p 00002000 08:01 100 /usr/bin/demo
5000-6000 r--p 00000000 08:01 100 /usr/bin/demo
7000-8000 r-xp 00000000 08:01 200 /lib/libc.so.6
8000-9000 r-xp 00000000 08:01 300 /lib/libc.so.6
",
        );
        let got: Vec<(u64, Range<u64>)> = modules(&maps.mappings).map(|(code, span)| (code.start, span)).collect();
        assert_eq!(
            got,
            [
                (0x2000, 0x1000..0x4000),
                (0x7000, 0x7000..0x8000),
                (0x8000, 0x8000..0x9000)
            ],
            "one module per loaded instance; a remap from offset 0 without code, or another inode, is not the same"
        );
    }

    #[test]
    fn garbage_does_not_panic() {
        let maps = ModuleMap::read(std::process::id() as i32).unwrap_or_else(|e| panic!("{e}"));
        let mut u = DwarfUnwinder::new();
        let mut out = Vec::new();
        // A deterministic pseudo-random stack, also salted with addresses inside real code so
        // the walk gets past the first frame and into CFI evaluation of nonsense.
        let code: Vec<(u64, u64)> = maps
            .mappings
            .iter()
            .filter(|m| m.executable)
            .map(|m| (m.start, m.end))
            .collect();
        let mut seed = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = move || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        for round in 0..2000 {
            let mut stack = Vec::with_capacity(4096);
            for _ in 0..512 {
                let r = next();
                let word = match (r % 3, code.get(r as usize % code.len().max(1))) {
                    (0, Some((s, e))) => s + next() % (e - s),
                    _ => next(),
                };
                stack.extend_from_slice(&word.to_le_bytes());
            }
            stack.truncate(next() as usize % 4097);
            let ip = match code.get(round % code.len().max(1)) {
                Some((s, e)) if round % 2 == 0 => s + next() % (e - s),
                _ => next(),
            };
            let regs = UserRegs {
                ip,
                sp: next() & !7,
                bp: next(),
            };
            u.unwind(1, &maps, regs, &stack, 64, &mut out);
            assert!(out.len() <= 64);
            assert!(
                out.len() <= 1 + stack.len() / 8,
                "every caller frame reads one word at least"
            );
        }
        let regs = UserRegs {
            ip: 0x1000,
            sp: u64::MAX - 4,
            bp: 0,
        };
        u.unwind(2, &ModuleMap::default(), regs, &[0xff; 64], 64, &mut out);
        assert!(out.len() <= 2);
        u.unwind(2, &maps, UserRegs::default(), &[], 64, &mut out);
        assert!(out.is_empty(), "no ip, no stack");
    }

    #[test]
    fn forget_drops_unused_files() {
        let maps = ModuleMap::read(std::process::id() as i32).unwrap_or_else(|e| panic!("{e}"));
        let mut u = DwarfUnwinder::new();
        let mut out = Vec::new();
        let regs = UserRegs { ip: 1, sp: 0, bp: 0 };
        u.unwind(7, &maps, regs, &[], 8, &mut out);
        assert!(u.files.values().any(Option::is_some), "this test binary parses");
        u.forget(7);
        assert!(u.files.is_empty() && u.processes.is_empty());
    }
}
