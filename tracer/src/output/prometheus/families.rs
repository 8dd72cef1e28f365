//! The building blocks of the exposition: label sets, metric families written series by
//! series, and the names of the per-kind, per-resource and per-reason label values.

use prometheus_client::{
    encoding::{DescriptorEncoder, EncodeCounterValue, EncodeGaugeValue, EncodeMetric, MetricEncoder},
    metrics::{MetricType, counter::ConstCounter, gauge::ConstGauge},
    registry::Unit,
};

use crate::{
    model::metrics::GroupMetrics,
    output::escape::escape_bytes,
    state::{FdKind, counters::KINDS, incidents::errno_name},
};

/// Every fd kind, indexed like the per-kind arrays.
pub(super) fn kind_name(i: usize) -> &'static str {
    const ALL: [FdKind; KINDS] = [
        FdKind::File,
        FdKind::Directory,
        FdKind::CharDevice,
        FdKind::BlockDevice,
        FdKind::Fifo,
        FdKind::Socket,
        FdKind::Pipe,
        FdKind::EventFd,
        FdKind::Epoll,
        FdKind::TimerFd,
        FdKind::SignalFd,
        FdKind::MemFd,
        FdKind::PidFd,
        FdKind::Inotify,
        FdKind::Fanotify,
        FdKind::PerfEvent,
        FdKind::UserFaultFd,
        FdKind::IoUring,
        FdKind::MessageQueue,
        FdKind::OtherAnon,
        FdKind::Unknown,
    ];
    ALL.get(i).map_or("unknown", |k| k.as_str())
}

pub(super) const SYSV: [&str; 3] = ["sysv_sem", "sysv_shm", "sysv_msg"];
/// The kernel's loss counters, by `LossCounter` index.
pub(super) const KERNEL_LOSSES: [&str; tracer_common::config::LOSS_COUNTERS as usize] = {
    use tracer_common::config::LossCounter;
    let mut names = [""; tracer_common::config::LOSS_COUNTERS as usize];
    let mut i = 0;
    while i < names.len() {
        names[i] = LossCounter::ALL[i].name();
        i += 1;
    }
    names
};

pub(super) type Labels = Vec<(&'static str, String)>;

pub(super) fn group_labels(g: &GroupMetrics) -> Labels {
    let mut l = vec![("comm", escape_bytes(&g.comm)), ("container", g.container.clone())];
    if let Some(pid) = g.pid {
        l.push(("pid", pid.to_string()));
    }
    l
}

pub(super) fn with(mut l: Labels, key: &'static str, value: impl Into<String>) -> Labels {
    l.push((key, value.into()));
    l
}

/// One metric family: its descriptor, then each series.
pub(super) fn family<V>(
    enc: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    unit: Option<&Unit>,
    metric_type: MetricType,
    series: impl IntoIterator<Item = (Labels, V)>,
    mut encode: impl FnMut(&V, MetricEncoder) -> std::fmt::Result,
) -> std::fmt::Result {
    let mut series = series.into_iter().peekable();
    if series.peek().is_none() {
        return Ok(());
    }
    let mut m = enc.encode_descriptor(name, help, unit, metric_type)?;
    for (labels, v) in series {
        encode(&v, m.encode_family(&labels)?)?;
    }
    Ok(())
}

pub(super) fn gauges<V: EncodeGaugeValue + Copy + std::fmt::Debug>(
    enc: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    unit: Option<&Unit>,
    series: impl IntoIterator<Item = (Labels, V)>,
) -> std::fmt::Result {
    family(enc, name, help, unit, MetricType::Gauge, series, |v, e| {
        ConstGauge::new(*v).encode(e)
    })
}

pub(super) fn counters<V: EncodeCounterValue + Copy + std::fmt::Debug>(
    enc: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    unit: Option<&Unit>,
    series: impl IntoIterator<Item = (Labels, V)>,
) -> std::fmt::Result {
    family(enc, name, help, unit, MetricType::Counter, series, |v, e| {
        ConstCounter::new(*v).encode(e)
    })
}

/// The name flock(2) and fcntl(2) document for errno 11.
pub(super) fn lock_errno(errno: i32) -> &'static str {
    if errno == 11 { "EWOULDBLOCK" } else { errno_name(errno) }
}
