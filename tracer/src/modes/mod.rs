//! The front-ends: `watch`, `run`, `agent`, `top` and the benchmark's `floor`. Each is a client
//! of the ingest task (`runtime`); none imports another. What `watch` and `run` share lives in
//! `capture` and `reporter`, starting a held command in `child`.

pub mod agent;
pub mod capture;
pub mod child;
pub mod floor;
pub mod reporter;
pub mod run;
pub mod top;
pub mod watch;
