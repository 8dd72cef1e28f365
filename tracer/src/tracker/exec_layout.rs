//! A process's code layout from its own records, for when `/proc/PID/maps` cannot be read in
//! time: a program that runs for a millisecond is gone before the agent wakes up, yet its
//! stacks must name its functions. The exec record carries the new image's auxv (where the
//! program and its loader were placed); the loader's opens name the files and its
//! `mmap(PROT_EXEC)` calls place them. `/proc` stays the first choice whenever it can be read.

use std::{ffi::OsStr, os::unix::ffi::OsStrExt, path::Path, sync::Arc};

use tracer_common::{fd::SyscallCore, syscalls};

use super::Tracker;
use crate::procfs::process as proc;
use crate::symbolize::{self, ModuleMap};

/// Opens remembered per process while its libraries load (ld.so opens a few dozen at most).
const MAX_LOADER_OPENS: usize = 256;

/// What a just-exec'd process's records said, kept until its maps are known.
pub(super) struct Loading {
    /// The file exec'd, as the exec record gave it.
    pub program: Option<Arc<Path>>,
    /// Paths of the fds it opened (fd, path), newest last.
    pub opens: Vec<(i32, Arc<Path>)>,
}

impl Tracker {
    /// The exec record: the image's path, until its initial stack arrives.
    pub(super) fn loading_started(&mut self, tgid: u32, filename: &[u8]) {
        let path = Path::new(OsStr::from_bytes(filename));
        self.loading.insert(
            tgid,
            Loading {
                program: (!filename.is_empty()).then(|| Arc::from(path)),
                opens: Vec::new(),
            },
        );
    }

    /// Its libraries are known (or it is gone): nothing more to remember.
    pub(super) fn loading_done(&mut self, tgid: u32) {
        self.maps_pending.remove(&tgid);
        self.loading.remove(&tgid);
    }

    /// A path opened while the process loads: the loader opening a library it will map.
    pub(super) fn loader_opened(&mut self, tgid: u32, fd: i32, path: &[u8]) {
        let Some(l) = self.loading.get_mut(&tgid) else {
            return;
        };
        if l.opens.len() < MAX_LOADER_OPENS {
            let path = Path::new(OsStr::from_bytes(path));
            l.opens.push((fd, Arc::from(path)));
        }
    }

    /// execve's result: the initial stack of the new image. If the maps read at exec did not
    /// cover the program (it was gone already), place it and its loader from auxv.
    pub(super) fn on_exec_image(&mut self, tgid: u32, initial_stack: &[u8]) {
        let Some(auxv) = symbolize::auxv(initial_stack) else {
            return;
        };
        if self
            .modules_covering(tgid, &[auxv.entry])
            .is_some_and(|m| m.covers(auxv.entry))
        {
            return;
        }
        let Some(program) = self.loading.get(&tgid).and_then(|l| l.program.clone()) else {
            return;
        };
        let mappings = symbolize::exec_mappings(&program, auxv);
        if !mappings.is_empty() {
            self.modules_of(tgid).add_code(mappings);
        }
    }

    /// `mmap(PROT_EXEC)` of a file: a library placed. Read from /proc while the process lives;
    /// from the path the loader opened when it is gone.
    pub(super) fn on_code_mapping(&mut self, tgid: u32, core: &SyscallCore) {
        let (start, len, fd, offset) = (core.ret as u64, core.args[1], core.args[4] as i32, core.args[5]);
        if !syscalls::maps_code(&core.args) || self.modules.get(&tgid).is_some_and(|m| m.covers(start)) {
            return;
        }
        let opened = self
            .loading
            .get(&tgid)
            .and_then(|l| l.opens.iter().rev().find(|(f, _)| *f == fd).map(|(_, p)| p.clone()));
        let path = match opened {
            Some(p) => p,
            // Not opened while loading (a later dlopen): /proc, while the process lives.
            None => {
                if self.modules_covering(tgid, &[start]).is_some_and(|m| m.covers(start)) {
                    return;
                }
                match proc::describe_fd(tgid, fd) {
                    Some((_, target)) => Arc::from(Path::new(OsStr::from_bytes(&target))),
                    None => return,
                }
            }
        };
        if let Some(m) = symbolize::file_mapping(&path, start, len, offset) {
            self.modules_of(tgid).add_code(vec![m]);
        }
    }

    fn modules_of(&mut self, tgid: u32) -> &mut ModuleMap {
        self.modules.entry(tgid).or_insert_with(|| ModuleMap {
            pid: tgid as i32,
            ..Default::default()
        })
    }
}
