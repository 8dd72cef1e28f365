//! Leak analysis: state -> model. Outstanding fds (and SysV objects, held locks) grouped by
//! allocation site, split into suspects and the rest by the rules in `scoring`, with growth
//! rates and time to the limit; plus incidents, orphans, lock contention, zombies, signals and
//! write stalls; the metrics snapshot and the in-use profiles. No I/O, no escaping.

mod children;
pub mod escalation;
pub mod incidents;
pub mod ipc;
pub mod locks;
pub mod metrics;
pub mod profile;
pub mod report;
pub mod scoring;
pub mod signals;
pub mod stalls;
pub mod trend;

pub use report::{build, build_unresolved};

/// Nanoseconds per millisecond, for the report's ages.
const MS: u64 = 1_000_000;

#[cfg(test)]
mod tests;
