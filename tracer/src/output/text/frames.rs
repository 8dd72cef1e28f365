//! Frames and stacks in the text report: address, function, file and line, module.

use std::io::Write;

use crate::{
    model::Frame,
    output::{
        escape::{escape_bytes, escape_str},
        frame_name::{address_text, frame_name, names_module},
    },
};

pub(super) fn frame(f: &Frame) -> String {
    let mut s = format!("{:<18} {}", address_text(f.address), frame_name(f));
    if f.python {
        // `[python]  function (file:line)`: the name says where.
        return s;
    }
    if let Some(file) = &f.file {
        s.push_str(&format!(" at {}", escape_str(file)));
        if let Some(l) = f.line {
            s.push_str(&format!(":{l}"));
        }
    }
    if names_module(f) {
        // The name is already `module+0xOFFSET`.
    } else if !f.module_bytes.is_empty() {
        s.push_str(&format!(" in {}", escape_bytes(&f.module_bytes)));
    } else if let Some(m) = &f.module {
        s.push_str(&format!(" in {}", escape_str(m)));
    }
    if f.inlined {
        s.push_str(" [inlined]");
    }
    s
}

pub(super) fn stack(out: &mut dyn Write, frames: &[Frame], indent: &str) -> std::io::Result<()> {
    if frames.is_empty() {
        return writeln!(out, "{indent}(no stack captured)");
    }
    for (i, f) in frames.iter().enumerate() {
        writeln!(out, "{indent}#{i:<2} {}", frame(f))?;
    }
    Ok(())
}
