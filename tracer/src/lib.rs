//! tracer: finds resource leaks in live Linux processes.
//!
//! Data flows one way: `probes` (load and attach) -> `ingest` (ring buffer -> records) ->
//! `state` (per-process tables) -> `analysis` (leak suspects) -> `symbolize` -> `output`.

pub mod state;
pub mod probes;
