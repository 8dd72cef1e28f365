//! Turning a record's captured registers and stack (or fp stack id) into an interned stack,
//! reading the process's module map when a frame falls outside it.

use tracer_common::{config::StackMode, decode::SyscallView};

use super::{MAX_FRAMES, Tracker, stages::Stage};
use crate::{
    stacks::{fp_ids::Lookup, store::PythonKey},
    state::StackId,
    symbolize::{ModuleMap, UnwindEnd, UserRegs},
};

/// The record size the kernel picks for `need` bytes of live stack (see `emit_detail` in the
/// programs): the smallest of 1, 2, 4, 8 and 16 KiB that holds it, at most `max`.
pub(super) fn copy_size(need: u64, max: usize) -> usize {
    let mut size = tracer_common::config::STACK_COPY_MIN;
    while (size as u64) < need && size < 16384 {
        size *= 2;
    }
    size.min(max)
}

/// Maps read this recently are not read again for a stack that falls outside them.
const MAPS_REREAD: std::time::Duration = std::time::Duration::from_millis(200);

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
        let t = self.stages.start();
        // The Python frames the kernel sent just before this record, if any.
        let h = v.core.header;
        self.py_now = self.take_python(h.tid, h.ts_ns);
        let id = self.user_stack_of(tgid, v, d, &kernel);
        if let Some((_, frames)) = self.py_now.take() {
            self.put_python(h.tid, frames);
        }
        self.stages.stop(Stage::Unwind, t);
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
                    // Python frames make the same native stack another stack: the native
                    // addresses are known (no map read), the stack is interned with them.
                    Lookup::Cached(id) if self.py_now.is_some() && self.python_known(tgid) => {
                        let mut addrs = std::mem::take(&mut self.scratch);
                        addrs.clear();
                        if let Some(s) = self.stacks.get(id) {
                            addrs.extend_from_slice(s.addresses.get(kernel.len()..).unwrap_or(&[]));
                        }
                        let id = self.intern(tgid, kernel, &addrs);
                        self.scratch = addrs;
                        return id;
                    }
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
                self.stack_modules_covering(tgid, &[regs.ip]);
                let mut end = self.unwind_into(tgid, regs, v.stack, &mut addrs);
                let known = self
                    .modules
                    .get(&tgid)
                    .is_some_and(|m| addrs.iter().all(|a| m.covers(*a)));
                if !known && !self.maps_read_recently(tgid) && self.refresh_modules(tgid) {
                    end = self.unwind_into(tgid, regs, v.stack, &mut addrs);
                }
                self.learn_stack_top(tgid, v.core.header.tid, regs.sp, v.stack_room, end);
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
        if let Some(m) = self.stack_modules_covering(tgid, addrs)
            && let Some(bad) = addrs.iter().position(|a| !m.covers(*a))
        {
            addrs.truncate(bad.max(1));
        }
    }

    fn unwind_into(&mut self, tgid: u32, regs: UserRegs, stack: &[u8], addrs: &mut Vec<u64>) -> UnwindEnd {
        match self.modules.get(&tgid) {
            Some(m) => {
                // Parsing the unwind tables of modules new to this process is the modules stage.
                let t = self.stages.start();
                self.unwinder.prepare(tgid as i32, m);
                self.stages.stop(Stage::Modules, t);
                self.unwinder.unwind(tgid as i32, m, regs, stack, MAX_FRAMES, addrs)
            }
            None => {
                addrs.clear();
                addrs.push(regs.ip);
                UnwindEnd::default()
            }
        }
    }

    /// What a thread's unwound stack says about how much of its stack the kernel must copy.
    ///
    /// A thread's frames end where its root frame's do (`_start`, a thread's start routine):
    /// a walk that reached the root read every byte any stack of this thread needs above its
    /// `sp`, wherever `sp` is, so `sp + used` is the thread's stack top and the kernel copies
    /// only from `sp` to it, in the smallest record size that holds it (`STACK_TOPS`). A
    /// stack that ran past a shortened copy (another stack under the same thread id, a switched
    /// stack) makes the kernel copy the whole `--stack-size` again for the thread.
    fn learn_stack_top(&mut self, tgid: u32, tid: u32, sp: u64, room: usize, end: UnwindEnd) {
        if room == 0 {
            return;
        }
        let class = (room / tracer_common::config::STACK_COPY_MIN).trailing_zeros() as usize;
        if let Some(n) = self.counters.stack_copies.get_mut(class) {
            *n += 1;
        }
        let known = self
            .stack_tops
            .get(&tid)
            .filter(|(t, _)| *t == tgid)
            .map(|(_, top)| *top);
        if end.overran && room < self.stack_bytes {
            self.stack_tops.remove(&tid);
            self.probes.forget_stack_top(tid);
            self.counters.short_stack_copies += 1;
            return;
        }
        if !end.completed || end.used == 0 {
            return;
        }
        let top = sp.saturating_add(end.used).max(known.unwrap_or(0));
        // The kernel has this top if the record is no bigger than the size it implies.
        let kernel_has_it = known == Some(top) && room <= copy_size(top - sp, self.stack_bytes);
        if !kernel_has_it {
            self.stack_tops.insert(tid, (tgid, top));
            self.probes.set_stack_top(tid, top);
        }
    }

    /// Forgets the stack tops of a process's threads (the kernel drops each as the thread
    /// exits or execs).
    pub(super) fn forget_stack_tops(&mut self, tgid: u32) {
        if !self.stack_tops.is_empty() {
            self.stack_tops.retain(|_, (t, _)| *t != tgid);
        }
    }

    /// Whether the process's maps were read less than [`MAPS_REREAD`] ago: a stack whose frames
    /// fall outside the known modules then keeps what is known instead of reading them again.
    /// A stack that ends in a frame no module holds (garbage at a thread's base, code the JIT
    /// wrote) would otherwise cost a read of `/proc/PID/maps` on every record of that site
    /// (measured: 2.5 µs per record on average under nginx with every stack taken). Code the
    /// process maps is learnt from its own records (`on_code_mapping`) without a read.
    fn maps_read_recently(&self, tgid: u32) -> bool {
        self.modules
            .get(&tgid)
            .and_then(|m| m.read_at)
            .is_some_and(|t| t.elapsed() < MAPS_REREAD)
    }

    /// [`Tracker::modules_covering`] for stacks: not read again if read recently.
    fn stack_modules_covering(&mut self, tgid: u32, addrs: &[u64]) -> Option<&ModuleMap> {
        if self.maps_read_recently(tgid) {
            return self.modules.get(&tgid);
        }
        self.modules_covering(tgid, addrs)
    }

    /// Reads the process's maps again; false if they did not change (or it is gone).
    pub(super) fn refresh_modules(&mut self, tgid: u32) -> bool {
        let t = self.stages.start();
        let read = ModuleMap::read(tgid as i32);
        self.stages.stop(Stage::Modules, t);
        match read {
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
        if stale {
            let t = self.stages.start();
            let read = ModuleMap::read(tgid as i32);
            self.stages.stop(Stage::Modules, t);
            if let Ok(m) = read {
                self.modules.insert(tgid, m);
            }
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
        // Python frames count only for a process known to run CPython (they are resolved with
        // its interpreter), so that a stack is found under the key it was stored with.
        let py = self.py_now.take().filter(|_| self.python_known(tgid));
        let key = py.as_ref().map(|(flags, raw)| PythonKey { raw, flags: *flags });
        let id = match self.stacks.find_with(tgid, &all, key) {
            Some(id) => id,
            None => {
                self.modules_covering(tgid, addrs);
                // A library loaded since (libpython) may make it a CPython process now.
                self.detect_python(tgid);
                let part = py.as_ref().and_then(|(flags, raw)| self.python_part(tgid, *flags, raw));
                let id = self.stacks.insert_with(tgid, &all, self.modules.get(&tgid), part);
                self.note_maps_known(tgid, addrs);
                id
            }
        };
        self.py_now = py;
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
