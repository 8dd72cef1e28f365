//! `/proc/locks` (fs/locks.c `lock_get_status`): locks that exist already when tracing starts, and
//! the holders of a file a traced process starts waiting for (who may not be traced at all).

use crate::state::locks::{FileId, KnownHolder};
use tracer_common::lock::family;

/// One lock line: `1: FLOCK  ADVISORY  WRITE 12345 fe:00:10011287 0 EOF`, or a process blocked
/// on that lock: `1: -> FLOCK  ADVISORY  WRITE 12346 fe:00:10011287 0 EOF`. Leases and
/// delegations are skipped.
pub fn parse_line(line: &str) -> Option<KnownHolder> {
    let mut f = line.split_whitespace().peekable();
    let _id = f.next()?;
    let waiting = f.next_if_eq(&"->").is_some();
    let kind = f.next()?;
    let fam = match kind {
        "FLOCK" => family::FLOCK,
        "POSIX" | "OFDLCK" => family::POSIX,
        _ => return None,
    };
    let _mode = f.next()?;
    let exclusive = match f.next()? {
        "WRITE" => true,
        "READ" => false,
        _ => return None,
    };
    let pid: i64 = f.next()?.parse().ok()?;
    let mut dev = f.next()?.split(':');
    let major = u32::from_str_radix(dev.next()?, 16).ok()?;
    let minor = u32::from_str_radix(dev.next()?, 16).ok()?;
    let ino: u64 = dev.next()?.parse().ok()?;
    let start: i64 = f.next()?.parse().ok()?;
    let end: i64 = match f.next()? {
        "EOF" => i64::MAX,
        n => n.parse().ok()?,
    };
    Some(KnownHolder {
        // The kernel's internal dev_t, as the filelock tracepoints carry it.
        file: FileId {
            dev: (major << 20) | minor,
            ino,
        },
        family: fam,
        // OFD locks show pid -1: no process owns them.
        tgid: u32::try_from(pid).unwrap_or(0),
        exclusive,
        start,
        end,
        waiting,
    })
}

pub fn parse(text: &str) -> Vec<KnownHolder> {
    text.lines().filter_map(parse_line).collect()
}

pub fn read() -> Vec<KnownHolder> {
    std::fs::read_to_string("/proc/locks")
        .map(|t| parse(&t))
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines() {
        let text = "1: FLOCK  ADVISORY  WRITE 25753 fe:00:10117228 0 EOF\n\
                    1: -> FLOCK  ADVISORY  WRITE 25760 fe:00:10117228 0 EOF\n\
                    2: POSIX  ADVISORY  READ 4242 08:01:77 100 199\n\
                    3: OFDLCK ADVISORY  WRITE -1 00:2f:9 0 EOF\n\
                    4: LEASE  ACTIVE    READ 17 00:2f:10 0 EOF\n";
        let l = parse(text);
        assert_eq!(l.len(), 4, "leases skipped: {l:?}");
        assert_eq!(
            l[0].file,
            FileId {
                dev: 0xfe << 20,
                ino: 10_117_228
            }
        );
        assert_eq!(
            (l[0].family, l[0].tgid, l[0].exclusive, l[0].end),
            (family::FLOCK, 25753, true, i64::MAX)
        );
        assert!(!l[0].waiting);
        assert_eq!((l[1].tgid, l[1].waiting, l[1].file), (25760, true, l[0].file));
        assert_eq!(
            (l[2].family, l[2].exclusive, l[2].start, l[2].end),
            (family::POSIX, false, 100, 199)
        );
        assert_eq!(l[2].file.dev, (8 << 20) | 1);
        assert_eq!(l[3].tgid, 0);
    }
}
