//! The syscalls the tracer follows: what the kernel captures for each ([`Capture`], packed into
//! the `CAPTURE` array by syscall number), what each means for the traced process's state
//! ([`Effect`], [`KindHint`]) and the table that ties them to numbers ([`X86_64`], the agent's
//! side only: its numbers come from libc, which has none for the BPF target).
//!
//! The agent writes [`Capture::bits`] for every entry into the `CAPTURE` array; a zero entry means
//! "not interesting" and costs the kernel one array lookup.

mod abi;
mod capture;
mod effect;
#[cfg(feature = "user")]
mod table;

pub use abi::*;
pub use capture::*;
pub use effect::*;
#[cfg(feature = "user")]
pub use table::*;

#[cfg(test)]
mod tests;
