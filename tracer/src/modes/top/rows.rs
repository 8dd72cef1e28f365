//! What `tracer top` shows, computed from the report the agent's analysis builds (the same
//! data `/report` and `watch` show): one row per process, the system line, sorting, filtering.

use std::cmp::Ordering;

pub use crate::cli::Column;
use crate::{
    model::{ProcessSummary, Report, system::Usage},
    output::{escape::escape_bytes, text::age},
    state::Resource,
};

/// One process of the table.
#[derive(Clone, Debug, PartialEq)]
pub struct ProcessRow {
    pub pid: u32,
    /// Escaped for a terminal.
    pub comm: String,
    pub fds: usize,
    pub soft_limit: Option<u64>,
    /// Open fds by kind, most first: `file:120 socket:4`.
    pub kinds: String,
    /// Summed slope of the process's fd sites (fds per minute).
    pub growth_per_min: f64,
    /// Shortest time to EMFILE among its suspects, seconds.
    pub time_to_emfile_s: Option<f64>,
    pub suspects: usize,
    pub zombies: usize,
    /// SysV objects it created that exist now.
    pub sysv: u32,
    /// Locks it is waiting for now.
    pub lock_waits: usize,
    /// Problems: limit failures, descriptor misuse, select beyond FD_SETSIZE (calls).
    pub problems: u64,
    pub exited: bool,
}

impl ProcessRow {
    pub fn limit_pct(&self) -> Option<f64> {
        self.soft_limit
            .filter(|l| *l > 0)
            .map(|l| self.fds as f64 * 100.0 / l as f64)
    }

    /// Worth colouring: a suspect or a problem.
    pub fn flagged(&self) -> bool {
        self.suspects > 0 || self.problems > 0
    }
}

impl Column {
    pub const ALL: [Column; 12] = [
        Column::Pid,
        Column::Comm,
        Column::Fds,
        Column::Pct,
        Column::Growth,
        Column::Emfile,
        Column::Suspects,
        Column::Zombies,
        Column::Sysv,
        Column::LockWaits,
        Column::Problems,
        Column::Kinds,
    ];

    pub fn title(self) -> &'static str {
        match self {
            Column::Pid => "PID",
            Column::Comm => "COMM",
            Column::Fds => "FDS",
            Column::Pct => "%LIM",
            Column::Growth => "GROW/M",
            Column::Emfile => "EMFILE",
            Column::Suspects => "SUS",
            Column::Zombies => "ZOM",
            Column::Sysv => "IPC",
            Column::LockWaits => "LKW",
            Column::Problems => "PRB",
            Column::Kinds => "BY KIND",
        }
    }

    /// The key that sorts by this column (shown at the bottom of the screen).
    pub fn key(self) -> char {
        match self {
            Column::Pid => 'p',
            Column::Comm => 'c',
            Column::Fds => 'f',
            Column::Pct => '%',
            Column::Growth => 'g',
            Column::Emfile => 'e',
            Column::Suspects => 's',
            Column::Zombies => 'z',
            Column::Sysv => 'i',
            Column::LockWaits => 'l',
            Column::Problems => 'x',
            Column::Kinds => 'k',
        }
    }

    pub fn from_key(c: char) -> Option<Column> {
        Column::ALL.into_iter().find(|col| col.key() == c)
    }

    /// Width in characters (the last column takes what is left).
    pub fn width(self) -> u16 {
        match self {
            Column::Pid => 7,
            Column::Comm => 15,
            Column::Fds => 6,
            Column::Pct => 5,
            Column::Growth => 7,
            Column::Emfile => 7,
            Column::Suspects | Column::Zombies | Column::Sysv | Column::LockWaits | Column::Problems => 3,
            Column::Kinds => 0,
        }
    }

    /// Text columns sort up, numbers down (the biggest first), like top.
    fn descending(self) -> bool {
        !matches!(self, Column::Pid | Column::Comm | Column::Emfile)
    }

    pub fn cell(self, r: &ProcessRow) -> String {
        match self {
            Column::Pid => r.pid.to_string(),
            Column::Comm => r.comm.clone(),
            Column::Fds => r.fds.to_string(),
            Column::Pct => r.limit_pct().map_or_else(|| "-".into(), |p| format!("{p:.0}")),
            Column::Growth => format!("{:.1}", r.growth_per_min),
            Column::Emfile => r
                .time_to_emfile_s
                .map_or_else(|| "-".into(), |t| age((t * 1000.0) as u64)),
            Column::Suspects => r.suspects.to_string(),
            Column::Zombies => r.zombies.to_string(),
            Column::Sysv => r.sysv.to_string(),
            Column::LockWaits => r.lock_waits.to_string(),
            Column::Problems => r.problems.to_string(),
            Column::Kinds => r.kinds.clone(),
        }
    }

    fn compare(self, a: &ProcessRow, b: &ProcessRow) -> Ordering {
        let f = |x: Option<f64>| x.unwrap_or(f64::INFINITY);
        match self {
            Column::Pid => a.pid.cmp(&b.pid),
            Column::Comm => a.comm.cmp(&b.comm),
            Column::Fds => a.fds.cmp(&b.fds),
            Column::Pct => a.limit_pct().unwrap_or(0.0).total_cmp(&b.limit_pct().unwrap_or(0.0)),
            Column::Growth => a.growth_per_min.total_cmp(&b.growth_per_min),
            Column::Emfile => f(a.time_to_emfile_s).total_cmp(&f(b.time_to_emfile_s)),
            Column::Suspects => a.suspects.cmp(&b.suspects),
            Column::Zombies => a.zombies.cmp(&b.zombies),
            Column::Sysv => a.sysv.cmp(&b.sysv),
            Column::LockWaits => a.lock_waits.cmp(&b.lock_waits),
            Column::Problems => a.problems.cmp(&b.problems),
            Column::Kinds => a.kinds.cmp(&b.kinds),
        }
    }
}

/// Sorts rows by `col` (its natural direction, flipped by `reverse`); ties by pid.
pub fn sort(rows: &mut [ProcessRow], col: Column, reverse: bool) {
    rows.sort_by(|a, b| {
        let o = col.compare(a, b);
        let o = if col.descending() != reverse { o.reverse() } else { o };
        o.then(a.pid.cmp(&b.pid))
    });
}

fn row(r: &Report, p: &ProcessSummary) -> ProcessRow {
    let fd_sites = r
        .outstanding
        .iter()
        .filter(|s| s.pid == p.pid && s.resource == Resource::Fd);
    let growth_per_min = fd_sites.map(|s| s.growth_per_min).sum::<f64>();
    let suspects: Vec<_> = r.suspects.iter().filter(|s| s.pid == p.pid).collect();
    let mut kinds: Vec<(&str, usize)> = p.by_kind.iter().map(|(k, n)| (*k, *n)).collect();
    kinds.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
    ProcessRow {
        pid: p.pid,
        comm: escape_bytes(&p.comm_bytes),
        fds: p.open_fds,
        soft_limit: p.fd_soft_limit,
        kinds: kinds
            .iter()
            .map(|(k, n)| format!("{k}:{n}"))
            .collect::<Vec<_>>()
            .join(" "),
        growth_per_min: (growth_per_min * 10.0).round() / 10.0,
        time_to_emfile_s: suspects
            .iter()
            .filter(|s| s.resource == Resource::Fd)
            .filter_map(|s| s.time_to_limit_s)
            .min_by(f64::total_cmp),
        suspects: suspects.len(),
        zombies: p.zombies,
        sysv: r
            .outstanding
            .iter()
            .filter(|s| {
                s.pid == p.pid && matches!(s.resource, Resource::SemSet | Resource::ShmSegment | Resource::MsgQueue)
            })
            .map(|s| s.count)
            .sum(),
        lock_waits: r
            .locks
            .iter()
            .map(|l| l.waiting.iter().filter(|w| w.pid == p.pid).count())
            .sum(),
        problems: r.incidents.iter().filter(|i| i.pid == p.pid).map(|i| i.count).sum(),
        exited: p.exited,
    }
}

/// Every process of the report as a row.
pub fn rows(r: &Report) -> Vec<ProcessRow> {
    r.processes.iter().map(|p| row(r, p)).collect()
}

/// Rows whose command contains `filter` (as escaped on screen).
pub fn filtered(rows: &[ProcessRow], filter: &str) -> Vec<ProcessRow> {
    rows.iter()
        .filter(|r| filter.is_empty() || r.comm.contains(filter))
        .cloned()
        .collect()
}

/// The system line: file handles against fs.file-max, SysV sets against their limits, losses.
pub fn system_line(r: &Report) -> String {
    let of = |u: Usage| match u.max {
        Some(m) => format!("{}/{m}", u.used),
        None => u.used.to_string(),
    };
    let limits = match &r.system {
        Some(s) => format!(
            "files {} sem {} shm {} msg {}",
            of(s.file_handles),
            of(s.sem_sets),
            of(s.shm_segments),
            of(s.msg_queues)
        ),
        None => "system limits unknown".into(),
    };
    format!(
        "{limits}  lost {}  procs {}  suspects {}",
        r.lost_events,
        r.processes.len(),
        r.suspects.len()
    )
}

/// A plain line per row (the table when stdout is not a terminal), columns as on screen.
pub fn plain_line(r: &ProcessRow) -> String {
    let mut s = String::new();
    for col in Column::ALL {
        let cell = col.cell(r);
        let w = usize::from(col.width());
        match col {
            Column::Comm => s.push_str(&format!("{:<w$.w$} ", cell)),
            Column::Kinds => s.push_str(&cell),
            _ => s.push_str(&format!("{cell:>w$} ")),
        }
    }
    s.trim_end().to_owned()
}

pub fn plain_header() -> String {
    let mut s = String::new();
    for col in Column::ALL {
        let w = usize::from(col.width());
        match col {
            Column::Comm => s.push_str(&format!("{:<w$} ", col.title())),
            Column::Kinds => s.push_str(col.title()),
            _ => s.push_str(&format!("{:>w$} ", col.title())),
        }
    }
    s
}
