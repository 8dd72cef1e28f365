//! The condensed text report: processes with something to say listed, the rest summed per
//! parent and command; `--all`; colour only when asked.

use std::collections::BTreeMap;

use super::{pin, sample};
use crate::{
    model::{ProcessSummary, Report, text_and_hex},
    output::{Format, Heading, write},
};

/// A forking server's trace: 200 short-lived children that left nothing, idle processes, a
/// parent with no zombie left and signals that merged nothing, beside the sample's leaker.
fn crowded() -> Report {
    let mut r = sample();
    // Losses are pinned by report.txt; left out here so this file pins only the condensing.
    r.lost_events = 0;
    r.losses = crate::model::Losses::default();
    let child = |pid: u32, parent: u32, comm: &[u8], exited: bool| {
        let (c, hex) = text_and_hex(comm);
        ProcessSummary {
            pid,
            comm: c,
            comm_hex: hex,
            comm_bytes: comm.to_vec(),
            open_fds: 0,
            fd_soft_limit: Some(1024),
            fd_hard_limit: Some(4096),
            exited,
            by_kind: BTreeMap::new(),
            allocations: 1,
            limit_failures: 0,
            zombies: 0,
            parent: Some(parent),
            runtime: None,
        }
    };
    for i in 0..200 {
        r.processes.push(child(5000 + i, 4242, b"worker\x1b[2J;x", true));
    }
    for i in 0..3 {
        r.processes.push(child(7000 + i, 1, b"idle\nd", false));
    }
    // Near its limit with nothing else to say: listed.
    let mut full = child(7100, 1, b"pool", false);
    full.open_fds = 900;
    r.processes.push(full);
    let mut calm = r.zombies[0].clone();
    calm.pid = 7001;
    (calm.zombies, calm.growing, calm.sigchld.coalesced) = (0, false, 0);
    r.zombies.push(calm);
    let mut quiet = r.signals[0].clone();
    quiet.pid = 7002;
    quiet.signal = "SIGTERM".into();
    quiet.counts.coalesced = 0;
    r.signals.push(quiet);
    r
}

fn render_with(r: &Report, all: bool, color: bool) -> String {
    let mut out = Vec::new();
    let heading = Heading {
        elapsed_s: 12.5,
        label: "final",
        stack_mode: "dwarf",
        all,
        color,
    };
    write(&mut out, Format::Text, r, &heading).unwrap_or_else(|e| panic!("{e}"));
    String::from_utf8(out).unwrap_or_else(|e| panic!("{e}"))
}

#[test]
fn condensed_report_is_pinned_and_sums_children_that_left_nothing() {
    let r = crowded();
    let text = render_with(&r, false, false);
    pin("report_condensed.txt", text.as_bytes());
    assert!(
        text.contains("  200 children of 4242 (worker\\x1b[2J;x): exited, nothing left open\n"),
        "{text}"
    );
    assert!(
        text.contains("  3 children of 1 (idle\\nd): running, nothing to report\n"),
        "{text}"
    );
    assert!(
        text.contains("\n7100     pool"),
        "fds above 80% of the limit: listed\n{text}"
    );
    assert!(!text.contains("\n5000 "), "{text}");
    assert!(
        !text.contains("pid 7001:") && !text.contains("SIGTERM"),
        "nothing to say: {text}"
    );
    assert!(
        text.contains("pid 4242: 80 zombie(s)") && text.contains("SIGCHLD"),
        "{text}"
    );
    // JSON keeps every process.
    let mut json = Vec::new();
    write(&mut json, Format::Json, &r, &Heading::default()).unwrap_or_else(|e| panic!("{e}"));
    let v: serde_json::Value = serde_json::from_slice(&json).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(v["processes"].as_array().map(Vec::len), Some(207));
    assert_eq!(v["signals"].as_array().map(Vec::len), Some(2));
}

#[test]
fn all_lists_every_process_and_colour_only_when_asked() {
    let r = crowded();
    let all = render_with(&r, true, false);
    assert_eq!(all.lines().filter(|l| l.starts_with("5")).count(), 200, "{all}");
    assert!(all.contains("pid 7001:") && all.contains("SIGTERM"));
    assert!(!all.contains("nothing left open"));
    let plain = render_with(&r, false, false);
    assert!(!plain.contains('\x1b'), "no colour unless asked");
    let colored = render_with(&r, false, true);
    assert!(
        colored.contains("\x1b[1m\x1b[38;5;9m[1] pid 4242: 120 x file open")
            || colored.contains("\x1b[38;5;9m\x1b[1m[1] pid 4242"),
        "the suspect in red:\n{colored:?}"
    );
    // Escapes come only from the colouring: names stay escaped, and removing the colour
    // gives the plain report back.
    let stripped = colored
        .split('\x1b')
        .enumerate()
        .map(|(i, part)| {
            if i == 0 {
                part
            } else {
                part.split_once('m').map_or(part, |(_, rest)| rest)
            }
        })
        .collect::<String>();
    assert_eq!(stripped, plain);
}

#[test]
fn no_color_and_pipes_turn_colour_off() {
    use crate::output::color_wanted_with as wanted;
    let set = Some(std::ffi::OsStr::new("1"));
    assert!(wanted(true, None) && !wanted(false, None), "a terminal only");
    assert!(!wanted(true, set) && !wanted(false, set), "never with NO_COLOR");
    assert!(
        wanted(true, Some(std::ffi::OsStr::new(""))),
        "an empty NO_COLOR is unset (no-color.org)"
    );
}
