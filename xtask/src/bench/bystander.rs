//! The bystander workload: what an untraced process pays while tracer watches another one.

use std::process::Command;

use super::{
    Env, Options,
    churn::{Config, Row, measure},
    guard::Guarded,
    have, median,
    watch::Watch,
    web,
};
use crate::Result;

/// The price an untraced process pays while tracer watches another one, beside the floor
/// (empty programs on the same hooks: what any such tracer costs) and, with `--baseline`, the
/// tracer before a change.
pub(super) fn rows(env: &Env, o: &Options, rows: &mut Vec<Row>) -> Result {
    eprintln!("bench: bystander");
    let n: u64 = if o.quick { 2_000 } else { 200_000 };
    #[derive(Clone, Copy, PartialEq)]
    enum Setup {
        Alone,
        Floor,
        BpftraceFloor,
        Watching,
        Baseline,
    }
    let mut setups = vec![Setup::Alone, Setup::Floor];
    if have("bpftrace") {
        setups.push(Setup::BpftraceFloor);
    }
    setups.push(Setup::Watching);
    if o.baseline.is_some() {
        setups.push(Setup::Baseline);
    }
    let mut samples: Vec<Vec<f64>> = vec![Vec::new(); setups.len()];
    let target = Guarded::spawn(Command::new("sleep").arg("3600"), "sleep")?;
    for round in 0..usize::from(!o.quick) + o.runs {
        for (i, setup) in setups.iter().enumerate() {
            let ns = match setup {
                Setup::Alone => measure(env, Config::Untraced, "open", n, 1)?.ns_per_op,
                Setup::Floor => {
                    let floor = web::start_floor(&env.tracer)?;
                    let ns = measure(env, Config::Untraced, "open", n, 1)?.ns_per_op;
                    let _ = floor.finish();
                    ns
                }
                Setup::BpftraceFloor => {
                    let bt = web::start_script(env, "floor.bt", web::FLOOR_SCRIPT)?;
                    let ns = measure(env, Config::Untraced, "open", n, 1)?.ns_per_op;
                    let _ = bt.finish();
                    ns
                }
                Setup::Watching | Setup::Baseline => {
                    let bin = match (setup, &o.baseline) {
                        (Setup::Baseline, Some(b)) => b.clone(),
                        _ => env.tracer.clone(),
                    };
                    let tracer = Watch::start(&bin, &[target.id()], "dwarf")?;
                    let ns = measure(env, Config::Untraced, "open", n, 1)?.ns_per_op;
                    tracer.finish()?;
                    ns
                }
            };
            // The first round warms up.
            if round >= usize::from(!o.quick) {
                samples[i].push(ns);
            }
        }
    }
    drop(target);
    let base = median(&mut samples[0].clone());
    for (setup, s) in setups.iter().zip(&samples) {
        let ns = median(&mut s.clone());
        let config = match setup {
            Setup::Alone => "no tracer running",
            Setup::Floor => "floor: tracer floor (empty)",
            Setup::BpftraceFloor => "floor: bpftrace, same hooks",
            Setup::Watching => "tracer watching another process",
            Setup::Baseline => "baseline tracer watching another",
        };
        rows.push(Row {
            workload: "bystander churn open x1".into(),
            config: config.into(),
            median_ns_per_op: ns,
            ratio: ns / base,
            added_ns_per_event: (ns - base) / 2.0,
            agent_cpu_ns_per_event: None,
            lost: None,
            agent_max_rss_kib: None,
            runs: s.len(),
        });
    }
    Ok(())
}
