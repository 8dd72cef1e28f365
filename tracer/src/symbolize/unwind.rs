//! DWARF CFI unwinding of a copied user stack with framehop (what samply uses).
//!
//! Unwind tables are parsed once per module file and shared by every process mapping it; each
//! process gets a framehop unwinder describing its own address layout, rebuilt when its maps change.

use std::{collections::HashMap, path::Path, sync::Arc};

use framehop::{
    ExplicitModuleSectionInfo, Module, Unwinder,
    x86_64::{CacheX86_64, UnwindRegsX86_64, UnwinderX86_64},
};
use object::{Object, ObjectSection, ObjectSegment};

use super::maps::{Mapping, ModuleMap};

/// User registers at syscall entry.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct UserRegs {
    pub ip: u64,
    pub sp: u64,
    pub bp: u64,
}

type Data = Arc<[u8]>;

/// What one module file contributes to unwinding, parsed once.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Load {
    offset: u64,
    size: u64,
    vaddr: u64,
    executable: bool,
}

struct FileUnwindInfo {
    sections: ExplicitModuleSectionInfo<Data>,
    /// PT_LOAD segments.
    loads: Vec<Load>,
}

/// `.text` bigger than this is not kept (it only helps at function prologues and epilogues,
/// which a syscall site never is).
const MAX_TEXT: u64 = 32 << 20;

impl FileUnwindInfo {
    fn parse(path: &Path) -> Option<Self> {
        let bytes = std::fs::read(path).ok()?;
        let file = object::File::parse(&*bytes).ok()?;
        let section = |name: &str| file.section_by_name(name);
        let range = |name: &str| section(name).map(|s| s.address()..s.address() + s.size());
        let data = |name: &str| section(name).and_then(|s| s.data().ok()).map(Data::from);
        let text_small = section(".text").is_some_and(|s| s.size() <= MAX_TEXT);
        let sections = ExplicitModuleSectionInfo {
            base_svma: 0,
            text_svma: range(".text"),
            text: if text_small { data(".text") } else { None },
            got_svma: range(".got"),
            eh_frame_svma: range(".eh_frame"),
            eh_frame: data(".eh_frame"),
            eh_frame_hdr_svma: range(".eh_frame_hdr"),
            eh_frame_hdr: data(".eh_frame_hdr"),
            debug_frame: data(".debug_frame"),
            ..Default::default()
        };
        let loads = file
            .segments()
            .map(|s| {
                let (offset, size) = s.file_range();
                let executable = matches!(s.flags(), object::SegmentFlags::Elf { p_flags, .. } if p_flags.0 & object::elf::PF_X.0 != 0);
                Load { offset, size, vaddr: s.address(), executable }
            })
            .collect();
        Some(FileUnwindInfo { sections, loads })
    }

    /// Load bias: where virtual address 0 of the file lands, given one mapping of it.
    fn base_avma(&self, m: &Mapping) -> Option<u64> {
        base_avma(&self.loads, m)
    }
}

/// The segment a mapping comes from: mmap offsets are page-aligned down, so the aligned start
/// of a segment's file range can fall inside the previous segment's; prefer the segment whose
/// permissions match (lld, for one, puts `.text` at vaddr = file offset + a page).
fn base_avma(loads: &[Load], m: &Mapping) -> Option<u64> {
    const PAGE: u64 = 4096;
    let within = |l: &&Load| m.offset >= l.offset & !(PAGE - 1) && m.offset < l.offset + l.size.max(1);
    let load = loads
        .iter()
        .filter(within)
        .find(|l| l.executable == m.executable)
        .or_else(|| loads.iter().find(within))?;
    // The mapping's first byte is file offset m.offset, i.e. vaddr load.vaddr - (load.offset - m.offset).
    let svma = (load.vaddr + m.offset).checked_sub(load.offset)?;
    m.start.checked_sub(svma)
}

struct ProcessUnwinder {
    fingerprint: u64,
    unwinder: UnwinderX86_64<Data>,
    cache: CacheX86_64,
}

/// DWARF unwinder with per-file and per-process caches.
pub struct DwarfUnwinder {
    files: FileCache,
    processes: HashMap<i32, ProcessUnwinder>,
}

impl Default for DwarfUnwinder {
    fn default() -> Self {
        Self::new()
    }
}

type FileCache = HashMap<(i32, i32, u64, Arc<Path>), Option<Arc<FileUnwindInfo>>>;

fn file_info(files: &mut FileCache, maps: &ModuleMap, m: &Mapping) -> Option<Arc<FileUnwindInfo>> {
    let key = (m.dev.0, m.dev.1, m.inode, m.path.clone());
    files
        .entry(key)
        .or_insert_with(|| FileUnwindInfo::parse(&maps.open_path(&m.path)).map(Arc::new))
        .clone()
}

/// A framehop unwinder describing one process's executable mappings.
fn build_process(files: &mut FileCache, maps: &ModuleMap, fingerprint: u64) -> ProcessUnwinder {
    let mut unwinder = UnwinderX86_64::new();
    for m in maps.mappings.iter().filter(|m| m.executable) {
        let Some(info) = file_info(files, maps, m) else {
            continue;
        };
        let Some(base) = info.base_avma(m) else {
            continue;
        };
        unwinder.add_module(Module::new(
            m.path.display().to_string(),
            m.start..m.end,
            base,
            info.sections.clone(),
        ));
    }
    ProcessUnwinder {
        fingerprint,
        unwinder,
        cache: CacheX86_64::new(),
    }
}

fn fingerprint(maps: &ModuleMap) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    for m in maps.mappings.iter().filter(|m| m.executable) {
        (m.start, m.end, m.offset, m.inode).hash(&mut h);
    }
    h.finish()
}

impl DwarfUnwinder {
    pub fn new() -> Self {
        DwarfUnwinder {
            files: HashMap::new(),
            processes: HashMap::new(),
        }
    }

    fn process(&mut self, pid: i32, maps: &ModuleMap) -> &mut ProcessUnwinder {
        use std::collections::hash_map::Entry;
        let fp = fingerprint(maps);
        let files = &mut self.files;
        match self.processes.entry(pid) {
            Entry::Occupied(e) if e.get().fingerprint == fp => e.into_mut(),
            Entry::Occupied(mut e) => {
                *e.get_mut() = build_process(files, maps, fp);
                e.into_mut()
            }
            Entry::Vacant(v) => v.insert(build_process(files, maps, fp)),
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
    ) {
        out.clear();
        if regs.ip == 0 || max_frames == 0 {
            return;
        }
        let p = self.process(pid, maps);
        let sp = regs.sp;
        let mut read_stack = |addr: u64| -> Result<u64, ()> {
            let off = usize::try_from(addr.checked_sub(sp).ok_or(())?).map_err(|_| ())?;
            let bytes = stack.get(off..off.checked_add(8).ok_or(())?).ok_or(())?;
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
                Ok(None) | Err(_) => break,
            }
        }
    }

    /// Drops a process's unwinder (it exited or exec'd).
    pub fn forget(&mut self, pid: i32) {
        self.processes.remove(&pid);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Registers of the caller, read from inside a non-inlined function.
    #[inline(never)]
    fn capture(stack: &mut Vec<u8>) -> UserRegs {
        let (ip, sp, bp): (u64, u64, u64);
        // SAFETY: reads rip (via lea), rsp and rbp into registers; no memory is written.
        unsafe {
            std::arch::asm!("lea {ip}, [rip]", "mov {sp}, rsp", "mov {bp}, rbp", ip = out(reg) ip, sp = out(reg) sp, bp = out(reg) bp);
        }
        stack.clear();
        let len = stack_room(sp).min(16 * 1024);
        // SAFETY: `len` bytes above rsp are inside this thread's stack mapping (see stack_room).
        let live = unsafe { std::slice::from_raw_parts(sp as *const u8, len) };
        stack.extend_from_slice(live);
        UserRegs { ip, sp, bp }
    }

    /// Bytes from `sp` to the end of the mapping that holds it.
    fn stack_room(sp: u64) -> usize {
        let maps = std::fs::read_to_string("/proc/self/maps").unwrap_or_default();
        for line in maps.lines() {
            let range = line.split_whitespace().next().unwrap_or("");
            let mut it = range.split('-').map(|h| u64::from_str_radix(h, 16).unwrap_or(0));
            if let (Some(a), Some(b)) = (it.next(), it.next())
                && a <= sp
                && sp < b
            {
                return (b - sp) as usize;
            }
        }
        0
    }

    #[inline(never)]
    fn unwind_here_level_two(stack: &mut Vec<u8>) -> UserRegs {
        let r = capture(stack);
        std::hint::black_box(r)
    }

    #[inline(never)]
    fn unwind_here_level_one(stack: &mut Vec<u8>) -> UserRegs {
        let r = unwind_here_level_two(stack);
        std::hint::black_box(r)
    }

    #[test]
    fn unwinds_its_own_stack_through_cfi() {
        let mut stack = Vec::new();
        let regs = unwind_here_level_one(&mut stack);
        let pid = std::process::id() as i32;
        let maps = ModuleMap::read(pid).unwrap_or_else(|e| panic!("{e}"));
        let mut u = DwarfUnwinder::new();
        let mut out = Vec::new();
        u.unwind(pid, &maps, regs, &stack, 32, &mut out);
        assert!(out.len() >= 3, "short stack: {out:x?}");
        let frames: Vec<_> = out.iter().filter_map(|a| maps.lookup(*a)).collect();
        let mut syms = super::super::Symbols::new();
        let names: Vec<String> = syms.symbolize(&frames).into_iter().filter_map(|f| f.function).collect();
        let pos = |needle: &str| names.iter().position(|n| n.contains(needle));
        let (one, test) = (pos("unwind_here_level_one"), pos("unwinds_its_own_stack_through_cfi"));
        assert!(
            one.is_some() && test.is_some() && one < test,
            "caller order wrong: {names:?}"
        );
    }

    #[test]
    fn load_bias_uses_the_segment_of_the_mapping() {
        // lld layout: R at offset 0/vaddr 0, RX at offset 0x5f1a0/vaddr 0x601a0.
        let loads = [
            Load {
                offset: 0,
                size: 0x5f1a0,
                vaddr: 0,
                executable: false,
            },
            Load {
                offset: 0x5f1a0,
                size: 0x10_0000,
                vaddr: 0x60_1a0,
                executable: true,
            },
        ];
        let path: Arc<Path> = Arc::from(Path::new("/bin/x"));
        let m = Mapping {
            start: 0x5555_0006_0000,
            end: 0x5555_0016_0000,
            offset: 0x5f000,
            executable: true,
            dev: (0, 0),
            inode: 1,
            path,
        };
        assert_eq!(base_avma(&loads, &m), Some(0x5555_0000_0000));
        // GNU ld layout: vaddr == offset.
        let gnu = [Load {
            offset: 0x1000,
            size: 0x2000,
            vaddr: 0x1000,
            executable: true,
        }];
        let m2 = Mapping {
            start: 0x5600_0000_1000,
            offset: 0x1000,
            ..m
        };
        assert_eq!(base_avma(&gnu, &m2), Some(0x5600_0000_0000));
    }

    #[test]
    fn garbage_does_not_panic() {
        let maps = ModuleMap::read(std::process::id() as i32).unwrap_or_default();
        let mut u = DwarfUnwinder::new();
        let mut out = Vec::new();
        let garbage: Vec<u8> = (0..4096u32)
            .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
            .collect();
        for ip in [1u64, 0xdead_beef, u64::MAX, 0x7fff_0000_0000] {
            u.unwind(
                1,
                &maps,
                UserRegs {
                    ip,
                    sp: 0x1000,
                    bp: 0x2000,
                },
                &garbage,
                64,
                &mut out,
            );
            assert!(out.len() <= 64);
        }
        u.unwind(
            1,
            &ModuleMap::default(),
            UserRegs {
                ip: 0x1000,
                sp: u64::MAX - 4,
                bp: 0,
            },
            &garbage,
            64,
            &mut out,
        );
        assert!(out.len() <= 64);
    }
}
