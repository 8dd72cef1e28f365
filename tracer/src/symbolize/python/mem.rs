//! Reads of another process's memory (`/proc/PID/mem`, held open), and CPython's objects in it.

use std::{fs::File, os::unix::fs::FileExt};

use super::{PythonError, offsets::Layout};

/// Longest name or file name read (bytes of string data).
pub const MAX_STR: usize = 4096;
/// Longest location table read.
pub const MAX_LINETABLE: usize = 64 * 1024;

pub struct Mem {
    pub pid: i32,
    file: File,
}

impl Mem {
    pub fn open(pid: i32) -> Result<Self, PythonError> {
        let file = File::open(format!("/proc/{pid}/mem")).map_err(|source| PythonError::Mem { pid, source })?;
        Ok(Self { pid, file })
    }

    pub fn read(&self, addr: u64, buf: &mut [u8]) -> Result<(), PythonError> {
        if addr == 0 {
            return Err(PythonError::Read {
                pid: self.pid,
                addr,
                len: buf.len(),
            });
        }
        self.file.read_exact_at(buf, addr).map_err(|_| PythonError::Read {
            pid: self.pid,
            addr,
            len: buf.len(),
        })
    }

    pub fn u64(&self, addr: u64) -> Result<u64, PythonError> {
        let mut b = [0u8; 8];
        self.read(addr, &mut b)?;
        Ok(u64::from_le_bytes(b))
    }

    pub fn vec(&self, addr: u64, len: usize) -> Result<Vec<u8>, PythonError> {
        let mut v = vec![0u8; len];
        self.read(addr, &mut v)?;
        Ok(v)
    }

    /// A `bytes` object's contents (at most `max` bytes: longer is an error, not a truncation).
    pub fn bytes_object(&self, addr: u64, l: &Layout, max: usize) -> Result<Vec<u8>, PythonError> {
        let size = self.u64(addr + u64::from(l.bytes_size))?;
        if size as usize > max {
            return Err(PythonError::Implausible {
                what: "bytes length",
                value: size,
            });
        }
        self.vec(addr + u64::from(l.bytes_sval), size as usize)
    }

    /// A compact `str` as UTF-8 (lossy: code points that are not valid scalar values, lone
    /// surrogates, become U+FFFD).
    pub fn str_object(&self, addr: u64, l: &Layout) -> Result<String, PythonError> {
        let mut head = [0u8; 8];
        self.read(addr + u64::from(l.str_length), &mut head)?;
        let length = u64::from_le_bytes(head);
        let mut st = [0u8; 4];
        self.read(addr + u64::from(l.str_state), &mut st)?;
        let state = u32::from_le_bytes(st);
        // `struct { interned:2; kind:3; compact:1; ascii:1; ... }` (3.11-3.14, GIL build).
        let kind = ((state >> 2) & 7) as usize;
        let compact = (state >> 5) & 1 != 0;
        let ascii = (state >> 6) & 1 != 0;
        if !compact || !matches!(kind, 1 | 2 | 4) {
            return Err(PythonError::Implausible {
                what: "str state",
                value: u64::from(state),
            });
        }
        let n = (length as usize).saturating_mul(kind);
        if n > MAX_STR {
            return Err(PythonError::Implausible {
                what: "str length",
                value: length,
            });
        }
        let data = addr + u64::from(if ascii { l.str_ascii_size } else { l.str_compact_size });
        let raw = self.vec(data, n)?;
        Ok(match kind {
            1 if ascii => String::from_utf8_lossy(&raw).into_owned(),
            1 => raw.iter().map(|&b| char::from(b)).collect(),
            2 => raw
                .as_chunks::<2>()
                .0
                .iter()
                .map(|c| char::from_u32(u32::from(u16::from_le_bytes(*c))).unwrap_or('\u{fffd}'))
                .collect(),
            _ => raw
                .as_chunks::<4>()
                .0
                .iter()
                .map(|c| char::from_u32(u32::from_le_bytes(*c)).unwrap_or('\u{fffd}'))
                .collect(),
        })
    }
}
