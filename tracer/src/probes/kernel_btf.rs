//! Field offsets of kernel structs, read from the running kernel's BTF
//! (`/sys/kernel/btf/vmlinux`), for programs that walk kernel structs without CO-RE (the
//! fd-count iterator). Only what that needs: find a struct by name, find a member by name
//! (through anonymous struct and union members), return its byte offset.
//!
//! The format is the kernel's `Documentation/bpf/btf.rst`: a header, a type section of
//! `struct btf_type` records each followed by kind-specific data, and a string section.

use std::path::Path;

#[derive(Debug, thiserror::Error)]
pub enum BtfError {
    #[error("cannot read {path}")]
    Read {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("kernel BTF is malformed: {0}")]
    Malformed(&'static str),
    #[error("kernel BTF has no struct {0}")]
    NoStruct(String),
    #[error("kernel BTF: struct {0} has no member {1}")]
    NoMember(String, String),
    #[error("kernel BTF: {0}.{1} is a bit field")]
    BitField(String, String),
}

const MAGIC: u16 = 0xeb9f;
const KIND_STRUCT: u32 = 4;
const KIND_UNION: u32 = 5;

/// The parsed type and string sections, with where each type id starts.
pub struct KernelBtf {
    data: Vec<u8>,
    strings: usize,
    strings_len: usize,
    /// Byte offset (in `data`) of each type id; id 0 is `void`.
    starts: Vec<usize>,
}

impl KernelBtf {
    pub fn from_sys_fs() -> Result<KernelBtf, BtfError> {
        Self::from_file(Path::new("/sys/kernel/btf/vmlinux"))
    }

    pub fn from_file(path: &Path) -> Result<KernelBtf, BtfError> {
        let data = std::fs::read(path).map_err(|source| BtfError::Read {
            path: path.display().to_string(),
            source,
        })?;
        Self::parse(data)
    }

    pub fn parse(data: Vec<u8>) -> Result<KernelBtf, BtfError> {
        let u16_at = |i: usize| data.get(i..i + 2).map(|b| u16::from_le_bytes([b[0], b[1]]));
        if u16_at(0) != Some(MAGIC) {
            return Err(BtfError::Malformed("bad magic (not little-endian BTF)"));
        }
        let u32_at = |i: usize| -> Result<usize, BtfError> {
            data.get(i..i + 4)
                .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]) as usize)
                .ok_or(BtfError::Malformed("truncated header"))
        };
        let hdr_len = u32_at(4)?;
        let (type_off, type_len) = (u32_at(8)?, u32_at(12)?);
        let (str_off, str_len) = (u32_at(16)?, u32_at(20)?);
        let types = hdr_len + type_off;
        let strings = hdr_len + str_off;
        if types + type_len > data.len() || strings + str_len > data.len() {
            return Err(BtfError::Malformed("sections past the end"));
        }
        let mut btf = KernelBtf {
            data,
            strings,
            strings_len: str_len,
            starts: vec![0],
        };
        let end = types + type_len;
        let mut at = types;
        while at < end {
            btf.starts.push(at);
            let info = btf.u32(at + 4)?;
            let vlen = (info & 0xffff) as usize;
            let extra = match (info >> 24) & 0x1f {
                1 | 14 | 17 => 4,             // int, var, decl_tag
                3 => 12,                      // array
                4 | 5 | 15 | 19 => 12 * vlen, // struct, union, datasec, enum64
                6 | 13 => 8 * vlen,           // enum, func_proto
                2 | 7..=12 | 16 | 18 => 0,    // ptr, fwd, typedef, qualifiers, func, float, type_tag
                _ => return Err(BtfError::Malformed("unknown type kind")),
            };
            at += 12 + extra;
        }
        Ok(btf)
    }

    fn u32(&self, at: usize) -> Result<u32, BtfError> {
        self.data
            .get(at..at + 4)
            .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .ok_or(BtfError::Malformed("truncated type"))
    }

    fn name(&self, off: u32) -> &[u8] {
        let start = self.strings + off as usize;
        let limit = self.strings + self.strings_len;
        let bytes = self.data.get(start..limit).unwrap_or_default();
        let end = bytes.iter().position(|b| *b == 0).unwrap_or(bytes.len());
        &bytes[..end]
    }

    /// The type id of the struct named `name` that has members (not a forward declaration).
    fn struct_id(&self, name: &str) -> Option<usize> {
        (1..self.starts.len()).find(|id| {
            let at = self.starts[*id];
            let (Ok(name_off), Ok(info)) = (self.u32(at), self.u32(at + 4)) else {
                return false;
            };
            (info >> 24) & 0x1f == KIND_STRUCT && info & 0xffff > 0 && self.name(name_off) == name.as_bytes()
        })
    }

    /// Bit offset of `member` in the struct or union `id`, looking into anonymous members.
    fn member_bits(&self, id: usize, member: &[u8], depth: u32) -> Result<Option<(u32, bool)>, BtfError> {
        let at = *self.starts.get(id).ok_or(BtfError::Malformed("type id out of range"))?;
        let info = self.u32(at + 4)?;
        let kind = (info >> 24) & 0x1f;
        if (kind != KIND_STRUCT && kind != KIND_UNION) || depth > 8 {
            return Ok(None);
        }
        let bitfields = info >> 31 == 1;
        for i in 0..(info & 0xffff) as usize {
            let m = at + 12 + 12 * i;
            let (name_off, ty, raw) = (self.u32(m)?, self.u32(m + 4)?, self.u32(m + 8)?);
            let (bits, is_bitfield) = if bitfields {
                (raw & 0x00ff_ffff, raw >> 24 != 0)
            } else {
                (raw, false)
            };
            let name = self.name(name_off);
            if name == member {
                return Ok(Some((bits, is_bitfield)));
            }
            if name.is_empty()
                && let Some((inner, bf)) = self.member_bits(self.resolve(ty as usize)?, member, depth + 1)?
            {
                return Ok(Some((bits + inner, bf)));
            }
        }
        Ok(None)
    }

    /// Follows typedefs and qualifiers to the type they name.
    fn resolve(&self, mut id: usize) -> Result<usize, BtfError> {
        for _ in 0..16 {
            let at = *self.starts.get(id).ok_or(BtfError::Malformed("type id out of range"))?;
            match (self.u32(at + 4)? >> 24) & 0x1f {
                8..=11 | 18 => id = self.u32(at + 8)? as usize,
                _ => return Ok(id),
            }
        }
        Err(BtfError::Malformed("typedef chain too long"))
    }

    /// Byte offset of `strukt.member`.
    pub fn offset_of(&self, strukt: &str, member: &str) -> Result<u32, BtfError> {
        let id = self
            .struct_id(strukt)
            .ok_or_else(|| BtfError::NoStruct(strukt.to_owned()))?;
        match self.member_bits(id, member.as_bytes(), 0)? {
            Some((bits, false)) if bits % 8 == 0 => Ok(bits / 8),
            Some(_) => Err(BtfError::BitField(strukt.to_owned(), member.to_owned())),
            None => Err(BtfError::NoMember(strukt.to_owned(), member.to_owned())),
        }
    }

    /// Types in the type section.
    #[cfg(test)]
    fn types(&self) -> usize {
        self.starts.len() - 1
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A BTF blob with `struct outer { int a; union { long b; }; }` (anonymous union at byte 8).
    fn sample() -> Vec<u8> {
        let strings = b"\0int\0long\0outer\0a\0b\0";
        let (int, long, outer, a, b) = (1u32, 5u32, 10u32, 16u32, 18u32);
        let mut types: Vec<u32> = Vec::new();
        // id 1: int, 4 bytes
        types.extend([int, 1 << 24, 4, 32]);
        // id 2: long, 8 bytes
        types.extend([long, 1 << 24, 8, 64]);
        // id 3: anonymous union { long b; }
        types.extend([0, (5 << 24) | 1, 8, b, 2, 0]);
        // id 4: struct outer { int a; <anon union> at bit 64 }
        types.extend([outer, (4 << 24) | 2, 16, a, 1, 0, 0, 3, 64]);
        let type_bytes: Vec<u8> = types.iter().flat_map(|v| v.to_le_bytes()).collect();
        let mut data = Vec::new();
        data.extend(MAGIC.to_le_bytes());
        data.extend([1u8, 0]);
        for v in [
            24u32,
            0,
            type_bytes.len() as u32,
            type_bytes.len() as u32,
            strings.len() as u32,
        ] {
            data.extend(v.to_le_bytes());
        }
        data.extend(&type_bytes);
        data.extend(strings);
        data
    }

    #[test]
    fn finds_members_through_anonymous_unions() {
        let btf = KernelBtf::parse(sample()).expect("parses");
        assert_eq!(btf.types(), 4);
        assert_eq!(btf.offset_of("outer", "a").expect("a"), 0);
        assert_eq!(btf.offset_of("outer", "b").expect("b"), 8);
        assert!(matches!(btf.offset_of("outer", "c"), Err(BtfError::NoMember(..))));
        assert!(matches!(btf.offset_of("inner", "a"), Err(BtfError::NoStruct(_))));
    }

    #[test]
    fn refuses_garbage() {
        assert!(matches!(KernelBtf::parse(vec![1, 2, 3]), Err(BtfError::Malformed(_))));
        let mut short = sample();
        short.truncate(30);
        assert!(KernelBtf::parse(short).is_err());
    }

    /// The running kernel's offsets, where there is one to read.
    #[test]
    fn reads_the_running_kernel() {
        let Ok(btf) = KernelBtf::from_sys_fs() else {
            eprintln!("skipped: no /sys/kernel/btf/vmlinux");
            return;
        };
        assert!(btf.types() > 1000);
        let files = btf.offset_of("task_struct", "files").expect("task_struct.files");
        let pid = btf.offset_of("task_struct", "pid").expect("task_struct.pid");
        assert!(files > 0 && pid > 0 && files != pid);
        assert_eq!(btf.offset_of("fdtable", "max_fds").expect("fdtable.max_fds"), 0);
    }
}
