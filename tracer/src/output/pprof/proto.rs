//! The messages of pprof's `profile.proto` (package `perftools.profiles`, proto3), generated at
//! build time by prost-build from `tracer/proto/profile.proto` (see `tracer/build.rs`).
//!
//! The proto file is google/pprof's, as Debian ships it in golang-github-google-pprof-dev
//! 0.0~git20211008.947d60d. Later upstream versions add `Line.column` and `Profile.doc_url`,
//! which tracer does not set.

include!(concat!(env!("OUT_DIR"), "/perftools.profiles.rs"));
