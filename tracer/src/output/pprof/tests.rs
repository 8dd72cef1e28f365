//! The encoder's output decoded back (gunzip, then prost), and once through `go tool pprof` when
//! Go is installed.

use std::io::Read;

use flate2::read::GzDecoder;
use prost::Message;

use super::{encode, proto};
use crate::{
    model::{
        Frame, Stack,
        frame::FrameAddress,
        profile::{LabelValue, Profile, ProfileKind, ProfileSample},
    },
    output::escape::escape_bytes,
};

const LIBC: &str = "/usr/lib/x86_64-linux-gnu/libc.so.6";
const APP: &str = "/srv/app/bin/server";

fn frame(address: &str, function: Option<&str>, module: Option<&str>) -> Frame {
    Frame {
        address: FrameAddress::Native(u64::from_str_radix(address.trim_start_matches("0x"), 16).unwrap_or(0)),
        function: function.map(str::to_owned),
        module: module.map(str::to_owned),
        ..Default::default()
    }
}

/// A resolved frame with source and build id.
fn sourced(address: &str, function: &str, file: &str, line: u32, module: &str, build_id: &str) -> Frame {
    Frame {
        file: Some(file.to_owned()),
        line: Some(line),
        build_id: Some(build_id.to_owned()),
        ..frame(address, Some(function), Some(module))
    }
}

fn inlined(f: Frame) -> Frame {
    Frame { inlined: true, ..f }
}

fn labels(pid: i64, comm: &str, kind: &str, container: &str) -> Vec<(&'static str, LabelValue)> {
    vec![
        ("pid", LabelValue::Num(pid)),
        ("comm", LabelValue::Str(comm.to_owned())),
        ("kind", LabelValue::Str(kind.to_owned())),
        ("container", LabelValue::Str(container.to_owned())),
    ]
}

fn sample(frames: Vec<Frame>, value: i64, labels: Vec<(&'static str, LabelValue)>) -> ProfileSample {
    ProfileSample {
        stack: Stack::from(frames),
        value,
        labels,
    }
}

fn profile(samples: Vec<ProfileSample>) -> Profile {
    Profile {
        kind: ProfileKind::Fds,
        time_unix_ns: 1_764_000_000_123_456_789,
        samples,
        comments: vec!["tracer: open file descriptors now".to_owned()],
    }
}

/// The stack of the examples: `open` inlined into `open_log` at one address, called by `main`.
fn leak_stack() -> Vec<Frame> {
    vec![
        inlined(sourced("0x7f0000001010", "open", "io/open.c", 12, LIBC, "aabbcc")),
        sourced("0x7f0000001010", "open_log", "io/log.c", 40, LIBC, "aabbcc"),
        sourced("0x55d0c0ffee10", "main", "src/main.c", 7, APP, "0123456789abcdef"),
    ]
}

fn decode(gz: &[u8]) -> proto::Profile {
    let mut raw = Vec::new();
    GzDecoder::new(gz)
        .read_to_end(&mut raw)
        .unwrap_or_else(|e| panic!("the profile must be gzipped: {e}"));
    proto::Profile::decode(raw.as_slice()).unwrap_or_else(|e| panic!("the profile must decode: {e}"))
}

fn roundtrip(p: &Profile) -> proto::Profile {
    decode(&encode(p))
}

fn s(p: &proto::Profile, i: i64) -> &str {
    usize::try_from(i)
        .ok()
        .and_then(|i| p.string_table.get(i))
        .unwrap_or_else(|| panic!("string index {i} out of the table"))
}

fn location(p: &proto::Profile, id: u64) -> &proto::Location {
    p.location
        .iter()
        .find(|l| l.id == id)
        .unwrap_or_else(|| panic!("no location {id}"))
}

fn function(p: &proto::Profile, id: u64) -> &proto::Function {
    p.function
        .iter()
        .find(|f| f.id == id)
        .unwrap_or_else(|| panic!("no function {id}"))
}

fn mapping<'a>(p: &'a proto::Profile, filename: &str) -> &'a proto::Mapping {
    p.mapping
        .iter()
        .find(|m| s(p, m.filename) == filename)
        .unwrap_or_else(|| panic!("no mapping {filename:?}"))
}

/// The function names of a location's lines, in order.
fn line_names(p: &proto::Profile, loc: &proto::Location) -> Vec<String> {
    loc.line
        .iter()
        .map(|l| s(p, function(p, l.function_id).name).to_owned())
        .collect()
}

fn label<'a>(p: &'a proto::Profile, sample: &'a proto::Sample, key: &str) -> &'a proto::Label {
    sample
        .label
        .iter()
        .find(|l| s(p, l.key) == key)
        .unwrap_or_else(|| panic!("no label {key}"))
}

#[test]
fn header_says_what_is_counted() {
    let p = roundtrip(&profile(vec![sample(leak_stack(), 3, labels(42, "nginx", "file", ""))]));
    assert_eq!(p.string_table[0], "", "string_table[0] must be empty");
    let types: Vec<(&str, &str)> = p.sample_type.iter().map(|t| (s(&p, t.r#type), s(&p, t.unit))).collect();
    assert_eq!(types, [("inuse_objects", "count")]);
    assert_eq!(s(&p, p.default_sample_type), "inuse_objects");
    let period = p.period_type.as_ref().unwrap_or_else(|| panic!("period_type missing"));
    assert_eq!(
        (s(&p, period.r#type), s(&p, period.unit), p.period),
        ("inuse_objects", "count", 1)
    );
    assert_eq!(p.time_nanos, 1_764_000_000_123_456_789);
    let comments: Vec<&str> = p.comment.iter().map(|&c| s(&p, c)).collect();
    assert_eq!(comments, ["tracer: open file descriptors now"]);
    assert_eq!(p.sample.len(), 1);
    assert_eq!(p.sample[0].value, [3]);
    let mut strings = p.string_table.clone();
    strings.sort();
    strings.dedup();
    assert_eq!(strings.len(), p.string_table.len(), "strings are deduplicated");
}

#[test]
fn inlined_frames_share_one_location_callee_first() {
    let p = roundtrip(&profile(vec![sample(leak_stack(), 1, labels(42, "nginx", "file", ""))]));
    let ids = &p.sample[0].location_id;
    assert_eq!(ids.len(), 2, "three frames, two addresses");
    let leaf = location(&p, ids[0]);
    assert_eq!(leaf.address, 0x7f00_0000_1010);
    assert_eq!(
        line_names(&p, leaf),
        ["open", "open_log"],
        "inlined first, the caller last"
    );
    assert_eq!(leaf.line.iter().map(|l| l.line).collect::<Vec<_>>(), [12, 40]);
    let open = function(&p, leaf.line[0].function_id);
    assert_eq!((s(&p, open.system_name), s(&p, open.filename)), ("open", "io/open.c"));
    let caller = location(&p, ids[1]);
    assert_eq!(caller.address, 0x55d0_c0ff_ee10);
    assert_eq!(line_names(&p, caller), ["main"]);
    assert_eq!(s(&p, mapping(&p, LIBC).filename), LIBC);
    assert_eq!(leaf.mapping_id, mapping(&p, LIBC).id);
    assert_eq!(caller.mapping_id, mapping(&p, APP).id);
    assert_eq!(
        s(&p, p.mapping[0].filename),
        APP,
        "the outermost frame's module is the main binary"
    );
}

#[test]
fn an_inlined_frame_without_its_caller_keeps_its_own_location() {
    let stack = vec![
        inlined(frame("0x10", Some("a"), Some(LIBC))),
        frame("0x20", Some("b"), Some(LIBC)),
        inlined(frame("0x30", Some("c"), Some(LIBC))),
    ];
    let p = roundtrip(&profile(vec![sample(stack, 1, labels(1, "a", "file", ""))]));
    let names: Vec<Vec<String>> = p.sample[0]
        .location_id
        .iter()
        .map(|&id| line_names(&p, location(&p, id)))
        .collect();
    assert_eq!(
        names,
        [["a"], ["b"], ["c"]],
        "no borrowing a neighbour at another address"
    );
}

#[test]
fn mappings_carry_build_id_and_what_was_resolved() {
    let stack = vec![
        sourced("0x7f0000001010", "open_log", "io/log.c", 40, LIBC, "aabbcc"),
        // A module without symbols: named by address, nothing resolved.
        frame("0x7f1000000abc", None, Some("/opt/stripped.so")),
        // Function only (kallsyms-like).
        frame("0xffffffff81000000", Some("do_sys_openat2"), Some("[kernel]")),
        // No module at all.
        frame("0x1234", None, None),
    ];
    let p = roundtrip(&profile(vec![sample(stack, 1, labels(1, "a", "file", ""))]));
    assert_eq!(p.mapping.len(), 3, "one mapping per module path");
    let libc = mapping(&p, LIBC);
    assert_eq!(s(&p, libc.build_id), "aabbcc");
    assert!(libc.has_functions && libc.has_filenames && libc.has_line_numbers && libc.has_inline_frames);
    assert_eq!((libc.memory_start, libc.memory_limit, libc.file_offset), (0, 0, 0));
    let stripped = mapping(&p, "/opt/stripped.so");
    assert_eq!(s(&p, stripped.build_id), "");
    assert!(!stripped.has_functions && !stripped.has_filenames && !stripped.has_line_numbers);
    assert!(!stripped.has_inline_frames);
    let kernel = mapping(&p, "[kernel]");
    assert!(kernel.has_functions && !kernel.has_filenames && !kernel.has_line_numbers);
    let ids = &p.sample[0].location_id;
    assert_eq!(ids.len(), 4);
    let unknown = location(&p, ids[1]);
    assert_eq!(
        line_names(&p, unknown),
        ["0x7f1000000abc"],
        "unresolved code is named by its address"
    );
    let moduleless = location(&p, ids[3]);
    assert_eq!(moduleless.mapping_id, 0, "no module, no mapping");
    assert_eq!(line_names(&p, moduleless), ["0x1234"]);
}

#[test]
fn functions_locations_and_mappings_are_shared_across_samples() {
    let mut other = leak_stack();
    other[2] = sourced("0x55d0c0ffee99", "worker", "src/worker.c", 3, APP, "0123456789abcdef");
    let p = roundtrip(&profile(vec![
        sample(leak_stack(), 2, labels(42, "nginx", "file", "")),
        sample(leak_stack(), 1, labels(43, "nginx", "file", "")),
        sample(other, 5, labels(42, "nginx", "socket", "")),
    ]));
    assert_eq!(p.sample.len(), 3);
    assert_eq!(
        p.sample[0].location_id, p.sample[1].location_id,
        "same stack, same locations"
    );
    assert_eq!(
        p.sample[2].location_id[0], p.sample[0].location_id[0],
        "shared leaf location"
    );
    assert_ne!(p.sample[2].location_id[1], p.sample[0].location_id[1]);
    assert_eq!(p.location.len(), 3);
    assert_eq!(p.function.len(), 4, "open, open_log, main, worker");
    assert_eq!(p.mapping.len(), 2, "libc and the app");
    let ids: Vec<u64> = p
        .location
        .iter()
        .map(|l| l.id)
        .chain(p.function.iter().map(|f| f.id))
        .collect();
    assert!(ids.iter().all(|&id| id != 0), "ids are nonzero");
}

#[test]
fn labels_are_typed() {
    let p = roundtrip(&profile(vec![sample(
        leak_stack(),
        1,
        labels(4242, "nginx", "socket", "c0ffee"),
    )]));
    let smp = &p.sample[0];
    assert_eq!(smp.label.len(), 4);
    let pid = label(&p, smp, "pid");
    assert_eq!(
        (pid.num, pid.str, pid.num_unit),
        (4242, 0, 0),
        "pid is a number, unit left to pprof"
    );
    for (key, want) in [("comm", "nginx"), ("kind", "socket"), ("container", "c0ffee")] {
        let l = label(&p, smp, key);
        assert_eq!((s(&p, l.str), l.num), (want, 0), "{key}");
    }
}

#[test]
fn hostile_names_round_trip() {
    let comm = "a\nb\"c\\d";
    let bad = b"/tmp/bad\xff\n.so".to_vec();
    let odd = "/tmp/new\nline \"q\" back\\slash.so";
    let stack = vec![
        Frame {
            module_bytes: bad.clone(),
            ..frame("0x7f0000000001", Some("f"), Some(&String::from_utf8_lossy(&bad)))
        },
        Frame {
            module_bytes: odd.as_bytes().to_vec(),
            ..frame("0x7f0000000002", Some("g"), Some(odd))
        },
        frame("0x7f0000000003", Some("h"), Some("/tmp/only\nmodule.so")),
    ];
    let p = roundtrip(&profile(vec![sample(stack, 1, labels(1, comm, "file", ""))]));
    assert_eq!(
        s(&p, label(&p, &p.sample[0], "comm").str),
        comm,
        "label strings go in as they are"
    );
    let escaped = escape_bytes(&bad);
    assert_eq!(escaped, "/tmp/bad\\xff\\n.so");
    mapping(&p, &escaped);
    mapping(&p, odd);
    mapping(&p, "/tmp/only\nmodule.so");
    assert_eq!(p.mapping.len(), 3);
}

#[test]
fn samples_without_a_stack_are_kept() {
    let p = roundtrip(&profile(vec![
        sample(leak_stack(), 2, labels(42, "nginx", "file", "")),
        sample(Vec::new(), 7, labels(42, "nginx", "pipe", "")),
    ]));
    assert_eq!(p.sample.len(), 2);
    assert!(p.sample[1].location_id.is_empty());
    assert_eq!(p.sample[1].value, [7]);
    assert_eq!(s(&p, label(&p, &p.sample[1], "kind").str), "pipe");
}

#[test]
fn go_tool_pprof_reads_it() {
    let go_works = std::process::Command::new("go")
        .arg("version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !go_works {
        // Under CI (`cargo xtask setup` installs golang-go) a skip would hide a failure.
        assert!(
            !std::env::var("CI").is_ok_and(|v| v == "true" || v == "1"),
            "go_tool_pprof_reads_it: go is not installed (CI=true: a skip is a failure)"
        );
        println!("skipped: go not installed");
        return;
    }
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
    let path = dir.path().join("fds.pb.gz");
    let bytes = encode(&profile(vec![
        sample(leak_stack(), 3, labels(42, "nginx", "file", "")),
        sample(Vec::new(), 1, labels(43, "sshd", "socket", "")),
    ]));
    std::fs::write(&path, bytes).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
    let out = std::process::Command::new("go")
        .args(["tool", "pprof", "-raw"])
        .arg(&path)
        // Offline and quiet: no symbolization attempts, no $HOME/pprof copies.
        .env("PPROF_TMPDIR", dir.path())
        .env("PPROF_BINARY_PATH", dir.path())
        .output()
        .unwrap_or_else(|e| panic!("go tool pprof: {e}"));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "go tool pprof failed: {stderr}");
    for want in [
        "inuse_objects/count",
        "open_log",
        "main",
        "pid:[42]",
        "comm:[nginx]",
        "server",
    ] {
        assert!(
            stdout.contains(want),
            "{want:?} missing from go tool pprof -raw:\n{stdout}\n{stderr}"
        );
    }
}

#[test]
fn python_frames_are_functions_with_file_and_line_in_a_python_mapping() {
    let py = |function: &str, line: u32| Frame::python(function, "/srv/app/pool.py", Some(line));
    // A recursion: the same function and line twice in a row is two frames, not an inline pair.
    let frames = vec![
        sourced("0x7f0000001010", "open", "io/open.c", 12, LIBC, "aabbcc"),
        py("Pool.get", 34),
        py("walk", 20),
        py("walk", 20),
        py("<module>", 97),
        sourced("0x55d0c0ffee10", "main", "src/main.c", 7, APP, "0123456789abcdef"),
    ];
    let p = roundtrip(&profile(vec![sample(frames, 3, labels(7, "python3.11", "file", ""))]));
    let ids = &p.sample[0].location_id;
    assert_eq!(ids.len(), 6, "one location per frame");
    let names: Vec<Vec<String>> = ids.iter().map(|id| line_names(&p, location(&p, *id))).collect();
    assert_eq!(names[1], vec!["Pool.get".to_owned()]);
    assert_eq!(names[2], names[3]);
    let loc = location(&p, ids[1]);
    let f = function(&p, loc.line[0].function_id);
    assert_eq!((s(&p, f.filename), loc.line[0].line), ("/srv/app/pool.py", 34));
    let m = mapping(&p, "[python]");
    assert_eq!(loc.mapping_id, m.id);
    assert!(m.has_functions && m.has_filenames && m.has_line_numbers);
    // The main binary is still the first mapping, not the Python one.
    assert_eq!(s(&p, p.mapping[0].filename), APP);
}
