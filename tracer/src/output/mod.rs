//! Rendering a report: human text and the JSON contract.

pub mod escape;
pub mod json;
pub mod pprof;
pub mod prometheus;
pub mod text;
mod text_more;
mod text_stalls;

use std::io::Write;

use crate::analysis::Report;

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    Text,
    Json,
}

/// Context shown around a report (not part of the JSON contract's data).
#[derive(Clone, Debug, Default)]
pub struct Heading {
    /// Seconds since tracing started.
    pub elapsed_s: f64,
    /// "final", "interval" ...
    pub label: &'static str,
    pub stack_mode: &'static str,
}

pub fn write(out: &mut dyn Write, format: Format, report: &Report, heading: &Heading) -> std::io::Result<()> {
    match format {
        Format::Text => text::write(out, report, heading),
        Format::Json => json::write(out, report),
    }
}

#[cfg(test)]
mod tests;
