//! A frame of a resolved stack: native (address, function, file, line, module and offset in
//! it) or Python (a code object's qualified name, file and line).

use serde::Serialize;

use super::bytes::text_and_hex;

/// Where a frame is: a native instruction address, or a frame of CPython's frame chain (which
/// has none of its own). JSON: `"0x55d0c0ffee10"`, or `"[python]"`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FrameAddress {
    Native(u64),
    Python,
}

impl Default for FrameAddress {
    fn default() -> Self {
        FrameAddress::Native(0)
    }
}

impl FrameAddress {
    /// The native address; none for a Python frame.
    pub fn native(self) -> Option<u64> {
        match self {
            FrameAddress::Native(a) => Some(a),
            FrameAddress::Python => None,
        }
    }
}

impl Serialize for FrameAddress {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            FrameAddress::Native(a) => s.serialize_str(&format!("{a:#x}")),
            FrameAddress::Python => s.serialize_str("[python]"),
        }
    }
}

#[derive(Clone, Debug, Default, Serialize, PartialEq, Eq)]
pub struct Frame {
    pub address: FrameAddress,
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
            address: FrameAddress::Python,
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
