//! Pictures of what is open: collapsed ("folded") stacks, the input of inferno and
//! flamegraph.pl, weighted by open fds, and a flame graph SVG drawn with inferno.
//!
//! One line per site: `COMM;pid N;OUTERMOST;...;INNERMOST;KIND COUNT`, frames root first. Names
//! are escaped like the text report (`\n`, `\xff`, `\\`), and a `;` inside a name becomes
//! `\x3b`, so no name can add a frame or a line.

use std::io::Write;

use inferno::flamegraph::{
    self,
    color::{BasicPalette, Color, Palette, PaletteMap},
};

use super::{
    escape::{escape_bytes, escape_str},
    frame_name::frame_name,
};
use crate::{
    model::{
        Frame, Report,
        profile::{LabelValue, Profile},
    },
    state::Resource,
};

/// One weighted stack of the graph.
#[derive(Clone, Debug, PartialEq)]
pub struct FlameStack<'a> {
    /// Root frame: the command name, already escaped.
    pub comm: String,
    pub pid: u32,
    /// Leaf frame: the fd kind (`file`, `socket (inet)`, ...).
    pub kind: String,
    /// Innermost first, as in the report.
    pub frames: &'a [Frame],
    /// Open before tracing started: no allocation stack.
    pub before_attach: bool,
    /// A leak suspect (coloured apart in the SVG).
    pub suspect: bool,
    /// Open fds (the estimate when stacks were sampled); for a site its process's teardown
    /// emptied, what it held before (`released_at_exit`).
    pub weight: u64,
    /// A suspect that held `weight` fds until its process's teardown closed them.
    pub released_at_exit: bool,
}

/// The fd sites of a report (`watch`, `run`): everything still open, suspects marked, and the
/// suspects a process's teardown emptied at its exit, weighted by what they held.
pub fn from_report(r: &Report) -> Vec<FlameStack<'_>> {
    let emptied = r
        .suspects
        .iter()
        .filter(|s| s.released_at_exit.is_some() && s.count == 0);
    r.outstanding
        .iter()
        .chain(emptied)
        .filter(|s| s.resource == Resource::Fd)
        .map(|s| {
            let comm = r
                .processes
                .iter()
                .find(|p| p.pid == s.pid)
                .map_or_else(|| "?".to_owned(), |p| super::escape::escape_bytes(&p.comm_bytes));
            let suspect = r
                .suspects
                .iter()
                .any(|x| x.pid == s.pid && x.stack.id == s.stack.id && x.kind == s.kind && x.family == s.family);
            FlameStack {
                comm,
                pid: s.pid,
                kind: match s.family {
                    Some(f) => format!("{} ({f})", s.kind),
                    None => s.kind.to_owned(),
                },
                frames: &s.stack.frames,
                before_attach: s.before_attach,
                suspect,
                weight: match (s.released_at_exit, s.count) {
                    (Some(peak), 0) => peak,
                    _ => s.estimated.unwrap_or(u64::from(s.count)),
                },
                released_at_exit: s.released_at_exit.is_some() && s.count == 0,
            }
        })
        .collect()
}

/// The agent's fds profile (`/debug/folded/fds`): every live process's open fds by stack.
pub fn from_profile(p: &Profile) -> Vec<FlameStack<'_>> {
    p.samples
        .iter()
        .map(|s| {
            let label = |key: &str| s.labels.iter().find(|(k, _)| *k == key).map(|(_, v)| v);
            let text = |key: &str| match label(key) {
                Some(LabelValue::Str(v)) => v.clone(),
                Some(LabelValue::Bytes(v)) => escape_bytes(v),
                _ => String::new(),
            };
            FlameStack {
                comm: text("comm"),
                pid: match label("pid") {
                    Some(LabelValue::Num(n)) => u32::try_from(*n).unwrap_or(0),
                    _ => 0,
                },
                kind: text("kind"),
                frames: &s.stack.frames,
                before_attach: false,
                suspect: false,
                weight: u64::try_from(s.value).unwrap_or(0),
                released_at_exit: false,
            }
        })
        .collect()
}

/// A name made safe for one frame of a folded line (already escaped for a terminal).
fn fold(name: &str) -> String {
    name.replace(';', "\\x3b")
}

/// The frames of one stack, root first.
fn path(s: &FlameStack<'_>) -> Vec<String> {
    let mut v = Vec::with_capacity(s.frames.len() + 3);
    v.push(fold(&s.comm));
    v.push(format!("pid {}", s.pid));
    if s.frames.is_empty() {
        v.push(if s.before_attach {
            "[opened before tracing]".to_owned()
        } else {
            "[no stack]".to_owned()
        });
    }
    v.extend(s.frames.iter().rev().map(|f| fold(&frame_name(f))));
    let kind = fold(&escape_str(&s.kind));
    v.push(if s.released_at_exit {
        format!("{kind} [leak suspect, held until exit]")
    } else if s.suspect {
        format!("{kind} [leak suspect]")
    } else {
        kind
    });
    v
}

/// Folded lines, one per stack, heaviest first (identical stacks are summed by the tools).
pub fn folded_lines(stacks: &[FlameStack<'_>]) -> Vec<String> {
    let mut v: Vec<(u64, String)> = stacks
        .iter()
        .filter(|s| s.weight > 0)
        .map(|s| (s.weight, format!("{} {}", path(s).join(";"), s.weight)))
        .collect();
    v.sort_by(|a, b| b.0.cmp(&a.0).then_with(|| a.1.cmp(&b.1)));
    v.into_iter().map(|(_, l)| l).collect()
}

pub fn write_folded(out: &mut dyn Write, stacks: &[FlameStack<'_>]) -> std::io::Result<()> {
    for l in folded_lines(stacks) {
        writeln!(out, "{l}")?;
    }
    Ok(())
}

/// Frames of suspects are red; everything else is drawn in blues.
const SUSPECT: Color = Color { r: 220, g: 30, b: 30 };

/// A flame graph of open fds by allocation stack (one self-contained SVG file).
pub fn write_svg(out: &mut dyn Write, stacks: &[FlameStack<'_>], title: &str) -> std::io::Result<()> {
    let lines = folded_lines(stacks);
    let mut palette = PaletteMap::default();
    // Every frame of a suspect's stack that appears in no other stack, and the suspect's leaf.
    let mut others = std::collections::HashSet::new();
    for s in stacks.iter().filter(|s| !s.suspect) {
        others.extend(path(s));
    }
    for s in stacks.iter().filter(|s| s.suspect) {
        for name in path(s).into_iter().skip(2) {
            if !others.contains(&name) {
                palette.insert(name, SUSPECT);
            }
        }
    }
    let mut opts = flamegraph::Options::default();
    opts.title = title.to_owned();
    opts.subtitle = Some("red: leak suspects (open count still growing)".to_owned());
    opts.count_name = "fds".to_owned();
    opts.name_type = "Frame:".to_owned();
    opts.colors = Palette::Basic(BasicPalette::Blue);
    opts.hash = true;
    opts.deterministic = true;
    opts.palette_map = Some(&mut palette);
    if lines.is_empty() {
        // inferno refuses an empty graph; say so in an SVG a browser still opens.
        return writeln!(
            out,
            "<?xml version=\"1.0\" standalone=\"no\"?>\n<svg version=\"1.1\" width=\"600\" height=\"60\" \
             xmlns=\"http://www.w3.org/2000/svg\"><text x=\"10\" y=\"30\">no open fds with a stack</text></svg>"
        );
    }
    flamegraph::from_lines(&mut opts, lines.iter().map(String::as_str), out)
}
