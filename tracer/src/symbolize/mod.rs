//! Stacks to frames: a snapshot of a process's modules (`/proc/PID/maps`), DWARF CFI unwinding
//! of copied user stacks (framehop), and symbolization by (module, file offset) (blazesym).
//!
//! Normalizing to (module, file offset) happens while the process is alive; symbolization reads
//! the module files later, so processes that exited before the report are still symbolized.

mod image;
mod maps;
mod module_file;
pub mod python;
mod symbols;
#[cfg(test)]
mod tests;
mod unwind;
mod unwind_info;

pub use image::{Auxv, auxv, exec_mappings, file_mapping};
pub use maps::{Mapping, ModuleMap, NormalizedFrame};
pub use symbols::{SymbolizedFrame, Symbols};
pub use unwind::{DwarfUnwinder, UnwindEnd, UserRegs};

#[derive(Debug, thiserror::Error)]
pub enum SymbolizeError {
    #[error("PID {0} exited")]
    ProcessGone(i32),
    #[error("cannot read /proc/{pid}/maps (another user's process needs root or CAP_SYS_PTRACE)")]
    Maps {
        pid: i32,
        #[source]
        source: std::io::Error,
    },
}
