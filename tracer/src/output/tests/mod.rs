//! Golden files pin every output format, hostile names included. Regenerate after an intended
//! change with `UPDATE_GOLDEN=1 cargo test -p tracer output::`.

mod condensed;
mod flame;
mod reports;
mod sample;

pub(crate) use sample::sample;

use super::{Format, Heading, write};
use crate::model::Report;

fn render(format: Format, r: &Report) -> Vec<u8> {
    let mut out = Vec::new();
    let heading = Heading {
        elapsed_s: 12.5,
        label: "final",
        stack_mode: "dwarf",
        ..Default::default()
    };
    write(&mut out, format, r, &heading).unwrap_or_else(|e| panic!("{e}"));
    out
}

fn pin(name: &str, out: &[u8]) {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("src/output/golden")
        .join(name);
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        std::fs::write(&path, out).unwrap_or_else(|e| panic!("{e}"));
    }
    let golden =
        std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e} (UPDATE_GOLDEN=1 creates it)", path.display()));
    assert!(golden == out, "{name} changed:\n{}", String::from_utf8_lossy(out));
}
