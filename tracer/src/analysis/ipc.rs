//! SysV IPC: objects whose creators exited without removing them (orphans), grouped by the
//! code that created them, and the time until a growing site fills its system table.

use super::MS;
use crate::{
    model::{
        Stack,
        ipc::{IpcReport, OrphanGroup},
        system::SystemLimits,
    },
    state::{Resource, State},
};

pub fn ipc(state: &State, now_ns: u64) -> IpcReport {
    let mut groups: Vec<OrphanGroup> = Vec::new();
    for o in state.ipc.orphans() {
        let resource = Resource::from_ipc(o.kind);
        let stack = Stack::unresolved(o.stack);
        let age = now_ns.saturating_sub(o.created_ns) / MS;
        let key = crate::state::ipc::describe_key(o.key);
        let one = OrphanGroup {
            resource,
            count: 1,
            ids: vec![o.id],
            keys: vec![key],
            creator_pids: o.creator.into_iter().collect(),
            oldest_age_ms: age,
            stack,
        };
        match groups
            .iter_mut()
            .find(|g| g.resource == resource && g.stack.id == one.stack.id)
        {
            Some(g) => g.absorb(one),
            None => groups.push(one),
        }
    }
    groups.sort_by(|a, b| b.count.cmp(&a.count).then(a.resource.as_str().cmp(b.resource.as_str())));
    IpcReport {
        orphans: groups,
        live: state.ipc.objects.values().filter(|o| o.creator.is_some()).count() as u64,
        removed: state.ipc.removed,
    }
}

/// Seconds until a SysV table is full at a site's rate (None without a limit or growth).
pub fn time_to_ipc_limit(resource: Resource, growth_per_min: f64, system: Option<&SystemLimits>) -> Option<f64> {
    let s = system?;
    let usage = match resource {
        Resource::SemSet => s.sem_sets,
        Resource::ShmSegment => s.shm_segments,
        Resource::MsgQueue => s.msg_queues,
        _ => return None,
    };
    let max = usage.max?;
    (growth_per_min > 0.0).then(|| max.saturating_sub(usage.used) as f64 / (growth_per_min / 60.0))
}
