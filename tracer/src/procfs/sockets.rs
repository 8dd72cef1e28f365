//! What a socket is connected to, from the process's network namespace (`/proc/PID/net/*`),
//! keyed by socket inode (the `socket:[INODE]` of `/proc/PID/fd`).

use std::{collections::HashMap, net::SocketAddr, os::unix::ffi::OsStrExt};

use procfs::{
    net::{TcpState, UdpState},
    process::Process,
};

/// Address family and a one-line description ("tcp 10.0.0.1:5432 -> 10.0.0.2:41000 established").
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SocketInfo {
    pub family: u16,
    pub description: Vec<u8>,
}

#[derive(Debug, Default)]
pub struct SocketTable {
    by_inode: HashMap<u64, SocketInfo>,
}

fn family_of(addr: &SocketAddr) -> u16 {
    if addr.is_ipv4() {
        libc::AF_INET as u16
    } else {
        libc::AF_INET6 as u16
    }
}

fn unspecified(addr: &SocketAddr) -> bool {
    addr.ip().is_unspecified() && addr.port() == 0
}

/// "tcp 127.0.0.1:80 -> 127.0.0.1:5000 established", "tcp listening on 0.0.0.0:80".
pub fn describe_inet(proto: &str, local: &SocketAddr, remote: &SocketAddr, state: &str) -> String {
    if state == "listen" {
        format!("{proto} listening on {local}")
    } else if unspecified(remote) {
        format!("{proto} {local} {state}")
    } else {
        format!("{proto} {local} -> {remote} {state}")
    }
}

fn tcp_state(s: &TcpState) -> &'static str {
    match s {
        TcpState::Established => "established",
        TcpState::SynSent => "syn-sent",
        TcpState::SynRecv => "syn-recv",
        TcpState::FinWait1 | TcpState::FinWait2 => "fin-wait",
        TcpState::TimeWait => "time-wait",
        TcpState::Close => "closed",
        TcpState::CloseWait => "close-wait",
        TcpState::LastAck => "last-ack",
        TcpState::Listen => "listen",
        TcpState::Closing => "closing",
        _ => "other",
    }
}

fn udp_state(s: &UdpState) -> &'static str {
    match s {
        UdpState::Established => "connected",
        _ => "unconnected",
    }
}

impl SocketTable {
    /// Reads the tables of `pid`'s network namespace; missing tables are skipped.
    pub fn read(pid: u32) -> Self {
        let mut t = SocketTable::default();
        let Ok(p) = Process::new(pid as i32) else { return t };
        for (proto, entries) in [("tcp", p.tcp()), ("tcp6", p.tcp6())] {
            for e in entries.into_iter().flatten() {
                let d = describe_inet(proto, &e.local_address, &e.remote_address, tcp_state(&e.state));
                t.insert(e.inode, family_of(&e.local_address), d.into_bytes());
            }
        }
        for (proto, entries) in [("udp", p.udp()), ("udp6", p.udp6())] {
            for e in entries.into_iter().flatten() {
                let d = describe_inet(proto, &e.local_address, &e.remote_address, udp_state(&e.state));
                t.insert(e.inode, family_of(&e.local_address), d.into_bytes());
            }
        }
        for e in p.unix().into_iter().flatten() {
            let mut d = b"unix ".to_vec();
            match &e.path {
                Some(path) => d.extend_from_slice(path.as_os_str().as_bytes()),
                None => d.extend_from_slice(b"(unnamed)"),
            }
            t.insert(e.inode, libc::AF_UNIX as u16, d);
        }
        t
    }

    fn insert(&mut self, inode: u64, family: u16, description: Vec<u8>) {
        self.by_inode.insert(inode, SocketInfo { family, description });
    }

    pub fn get(&self, inode: u64) -> Option<&SocketInfo> {
        self.by_inode.get(&inode)
    }
}

/// How often a namespace's tables may be read again: reading `/proc/PID/net/tcp` walks the
/// kernel's whole TCP hash table (`established_get_first`), about a millisecond per read on a
/// host with plenty of memory, whatever the number of sockets.
const REFRESH_NS: u64 = 10_000_000_000;
/// Tables not used for this long are dropped (their namespace may be gone).
const IDLE_NS: u64 = 60_000_000_000;

/// What a cached table says of a socket.
#[derive(Debug, PartialEq, Eq)]
pub enum Lookup {
    Found(SocketInfo),
    /// Not in tables read after the socket was made: in none (unbound, unconnected, closed).
    Absent,
    /// Made after the last read, which is too recent to read again: ask later.
    Later,
}

/// Socket tables kept between describe passes, by network namespace (they belong to the
/// namespace, not to a process, so a host's processes share one read).
#[derive(Debug, Default)]
pub struct TableCache {
    by_netns: HashMap<u64, (u64, SocketTable)>,
}

impl TableCache {
    /// The socket `inode`, made at `opened_ns`, of `tgid` in namespace `netns` (CLOCK_MONOTONIC).
    pub fn lookup(&mut self, tgid: u32, netns: u64, inode: u64, opened_ns: u64, now_ns: u64) -> Lookup {
        self.lookup_with(netns, inode, opened_ns, now_ns, || SocketTable::read(tgid))
    }

    fn lookup_with(
        &mut self,
        netns: u64,
        inode: u64,
        opened_ns: u64,
        now_ns: u64,
        read: impl FnOnce() -> SocketTable,
    ) -> Lookup {
        let fresh = match self.by_netns.get(&netns) {
            Some((_, t)) if t.get(inode).is_some() => false,
            Some((read_ns, _)) if opened_ns < *read_ns => return Lookup::Absent,
            Some((read_ns, _)) if now_ns.saturating_sub(*read_ns) < REFRESH_NS => return Lookup::Later,
            _ => true,
        };
        if fresh {
            self.by_netns.insert(netns, (now_ns, read()));
        }
        match self.by_netns.get(&netns).and_then(|(_, t)| t.get(inode)) {
            Some(i) => Lookup::Found(i.clone()),
            None => Lookup::Absent,
        }
    }

    /// Drops tables not read again for a minute.
    pub fn trim(&mut self, now_ns: u64) {
        self.by_netns
            .retain(|_, (read_ns, _)| now_ns.saturating_sub(*read_ns) < IDLE_NS);
    }
}

/// The inode of a `socket:[INODE]` link target.
pub fn socket_inode(target: &[u8]) -> Option<u64> {
    let inner = target.strip_prefix(b"socket:[")?.strip_suffix(b"]")?;
    std::str::from_utf8(inner).ok()?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inode_and_descriptions() {
        assert_eq!(socket_inode(b"socket:[4242]"), Some(4242));
        assert_eq!(socket_inode(b"pipe:[4242]"), None);
        assert_eq!(socket_inode(b"socket:[x]"), None);
        let a: SocketAddr = "10.0.0.1:5432".parse().unwrap_or_else(|e| panic!("{e}"));
        let b: SocketAddr = "10.0.0.2:41000".parse().unwrap_or_else(|e| panic!("{e}"));
        let any: SocketAddr = "0.0.0.0:0".parse().unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            describe_inet("tcp", &a, &b, "established"),
            "tcp 10.0.0.1:5432 -> 10.0.0.2:41000 established"
        );
        assert_eq!(
            describe_inet("tcp", &a, &any, "listen"),
            "tcp listening on 10.0.0.1:5432"
        );
        assert_eq!(
            describe_inet("udp", &a, &any, "unconnected"),
            "udp 10.0.0.1:5432 unconnected"
        );
        assert_eq!(family_of(&a), libc::AF_INET as u16);
    }

    #[test]
    fn tables_are_read_again_only_for_newer_sockets_and_not_too_often() {
        const S: u64 = 1_000_000_000;
        let mut c = TableCache::default();
        let table = |inodes: &[u64]| {
            let mut t = SocketTable::default();
            for i in inodes {
                t.insert(*i, libc::AF_UNIX as u16, b"unix x".to_vec());
            }
            t
        };
        let found = |l: Lookup| matches!(l, Lookup::Found(_));
        let mut reads = 0;
        assert!(found(c.lookup_with(1, 7, 0, S, || {
            reads += 1;
            table(&[7])
        })));
        // Older than the read and not in it: in no table; no read.
        assert_eq!(c.lookup_with(1, 8, S / 2, 2 * S, || unreachable!()), Lookup::Absent);
        // Newer than the read, which is recent: later.
        assert_eq!(c.lookup_with(1, 9, 2 * S, 3 * S, || unreachable!()), Lookup::Later);
        // Ten seconds on: read again.
        assert!(found(c.lookup_with(1, 9, 2 * S, 12 * S, || {
            reads += 1;
            table(&[7, 9])
        })));
        assert_eq!(reads, 2);
        // Another namespace has its own table.
        assert_eq!(c.lookup_with(2, 7, 0, 12 * S, || table(&[])), Lookup::Absent);
        c.trim(100 * S);
        assert!(c.by_netns.is_empty());
    }

    #[test]
    fn reads_its_own_sockets() {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap_or_else(|e| panic!("{e}"));
        let t = SocketTable::read(std::process::id());
        let found = t.by_inode.values().any(|i| {
            String::from_utf8_lossy(&i.description).contains(&format!(
                "listening on {}",
                l.local_addr().map(|a| a.to_string()).unwrap_or_default()
            ))
        });
        assert!(found, "{t:?}");
    }
}
