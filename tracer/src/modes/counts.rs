//! `tracer counts` (hidden): every process's open-fd count once, as the agent's always-on mode
//! reads it each tick: from the `iter/task` program, or from /proc where it cannot load (the
//! first line says which). For tests and for checking a kernel.

use std::io::Write as _;

use anyhow::Context as _;

use crate::{
    output,
    probes::{CountSource, ProbeOptions, Probes},
    procfs::fd_counts,
};

pub fn run() -> anyhow::Result<i32> {
    let opts = ProbeOptions {
        fd_counts: true,
        syscall_hook: false,
        ..ProbeOptions::default()
    };
    let mut probes = Probes::load(opts).context("cannot load the programs")?;
    let mut counts = Vec::new();
    let source = match probes.count_source().cloned() {
        Some(CountSource::Iterator) => {
            let mut buf = Vec::new();
            probes
                .read_fd_counts(&mut buf, &mut counts)
                .context("running the fd-count iterator")?;
            "iterator".to_owned()
        }
        Some(CountSource::Proc(reason)) => {
            fd_counts::host_counts(std::process::id(), &mut counts);
            format!("/proc (the iterator cannot be used: {reason})")
        }
        None => anyhow::bail!("the programs were loaded without fd counts"),
    };
    counts.sort_by_key(|c| c.tgid);
    let mut out = std::io::stdout().lock();
    output::text::write_counts(&mut out, &source, &counts)?;
    out.flush()?;
    Ok(0)
}
