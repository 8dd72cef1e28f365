//! CPython in a live process: where its runtime is, which struct offsets its version has
//! ([`offsets`]), and the names of the Python frames the kernel captured ([`CodeCache`]).
//!
//! The kernel sends raw frames ([`PyFrameRaw`]: a code object address and an instruction
//! pointer); everything version-specific is decided here.

mod code;
mod linetable;
mod mem;
pub mod offsets;
#[cfg(test)]
mod tests;

use std::{ops::Range, path::Path, sync::Arc};

use object::{Object, ObjectSection, ObjectSegment, ObjectSymbol};
use tracer_common::python::{NO_FIELD, PY_FRAME_WINDOW, PY_FRAMES_MAX, PyFrameRaw, PyProcess};

pub use code::{CodeCache, PyFrame};
pub use linetable::addr2line;
use mem::Mem;
use offsets::Layout;

use super::ModuleMap;

#[derive(Debug, thiserror::Error)]
pub enum PythonError {
    #[error("cannot open /proc/{pid}/mem (another user's process needs root or CAP_SYS_PTRACE)")]
    Mem {
        pid: i32,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot read {len} bytes at {addr:#x} in PID {pid}")]
    Read { pid: i32, addr: u64, len: usize },
    #[error("implausible {what} ({value:#x}) in interpreter memory")]
    Implausible { what: &'static str, value: u64 },
    #[error("cannot read {path}")]
    Module {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("CPython {0}: not supported")]
    Unsupported(String),
}

/// CPython found in a process.
#[derive(Clone, Debug)]
pub struct PyRuntime {
    /// From `Py_Version` (3.11+; for older versions, from the module's file name, patch 0).
    pub version: (u8, u8, u8),
    /// Address of `_PyRuntime` in the process.
    pub runtime: u64,
    /// Address ranges of `_PyEval_EvalFrameDefault` (and its `.cold` parts, when the symbol
    /// table names them) in the process.
    pub eval_ranges: Vec<Range<u64>>,
    /// The ELF that defines `_PyRuntime` (as the process maps it).
    pub module: Arc<Path>,
    /// What the kernel needs; None when the version is not supported (see `unsupported`).
    pub kernel: Option<PyProcess>,
    /// Why `kernel` is None.
    pub unsupported: Option<String>,
    /// All offsets of this version (None when not supported).
    pub layout: Option<Layout>,
}

/// Opens a mapped module through the process's root (its mount namespace).
fn open_module(maps: &ModuleMap, path: &Arc<Path>) -> Result<std::fs::File, PythonError> {
    let candidates = [
        maps.files.get(path).map(|f| f.path_for(path).to_path_buf()),
        maps.root
            .as_ref()
            .map(|r| r.join(path.strip_prefix("/").unwrap_or(path))),
        Some(path.to_path_buf()),
    ];
    let mut last = None;
    for p in candidates.into_iter().flatten() {
        match std::fs::File::open(&p) {
            Ok(f) => return Ok(f),
            Err(e) => last = Some(e),
        }
    }
    Err(PythonError::Module {
        path: path.display().to_string(),
        source: last.unwrap_or_else(|| std::io::Error::from(std::io::ErrorKind::NotFound)),
    })
}

/// Does the module's `.dynstr` name `_PyRuntime`? Reads the headers and that one section, not
/// the whole file: every process's executable is looked at.
fn names_runtime(file: &std::fs::File) -> bool {
    let Ok(f) = file.try_clone() else { return false };
    let cache = object::ReadCache::new(f);
    let Ok(elf) = object::File::parse(&cache) else {
        return false;
    };
    elf.section_by_name(".dynstr")
        .and_then(|s| s.data().ok())
        .is_some_and(|d| d.windows(11).any(|w| w == b"_PyRuntime\0"))
}

/// The module as a buffer of its size holding only what symbol lookup and the load bias need
/// (headers, symbol and string tables); the rest stays zero pages never touched: a libpython
/// with debug info is ~30 MB, its symbol tables under 1 MB.
fn symbols_only(file: &std::fs::File) -> Option<Vec<u8>> {
    use object::{
        elf,
        read::elf::{FileHeader, SectionHeader},
    };
    use std::os::unix::fs::FileExt;
    let len = usize::try_from(file.metadata().ok()?.len()).ok()?;
    let mut data = vec![0u8; len];
    let fill = |data: &mut Vec<u8>, off: u64, size: u64| -> Option<()> {
        let start = usize::try_from(off).ok()?;
        let end = start.checked_add(usize::try_from(size).ok()?)?;
        file.read_exact_at(data.get_mut(start..end)?, off).ok()
    };
    fill(&mut data, 0, size_of::<elf::FileHeader64<object::Endianness>>() as u64)?;
    let (shoff, phoff, phentsize) = {
        let hdr = elf::FileHeader64::<object::Endianness>::parse(&*data).ok()?;
        let e = hdr.endian().ok()?;
        (hdr.e_shoff(e), hdr.e_phoff(e), u64::from(hdr.e_phentsize(e)))
    };
    let shentsize = size_of::<elf::SectionHeader64<object::Endianness>>() as u64;
    if shoff != 0 {
        // Section 0 first: it holds the counts when they overflow the header's fields.
        fill(&mut data, shoff, shentsize)?;
    }
    let (shnum, phnum) = {
        let hdr = elf::FileHeader64::<object::Endianness>::parse(&*data).ok()?;
        let e = hdr.endian().ok()?;
        (
            u64::from(hdr.shnum(e, &*data).ok()?),
            u64::from(hdr.phnum(e, &*data).ok()?),
        )
    };
    fill(&mut data, shoff, shnum * shentsize)?;
    fill(&mut data, phoff, phnum * phentsize)?;
    let tables: Vec<(u64, u64)> = {
        let hdr = elf::FileHeader64::<object::Endianness>::parse(&*data).ok()?;
        let e = hdr.endian().ok()?;
        hdr.section_headers(e, &*data)
            .ok()?
            .iter()
            .filter(|s| {
                matches!(
                    s.sh_type(e),
                    elf::SHT_SYMTAB | elf::SHT_DYNSYM | elf::SHT_STRTAB | elf::SHT_SYMTAB_SHNDX
                )
            })
            .map(|s| (s.sh_offset(e), s.sh_size(e)))
            .collect()
    };
    for (off, size) in tables {
        fill(&mut data, off, size)?;
    }
    Some(data)
}

/// Is this file name one that may define `_PyRuntime` besides the executable
/// (`libpython3.11.so.1.0`, `python3.12`)?
fn python_named(path: &Path) -> bool {
    let name = path.file_name().map(|n| n.to_string_lossy()).unwrap_or_default();
    name.starts_with("libpython") || name.starts_with("python")
}

/// `3.10` from `libpython3.10.so.1.0` or `python3.10`.
fn version_from_name(path: &Path) -> Option<(u8, u8)> {
    let name = path.file_name()?.to_string_lossy().into_owned();
    let rest = name.strip_prefix("lib").unwrap_or(&name).strip_prefix("python")?;
    let mut parts = rest.split(|c: char| !c.is_ascii_digit()).filter(|s| !s.is_empty());
    Some((parts.next()?.parse().ok()?, parts.next()?.parse().ok()?))
}

/// The load bias of a module: its address in the process minus its ELF virtual address.
fn load_bias(elf: &object::File, maps: &ModuleMap, path: &Arc<Path>) -> Option<u64> {
    let m = maps
        .mappings
        .iter()
        .filter(|m| &m.path == path)
        .min_by_key(|m| m.offset)?;
    // The segment that holds the mapping's file offset.
    let seg = elf.segments().find(|s| {
        let (off, size) = s.file_range();
        (off & !0xfff) <= m.offset && m.offset < off + size.max(1)
    })?;
    let (seg_off, _) = seg.file_range();
    let vaddr = seg.address().wrapping_sub(seg_off).wrapping_add(m.offset);
    Some(m.start.wrapping_sub(vaddr))
}

/// Finds CPython in a live process: the mapped ELF (the executable or a `libpython*`) that
/// defines `_PyRuntime`. `Ok(None)`: not a CPython process.
pub fn find_runtime(pid: i32, maps: &ModuleMap) -> Result<Option<PyRuntime>, PythonError> {
    let exe = std::fs::read_link(format!("/proc/{pid}/exe")).ok();
    let mut paths: Vec<&Arc<Path>> = Vec::new();
    for m in &maps.mappings {
        let is_exe = exe.as_deref() == Some(&*m.path);
        if (is_exe || python_named(&m.path)) && !paths.contains(&&m.path) {
            paths.push(&m.path);
        }
    }
    // libpython before the executable: a dynamically linked `python3.X` only imports it.
    paths.sort_by_key(|p| {
        !p.file_name()
            .is_some_and(|n| n.to_string_lossy().starts_with("libpython"))
    });
    for path in paths {
        let Ok(file) = open_module(maps, path) else { continue };
        if !names_runtime(&file) {
            continue;
        }
        let Some(data) = symbols_only(&file) else { continue };
        let Ok(elf) = object::File::parse(&*data) else { continue };
        let mut runtime_sym = None;
        let mut version_sym = None;
        let mut eval = Vec::new();
        for sym in elf.dynamic_symbols().chain(elf.symbols()) {
            if !sym.is_definition() {
                continue;
            }
            match sym.name() {
                Ok("_PyRuntime") => runtime_sym = Some(sym.address()),
                Ok("Py_Version") => version_sym = Some(sym.address()),
                Ok(n) if n == "_PyEval_EvalFrameDefault" || n.starts_with("_PyEval_EvalFrameDefault.") => {
                    eval.push(sym.address()..sym.address() + sym.size().max(1));
                }
                _ => {}
            }
        }
        let Some(runtime_vaddr) = runtime_sym else { continue };
        let Some(bias) = load_bias(&elf, maps, path) else {
            continue;
        };
        eval.sort_by_key(|r| (r.start, r.end));
        eval.dedup();
        let eval_ranges = eval
            .into_iter()
            .map(|r| r.start.wrapping_add(bias)..r.end.wrapping_add(bias))
            .collect();
        let runtime = runtime_vaddr.wrapping_add(bias);
        let mem = Mem::open(pid)?;
        let version = match version_sym {
            Some(v) => {
                let mut b = [0u8; 4];
                mem.read(v.wrapping_add(bias), &mut b)?;
                let hex = u32::from_le_bytes(b);
                ((hex >> 24) as u8, (hex >> 16) as u8, (hex >> 8) as u8)
            }
            None => match version_from_name(path) {
                Some((a, b)) => (a, b, 0),
                None => (3, 0, 0),
            },
        };
        let (layout, unsupported) = layout_for(&mem, runtime, version);
        let kernel = layout.as_ref().map(|l| PyProcess {
            runtime,
            offsets: l.kernel,
        });
        return Ok(Some(PyRuntime {
            version,
            runtime,
            eval_ranges,
            module: path.clone(),
            kernel,
            unsupported,
            layout,
        }));
    }
    Ok(None)
}

/// The offsets of `version` (a table, or the debug offsets at `runtime`), or why there are none.
fn layout_for(mem: &Mem, runtime: u64, version: (u8, u8, u8)) -> (Option<Layout>, Option<String>) {
    let name = format!("{}.{}", version.0, version.1);
    let unsupported = |why: &str| (None, Some(format!("CPython {name}: native frames only ({why})")));
    match (version.0, version.1) {
        (3, 11 | 12) => (offsets::table(version.0, version.1), None),
        (3, 13..) => {
            let block = match mem.vec(runtime, offsets::DEBUG_OFFSETS_READ) {
                Ok(b) => b,
                Err(e) => return unsupported(&format!("{e}")),
            };
            match offsets::parse_debug_offsets(&block) {
                Ok(d) if d.free_threaded => unsupported("free-threaded build"),
                Ok(d) if (d.version >> 16) as u8 != version.1 => {
                    unsupported(&format!("_Py_DebugOffsets says {:#x}", d.version))
                }
                Ok(d) => (Some(d.layout), None),
                Err(e) => unsupported(&e),
            }
        }
        _ => unsupported("tracer reads 3.11-3.14"),
    }
}

/// Each thread state of the main interpreter: `(native thread id, PyThreadState address)`, as
/// the kernel finds them (an oracle for tests and the agent's view of the thread list).
pub fn thread_states(pid: i32, rt: &PyRuntime) -> Result<Vec<(u32, u64)>, PythonError> {
    let Some(k) = rt.kernel else {
        return Err(PythonError::Unsupported(rt.unsupported.clone().unwrap_or_default()));
    };
    let o = k.offsets;
    let mem = Mem::open(pid)?;
    let interp = mem.u64(rt.runtime + u64::from(o.runtime_interp_main))?;
    let mut t = mem.u64(interp + u64::from(o.interp_threads_head))?;
    let mut out = Vec::new();
    while t != 0 && out.len() < 4096 {
        let tid = mem.u64(t + u64::from(o.tstate_native_thread_id))?;
        out.push((tid as u32, t));
        t = mem.u64(t + u64::from(o.tstate_next))?;
    }
    Ok(out)
}

/// The frame chain of one thread state as the kernel reads it (innermost first, at most
/// [`PY_FRAMES_MAX`]): an oracle for tests.
pub fn read_frames(pid: i32, rt: &PyRuntime, tstate: u64) -> Result<Vec<PyFrameRaw>, PythonError> {
    let Some(k) = rt.kernel else {
        return Err(PythonError::Unsupported(rt.unsupported.clone().unwrap_or_default()));
    };
    let o = k.offsets;
    let mem = Mem::open(pid)?;
    let mut frame = if o.tstate_cframe == NO_FIELD {
        mem.u64(tstate + u64::from(o.current_frame))?
    } else {
        let cframe = mem.u64(tstate + u64::from(o.tstate_cframe))?;
        mem.u64(cframe + u64::from(o.current_frame))?
    };
    let mut out = Vec::new();
    let mut window = [0u8; PY_FRAME_WINDOW];
    let field = |w: &[u8; PY_FRAME_WINDOW], at: u16| {
        let at = usize::from(at);
        w.get(at..at + 8)
            .map_or(0, |b| u64::from_le_bytes(b.try_into().unwrap_or_default()))
    };
    while frame != 0 && out.len() < PY_FRAMES_MAX {
        mem.read(frame, &mut window)?;
        let marker = window.get(usize::from(o.frame_marker)).copied().unwrap_or(0);
        let instr = (field(&window, o.frame_instr) & ((1 << 56) - 1)) | (u64::from(marker) << 56);
        out.push(PyFrameRaw {
            code: field(&window, o.frame_code),
            instr,
        });
        frame = field(&window, o.frame_previous);
    }
    Ok(out)
}
