//! Golden files pin every output format, hostile names included. Regenerate after an intended
//! change with `UPDATE_GOLDEN=1 cargo test -p tracer output::`.

use std::collections::BTreeMap;

use super::{Format, Heading, write};
use crate::{
    analysis::{Frame, ProcessSummary, Report, SiteReport, report::text_and_hex},
    state::StackId,
};

fn site(pid: u32, count: u32, growth: f64, example: &[u8], stack: Vec<Frame>) -> SiteReport {
    let (ex, hex) = text_and_hex(example);
    SiteReport {
        pid,
        resource: "fd",
        kind: "file",
        family: None,
        count,
        allocations: u64::from(count) + 3,
        growth_per_min: growth,
        example: Some(ex),
        example_hex: hex,
        example_bytes: Some(example.into()),
        oldest_age_ms: 61_500,
        time_to_limit_s: (growth > 0.0).then_some(98.5),
        before_attach: false,
        stack,
        stack_id: StackId(1),
    }
}

fn frame(addr: u64, f: &str, file: &str, line: u32) -> Frame {
    Frame {
        address: format!("{addr:#x}"),
        function: Some(f.into()),
        file: Some(file.into()),
        line: Some(line),
        module: Some("/usr/bin/svc".into()),
        inlined: false,
    }
}

fn sample() -> Report {
    let stack = vec![
        Frame {
            address: "0x7f0000001011".into(),
            function: Some("__libc_open64".into()),
            file: None,
            line: None,
            module: Some("/usr/lib/x86_64-linux-gnu/libc.so.6".into()),
            inlined: false,
        },
        frame(0x5555_0000_1194, "load_config", "src/config.c", 20),
        frame(0x5555_0000_11ba, "main", "src/main.c", 36),
    ];
    let leak = site(4242, 120, 600.0, b"/etc/new\nline", stack);
    let mut odd = site(
        4242,
        2,
        0.0,
        b"/tmp/\x1b[31mred\xff\\",
        vec![Frame {
            address: "0x1".into(),
            function: None,
            file: None,
            line: None,
            module: None,
            inlined: false,
        }],
    );
    odd.stack_id = StackId(2);
    let mut sock = site(4243, 4, 0.0, b"socket:[991]", Vec::new());
    sock.kind = "socket";
    sock.family = Some("inet6");
    sock.before_attach = true;
    sock.stack_id = StackId::NONE;
    sock.time_to_limit_s = None;
    let mut by_kind = BTreeMap::new();
    by_kind.insert("file", 122);
    let (comm, comm_hex) = text_and_hex(b"svc\xfe\n");
    Report {
        lost_events: 7,
        processes: vec![
            ProcessSummary {
                pid: 4242,
                comm,
                comm_hex,
                comm_bytes: b"svc\xfe\n".to_vec(),
                open_fds: 122,
                fd_soft_limit: Some(1024),
                fd_hard_limit: None,
                exited: false,
                by_kind: by_kind.clone(),
                limit_failures: 0,
            },
            ProcessSummary {
                pid: 4243,
                comm: "child".into(),
                comm_hex: None,
                comm_bytes: b"child".to_vec(),
                open_fds: 4,
                fd_soft_limit: Some(1024),
                fd_hard_limit: Some(4096),
                exited: true,
                by_kind,
                limit_failures: 2,
            },
        ],
        suspects: vec![leak.clone()],
        outstanding: vec![leak, sock, odd],
    }
}

fn check(name: &str, format: Format) {
    let mut out = Vec::new();
    let heading = Heading {
        elapsed_s: 12.5,
        label: "final",
        stack_mode: "dwarf",
    };
    write(&mut out, format, &sample(), &heading).unwrap_or_else(|e| panic!("{e}"));
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("src/output/golden")
        .join(name);
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        std::fs::write(&path, &out).unwrap_or_else(|e| panic!("{e}"));
    }
    let golden =
        std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e} (UPDATE_GOLDEN=1 creates it)", path.display()));
    assert!(golden == out, "{name} changed:\n{}", String::from_utf8_lossy(&out));
}

#[test]
fn text_report_is_pinned() {
    check("report.txt", Format::Text);
}

#[test]
fn json_report_is_pinned() {
    check("report.json", Format::Json);
}

#[test]
fn text_never_carries_raw_control_bytes() {
    let mut out = Vec::new();
    write(&mut out, Format::Text, &sample(), &Heading::default()).unwrap_or_else(|e| panic!("{e}"));
    assert!(!out.contains(&0x1b), "raw escape");
    assert!(std::str::from_utf8(&out).is_ok(), "text output is valid UTF-8");
    let text = String::from_utf8_lossy(&out);
    assert!(text.contains("/etc/new\\nline") && text.contains("\\x1b[31mred\\xff\\\\") && text.contains("svc\\xfe\\n"));
}

#[test]
fn json_is_lossless_for_non_utf8() {
    let mut out = Vec::new();
    write(&mut out, Format::Json, &sample(), &Heading::default()).unwrap_or_else(|e| panic!("{e}"));
    let v: serde_json::Value = serde_json::from_slice(&out).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(v["outstanding"][0]["example"], "/etc/new\nline");
    assert_eq!(v["outstanding"][2]["example_hex"], "2f746d702f1b5b33316d726564ff5c");
    assert_eq!(v["processes"][0]["comm_hex"], "737663fe0a");
    assert!(v["outstanding"][0].get("example_hex").is_none());
    assert_eq!(v["suspects"][0]["stack"][1]["function"], "load_config");
}
