//! How a frame is named for people and for flame graphs: its function; without one, its module
//! and the file offset in it (`/usr/bin/flock+0x180a`, what `addr2line -e /usr/bin/flock 0x180a`
//! takes); without a module, its address. Never a bare `??`.

use super::escape::{escape_bytes, escape_str};
use crate::model::{Frame, frame::FrameAddress};

/// The frame's name, escaped for a terminal (see [`escape_bytes`]). A Python frame is
/// `function (file:line)`, as Python profilers name them.
pub fn frame_name(f: &Frame) -> String {
    if f.python {
        return escape_str(&python_name(f, false));
    }
    if let Some(name) = &f.function {
        return escape_str(name);
    }
    match (module_text(f), f.offset) {
        (Some(m), Some(off)) => format!("{m}+{off:#x}"),
        _ => address_text(f.address),
    }
}

/// A frame's address as the text report's address column shows it: hex, or `[python]`.
pub fn address_text(a: FrameAddress) -> String {
    match a {
        FrameAddress::Native(a) => format!("{a:#x}"),
        FrameAddress::Python => "[python]".to_owned(),
    }
}

/// The same name unescaped (lossy where the module path is not UTF-8), for formats that carry
/// any string (pprof's string table).
pub fn frame_name_raw(f: &Frame) -> String {
    if f.python {
        return python_name(f, false);
    }
    if let Some(name) = &f.function {
        return name.clone();
    }
    match (&f.module, f.offset) {
        (Some(m), Some(off)) => format!("{m}+{off:#x}"),
        _ => address_text(f.address),
    }
}

/// A Python frame's `function (file:line)`, unescaped; without a file, the function alone.
/// `short`: the file's base name only (narrow views).
pub fn python_name(f: &Frame, short: bool) -> String {
    let function = f.function.as_deref().unwrap_or("<unknown>");
    let file = f
        .file
        .as_deref()
        .map(|p| if short { p.rsplit('/').next().unwrap_or(p) } else { p });
    match (file, f.line) {
        (Some(file), Some(line)) => format!("{function} ({file}:{line})"),
        (Some(file), None) => format!("{function} ({file})"),
        _ => function.to_owned(),
    }
}

/// Whether the name already says the module (no " in MODULE" needed after it).
pub fn names_module(f: &Frame) -> bool {
    f.function.is_none() && f.offset.is_some() && (f.module.is_some() || !f.module_bytes.is_empty())
}

fn module_text(f: &Frame) -> Option<String> {
    if !f.module_bytes.is_empty() {
        Some(escape_bytes(&f.module_bytes))
    } else {
        f.module.as_deref().map(escape_str)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unresolved_frames_are_module_plus_offset_never_question_marks() {
        let named = Frame {
            address: FrameAddress::Native(0x55550000180a),
            function: Some("main".into()),
            offset: Some(0x180a),
            ..Default::default()
        };
        assert_eq!(frame_name(&named), "main");
        let bare = Frame {
            address: FrameAddress::Native(0x55550000180a),
            offset: Some(0x180a),
            ..Default::default()
        }
        .in_module(std::path::Path::new("/usr/bin/flock"));
        assert_eq!(frame_name(&bare), "/usr/bin/flock+0x180a");
        assert_eq!(frame_name_raw(&bare), "/usr/bin/flock+0x180a");
        assert!(names_module(&bare) && !names_module(&named));
        use std::os::unix::ffi::OsStrExt;
        let hostile = Frame {
            address: FrameAddress::Native(0x1),
            offset: Some(0x10),
            ..Default::default()
        }
        .in_module(std::path::Path::new(std::ffi::OsStr::from_bytes(b"/opt/a\nb\xff.so")));
        assert_eq!(frame_name(&hostile), "/opt/a\\nb\\xff.so+0x10");
        let nowhere = Frame {
            address: FrameAddress::Native(0x7f0000000010),
            ..Default::default()
        };
        assert_eq!(frame_name(&nowhere), "0x7f0000000010");
        let py = Frame::python("Pool.leak\n\"a\"", "/srv/app/pool.py", Some(12));
        assert_eq!(frame_name(&py), "Pool.leak\\n\"a\" (/srv/app/pool.py:12)");
        assert_eq!(frame_name_raw(&py), "Pool.leak\n\"a\" (/srv/app/pool.py:12)");
    }
}
