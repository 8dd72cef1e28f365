//! The rooms of `tracer/src` and the one direction of their dependencies: the table the layout
//! check (`cargo xtask layout`) holds every `crate::ROOM` reference against.
//!
//! A room is a top-level module of `tracer/src` (a folder `X/` or a file `X.rs`). Rooms are
//! grouped in layers, top to bottom; a room may import rooms of lower layers only. Rooms of one
//! layer may not import each other, except for the pairs in [`SAME_LAYER`]. A room missing from
//! the table fails the check: a new room is placed here first.

/// The layers, top to bottom.
pub const LAYERS: &[&[&str]] = &[
    // The binary and the library's root: they wire everything.
    &["main", "lib"],
    // Front-ends: watch, run, agent, top, floor; none imports another.
    &["modes"],
    // Parsing the command line (the modes take its argument types).
    &["cli"],
    // The agent's endpoints: given plain options by the agent mode, never the CLI's types.
    &["http"],
    // Threads and messages: the ingest task, the symbolizer worker, the agent's own health.
    &["runtime"],
    // The only room that formats or escapes.
    &["output"],
    // State -> model: suspects, trends, scoring; no I/O.
    &["analysis"],
    // Per-record dispatch: the one room that holds probes, procfs, state and stacks together.
    &["tracker"],
    // The stack store, and resolving stacks to frames.
    &["stacks"],
    // Loading and attaching the programs; ring buffers -> records.
    &["probes", "ingest"],
    // Every /proc and /proc/sys read.
    &["procfs"],
    // The report types shared by analysis, stacks and output; typed with the state's kinds.
    &["model"],
    // Pure per-process tables, their kinds and ids.
    &["state"],
    // A leaf library: maps, unwinding, symbols, Python.
    &["symbolize"],
];

/// (from, to): rooms of one layer that may import each other in that direction. None so far.
pub const SAME_LAYER: &[(&str, &str)] = &[];

/// The layer of `room` (0 at the top), if the table has it.
pub fn layer(room: &str) -> Option<usize> {
    LAYERS.iter().position(|rooms| rooms.contains(&room))
}

/// Whether code in room `from` may import room `to`.
pub fn may_import(from: &str, to: &str) -> bool {
    if from == to {
        return true;
    }
    match (layer(from), layer(to)) {
        (Some(f), Some(t)) => t > f || (t == f && SAME_LAYER.contains(&(from, to))),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lower_layers_only_and_not_sideways() {
        assert!(may_import("modes", "output"));
        assert!(may_import("analysis", "model"));
        assert!(may_import("tracker", "probes"));
        assert!(may_import("state", "state"));
        assert!(!may_import("analysis", "output"), "upwards");
        assert!(!may_import("probes", "ingest"), "sideways in one layer");
        assert!(!may_import("agent", "state"), "not a room");
        assert!(!may_import("state", "agent"), "not a room");
    }

    #[test]
    fn every_room_is_in_one_layer() {
        let all: Vec<&str> = LAYERS.iter().flat_map(|l| l.iter().copied()).collect();
        for (i, room) in all.iter().enumerate() {
            assert!(!all[i + 1..].contains(room), "{room} is listed twice");
        }
        for (from, to) in SAME_LAYER {
            assert_eq!(layer(from), layer(to), "{from} -> {to} is not within one layer");
        }
    }
}
