//! The endpoints: `GET /metrics`, `/debug/pprof/{fds,sysv,locks}`, `/report?format=text|json`,
//! `/healthy`, `/ready`. Anything else is 404, other methods 405, bad queries 400.

use bytes::Bytes;
use http_body_util::Full;
use hyper::{Method, Request, Response, StatusCode, header};

use super::Context;
use crate::{
    model::{ReportOptions, duration::parse_duration, profile::ProfileKind},
    output::{self, Format, Heading, pprof, prometheus},
    runtime::{cost, task::Client},
};

pub(super) type Reply = Response<Full<Bytes>>;
/// An answer, or the error reply that ends the request early.
type Answer = Result<Reply, Box<Reply>>;

fn reply(status: StatusCode, content_type: &str, body: impl Into<Bytes>) -> Reply {
    let mut r = Response::new(Full::new(body.into()));
    *r.status_mut() = status;
    if let Ok(v) = header::HeaderValue::from_str(content_type) {
        r.headers_mut().insert(header::CONTENT_TYPE, v);
    }
    r
}

pub(super) fn text(status: StatusCode, body: impl Into<String>) -> Reply {
    let mut b = body.into();
    if !b.ends_with('\n') {
        b.push('\n');
    }
    reply(status, "text/plain; charset=utf-8", b)
}

/// 503 until the programs are attached and /proc is seeded.
fn client(ctx: &Context) -> Result<&Client, Box<Reply>> {
    ctx.client.get().ok_or_else(|| {
        Box::new(text(
            StatusCode::SERVICE_UNAVAILABLE,
            "starting: programs not attached yet",
        ))
    })
}

fn gone() -> Box<Reply> {
    Box::new(text(StatusCode::SERVICE_UNAVAILABLE, "the ingest task has stopped"))
}

pub async fn handle<B>(ctx: &Context, req: Request<B>) -> Reply {
    if req.uri().path() == "/escalate" {
        return escalate(ctx, &req).await.unwrap_or_else(|r| *r);
    }
    if req.method() != Method::GET && req.method() != Method::HEAD {
        let mut r = text(StatusCode::METHOD_NOT_ALLOWED, "only GET is served");
        r.headers_mut()
            .insert(header::ALLOW, header::HeaderValue::from_static("GET, HEAD"));
        return r;
    }
    let path = req.uri().path();
    let query = req.uri().query().unwrap_or("");
    let result = match path {
        // Liveness: fails once tracing has stopped for good (the ingest thread ended), so that
        // a supervisor restarts the agent; starting up is healthy.
        "/healthy" => match ctx.client.get() {
            Some(c) if !c.is_alive() => Ok(text(StatusCode::SERVICE_UNAVAILABLE, "tracing has stopped")),
            _ => Ok(text(StatusCode::OK, "ok")),
        },
        "/ready" => match ctx.client.get() {
            Some(c) if c.is_alive() => Ok(text(StatusCode::OK, "ready")),
            Some(_) => Ok(text(StatusCode::SERVICE_UNAVAILABLE, "tracing has stopped")),
            None => Ok(text(StatusCode::SERVICE_UNAVAILABLE, "starting")),
        },
        "/metrics" => metrics(ctx, &req).await,
        "/report" => report(ctx, query).await,
        "/debug/folded/fds" => folded(ctx).await,
        p => match p.strip_prefix("/debug/pprof/").and_then(ProfileKind::from_path) {
            Some(kind) => profile(ctx, kind).await,
            None if p == "/" => Ok(text(StatusCode::OK, index(ctx))),
            None => Ok(not_found(ctx)),
        },
    };
    result.unwrap_or_else(|r| *r)
}

pub(super) fn not_found(ctx: &Context) -> Reply {
    text(StatusCode::NOT_FOUND, format!("no such endpoint\n{}", index(ctx)))
}

/// The endpoints served (`--endpoints` may hide some).
fn index(ctx: &Context) -> String {
    use super::endpoints::Endpoint;
    let e = &ctx.options.endpoints;
    let mut parts = Vec::new();
    if e.serves(Endpoint::Metrics) {
        parts.push("/metrics (Prometheus)");
    }
    if e.serves(Endpoint::Pprof) {
        parts.push(
            "/debug/pprof/fds, /debug/pprof/sysv, /debug/pprof/locks (pprof), /debug/folded/fds (collapsed stacks)",
        );
    }
    if e.serves(Endpoint::Report) {
        parts.push("/report?format=text|json&top=N&min_age=DURATION, POST /escalate?pid=N");
    }
    parts.push("/healthy, /ready");
    format!("tracer agent: {}", parts.join(", "))
}

async fn metrics<B>(ctx: &Context, req: &Request<B>) -> Answer {
    let client = client(ctx)?;
    let mut m = ctx.metrics(client).await.ok_or_else(gone)?;
    let c = cost::now();
    m.health.cpu_seconds = c.cpu_seconds;
    m.health.resident_bytes = c.rss_bytes;
    let stats = &ctx.symbolizer.stats;
    m.health.evicted_symbol_locations = stats.evicted_locations.load(std::sync::atomic::Ordering::Relaxed);
    m.health.symbol_cache_resets = stats.file_cache_resets.load(std::sync::atomic::Ordering::Relaxed);
    // Prometheus asks for OpenMetrics first in its Accept header; anything else gets 0.0.4.
    let openmetrics = req
        .headers()
        .get_all(header::ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .any(|v| v.contains("application/openmetrics-text"));
    let body = prometheus::encode(m, openmetrics)
        .map_err(|_| Box::new(text(StatusCode::INTERNAL_SERVER_ERROR, "encoding the metrics failed")))?;
    let content_type = if openmetrics {
        prometheus::OPENMETRICS_CONTENT_TYPE
    } else {
        prometheus::TEXT_CONTENT_TYPE
    };
    Ok(reply(StatusCode::OK, content_type, body))
}

async fn profile(ctx: &Context, kind: ProfileKind) -> Answer {
    let client = client(ctx)?;
    let mut profile = ctx
        .symbolizer
        .profile(client.profile(kind).await.map_err(|_| gone())?)
        .await;
    profile.comments.extend(ctx.options.profile_comments.iter().cloned());
    // Pyroscope's scraper takes only this content type (and a gzip or protobuf body).
    Ok(reply(
        StatusCode::OK,
        "application/octet-stream",
        pprof::encode(&profile),
    ))
}

/// `/debug/folded/fds`: the fds profile as collapsed stacks (inferno, flamegraph.pl).
async fn folded(ctx: &Context) -> Answer {
    let client = client(ctx)?;
    let profile = ctx
        .symbolizer
        .profile(client.profile(ProfileKind::Fds).await.map_err(|_| gone())?)
        .await;
    let mut body = Vec::new();
    output::flame::write_folded(&mut body, &output::flame::from_profile(&profile))
        .map_err(|_| Box::new(text(StatusCode::INTERNAL_SERVER_ERROR, "writing the stacks failed")))?;
    Ok(reply(StatusCode::OK, "text/plain; charset=utf-8", body))
}

/// `/report` query: `format=text|json`, `top=N`, `min_age=DURATION`; anything else is a 400.
#[derive(Debug, PartialEq)]
struct ReportQuery {
    format: Format,
    top: Option<usize>,
    min_age_ns: Option<u64>,
}

fn parse_report_query(query: &str) -> Result<ReportQuery, String> {
    let mut q = ReportQuery {
        format: Format::Text,
        top: None,
        min_age_ns: None,
    };
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        let value = percent_decode(value).ok_or_else(|| format!("bad percent-encoding in {pair:?}"))?;
        match key {
            "format" => {
                q.format = match value.as_str() {
                    "text" => Format::Text,
                    "json" => Format::Json,
                    other => return Err(format!("format must be text or json, not {other:?}")),
                }
            }
            "top" => {
                q.top = Some(
                    value
                        .parse()
                        .map_err(|_| format!("top must be a number, not {value:?}"))?,
                )
            }
            "min_age" => q.min_age_ns = Some(parse_duration(&value)?.as_nanos() as u64),
            other => return Err(format!("unknown parameter {other:?} (format, top, min_age)")),
        }
    }
    Ok(q)
}

/// `%XX` and `+` decoding; None when malformed or not UTF-8.
fn percent_decode(s: &str) -> Option<String> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'%' => {
                let hex = std::str::from_utf8(b.get(i + 1..i + 3)?).ok()?;
                out.push(u8::from_str_radix(hex, 16).ok()?);
                i += 3;
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            c => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8(out).ok()
}

async fn report(ctx: &Context, query: &str) -> Answer {
    let q = parse_report_query(query).map_err(|e| Box::new(text(StatusCode::BAD_REQUEST, e)))?;
    let client = client(ctx)?;
    let opts = ReportOptions {
        min_age_ns: q.min_age_ns.unwrap_or(ctx.options.min_age_ns),
        top: Some(q.top.unwrap_or(ctx.options.report_top)),
        lock_hold_ns: ctx.options.lock_hold_ns,
        system: None,
        top_processes: Some(q.top.unwrap_or(ctx.options.report_top)),
    };
    let report = ctx
        .symbolizer
        .report(client.report(opts).await.map_err(|_| gone())?)
        .await;
    let heading = Heading {
        elapsed_s: ctx.started.elapsed().as_secs_f64(),
        label: "agent",
        stack_mode: ctx.options.stack_mode,
        // No colour over HTTP.
        all: false,
        color: false,
    };
    let mut body = Vec::new();
    output::write(&mut body, q.format, &report, &heading)
        .map_err(|_| Box::new(text(StatusCode::INTERNAL_SERVER_ERROR, "writing the report failed")))?;
    let content_type = match q.format {
        Format::Json => "application/json",
        _ => "text/plain; charset=utf-8",
    };
    Ok(reply(StatusCode::OK, content_type, body))
}

/// `POST /escalate?pid=N`: trace a process with stacks from now on (the always-on mode), until
/// it is released like any escalated process. A POST: it changes what the agent does.
async fn escalate<B>(ctx: &Context, req: &Request<B>) -> Answer {
    if req.method() != Method::POST {
        let mut r = text(StatusCode::METHOD_NOT_ALLOWED, "POST /escalate?pid=N");
        r.headers_mut()
            .insert(header::ALLOW, header::HeaderValue::from_static("POST"));
        return Ok(r);
    }
    let pid = req
        .uri()
        .query()
        .unwrap_or("")
        .split('&')
        .find_map(|kv| kv.strip_prefix("pid="))
        .and_then(|v| v.parse::<u32>().ok())
        .filter(|p| *p > 0);
    let Some(pid) = pid else {
        return Ok(text(StatusCode::BAD_REQUEST, "POST /escalate?pid=N: N is a process id"));
    };
    let client = client(ctx)?;
    match client.escalate(pid).await.map_err(|_| gone())? {
        Ok(true) => Ok(text(
            StatusCode::OK,
            format!("PID {pid} escalated: traced with stacks from now on (see /report)"),
        )),
        Ok(false) => Ok(text(StatusCode::OK, format!("PID {pid} is traced already"))),
        Err(why) => Ok(text(StatusCode::CONFLICT, why)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn report_queries_are_checked() {
        assert_eq!(
            parse_report_query("format=json&top=5&min_age=2s"),
            Ok(ReportQuery {
                format: Format::Json,
                top: Some(5),
                min_age_ns: Some(2_000_000_000),
            })
        );
        assert_eq!(parse_report_query("").map(|q| q.format), Ok(Format::Text));
        for bad in [
            "format=xml",
            "top=-1",
            "min_age=soon",
            "%zz",
            "format=%ff",
            "x=1",
            "top=%",
        ] {
            assert!(parse_report_query(bad).is_err(), "{bad}");
        }
        assert_eq!(percent_decode("a%20b+c"), Some("a b c".into()));
    }
}
