//! Python frames in the agent: which traced processes run CPython (registered with the kernel,
//! which then walks their frames), each Python stack record paired with the syscall record it
//! precedes, and code objects resolved while the process lives.

use std::collections::HashMap;

use tracer_common::{decode::PyStackView, python::PyFrameRaw};

use super::Tracker;
use crate::stacks::store::PythonPart;
use crate::symbolize::{
    ModuleMap,
    python::{CodeCache, PyRuntime, find_runtime},
};

/// What the agent knows of a process's interpreter.
enum Interpreter {
    /// Not CPython as of these maps (a later library load may change that).
    Native { generation: u64 },
    /// CPython whose frames the kernel walks.
    Python(Box<(PyRuntime, CodeCache)>),
    /// CPython of a version tracer cannot read: native frames only.
    Unsupported,
}

/// The Python frames of one thread's latest captured syscall.
#[derive(Default)]
struct Pending {
    tgid: u32,
    ts_ns: u64,
    flags: u16,
    frames: Vec<PyFrameRaw>,
}

#[derive(Default)]
pub struct PythonFrames {
    interpreters: HashMap<u32, Interpreter, foldhash::fast::RandomState>,
    pending: HashMap<u32, Pending, foldhash::fast::RandomState>,
    /// Processes running a CPython tracer cannot read, said once each (for the report).
    pub unsupported: Vec<(u32, String)>,
    /// Python stack records by outcome: [`OUTCOMES`] order.
    pub outcomes: [u64; 4],
}

/// How a Python stack record came: walked whole, truncated at 64 frames, no thread state found
/// for the thread (a native thread, or beyond the 64th of the list), a read failed mid-walk.
pub const OUTCOMES: [&str; 4] = ["walked", "truncated", "no_thread_state", "read_failed"];

impl PythonFrames {
    /// A Python stack record: kept until its syscall record (the next of its thread) comes.
    pub fn on_record(&mut self, v: &PyStackView<'_>) {
        use tracer_common::python::flags;
        let f = v.head.flags;
        let outcome = if f & flags::NO_THREAD_STATE != 0 {
            2
        } else if f & flags::READ_FAILED != 0 {
            3
        } else if f & flags::TRUNCATED != 0 {
            1
        } else {
            0
        };
        self.outcomes[outcome] += 1;
        let h = &v.head.header;
        let p = self.pending.entry(h.tid).or_default();
        p.tgid = h.tgid;
        p.ts_ns = h.ts_ns;
        p.flags = v.head.flags;
        p.frames.clear();
        p.frames.extend_from_slice(v.frames);
    }

    /// Drops what is kept for a process that exited or exec'd.
    pub fn forget(&mut self, tgid: u32) {
        self.interpreters.remove(&tgid);
        self.pending.retain(|_, p| p.tgid != tgid);
    }

    /// Processes whose Python frames are walked now.
    pub fn processes(&self) -> u64 {
        self.interpreters
            .values()
            .filter(|i| matches!(i, Interpreter::Python(_)))
            .count() as u64
    }

    pub(super) fn is_python(&self, tgid: u32) -> bool {
        matches!(self.interpreters.get(&tgid), Some(Interpreter::Python(_)))
    }
}

/// Whether a process's mappings could hold CPython (its executable or a libpython): a name
/// check, so that whole-host tracing does not parse every program's symbol table.
fn may_be_python(maps: &ModuleMap) -> bool {
    maps.mappings.iter().any(|m| {
        m.path
            .file_name()
            .is_some_and(|n| n.as_encoded_bytes().windows(6).any(|w| w == b"python"))
    })
}

impl Tracker {
    /// Looks for CPython in a process whose maps are new to this check, and has the kernel walk
    /// its frames if it finds a version it can read.
    pub(super) fn detect_python(&mut self, tgid: u32) {
        if !self.probes.python_frames() {
            return;
        }
        let Some(maps) = self.modules.get(&tgid) else { return };
        match self.python.interpreters.get(&tgid) {
            Some(Interpreter::Native { generation }) if *generation == maps.generation => return,
            Some(Interpreter::Python(_) | Interpreter::Unsupported) => return,
            _ => {}
        }
        let found = if may_be_python(maps) {
            find_runtime(tgid as i32, maps)
        } else {
            Ok(None)
        };
        let found = match found {
            Ok(f) => f,
            Err(e) => {
                log::debug!("PID {tgid}: cannot read its Python runtime: {e}");
                None
            }
        };
        let state = match found {
            None => Interpreter::Native {
                generation: maps.generation,
            },
            Some(runtime) => match runtime.kernel {
                Some(k) => {
                    self.probes.set_python_process(tgid, &k);
                    let (a, b, c) = runtime.version;
                    self.set_runtime(tgid, format!("CPython {a}.{b}.{c}"));
                    let codes = CodeCache::new(tgid as i32, &runtime);
                    Interpreter::Python(Box::new((runtime, codes)))
                }
                None => {
                    let why = runtime.unsupported.clone().unwrap_or_else(|| {
                        let (a, b, c) = runtime.version;
                        format!("CPython {a}.{b}.{c}: native frames only")
                    });
                    log::info!("PID {tgid}: {why}");
                    self.set_runtime(tgid, why.clone());
                    self.python.unsupported.push((tgid, why));
                    Interpreter::Unsupported
                }
            },
        };
        self.python.interpreters.insert(tgid, state);
    }

    /// A forked child runs its parent's interpreter at the same addresses (gunicorn, uwsgi and
    /// multiprocessing workers): its frames are walked from its first allocation.
    pub(super) fn python_forked(&mut self, parent: u32, child: u32) {
        let Some(Interpreter::Python(p)) = self.python.interpreters.get(&parent) else {
            return;
        };
        let runtime = p.0.clone();
        let Some(k) = runtime.kernel else { return };
        self.probes.set_python_process(child, &k);
        let (a, b, c) = runtime.version;
        let codes = CodeCache::new(child as i32, &runtime);
        self.python
            .interpreters
            .insert(child, Interpreter::Python(Box::new((runtime, codes))));
        self.set_runtime(child, format!("CPython {a}.{b}.{c}"));
    }

    fn set_runtime(&mut self, tgid: u32, what: String) {
        if let Some(p) = self.state.processes.get_mut(&tgid) {
            p.runtime = Some(what.into());
        }
    }

    /// The Python frames of the syscall record of `tid` at `ts_ns`, taken out of the pending
    /// slot (give them back with [`Tracker::put_python`]); `None` if none came.
    pub(super) fn take_python(&mut self, tid: u32, ts_ns: u64) -> Option<(u16, Vec<PyFrameRaw>)> {
        let p = self.python.pending.get_mut(&tid)?;
        if p.ts_ns != ts_ns {
            return None;
        }
        Some((p.flags, std::mem::take(&mut p.frames)))
    }

    /// Returns the frame buffer to its slot (it keeps its capacity, and further records of the
    /// same syscall, as `recvmmsg` writes, find the same frames).
    pub(super) fn put_python(&mut self, tid: u32, frames: Vec<PyFrameRaw>) {
        if let Some(p) = self.python.pending.get_mut(&tid)
            && p.frames.is_empty()
        {
            p.frames = frames;
        }
    }

    /// Whether the process runs a CPython whose frames are resolved.
    pub(super) fn python_known(&self, tgid: u32) -> bool {
        self.python.is_python(tgid)
    }

    /// Resolves a new stack's Python frames while the process lives.
    pub(super) fn python_part(&mut self, tgid: u32, flags: u16, raw: &[PyFrameRaw]) -> Option<PythonPart> {
        if !self.python.is_python(tgid) {
            return None;
        }
        let Some(Interpreter::Python(p)) = self.python.interpreters.get_mut(&tgid) else {
            return None;
        };
        let (runtime, codes) = &mut **p;
        let frames = codes.resolve(raw);
        Some(PythonPart {
            raw: raw.into(),
            frames: frames.into(),
            eval: runtime.eval_ranges.clone().into(),
            flags,
        })
    }
}
