//! Leak analysis: outstanding fds grouped by allocation site, split into suspects (still growing)
//! and the rest, with growth rates and time to RLIMIT_NOFILE.

pub mod report;
pub mod trend;

pub use report::{Frame, ProcessSummary, Report, ReportOptions, SiteReport, build};

#[cfg(test)]
mod tests;
