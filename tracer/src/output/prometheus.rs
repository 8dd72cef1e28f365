//! `/metrics`: the metrics snapshot as Prometheus exposition, written with `prometheus-client`
//! through a `Collector` (values computed at scrape time: series of processes forgotten simply
//! stop). Names follow prometheus.io/docs/practices/naming: `tracer_` prefix, base units in the
//! name, `_total` on counters (added by the encoder).
//!
//! Two names are a fixed contract: `tracer_open_fds` and `tracer_leak_suspects`, both labelled
//! `comm`, `kind`, `container` (and `pid` for the processes `--pid-labels` singles out).

use prometheus_client::{
    collector::Collector,
    encoding::{DescriptorEncoder, EncodeCounterValue, EncodeGaugeValue, EncodeMetric},
    metrics::{MetricType, counter::ConstCounter, gauge::ConstGauge},
    registry::{Registry, Unit},
};

use crate::{
    analysis::metrics::{GroupMetrics, MetricsSnapshot},
    state::{
        FdKind,
        counters::{KINDS, LOCK_WAIT_BUCKETS, MISUSE},
        incidents::errno_name,
        signals::signal_name,
        stalls::CHANNEL_KINDS,
    },
};

/// Content type of the OpenMetrics text format.
pub const OPENMETRICS_CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";
/// Content type of the Prometheus text format 0.0.4 (what `promtool check metrics` reads).
pub const TEXT_CONTENT_TYPE: &str = prometheus_client::encoding::prometheus_text::CONTENT_TYPE;

/// Every fd kind, indexed like the per-kind arrays.
fn kind_name(i: usize) -> &'static str {
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

const SYSV: [&str; 3] = ["sysv_sem", "sysv_shm", "sysv_msg"];
/// The kernel's loss counters, by `LossCounter` index.
const KERNEL_LOSSES: [&str; tracer_common::config::LOSS_COUNTERS as usize] = {
    use tracer_common::config::LossCounter;
    let mut names = [""; tracer_common::config::LOSS_COUNTERS as usize];
    let mut i = 0;
    while i < names.len() {
        names[i] = LossCounter::ALL[i].name();
        i += 1;
    }
    names
};

type Labels = Vec<(&'static str, String)>;

fn group_labels(g: &GroupMetrics) -> Labels {
    let mut l = vec![("comm", g.comm.clone()), ("container", g.container.clone())];
    if let Some(pid) = g.pid {
        l.push(("pid", pid.to_string()));
    }
    l
}

fn with(mut l: Labels, key: &'static str, value: impl Into<String>) -> Labels {
    l.push((key, value.into()));
    l
}

#[derive(Debug)]
struct SnapshotCollector(MetricsSnapshot);

/// One metric family: its descriptor, then each series.
fn family<V>(
    enc: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    unit: Option<&Unit>,
    metric_type: MetricType,
    series: impl IntoIterator<Item = (Labels, V)>,
    mut encode: impl FnMut(&V, prometheus_client::encoding::MetricEncoder) -> std::fmt::Result,
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

fn gauges<V: EncodeGaugeValue + Copy + std::fmt::Debug>(
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

fn counters<V: EncodeCounterValue + Copy + std::fmt::Debug>(
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

impl Collector for SnapshotCollector {
    fn encode(&self, mut enc: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let s = &self.0;
        let live: Vec<&GroupMetrics> = s.groups.iter().filter(|g| g.processes > 0).collect();
        // Per kind: the kinds a group has open now, and for suspects every kind it has open
        // (0 when none grows), so `tracer_leak_suspects > 0` has a series to compare.
        let per_kind = |f: fn(&GroupMetrics, usize) -> u64| {
            live.iter()
                .flat_map(move |g| {
                    (0..KINDS)
                        .filter(move |k| g.open_fds[*k] > 0 || g.suspects[*k] > 0)
                        .map(move |k| (with(group_labels(g), "kind", kind_name(k)), f(g, k)))
                })
                .collect::<Vec<_>>()
        };
        gauges(
            &mut enc,
            "tracer_open_fds",
            "File descriptors open now, by command, fd kind and container",
            None,
            per_kind(|g, k| g.open_fds[k]),
        )?;
        gauges(
            &mut enc,
            "tracer_leak_suspects",
            "Allocation sites whose open count keeps growing now (leak suspects), by command, fd kind and container",
            None,
            per_kind(|g, k| g.suspects[k]),
        )?;
        gauges(
            &mut enc,
            "tracer_processes",
            "Traced processes, by command and container (exited ones during their grace period)",
            None,
            live.iter().map(|g| (group_labels(g), g.processes)),
        )?;
        gauges(
            &mut enc,
            "tracer_fd_soft_limit",
            "The lowest soft RLIMIT_NOFILE of a process in the group",
            None,
            live.iter().filter_map(|g| Some((group_labels(g), g.fd_soft_limit?))),
        )?;
        gauges(
            &mut enc,
            "tracer_worst_fd_ratio",
            "The highest ratio of open fds to the soft RLIMIT_NOFILE of a process in the group",
            None,
            live.iter().filter_map(|g| Some((group_labels(g), g.worst_fd_ratio?))),
        )?;
        gauges(
            &mut enc,
            "tracer_time_to_fd_limit",
            "The shortest time until a leak suspect's process reaches its soft RLIMIT_NOFILE (EMFILE) at its current rate",
            Some(&Unit::Seconds),
            live.iter()
                .filter_map(|g| Some((group_labels(g), g.time_to_fd_limit_s?))),
        )?;
        gauges(
            &mut enc,
            "tracer_zombies",
            "Children exited and not reaped, by the parent's command and container",
            None,
            live.iter()
                .filter(|g| g.zombies > 0)
                .map(|g| (group_labels(g), g.zombies)),
        )?;
        gauges(
            &mut enc,
            "tracer_zombie_piles",
            "Parents whose zombie children piled up (at least 10) while their SIGCHLDs merged: one waitpid per SIGCHLD",
            None,
            live.iter()
                .filter(|g| g.zombie_piles > 0)
                .map(|g| (group_labels(g), g.zombie_piles)),
        )?;
        gauges(
            &mut enc,
            "tracer_sysv_objects",
            "SysV IPC objects created by traced processes that exist now",
            None,
            (0..3).map(|i| (vec![("resource", SYSV[i].to_owned())], s.sysv.objects[i])),
        )?;
        gauges(
            &mut enc,
            "tracer_sysv_orphans",
            "SysV IPC objects whose creator exited without removing them",
            None,
            (0..3).map(|i| (vec![("resource", SYSV[i].to_owned())], s.sysv.orphans[i])),
        )?;

        let all = &s.groups;
        let per_kind_total = |f: fn(&GroupMetrics) -> &[u64; KINDS]| {
            all.iter()
                .flat_map(move |g| {
                    (0..KINDS)
                        .filter(move |k| f(g)[*k] > 0)
                        .map(move |k| (with(group_labels(g), "kind", kind_name(k)), f(g)[k]))
                })
                .collect::<Vec<_>>()
        };
        counters(
            &mut enc,
            "tracer_fd_allocations",
            "File descriptors created, by command, fd kind and container",
            None,
            per_kind_total(|g| &g.counters.allocations),
        )?;
        counters(
            &mut enc,
            "tracer_fd_closes",
            "File descriptors closed by the program (close, close_range, dup2 over, exec), by kind",
            None,
            per_kind_total(|g| &g.counters.closes),
        )?;
        counters(
            &mut enc,
            "tracer_limit_failures",
            "Allocations that failed on a limit (EMFILE, ENFILE, ENOSPC, fork's EAGAIN), by syscall and errno",
            None,
            all.iter().flat_map(|g| {
                g.counters.limit_failures.iter().map(move |((nr, errno), n)| {
                    let syscall =
                        tracer_common::syscalls::name(*nr).map_or_else(|| format!("syscall_{nr}"), str::to_owned);
                    let l = with(with(group_labels(g), "syscall", syscall), "errno", errno_name(*errno));
                    (l, *n)
                })
            }),
        )?;
        family(
            &mut enc,
            "tracer_lock_wait",
            "Time traced processes waited for flock/fcntl locks",
            Some(&Unit::Seconds),
            MetricType::Histogram,
            all.iter()
                .filter(|g| g.counters.lock_waits() > 0)
                .map(|g| (group_labels(g), &g.counters)),
            |c, mut e| {
                // Counts per bucket: the encoder makes them cumulative.
                let mut buckets: Vec<(f64, u64)> = LOCK_WAIT_BUCKETS
                    .iter()
                    .copied()
                    .zip(c.lock_wait_buckets.iter().copied())
                    .collect();
                buckets.push((f64::INFINITY, c.lock_wait_buckets[LOCK_WAIT_BUCKETS.len()]));
                e.encode_histogram::<prometheus_client::encoding::NoLabelSet>(
                    c.lock_wait_ns as f64 / 1e9,
                    c.lock_waits(),
                    &buckets,
                    None,
                )
            },
        )?;
        counters(
            &mut enc,
            "tracer_lock_failures",
            "flock/fcntl lock calls that failed, by errno",
            None,
            all.iter().flat_map(|g| {
                g.counters
                    .lock_failures
                    .iter()
                    .map(move |(errno, n)| (with(group_labels(g), "errno", lock_errno(*errno)), *n))
            }),
        )?;
        counters(
            &mut enc,
            "tracer_signals_merged",
            "Standard signals sent while one was already pending (merged: delivered once), by signal",
            None,
            all.iter().flat_map(|g| {
                g.counters
                    .signals_merged
                    .iter()
                    .map(move |(sig, n)| (with(group_labels(g), "signal", signal_name(*sig)), *n))
            }),
        )?;
        counters(
            &mut enc,
            "tracer_select_beyond_fd_setsize",
            "select/pselect6 calls with nfds beyond FD_SETSIZE (1024)",
            None,
            all.iter()
                .filter(|g| g.counters.select_beyond_fd_setsize > 0)
                .map(|g| (group_labels(g), g.counters.select_beyond_fd_setsize)),
        )?;
        let per_channel = |f: fn(&GroupMetrics, usize) -> u64| {
            all.iter()
                .flat_map(move |g| {
                    CHANNEL_KINDS
                        .iter()
                        .filter(move |k| f(g, k.index()) > 0)
                        .map(move |k| (with(group_labels(g), "kind", k.as_str()), f(g, k.index())))
                })
                .collect::<Vec<_>>()
        };
        counters(
            &mut enc,
            "tracer_write_stalls",
            "Writes blocked at least --write-block because the pipe, FIFO, eventfd or AF_UNIX socket was full, by kind",
            None,
            per_channel(|g, i| g.counters.write_stalls[i]),
        )?;
        counters(
            &mut enc,
            "tracer_write_stall",
            "Time writers spent blocked on full pipes, FIFOs, eventfds and AF_UNIX sockets (stalls only), by kind",
            Some(&Unit::Seconds),
            all.iter()
                .flat_map(|g| {
                    CHANNEL_KINDS
                        .iter()
                        .filter(move |k| g.counters.write_stall_ns[k.index()] > 0)
                        .map(move |k| {
                            (
                                with(group_labels(g), "kind", k.as_str()),
                                g.counters.write_stall_ns[k.index()] as f64 / 1e9,
                            )
                        })
                })
                .collect::<Vec<_>>(),
        )?;
        counters(
            &mut enc,
            "tracer_writes_refused",
            "Non-blocking writes refused with EAGAIN or ENOBUFS because the pipe, FIFO or AF_UNIX socket was full, by kind",
            None,
            per_channel(|g, i| g.counters.writes_refused[i]),
        )?;
        counters(
            &mut enc,
            "tracer_eventfd_overflows",
            "eventfd writes refused with EAGAIN on a saturated counter (notifications dropped)",
            None,
            all.iter()
                .filter(|g| g.counters.eventfd_overflows > 0)
                .map(|g| (group_labels(g), g.counters.eventfd_overflows)),
        )?;
        counters(
            &mut enc,
            "tracer_fd_misuse",
            "Descriptor misuse: close of an fd never open, double close, use after close, EBADF",
            None,
            all.iter().flat_map(|g| {
                MISUSE
                    .iter()
                    .enumerate()
                    .filter(|(i, _)| g.counters.misuse[*i] > 0)
                    .map(move |(i, k)| (with(group_labels(g), "misuse", k.as_str()), g.counters.misuse[i]))
            }),
        )?;

        let h = &s.health;
        let one = |v: u64| vec![(Labels::new(), v)];
        counters(
            &mut enc,
            "tracer_kernel_lost_events",
            "Kernel-side losses, by reason: records dropped on a full ring buffer (the processes they belonged to are read again from /proc), children not followed on a full traced map or clone map, records that arrived without their stack",
            None,
            (0..KERNEL_LOSSES.len()).map(|i| (vec![("reason", KERNEL_LOSSES[i].to_owned())], h.kernel_lost[i])),
        )?;
        counters(
            &mut enc,
            "tracer_agent_lost_events",
            "Agent-side losses, by reason: records it could not decode, kernel map updates that failed (a process not followed, a zombie not watched)",
            None,
            vec![
                (vec![("reason", "undecodable".to_owned())], h.undecodable),
                (vec![("reason", "map_update_failed".to_owned())], h.map_update_failed),
            ],
        )?;
        counters(
            &mut enc,
            "tracer_records",
            "Records received from the kernel",
            None,
            one(h.records),
        )?;
        counters(
            &mut enc,
            "tracer_resyncs",
            "Fd tables read again from /proc after lost records",
            None,
            one(h.resyncs),
        )?;
        counters(
            &mut enc,
            "tracer_resync_fds",
            "Fds a resync removed (lost closes) or added (lost opens)",
            None,
            vec![
                (vec![("change", "removed".to_owned())], h.resync_dropped_fds),
                (vec![("change", "added".to_owned())], h.resync_added_fds),
            ],
        )?;
        counters(
            &mut enc,
            "tracer_allocation_stacks",
            "Allocation stacks by outcome: taken, or skipped under the per-CPU stack budget (--stack-budget; the fd is still counted exactly and the sampled stacks stand for it in the profiles)",
            None,
            vec![
                (vec![("outcome", "taken".to_owned())], h.stacks_taken),
                (vec![("outcome", "skipped".to_owned())], h.stacks_skipped),
            ],
        )?;
        counters(
            &mut enc,
            "tracer_stack_copies",
            "DWARF mode: user stack copies received, by record size in bytes (a thread's copies shrink to its live stack once one of its stacks was unwound to the root)",
            None,
            [1024u32, 2048, 4096, 8192, 16384]
                .iter()
                .zip(h.stack_copies)
                .map(|(bytes, n)| (vec![("bytes", bytes.to_string())], n)),
        )?;
        counters(
            &mut enc,
            "tracer_stack_copies_short",
            "DWARF mode: stacks that ran past a copy shortened to their thread's known stack top (the thread copies its whole --stack-size again)",
            None,
            one(h.short_stack_copies),
        )?;
        counters(
            &mut enc,
            "tracer_python_stacks",
            "Python frame walks at allocations in CPython processes, by outcome: walked, truncated (more than 64 frames: the innermost kept), no_thread_state (a thread without a Python thread state, or past the 64th of the interpreter's list), read_failed (interpreter memory unreadable mid-walk)",
            None,
            crate::agent::python::OUTCOMES
                .iter()
                .zip(h.python_stacks)
                .map(|(o, n)| (vec![("outcome", (*o).to_owned())], n)),
        )?;
        counters(
            &mut enc,
            "tracer_processes_discovered",
            "Processes first seen through a record (new to a whole-host agent, or their fork was lost)",
            None,
            one(h.discovered),
        )?;
        counters(
            &mut enc,
            "tracer_exits_inferred",
            "Processes found gone without their exit record",
            None,
            one(h.exits_inferred),
        )?;
        counters(
            &mut enc,
            "tracer_evictions",
            "State dropped to keep memory bounded, by what",
            None,
            [
                ("process", h.evicted_processes),
                ("site", h.evicted_sites),
                ("stack", h.evicted_stacks),
                ("group", h.evicted_groups),
                ("lock_file", h.evicted_lock_files),
                ("incident", h.dropped_incidents),
                ("symbol_location", h.evicted_symbol_locations),
                ("symbol_file_cache", h.symbol_cache_resets),
            ]
            .into_iter()
            .map(|(what, n)| (vec![("what", what.to_owned())], n)),
        )?;
        gauges(
            &mut enc,
            "tracer_tracked_processes",
            "Processes the agent holds state for",
            None,
            one(h.tracked_processes),
        )?;
        gauges(
            &mut enc,
            "tracer_python_processes",
            "CPython processes whose Python frames the kernel walks (a version tracer reads, --python-frames on)",
            None,
            one(h.python_processes),
        )?;
        gauges(
            &mut enc,
            "tracer_tracked_fds",
            "Fds the agent holds state for",
            None,
            one(h.tracked_fds),
        )?;
        gauges(
            &mut enc,
            "tracer_sites",
            "Allocation sites the agent holds",
            None,
            one(h.sites),
        )?;
        gauges(
            &mut enc,
            "tracer_stacks",
            "Distinct stacks the agent holds",
            None,
            one(h.stacks),
        )?;
        gauges(
            &mut enc,
            "tracer_stack_store",
            "Approximate memory of the stored stacks",
            Some(&Unit::Bytes),
            one(h.stack_bytes),
        )?;
        counters(
            &mut enc,
            "tracer_agent_cpu",
            "CPU time the agent used (user and system)",
            Some(&Unit::Seconds),
            vec![(Labels::new(), h.cpu_seconds)],
        )?;
        gauges(
            &mut enc,
            "tracer_agent_resident_memory",
            "The agent's resident memory, ring buffers included",
            Some(&Unit::Bytes),
            one(h.resident_bytes),
        )?;
        counters(
            &mut enc,
            "tracer_agent_stage",
            "Agent time by stage: decode, state, unwind, modules (maps and unwind tables), describe (/proc lookups), tick; estimated from one record in 8",
            Some(&Unit::Seconds),
            h.stage_seconds
                .iter()
                .map(|(stage, secs)| (vec![("stage", (*stage).to_owned())], *secs)),
        )?;
        // Only while the kernel times programs (--bpf-stats or kernel.bpf_stats_enabled).
        if h.programs.iter().any(|p| p.runs > 0) {
            counters(
                &mut enc,
                "tracer_bpf_program_runs",
                "Runs of each of tracer's kernel programs while BPF statistics were on",
                None,
                h.programs.iter().map(|p| (vec![("program", p.name.clone())], p.runs)),
            )?;
            counters(
                &mut enc,
                "tracer_bpf_program_run",
                "Time in each of tracer's kernel programs while BPF statistics were on",
                Some(&Unit::Seconds),
                h.programs
                    .iter()
                    .map(|p| (vec![("program", p.name.clone())], p.run_ns as f64 / 1e9)),
            )?;
        }
        Ok(())
    }
}

/// The name flock(2) and fcntl(2) document for errno 11.
fn lock_errno(errno: i32) -> &'static str {
    if errno == 11 { "EWOULDBLOCK" } else { errno_name(errno) }
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
mod tests {
    use super::*;
    use crate::analysis::metrics::{AgentHealth, SysvMetrics};

    fn sample() -> MetricsSnapshot {
        let mut g = GroupMetrics {
            comm: crate::output::escape::escape_bytes(b"we\"b\n\\\xff"),
            container: "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef".into(),
            processes: 2,
            fd_soft_limit: Some(1024),
            worst_fd_ratio: Some(0.5),
            time_to_fd_limit_s: Some(27.5),
            zombies: 3,
            zombie_piles: 1,
            ..Default::default()
        };
        g.open_fds[FdKind::Socket as usize] = 512;
        g.open_fds[FdKind::File as usize] = 3;
        g.suspects[FdKind::Socket as usize] = 1;
        g.counters.allocations[FdKind::Socket as usize] = 600;
        g.counters.closes[FdKind::Socket as usize] = 88;
        g.counters.limit_failure(43, 24);
        g.counters.lock_wait(2_000_000);
        g.counters.lock_wait(2_000_000_000);
        g.counters.lock_failure(11);
        g.counters.signals_merged_one(17);
        g.counters.misuse[1] = 2;
        g.counters.write_stalls[0] = 12;
        g.counters.write_stall_ns[0] = 2_400_000_000;
        g.counters.writes_refused[3] = 4;
        g.counters.eventfd_overflows = 40;
        let mut own = GroupMetrics {
            comm: "worker".into(),
            pid: Some(4242),
            processes: 1,
            ..Default::default()
        };
        own.open_fds[FdKind::Pipe as usize] = 2;
        MetricsSnapshot {
            groups: vec![g, own],
            sysv: SysvMetrics {
                objects: [8, 0, 0],
                orphans: [8, 0, 0],
            },
            health: AgentHealth {
                records: 1234,
                kernel_lost: [1, 0, 2],
                cpu_seconds: 1.5,
                resident_bytes: 100 << 20,
                ..Default::default()
            },
        }
    }

    #[test]
    fn golden_exposition() {
        for (openmetrics, file) in [(false, "metrics.txt"), (true, "metrics.openmetrics.txt")] {
            let text = encode(sample(), openmetrics).unwrap_or_default();
            let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("src/output/golden")
                .join(file);
            if std::env::var_os("UPDATE_GOLDEN").is_some() {
                let _ = std::fs::write(&path, &text);
            }
            let golden = std::fs::read_to_string(&path).unwrap_or_default();
            assert_eq!(text, golden, "{file} changed (UPDATE_GOLDEN=1 to accept)");
        }
    }

    #[test]
    fn contract_names_labels_and_escaping() {
        let text = encode(sample(), false).unwrap_or_default();
        // Label values are escaped by the exposition format: quote, backslash, newline.
        assert!(
            text.contains(
                r#"tracer_open_fds{comm="we\"b\\n\\\\\\xff",container="0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",kind="socket"} 512"#
            ),
            "{text}"
        );
        assert!(
            text.contains(r#"tracer_leak_suspects{comm="worker",container="",pid="4242",kind="pipe"} 0"#),
            "{text}"
        );
        assert!(text.contains("tracer_fd_allocations_total{"), "counters end in _total");
        assert!(text.contains("tracer_time_to_fd_limit_seconds{"));
        assert!(text.contains(r#"tracer_lock_wait_seconds_bucket{comm="#));
        assert!(text.contains(r#"le="+Inf"} 2"#), "{text}");
        assert!(text.contains(r#"tracer_kernel_lost_events_total{reason="ring_buffer_full"} 1"#));
        assert!(
            text.contains(r#"errno="EMFILE",syscall="#) || text.contains(r#"syscall="accept",errno="EMFILE""#),
            "{text}"
        );
    }
}
