use std::sync::Arc;

use tracer_common::python::{NO_FIELD, PyFrameRaw, PyProcess};

use super::{
    CodeCache, PyRuntime, addr2line,
    offsets::{self, DEBUG_COOKIE, EntryMark, LAYOUT_3_11, LAYOUT_3_12, Layout, parse_debug_offsets},
    version_from_name,
};

/// `testdata/linetable_311.txt`, made by `gen_linetable.py` with `/usr/bin/python3.11`: each
/// code object's `co_linetable` and `co_firstlineno`, then what `co_lines()` says.
const GOLDEN: &str = include_str!("testdata/linetable_311.txt");

#[test]
fn linetable_matches_co_lines() {
    let mut codes = 0;
    let mut checked = 0;
    let mut none = 0;
    let mut current: Option<(String, i32, Vec<u8>)> = None;
    for line in GOLDEN.lines().filter(|l| !l.starts_with('#')) {
        let f: Vec<&str> = line.split(' ').collect();
        match f[0] {
            "code" => {
                let table = (0..f[3].len())
                    .step_by(2)
                    .map(|i| u8::from_str_radix(&f[3][i..i + 2], 16).unwrap())
                    .collect();
                current = Some((f[1].to_string(), f[2].parse().unwrap(), table));
                codes += 1;
            }
            "range" => {
                let (name, first, table) = current.as_ref().unwrap();
                let (start, end): (u32, u32) = (f[1].parse().unwrap(), f[2].parse().unwrap());
                let want: Option<i32> = (f[3] != "-").then(|| f[3].parse().unwrap());
                for off in (start..end).step_by(2) {
                    assert_eq!(addr2line(table, *first, off), want, "{name} at offset {off}");
                    checked += 1;
                    none += usize::from(want.is_none());
                }
            }
            other => panic!("unexpected golden line {other}"),
        }
    }
    assert!(
        codes >= 8 && checked > 1000 && none > 0,
        "{codes} code objects, {checked} offsets, {none} without line"
    );
    // Past the end: no line.
    let (_, first, table) = current.unwrap();
    assert_eq!(addr2line(&table, first, 1 << 20), None);
}

#[test]
fn linetable_long_deltas() {
    // long_jump: `z = y * 2` 152 lines after the def, `return` 300 lines further (varints of
    // two chunks), a multi-line expression.
    let (mut first, mut table) = (0, Vec::new());
    let mut lines = std::collections::BTreeSet::new();
    let mut in_fn = false;
    for line in GOLDEN.lines() {
        let f: Vec<&str> = line.split(' ').collect();
        if f[0] == "code" {
            in_fn = f[1] == "long_jump";
            if in_fn {
                first = f[2].parse().unwrap();
                table = (0..f[3].len())
                    .step_by(2)
                    .map(|i| u8::from_str_radix(&f[3][i..i + 2], 16).unwrap())
                    .collect();
            }
        } else if in_fn && f[3] != "-" {
            lines.insert(f[3].parse::<i32>().unwrap());
        }
    }
    assert!(lines.iter().any(|&l| l - first > 127), "{lines:?}");
    for l in &lines {
        let hit = (0..table.len() as u32 * 2)
            .step_by(2)
            .any(|o| addr2line(&table, first, o) == Some(*l));
        assert!(hit, "line {l} not found");
    }
}

#[test]
fn version_from_file_names() {
    assert_eq!(
        version_from_name(std::path::Path::new("/usr/lib/libpython3.10.so.1.0")),
        Some((3, 10))
    );
    assert_eq!(
        version_from_name(std::path::Path::new("/usr/bin/python3.9")),
        Some((3, 9))
    );
    assert_eq!(version_from_name(std::path::Path::new("/usr/bin/python")), None);
}

/// A debug-offsets block as CPython lays it out, with the given `(group, field) -> value`.
fn debug_block(minor: u8, values: &[(&str, &str, u64)]) -> Vec<u8> {
    let mut b = vec![0u8; offsets::DEBUG_OFFSETS_READ];
    b[..8].copy_from_slice(DEBUG_COOKIE);
    b[8..16].copy_from_slice(&(0x0300_00f0u64 | (u64::from(minor) << 16)).to_le_bytes());
    let fields = offsets::debug_fields(minor);
    // Every field a distinct value first (struct sizes large), so that a misplaced read shows.
    for (i, (g, f)) in fields.iter().enumerate() {
        let at = offsets::debug_field_at(minor, g, f).unwrap();
        let v = if *f == "size" { 100_000 } else { 3000 + i as u64 };
        b[at..at + 8].copy_from_slice(&v.to_le_bytes());
    }
    for (g, f, v) in values {
        let at = offsets::debug_field_at(minor, g, f).unwrap();
        b[at..at + 8].copy_from_slice(&v.to_le_bytes());
    }
    b
}

/// The real 3.13.0 values (pyenv 3.13.0 headers, x86_64, `offsetof`).
const REAL_3_13: &[(&str, &str, u64)] = &[
    ("runtime_state", "interpreters_head", 632),
    ("interpreter_state", "threads_head", 7344),
    ("thread_state", "next", 8),
    ("thread_state", "current_frame", 72),
    ("thread_state", "native_thread_id", 160),
    ("interpreter_frame", "size", 80),
    ("interpreter_frame", "previous", 8),
    ("interpreter_frame", "executable", 0),
    ("interpreter_frame", "instr_ptr", 56),
    ("interpreter_frame", "owner", 70),
    ("code_object", "filename", 112),
    ("code_object", "name", 120),
    ("code_object", "qualname", 128),
    ("code_object", "linetable", 136),
    ("code_object", "firstlineno", 68),
    ("code_object", "co_code_adaptive", 200),
    ("bytes_object", "ob_size", 16),
    ("bytes_object", "ob_sval", 32),
    ("unicode_object", "state", 32),
    ("unicode_object", "length", 16),
    ("unicode_object", "asciiobject_size", 40),
];

#[test]
fn debug_offsets_3_13() {
    let d = parse_debug_offsets(&debug_block(13, REAL_3_13)).unwrap();
    assert_eq!(d.version >> 16, 0x030d);
    assert!(!d.free_threaded);
    let l = d.layout;
    let k = l.kernel;
    assert_eq!(
        (
            k.runtime_interp_main,
            k.interp_threads_head,
            k.tstate_next,
            k.tstate_native_thread_id
        ),
        (640, 7344, 8, 160)
    );
    assert_eq!((k.tstate_cframe, k.current_frame), (NO_FIELD, 72));
    assert_eq!(
        (k.frame_code, k.frame_previous, k.frame_instr, k.frame_marker),
        (0, 8, 56, 70)
    );
    assert_eq!(
        (l.code_filename, l.code_name, l.code_qualname, l.code_linetable),
        (112, 120, 128, 136)
    );
    assert_eq!(
        (l.code_firstlineno, l.code_firsttraceable, l.code_adaptive),
        (68, 184, 200)
    );
    assert_eq!((l.bytes_size, l.bytes_sval), (16, 32));
    assert_eq!(
        (l.str_length, l.str_state, l.str_ascii_size, l.str_compact_size),
        (16, 32, 40, 56)
    );
    assert_eq!(
        l.entry,
        EntryMark::Owner {
            shim_min: 3,
            shim_max: 3
        }
    );
    assert!(!l.tagged_code);
}

#[test]
fn debug_offsets_3_14_layout_shifts() {
    // 3.14 inserts `threads_main` after `threads_head` and grows the frame and code groups: a
    // 3.13 reading of a 3.14 block would take the wrong words.
    let d = parse_debug_offsets(&debug_block(14, REAL_3_13)).unwrap();
    let l = d.layout;
    assert_eq!(l.kernel.interp_threads_head, 7344);
    assert_eq!((l.code_qualname, l.code_adaptive, l.str_ascii_size), (128, 200, 40));
    assert_eq!(
        l.entry,
        EntryMark::Owner {
            shim_min: 3,
            shim_max: 4
        }
    );
    assert!(l.tagged_code);
    assert_eq!(
        offsets::debug_field_at(14, "bytes_object", "ob_sval").unwrap(),
        offsets::debug_field_at(13, "bytes_object", "ob_sval").unwrap() + 8 * (3 + 2 + 1 + 4)
    );
}

#[test]
fn debug_offsets_rejected() {
    let mut b = debug_block(13, REAL_3_13);
    b[0] = b'y';
    assert!(parse_debug_offsets(&b).unwrap_err().contains("cookie"));
    // An unknown version.
    let b = debug_block(12, REAL_3_13);
    assert!(parse_debug_offsets(&b).unwrap_err().contains("unknown version"));
    // A frame field outside the kernel's window.
    let mut v = REAL_3_13.to_vec();
    v.push(("interpreter_frame", "size", 1000));
    v.push(("interpreter_frame", "instr_ptr", 400));
    assert!(
        parse_debug_offsets(&debug_block(13, &v))
            .unwrap_err()
            .contains("instr_ptr")
    );
    // A free-threaded build is parsed and said so (find_runtime refuses it).
    let mut b = debug_block(13, REAL_3_13);
    b[16] = 1;
    assert!(parse_debug_offsets(&b).unwrap().free_threaded);
}

#[test]
fn tables_are_the_known_values() {
    assert_eq!(offsets::table(3, 11), Some(LAYOUT_3_11));
    assert_eq!(offsets::table(3, 12), Some(LAYOUT_3_12));
    assert_eq!(offsets::table(3, 10), None);
    // 3.11 as measured with gcc against /usr/include/python3.11.
    let named: std::collections::HashMap<_, _> = LAYOUT_3_11.named().into_iter().collect();
    assert_eq!(named["frame.is_entry"], 68);
    assert_eq!(named["code.co_qualname"], 128);
    assert_eq!(named["sizeof.PyCompactUnicodeObject"], 72);
}

// ---- resolve, on code objects built in this process's memory ----

/// An object graph in this process's memory laid out as CPython `layout` would lay it out.
struct Fake {
    bufs: Vec<Box<[u8]>>,
}

impl Fake {
    fn alloc(&mut self, bytes: Vec<u8>) -> u64 {
        // 16-aligned like pymalloc (tag bits free).
        let mut b = vec![0u8; bytes.len() + 32].into_boxed_slice();
        let pad = (16 - (b.as_ptr() as usize % 16)) % 16;
        b[pad..pad + bytes.len()].copy_from_slice(&bytes);
        let addr = b.as_ptr() as u64 + pad as u64;
        self.bufs.push(b);
        addr
    }

    fn put(buf: &mut [u8], at: u16, v: &[u8]) {
        buf[usize::from(at)..usize::from(at) + v.len()].copy_from_slice(v);
    }

    fn str(&mut self, l: &Layout, s: &str) -> u64 {
        let ascii = s.is_ascii();
        let units: Vec<u32> = s.chars().map(u32::from).collect();
        let kind: u32 = if units.iter().all(|&c| c < 256) {
            1
        } else if units.iter().all(|&c| c < 65536) {
            2
        } else {
            4
        };
        let head = if ascii { l.str_ascii_size } else { l.str_compact_size };
        let mut b = vec![0u8; usize::from(head) + units.len() * kind as usize + 4];
        Self::put(&mut b, l.str_length, &(units.len() as u64).to_le_bytes());
        let state = (kind << 2) | (1 << 5) | (u32::from(ascii) << 6);
        Self::put(&mut b, l.str_state, &state.to_le_bytes());
        for (i, c) in units.iter().enumerate() {
            let at = usize::from(head) + i * kind as usize;
            b[at..at + kind as usize].copy_from_slice(&c.to_le_bytes()[..kind as usize]);
        }
        self.alloc(b)
    }

    fn code(&mut self, l: &Layout, qualname: &str, file: &str, first: i32, table: &[u8], firsttraceable: i32) -> u64 {
        let q = self.str(l, qualname);
        let f = self.str(l, file);
        let mut t = vec![0u8; usize::from(l.bytes_sval) + table.len() + 1];
        Self::put(&mut t, l.bytes_size, &(table.len() as u64).to_le_bytes());
        Self::put(&mut t, l.bytes_sval, table);
        let t = self.alloc(t);
        let mut c = vec![0u8; usize::from(l.code_adaptive) + 64];
        Self::put(&mut c, l.code_qualname, &q.to_le_bytes());
        Self::put(&mut c, l.code_name, &q.to_le_bytes());
        Self::put(&mut c, l.code_filename, &f.to_le_bytes());
        Self::put(&mut c, l.code_linetable, &t.to_le_bytes());
        Self::put(&mut c, l.code_firstlineno, &first.to_le_bytes());
        Self::put(&mut c, l.code_firsttraceable, &firsttraceable.to_le_bytes());
        self.alloc(c)
    }
}

fn runtime(l: &Layout) -> PyRuntime {
    PyRuntime {
        version: (3, 12, 0),
        runtime: 0,
        eval_ranges: Vec::new(),
        module: Arc::from(std::path::Path::new("/x")),
        kernel: Some(PyProcess {
            runtime: 0,
            offsets: l.kernel,
        }),
        unsupported: None,
        layout: Some(l.clone()),
    }
}

fn raw(l: &Layout, code: u64, offset: u64, marker: u8) -> PyFrameRaw {
    PyFrameRaw {
        code,
        instr: (code + u64::from(l.code_adaptive) + offset) | (u64::from(marker) << 56),
    }
}

/// A location table: `n` entries of one code unit each, line deltas +1 (code 11), the first on
/// the first line (code 10).
fn table(n: usize) -> Vec<u8> {
    let mut t = vec![0x80 | (10 << 3), 0, 0];
    for _ in 1..n {
        t.extend([0x80 | (11 << 3), 0, 0]);
    }
    t
}

#[test]
fn resolve_3_12_shims_entries_incomplete() {
    let l = LAYOUT_3_12;
    let mut fake = Fake { bufs: Vec::new() };
    let inner = fake.code(&l, "Cls.inner", "/srv/app.py", 10, &table(8), 1);
    let outer = fake.code(&l, "outer", "/srv/app.py", 20, &table(8), 1);
    let odd = fake.code(&l, "f\u{e9}\u{1f600}\n\"", "/srv/\u{4e2d}.py", 30, &table(8), 1);
    let latin1 = fake.code(&l, "caf\u{e9}", "/srv/\u{ff}.py", 40, &table(8), 1);
    let mut cache = CodeCache::new(std::process::id() as i32, &runtime(&l));
    let frames = [
        raw(&l, inner, 0, 0),       // incomplete: before `_co_firsttraceable` (unit 1)
        raw(&l, inner, 6, 0),       // unit 3: line 13
        raw(&l, outer, 4, 0),       // line 22
        raw(&l, 0, 0, 3),           // shim: `outer` is the entry
        raw(&l, odd, 2, 1),         // a generator frame (owner 1)
        raw(&l, 0x10, 0, 3),        // shim
        raw(&l, latin1, 2, 0),      // latin-1 (one byte per character, not ASCII)
        raw(&l, outer, 1 << 40, 0), // an instruction pointer far past the code: no line
        raw(&l, 0x5000, 8, 0),      // unreadable code object
    ];
    let out = cache.resolve(&frames);
    let got: Vec<(&str, &str, u32, bool)> = out.iter().map(|f| (&*f.qualname, &*f.file, f.line, f.entry)).collect();
    assert_eq!(
        got,
        [
            ("Cls.inner", "/srv/app.py", 13, false),
            ("outer", "/srv/app.py", 22, true),
            ("f\u{e9}\u{1f600}\n\"", "/srv/\u{4e2d}.py", 31, true),
            ("caf\u{e9}", "/srv/\u{ff}.py", 41, false),
            ("outer", "/srv/app.py", 0, false),
            ("<code 0x5000>", "", 0, false),
        ]
    );
    assert_eq!((out[0].instr_offset, out[0].code), (6, inner));
    assert_eq!(cache.len(), 4);
    // Cached: the same answer again.
    assert_eq!(cache.resolve(&frames), out);
}

#[test]
fn resolve_3_11_is_entry_and_3_14_tags() {
    let l = LAYOUT_3_11;
    let mut fake = Fake { bufs: Vec::new() };
    let a = fake.code(&l, "a", "m.py", 1, &table(4), 0);
    let b = fake.code(&l, "b", "m.py", 5, &table(4), 0);
    let mut cache = CodeCache::new(std::process::id() as i32, &runtime(&l));
    let out = cache.resolve(&[raw(&l, a, 2, 1), raw(&l, b, 0, 0)]);
    let got: Vec<(&str, u32, bool)> = out.iter().map(|f| (&*f.qualname, f.line, f.entry)).collect();
    assert_eq!(got, [("a", 2, true), ("b", 5, false)]);

    // 3.14: `f_executable` is a `_PyStackRef` with tag bits; owner 3 and 4 are shims.
    let mut l = LAYOUT_3_12;
    l.tagged_code = true;
    l.entry = EntryMark::Owner {
        shim_min: 3,
        shim_max: 4,
    };
    let c = fake.code(&l, "c", "n.py", 7, &table(4), 0);
    let mut cache = CodeCache::new(std::process::id() as i32, &runtime(&l));
    let mut tagged = raw(&l, c, 2, 0);
    tagged.code |= 1;
    let out = cache.resolve(&[tagged, raw(&l, 0, 0, 4), raw(&l, c, 0, 0), raw(&l, 0, 0, 3)]);
    let got: Vec<(&str, u32, bool)> = out.iter().map(|f| (&*f.qualname, f.line, f.entry)).collect();
    assert_eq!(got, [("c", 8, true), ("c", 7, true)]);
}
