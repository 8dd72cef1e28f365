//! The `--stats` line of `watch`, `run` and `top`: the agent's own counters and cost, which the
//! benchmark parses.

use crate::{
    model::health::{Cost, ProgramCost},
    tracker::{
        Status,
        stages::{Stage, StageClock},
    },
};

/// `tracer-stats: records=.. lost=.. cpu_ms=..`: one line of `key=value` fields.
pub fn line(status: &Status, cost: &Cost) -> String {
    format!(
        "tracer-stats: records={} lost={} cpu_ms={:.1} max_rss_kib={} rss_anon_kib={} tracked_fds={} stacks={} {} stack_copies={} short_stack_copies={} {}{}",
        status.records,
        status.lost,
        cost.cpu_seconds * 1e3,
        cost.max_rss_kib,
        cost.rss_anon_kib,
        status.tracked_fds,
        status.stacks,
        status.losses.pairs(),
        STACK_COPY_SIZES
            .iter()
            .zip(status.stack_copies)
            .map(|(size, n)| format!("{size}:{n}"))
            .collect::<Vec<_>>()
            .join(","),
        status.short_stack_copies,
        stage_fields(&status.stages),
        program_fields(&status.programs)
    )
}

/// The DWARF stack copy sizes, as `stack_copies=` names them.
const STACK_COPY_SIZES: [&str; 5] = ["1k", "2k", "4k", "8k", "16k"];

/// `stage_ns=decode:120,state:340,...`: mean agent nanoseconds per record by stage, and
/// `tick_ms=`: the periodic work's total.
fn stage_fields(c: &StageClock) -> String {
    let per_record: Vec<String> = Stage::ALL
        .iter()
        .filter_map(|s| Some(format!("{}:{:.0}", s.name(), c.ns_per_record(*s)?)))
        .collect();
    format!(
        "stage_ns={} stage_sampled={} tick_ms={:.1}",
        if per_record.is_empty() {
            "-".into()
        } else {
            per_record.join(",")
        },
        c.sampled,
        c.seconds(Stage::Tick) * 1e3
    )
}

/// ` bpf=sys_exit:runs:ns_per_run,...` when the kernel timed the programs.
fn program_fields(programs: &[ProgramCost]) -> String {
    let timed: Vec<String> = programs
        .iter()
        .filter_map(|p| Some(format!("{}:{}:{:.0}", p.name, p.runs, p.ns_per_run()?)))
        .collect();
    if timed.is_empty() {
        String::new()
    } else {
        format!(" bpf={}", timed.join(","))
    }
}
