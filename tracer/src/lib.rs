//! tracer: finds resource leaks in live Linux processes.
//!
//! Data flows one way, and the modules show it: `probes` (load and attach the kernel programs) ->
//! `ingest` (ring buffer -> decoded records) -> `state` (per-process fd tables and allocation
//! sites) -> `analysis` (leak suspects) -> `symbolize` (stacks -> frames) -> `output`.
//! `agent` wires them together (its ingest task owns them; everything else is a client);
//! `session` runs `watch` and `run`, `daemon` runs `agent` with its `http` endpoints; `cli`
//! parses.

pub mod agent;
pub mod analysis;
pub mod child;
pub mod cli;
pub mod daemon;
pub mod http;
pub mod ingest;
pub mod output;
pub mod probes;
pub mod session;
pub mod state;
pub mod symbolize;
pub mod top;
