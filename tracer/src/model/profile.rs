//! In-use profiles for pprof backends: what is open or held now, by the stack that allocated it
//! (built by `analysis::profile`, encoded by `output::pprof`).

use super::Stack;
use crate::state::StackId;

/// Which profile: the paths under `/debug/pprof/`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ProfileKind {
    /// Descriptors open now, by allocation stack.
    Fds,
    /// SysV IPC objects that exist now (orphans included), by creating stack.
    Sysv,
    /// File locks held now, by the stack that took them.
    Locks,
}

impl ProfileKind {
    pub fn from_path(name: &str) -> Option<Self> {
        match name {
            "fds" => Some(ProfileKind::Fds),
            "sysv" => Some(ProfileKind::Sysv),
            "locks" => Some(ProfileKind::Locks),
            _ => None,
        }
    }

    /// The unit counted, for the profile's comments.
    pub fn noun(self) -> &'static str {
        match self {
            ProfileKind::Fds => "open file descriptors",
            ProfileKind::Sysv => "SysV IPC objects",
            ProfileKind::Locks => "file locks held",
        }
    }
}

#[derive(Clone, Debug, PartialEq)]
pub enum LabelValue {
    Str(String),
    /// Raw bytes (a command name may hold anything): escaped where the profile is encoded.
    Bytes(Vec<u8>),
    Num(i64),
}

#[derive(Clone, Debug, PartialEq)]
pub struct ProfileSample {
    pub stack: Stack,
    /// How many are open (or held) now from this stack.
    pub value: i64,
    /// `pid` (num), `comm`, `kind`, `container` (str); one value per key.
    pub labels: Vec<(&'static str, LabelValue)>,
}

/// An in-use snapshot (no delta).
#[derive(Clone, Debug, PartialEq)]
pub struct Profile {
    pub kind: ProfileKind,
    /// Wall-clock time of the snapshot, ns since the Unix epoch.
    pub time_unix_ns: i64,
    pub samples: Vec<ProfileSample>,
    /// Said in the profile's comments (stack mode, sampling, what is left out).
    pub comments: Vec<String>,
}

impl Profile {
    pub fn stack_ids(&self) -> Vec<StackId> {
        let mut ids: Vec<StackId> = self
            .samples
            .iter()
            .map(|s| s.stack.id)
            .filter(|id| *id != StackId::NONE)
            .collect();
        ids.sort_unstable();
        ids.dedup();
        ids
    }

    /// Fills in every sample's frames (those `frames` knows).
    pub fn resolve_stacks(&mut self, mut frames: impl FnMut(StackId) -> Option<Vec<super::Frame>>) {
        for s in &mut self.samples {
            if let Some(f) = frames(s.stack.id) {
                s.stack.frames = f;
            }
        }
    }
}
