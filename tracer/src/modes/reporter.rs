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
    eprintln!("{}", output::stats::line(&status, &crate::runtime::cost::now()));
}
