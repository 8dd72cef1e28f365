//! Turning a record's captured registers and stack (or fp stack id) into an interned stack,
//! reading the process's module map when a frame falls outside it.

use tracer_common::{config::StackMode, decode::SyscallView};

use super::{MAX_FRAMES, Tracker, fp_ids::Lookup};
use crate::{
    state::StackId,
    symbolize::{ModuleMap, UserRegs},
};

impl Tracker {
    pub(super) fn stack_of(&mut self, tgid: u32, v: &SyscallView<'_>) -> StackId {
        let Some(d) = v.detail else {
            return StackId::NONE;
        };
        // `--kernel-stack`: the kernel frames of the fd's installation come first.
        let mut kernel = std::mem::take(&mut self.kernel_scratch);
        kernel.clear();
        if d.kernel_stack_id >= 0 {
            self.probes.kernel_stack(d.kernel_stack_id as u32, &mut kernel);
        }
        let id = self.user_stack_of(tgid, v, d, &kernel);
        self.kernel_scratch = kernel;
        id
    }

    fn user_stack_of(
        &mut self,
        tgid: u32,
        v: &SyscallView<'_>,
        d: &tracer_common::fd::SyscallRecord,
        kernel: &[u64],
    ) -> StackId {
        // Not sampled under the stack budget: the fd is counted, no user stack was taken.
        let unsampled = d.stack_weight == 0;
        match self.stack_mode {
            _ if unsampled && kernel.is_empty() => StackId::NONE,
            _ if unsampled => self.intern(tgid, kernel, &[]),
            StackMode::None if kernel.is_empty() => StackId::NONE,
            StackMode::None => self.intern(tgid, kernel, &[]),
            StackMode::FramePointer => {
                let key = (tgid, d.stack_id, d.kernel_stack_id);
                match self.fp.lookup(key, v.core.header.ts_ns) {
                    Lookup::Cached(id) => return id,
                    Lookup::Gone => {
                        self.counters.stacks_gone += 1;
                        return self.intern(tgid, kernel, &[]);
                    }
                    Lookup::Read => {}
                }
                let mut addrs = std::mem::take(&mut self.scratch);
                // A negative id: the kernel captured nothing (and counted it).
                let read = d.stack_id < 0 || self.probes.fp_stack(d.stack_id as u32, &mut addrs);
                if d.stack_id >= 0 && read {
                    self.truncate_at_garbage(tgid, &mut addrs);
                } else {
                    addrs.clear();
                }
                let id = self.intern(tgid, kernel, &addrs);
                self.scratch = addrs;
                if read {
                    self.fp.read(key, id);
                } else {
                    // Freed before it was read (not by a sweep this record knows of).
                    self.counters.stacks_gone += 1;
                }
                id
            }
            StackMode::Dwarf => {
                let regs = UserRegs {
                    ip: d.user_ip,
                    sp: d.user_sp,
                    bp: d.user_bp,
                };
                let mut addrs = std::mem::take(&mut self.scratch);
                // The map must know every module the stack runs through, or framehop has no CFI
                // for it and falls back to frame pointers (skipping callers): read it again when
                // the ip is outside it (libraries mapped since the last read, e.g. libc after
                // ld.so's first opens), and unwind again once if a frame falls outside it.
                self.modules_covering(tgid, &[regs.ip]);
                self.unwind_into(tgid, regs, v.stack, &mut addrs);
                let known = self
                    .modules
                    .get(&tgid)
                    .is_some_and(|m| addrs.iter().all(|a| m.covers(*a)));
                if !known && self.refresh_modules(tgid) {
                    self.unwind_into(tgid, regs, v.stack, &mut addrs);
                }
                let id = self.intern(tgid, kernel, &addrs);
                self.scratch = addrs;
                id
            }
        }
    }

    /// A frame-pointer walk through code built without frame pointers (glibc's syscall
    /// wrappers use rbp as a general register) reads data as return addresses: stop at the first
    /// address outside executable code, so one call site is one stack whatever the garbage.
    fn truncate_at_garbage(&mut self, tgid: u32, addrs: &mut Vec<u64>) {
        if let Some(m) = self.modules_covering(tgid, addrs)
            && let Some(bad) = addrs.iter().position(|a| !m.covers(*a))
        {
            addrs.truncate(bad.max(1));
        }
    }

    fn unwind_into(&mut self, tgid: u32, regs: UserRegs, stack: &[u8], addrs: &mut Vec<u64>) {
        match self.modules.get(&tgid) {
            Some(m) => self.unwinder.unwind(tgid as i32, m, regs, stack, MAX_FRAMES, addrs),
            None => {
                addrs.clear();
                addrs.push(regs.ip);
            }
        }
    }

    /// Reads the process's maps again; false if they did not change (or it is gone).
    pub(super) fn refresh_modules(&mut self, tgid: u32) -> bool {
        match ModuleMap::read(tgid as i32) {
            Ok(m) => {
                let changed = self.modules.get(&tgid).is_none_or(|old| old.mappings != m.mappings);
                self.modules.insert(tgid, m);
                changed
            }
            Err(_) => false,
        }
    }

    /// The process's module map, read again if a frame falls outside the known modules (a
    /// library loaded after the last read).
    pub(super) fn modules_covering(&mut self, tgid: u32, addrs: &[u64]) -> Option<&ModuleMap> {
        let stale = self
            .modules
            .get(&tgid)
            .is_none_or(|m| addrs.iter().any(|a| !m.covers(*a)));
        if stale && let Ok(m) = ModuleMap::read(tgid as i32) {
            self.modules.insert(tgid, m);
        }
        self.modules.get(&tgid)
    }

    /// Interns a stack (kernel frames, if any, then user frames), normalizing the user frames
    /// against the process's current modules.
    pub(super) fn intern(&mut self, tgid: u32, kernel: &[u64], addrs: &[u64]) -> StackId {
        let mut all = std::mem::take(&mut self.combined_scratch);
        all.clear();
        all.extend_from_slice(kernel);
        all.extend_from_slice(addrs);
        let id = match self.stacks.find(tgid, &all) {
            Some(id) => id,
            None => {
                self.modules_covering(tgid, addrs);
                let id = self.stacks.insert(tgid, &all, self.modules.get(&tgid));
                self.note_maps_known(tgid, addrs);
                id
            }
        };
        self.combined_scratch = all;
        id
    }

    /// Once a stack from the program itself (not only the dynamic loader's, which runs before
    /// the libraries are mapped) is covered by the maps read, the kernel may batch this
    /// process's records again instead of waking the agent for each.
    fn note_maps_known(&mut self, tgid: u32, addrs: &[u64]) {
        let Some(m) = self.modules.get(&tgid) else { return };
        let frames: Vec<_> = addrs.iter().map(|a| m.lookup(*a)).collect();
        let covered = frames.iter().all(Option::is_some);
        let beyond_loader = frames
            .iter()
            .flatten()
            .any(|f| !f.module.to_string_lossy().contains("/ld-linux"));
        if covered && beyond_loader {
            self.probes.maps_known(tgid);
            self.loading_done(tgid);
        }
    }
}
