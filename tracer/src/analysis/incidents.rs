//! Incidents: calls that failed on a limit (EMFILE, ENOSPC, EAGAIN), select beyond FD_SETSIZE,
//! descriptor misuse (EBADF, with the earlier close when known).

use super::MS;
use crate::{
    model::{
        Stack,
        incidents::{IncidentReport, PreviousClose, TopSiteReport},
    },
    state::{
        State,
        incidents::{IncidentKind, errno_name},
    },
};

pub fn incidents(state: &State, now_ns: u64) -> Vec<IncidentReport> {
    let mut out: Vec<IncidentReport> = state
        .incidents
        .list
        .iter()
        .map(|i| {
            let previous_close = i.previous_close.map(|c| PreviousClose {
                tid: c.tid,
                age_ms: i.last_ns.saturating_sub(c.ts_ns) / MS,
                stack: Stack::unresolved(c.stack),
            });
            IncidentReport {
                pid: i.tgid,
                kind: i.kind,
                syscall: tracer_common::syscalls::name(i.nr).map_or_else(|| format!("syscall {}", i.nr), str::to_owned),
                errno: (i.errno != 0).then(|| match (i.kind, i.errno) {
                    // The same number; flock(2) and fcntl(2) document it by this name.
                    (IncidentKind::LockFailure, 11) => "EWOULDBLOCK",
                    _ => errno_name(i.errno),
                }),
                count: i.count,
                fd: (i.fd >= 0).then_some(i.fd),
                value: (i.value != 0).then_some(i.value),
                first_age_ms: now_ns.saturating_sub(i.first_ns) / MS,
                last_age_ms: now_ns.saturating_sub(i.last_ns) / MS,
                holder_pid: i.holder,
                stack: Stack::unresolved(i.stack),
                previous_close,
                top_site: i.top_site.map(|t| TopSiteReport {
                    kind: t.kind.as_str(),
                    family: (t.family != 0).then(|| crate::state::kind::family_name(t.family)),
                    count: t.count,
                    share: if t.open == 0 {
                        0.0
                    } else {
                        ((t.count as f64 / t.open as f64) * 1000.0).round() / 1000.0
                    },
                    before_attach: t.before_attach,
                    stack: Stack::unresolved(t.stack),
                }),
            }
        })
        .collect();
    out.sort_by(|a, b| {
        a.pid
            .cmp(&b.pid)
            .then(a.kind.as_str().cmp(b.kind.as_str()))
            .then(b.count.cmp(&a.count))
    });
    out
}
