//! `tracer floor`: the benchmark's floor (see [`crate::probes::Floor`]): empty programs on exactly
//! tracer's hooks, attached until SIGINT or SIGTERM.

use tokio::signal::unix::{SignalKind, signal as unix_signal};

pub async fn run() -> anyhow::Result<i32> {
    let mut interrupt = unix_signal(SignalKind::interrupt())?;
    let mut terminate = unix_signal(SignalKind::terminate())?;
    let floor = crate::probes::Floor::attach()?;
    eprintln!("tracer: floor attached");
    tokio::select! {
        _ = interrupt.recv() => {}
        _ = terminate.recv() => {}
    }
    drop(floor);
    Ok(0)
}
