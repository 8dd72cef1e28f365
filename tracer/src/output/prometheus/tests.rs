//! The exposition, pinned: names, labels, escaping, and what `promtool check metrics` accepts.

use super::*;
use crate::{
    model::{
        health::AgentHealth,
        metrics::{GroupMetrics, SysvMetrics},
    },
    state::FdKind,
};

fn sample() -> MetricsSnapshot {
    let mut g = GroupMetrics {
        comm: b"we\"b\n\\\xff".to_vec(),
        container: "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef".into(),
        processes: 2,
        fd_soft_limit: Some(1024),
        worst_fd_ratio: Some(0.5),
        time_to_fd_limit_s: Some(27.5),
        zombies: 3,
        zombie_piles: 1,
        ..Default::default()
    };
    g.open_fds[FdKind::Socket as usize] = 512;
    g.open_fds[FdKind::File as usize] = 3;
    g.suspects[FdKind::Socket as usize] = 1;
    g.counters.allocations[FdKind::Socket as usize] = 600;
    g.counters.closes[FdKind::Socket as usize] = 88;
    g.counters.limit_failure(43, 24);
    g.counters.lock_wait(2_000_000);
    g.counters.lock_wait(2_000_000_000);
    g.counters.lock_failure(11);
    g.counters.signals_merged_one(17);
    g.counters.misuse[1] = 2;
    g.counters.write_stalls[0] = 12;
    g.counters.write_stall_ns[0] = 2_400_000_000;
    g.counters.writes_refused[3] = 4;
    g.counters.eventfd_overflows = 40;
    let mut own = GroupMetrics {
        comm: b"worker".to_vec(),
        pid: Some(4242),
        processes: 1,
        ..Default::default()
    };
    own.open_fds[FdKind::Pipe as usize] = 2;
    MetricsSnapshot {
        groups: vec![g, own],
        sysv: SysvMetrics {
            objects: [8, 0, 0],
            orphans: [8, 0, 0],
        },
        health: AgentHealth {
            records: 1234,
            kernel_lost: [1, 0, 2],
            cpu_seconds: 1.5,
            resident_bytes: 100 << 20,
            escalation: Some(crate::model::health::EscalationHealth {
                from_iterator: true,
                counted_processes: 212,
                escalated: 2,
                escalations: [3, 1, 1, 1, 1],
                releases: [1, 1, 0, 1],
                refused: 1,
                budget_processes: 8,
                count_reads: 500,
                count_read_errors: 0,
                count_read_seconds: 0.00009,
                syscall_hook: true,
            }),
            ..Default::default()
        },
    }
}

#[test]
fn golden_exposition() {
    for (openmetrics, file) in [(false, "metrics.txt"), (true, "metrics.openmetrics.txt")] {
        let text = encode(sample(), openmetrics).unwrap_or_default();
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("src/output/golden")
            .join(file);
        if std::env::var_os("UPDATE_GOLDEN").is_some() {
            let _ = std::fs::write(&path, &text);
        }
        let golden = std::fs::read_to_string(&path).unwrap_or_default();
        assert_eq!(text, golden, "{file} changed (UPDATE_GOLDEN=1 to accept)");
    }
}

#[test]
fn contract_names_labels_and_escaping() {
    let text = encode(sample(), false).unwrap_or_default();
    // Label values are escaped by the exposition format: quote, backslash, newline.
    assert!(
        text.contains(
            r#"tracer_open_fds{comm="we\"b\\n\\\\\\xff",container="0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",kind="socket"} 512"#
        ),
        "{text}"
    );
    assert!(
        text.contains(r#"tracer_leak_suspects{comm="worker",container="",pid="4242",kind="pipe"} 0"#),
        "{text}"
    );
    assert!(text.contains("tracer_fd_allocations_total{"), "counters end in _total");
    assert!(text.contains("tracer_time_to_fd_limit_seconds{"));
    assert!(text.contains(r#"tracer_lock_wait_seconds_bucket{comm="#));
    assert!(text.contains(r#"le="+Inf"} 2"#), "{text}");
    assert!(text.contains(r#"tracer_kernel_lost_events_total{reason="ring_buffer_full"} 1"#));
    assert!(
        text.contains(r#"errno="EMFILE",syscall="#) || text.contains(r#"syscall="accept",errno="EMFILE""#),
        "{text}"
    );
}
