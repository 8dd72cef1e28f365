//! Rendering a report: human text and the JSON contract.

pub mod escape;
pub mod flame;
pub mod frame_name;
pub mod json;
pub mod pprof;
pub mod prometheus;
pub mod scope;
pub mod stats;
pub mod text;

use std::io::Write;

use crate::model::Report;

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    Text,
    Json,
    /// Collapsed stacks weighted by open fds (inferno, flamegraph.pl).
    Folded,
    /// A flame graph of open fds by allocation stack, suspects in red.
    Svg,
}

impl Format {
    /// A picture of one moment: `watch` rewrites its `-o FILE` at each report rather than
    /// appending.
    pub fn is_snapshot(self) -> bool {
        matches!(self, Format::Folded | Format::Svg)
    }
}

/// Context shown around a report (not part of the JSON contract's data).
#[derive(Clone, Debug, Default)]
pub struct Heading {
    /// Seconds since tracing started.
    pub elapsed_s: f64,
    /// "final", "interval" ...
    pub label: &'static str,
    pub stack_mode: &'static str,
    /// List every process, zombie parent and signal (`--all`); otherwise only those with
    /// something to say, the rest summed.
    pub all: bool,
    /// ANSI colour for suspects and problems (a terminal, and no `NO_COLOR`).
    pub color: bool,
}

/// Colour only on a terminal, and never with `NO_COLOR` set to anything non-empty
/// (no-color.org).
pub fn color_wanted(to_terminal: bool) -> bool {
    color_wanted_with(to_terminal, std::env::var_os("NO_COLOR").as_deref())
}

/// [`color_wanted`] with the value of `NO_COLOR` given.
pub fn color_wanted_with(to_terminal: bool, no_color: Option<&std::ffi::OsStr>) -> bool {
    to_terminal && no_color.is_none_or(|v| v.is_empty())
}

pub fn write(out: &mut dyn Write, format: Format, report: &Report, heading: &Heading) -> std::io::Result<()> {
    match format {
        Format::Text => text::write(out, report, heading),
        Format::Json => json::write(out, report),
        Format::Folded => flame::write_folded(out, &flame::from_report(report)),
        Format::Svg => flame::write_svg(
            out,
            &flame::from_report(report),
            &format!(
                "tracer: open fds by allocation stack ({} report after {:.1}s)",
                heading.label, heading.elapsed_s
            ),
        ),
    }
}

#[cfg(test)]
pub(crate) mod tests;
