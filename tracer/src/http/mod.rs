//! The agent's HTTP endpoints (hyper): Prometheus metrics, pprof profiles, the report, health.
//! Every request is a query to the ingest task (answered unsymbolized) plus, for stacks, a job
//! for the symbolizer worker; rendering happens here. No request can stall the ingest task: a
//! slow or silent client only holds its own connection, which has a deadline.

mod routes;

use std::{
    net::SocketAddr,
    sync::{Arc, OnceLock},
    time::{Duration, Instant},
};

use hyper::{server::conn::http1, service::service_fn};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::{net::TcpListener, sync::Semaphore};

use crate::{
    model::metrics::MetricsSnapshot,
    runtime::{symbolizer::SymbolizerWorker, task::Client},
};

/// Connections served at once; more wait in the listen backlog.
const MAX_CONNECTIONS: usize = 256;
/// Time a client has to send its request headers.
const HEADER_TIMEOUT: Duration = Duration::from_secs(5);
/// A connection's whole life, keep-alive included: a client that stops reading loses it.
const CONNECTION_DEADLINE: Duration = Duration::from_secs(60);
/// Scrapes this close together share one metrics snapshot.
const METRICS_REUSE: Duration = Duration::from_millis(500);

#[derive(Debug, thiserror::Error)]
pub enum HttpError {
    #[error("cannot listen on {addr}: the port is in use (another tracer agent? pick another with --listen)")]
    InUse { addr: SocketAddr },
    #[error("cannot listen on {addr}")]
    Bind {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
}

/// Binds the listening socket (before anything is attached, so a taken port fails early).
pub async fn bind(addr: SocketAddr) -> Result<TcpListener, HttpError> {
    TcpListener::bind(addr).await.map_err(|source| {
        if source.kind() == std::io::ErrorKind::AddrInUse {
            HttpError::InUse { addr }
        } else {
            HttpError::Bind { addr, source }
        }
    })
}

/// What the endpoints need to answer.
#[derive(Clone, Debug)]
pub struct HttpOptions {
    /// Processes given series of their own in `/metrics` (`--pid-labels`).
    pub pid_labels: usize,
    /// Defaults of `/report` (its query can change them).
    pub report_top: usize,
    pub min_age_ns: u64,
    pub lock_hold_ns: u64,
    pub stack_mode: &'static str,
    /// Said in the profiles' comments (e.g. how stacks are captured).
    pub profile_comments: Vec<String>,
}

/// Shared by every connection.
pub struct Context {
    /// Set once the programs are attached and /proc is seeded: until then only `/healthy` and
    /// the index `/` answer 200.
    pub client: OnceLock<Client>,
    pub symbolizer: SymbolizerWorker,
    pub options: HttpOptions,
    pub started: Instant,
    metrics: tokio::sync::Mutex<Option<(Instant, MetricsSnapshot)>>,
}

impl Context {
    pub fn new(symbolizer: SymbolizerWorker, options: HttpOptions) -> Arc<Self> {
        Arc::new(Context {
            client: OnceLock::new(),
            symbolizer,
            options,
            started: Instant::now(),
            metrics: tokio::sync::Mutex::new(None),
        })
    }

    /// A metrics snapshot no older than [`METRICS_REUSE`] (concurrent scrapes share one).
    async fn metrics(&self, client: &Client) -> Option<MetricsSnapshot> {
        let mut cached = self.metrics.lock().await;
        if let Some((at, m)) = cached.as_ref()
            && at.elapsed() < METRICS_REUSE
        {
            return Some(m.clone());
        }
        let m = client.metrics(self.options.pid_labels).await.ok()?;
        *cached = Some((Instant::now(), m.clone()));
        Some(m)
    }
}

/// Accepts connections until `shutdown` resolves.
pub async fn serve(listener: TcpListener, ctx: Arc<Context>, shutdown: impl std::future::Future<Output = ()>) {
    let permits = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    tokio::pin!(shutdown);
    loop {
        let permit = tokio::select! {
            p = permits.clone().acquire_owned() => match p {
                Ok(p) => p,
                Err(_) => return,
            },
            _ = &mut shutdown => return,
        };
        let (stream, _peer) = tokio::select! {
            a = listener.accept() => match a {
                Ok(a) => a,
                Err(e) => {
                    // EMFILE and friends: wait a little rather than spin.
                    log::warn!("accepting a connection: {e}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
            _ = &mut shutdown => return,
        };
        let ctx = ctx.clone();
        tokio::spawn(async move {
            let service = service_fn(move |req| {
                let ctx = ctx.clone();
                async move { Ok::<_, std::convert::Infallible>(routes::handle(&ctx, req).await) }
            });
            let conn = http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(HEADER_TIMEOUT)
                .serve_connection(TokioIo::new(stream), service);
            let _ = tokio::time::timeout(CONNECTION_DEADLINE, conn).await;
            drop(permit);
        });
    }
}
