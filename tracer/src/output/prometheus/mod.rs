//! `/metrics`: the metrics snapshot as Prometheus exposition, written with `prometheus-client`
//! through a `Collector` (values computed at scrape time: series of processes forgotten simply
//! stop). Names follow prometheus.io/docs/practices/naming: `tracer_` prefix, base units in the
//! name, `_total` on counters (added by the encoder).
//!
//! Two names are a fixed contract: `tracer_open_fds` and `tracer_leak_suspects`, both labelled
//! `comm`, `kind`, `container` (and `pid` for the processes `--pid-labels` singles out).

mod escalation;
mod families;
mod health;
mod held;
mod totals;

use prometheus_client::{collector::Collector, encoding::DescriptorEncoder, registry::Registry};

use crate::model::metrics::MetricsSnapshot;

/// Content type of the OpenMetrics text format.
pub const OPENMETRICS_CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";
/// Content type of the Prometheus text format 0.0.4 (what `promtool check metrics` reads).
pub const TEXT_CONTENT_TYPE: &str = prometheus_client::encoding::prometheus_text::CONTENT_TYPE;

#[derive(Debug)]
struct SnapshotCollector(MetricsSnapshot);

impl Collector for SnapshotCollector {
    fn encode(&self, mut enc: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let s = &self.0;
        held::encode(&mut enc, s)?;
        totals::encode(&mut enc, &s.groups)?;
        if let Some(e) = &s.health.escalation {
            escalation::encode(&mut enc, e)?;
        }
        health::encode(&mut enc, &s.health)
    }
}

/// The exposition of `snapshot`: OpenMetrics text when `openmetrics`, else Prometheus text 0.0.4.
pub fn encode(snapshot: MetricsSnapshot, openmetrics: bool) -> Result<String, std::fmt::Error> {
    let mut registry = Registry::default();
    registry.register_collector(Box::new(SnapshotCollector(snapshot)));
    let mut out = String::new();
    if openmetrics {
        prometheus_client::encoding::text::encode(&mut out, &registry)?;
    } else {
        prometheus_client::encoding::prometheus_text::encode(&mut out, &registry)?;
    }
    Ok(out)
}

#[cfg(test)]
mod tests;
