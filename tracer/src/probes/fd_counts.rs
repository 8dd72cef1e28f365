//! Every process's open-fd count from the `iter/task` program (see
//! `tracer_common::fd_counts`), with `/proc` as the fallback where the iterator cannot load
//! (kernels before 5.8, no BTF, refused). Each read creates a fresh iterator instance: a link
//! (`BPF_LINK_CREATE`) and its seq file (`BPF_ITER_CREATE`), read to the end and closed.

use std::io::Read as _;

use aya::programs::Iter;
use tracer_common::fd_counts::{self as fc, OFFSETS, ProcessFdCount, offset};

use super::{Probes, error_chain as chain, kernel_btf::KernelBtf};

/// Where the counts come from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CountSource {
    /// The BPF iterator: exact, 15-90 us for a host.
    Iterator,
    /// A walk of /proc/*/fd (the iterator could not load: the reason).
    Proc(String),
}

/// The offsets the program needs, from the running kernel's BTF.
pub(super) fn task_offsets() -> Result<[u32; OFFSETS], String> {
    let btf = KernelBtf::from_sys_fs().map_err(|e| e.to_string())?;
    let mut o = [0u32; OFFSETS];
    let fields = [
        (offset::TASK_PID, "task_struct", "pid"),
        (offset::TASK_TGID, "task_struct", "tgid"),
        (offset::TASK_FILES, "task_struct", "files"),
        (offset::TASK_SIGNAL, "task_struct", "signal"),
        (offset::TASK_COMM, "task_struct", "comm"),
        (offset::FILES_FDT, "files_struct", "fdt"),
        (offset::FDT_MAX_FDS, "fdtable", "max_fds"),
        (offset::FDT_OPEN_FDS, "fdtable", "open_fds"),
        (offset::SIGNAL_RLIM, "signal_struct", "rlim"),
        (offset::TASK_FLAGS, "task_struct", "flags"),
    ];
    for (i, strukt, member) in fields {
        o[i] = btf.offset_of(strukt, member).map_err(|e| e.to_string())?;
    }
    o[offset::FILLED] = 1;
    Ok(o)
}

impl Probes {
    /// Loads the iterator (the offsets were given at load); the reason if it cannot be used.
    pub(super) fn load_fd_counts(&mut self) -> Result<(), String> {
        let btf = aya::Btf::from_sys_fs().map_err(|e| format!("no kernel BTF: {e}"))?;
        let prog: &mut Iter = self
            .ebpf
            .program_mut(fc::FD_COUNTS_PROGRAM)
            .and_then(|p| p.try_into().ok())
            .ok_or("the fd-count iterator is missing from the eBPF object")?;
        prog.load("task", &btf)
            .map_err(|e| format!("the kernel refused the task iterator: {}", chain(&e)))?;
        Ok(())
    }

    /// Where counts come from (set at load).
    pub fn count_source(&self) -> Option<&CountSource> {
        self.count_source.as_ref()
    }

    /// Runs the iterator once: every process's count into `out` (cleared first). `buf` is the
    /// caller's, reused from tick to tick.
    pub fn read_fd_counts(&mut self, buf: &mut Vec<u8>, out: &mut Vec<ProcessFdCount>) -> std::io::Result<()> {
        out.clear();
        buf.clear();
        let prog: &mut Iter = self
            .ebpf
            .program_mut(fc::FD_COUNTS_PROGRAM)
            .and_then(|p| p.try_into().ok())
            .ok_or_else(|| std::io::Error::other("the fd-count iterator is not loaded"))?;
        let id = prog.attach().map_err(std::io::Error::other)?;
        let link = prog.take_link(id).map_err(std::io::Error::other)?;
        let mut file = link.into_file().map_err(std::io::Error::other)?;
        file.read_to_end(buf)?;
        out.extend(
            buf.as_chunks::<{ fc::RECORD_SIZE }>()
                .0
                .iter()
                .filter_map(|c| ProcessFdCount::decode(c)),
        );
        Ok(())
    }
}
