//! Stacks to frames: a snapshot of a process's modules (`/proc/PID/maps`), DWARF CFI unwinding
//! of copied user stacks (framehop), and symbolization by (module, file offset) (blazesym).
//!
//! Normalizing to (module, file offset) happens while the process is alive; symbolization reads
//! the module files later, so processes that exited before the report are still symbolized.

mod maps;
mod module_file;
mod symbols;
mod unwind;

pub use maps::{ModuleMap, NormalizedFrame};
pub use symbols::{SymbolizedFrame, Symbols};
pub use unwind::{DwarfUnwinder, UserRegs};

#[derive(Debug, thiserror::Error)]
pub enum SymbolizeError {
    #[error("process {0} is gone")]
    ProcessGone(i32),
    #[error("reading /proc/{pid}/maps")]
    Maps {
        pid: i32,
        #[source]
        source: std::io::Error,
    },
}
