//! Incidents in the report: calls that failed on a limit, select beyond FD_SETSIZE, descriptor
//! misuse (with the earlier close), each with its stack.

use serde::Serialize;

use super::stack::Stack;
use crate::state::incidents::IncidentKind;

#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct IncidentReport {
    pub pid: u32,
    pub kind: IncidentKind,
    pub syscall: String,
    /// Symbolic errno (EMFILE, EBADF, ...), absent when the call did not fail.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub errno: Option<&'static str>,
    pub count: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fd: Option<i64>,
    /// `nfds` for select beyond FD_SETSIZE; open fds for EMFILE; ms waited for lock failures.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub value: Option<u64>,
    pub first_age_ms: u64,
    pub last_age_ms: u64,
    /// A process holding the lock when a lock call failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub holder_pid: Option<u32>,
    pub stack: Stack,
    /// For double close and use after close: the close that came first.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub previous_close: Option<PreviousClose>,
    /// For EMFILE/ENFILE: the allocation site holding the most of the process's fds then.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub top_site: Option<TopSiteReport>,
}

/// What filled the fd table when an allocation failed with EMFILE/ENFILE.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct TopSiteReport {
    pub kind: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub family: Option<&'static str>,
    /// Fds open from the site at the failure.
    pub count: u64,
    /// Its share of the process's open fds then (0..1).
    pub share: f64,
    pub before_attach: bool,
    pub stack: Stack,
}

#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct PreviousClose {
    pub tid: u32,
    pub age_ms: u64,
    /// Empty unless `--close-stacks` was given.
    pub stack: Stack,
}
