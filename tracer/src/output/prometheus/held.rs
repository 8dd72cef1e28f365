//! What the processes hold now: gauges per command and container (open fds and leak suspects
//! by kind, processes, limits, time to EMFILE, zombies) and SysV objects.

use prometheus_client::{encoding::DescriptorEncoder, registry::Unit};

use super::families::{SYSV, gauges, group_labels, kind_name, with};
use crate::{
    model::metrics::{GroupMetrics, MetricsSnapshot},
    state::counters::KINDS,
};

pub(super) fn encode(enc: &mut DescriptorEncoder, s: &MetricsSnapshot) -> std::fmt::Result {
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
        enc,
        "tracer_open_fds",
        "File descriptors open now, by command, fd kind and container",
        None,
        per_kind(|g, k| g.open_fds[k]),
    )?;
    gauges(
        enc,
        "tracer_leak_suspects",
        "Allocation sites whose open count keeps growing now (leak suspects), by command, fd kind and container",
        None,
        per_kind(|g, k| g.suspects[k]),
    )?;
    gauges(
        enc,
        "tracer_processes",
        "Traced processes, by command and container (exited ones during their grace period)",
        None,
        live.iter().map(|g| (group_labels(g), g.processes)),
    )?;
    gauges(
        enc,
        "tracer_fd_soft_limit",
        "The lowest soft RLIMIT_NOFILE of a process in the group",
        None,
        live.iter().filter_map(|g| Some((group_labels(g), g.fd_soft_limit?))),
    )?;
    gauges(
        enc,
        "tracer_worst_fd_ratio",
        "The highest ratio of open fds to the soft RLIMIT_NOFILE of a process in the group",
        None,
        live.iter().filter_map(|g| Some((group_labels(g), g.worst_fd_ratio?))),
    )?;
    gauges(
        enc,
        "tracer_time_to_fd_limit",
        "The shortest time until a leak suspect's process reaches its soft RLIMIT_NOFILE (EMFILE) at its current rate",
        Some(&Unit::Seconds),
        live.iter()
            .filter_map(|g| Some((group_labels(g), g.time_to_fd_limit_s?))),
    )?;
    gauges(
        enc,
        "tracer_zombies",
        "Children exited and not reaped, by the parent's command and container",
        None,
        live.iter()
            .filter(|g| g.zombies > 0)
            .map(|g| (group_labels(g), g.zombies)),
    )?;
    gauges(
        enc,
        "tracer_zombie_piles",
        "Parents whose zombie children piled up (at least 10) while their SIGCHLDs merged: one waitpid per SIGCHLD",
        None,
        live.iter()
            .filter(|g| g.zombie_piles > 0)
            .map(|g| (group_labels(g), g.zombie_piles)),
    )?;
    gauges(
        enc,
        "tracer_sysv_objects",
        "SysV IPC objects created by traced processes that exist now",
        None,
        (0..3).map(|i| (vec![("resource", SYSV[i].to_owned())], s.sysv.objects[i])),
    )?;
    gauges(
        enc,
        "tracer_sysv_orphans",
        "SysV IPC objects whose creator exited without removing them",
        None,
        (0..3).map(|i| (vec![("resource", SYSV[i].to_owned())], s.sysv.orphans[i])),
    )?;

    Ok(())
}
