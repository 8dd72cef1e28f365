//! Leak analysis: outstanding fds (and SysV objects, held locks) grouped by allocation site, split
//! into suspects (still growing) and the rest, with growth rates and time to the limit; plus
//! incidents, orphans, lock contention, zombies and signals.

mod children;
pub mod locks;
pub mod losses;
pub mod metrics;
pub mod profile;
pub mod report;
pub mod resources;
pub mod stack;
pub mod stalls;
pub mod trend;

pub use losses::Losses;
pub use report::{Frame, ProcessSummary, Report, ReportOptions, SiteReport, build, build_unresolved};
pub use stack::Stack;

#[cfg(test)]
mod tests;
