//! The text and JSON reports, pinned; control bytes never reach a terminal; JSON is lossless;
//! every loss is named.

use super::{pin, render, sample};
use crate::{
    model::Report,
    output::{Format, Heading, write},
};

fn check(name: &str, format: Format) {
    pin(name, &render(format, &sample()));
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
    assert!(text.contains("/run/app\\n\\x1b[1m.lock\\xff"), "lock file name escaped");
    assert!(
        text.contains(" /opt/new\\nlib\\x1b[0m\\xff.so+0x1a2b"),
        "an unresolved frame is its module (escaped) plus its file offset"
    );
    assert!(!text.contains("??"), "never a bare ??");
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
    assert_eq!(v["locks"][0]["file"], "/run/app\n\u{1b}[1m.lock\u{fffd}");
    assert_eq!(v["locks"][0]["file_hex"], "2f72756e2f6170700a1b5b316d2e6c6f636bff");
    let odd_frame = &v["outstanding"][2]["stack"][0];
    assert_eq!(odd_frame["module"], "/opt/new\nlib\u{1b}[0m\u{fffd}.so");
    assert_eq!(odd_frame["module_hex"], "2f6f70742f6e65770a6c69621b5b306dff2e736f");
    assert!(v["suspects"][0]["stack"][0].get("module_hex").is_none());
}

#[test]
fn every_loss_is_named_in_the_text_report_and_none_is_quiet() {
    let render = |r: &Report| {
        let mut out = Vec::new();
        write(&mut out, Format::Text, r, &Heading::default()).unwrap_or_else(|e| panic!("{e}"));
        String::from_utf8(out).unwrap_or_default()
    };
    let mut r = sample();
    r.lost_events = 0;
    r.losses = crate::model::Losses::default();
    assert!(!render(&r).contains("WARNING"), "nothing lost, nothing to warn of");
    // Stacks lost but no whole record: no "events were lost", the cause is still named.
    r.losses.stack_not_captured = 4;
    let text = render(&r);
    assert!(!text.contains("events were lost"), "{text}");
    assert!(
        text.contains("WARNING: losses by cause: ring_buffer_full=0 traced_map_full=0 stack_not_captured=4 undecodable=0 map_update_failed=0"),
        "{text}"
    );
}
