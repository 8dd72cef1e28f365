//! Loading the programs with the options as globals, and attaching them: `sys_exit` (typed
//! `tp_btf`, else the raw tracepoint), the plain tracepoints, the write-entry tracepoints and,
//! with `--kernel-stack`, the kernel-stack probe.

use aya::{
    Btf, EbpfLoader,
    maps::{Array, MapData},
    programs::{
        BtfTracePoint, KProbe, RawTracePoint, TracePoint, raw_trace_point::RawTracePointLinkId,
        tp_btf::BtfTracePointLinkId,
    },
};
use tracer_common::{
    config::{self, StackMode},
    syscalls,
};

use super::{CountSource, fd_counts};
use super::{OBJECT, ProbeError, ProbeOptions, Probes, TRACEPOINTS, is_permission, program_error, take, tracefs};

impl Probes {
    pub fn load(opts: ProbeOptions) -> Result<Self, ProbeError> {
        // The kernel's BTF (5 MB here, ~40 ms to parse) is read meanwhile, for tp_btf/sys_exit.
        let btf = (!opts.raw_sys_exit && opts.syscall_hook).then(PendingBtf::parse_in_background);
        tracefs::ensure_mounted().map_err(|e| match e {
            tracefs::TracefsError::MountFailed(io) if io.raw_os_error() == Some(libc::EPERM) => {
                ProbeError::NoPrivileges("tracefs is not visible and cannot be mounted".into())
            }
            other => ProbeError::Tracefs(other),
        })?;
        tracefs::check_formats()?;
        let mode = opts.stack_mode as u32;
        let all = u32::from(opts.trace_all);
        let discover = u32::from(opts.discover_exec);
        let self_tgid = std::process::id();
        // Wake the agent when an eighth of the buffer is waiting; its tick drains the rest.
        let wakeup = u64::from(opts.ring_buffer_bytes / 8).max(64 * 1024);
        let badf = u32::from(opts.report_ebadf);
        let kstack = u32::from(opts.kernel_stack);
        let python = u32::from(opts.python_frames && opts.stack_mode != StackMode::None);
        let kstack_entries = if opts.kernel_stack { config::KSTACKS_ENTRIES } else { 1 };
        // Offsets first: without them the iterator is not loaded and counts come from /proc.
        let offsets = opts.fd_counts.then(fd_counts::task_offsets);
        let no_offsets = [0u32; tracer_common::fd_counts::OFFSETS];
        let offsets_given = match &offsets {
            Some(Ok(o)) => *o,
            _ => no_offsets,
        };
        // 16 MB the other stack modes never touch, and ~10 ms to allocate.
        let stacks_entries = if opts.stack_mode == StackMode::FramePointer {
            config::STACKS_ENTRIES
        } else {
            1
        };
        let mut ebpf = EbpfLoader::new()
            .override_global(tracer_common::fd_counts::TASK_OFFSETS_GLOBAL, &offsets_given, true)
            .override_global(config::BADF_GLOBAL, &badf, true)
            .override_global(config::KERNEL_STACK_GLOBAL, &kstack, true)
            .map_max_entries(config::KSTACKS_MAP, kstack_entries)
            .map_max_entries(config::STACKS_MAP, stacks_entries)
            .override_global(config::STACK_MODE_GLOBAL, &mode, true)
            .override_global(config::TRACE_ALL_GLOBAL, &all, true)
            .override_global(config::DISCOVER_EXEC_GLOBAL, &discover, true)
            .override_global(config::SELF_TGID_GLOBAL, &self_tgid, true)
            .override_global(config::WAKEUP_BYTES_GLOBAL, &wakeup, true)
            .override_global(config::STACK_BYTES_GLOBAL, &opts.stack_bytes, true)
            .override_global(config::STACK_BUDGET_GLOBAL, &opts.stack_budget, true)
            .override_global(config::WRITE_BLOCK_GLOBAL, &opts.write_block_ns, true)
            .override_global(tracer_common::python::PYTHON_FRAMES_GLOBAL, &python, true)
            .map_max_entries(config::EVENTS_MAP, opts.ring_buffer_bytes)
            .load(OBJECT)
            .map_err(|e| {
                if is_permission(&e) {
                    ProbeError::NoPrivileges(e.to_string())
                } else {
                    ProbeError::Load(e)
                }
            })?;

        let mut capture: Array<MapData, u32> = take(&mut ebpf, config::CAPTURE_MAP)?;
        for spec in syscalls::X86_64 {
            let mut c = spec.capture;
            if opts.close_stacks && matches!(spec.effect, syscalls::Effect::Close | syscalls::Effect::CloseRange) {
                c.stack = true;
            }
            // Code layout records only serve stacks.
            let layout = matches!(spec.effect, syscalls::Effect::Exec | syscalls::Effect::MapCode);
            let untimed = spec.capture.timed && opts.write_block_ns == 0;
            let bits = if (layout && opts.stack_mode == StackMode::None) || untimed {
                0
            } else {
                c.bits()
            };
            capture.set(spec.nr, &bits, 0).map_err(|source| ProbeError::Map {
                name: config::CAPTURE_MAP,
                source,
            })?;
        }
        let traced = take(&mut ebpf, config::TRACED_MAP)?;
        let traced_hint = take(&mut ebpf, config::TRACED_HINT_MAP)?;
        let exited = take(&mut ebpf, config::EXITED_MAP)?;
        let losses = take(&mut ebpf, config::LOSS_MAP)?;
        let lost_by_tgid = take(&mut ebpf, config::LOST_BY_TGID_MAP)?;
        let stacks = if opts.stack_mode == StackMode::FramePointer {
            Some(take(&mut ebpf, config::STACKS_MAP)?)
        } else {
            None
        };

        let stack_tops = if opts.stack_mode == StackMode::Dwarf {
            Some(take(&mut ebpf, config::STACK_TOPS_MAP)?)
        } else {
            None
        };
        let kernel_stacks = if opts.kernel_stack {
            Some(take(&mut ebpf, config::KSTACKS_MAP)?)
        } else {
            None
        };
        let py_procs = if python != 0 {
            Some(take(&mut ebpf, tracer_common::python::PY_PROCS_MAP)?)
        } else {
            None
        };
        let mut probes = Probes {
            ebpf,
            perf_links: Vec::new(),
            traced,
            traced_hint,
            exited,
            losses,
            lost_by_tgid,
            stacks,
            kernel_stacks,
            stack_tops,
            py_procs,
            map_update_failures: 0,
            _stats: None,
            _capture: capture,
            count_source: None,
            sys_exit_link: None,
            raw_sys_exit: opts.raw_sys_exit,
        };
        probes.count_source = match offsets {
            None => None,
            Some(Err(reason)) => Some(CountSource::Proc(format!("kernel field offsets: {reason}"))),
            Some(Ok(_)) => Some(match probes.load_fd_counts() {
                Ok(()) => CountSource::Iterator,
                Err(reason) => CountSource::Proc(reason),
            }),
        };
        if opts.bpf_stats {
            let fd = aya::sys::enable_stats(aya::sys::Stats::RunTime).map_err(ProbeError::Stats)?;
            probes._stats = Some(fd);
        }

        for (category, name) in TRACEPOINTS {
            probes.attach_tracepoint(name, category, name)?;
        }
        if opts.write_block_ns > 0 {
            for tp in syscalls::TIMED_ENTRY_TRACEPOINTS {
                probes.attach_tracepoint(config::WRITE_ENTRY_PROGRAM, "syscalls", tp)?;
            }
        }
        if opts.syscall_hook {
            probes.sys_exit_link = Some(probes.attach_sys_exit(btf)?);
        }
        // The optional kprobe last, so that everything it feeds was verified with it on (a
        // kernel without kprobes then refuses only the attach, with a clear message).
        if opts.kernel_stack {
            probes.attach_kernel_stack_probe()?;
        }
        Ok(probes)
    }

    /// Attaches or detaches the syscall-exit hook. Any syscall tracepoint costs every syscall
    /// of every task on the host (`syscall_regfunc()` sets `SYSCALL_WORK_SYSCALL_TRACEPOINT` on
    /// every thread while one is attached), so the agent attaches it only while some process
    /// is traced. Loading happens once; attaching again reuses the loaded program.
    pub fn set_syscall_hook(&mut self, on: bool) -> Result<(), ProbeError> {
        match (on, self.sys_exit_link.take()) {
            (true, Some(link)) => self.sys_exit_link = Some(link),
            (true, None) => self.sys_exit_link = Some(self.attach_sys_exit(None)?),
            (false, None) => {}
            (false, Some(SysExitLink::Btf(id))) => {
                if let Some(p) = self.btf_sys_exit() {
                    p.detach(id).map_err(|source| program_error("sys_exit_btf", source))?;
                }
            }
            (false, Some(SysExitLink::Raw(id))) => {
                if let Some(p) = self.raw_sys_exit_program() {
                    p.detach(id).map_err(|source| program_error("sys_exit", source))?;
                }
            }
        }
        Ok(())
    }

    /// Whether the syscall-exit hook is attached now.
    pub fn syscall_hook(&self) -> bool {
        self.sys_exit_link.is_some()
    }

    fn btf_sys_exit(&mut self) -> Option<&mut BtfTracePoint> {
        self.ebpf.program_mut("sys_exit_btf").and_then(|p| p.try_into().ok())
    }

    fn raw_sys_exit_program(&mut self) -> Option<&mut RawTracePoint> {
        self.ebpf.program_mut("sys_exit").and_then(|p| p.try_into().ok())
    }

    /// The syscall-exit hook: `tp_btf/sys_exit` (typed register loads) where the kernel has BTF
    /// and accepts it, else `raw_tracepoint/sys_exit` (a helper call per read). `pending`: the
    /// BTF being parsed since load began (else it is parsed now, when needed).
    fn attach_sys_exit(&mut self, pending: Option<PendingBtf>) -> Result<SysExitLink, ProbeError> {
        let raw_loaded = self.raw_sys_exit_program().is_some_and(|p| p.fd().is_ok());
        if !self.raw_sys_exit && !raw_loaded {
            let btf = match pending {
                Some(p) => p.get(),
                None => Btf::from_sys_fs().map_err(|e| e.to_string()),
            };
            match btf {
                Ok(btf) => match self.attach_sys_exit_btf(&btf) {
                    Ok(id) => return Ok(SysExitLink::Btf(id)),
                    Err(e) => {
                        log::info!("tp_btf/sys_exit refused ({e}); using raw_tracepoint/sys_exit");
                        self.raw_sys_exit = true;
                    }
                },
                Err(e) => {
                    log::info!("no kernel BTF ({e}); using raw_tracepoint/sys_exit");
                    self.raw_sys_exit = true;
                }
            }
        }
        let prog = self
            .raw_sys_exit_program()
            .ok_or(ProbeError::MissingMap("sys_exit program"))?;
        if prog.fd().is_err() {
            prog.load().map_err(|source| program_error("sys_exit", source))?;
        }
        let id = prog
            .attach("sys_exit")
            .map_err(|source| program_error("sys_exit", source))?;
        Ok(SysExitLink::Raw(id))
    }

    fn attach_sys_exit_btf(&mut self, btf: &Btf) -> Result<BtfTracePointLinkId, ProbeError> {
        let prog = self
            .btf_sys_exit()
            .ok_or(ProbeError::MissingMap("sys_exit_btf program"))?;
        if prog.fd().is_err() {
            prog.load("sys_exit", btf)
                .map_err(|source| program_error("sys_exit_btf", source))?;
        }
        prog.attach().map_err(|source| program_error("sys_exit_btf", source))
    }

    /// `kprobe/fd_install`: kernels without kprobes (ours: no CONFIG_KPROBES) refuse the attach.
    fn attach_kernel_stack_probe(&mut self) -> Result<(), ProbeError> {
        let function = config::KSTACK_PROGRAM;
        let p: &mut KProbe = self
            .ebpf
            .program_mut(function)
            .and_then(|p| p.try_into().ok())
            .ok_or(ProbeError::MissingMap("fd_install program"))?;
        p.load().map_err(|source| program_error("fd_install", source))?;
        p.attach(function, 0).map_err(|source| {
            if is_permission(&source) {
                return ProbeError::NoPrivileges(format!("{function}: {source}"));
            }
            let mut reason = source.to_string();
            let mut cur: Option<&dyn std::error::Error> = std::error::Error::source(&source);
            while let Some(e) = cur {
                reason.push_str(": ");
                reason.push_str(&e.to_string());
                cur = e.source();
            }
            ProbeError::KernelStackUnsupported { function, reason }
        })?;
        Ok(())
    }

    fn attach_tracepoint(&mut self, prog: &'static str, category: &str, name: &str) -> Result<(), ProbeError> {
        let p: &mut TracePoint = self
            .ebpf
            .program_mut(prog)
            .and_then(|p| p.try_into().ok())
            .ok_or(ProbeError::MissingMap(prog))?;
        if p.fd().is_err() {
            p.load().map_err(|source| program_error(prog, source))?;
        }
        let id = p.attach(category, name).map_err(|source| program_error(prog, source))?;
        let link = p.take_link(id).map_err(|source| program_error(prog, source))?;
        self.keep_perf_link(link);
        Ok(())
    }
}

/// The attached syscall-exit hook, whichever program it is.
pub(super) enum SysExitLink {
    Btf(BtfTracePointLinkId),
    Raw(RawTracePointLinkId),
}

/// The kernel's BTF, parsed on a thread of its own while the object loads.
enum PendingBtf {
    Parsing(std::thread::JoinHandle<Result<Btf, aya::BtfError>>),
    /// No thread could be started: parsed when needed.
    Later,
}

impl PendingBtf {
    fn parse_in_background() -> Self {
        std::thread::Builder::new()
            .name("tracer-btf".into())
            .spawn(Btf::from_sys_fs)
            .map_or(PendingBtf::Later, PendingBtf::Parsing)
    }

    fn get(self) -> Result<Btf, String> {
        match self {
            PendingBtf::Parsing(t) => t
                .join()
                .map_err(|_| "the BTF parser panicked".to_owned())?
                .map_err(|e| e.to_string()),
            PendingBtf::Later => Btf::from_sys_fs().map_err(|e| e.to_string()),
        }
    }
}
