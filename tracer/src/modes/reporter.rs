//! The reporter of `watch` and `run`: asks the ingest task for a report, has the symbolizer
//! worker resolve its stacks and renders it; and the `--stats` line.

use std::{
    fs::File,
    io::{self, Write},
    time::Instant,
};

use anyhow::Context;

use crate::{
    cli::CommonArgs,
    model::ReportOptions,
    output::{self, Heading},
    runtime::{symbolizer::SymbolizerWorker, task::Client},
};

/// Writes reports: asks the ingest task for one, has the symbolizer worker resolve its stacks,
/// renders it here. Nothing of this runs on the task that drains the ring.
pub struct Reporter {
    out: Box<dyn Write>,
    common: CommonArgs,
    symbolizer: SymbolizerWorker,
    started: Instant,
}

impl Reporter {
    pub fn new(common: &CommonArgs) -> anyhow::Result<Self> {
        let out: Box<dyn Write> = match &common.output {
            Some(path) => {
                Box::new(File::create(path).with_context(|| format!("cannot write the report to {}", path.display()))?)
            }
            None => Box::new(io::stdout()),
        };
        Ok(Reporter {
            out,
            common: common.clone(),
            symbolizer: SymbolizerWorker::spawn().context("cannot start the symbolizer")?,
            started: Instant::now(),
        })
    }

    pub async fn report(&mut self, client: &Client, label: &'static str) -> anyhow::Result<()> {
        let opts = ReportOptions {
            min_age_ns: self.common.min_age.as_nanos() as u64,
            top: self.common.top,
            lock_hold_ns: self.common.capture.lock_hold.as_nanos() as u64,
            system: None,
            top_processes: None,
        };
        let report = self.symbolizer.report(client.report(opts).await?).await;
        let heading = Heading {
            elapsed_s: self.started.elapsed().as_secs_f64(),
            label,
            stack_mode: self.common.capture.stack.as_str(),
            all: self.common.all,
            color: output::color_wanted(self.common.output.is_none() && io::IsTerminal::is_terminal(&io::stdout())),
        };
        if self.common.format.is_snapshot()
            && let Some(path) = &self.common.output
        {
            // A picture of the moment: the file holds the latest one.
            self.out =
                Box::new(File::create(path).with_context(|| format!("cannot write the report to {}", path.display()))?);
        }
        output::write(&mut self.out, self.common.format, &report, &heading).context("writing the report")?;
        self.out.flush().context("writing the report")?;
        Ok(())
    }
}

/// The agent's own cost, for `--stats` (and the benchmark, which parses this line).
pub async fn print_stats(client: &Client) {
    let status = client.status().await.unwrap_or_default();
    let cost = crate::runtime::cost::now();
    eprintln!(
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
    );
}

/// The DWARF stack copy sizes, as `stack_copies=` names them.
const STACK_COPY_SIZES: [&str; 5] = ["1k", "2k", "4k", "8k", "16k"];

/// `stage_ns=decode:120,state:340,...`: mean agent nanoseconds per record by stage, and
/// `tick_ms=`: the periodic work's total.
fn stage_fields(c: &crate::tracker::stages::StageClock) -> String {
    use crate::tracker::stages::Stage;
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
fn program_fields(programs: &[crate::probes::ProgramCost]) -> String {
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
