//! The contract between the kernel programs (`tracer-ebpf`) and the agent (`tracer`).
//!
//! Every record the kernel writes into the ring buffer starts with a [`record::RecordHeader`] whose
//! `kind` says which `#[repr(C)]` payload follows. One module per resource: [`fd`] for the
//! syscall records that create and close descriptors, [`process`] for fork/exec/exit/reap,
//! [`lock`] for file locks, [`signal`] for signals.
//! [`syscalls`] is the table that tells the kernel what to capture for each syscall number and
//! tells the agent what the syscall does to an fd table. [`tracepoints`] is where the programs
//! read plain tracepoints' fields, checked against the running kernel at load.
#![cfg_attr(not(feature = "user"), no_std)]

pub mod config;
pub mod fd;
pub mod lock;
pub mod process;
pub mod python;
pub mod record;
pub mod sampling;
pub mod signal;
pub mod syscalls;
pub mod tracepoints;

#[cfg(feature = "user")]
pub mod decode;
