//! Symbolization with blazesym: function, file:line, inlined frames, demangled names, from the
//! module files (their DWARF, or debug files found through `.gnu_debuglink`/build id).

use std::{collections::HashMap, path::Path, sync::Arc};

use blazesym::symbolize::{
    Input, Symbolized, Symbolizer,
    source::{Elf, Kernel, Source},
};

use super::maps::NormalizedFrame;

#[derive(Clone, Debug, PartialEq)]
pub struct SymbolizedFrame {
    pub address: u64,
    pub function: Option<String>,
    pub file: Option<String>,
    pub line: Option<u32>,
    pub module: Option<String>,
    /// Offset of the address in the module file (`module+0xOFFSET`, what addr2line takes);
    /// None for kernel frames.
    pub file_offset: Option<u64>,
    pub inlined: bool,
}

/// One symbolized location (without the address), innermost inlined function first.
type Resolved = Arc<[SymbolizedFrame]>;

/// A location in a module file: its path, which file it was ((device, inode) when the process was
/// alive: the same path may hold another file by now), and the file offset looked up.
type CacheKey = (Arc<Path>, Option<(u64, u64)>, u64);

/// Resolved locations kept; past this the least recently used quarter goes.
pub const MAX_LOCATIONS: usize = 65_536;
/// Module files whose parsed DWARF blazesym may keep; past this its caches are dropped.
pub const MAX_MODULES: usize = 256;

/// Where split debug files are looked for, by build id (`DIR/.build-id/xx/rest.debug`, Debian's
/// `-dbgsym` and `-dbg` packages) and by `.gnu_debuglink` name: blazesym's defaults.
pub const DEBUG_DIRS: &[&str] = &["/usr/lib/debug", "/lib/debug"];

/// Symbolizer with a cache of resolved locations, least recently used evicted first.
pub struct Symbols {
    symbolizer: Symbolizer,
    debug_dirs: Vec<std::path::PathBuf>,
    /// Location -> (frames, last use).
    cache: HashMap<CacheKey, (Resolved, u64)>,
    /// Kernel addresses already resolved (`--kernel-stack`).
    kernel_cache: HashMap<u64, Option<String>>,
    /// Module files the symbolizer has opened since its caches were last dropped.
    modules: std::collections::HashSet<Arc<Path>>,
    clock: u64,
    /// Locations evicted, and times blazesym's file caches were dropped.
    pub evicted_locations: u64,
    pub module_cache_resets: u64,
}

impl Default for Symbols {
    fn default() -> Self {
        Self::new()
    }
}

fn code_location(ci: Option<&blazesym::symbolize::CodeInfo<'_>>) -> (Option<String>, Option<u32>) {
    match ci {
        Some(ci) => (Some(ci.to_path().display().to_string()), ci.line),
        None => (None, None),
    }
}

impl Symbols {
    pub fn new() -> Self {
        Self::with_debug_dirs(DEBUG_DIRS.iter().map(std::path::PathBuf::from).collect())
    }

    /// A symbolizer that looks for split debug files under `debug_dirs` (tests point it at a
    /// directory of their own).
    pub fn with_debug_dirs(debug_dirs: Vec<std::path::PathBuf>) -> Self {
        let symbolizer = Self::builder(&debug_dirs);
        Symbols {
            symbolizer,
            debug_dirs,
            cache: HashMap::new(),
            kernel_cache: HashMap::new(),
            modules: Default::default(),
            clock: 0,
            evicted_locations: 0,
            module_cache_resets: 0,
        }
    }

    fn builder(debug_dirs: &[std::path::PathBuf]) -> Symbolizer {
        Symbolizer::builder()
            .set_debug_dirs(Some(debug_dirs))
            .enable_code_info(true)
            .enable_inlined_fns(true)
            .enable_demangling(true)
            .build()
    }

    /// Keeps the caches within their caps (call between jobs): the least recently used
    /// locations go first; blazesym's parsed files are dropped when too many were opened.
    pub fn trim(&mut self) {
        if self.cache.len() > MAX_LOCATIONS {
            let mut uses: Vec<u64> = self.cache.values().map(|(_, t)| *t).collect();
            let keep = MAX_LOCATIONS * 3 / 4;
            let cut = uses.len() - keep;
            let (_, nth, _) = uses.select_nth_unstable(cut);
            let threshold = *nth;
            let before = self.cache.len();
            self.cache.retain(|_, (_, t)| *t >= threshold);
            self.evicted_locations += (before - self.cache.len()) as u64;
        }
        if self.kernel_cache.len() > MAX_LOCATIONS {
            self.evicted_locations += self.kernel_cache.len() as u64;
            self.kernel_cache.clear();
        }
        if self.modules.len() > MAX_MODULES {
            self.symbolizer = Self::builder(&self.debug_dirs);
            self.modules.clear();
            self.module_cache_resets += 1;
        }
    }

    pub fn cached_locations(&self) -> usize {
        self.cache.len()
    }

    /// Frames in stack order (innermost first). All but the first are return addresses: the call
    /// instruction is looked up (offset - 1), the way every unwinder reports call sites.
    pub fn symbolize(&mut self, frames: &[NormalizedFrame]) -> Vec<SymbolizedFrame> {
        let mut out = Vec::with_capacity(frames.len());
        for (i, f) in frames.iter().enumerate() {
            let lookup = if i == 0 {
                f.file_offset
            } else {
                f.file_offset.saturating_sub(1)
            };
            let resolved = self.resolve(f, lookup);
            for r in resolved.iter() {
                out.push(SymbolizedFrame {
                    address: f.address,
                    file_offset: Some(f.file_offset),
                    ..r.clone()
                });
            }
        }
        out
    }

    /// Kernel frames (innermost first) from kallsyms: function names, module `[kernel]`.
    pub fn symbolize_kernel(&mut self, addrs: &[u64]) -> Vec<SymbolizedFrame> {
        let src = Source::Kernel(Kernel {
            // kallsyms of the running kernel; a vmlinux with DWARF is rarely installed.
            debug_syms: false,
            ..Kernel::default()
        });
        addrs
            .iter()
            .enumerate()
            .map(|(i, a)| {
                // Return addresses point after the call.
                let lookup = if i == 0 { *a } else { a.saturating_sub(1) };
                let function = self
                    .kernel_cache
                    .entry(lookup)
                    .or_insert_with(
                        || match self.symbolizer.symbolize_single(&src, Input::AbsAddr(lookup)) {
                            Ok(Symbolized::Sym(sym)) => Some(sym.name.to_string()),
                            _ => None,
                        },
                    )
                    .clone();
                SymbolizedFrame {
                    address: *a,
                    function,
                    file: None,
                    line: None,
                    module: Some("[kernel]".to_owned()),
                    file_offset: None,
                    inlined: false,
                }
            })
            .collect()
    }

    /// Resolves `offset` in the frame's module, innermost inlined function first.
    fn resolve(&mut self, frame: &NormalizedFrame, offset: u64) -> Resolved {
        let key: CacheKey = (frame.module.clone(), frame.file.as_ref().map(|f| f.id()), offset);
        self.clock += 1;
        if let Some((r, used)) = self.cache.get_mut(&key) {
            *used = self.clock;
            return r.clone();
        }
        let module = &frame.module;
        let module_name = Some(module.display().to_string());
        let unknown = || -> Resolved {
            Arc::from(vec![SymbolizedFrame {
                address: 0,
                function: None,
                file: None,
                line: None,
                module: module_name.clone(),
                file_offset: None,
                inlined: false,
            }])
        };
        let path = frame.source();
        let src = Source::Elf(Elf::new(path.to_path_buf()));
        self.modules.insert(path);
        let resolved: Resolved = match self.symbolizer.symbolize_single(&src, Input::FileOffset(offset)) {
            Ok(Symbolized::Sym(sym)) => {
                let mut v = Vec::with_capacity(1 + sym.inlined.len());
                // blazesym lists inlined calls outermost first; a stack is innermost first.
                for inl in sym.inlined.iter().rev() {
                    let (file, line) = code_location(inl.code_info.as_ref());
                    v.push(SymbolizedFrame {
                        address: 0,
                        function: Some(inl.name.to_string()),
                        file,
                        line,
                        module: module_name.clone(),
                        file_offset: None,
                        inlined: true,
                    });
                }
                let (file, line) = code_location(sym.code_info.as_deref());
                v.push(SymbolizedFrame {
                    address: 0,
                    function: Some(sym.name.to_string()),
                    file,
                    line,
                    module: module_name.clone(),
                    file_offset: None,
                    inlined: false,
                });
                Arc::from(v)
            }
            _ => unknown(),
        };
        self.cache.insert(key, (resolved.clone(), self.clock));
        resolved
    }
}
