//! A snapshot of a process's file-backed mappings, parsed with procfs.

use std::{
    io::Cursor,
    os::unix::ffi::OsStrExt,
    path::{Path, PathBuf},
    sync::Arc,
};

use procfs::{
    FromRead,
    process::{MMPermissions, MMapPath, MemoryMaps},
};

use super::{SymbolizeError, module_file::ModuleFile};

/// An address resolved to a module file and an offset in it.
#[derive(Clone, Debug)]
pub struct NormalizedFrame {
    pub address: u64,
    pub module: Arc<Path>,
    pub file_offset: u64,
    /// The module file held open while the process lived (None for snapshots parsed from text).
    pub file: Option<Arc<ModuleFile>>,
}

impl PartialEq for NormalizedFrame {
    fn eq(&self, other: &Self) -> bool {
        (self.address, &self.module, self.file_offset) == (other.address, &other.module, other.file_offset)
    }
}

impl Eq for NormalizedFrame {}

impl std::hash::Hash for NormalizedFrame {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        (self.address, &self.module, self.file_offset).hash(state);
    }
}

impl NormalizedFrame {
    /// Where to read the module from for symbolization.
    pub fn source(&self) -> Arc<Path> {
        match &self.file {
            Some(f) => f.path_for(&self.module),
            None => self.module.clone(),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Mapping {
    pub start: u64,
    pub end: u64,
    pub offset: u64,
    pub executable: bool,
    pub dev: (i32, i32),
    pub inode: u64,
    pub path: Arc<Path>,
}

/// File-backed mappings of one process, sorted by address. A snapshot: still usable after exit.
#[derive(Clone, Debug, Default)]
pub struct ModuleMap {
    pub pid: i32,
    pub mappings: Vec<Mapping>,
    /// Where module files are read from while the process lives (`/proc/PID/root`, for
    /// processes in other mount namespaces).
    pub root: Option<PathBuf>,
    /// Executable modules, held open (see [`ModuleFile`]).
    pub files: std::collections::HashMap<Arc<Path>, Arc<ModuleFile>>,
    /// Changes whenever `mappings` do (a new read, [`ModuleMap::add_code`]; code that edits
    /// `mappings` directly calls [`ModuleMap::changed`]): what is derived from the mappings
    /// (the unwinder's module list) is checked against this instead of the mappings themselves.
    pub generation: u64,
    /// When `/proc/PID/maps` was read for it (what `Instant` says), if it was.
    pub read_at: Option<std::time::Instant>,
}

/// Source of [`ModuleMap::generation`] values (0 is a map never filled).
static GENERATIONS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);

impl ModuleMap {
    pub fn read(pid: i32) -> Result<Self, SymbolizeError> {
        let path = format!("/proc/{pid}/maps");
        // ESRCH: the process exited between open and read.
        let text = std::fs::read(&path).map_err(|source| match source.raw_os_error() {
            Some(libc::ENOENT | libc::ESRCH) => SymbolizeError::ProcessGone(pid),
            _ => SymbolizeError::Maps { pid, source },
        })?;
        // A zombie's maps are empty: nothing to normalize with.
        if text.is_empty() {
            return Err(SymbolizeError::ProcessGone(pid));
        }
        let mut m = Self::parse(&text);
        m.pid = pid;
        m.read_at = Some(std::time::Instant::now());
        m.root = Some(PathBuf::from(format!("/proc/{pid}/root")));
        for map in m.mappings.iter().filter(|x| x.executable) {
            if !m.files.contains_key(&map.path)
                && let Some(f) = ModuleFile::open(pid, map)
            {
                m.files.insert(map.path.clone(), f);
            }
        }
        Ok(m)
    }

    /// Adds code mappings learnt from records (see [`super::image`]), replacing whatever they
    /// overlap (a `MAP_FIXED` mapping replaces the pages under it), and opens their files.
    pub fn add_code(&mut self, added: Vec<Mapping>) {
        self.changed();
        for m in added {
            self.mappings.retain(|old| old.end <= m.start || old.start >= m.end);
            let at = self.mappings.partition_point(|old| old.start < m.start);
            if !self.files.contains_key(&m.path)
                && let Some(f) = ModuleFile::open(self.pid, &m)
            {
                self.files.insert(m.path.clone(), f);
            }
            self.mappings.insert(at, m);
        }
    }

    /// Marks the mappings changed (see [`ModuleMap::generation`]).
    pub fn changed(&mut self) {
        self.generation = GENERATIONS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    }

    /// Parses `/proc/PID/maps` text (for tests and snapshots).
    pub fn from_maps_text(text: &str) -> Self {
        Self::parse(text.as_bytes())
    }

    fn parse(text: &[u8]) -> Self {
        let mut mappings = Vec::new();
        if let Ok(maps) = MemoryMaps::from_read(Cursor::new(text)) {
            for m in maps {
                let MMapPath::Path(p) = &m.pathname else {
                    continue;
                };
                let path: Arc<Path> = Arc::from(strip_deleted(p).as_path());
                mappings.push(Mapping {
                    start: m.address.0,
                    end: m.address.1,
                    offset: m.offset,
                    executable: m.perms.contains(MMPermissions::EXECUTE),
                    dev: m.dev,
                    inode: m.inode,
                    path,
                });
            }
        }
        mappings.sort_by_key(|m| m.start);
        // Share one Arc per path so frames compare and hash cheaply.
        for i in 1..mappings.len() {
            if mappings[i].path == mappings[i - 1].path {
                mappings[i].path = mappings[i - 1].path.clone();
            }
        }
        ModuleMap {
            pid: 0,
            mappings,
            root: None,
            files: Default::default(),
            generation: GENERATIONS.fetch_add(1, std::sync::atomic::Ordering::Relaxed),
            read_at: None,
        }
    }

    fn mapping(&self, addr: u64) -> Option<&Mapping> {
        let i = self.mappings.partition_point(|m| m.start <= addr);
        let m = self.mappings.get(i.checked_sub(1)?)?;
        (addr < m.end).then_some(m)
    }

    /// The module and file offset of `addr`.
    pub fn lookup(&self, addr: u64) -> Option<NormalizedFrame> {
        let m = self.mapping(addr)?;
        Some(NormalizedFrame {
            address: addr,
            module: m.path.clone(),
            file_offset: addr - m.start + m.offset,
            file: self.files.get(&m.path).cloned(),
        })
    }

    /// Whether `addr` is in an executable file-backed mapping.
    pub fn covers(&self, addr: u64) -> bool {
        self.mapping(addr).is_some_and(|m| m.executable)
    }

    /// The path to open a module file at: through the process's root while it lives.
    pub fn open_path(&self, module: &Path) -> PathBuf {
        if let Some(root) = &self.root {
            let p = root.join(module.strip_prefix("/").unwrap_or(module));
            if p.exists() {
                return p;
            }
        }
        module.to_path_buf()
    }
}

/// A mapped file deleted since (replaced by a package upgrade) shows as "PATH (deleted)".
fn strip_deleted(p: &Path) -> PathBuf {
    let b = p.as_os_str().as_bytes();
    match b.strip_suffix(b" (deleted)") {
        Some(s) => PathBuf::from(std::ffi::OsStr::from_bytes(s)),
        None => p.to_path_buf(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MAPS: &str = "\
55d0c0a00000-55d0c0a01000 r--p 00000000 08:01 100 /usr/bin/demo
55d0c0a01000-55d0c0a02000 r-xp 00001000 08:01 100 /usr/bin/demo
7f0000000000-7f0000028000 r--p 00000000 08:01 200 /usr/lib/x86_64-linux-gnu/libc.so.6
7f0000028000-7f000019d000 r-xp 00028000 08:01 200 /usr/lib/x86_64-linux-gnu/libc.so.6
7f00001a0000-7f00001a1000 r-xp 00000000 08:01 300 /tmp/old lib.so (deleted)
7ffd00000000-7ffd00021000 rw-p 00000000 00:00 0 [stack]
";

    #[test]
    fn parses_and_looks_up() {
        let m = ModuleMap::from_maps_text(MAPS);
        assert_eq!(m.mappings.len(), 5);
        let f = m.lookup(0x55d0_c0a0_1010);
        assert_eq!(
            f.as_ref().map(|f| (f.module.to_str(), f.file_offset)),
            Some((Some("/usr/bin/demo"), 0x1010))
        );
        let libc = m.lookup(0x7f00_0002_8010).map(|f| f.file_offset);
        assert_eq!(libc, Some(0x28010));
        assert!(m.covers(0x7f00_0002_8010));
        assert!(!m.covers(0x7f00_0000_0010), "read-only mapping is not code");
        assert!(
            m.lookup(0x7ffd_0000_0010).is_none(),
            "anonymous mappings are not modules"
        );
        assert!(m.lookup(0x10).is_none());
        let deleted = m.lookup(0x7f00_001a_0000).map(|f| f.module.to_path_buf());
        assert_eq!(deleted, Some(PathBuf::from("/tmp/old lib.so")));
    }

    #[test]
    fn added_code_replaces_what_it_overlaps_and_stays_sorted() {
        let mut m = ModuleMap::from_maps_text(MAPS);
        let lib = |start: u64, end: u64, offset: u64, path: &str| Mapping {
            start,
            end,
            offset,
            executable: true,
            dev: (8, 1),
            inode: 400,
            path: Arc::from(Path::new(path)),
        };
        // A library's text placed with MAP_FIXED over the read-only reservation of libc's span.
        m.add_code(vec![
            lib(0x7f00_0001_0000, 0x7f00_0003_0000, 0x1000, "/lib/new.so"),
            lib(0x1000, 0x2000, 0, "/lib/low.so"),
        ]);
        let starts: Vec<u64> = m.mappings.iter().map(|x| x.start).collect();
        let mut sorted = starts.clone();
        sorted.sort_unstable();
        assert_eq!(starts, sorted);
        let f = m.lookup(0x7f00_0001_0010);
        assert_eq!(
            f.as_ref().map(|f| (f.module.to_str(), f.file_offset)),
            Some((Some("/lib/new.so"), 0x1010))
        );
        assert!(m.lookup(0x7f00_0000_0010).is_none(), "the overlapped mappings are gone");
        assert!(m.covers(0x1fff) && m.covers(0x55d0_c0a0_1010));
    }

    #[test]
    fn garbage_is_an_empty_map() {
        assert!(
            ModuleMap::from_maps_text("not a maps file\n\x00\x01")
                .mappings
                .is_empty()
        );
    }
}
