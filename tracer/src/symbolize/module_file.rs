//! Module files kept open while stacks refer to them, so a binary can still be symbolized after
//! its process exited and the file was deleted or replaced (a package upgrade, a test's temporary
//! binary), or when it only exists inside another mount namespace (a container).

use std::{
    collections::HashMap,
    fs::File,
    os::{fd::AsRawFd, unix::fs::MetadataExt},
    path::{Path, PathBuf},
    sync::{Arc, Mutex, Weak},
};

use super::maps::Mapping;

/// One module file, open.
#[derive(Debug)]
pub struct ModuleFile {
    dev: u64,
    inode: u64,
    /// `/proc/self/fd/N` of the open file.
    fd_path: Arc<Path>,
    _file: File,
}

/// Open files by (device, inode), shared by every process mapping them; closed when no stack
/// refers to them any more.
static OPEN: Mutex<Option<OpenFiles>> = Mutex::new(None);

type OpenFiles = HashMap<(u64, u64), Weak<ModuleFile>>;

fn device(dev: (i32, i32)) -> u64 {
    libc::makedev(dev.0 as u32, dev.1 as u32)
}

impl ModuleFile {
    /// Opens the file behind a mapping of a live process (`/proc/PID/map_files` works even for
    /// deleted files; `/proc/PID/root` reaches other mount namespaces), or of a gone one by path.
    pub fn open(pid: i32, m: &Mapping) -> Option<Arc<ModuleFile>> {
        let key = (device(m.dev), m.inode);
        let mut guard = OPEN.lock().ok()?;
        let open = guard.get_or_insert_with(HashMap::new);
        if let Some(f) = open.get(&key).and_then(Weak::upgrade) {
            return Some(f);
        }
        let candidates = [
            PathBuf::from(format!("/proc/{pid}/map_files/{:x}-{:x}", m.start, m.end)),
            PathBuf::from(format!("/proc/{pid}/root")).join(m.path.strip_prefix("/").unwrap_or(&m.path)),
            // A process already gone (mappings rebuilt from its records): the path as the agent
            // sees it, if it is still the same file.
            m.path.to_path_buf(),
        ];
        let file = candidates.iter().find_map(|p| {
            let f = File::open(p).ok()?;
            let md = f.metadata().ok()?;
            (md.ino() == m.inode).then_some(f)
        })?;
        let fd_path: Arc<Path> = Arc::from(PathBuf::from(format!("/proc/self/fd/{}", file.as_raw_fd())).as_path());
        let mf = Arc::new(ModuleFile {
            dev: key.0,
            inode: key.1,
            fd_path,
            _file: file,
        });
        open.retain(|_, w| w.strong_count() > 0);
        open.insert(key, Arc::downgrade(&mf));
        Some(mf)
    }

    /// (device, inode): which file this is, whatever path reaches it.
    pub fn id(&self) -> (u64, u64) {
        (self.dev, self.inode)
    }

    /// The path to read the module from: its own path while that is still the same file (so
    /// `.gnu_debuglink` files beside it are found), else the open file.
    pub fn path_for(&self, module: &Arc<Path>) -> Arc<Path> {
        match std::fs::metadata(module) {
            Ok(md) if md.ino() == self.inode && md.dev() == self.dev => module.clone(),
            _ => self.fd_path.clone(),
        }
    }
}
