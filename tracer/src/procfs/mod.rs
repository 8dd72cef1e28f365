//! The `/proc` edge: every `/proc` and `/proc/sys` read (through the `procfs` crate where it
//! serves), as plain functions returning the state's types. No policy here.

pub mod clock;
pub mod locks;
pub mod process;
pub mod sockets;
pub mod sysv;
pub mod tasks;
