//! What each syscall does to an fd table (the kernel's own semantics, fs/file.c and friends).

use tracer_common::{
    fd::data_kind,
    syscalls::{self, Effect, KindHint},
};

use super::{FdKind, OpenFd, Origin, Resource, SiteKey, StackId, State, incidents::ClosedFd, locks::FileId, scm};

/// `fcntl` (it duplicates or locks, depending on the command).
const NR_FCNTL: u32 = libc::SYS_fcntl as u32;
/// `close_range` flag (include/uapi/linux/close_range.h): set close-on-exec instead of closing.
const CLOSE_RANGE_CLOEXEC: u64 = 1 << 2;
/// `O_DIRECTORY` on x86_64 (include/uapi/asm-generic/fcntl.h).
const O_DIRECTORY: u64 = 0o200000;

/// A syscall result, decoded from a ring-buffer record.
#[derive(Clone, Copy, Debug)]
pub struct Syscall<'a> {
    pub tgid: u32,
    pub tid: u32,
    pub ts_ns: u64,
    pub nr: u32,
    pub ret: i64,
    pub args: [u64; 6],
    pub data_kind: u16,
    pub data: &'a [u8],
    /// The stack's sampling weight (`SyscallRecord::stack_weight`; 1 for records without one).
    pub weight: u32,
}

/// Where a new fd's kind comes from.
#[derive(Clone, Copy)]
struct NewFd<'a> {
    kind: FdKind,
    family: u16,
    origin: Origin,
    example: Option<&'a [u8]>,
}

impl State {
    /// Applies one syscall result of a traced process. `stack` is the interned stack of the call.
    /// Returns the locked file when the call was a lock call (the caller names it from /proc).
    pub fn on_syscall(&mut self, sc: &Syscall<'_>, stack: StackId) -> Option<FileId> {
        let gap = self.sample_gap();
        let p = self.processes.get_mut(&sc.tgid)?;
        // Dead, or older than the /proc scan that seeded the table (and already in it).
        if !p.is_alive() || sc.ts_ns < p.seeded_ns {
            return None;
        }
        if sc.ts_ns >= p.sampled_ns.saturating_add(gap) {
            self.sample_process_at(sc.tgid, sc.ts_ns);
        }
        let Some(spec) = syscalls::spec(sc.nr) else {
            // Outside the table, only EBADF failures are reported.
            if sc.ret == -syscalls::EBADF {
                self.bad_descriptor(sc, stack);
            }
            return None;
        };
        match spec.effect {
            Effect::Flock => return self.on_lock_call(sc, stack),
            Effect::Dup if sc.nr == NR_FCNTL && syscalls::fcntl_is_lock(sc.args[1]) => {
                return self.on_lock_call(sc, stack);
            }
            Effect::IpcGet(kind) => self.on_ipc_get(sc, kind, stack),
            Effect::IpcRemove(kind) => self.on_ipc_remove(sc, kind),
            Effect::SelectBeyondFdSetSize => self.on_select_beyond_fd_setsize(sc, stack),
            Effect::Fork => self.on_limit_failure(sc, stack),
            // Writes and signal actions reach the state through `on_write` and
            // `on_sigchld_action` (the caller reads /proc first); only their misuse comes here.
            Effect::Wait => self.on_wait(sc),
            Effect::Write | Effect::SigAction => {
                if sc.ret == -syscalls::EBADF {
                    self.bad_descriptor(sc, stack);
                }
            }
            _ if sc.ret < 0 => self.on_fd_failure(sc, spec.effect, stack),
            _ => self.apply_fd_effect(sc, spec, stack),
        }
        None
    }

    /// A successful fd syscall: what it does to the fd table.
    fn apply_fd_effect(&mut self, sc: &Syscall<'_>, spec: &syscalls::SyscallSpec, stack: StackId) {
        let Some(p) = self.processes.get_mut(&sc.tgid) else {
            return;
        };
        let path = (sc.data_kind == data_kind::PATH).then_some(sc.data);
        match spec.effect {
            Effect::NewFd => {
                let new = self.kind_of_new(sc, spec.kind, path);
                self.open_fd(sc, stack, sc.ret as i32, new);
            }
            Effect::SignalFd => {
                // signalfd(fd != -1, ..) updates an existing signalfd and returns it.
                if sc.args[0] as i32 == -1 {
                    let new = NewFd {
                        kind: FdKind::SignalFd,
                        family: 0,
                        origin: Origin::Syscall,
                        example: None,
                    };
                    self.open_fd(sc, stack, sc.ret as i32, new);
                }
            }
            Effect::NewPair => {
                if sc.data_kind != data_kind::FD_PAIR || sc.data.len() < 8 {
                    return;
                }
                let new = self.kind_of_new(sc, spec.kind, None);
                for half in [&sc.data[..4], &sc.data[4..8]] {
                    if let Ok(b) = <[u8; 4]>::try_from(half) {
                        self.open_fd(sc, stack, i32::from_ne_bytes(b), new);
                    }
                }
            }
            Effect::Dup => {
                let new = self.copy_of(sc.tgid, sc.args[0] as i32);
                self.open_fd(sc, stack, sc.ret as i32, new);
            }
            Effect::DupOnto => {
                let (old, target) = (sc.args[0] as i32, sc.args[1] as i32);
                // dup2(fd, fd) returns fd and changes nothing (fs/file.c ksys_dup3 path).
                if old != target {
                    let new = self.copy_of(sc.tgid, old);
                    self.drop_fd(sc.tgid, target);
                    self.open_fd(sc, stack, target, new);
                }
            }
            Effect::Close => self.close_fd(sc, sc.args[0] as i32, stack),
            Effect::CloseRange => {
                if sc.args[2] & CLOSE_RANGE_CLOEXEC != 0 {
                    return;
                }
                let first = sc.args[0] as u32;
                let last = sc.args[1] as u32;
                let sites = &mut self.sites;
                let closed = &mut p.closed;
                let by = ClosedFd {
                    ts_ns: sc.ts_ns,
                    tid: sc.tid,
                    stack,
                };
                let closes = &mut p.counters.closes;
                p.fds.retain(
                    |fd, _| {
                        let n = fd as u32;
                        n < first || n > last
                    },
                    |fd, o| {
                        sites.closed(o.site, o.weight);
                        closed.insert(fd, by);
                        closes[o.kind as usize] += 1;
                    },
                );
            }
            Effect::ReceiveFds => {
                if sc.data_kind != data_kind::CONTROL {
                    return;
                }
                let mut received = [0i32; 64];
                let mut n = 0usize;
                scm::for_each_received_fd(sc.data, |fd| {
                    if let Some(slot) = received.get_mut(n) {
                        *slot = fd;
                        n += 1;
                    }
                });
                let new = NewFd {
                    kind: FdKind::Unknown,
                    family: 0,
                    origin: Origin::Received,
                    example: None,
                };
                for fd in &received[..n] {
                    self.open_fd(sc, stack, *fd, new);
                }
            }
            // Not fd effects: dispatched by `on_syscall`.
            Effect::IpcGet(_)
            | Effect::IpcRemove(_)
            | Effect::Flock
            | Effect::SelectBeyondFdSetSize
            | Effect::Fork
            | Effect::Exec
            | Effect::MapCode
            | Effect::Write
            | Effect::SigAction
            | Effect::Wait => {}
        }
    }

    fn kind_of_new<'a>(&self, sc: &Syscall<'_>, hint: KindHint, path: Option<&'a [u8]>) -> NewFd<'a> {
        let plain = |kind| NewFd {
            kind,
            family: 0,
            origin: Origin::Syscall,
            example: path,
        };
        match hint {
            KindHint::Path => {
                let flags = match i64::from(sc.nr) {
                    libc::SYS_open => sc.args[1],   // open(path, flags)
                    libc::SYS_openat => sc.args[2], // openat(dirfd, path, flags)
                    _ => 0,
                };
                plain(if flags & O_DIRECTORY != 0 {
                    FdKind::Directory
                } else {
                    FdKind::File
                })
            }
            KindHint::Socket | KindHint::SocketPair => NewFd {
                kind: FdKind::Socket,
                family: sc.args[0] as u16,
                origin: Origin::Syscall,
                example: None,
            },
            KindHint::Accepted => {
                let family = self
                    .processes
                    .get(&sc.tgid)
                    .and_then(|p| p.fds.get(sc.args[0] as i32))
                    .map(|o| o.family)
                    .unwrap_or(0);
                NewFd {
                    kind: FdKind::Socket,
                    family,
                    origin: Origin::Syscall,
                    example: None,
                }
            }
            KindHint::Pipe => plain(FdKind::Pipe),
            KindHint::EventFd => plain(FdKind::EventFd),
            KindHint::Epoll => plain(FdKind::Epoll),
            KindHint::TimerFd => plain(FdKind::TimerFd),
            KindHint::SignalFd => plain(FdKind::SignalFd),
            KindHint::MemFd => plain(FdKind::MemFd),
            KindHint::PidFd => plain(FdKind::PidFd),
            KindHint::Inotify => plain(FdKind::Inotify),
            KindHint::Fanotify => plain(FdKind::Fanotify),
            KindHint::PerfEvent => plain(FdKind::PerfEvent),
            KindHint::UserFault => plain(FdKind::UserFaultFd),
            KindHint::IoUring => plain(FdKind::IoUring),
            KindHint::MessageQueue => plain(FdKind::MessageQueue),
            KindHint::OtherAnon => plain(FdKind::OtherAnon),
            KindHint::FromSource => plain(FdKind::Unknown),
        }
    }

    /// A duplicate has the kind of its source (unknown if the source was never seen).
    fn copy_of(&self, tgid: u32, source: i32) -> NewFd<'static> {
        match self.processes.get(&tgid).and_then(|p| p.fds.get(source)) {
            Some(o) => NewFd {
                kind: o.kind,
                family: o.family,
                origin: Origin::Syscall,
                example: None,
            },
            None => NewFd {
                kind: FdKind::Unknown,
                family: 0,
                origin: Origin::Syscall,
                example: None,
            },
        }
    }

    fn open_fd(&mut self, sc: &Syscall<'_>, stack: StackId, fd: i32, new: NewFd<'_>) {
        if fd < 0 {
            return;
        }
        let key = SiteKey {
            resource: Resource::Fd,
            tgid: sc.tgid,
            stack,
            kind: new.kind,
            family: new.family,
            before_attach: false,
        };
        let site = self.sites.intern(key);
        // Only a site's first example is kept: copy bytes once per site, not once per event.
        if self.sites.get(site).is_some_and(|s| s.example.is_none()) {
            let example: Option<Box<[u8]>> = new
                .example
                .map(Into::into)
                .or_else(|| self.dup_source_example(sc).map(Into::into));
            if let Some(e) = example {
                self.sites.set_example(site, &e);
            }
        }
        self.sites.opened(site, None, sc.weight);
        let Some(p) = self.processes.get_mut(&sc.tgid) else {
            return;
        };
        p.counters.allocations[new.kind as usize] += 1;
        let open = OpenFd {
            site,
            kind: new.kind,
            family: new.family,
            origin: new.origin,
            opened_ns: sc.ts_ns,
            // /proc can only add to path kinds and to fds of unknown kind.
            described: !(new.kind.is_path_kind() || new.kind == FdKind::Unknown || new.kind == FdKind::Socket),
            weight: sc.weight,
        };
        if let Some(stale) = p.fds.insert(fd, open) {
            p.stale_replaced += 1;
            self.sites.closed(stale.site, stale.weight);
        }
    }

    /// For dup-family calls, the source site's example describes the copy too.
    fn dup_source_example(&self, sc: &Syscall<'_>) -> Option<&[u8]> {
        let spec = syscalls::spec(sc.nr)?;
        if !matches!(spec.effect, Effect::Dup | Effect::DupOnto) {
            return None;
        }
        let o = self.processes.get(&sc.tgid)?.fds.get(sc.args[0] as i32)?;
        self.sites.get(o.site)?.example.as_deref()
    }

    /// A close by the program: the fd goes, and the close is remembered for misuse reports.
    pub(super) fn close_fd(&mut self, sc: &Syscall<'_>, fd: i32, stack: StackId) {
        self.drop_fd(sc.tgid, fd);
        if let Some(p) = self.processes.get_mut(&sc.tgid) {
            p.closed.insert(
                fd,
                ClosedFd {
                    ts_ns: sc.ts_ns,
                    tid: sc.tid,
                    stack,
                },
            );
        }
    }

    /// The fd leaves the table (closed, or replaced by dup2).
    fn drop_fd(&mut self, tgid: u32, fd: i32) {
        let Some(p) = self.processes.get_mut(&tgid) else {
            return;
        };
        if let Some(o) = p.fds.remove(fd) {
            self.sites.closed(o.site, o.weight);
            p.counters.closes[o.kind as usize] += 1;
        }
    }
}
