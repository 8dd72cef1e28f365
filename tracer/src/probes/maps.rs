//! The maps the agent talks to while tracing: which processes are traced, what the kernel lost,
//! stacks by id, threads' stack tops, CPython processes; and the programs' own cost.

use aya::maps::{HashMap, MapData, RingBuf};
use tracer_common::config::{self, LOSS_COUNTERS};

use super::{BPF_EXIST, ProbeError, Probes, ProgramCost, is_not_found, take};

impl Probes {
    /// Starts following a process (its threads and the children it forks from now on).
    pub fn trace(&mut self, tgid: u32) -> Result<(), ProbeError> {
        // Its syscalls need the hook (the agent attaches it only while something is traced).
        self.set_syscall_hook(true)?;
        // The hint slot first: the programs skip the hash lookup of processes whose slot is 0.
        let slot = tgid % config::TRACED_HINT_SLOTS;
        self.traced_hint.set(slot, &1, 0).map_err(|source| {
            self.map_update_failures += 1;
            ProbeError::Map {
                name: config::TRACED_HINT_MAP,
                source,
            }
        })?;
        let r = self.traced.insert(&tgid, &config::TRACED_NEEDS_MAPS, 0);
        if r.is_err() {
            self.map_update_failures += 1;
        }
        r.map_err(|source| ProbeError::Map {
            name: config::TRACED_MAP,
            source,
        })
    }

    /// Counts and logs a failed map update: a failure to follow is never silent. A missing key
    /// is no failure (the kernel got there first: the process exited).
    fn check(&mut self, what: &str, key: impl std::fmt::Display, r: Result<(), aya::maps::MapError>) {
        if let Err(e) = r
            && !is_not_found(&e)
        {
            self.map_update_failures += 1;
            log::warn!("{what} {key}: {e}");
        }
    }

    /// Whether syscall results come through `tp_btf/sys_exit` (else the raw tracepoint).
    pub fn typed_sys_exit(&self) -> bool {
        self.ebpf.program("sys_exit_btf").is_some_and(|p| p.fd().is_ok())
    }

    /// Each loaded program's run count and run time (zero unless statistics are on: see
    /// `--bpf-stats`). Programs whose info cannot be read are left out.
    pub fn program_costs(&self) -> Vec<ProgramCost> {
        let mut costs: Vec<ProgramCost> = self
            .ebpf
            .programs()
            .filter_map(|(name, p)| {
                let info = p.info().ok()?;
                Some(ProgramCost {
                    name: name.to_owned(),
                    runs: info.run_count(),
                    run_ns: info.run_time().as_nanos() as u64,
                })
            })
            .collect();
        costs.sort_by(|a, b| a.name.cmp(&b.name));
        costs
    }

    /// Map updates that failed: processes (or zombies' reaps) the kernel does not follow as the
    /// agent asked. Each is also logged.
    pub fn map_update_failures(&self) -> u64 {
        self.map_update_failures
    }

    /// Command names whose exec makes a process traced by the kernel at once (`--comm`; see
    /// `config::SELECTED_COMMS_MAP`). At most `SELECTED_COMMS_MAX`; longer names are cut to
    /// the 15 bytes a task's comm holds.
    pub fn select_comms(&mut self, comms: &[Vec<u8>]) -> Result<(), ProbeError> {
        let name = config::SELECTED_COMMS_MAP;
        let map = self.ebpf.map_mut(name).ok_or(ProbeError::MissingMap(name))?;
        let mut selected: HashMap<&mut MapData, [u8; 16], u8> =
            HashMap::try_from(map).map_err(|source| ProbeError::Map { name, source })?;
        for c in comms {
            let mut key = [0u8; 16];
            let n = c.len().min(15);
            key[..n].copy_from_slice(&c[..n]);
            selected
                .insert(&key, &1, 0)
                .map_err(|source| ProbeError::Map { name, source })?;
        }
        Ok(())
    }

    /// The agent has read the process's memory maps: its records no longer need to wake it.
    pub fn maps_known(&mut self, tgid: u32) {
        // Only if still traced (BPF_EXIST): never re-add a process that exited, whose pid
        // could be reused by a process nobody asked to trace.
        let r = self.traced.insert(&tgid, &config::TRACED_HAS_MAPS, BPF_EXIST);
        self.check("cannot mark the memory maps of PID", tgid, r);
    }

    /// A zombie found at attach: report when the kernel releases it (its parent reaped it).
    pub fn expect_release(&mut self, pid: u32) {
        let r = self.exited.insert(&pid, &1, 0);
        self.check("cannot follow the reap of zombie PID", pid, r);
    }

    pub fn untrace(&mut self, tgid: u32) {
        let r = self.traced.remove(&tgid);
        self.check("cannot stop tracing PID", tgid, r);
    }

    /// Takes the ring buffer out (once).
    pub fn take_ring_buffer(&mut self) -> Result<RingBuf<MapData>, ProbeError> {
        take(&mut self.ebpf, config::EVENTS_MAP)
    }

    /// Kernel loss counters summed over CPUs, indexed by `LossCounter`.
    pub fn losses(&self) -> [u64; LOSS_COUNTERS as usize] {
        let mut out = [0u64; LOSS_COUNTERS as usize];
        for (i, slot) in out.iter_mut().enumerate() {
            if let Ok(per_cpu) = self.losses.get(&(i as u32), 0) {
                *slot = per_cpu.iter().sum();
            }
        }
        out
    }

    /// Processes whose records were lost since the last call, and how many (the kernel's
    /// counts are taken out of the map).
    pub fn take_lost_by_process(&mut self) -> Vec<(u32, u64)> {
        let mut keys = Vec::new();
        for k in self.lost_by_tgid.keys() {
            match k {
                Ok(k) => keys.push(k),
                // A key removed while iterating ends the walk; the rest come next tick.
                Err(e) => {
                    log::debug!("reading {}: {e}", config::LOST_BY_TGID_MAP);
                    break;
                }
            }
        }
        let mut out = Vec::with_capacity(keys.len());
        for tgid in keys {
            if let Ok(n) = self.lost_by_tgid.get(&tgid, 0) {
                // Left in place, the same losses would be taken again: one resync too many.
                let r = self.lost_by_tgid.remove(&tgid);
                self.check("cannot reset the loss count of PID", tgid, r);
                out.push((tgid, n));
            }
        }
        out
    }

    /// A kernel stack captured at fd installation (`--kernel-stack`), innermost first.
    pub fn kernel_stack(&self, id: u32, out: &mut Vec<u64>) {
        out.clear();
        if let Some(stacks) = &self.kernel_stacks
            && let Ok(trace) = stacks.get(&id, 0)
        {
            out.extend(trace.frames().iter().map(|f| f.ip).filter(|ip| *ip != 0));
        }
    }

    /// Tells the kernel where thread `tid`'s stack ends for unwinding, so its DWARF-mode records
    /// copy only the live part (see `STACK_TOPS` in the programs).
    pub fn set_stack_top(&mut self, tid: u32, top: u64) {
        if let Some(r) = self.stack_tops.as_mut().map(|m| m.insert(&tid, &top, 0)) {
            self.check("cannot set the stack top of thread", tid, r);
        }
    }

    /// Whether Python frames are walked at all (`--python-frames on`, with stacks).
    pub fn python_frames(&self) -> bool {
        self.py_procs.is_some()
    }

    /// Makes the kernel walk `tgid`'s Python frames with these offsets.
    pub fn set_python_process(&mut self, tgid: u32, p: &tracer_common::python::PyProcess) {
        if let Some(r) = self.py_procs.as_mut().map(|m| m.insert(&tgid, &p.to_bytes(), 0)) {
            self.check("cannot register the Python runtime of process", tgid, r);
        }
    }

    /// Forgets thread `tid`'s stack top: its records copy the whole `--stack-size` again.
    pub fn forget_stack_top(&mut self, tid: u32) {
        if let Some(r) = self.stack_tops.as_mut().map(|m| m.remove(&tid)) {
            self.check("cannot forget the stack top of thread", tid, r);
        }
    }

    /// Frees a kernel stack-map entry the agent no longer needs (`--stack fp`).
    pub fn forget_fp_stack(&mut self, id: i64) {
        let Ok(id) = u32::try_from(id) else { return };
        if let Some(r) = self.stacks.as_mut().map(|stacks| stacks.remove(&id)) {
            self.check("cannot free stack id", id, r);
        }
    }

    /// A frame-pointer user stack captured by the kernel (`--stack fp`).
    pub fn fp_stack(&self, id: u32, out: &mut Vec<u64>) -> bool {
        out.clear();
        let Some(stacks) = &self.stacks else {
            return false;
        };
        match stacks.get(&id, 0) {
            Ok(trace) => {
                out.extend(trace.frames().iter().map(|f| f.ip).filter(|ip| *ip != 0));
                true
            }
            Err(_) => false,
        }
    }
}
