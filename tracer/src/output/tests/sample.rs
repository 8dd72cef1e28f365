//! The report every golden file renders: suspects and outstanding sites, incidents, SysV
//! orphans, locks, zombies, signals and stalls, with hostile names (newlines, quotes, escapes,
//! bytes that are not UTF-8) wherever a name can appear.

use std::{collections::BTreeMap, os::unix::ffi::OsStrExt};

use crate::{
    model::{
        Frame, ProcessSummary, Report, SiteReport, Stack,
        frame::FrameAddress,
        incidents::{IncidentReport, PreviousClose, TopSiteReport},
        ipc::{IpcReport, OrphanGroup},
        locks::{HeldReport, LockReport, Party, WaiterReport},
        signals::{HandlerReport, SigHandler, SignalCountsReport, SignalReport, ZOMBIE_FIX, ZombieReport},
        stalls::{StallReport, StallWriter},
        system::{SystemLimits, Usage},
        text_and_hex,
    },
    state::{Resource, StackId, incidents::IncidentKind, stalls::ChannelKind},
};

fn site(pid: u32, count: u32, growth: f64, example: &[u8], stack: Vec<Frame>) -> SiteReport {
    let (ex, hex) = text_and_hex(example);
    SiteReport {
        pid,
        resource: Resource::Fd,
        kind: "file",
        family: None,
        count,
        estimated: None,
        allocations: u64::from(count) + 3,
        growth_per_min: growth,
        example: Some(ex),
        example_hex: hex,
        example_bytes: Some(example.into()),
        oldest_age_ms: 61_500,
        time_to_limit_s: (growth > 0.0).then_some(98.5),
        before_attach: false,
        stopped_by_limit: None,
        released_at_exit: None,
        stack: Stack {
            id: StackId(1),
            frames: stack,
        },
    }
}

fn frame(addr: u64, f: &str, file: &str, line: u32) -> Frame {
    Frame {
        address: FrameAddress::Native(addr),
        function: Some(f.into()),
        file: Some(file.into()),
        line: Some(line),
        module: Some("/usr/bin/svc".into()),
        ..Default::default()
    }
}

pub(crate) fn sample() -> Report {
    let stack = vec![
        Frame {
            address: FrameAddress::Native(0x7f0000001011),
            function: Some("__libc_open64".into()),
            file: None,
            line: None,
            module: Some("/usr/lib/x86_64-linux-gnu/libc.so.6".into()),
            ..Default::default()
        },
        frame(0x5555_0000_1194, "load_config", "src/config.c", 20),
        frame(0x5555_0000_11ba, "main", "src/main.c", 36),
    ];
    let leak = site(4242, 120, 600.0, b"/etc/new\nline", stack.clone());
    let mut odd = site(
        4242,
        2,
        0.0,
        b"/tmp/\x1b[31mred\xff\\",
        vec![
            Frame {
                address: FrameAddress::Native(0x7f0000001a2b),
                offset: Some(0x1a2b),
                ..Default::default()
            }
            .in_module(std::path::Path::new(std::ffi::OsStr::from_bytes(
                b"/opt/new\nlib\x1b[0m\xff.so",
            ))),
        ],
    );
    odd.stack.id = StackId(2);
    let mut sock = site(4243, 4, 0.0, b"socket:[991]", Vec::new());
    sock.kind = "socket";
    sock.family = Some("inet6");
    sock.before_attach = true;
    sock.stack.id = StackId::NONE;
    sock.time_to_limit_s = None;
    let mut stopped = site(4243, 61, 1830.0, b"socket:[992]", stack.clone());
    stopped.kind = "socket";
    stopped.family = Some("inet");
    stopped.stopped_by_limit = Some("EMFILE");
    stopped.time_to_limit_s = Some(0.0);
    stopped.stack.id = StackId(3);
    // A Python service's leak that CPython's teardown emptied at exit; names as odd as Python
    // allows (a qualified name with a newline, a `;` and quotes).
    let py = |function: &str, line: u32| Frame::python(function, "/srv/app/pool.py", Some(line));
    let mut python = site(
        4244,
        0,
        1940.3,
        b"/etc/hostname",
        vec![stack[0].clone(), py("Pool.get;\n\"x\"", 34), py("<module>", 97)],
    );
    python.released_at_exit = Some(42);
    python.allocations = 42;
    python.time_to_limit_s = None;
    python.stack.id = StackId(4);
    let mut by_kind = BTreeMap::new();
    by_kind.insert("file", 122);
    let (comm, comm_hex) = text_and_hex(b"svc\xfe\n");
    Report {
        lost_events: 7,
        losses: crate::model::Losses {
            ring_buffer_full: 5,
            traced_map_full: 1,
            stack_not_captured: 3,
            undecodable: 2,
            map_update_failed: 0,
        },
        processes: vec![
            ProcessSummary {
                pid: 4242,
                comm,
                comm_hex,
                comm_bytes: b"svc\xfe\n".to_vec(),
                open_fds: 122,
                fd_soft_limit: Some(1024),
                fd_hard_limit: None,
                exited: false,
                by_kind: by_kind.clone(),
                allocations: 130,
                limit_failures: 0,
                zombies: 0,
                parent: Some(1),
                runtime: None,
            },
            ProcessSummary {
                pid: 4243,
                comm: "child".into(),
                comm_hex: None,
                comm_bytes: b"child".to_vec(),
                open_fds: 4,
                fd_soft_limit: Some(1024),
                fd_hard_limit: Some(4096),
                exited: true,
                by_kind,
                allocations: 6,
                limit_failures: 2,
                zombies: 3,
                parent: Some(4242),
                runtime: None,
            },
            ProcessSummary {
                pid: 4244,
                comm: "python3.11".into(),
                comm_hex: None,
                comm_bytes: b"python3.11".to_vec(),
                open_fds: 1,
                fd_soft_limit: Some(1024),
                fd_hard_limit: Some(4096),
                exited: true,
                by_kind: BTreeMap::new(),
                allocations: 43,
                limit_failures: 0,
                zombies: 0,
                parent: Some(4242),
                runtime: Some("CPython 3.11.2".into()),
            },
        ],
        suspects: vec![leak.clone(), stopped.clone(), python],
        outstanding: vec![leak, sock, odd, stopped],
        incidents: incidents(&stack),
        ipc: IpcReport {
            orphans: vec![OrphanGroup {
                resource: Resource::SemSet,
                count: 8,
                ids: vec![22, 23],
                keys: vec!["key IPC_PRIVATE".into()],
                creator_pids: vec![5001, 5002],
                oldest_age_ms: 804,
                stack: stack.clone().into(),
            }],
            live: 8,
            removed: [1, 0, 2],
        },
        locks: vec![lock(&stack)],
        zombies: vec![ZombieReport {
            pid: 4242,
            zombies: 80,
            max_zombies: 82,
            reaped: 20,
            mean_reap_delay_ms: Some(950.5),
            growth_per_min: 1639.2,
            growing: true,
            piled: true,
            sigchld: SignalCountsReport {
                generated: 100,
                delivered: 20,
                ignored: 0,
                coalesced: 80,
                failed: 0,
            },
            sigchld_handler: Some(HandlerReport {
                address: SigHandler::Function(0x555500001250),
                stack: vec![frame(0x5555_0000_1250, "on_sigchld", "src/main.c", 12)].into(),
            }),
            fix: Some(ZOMBIE_FIX),
        }],
        signals: vec![SignalReport {
            pid: 4242,
            signal: "SIGCHLD".into(),
            number: 17,
            counts: SignalCountsReport {
                generated: 100,
                delivered: 20,
                ignored: 0,
                coalesced: 80,
                failed: 0,
            },
        }],
        stalls: vec![StallReport {
            kind: ChannelKind::Pipe,
            inode: 991_234,
            capacity_bytes: Some(65536),
            max_capacity_bytes: Some(1_048_576),
            blocked_writes: 12,
            blocked_ms_total: 2400,
            blocked_ms_max: 450,
            eagain: 3,
            enobufs: 0,
            writers: vec![4242],
            readers: vec![4243],
            longest: Some(StallWriter {
                pid: 4242,
                tid: 4244,
                fd: 5,
                blocked_ms: 450,
                stack: stack.clone().into(),
            }),
            refused: None,
            first_age_ms: 9000,
            last_age_ms: 100,
            fix: "raise the pipe size",
        }],
        system: Some(SystemLimits {
            sem_sets: Usage {
                used: 8,
                max: Some(32000),
            },
            shm_segments: Usage {
                used: 0,
                max: Some(4096),
            },
            msg_queues: Usage { used: 0, max: None },
            file_handles: Usage {
                used: 381,
                max: Some(2_466_190),
            },
            nr_open: Some(1_048_576),
            pipe_max_size: Some(1_048_576),
            wmem_max: Some(212_992),
        }),
        escalation: Some(escalation()),
    }
}

/// The always-on section, a hostile name included.
fn escalation() -> crate::model::escalation::EscalationReport {
    use crate::model::escalation::{EscalatedProcess, EscalationReport, ReleasedProcess, RisingProcess};
    let (comm, comm_hex) = text_and_hex(b"svc\xfe\n");
    EscalationReport {
        counts_from: "iterator",
        counted_processes: 212,
        syscall_hook_attached: true,
        budget_processes: 8,
        budget_records_per_s: 20_000,
        refused: 1,
        escalated: vec![
            EscalatedProcess {
                pid: 4242,
                comm: comm.clone(),
                comm_hex: comm_hex.clone(),
                comm_bytes: b"svc\xfe\n".to_vec(),
                reason: "rising",
                parent: None,
                escalated_for_s: 12.5,
                open_at_escalation: 120,
                open_now: 520,
                records_per_s: 850.0,
                named: true,
            },
            EscalatedProcess {
                pid: 4243,
                comm: "worker".into(),
                comm_hex: None,
                comm_bytes: b"worker".to_vec(),
                reason: "inherited",
                parent: Some(4242),
                escalated_for_s: 3.0,
                open_at_escalation: 8,
                open_now: 8,
                records_per_s: 2.0,
                named: false,
            },
        ],
        released: vec![ReleasedProcess {
            pid: 4100,
            comm: "nginx".into(),
            comm_hex: None,
            comm_bytes: b"nginx".to_vec(),
            reason: "quiet",
            escalated_for_s: 30.5,
            released_ago_s: 12.0,
        }],
        rising: vec![RisingProcess {
            pid: 4242,
            comm,
            comm_hex,
            comm_bytes: b"svc\xfe\n".to_vec(),
            open_fds: 520,
            fd_soft_limit: Some(1024),
            time_to_limit_s: 15.3,
            escalated: true,
        }],
    }
}

fn incidents(stack: &[Frame]) -> Vec<IncidentReport> {
    let base = IncidentReport {
        pid: 4242,
        kind: IncidentKind::LimitFailure,
        syscall: "openat".into(),
        errno: Some("EMFILE"),
        count: 2,
        fd: None,
        value: Some(1024),
        first_age_ms: 1500,
        last_age_ms: 20,
        holder_pid: None,
        stack: stack.to_vec().into(),
        previous_close: None,
        top_site: None,
    };
    let emfile = IncidentReport {
        top_site: Some(TopSiteReport {
            kind: "socket",
            family: Some("inet"),
            count: 980,
            share: 0.957,
            before_attach: false,
            stack: stack.to_vec().into(),
        }),
        ..base.clone()
    };
    vec![
        emfile,
        IncidentReport {
            kind: IncidentKind::DoubleClose,
            syscall: "close".into(),
            errno: Some("EBADF"),
            count: 1,
            fd: Some(3),
            value: None,
            previous_close: Some(PreviousClose {
                tid: 4250,
                age_ms: 2,
                stack: Stack::default(),
            }),
            ..base.clone()
        },
        IncidentReport {
            kind: IncidentKind::SelectBeyondFdSetSize,
            syscall: "pselect6".into(),
            errno: None,
            count: 3,
            value: Some(1101),
            ..base.clone()
        },
        IncidentReport {
            kind: IncidentKind::EventfdOverflow,
            syscall: "write".into(),
            errno: Some("EAGAIN"),
            count: 40,
            fd: Some(6),
            value: Some(u64::MAX - 1),
            ..base.clone()
        },
        IncidentReport {
            kind: IncidentKind::LockFailure,
            syscall: "flock".into(),
            errno: Some("EWOULDBLOCK"),
            count: 1,
            fd: Some(4),
            value: None,
            holder_pid: Some(4243),
            ..base
        },
    ]
}

fn lock(stack: &[Frame]) -> LockReport {
    let raw: &[u8] = b"/run/app\n\x1b[1m.lock\xff";
    let (file, file_hex) = text_and_hex(raw);
    LockReport {
        file: Some(file),
        file_hex,
        file_bytes: Some(raw.into()),
        dev: "fe:0".into(),
        ino: 1234,
        held: vec![
            HeldReport {
                pid: 4242,
                lock: "flock",
                exclusive: true,
                start: 0,
                end: i64::MAX,
                held_ms: 2500,
                waited_ms: 0,
                waiters_seen: 1,
                traced: true,
                stack: stack.to_vec().into(),
            },
            HeldReport {
                pid: 4300,
                lock: "posix",
                exclusive: false,
                start: 0,
                end: 99,
                held_ms: 1000,
                waited_ms: 0,
                waiters_seen: 1,
                traced: false,
                stack: Stack::default(),
            },
        ],
        waiting: vec![WaiterReport {
            pid: 4243,
            exclusive: true,
            waiting_ms: 1200,
        }],
        waits: 1,
        total_wait_ms: 1500,
        max_wait_ms: 1500,
        max_waiter: Some(Party {
            pid: 4243,
            stack: stack.to_vec().into(),
        }),
        max_wait_holder: Some(Party {
            pid: 4242,
            stack: Stack::default(),
        }),
        longest_hold: None,
        failures: 1,
        suspect: true,
    }
}
