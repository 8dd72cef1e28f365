//! The agent's own health: losses by reason, records, resyncs, stacks, Python walks, evictions,
//! the size of its state, its CPU and memory, its time by stage and its kernel programs' cost.

use prometheus_client::{encoding::DescriptorEncoder, registry::Unit};

use super::families::{KERNEL_LOSSES, Labels, counters, gauges};
use crate::model::health::AgentHealth;

pub(super) fn encode(enc: &mut DescriptorEncoder, h: &AgentHealth) -> std::fmt::Result {
    let one = |v: u64| vec![(Labels::new(), v)];
    counters(
        enc,
        "tracer_kernel_lost_events",
        "Kernel-side losses, by reason: records dropped on a full ring buffer (the processes they belonged to are read again from /proc), children not followed on a full traced map or clone map, records that arrived without their stack",
        None,
        (0..KERNEL_LOSSES.len()).map(|i| (vec![("reason", KERNEL_LOSSES[i].to_owned())], h.kernel_lost[i])),
    )?;
    counters(
        enc,
        "tracer_agent_lost_events",
        "Agent-side losses, by reason: records it could not decode, kernel map updates that failed (a process not followed, a zombie not watched)",
        None,
        vec![
            (vec![("reason", "undecodable".to_owned())], h.undecodable),
            (vec![("reason", "map_update_failed".to_owned())], h.map_update_failed),
        ],
    )?;
    counters(
        enc,
        "tracer_records",
        "Records received from the kernel",
        None,
        one(h.records),
    )?;
    counters(
        enc,
        "tracer_resyncs",
        "Fd tables read again from /proc after lost records",
        None,
        one(h.resyncs),
    )?;
    counters(
        enc,
        "tracer_resync_fds",
        "Fds a resync removed (lost closes) or added (lost opens)",
        None,
        vec![
            (vec![("change", "removed".to_owned())], h.resync_dropped_fds),
            (vec![("change", "added".to_owned())], h.resync_added_fds),
        ],
    )?;
    counters(
        enc,
        "tracer_allocation_stacks",
        "Allocation stacks by outcome: taken, or skipped under the per-CPU stack budget (--stack-budget; the fd is still counted exactly and the sampled stacks stand for it in the profiles)",
        None,
        vec![
            (vec![("outcome", "taken".to_owned())], h.stacks_taken),
            (vec![("outcome", "skipped".to_owned())], h.stacks_skipped),
        ],
    )?;
    counters(
        enc,
        "tracer_stack_copies",
        "DWARF mode: user stack copies received, by record size in bytes (a thread's copies shrink to its live stack once one of its stacks was unwound to the root)",
        None,
        [1024u32, 2048, 4096, 8192, 16384]
            .iter()
            .zip(h.stack_copies)
            .map(|(bytes, n)| (vec![("bytes", bytes.to_string())], n)),
    )?;
    counters(
        enc,
        "tracer_stack_copies_short",
        "DWARF mode: stacks that ran past a copy shortened to their thread's known stack top (the thread copies its whole --stack-size again)",
        None,
        one(h.short_stack_copies),
    )?;
    counters(
        enc,
        "tracer_python_stacks",
        "Python frame walks at allocations in CPython processes, by outcome: walked, truncated (more than 64 frames: the innermost kept), no_thread_state (a thread without a Python thread state, or past the 64th of the interpreter's list), read_failed (interpreter memory unreadable mid-walk)",
        None,
        crate::tracker::python::OUTCOMES
            .iter()
            .zip(h.python_stacks)
            .map(|(o, n)| (vec![("outcome", (*o).to_owned())], n)),
    )?;
    counters(
        enc,
        "tracer_processes_discovered",
        "Processes first seen through a record (new to a whole-host agent, or their fork was lost)",
        None,
        one(h.discovered),
    )?;
    counters(
        enc,
        "tracer_exits_inferred",
        "Processes found gone without their exit record",
        None,
        one(h.exits_inferred),
    )?;
    counters(
        enc,
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
        enc,
        "tracer_tracked_processes",
        "Processes the agent holds state for",
        None,
        one(h.tracked_processes),
    )?;
    gauges(
        enc,
        "tracer_python_processes",
        "CPython processes whose Python frames the kernel walks (a version tracer reads, --python-frames on)",
        None,
        one(h.python_processes),
    )?;
    gauges(
        enc,
        "tracer_tracked_fds",
        "Fds the agent holds state for",
        None,
        one(h.tracked_fds),
    )?;
    gauges(
        enc,
        "tracer_sites",
        "Allocation sites the agent holds",
        None,
        one(h.sites),
    )?;
    gauges(
        enc,
        "tracer_stacks",
        "Distinct stacks the agent holds",
        None,
        one(h.stacks),
    )?;
    gauges(
        enc,
        "tracer_stack_store",
        "Approximate memory of the stored stacks",
        Some(&Unit::Bytes),
        one(h.stack_bytes),
    )?;
    counters(
        enc,
        "tracer_agent_cpu",
        "CPU time the agent used (user and system)",
        Some(&Unit::Seconds),
        vec![(Labels::new(), h.cpu_seconds)],
    )?;
    gauges(
        enc,
        "tracer_agent_resident_memory",
        "The agent's resident memory, ring buffers included",
        Some(&Unit::Bytes),
        one(h.resident_bytes),
    )?;
    counters(
        enc,
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
            enc,
            "tracer_bpf_program_runs",
            "Runs of each of tracer's kernel programs while BPF statistics were on",
            None,
            h.programs.iter().map(|p| (vec![("program", p.name.clone())], p.runs)),
        )?;
        counters(
            enc,
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
