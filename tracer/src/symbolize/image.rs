//! Code mappings of a process rebuilt from what the kernel reported, for a process that exits
//! before the agent could read `/proc/PID/maps` (a short-lived `run` child is the usual case): the
//! auxiliary vector on the new image's initial stack says where the program and its loader were
//! placed, and the loader's `mmap(PROT_EXEC)` of each library says where that one went.

use std::{
    io::Read,
    os::unix::{ffi::OsStrExt, fs::MetadataExt},
    path::{Path, PathBuf},
    sync::Arc,
};

use object::{
    elf::{ET_DYN, FileHeader64, PF_X, PT_INTERP, PT_LOAD},
    read::elf::{FileHeader, ProgramHeader},
};

use super::{maps::Mapping, unwind_info::Load};

const PAGE: u64 = 4096;
/// `AT_*` keys (include/uapi/linux/auxvec.h).
const AT_NULL: u64 = 0;
const AT_BASE: u64 = 7;
const AT_ENTRY: u64 = 9;
/// ELF and program headers sit at the front of the file; the interpreter path right after them.
const HEADER_BYTES: u64 = 64 * 1024;

/// What the kernel told the new program about its own placement.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Auxv {
    /// The program's entry point (after relocation).
    pub entry: u64,
    /// Where the interpreter (ld.so) was loaded; 0 for a static program.
    pub base: u64,
}

/// Reads auxv from a copy of the initial stack (`argc`, `argv[]`, NULL, `envp[]`, NULL, then
/// (key, value) pairs up to `AT_NULL`). None if the copy ends before `AT_ENTRY` is seen.
pub fn auxv(stack: &[u8]) -> Option<Auxv> {
    let word = |i: usize| -> Option<u64> {
        let b = stack.get(i.checked_mul(8)?..i.checked_mul(8)?.checked_add(8)?)?;
        Some(u64::from_le_bytes(b.try_into().ok()?))
    };
    let argc = usize::try_from(word(0)?).ok()?;
    // argv's NULL is at 1 + argc; envp runs to the next NULL.
    let mut i = argc.checked_add(2)?;
    if word(i - 1)? != 0 {
        return None;
    }
    while word(i)? != 0 {
        i += 1;
    }
    i += 1;
    let mut out = Auxv::default();
    loop {
        let (key, value) = (word(i)?, word(i + 1)?);
        match key {
            AT_NULL => break,
            AT_ENTRY => out.entry = value,
            AT_BASE => out.base = value,
            _ => {}
        }
        i += 2;
    }
    (out.entry != 0).then_some(out)
}

/// An ELF file's entry point, whether it is position-independent, its interpreter, and its
/// executable `PT_LOAD` segments.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ElfLayout {
    pub entry: u64,
    pub position_independent: bool,
    pub interpreter: Option<PathBuf>,
    pub code: Vec<Load>,
}

/// The `PT_LOAD` segments of a 64-bit ELF file, from its program headers (which `data` must
/// hold: the front of the file is enough). The one place tracer reads them: the exec layout
/// and the unwinder's load bias both come from here.
pub fn load_segments(data: &[u8]) -> Option<Vec<Load>> {
    let header = FileHeader64::<object::Endianness>::parse(data).ok()?;
    let endian = header.endian().ok()?;
    let headers = header.program_headers(endian, data).ok()?;
    Some(
        headers
            .iter()
            .filter(|ph| ph.p_type(endian) == PT_LOAD)
            .map(|ph| Load {
                offset: ph.p_offset(endian),
                size: ph.p_filesz(endian),
                vaddr: ph.p_vaddr(endian),
                executable: ph.p_flags(endian).0 & PF_X.0 != 0,
            })
            .collect(),
    )
}

impl ElfLayout {
    /// Reads the headers at the front of the file (not the whole file: binaries with debug info
    /// can be hundreds of MiB).
    pub fn read(path: &Path) -> Option<Self> {
        let mut head = Vec::new();
        std::fs::File::open(path)
            .ok()?
            .take(HEADER_BYTES)
            .read_to_end(&mut head)
            .ok()?;
        Self::parse(&head)
    }

    fn parse(data: &[u8]) -> Option<Self> {
        let header = FileHeader64::<object::Endianness>::parse(data).ok()?;
        let endian = header.endian().ok()?;
        let mut out = ElfLayout {
            entry: header.e_entry(endian),
            position_independent: header.e_type(endian) == ET_DYN,
            ..Default::default()
        };
        for ph in header.program_headers(endian, data).ok()? {
            if ph.p_type(endian) == PT_INTERP
                && let Ok(bytes) = ph.data(endian, data)
            {
                let bytes = bytes.split(|b| *b == 0).next().unwrap_or(bytes);
                out.interpreter = Some(PathBuf::from(std::ffi::OsStr::from_bytes(bytes)));
            }
        }
        out.code = load_segments(data)?.into_iter().filter(|l| l.executable).collect();
        Some(out)
    }

    /// The code mappings of the file loaded with `bias` added to its addresses, as the kernel
    /// maps `PT_LOAD` segments (page-aligned).
    pub fn mappings(&self, path: &Path, bias: u64) -> Vec<Mapping> {
        let Some((dev, inode)) = identity(path) else {
            return Vec::new();
        };
        let path: Arc<Path> = Arc::from(path);
        self.code
            .iter()
            .filter_map(|l| {
                let start = bias.checked_add(l.vaddr)? & !(PAGE - 1);
                let end = page_up(bias.checked_add(l.vaddr)?.checked_add(l.size)?)?;
                Some(Mapping {
                    start,
                    end,
                    offset: l.offset & !(PAGE - 1),
                    executable: true,
                    dev,
                    inode,
                    path: path.clone(),
                })
            })
            .collect()
    }
}

/// The mappings of a program just exec'd from `program` and of its interpreter, from its auxv.
pub fn exec_mappings(program: &Path, auxv: Auxv) -> Vec<Mapping> {
    let program = &canonical(program);
    let Some(layout) = ElfLayout::read(program) else {
        return Vec::new();
    };
    let bias = if layout.position_independent {
        auxv.entry.wrapping_sub(layout.entry)
    } else {
        0
    };
    let mut out = layout.mappings(program, bias);
    if let Some(interp) = layout.interpreter.as_deref()
        && auxv.base != 0
    {
        let interp = canonical(interp);
        if let Some(l) = ElfLayout::read(&interp) {
            out.extend(l.mappings(&interp, auxv.base));
        }
    }
    out
}

/// One code mapping made by `mmap(addr = start, len, .., fd, offset)` of the file at `path`.
pub fn file_mapping(path: &Path, start: u64, len: u64, offset: u64) -> Option<Mapping> {
    let path = &canonical(path);
    let (dev, inode) = identity(path)?;
    Some(Mapping {
        start,
        end: page_up(start.checked_add(len)?)?,
        offset,
        executable: true,
        dev,
        inode,
        path: Arc::from(path.as_path()),
    })
}

/// The path /proc/PID/maps would show: symlinks resolved (`/lib64/ld-linux-x86-64.so.2`,
/// `/lib/..` through the usrmerge link, a relative exec path).
fn canonical(path: &Path) -> PathBuf {
    std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf())
}

fn page_up(addr: u64) -> Option<u64> {
    Some(addr.checked_add(PAGE - 1)? & !(PAGE - 1))
}

/// (major, minor) and inode, as `/proc/PID/maps` shows them.
fn identity(path: &Path) -> Option<((i32, i32), u64)> {
    let md = std::fs::metadata(path).ok()?;
    let dev = md.dev();
    Some(((libc::major(dev) as i32, libc::minor(dev) as i32), md.ino()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stack(words: &[u64]) -> Vec<u8> {
        words.iter().flat_map(|w| w.to_le_bytes()).collect()
    }

    #[test]
    fn auxv_follows_argv_and_envp() {
        let s = stack(&[
            2, 0x10, 0x20, 0, 0x30, 0x40, 0x50, 0, 33, 0x7fff, 7, 0x7f00, 9, 0x5500, 0, 0,
        ]);
        assert_eq!(
            auxv(&s),
            Some(Auxv {
                entry: 0x5500,
                base: 0x7f00
            })
        );
        // Cut before AT_ENTRY, or argv not NULL-terminated where argc says: nothing.
        assert_eq!(auxv(&s[..8 * 11]), None);
        assert_eq!(auxv(&stack(&[1, 0x10, 0x20, 0, 0, 9, 1, 0, 0])), None);
        assert_eq!(auxv(&[]), None);
    }

    /// This test binary's own auxv and maps: the mappings rebuilt from the ELF headers are the
    /// code mappings the kernel and the loader made.
    #[test]
    fn rebuilt_mappings_match_the_real_ones() {
        let raw = std::fs::read("/proc/self/auxv").unwrap_or_default();
        let mut words = vec![0u64, 0, 0];
        words.extend(raw.as_chunks::<8>().0.iter().map(|c| u64::from_le_bytes(*c)));
        let a = auxv(&stack(&words));
        assert!(a.is_some_and(|a| a.base != 0), "auxv: {a:?}");
        let exe = std::fs::read_link("/proc/self/exe").unwrap_or_default();
        let rebuilt = a.map(|a| exec_mappings(&exe, a)).unwrap_or_default();
        let real =
            super::super::ModuleMap::from_maps_text(&std::fs::read_to_string("/proc/self/maps").unwrap_or_default());
        let real_code: Vec<&Mapping> = real.mappings.iter().filter(|m| m.executable).collect();
        assert!(rebuilt.len() >= 2, "{rebuilt:?}");
        for m in &rebuilt {
            assert!(
                real_code
                    .iter()
                    .any(|r| r.start == m.start && r.offset == m.offset && r.inode == m.inode && r.end == m.end),
                "{m:?} not in {real_code:#?}"
            );
        }
        assert!(rebuilt.iter().any(|m| m.path.to_string_lossy().contains("ld-linux")));
    }
}
