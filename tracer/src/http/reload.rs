//! The web config in force, and its reloads: when the file or a certificate file it names changes
//! (polled: a Kubernetes Secret is updated by swapping a symlink, which inotify on the file would
//! miss) and on SIGHUP. A reload that fails keeps the previous config and says so once; so does
//! one that would switch between TLS and plain HTTP, which takes a restart (the scrapers' scheme
//! changes with it).

use std::{
    os::unix::fs::MetadataExt,
    path::{Path, PathBuf},
    sync::{Arc, Mutex, RwLock},
    time::Duration,
};

use hyper::header::{HeaderName, HeaderValue};
use tokio_rustls::TlsAcceptor;

use super::{
    auth::BasicAuth,
    web_config::{WebConfig, WebConfigError},
};

/// How often the files are looked at (a stat each).
const POLL: Duration = Duration::from_secs(2);

/// What connections and requests are served with, until the next reload.
pub struct Active {
    pub tls: Option<TlsAcceptor>,
    pub auth: Option<BasicAuth>,
    pub headers: Vec<(HeaderName, HeaderValue)>,
}

impl Active {
    fn new(c: WebConfig) -> Active {
        Active {
            tls: c.tls.map(TlsAcceptor::from),
            auth: (!c.users.is_empty()).then(|| BasicAuth::new(c.users)),
            headers: c.headers,
        }
    }
}

/// A file's identity and version: a replaced file (new inode) or a rewritten one (mtime, size).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Stamp {
    dev: u64,
    ino: u64,
    mtime_ns: i128,
    len: u64,
}

fn stamp(p: &Path) -> Option<Stamp> {
    let m = std::fs::metadata(p).ok()?;
    Some(Stamp {
        dev: m.dev(),
        ino: m.ino(),
        mtime_ns: i128::from(m.mtime()) * 1_000_000_000 + i128::from(m.mtime_nsec()),
        len: m.len(),
    })
}

fn stamps(files: &[PathBuf]) -> Vec<(PathBuf, Option<Stamp>)> {
    files.iter().map(|f| (f.clone(), stamp(f))).collect()
}

/// `--web-config`: the file's path and the config loaded from it.
pub struct WebState {
    path: PathBuf,
    tls: bool,
    current: RwLock<Arc<Active>>,
    watched: Mutex<Vec<(PathBuf, Option<Stamp>)>>,
}

impl WebState {
    /// Loads and checks the file: an error here stops the agent before anything is attached.
    pub fn load(path: &Path) -> Result<WebState, WebConfigError> {
        let config = WebConfig::load(path)?;
        Ok(WebState {
            path: path.to_owned(),
            tls: config.tls.is_some(),
            watched: Mutex::new(stamps(&config.files)),
            current: RwLock::new(Arc::new(Active::new(config))),
        })
    }

    /// Whether the endpoints are served over TLS (fixed for the agent's life).
    pub fn is_tls(&self) -> bool {
        self.tls
    }

    pub fn active(&self) -> Arc<Active> {
        match self.current.read() {
            Ok(a) => a.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    /// True when a watched file was replaced, rewritten, created or removed since the last look.
    fn changed(&self) -> bool {
        let Ok(watched) = self.watched.lock() else {
            return false;
        };
        watched.iter().any(|(p, s)| stamp(p) != *s)
    }

    /// Reads the file again; on success the new config serves the next connections and requests.
    pub fn reload(&self) -> Result<(), String> {
        // Look at the files first: a change made while loading is seen at the next poll.
        if let Ok(mut w) = self.watched.lock() {
            for (p, s) in w.iter_mut() {
                *s = stamp(p);
            }
        }
        let config = WebConfig::load(&self.path).map_err(|e| e.to_string())?;
        if config.tls.is_some() != self.tls {
            return Err(format!(
                "web config {}: switching between TLS and plain HTTP takes a restart of the agent",
                self.path.display()
            ));
        }
        if let Ok(mut w) = self.watched.lock() {
            *w = stamps(&config.files);
        }
        let active = Arc::new(Active::new(config));
        match self.current.write() {
            Ok(mut c) => *c = active,
            Err(poisoned) => *poisoned.into_inner() = active,
        }
        Ok(())
    }

    fn reload_and_say(&self) {
        match self.reload() {
            Ok(()) => eprintln!("tracer: reloaded the web config {}", self.path.display()),
            Err(e) => log::warn!("{e}; the previous web config stays in force"),
        }
    }

    /// Reloads on change and on SIGHUP, forever (the caller aborts it).
    pub async fn watch(self: Arc<Self>) {
        use tokio::signal::unix::{SignalKind, signal};
        let mut hangup = match signal(SignalKind::hangup()) {
            Ok(s) => Some(s),
            Err(e) => {
                log::warn!("no SIGHUP handler ({e}): the web config is reloaded when its files change only");
                None
            }
        };
        let mut tick = tokio::time::interval(POLL);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            let hup = async {
                match hangup.as_mut() {
                    Some(h) => h.recv().await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                _ = tick.tick() => {
                    if self.changed() {
                        self.reload_and_say();
                    }
                }
                got = hup => match got {
                    Some(()) => self.reload_and_say(),
                    None => hangup = None,
                },
            }
        }
    }
}
