//! A stack in a report: built with its id on the ingest task (no symbolization there), resolved
//! to frames afterwards by the symbolizer worker.

use std::ops::Deref;

use serde::{Serialize, Serializer};

use super::frame::Frame;
use crate::state::StackId;

/// The stack of a site, incident, orphan group or lock holder. Serialized as its frames.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Stack {
    pub id: StackId,
    /// Innermost first; empty until resolved (and for `StackId::NONE`).
    pub frames: Vec<Frame>,
}

impl Stack {
    pub fn unresolved(id: StackId) -> Self {
        Stack { id, frames: Vec::new() }
    }
}

impl From<Vec<Frame>> for Stack {
    /// Frames known already (tests, golden files).
    fn from(frames: Vec<Frame>) -> Self {
        Stack {
            id: StackId::NONE,
            frames,
        }
    }
}

impl Deref for Stack {
    type Target = [Frame];
    fn deref(&self) -> &[Frame] {
        &self.frames
    }
}

impl Serialize for Stack {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(&self.frames)
    }
}
