//! Per-record dispatch: each record to the state, its stack to the store, and what a new fd
//! needs described.

use tracer_common::{
    config::StackMode,
    decode::{Record, SyscallView},
    lock::LockRecord,
    syscalls::{self, Effect, IpcKind},
};

use super::{Tracker, stages};
use crate::{
    procfs::{locks as proc_locks, process as proc, sysv},
    state::{
        StackId,
        locks::{FileId, LockEvent},
        syscall::Syscall,
    },
};

impl Tracker {
    /// Handles a record; `decode_ns` is set for the records sampled for the stage breakdown.
    pub(super) fn handle_timed(&mut self, record: Record<'_>, decode_ns: Option<u64>) {
        let Some(decode_ns) = decode_ns else {
            return self.handle(record);
        };
        self.stages.add_decode(decode_ns);
        self.stages.begin_record();
        let t = std::time::Instant::now();
        self.handle(record);
        self.stages.end_record(t.elapsed().as_nanos() as u64);
    }

    fn handle(&mut self, record: Record<'_>) {
        match record {
            Record::Syscall(v) => self.on_syscall(&v),
            Record::PyStack(p) => self.python.on_record(&p),
            Record::Fork(f) => self.on_fork(f),
            Record::ExecUntraced(e) => self.on_exec_untraced(e),
            Record::Exec(e) => self.on_exec(e),
            Record::Exit(x) => self.on_exit(x),
            Record::Reap(r) => self.state.on_reap(r.header.tgid, r.header.ts_ns),
            Record::Signal(s) => self.state.on_signal(s),
            Record::Lock(l) => {
                let e = lock_event(l);
                self.state.on_lock(&e);
                // A traced process waits: for whom? The holder may not be traced at all.
                if e.ret == tracer_common::lock::FILE_LOCK_DEFERRED {
                    self.state.locks.learn(&proc_locks::read(), Some(e.file), None, e.ts_ns);
                }
            }
        }
    }

    fn on_syscall(&mut self, v: &SyscallView<'_>) {
        let core = v.core;
        let tgid = core.header.tgid;
        if !self.state.processes.contains_key(&tgid) {
            self.discover(tgid, core.header.ts_ns);
        }
        // Failed calls (EBADF on any of them) are dispatched like the rest.
        let effect = if core.ret >= 0 {
            syscalls::spec(core.nr).map(|s| s.effect)
        } else {
            None
        };
        // Layout records: where code was placed, for stacks of processes gone too soon.
        match effect {
            Some(Effect::Exec) => return self.on_exec_image(tgid, v.stack),
            Some(Effect::MapCode) => return self.on_code_mapping(tgid, core),
            Some(Effect::SigAction) => return self.on_sigchld_action(tgid, v),
            _ => {}
        }
        let stack = match v.detail {
            Some(d) => {
                if self.stack_mode != StackMode::None {
                    if d.stack_weight == 0 {
                        self.counters.stacks_skipped += 1;
                    } else {
                        self.counters.stacks_taken += 1;
                    }
                }
                self.stack_of(tgid, v)
            }
            None => StackId::NONE,
        };
        let (data_kind, data) = match v.detail {
            Some(d) => (d.data_kind, v.data()),
            None => (0, &[][..]),
        };
        let sc = Syscall {
            tgid,
            tid: core.header.tid,
            ts_ns: core.header.ts_ns,
            nr: core.nr,
            ret: core.ret,
            args: core.args,
            data_kind,
            data,
            weight: v.detail.map_or(1, |d| d.stack_weight),
        };
        let write = syscalls::spec(core.nr).is_some_and(|s| s.effect == Effect::Write);
        if write && core.ret != -syscalls::EBADF {
            return self.on_write(&sc, stack);
        }
        let locked = self.state.on_syscall(&sc, stack);
        if let Some(file) = locked {
            self.name_locked_file(tgid, sc.args[0] as i32, file);
        }
        match effect {
            None => {}
            Some(Effect::IpcGet(kind)) => self.note_ipc_namespace(tgid, kind, core.ret as i32),
            // Closes (most records) leave nothing to describe.
            Some(Effect::Close | Effect::CloseRange | Effect::Wait) => {}
            Some(e) => {
                if e == Effect::NewFd && data_kind == tracer_common::fd::data_kind::PATH {
                    self.loader_opened(tgid, core.ret as i32, data);
                }
                let t = self.stages.start();
                self.describe_unknown_now(&sc);
                self.stages.stop(stages::Stage::Describe, t);
            }
        }
    }

    /// A locked file is named by the path of the fd the lock call used (once per file).
    fn name_locked_file(&mut self, tgid: u32, fd: i32, file: FileId) {
        if self.state.locks.files.get(&file).is_some_and(|f| f.path.is_none())
            && let Some((_, target)) = proc::describe_fd(tgid, fd)
        {
            self.state.locks.set_path(file, &target);
        }
    }

    /// An IPC object created in another IPC namespace (a container) is not in the agent's
    /// /proc/sysvipc: mark it so that reconciling does not take it for removed.
    fn note_ipc_namespace(&mut self, tgid: u32, kind: IpcKind, id: i32) {
        let theirs = sysv::ipc_namespace(&tgid.to_string());
        if theirs.is_some()
            && theirs != self.ipc_namespace
            && let Some(o) = self.state.ipc.objects.get_mut(&(kind, id))
        {
            o.namespace = theirs.unwrap_or(0);
        }
    }
}

fn lock_event(l: &LockRecord) -> LockEvent {
    LockEvent {
        tgid: l.header.tgid,
        tid: l.header.tid,
        ts_ns: l.header.ts_ns,
        family: l.family,
        file: FileId { dev: l.dev, ino: l.ino },
        owner: l.owner,
        lock_type: l.lock_type,
        start: l.start,
        end: l.end,
        ret: l.ret,
    }
}

pub(super) fn basename(path: &[u8]) -> &[u8] {
    path.rsplit(|b| *b == b'/').next().unwrap_or(path)
}
