//! The report contract: the types analysis builds, the stack resolver fills in and output
//! renders. Plain data, no I/O, no formatting (the JSON contract is their `Serialize`).

pub mod bytes;
pub mod duration;
pub mod escalation;
pub mod frame;
pub mod health;
pub mod incidents;
pub mod ipc;
pub mod kinds;
pub mod locks;
pub mod losses;
pub mod metrics;
pub mod profile;
pub mod report;
pub mod signals;
pub mod stack;
pub mod stalls;
pub mod system;

pub use bytes::text_and_hex;
pub use frame::Frame;
pub use losses::Losses;
pub use report::{ProcessSummary, Report, ReportOptions, SiteReport};
pub use stack::Stack;
