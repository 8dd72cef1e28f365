//! Allocation stacks: the store that interns them (one `StackId` per distinct process and
//! return addresses, normalized while the process lives), the kernel's frame-pointer stack ids
//! the agent has read, and resolving a stored stack to frames through `symbolize`.

pub mod fp_ids;
mod resolve;
pub mod store;

pub use store::{StackStore, StoredStack};
