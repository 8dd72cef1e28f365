//! The benchmark's floor: the same hooks with empty programs.

use aya::{
    Btf, Ebpf, EbpfLoader,
    programs::{BtfTracePoint, TracePoint},
};

use super::{OBJECT, ProbeError, TRACEPOINTS, is_permission, program_error, tracefs};

/// The benchmark's floor (`tracer floor`): empty programs on the hooks tracer attaches by
/// default (the plain tracepoints above and `tp_btf/sys_exit`), which cost what any tracer on
/// those hooks pays before doing anything. Detached when dropped.
pub struct Floor {
    _ebpf: Ebpf,
}

impl Floor {
    pub fn attach() -> Result<Floor, ProbeError> {
        tracefs::ensure_mounted()?;
        let mut ebpf = EbpfLoader::new().load(OBJECT).map_err(|e| {
            if is_permission(&e) {
                ProbeError::NoPrivileges(e.to_string())
            } else {
                ProbeError::Load(e)
            }
        })?;
        const TP: &str = "floor_tracepoint";
        let p: &mut TracePoint = ebpf
            .program_mut(TP)
            .and_then(|p| p.try_into().ok())
            .ok_or(ProbeError::MissingMap(TP))?;
        p.load().map_err(|source| program_error(TP, source))?;
        for (category, name) in TRACEPOINTS {
            p.attach(category, name).map_err(|source| program_error(TP, source))?;
        }
        const EXIT: &str = "floor_sys_exit";
        let btf = Btf::from_sys_fs().map_err(|e| ProbeError::Floor(e.to_string()))?;
        let p: &mut BtfTracePoint = ebpf
            .program_mut(EXIT)
            .and_then(|p| p.try_into().ok())
            .ok_or(ProbeError::MissingMap(EXIT))?;
        p.load("sys_exit", &btf).map_err(|source| program_error(EXIT, source))?;
        p.attach().map_err(|source| program_error(EXIT, source))?;
        Ok(Floor { _ebpf: ebpf })
    }
}
