//! What the processes did: counters per command and container (allocations and closes by kind,
//! limit failures, lock waits and failures, merged signals, select beyond FD_SETSIZE, write
//! stalls, fd misuse).

use prometheus_client::{encoding::DescriptorEncoder, metrics::MetricType, registry::Unit};

use super::families::{counters, family, group_labels, kind_name, lock_errno, with};
use crate::{
    model::metrics::GroupMetrics,
    state::{
        counters::{KINDS, LOCK_WAIT_BUCKETS, MISUSE},
        incidents::errno_name,
        signals::signal_name,
        stalls::CHANNEL_KINDS,
    },
};

pub(super) fn encode(enc: &mut DescriptorEncoder, all: &[GroupMetrics]) -> std::fmt::Result {
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
        enc,
        "tracer_fd_allocations",
        "File descriptors created, by command, fd kind and container",
        None,
        per_kind_total(|g| &g.counters.allocations),
    )?;
    counters(
        enc,
        "tracer_fd_closes",
        "File descriptors closed by the program (close, close_range, dup2 over, exec), by kind",
        None,
        per_kind_total(|g| &g.counters.closes),
    )?;
    counters(
        enc,
        "tracer_limit_failures",
        "Allocations that failed on a limit (EMFILE, ENFILE, ENOSPC, fork's EAGAIN), by syscall and errno",
        None,
        all.iter().flat_map(|g| {
            g.counters.limit_failures.iter().map(move |((nr, errno), n)| {
                let syscall = tracer_common::syscalls::name(*nr).map_or_else(|| format!("syscall_{nr}"), str::to_owned);
                let l = with(with(group_labels(g), "syscall", syscall), "errno", errno_name(*errno));
                (l, *n)
            })
        }),
    )?;
    family(
        enc,
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
        enc,
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
        enc,
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
        enc,
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
        enc,
        "tracer_write_stalls",
        "Writes blocked at least --write-block because the pipe, FIFO, eventfd or AF_UNIX socket was full, by kind",
        None,
        per_channel(|g, i| g.counters.write_stalls[i]),
    )?;
    counters(
        enc,
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
        enc,
        "tracer_writes_refused",
        "Non-blocking writes refused with EAGAIN or ENOBUFS because the pipe, FIFO or AF_UNIX socket was full, by kind",
        None,
        per_channel(|g, i| g.counters.writes_refused[i]),
    )?;
    counters(
        enc,
        "tracer_eventfd_overflows",
        "eventfd writes refused with EAGAIN on a saturated counter (notifications dropped)",
        None,
        all.iter()
            .filter(|g| g.counters.eventfd_overflows > 0)
            .map(|g| (group_labels(g), g.counters.eventfd_overflows)),
    )?;
    counters(
        enc,
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

    Ok(())
}
