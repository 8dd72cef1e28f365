//! Struct offsets of one CPython version: what the kernel needs ([`PyOffsets`]) and what the
//! agent reads (code objects, bytes, str).
//!
//! 3.11 and 3.12: a table, checked against CPython's headers (`tests/tests/python_offsets.rs`
//! compiles `offsetof` against the installed headers). 3.13+: `_Py_DebugOffsets`, the block at
//! the start of `_PyRuntime` that CPython keeps for out-of-process tools.

use tracer_common::python::{NO_FIELD, PY_FRAME_WINDOW, PyOffsets};

/// How the eval loop's invocations show in the frame chain.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EntryMark {
    /// 3.11: the marker byte is `_PyInterpreterFrame.is_entry`, set on the first frame of an
    /// invocation.
    IsEntry,
    /// 3.12+: the marker byte is `owner`; each invocation pushes a shim frame (owner in
    /// `shim_min..=shim_max`: `FRAME_OWNED_BY_CSTACK` 3 in 3.12/3.13;
    /// `FRAME_OWNED_BY_INTERPRETER` 3 and `FRAME_OWNED_BY_CSTACK` 4 in 3.14) below its first
    /// frame.
    Owner { shim_min: u8, shim_max: u8 },
}

/// `FRAME_OWNED_BY_GENERATOR` (1 in 3.11-3.14): such frames are never incomplete.
pub const FRAME_OWNED_BY_GENERATOR: u8 = 1;

/// Offsets of one CPython version (x86_64 / aarch64, default GIL build).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Layout {
    /// What the kernel reads.
    pub kernel: PyOffsets,
    pub entry: EntryMark,
    /// `f_executable` is a tagged `_PyStackRef` (3.14+): the low 2 bits are masked off.
    pub tagged_code: bool,
    pub code_filename: u16,
    pub code_name: u16,
    pub code_qualname: u16,
    pub code_linetable: u16,
    /// `co_firstlineno` (an `int`).
    pub code_firstlineno: u16,
    /// `_co_firsttraceable` (an `int`, in code units), for `_PyFrame_IsIncomplete`. With debug
    /// offsets (which do not give it) it is derived: the `int` 16 bytes before
    /// `co_code_adaptive` (`int _co_firsttraceable; void *co_extra; char co_code_adaptive[]` in
    /// 3.11-3.14), and only used when the value read is plausible.
    pub code_firsttraceable: u16,
    /// `co_code_adaptive`: the first code unit.
    pub code_adaptive: u16,
    /// `PyBytesObject.ob_base.ob_size`, `.ob_sval`.
    pub bytes_size: u16,
    pub bytes_sval: u16,
    /// `PyASCIIObject.length`, `.state`, `sizeof(PyASCIIObject)`,
    /// `sizeof(PyCompactUnicodeObject)`.
    pub str_length: u16,
    pub str_state: u16,
    pub str_ascii_size: u16,
    pub str_compact_size: u16,
}

impl Layout {
    /// Every offset with the name the offset test prints it under (`tests/tests/python_offsets.rs`).
    pub fn named(&self) -> Vec<(&'static str, u16)> {
        let k = &self.kernel;
        let mut v = vec![
            ("runtime.interpreters.main", k.runtime_interp_main),
            ("interp.threads.head", k.interp_threads_head),
            ("tstate.next", k.tstate_next),
            ("tstate.native_thread_id", k.tstate_native_thread_id),
            ("frame.previous", k.frame_previous),
            ("code.co_filename", self.code_filename),
            ("code.co_name", self.code_name),
            ("code.co_qualname", self.code_qualname),
            ("code.co_linetable", self.code_linetable),
            ("code.co_firstlineno", self.code_firstlineno),
            ("code._co_firsttraceable", self.code_firsttraceable),
            ("code.co_code_adaptive", self.code_adaptive),
            ("bytes.ob_sval", self.bytes_sval),
            ("varobject.ob_size", self.bytes_size),
            ("sizeof.PyASCIIObject", self.str_ascii_size),
            ("sizeof.PyCompactUnicodeObject", self.str_compact_size),
            ("ascii.length", self.str_length),
            ("ascii.state", self.str_state),
        ];
        if k.tstate_cframe == NO_FIELD {
            v.push(("tstate.current_frame", k.current_frame));
            v.push(("frame.f_executable", k.frame_code));
            v.push(("frame.instr_ptr", k.frame_instr));
        } else {
            v.push(("tstate.cframe", k.tstate_cframe));
            v.push(("cframe.current_frame", k.current_frame));
            v.push(("frame.f_code", k.frame_code));
            v.push(("frame.prev_instr", k.frame_instr));
        }
        match self.entry {
            EntryMark::IsEntry => v.push(("frame.is_entry", k.frame_marker)),
            EntryMark::Owner { .. } => v.push(("frame.owner", k.frame_marker)),
        }
        v
    }

    /// Is this marker byte a shim frame's (3.12+)?
    pub fn is_shim(&self, marker: u8) -> bool {
        matches!(self.entry, EntryMark::Owner { shim_min, shim_max } if (shim_min..=shim_max).contains(&marker))
    }
}

#[allow(clippy::too_many_arguments)]
const fn kernel(
    interp_main: u16,
    threads_head: u16,
    next: u16,
    native_tid: u16,
    cframe: u16,
    current_frame: u16,
    code: u16,
    previous: u16,
    instr: u16,
    marker: u16,
) -> PyOffsets {
    PyOffsets {
        runtime_interp_main: interp_main,
        interp_threads_head: threads_head,
        tstate_next: next,
        tstate_native_thread_id: native_tid,
        tstate_cframe: cframe,
        current_frame,
        frame_code: code,
        frame_previous: previous,
        frame_instr: instr,
        frame_marker: marker,
        _pad: [0; 2],
    }
}

/// CPython 3.11 (Debian 3.11.2 and pyenv 3.11.7 headers, x86_64).
pub const LAYOUT_3_11: Layout = Layout {
    kernel: kernel(48, 16, 8, 160, 56, 8, 32, 48, 56, 68),
    entry: EntryMark::IsEntry,
    tagged_code: false,
    code_filename: 112,
    code_name: 120,
    code_qualname: 128,
    code_linetable: 136,
    code_firstlineno: 72,
    code_firsttraceable: 168,
    code_adaptive: 184,
    bytes_size: 16,
    bytes_sval: 32,
    str_length: 16,
    str_state: 32,
    str_ascii_size: 48,
    str_compact_size: 72,
};

/// CPython 3.12 (pyenv 3.12.1 headers, x86_64: `pycore_runtime.h`, `pycore_interp.h`,
/// `cpython/pystate.h`, `pycore_frame.h`, `cpython/code.h`, `cpython/unicodeobject.h`).
pub const LAYOUT_3_12: Layout = Layout {
    kernel: kernel(48, 72, 8, 144, 56, 0, 0, 8, 56, 70),
    entry: EntryMark::Owner {
        shim_min: 3,
        shim_max: 3,
    },
    tagged_code: false,
    code_filename: 112,
    code_name: 120,
    code_qualname: 128,
    code_linetable: 136,
    code_firstlineno: 68,
    code_firsttraceable: 176,
    code_adaptive: 192,
    bytes_size: 16,
    bytes_sval: 32,
    str_length: 16,
    str_state: 32,
    str_ascii_size: 40,
    str_compact_size: 56,
};

/// The table for a version that has one (3.11, 3.12).
pub fn table(major: u8, minor: u8) -> Option<Layout> {
    match (major, minor) {
        (3, 11) => Some(LAYOUT_3_11),
        (3, 12) => Some(LAYOUT_3_12),
        _ => None,
    }
}

/// `_Py_Debug_Cookie`.
pub const DEBUG_COOKIE: &[u8; 8] = b"xdebugpy";
/// Bytes of `_PyRuntime` read for the debug offsets: more than the 3.14 block (~0x2c0 bytes).
pub const DEBUG_OFFSETS_READ: usize = 1024;

/// Field names of `_Py_DebugOffsets` in order, per sub-struct, as in CPython's
/// `Include/internal/pycore_runtime.h` (v3.13) and `pycore_debug_offsets.h` (v3.14). Each field
/// is a `uint64_t`; the block starts with `char cookie[8]; uint64_t version; uint64_t
/// free_threaded;`. Only the sub-structs up to `unicode_object` are listed.
const DEBUG_LAYOUT_3_13: &[(&str, &[&str])] = &[
    ("runtime_state", &["size", "finalizing", "interpreters_head"]),
    (
        "interpreter_state",
        &[
            "size",
            "id",
            "next",
            "threads_head",
            "gc",
            "imports_modules",
            "sysdict",
            "builtins",
            "ceval_gil",
            "gil_runtime_state",
            "gil_runtime_state_enabled",
            "gil_runtime_state_locked",
            "gil_runtime_state_holder",
        ],
    ),
    (
        "thread_state",
        &[
            "size",
            "prev",
            "next",
            "interp",
            "current_frame",
            "thread_id",
            "native_thread_id",
            "datastack_chunk",
            "status",
        ],
    ),
    (
        "interpreter_frame",
        &["size", "previous", "executable", "instr_ptr", "localsplus", "owner"],
    ),
    (
        "code_object",
        &[
            "size",
            "filename",
            "name",
            "qualname",
            "linetable",
            "firstlineno",
            "argcount",
            "localsplusnames",
            "localspluskinds",
            "co_code_adaptive",
        ],
    ),
    ("pyobject", &["size", "ob_type"]),
    ("type_object", &["size", "tp_name", "tp_repr", "tp_flags"]),
    ("tuple_object", &["size", "ob_item", "ob_size"]),
    ("list_object", &["size", "ob_item", "ob_size"]),
    ("dict_object", &["size", "ma_keys", "ma_values"]),
    ("float_object", &["size", "ob_fval"]),
    ("long_object", &["size", "lv_tag", "ob_digit"]),
    ("bytes_object", &["size", "ob_size", "ob_sval"]),
    ("unicode_object", &["size", "state", "length", "asciiobject_size"]),
];

/// 3.14: `interpreter_state` gains `threads_main` (after `threads_head`),
/// `code_object_generation`, `tlbc_generation`; `interpreter_frame` gains `stackpointer`,
/// `tlbc_index`; `code_object` gains `co_tlbc`; a `set_object` comes before `dict_object`.
const DEBUG_LAYOUT_3_14: &[(&str, &[&str])] = &[
    ("runtime_state", &["size", "finalizing", "interpreters_head"]),
    (
        "interpreter_state",
        &[
            "size",
            "id",
            "next",
            "threads_head",
            "threads_main",
            "gc",
            "imports_modules",
            "sysdict",
            "builtins",
            "ceval_gil",
            "gil_runtime_state",
            "gil_runtime_state_enabled",
            "gil_runtime_state_locked",
            "gil_runtime_state_holder",
            "code_object_generation",
            "tlbc_generation",
        ],
    ),
    (
        "thread_state",
        &[
            "size",
            "prev",
            "next",
            "interp",
            "current_frame",
            "thread_id",
            "native_thread_id",
            "datastack_chunk",
            "status",
        ],
    ),
    (
        "interpreter_frame",
        &[
            "size",
            "previous",
            "executable",
            "instr_ptr",
            "localsplus",
            "owner",
            "stackpointer",
            "tlbc_index",
        ],
    ),
    (
        "code_object",
        &[
            "size",
            "filename",
            "name",
            "qualname",
            "linetable",
            "firstlineno",
            "argcount",
            "localsplusnames",
            "localspluskinds",
            "co_code_adaptive",
            "co_tlbc",
        ],
    ),
    ("pyobject", &["size", "ob_type"]),
    ("type_object", &["size", "tp_name", "tp_repr", "tp_flags"]),
    ("tuple_object", &["size", "ob_item", "ob_size"]),
    ("list_object", &["size", "ob_item", "ob_size"]),
    ("set_object", &["size", "used", "table", "mask"]),
    ("dict_object", &["size", "ma_keys", "ma_values"]),
    ("float_object", &["size", "ob_fval"]),
    ("long_object", &["size", "lv_tag", "ob_digit"]),
    ("bytes_object", &["size", "ob_size", "ob_sval"]),
    ("unicode_object", &["size", "state", "length", "asciiobject_size"]),
];

/// What a debug-offsets block says, or why it cannot be used.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DebugOffsets {
    /// `PY_VERSION_HEX`.
    pub version: u64,
    pub free_threaded: bool,
    pub layout: Layout,
}

/// Byte offset of a field in the block for `layout` (the 24-byte prefix, then `uint64_t`s).
fn field_at(layout: &[(&str, &[&str])], group: &str, field: &str) -> Option<usize> {
    let mut at = 24;
    for (g, fields) in layout {
        for f in *fields {
            if *g == group && *f == field {
                return Some(at);
            }
            at += 8;
        }
    }
    None
}

/// Parses a `_Py_DebugOffsets` block (the first bytes of `_PyRuntime`). Errors say why the
/// block is not usable (no cookie, a version this parser does not know, an implausible value).
pub fn parse_debug_offsets(block: &[u8]) -> Result<DebugOffsets, String> {
    if block.len() < 24 || &block[..8] != DEBUG_COOKIE {
        return Err("no _Py_DebugOffsets cookie at _PyRuntime".into());
    }
    let u64_at = |at: usize| -> Option<u64> {
        block
            .get(at..at + 8)
            .map(|b| u64::from_le_bytes(b.try_into().unwrap_or_default()))
    };
    let version = u64_at(8).unwrap_or(0);
    let free_threaded = u64_at(16).unwrap_or(0) != 0;
    let (major, minor) = ((version >> 24) & 0xff, (version >> 16) & 0xff);
    let desc = match (major, minor) {
        (3, 13) => DEBUG_LAYOUT_3_13,
        // Later versions are read with the 3.14 layout and kept only if every value is sane.
        (3, 14..) => DEBUG_LAYOUT_3_14,
        _ => return Err(format!("_Py_DebugOffsets of unknown version {version:#x}")),
    };
    let get = |group: &str, field: &str| -> Result<u64, String> {
        field_at(desc, group, field)
            .and_then(u64_at)
            .ok_or_else(|| format!("_Py_DebugOffsets: {group}.{field} not in the block"))
    };
    // An offset must be inside its struct and fit the kernel's u16 (frame fields: its window).
    let off = |group: &str, field: &str, limit: u64| -> Result<u16, String> {
        let size = get(group, "size")?;
        let v = get(group, field)?;
        if v >= size.min(limit) || v > u64::from(u16::MAX - 1) {
            return Err(format!(
                "_Py_DebugOffsets {version:#x}: {group}.{field} = {v} is not plausible"
            ));
        }
        Ok(v as u16)
    };
    const ANY: u64 = u16::MAX as u64;
    // Frame fields: an 8-byte one must end within the kernel's window, the owner byte be in it.
    let window = PY_FRAME_WINDOW as u64 - 7;
    let interp_head = off("runtime_state", "interpreters_head", ANY)?;
    let ascii_size = get("unicode_object", "asciiobject_size")?;
    if !(16..=128).contains(&ascii_size) {
        return Err(format!(
            "_Py_DebugOffsets {version:#x}: sizeof(PyASCIIObject) = {ascii_size}"
        ));
    }
    let code_adaptive = off("code_object", "co_code_adaptive", ANY + 1)?;
    let layout = Layout {
        kernel: PyOffsets {
            // `struct pyinterpreters { PyMutex mutex; PyInterpreterState *head; *main; ...}`
            // (3.13, 3.14): `main` follows `head`.
            runtime_interp_main: interp_head + 8,
            interp_threads_head: off("interpreter_state", "threads_head", ANY)?,
            tstate_next: off("thread_state", "next", ANY)?,
            tstate_native_thread_id: off("thread_state", "native_thread_id", ANY)?,
            tstate_cframe: NO_FIELD,
            current_frame: off("thread_state", "current_frame", ANY)?,
            frame_code: off("interpreter_frame", "executable", window)?,
            frame_previous: off("interpreter_frame", "previous", window)?,
            frame_instr: off("interpreter_frame", "instr_ptr", window)?,
            frame_marker: off("interpreter_frame", "owner", window + 7)?, // < 80
            _pad: [0; 2],
        },
        entry: if minor >= 14 {
            EntryMark::Owner {
                shim_min: 3,
                shim_max: 4,
            }
        } else {
            EntryMark::Owner {
                shim_min: 3,
                shim_max: 3,
            }
        },
        tagged_code: minor >= 14,
        code_filename: off("code_object", "filename", ANY)?,
        code_name: off("code_object", "name", ANY)?,
        code_qualname: off("code_object", "qualname", ANY)?,
        code_linetable: off("code_object", "linetable", ANY)?,
        code_firstlineno: off("code_object", "firstlineno", ANY)?,
        code_firsttraceable: code_adaptive.saturating_sub(16),
        code_adaptive,
        bytes_size: off("bytes_object", "ob_size", ANY)?,
        bytes_sval: off("bytes_object", "ob_sval", ANY + 1)?,
        str_length: off("unicode_object", "length", ANY)?,
        str_state: off("unicode_object", "state", ANY)?,
        str_ascii_size: ascii_size as u16,
        // `PyCompactUnicodeObject` adds `utf8_length` and `utf8` (3.12+: no `wstr`).
        str_compact_size: ascii_size as u16 + 16,
    };
    Ok(DebugOffsets {
        version,
        free_threaded,
        layout,
    })
}

#[cfg(test)]
pub(super) fn debug_field_at(minor: u8, group: &str, field: &str) -> Option<usize> {
    field_at(
        if minor >= 14 {
            DEBUG_LAYOUT_3_14
        } else {
            DEBUG_LAYOUT_3_13
        },
        group,
        field,
    )
}

#[cfg(test)]
pub(super) fn debug_fields(minor: u8) -> Vec<(&'static str, &'static str)> {
    let desc = if minor >= 14 {
        DEBUG_LAYOUT_3_14
    } else {
        DEBUG_LAYOUT_3_13
    };
    desc.iter()
        .flat_map(|(g, fs)| fs.iter().map(move |f| (*g, *f)))
        .collect()
}
