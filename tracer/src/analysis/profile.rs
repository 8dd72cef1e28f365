//! In-use profiles for pprof backends (Pyroscope, Parca, `go tool pprof`): what is open or held
//! now, by the stack that allocated it. Built on the ingest task with stacks unresolved, like
//! the report; `output::pprof` encodes them once the symbolizer has resolved the stacks.

use std::sync::Arc;

use crate::{
    model::{
        Stack,
        profile::{LabelValue, Profile, ProfileKind, ProfileSample},
    },
    state::{Resource, StackId, State, sites::SiteStats},
};

fn labels(pid: u32, comm: &[u8], kind: &str, container: &str) -> Vec<(&'static str, LabelValue)> {
    vec![
        ("pid", LabelValue::Num(i64::from(pid))),
        ("comm", LabelValue::Bytes(comm.to_vec())),
        ("kind", LabelValue::Str(kind.to_owned())),
        ("container", LabelValue::Str(container.to_owned())),
    ]
}

/// One sample per (process, kind, stack) of `items`, its value how many there are; the process's
/// name and container while its state is kept (empty after: SysV objects outlive creators).
fn grouped<'a>(state: &State, items: impl Iterator<Item = (u32, &'a str, StackId)>) -> Vec<ProfileSample> {
    let mut groups: std::collections::HashMap<(u32, &str, StackId), i64> = Default::default();
    for key in items {
        *groups.entry(key).or_default() += 1;
    }
    groups
        .into_iter()
        .map(|((pid, kind, stack), n)| {
            let (comm, container): (&[u8], Arc<str>) = match state.processes.get(&pid) {
                Some(p) => (&p.comm, p.container.clone()),
                None => (b"", Arc::from("")),
            };
            ProfileSample {
                stack: Stack::unresolved(stack),
                value: n,
                labels: labels(pid, comm, kind, &container),
            }
        })
        .collect()
}

fn unix_now_ns() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as i64)
}

/// Builds a profile of what exists now. Only live processes' fds count (an exited process has
/// nothing open); SysV objects outlive their creators, so orphans are in the sysv profile.
pub fn build(state: &State, kind: ProfileKind) -> Profile {
    let mut samples = Vec::new();
    match kind {
        ProfileKind::Fds => {
            for (_, st) in state.sites.iter() {
                // `estimated`: sampled stacks stand for the allocations of their period, and
                // allocations left unsampled are represented by those (their site adds 0).
                if st.key.resource != Resource::Fd || st.estimated == 0 {
                    continue;
                }
                let Some(p) = state.processes.get(&st.key.tgid).filter(|p| p.is_alive()) else {
                    continue;
                };
                samples.push(ProfileSample {
                    stack: Stack::unresolved(st.key.stack),
                    value: i64::try_from(st.estimated).unwrap_or(i64::MAX),
                    labels: labels(p.tgid, &p.comm, site_kind(st), &p.container),
                });
            }
        }
        ProfileKind::Sysv => {
            let objects = state
                .ipc
                .objects
                .values()
                .filter_map(|o| Some((o.creator?, Resource::from_ipc(o.kind).as_str(), o.stack)));
            samples.extend(grouped(state, objects));
        }
        ProfileKind::Locks => {
            let held = state.locks.files.values().flat_map(|f| {
                f.held.iter().filter(|h| h.traced).map(|h| {
                    let lock = if h.family == tracer_common::lock::family::FLOCK {
                        Resource::Flock
                    } else {
                        Resource::PosixLock
                    };
                    (h.tgid, lock.as_str(), h.stack)
                })
            });
            samples.extend(grouped(state, held));
        }
    }
    // Stable order: biggest first, then by pid.
    samples.sort_by(|a, b| b.value.cmp(&a.value).then_with(|| pid_of(a).cmp(&pid_of(b))));
    Profile {
        kind,
        time_unix_ns: unix_now_ns(),
        samples,
        comments: vec![format!(
            "tracer: {} now, by the stack that made them (a snapshot, not a delta)",
            kind.noun()
        )],
    }
}

fn pid_of(s: &ProfileSample) -> i64 {
    s.labels
        .iter()
        .find_map(|(k, v)| match (k, v) {
            (&"pid", LabelValue::Num(n)) => Some(*n),
            _ => None,
        })
        .unwrap_or(0)
}

fn site_kind(st: &SiteStats) -> &'static str {
    st.display_kind.unwrap_or(st.key.kind).as_str()
}
