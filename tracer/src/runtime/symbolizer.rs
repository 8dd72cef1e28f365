//! The symbolizer worker: a thread of its own that owns the symbol caches and turns the
//! normalized stacks a query handed out into frames, so that symbolization (reading DWARF, which
//! can take seconds for a big binary) never runs on the ingest task.

use std::{
    collections::HashMap,
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
        mpsc,
    },
};

use tokio::sync::oneshot;

use super::task::{ProfileSnapshot, ReportSnapshot};
use crate::{
    model::{Frame, Report, profile::Profile},
    stacks::StoredStack,
    state::StackId,
    symbolize::Symbols,
};

/// Frames of each stack asked for.
pub type Resolved = HashMap<StackId, Vec<Frame>>;

struct Job {
    stacks: Vec<(StackId, Arc<StoredStack>)>,
    reply: oneshot::Sender<Resolved>,
}

/// What the worker's caches evicted (for the agent's metrics).
#[derive(Debug, Default)]
pub struct SymbolizerStats {
    pub evicted_locations: AtomicU64,
    pub file_cache_resets: AtomicU64,
}

/// A handle to the worker; clones share it. The thread ends when the last handle is dropped.
#[derive(Clone)]
pub struct SymbolizerWorker {
    tx: mpsc::Sender<Job>,
    pub stats: Arc<SymbolizerStats>,
}

impl SymbolizerWorker {
    pub fn spawn() -> std::io::Result<Self> {
        let (tx, rx) = mpsc::channel::<Job>();
        let stats = Arc::new(SymbolizerStats::default());
        let shared = stats.clone();
        std::thread::Builder::new()
            .name("tracer-symbolize".into())
            .spawn(move || {
                let mut symbols = Symbols::new();
                while let Ok(job) = rx.recv() {
                    let resolved: Resolved = job.stacks.iter().map(|(id, s)| (*id, s.frames(&mut symbols))).collect();
                    // The client may have given up waiting (a closed connection): nothing to do.
                    let _ = job.reply.send(resolved);
                    symbols.trim();
                    shared
                        .evicted_locations
                        .store(symbols.evicted_locations, Ordering::Relaxed);
                    shared
                        .file_cache_resets
                        .store(symbols.module_cache_resets, Ordering::Relaxed);
                }
            })?;
        Ok(SymbolizerWorker { tx, stats })
    }

    /// Frames of `stacks`; empty if the worker is gone (the stacks are then shown unresolved).
    pub async fn resolve(&self, stacks: Vec<(StackId, Arc<StoredStack>)>) -> Resolved {
        if stacks.is_empty() {
            return Resolved::new();
        }
        let (reply, rx) = oneshot::channel();
        if self.tx.send(Job { stacks, reply }).is_err() {
            return Resolved::new();
        }
        rx.await.unwrap_or_default()
    }

    /// A report snapshot with its stacks resolved: the one way every client (watch, run, top,
    /// the endpoints) turns what the ingest task answered into a report to render.
    pub async fn report(&self, snapshot: ReportSnapshot) -> Report {
        let ReportSnapshot { mut report, stacks } = snapshot;
        let resolved = self.resolve(stacks).await;
        report.resolve_stacks(|id| resolved.get(&id).cloned().unwrap_or_default());
        report
    }

    /// A profile snapshot with its stacks resolved.
    pub async fn profile(&self, snapshot: ProfileSnapshot) -> Profile {
        let ProfileSnapshot { mut profile, stacks } = snapshot;
        let resolved = self.resolve(stacks).await;
        profile.resolve_stacks(|id| resolved.get(&id).cloned());
        profile
    }
}
