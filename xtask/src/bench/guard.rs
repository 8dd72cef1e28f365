//! A child process that cannot outlive the code that started it: dropped on any path (an error
//! returned with `?` included), it is stopped the way `stop` does it (SIGINT, then SIGKILL).

use std::{
    ops::{Deref, DerefMut},
    process::{Child, Command, ExitStatus},
};

use super::stop;
use crate::Result;

pub(super) struct Guarded {
    child: Child,
}

impl Guarded {
    /// Spawns `cmd`; `what` names it in the error.
    pub(super) fn spawn(cmd: &mut Command, what: &str) -> Result<Self> {
        let child = cmd.spawn().map_err(|e| format!("starting {what}: {e}"))?;
        Ok(Guarded { child })
    }

    /// Stops it now (if it still runs) and returns how it ended.
    pub(super) fn finish(mut self) -> Option<ExitStatus> {
        self.halt()
    }

    /// Stops it (if it still runs) and returns how it ended; it stays guarded.
    pub(super) fn halt(&mut self) -> Option<ExitStatus> {
        if let Ok(None) = self.child.try_wait() {
            stop(&mut self.child);
        }
        self.child.try_wait().ok().flatten()
    }
}

impl Deref for Guarded {
    type Target = Child;

    fn deref(&self) -> &Child {
        &self.child
    }
}

impl DerefMut for Guarded {
    fn deref_mut(&mut self) -> &mut Child {
        &mut self.child
    }
}

impl Drop for Guarded {
    fn drop(&mut self) {
        let _ = self.halt();
    }
}
