//! The agent's HTTP endpoints (hyper): Prometheus metrics, pprof profiles, the report, health.
//! Every request is a query to the ingest task (answered unsymbolized) plus, for stacks, a job
//! for the symbolizer worker; rendering happens here. No request can stall the ingest task: a
//! slow or silent client only holds its own connection, which has a deadline.
//! With `--web-config`, connections are TLS and requests may need basic auth (exporter-toolkit's
//! format, `web_config`); `--endpoints` hides groups of endpoints.

mod auth;
pub mod endpoints;
mod reload;
mod routes;
mod tls;
pub mod web_config;

pub use endpoints::Endpoints;
pub use reload::WebState;

use std::{
    net::SocketAddr,
    sync::{Arc, OnceLock},
    time::{Duration, Instant},
};

use hyper::{Request, StatusCode, header, server::conn::http1, service::service_fn};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::{
    io::{AsyncRead, AsyncWrite},
    net::TcpListener,
    sync::Semaphore,
};

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
    /// The groups served (`--endpoints`); the others answer 404.
    pub endpoints: Endpoints,
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

/// Accepts connections until `shutdown` resolves; with `web`, over TLS and with basic auth as
/// its config says (reloaded meanwhile).
pub async fn serve(
    listener: TcpListener,
    ctx: Arc<Context>,
    web: Option<Arc<WebState>>,
    shutdown: impl std::future::Future<Output = ()>,
) {
    let permits = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    let watcher = web.clone().map(|w| tokio::spawn(w.watch()));
    tokio::pin!(shutdown);
    loop {
        let permit = tokio::select! {
            p = permits.clone().acquire_owned() => match p {
                Ok(p) => p,
                Err(_) => break,
            },
            _ = &mut shutdown => break,
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
            _ = &mut shutdown => break,
        };
        let ctx = ctx.clone();
        let web = web.clone();
        let acceptor = web.as_ref().and_then(|w| w.active().tls.clone());
        tokio::spawn(async move {
            let _ = tokio::time::timeout(CONNECTION_DEADLINE, async move {
                match acceptor {
                    Some(acceptor) => {
                        if let Some(stream) = tls::handshake(acceptor, stream).await {
                            serve_connection(stream, ctx, web).await;
                        }
                    }
                    None => serve_connection(stream, ctx, web).await,
                }
            })
            .await;
            drop(permit);
        });
    }
    if let Some(w) = watcher {
        w.abort();
    }
}

async fn serve_connection<I>(io: I, ctx: Arc<Context>, web: Option<Arc<WebState>>)
where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let service = service_fn(move |req| {
        let ctx = ctx.clone();
        let web = web.clone();
        async move { Ok::<_, std::convert::Infallible>(answer(&ctx, web.as_deref(), req).await) }
    });
    let _ = http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_TIMEOUT)
        .serve_connection(TokioIo::new(io), service)
        .await;
}

/// Basic auth (but for the health endpoints, which kubelet probes without credentials and which
/// say nothing), then the endpoint filter, then the endpoint; the config's headers on every answer.
async fn answer<B>(ctx: &Context, web: Option<&WebState>, req: Request<B>) -> routes::Reply {
    let active = web.map(WebState::active);
    let path = req.uri().path();
    let health = path == "/healthy" || path == "/ready";
    let auth = active.as_ref().and_then(|a| a.auth.as_ref());
    let mut reply = match auth {
        Some(auth) if !health && !auth.check(req.headers().get(header::AUTHORIZATION)).await => {
            let mut r = routes::text(StatusCode::UNAUTHORIZED, "Unauthorized");
            r.headers_mut()
                .insert(header::WWW_AUTHENTICATE, header::HeaderValue::from_static("Basic"));
            r
        }
        _ if !ctx.options.endpoints.allows(path) => routes::not_found(ctx),
        _ => routes::handle(ctx, req).await,
    };
    for (name, value) in active.iter().flat_map(|a| a.headers.iter()) {
        reply.headers_mut().insert(name.clone(), value.clone());
    }
    reply
}
