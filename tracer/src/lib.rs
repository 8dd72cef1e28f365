//! tracer: finds resource leaks in live Linux processes.
//!
//! Data flows one way, and the rooms show it (a room uses the rooms below it, never one above;
//! `cargo xtask layout` checks it against the table in `xtask/src/layers.rs`):
//!
//! - `modes`: the front-ends (`watch`, `run`, `agent`, `top`, `floor`); none imports another.
//! - `cli`: the command line (clap); `http`: the agent's endpoints.
//! - `runtime`: the ingest task, the symbolizer worker, the agent's own cost.
//! - `output`: text, JSON, folded, SVG, pprof, Prometheus: the only place that formats or escapes.
//! - `analysis`: state -> model (suspects, trends, scoring), no I/O.
//! - `tracker`: per-record dispatch, the one room that holds probes, procfs, state and stacks.
//! - `stacks`: the stack store, and resolving stacks to frames through `symbolize`.
//! - `probes` (load and attach the kernel programs), `ingest` (ring buffer -> records).
//! - `procfs`: every `/proc` and `/proc/sys` read.
//! - `model`: the report types; `state`: pure per-process tables; `symbolize`: a leaf library.

pub mod analysis;
pub mod cli;
pub mod http;
pub mod ingest;
pub mod model;
pub mod modes;
pub mod output;
pub mod probes;
pub mod procfs;
pub mod runtime;
pub mod stacks;
pub mod state;
pub mod symbolize;
pub mod tracker;
