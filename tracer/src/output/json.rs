//! `--format json`: the report as one JSON document (the contract documented in docs/report.md).

use std::io::Write;

use crate::model::Report;

pub fn write(out: &mut dyn Write, report: &Report) -> std::io::Result<()> {
    serde_json::to_writer_pretty(&mut *out, report).map_err(std::io::Error::other)?;
    writeln!(out)
}
