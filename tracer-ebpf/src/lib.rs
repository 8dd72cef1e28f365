//! Empty on the host: `tracer/build.rs` depends on this package so that cargo rebuilds the agent
//! when the programs change; the programs themselves are the `tracer` binary target.
#![no_std]
