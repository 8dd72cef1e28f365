//! A frame of a resolved stack: native (address, function, file, line, module and offset in
//! it) or Python (a code object's qualified name, file and line).

use serde::Serialize;

use super::bytes::text_and_hex;

#[derive(Clone, Debug, Default, Serialize, PartialEq, Eq)]
pub struct Frame {
    pub address: String,
    pub function: Option<String>,
    pub file: Option<String>,
    pub line: Option<u32>,
    pub module: Option<String>,
    /// Hex of the module path's raw bytes, present only when it is not valid UTF-8.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub module_hex: Option<String>,
    /// The module path's raw bytes, for the text output's escaping (empty: use `module`).
    #[serde(skip)]
    pub module_bytes: Vec<u8>,
    /// Offset of the address in the module file, the form `addr2line -e MODULE` takes; shown
    /// as `module+0xOFFSET` when no symbol names the frame. JSON: a hex string, absent when
    /// unknown (kernel frames, addresses outside any module).
    #[serde(serialize_with = "hex_offset", skip_serializing_if = "Option::is_none")]
    pub offset: Option<u64>,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub inlined: bool,
    /// A Python frame (CPython's frame chain): `function` is the code object's qualified name,
    /// `file` and `line` where it was; no module, no offset.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub python: bool,
    /// The module's GNU build id (hex), for pprof mappings; not part of the JSON contract.
    #[serde(skip)]
    pub build_id: Option<String>,
}

/// What a Python frame shows in the address column.
pub const PYTHON_ADDRESS: &str = "[python]";

fn hex_offset<S: serde::Serializer>(offset: &Option<u64>, s: S) -> Result<S::Ok, S::Error> {
    match offset {
        Some(o) => s.serialize_str(&format!("{o:#x}")),
        None => s.serialize_none(),
    }
}

impl Frame {
    /// A Python frame: a code object's qualified name, its file and the line of the instruction.
    pub fn python(function: &str, file: &str, line: Option<u32>) -> Self {
        Frame {
            address: PYTHON_ADDRESS.into(),
            function: Some(function.into()),
            file: Some(file.into()),
            line,
            python: true,
            ..Default::default()
        }
    }

    /// Names the frame's module by its file's path, keeping bytes that are not UTF-8.
    pub fn in_module(mut self, path: &std::path::Path) -> Self {
        use std::os::unix::ffi::OsStrExt;
        let bytes = path.as_os_str().as_bytes();
        (self.module, self.module_hex) = {
            let (text, hex) = text_and_hex(bytes);
            (Some(text), hex)
        };
        self.module_bytes = bytes.to_vec();
        self
    }
}
