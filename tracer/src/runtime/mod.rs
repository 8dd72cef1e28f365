//! Threads and messages: the ingest task (one thread that owns the tracker and answers queries
//! between drains), the symbolizer worker (stacks to frames off the ingest thread), and what the
//! agent process itself costs.

pub mod cost;
pub mod escalation;
pub mod symbolizer;
pub mod task;
