//! The table against real format files, copied from /sys/kernel/tracing/events/*/format on a
//! Linux 6.18.44 machine (formats/CATEGORY.EVENT.format).

use super::*;

/// (category, event, format text) for every event the programs read.
const FORMATS: &[(&str, &str, &str)] = &[
    ("task", "task_newtask", include_str!("formats/task.task_newtask.format")),
    (
        "sched",
        "sched_process_exec",
        include_str!("formats/sched.sched_process_exec.format"),
    ),
    (
        "sched",
        "sched_process_exit",
        include_str!("formats/sched.sched_process_exit.format"),
    ),
    (
        "sched",
        "sched_process_free",
        include_str!("formats/sched.sched_process_free.format"),
    ),
    (
        "filelock",
        "flock_lock_inode",
        include_str!("formats/filelock.flock_lock_inode.format"),
    ),
    (
        "filelock",
        "posix_lock_inode",
        include_str!("formats/filelock.posix_lock_inode.format"),
    ),
    (
        "signal",
        "signal_generate",
        include_str!("formats/signal.signal_generate.format"),
    ),
    (
        "signal",
        "signal_deliver",
        include_str!("formats/signal.signal_deliver.format"),
    ),
];

fn format_of(event: &Event) -> &'static str {
    FORMATS
        .iter()
        .find(|(c, n, _)| *c == event.category && *n == event.name)
        .map(|(_, _, text)| *text)
        .unwrap_or_else(|| panic!("no format file copied for {}/{}", event.category, event.name))
}

#[test]
fn a_format_file_parses_into_every_field_with_offset_and_size() {
    let fields: Vec<FormatField<'_>> = format_fields(format_of(&OFFSETS[0])).collect();
    let f = |name, offset, size| FormatField { name, offset, size };
    assert_eq!(
        fields,
        [
            f("common_type", 0, 2),
            f("common_flags", 2, 1),
            f("common_preempt_count", 3, 1),
            f("common_pid", 4, 4),
            f("pid", 8, 4),
            f("comm", 12, 16),
            f("clone_flags", 32, 8),
            f("oom_score_adj", 40, 2),
        ]
    );
}

#[test]
fn names_are_found_behind_pointers_arrays_and_data_locs() {
    let exec: Vec<&str> = format_fields(include_str!("formats/sched.sched_process_exec.format"))
        .map(|f| f.name)
        .collect();
    assert_eq!(exec[4..], ["filename", "pid", "old_pid"]);
    let lock: Vec<&str> = format_fields(include_str!("formats/filelock.flock_lock_inode.format"))
        .map(|f| f.name)
        .collect();
    assert_eq!(lock[4..8], ["fl", "i_ino", "s_dev", "blocker"]);
    // Odd spacing and a pointer glued to its name still parse.
    let odd = "\tfield:struct foo *bar[4];\toffset:16;  size:32;\tsigned:0;\nprint fmt: \"x\"";
    assert_eq!(
        format_fields(odd).collect::<Vec<_>>(),
        [FormatField {
            name: "bar",
            offset: 16,
            size: 32
        }]
    );
    assert_eq!(
        format_fields("name: x\nID: 3\nformat:\n\tfield:int broken;\tsize:4;").count(),
        0
    );
}

#[test]
fn every_event_read_has_a_copied_format_and_matches_it() {
    assert_eq!(OFFSETS.len(), FORMATS.len());
    for event in OFFSETS {
        assert_eq!(
            check_format(event, format_of(event)),
            Ok(()),
            "{}/{}",
            event.category,
            event.name
        );
    }
}

#[test]
fn a_moved_field_is_named_with_both_places() {
    let event = &OFFSETS[0];
    let moved = format_of(event).replace("offset:32;\tsize:8;", "offset:40;\tsize:8;");
    let err = check_format(event, &moved);
    assert_eq!(
        err,
        Err(FormatMismatch::Moved {
            category: "task",
            event: "task_newtask",
            field: "clone_flags",
            expected_offset: 32,
            expected_size: 8,
            found_offset: 40,
            found_size: 8,
        })
    );
    let text = err.map_err(|e| e.to_string()).err().unwrap_or_default();
    assert!(
        text.contains("task/task_newtask") && text.contains("clone_flags") && text.contains("offset 32"),
        "{text}"
    );
    let resized = format_of(event).replace(
        "field:pid_t pid;\toffset:8;\tsize:4;",
        "field:pid_t pid;\toffset:8;\tsize:8;",
    );
    assert!(matches!(
        check_format(event, &resized),
        Err(FormatMismatch::Moved {
            field: "pid",
            found_size: 8,
            ..
        })
    ));
}

#[test]
fn a_missing_field_is_named() {
    let event = &OFFSETS[2];
    assert_eq!(event.name, "sched_process_exit");
    let gone = format_of(event).replace("group_dead", "group_gone");
    assert_eq!(
        check_format(event, &gone),
        Err(FormatMismatch::Missing {
            category: "sched",
            event: "sched_process_exit",
            field: "group_dead",
            offset: 32,
        })
    );
}
