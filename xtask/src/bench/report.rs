//! The figures of a run: the table printed at the end and the JSON written to `--out`.

use std::process::Command;

use super::{Options, churn::Row, ingest::Ingest, latency, python, soak, web};

/// Every workload's figures (empty or `None` for the ones not run).
pub(super) struct Results {
    pub(super) rows: Vec<Row>,
    pub(super) ingest: Vec<Ingest>,
    /// (tracked fds, base KiB, loaded KiB, bytes per tracked fd).
    pub(super) memory: Option<(u64, u64, u64, f64)>,
    pub(super) nginx: Option<web::Report>,
    pub(super) python: Option<python::Report>,
    pub(super) soak: Option<soak::Soak>,
    pub(super) latency: Option<latency::Report>,
}

impl Results {
    pub(super) fn print(&self, machine: &str, o: &Options) {
        println!(
            "\nMachine: {machine}; medians of {} run(s) per configuration{}",
            o.runs,
            if o.quick {
                " (quick mode: tiny N, figures meaningless)"
            } else {
                ""
            }
        );
        if !self.rows.is_empty() {
            println!(
                "{:<26} {:<34} {:>10} {:>7} {:>12} {:>12} {:>6}",
                "workload", "configuration", "ns/op", "ratio", "+ns/event", "agent ns/ev", "lost"
            );
        }
        for r in &self.rows {
            println!(
                "{:<26} {:<34} {:>10.0} {:>6.2}x {:>12.0} {:>12} {:>6}",
                r.workload,
                r.config,
                r.median_ns_per_op,
                r.ratio,
                r.added_ns_per_event,
                r.agent_cpu_ns_per_event
                    .map_or_else(|| "-".into(), |v| format!("{v:.0}")),
                r.lost.map_or_else(|| "-".into(), |v| v.to_string())
            );
        }
        if !self.ingest.is_empty() {
            println!("\nIngest (churn open x2 under `tracer run`):");
            println!(
                "{:<8} {:>9} {:>14} {:>10} {:>9} {:>12}",
                "stacks", "ring MiB", "events/s", "records", "lost", "agent RSS"
            );
        }
        for i in &self.ingest {
            println!(
                "{:<8} {:>9} {:>14.0} {:>10} {:>9} {:>9} KiB",
                i.mode, i.ring_mib, i.events_per_s, i.records, i.lost, i.max_rss_kib
            );
        }
        if let Some((mem_fds, mem_base, mem_loaded, mem_per_fd)) = self.memory {
            println!(
                "\nMemory: {mem_fds} outstanding fds tracked: agent anonymous RSS {mem_loaded} KiB vs {mem_base} KiB holding none: {mem_per_fd:.0} bytes per tracked fd"
            );
        }
        if let Some(n) = &self.nginx {
            n.print();
        }
        if let Some(p) = &self.python {
            p.print();
        }
        if let Some(s) = &self.soak {
            s.print();
        }
        if let Some(l) = &self.latency {
            l.print();
        }
    }

    pub(super) fn json(&self, machine: &str, o: &Options) -> String {
        let (mem_fds, mem_base, mem_loaded, mem_per_fd) = self.memory.unwrap_or((0, 0, 0, f64::NAN));
        let mut j = String::from("{\n");
        j.push_str(&format!(
            "  \"machine\": {},\n  \"quick\": {},\n  \"runs\": {},\n",
            json_str(machine),
            o.quick,
            o.runs
        ));
        j.push_str("  \"churn\": [\n");
        for (i, r) in self.rows.iter().enumerate() {
            j.push_str(&format!(
                "    {{\"workload\": {}, \"config\": {}, \"median_ns_per_op\": {}, \"ratio\": {}, \"added_ns_per_event\": {}, \"agent_cpu_ns_per_event\": {}, \"lost\": {}, \"agent_max_rss_kib\": {}, \"runs\": {}}}{}\n",
                json_str(&r.workload),
                json_str(&r.config),
                num(r.median_ns_per_op),
                num(r.ratio),
                num(r.added_ns_per_event),
                r.agent_cpu_ns_per_event.map_or_else(|| "null".into(), num),
                opt(r.lost),
                opt(r.agent_max_rss_kib),
                r.runs,
                if i + 1 < self.rows.len() { "," } else { "" }
            ));
        }
        j.push_str("  ],\n  \"ingest\": [\n");
        for (k, i) in self.ingest.iter().enumerate() {
            j.push_str(&format!(
                "    {{\"stack\": {}, \"ring_mib\": {}, \"events_per_s\": {}, \"records\": {}, \"lost\": {}, \"agent_max_rss_kib\": {}}}{}\n",
                json_str(i.mode),
                i.ring_mib,
                num(i.events_per_s),
                i.records,
                i.lost,
                i.max_rss_kib,
                if k + 1 < self.ingest.len() { "," } else { "" }
            ));
        }
        j.push_str(&format!(
            "  ],\n  \"memory\": {{\"tracked_fds\": {mem_fds}, \"base_rss_anon_kib\": {mem_base}, \"loaded_rss_anon_kib\": {mem_loaded}, \"bytes_per_fd\": {}}},\n",
            num(mem_per_fd)
        ));
        j.push_str(&format!(
            "  \"nginx\": {},\n  \"python\": {},\n  \"soak\": {},\n  \"latency\": {}\n}}\n",
            self.nginx.as_ref().map_or_else(|| "null".into(), web::Report::json),
            self.python.as_ref().map_or_else(|| "null".into(), python::Report::json),
            self.soak.as_ref().map_or_else(|| "null".into(), soak::Soak::json),
            self.latency
                .as_ref()
                .map_or_else(|| "null".into(), latency::Report::json)
        ));
        j
    }
}

pub(super) fn machine() -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|c| {
            c.lines()
                .find(|l| l.starts_with("model name"))
                .map(|l| l.split(':').nth(1).unwrap_or("").trim().to_owned())
        })
        .unwrap_or_default();
    let kernel = Command::new("uname")
        .arg("-r")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned());
    let cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0);
    format!("{cores} cores ({cpu}), Linux {}", kernel.unwrap_or_default())
}

pub(super) fn json_str(s: &str) -> String {
    let mut o = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => o.push_str("\\\""),
            '\\' => o.push_str("\\\\"),
            c if (c as u32) < 0x20 => o.push_str(&format!("\\u{:04x}", c as u32)),
            c => o.push(c),
        }
    }
    o.push('"');
    o
}

pub(super) fn num(x: f64) -> String {
    if x.is_finite() {
        format!("{x:.3}")
    } else {
        "null".into()
    }
}

pub(super) fn opt<T: std::fmt::Display>(x: Option<T>) -> String {
    x.map_or_else(|| "null".into(), |v| v.to_string())
}
