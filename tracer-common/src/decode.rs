//! Decoding ring-buffer bytes into typed records, without copying (records are borrowed from the
//! ring buffer, which hands out 8-byte aligned samples).

use crate::{
    config::{DATA_MAX, STACK_COPY_MAX},
    fd::{StackRecord, SyscallCore, SyscallRecord},
    lock::LockRecord,
    process::{EXEC_FILENAME_MAX, ExecRecord, ExitRecord, ForkRecord, ReapRecord},
    python::{PY_FRAMES_MAX, PyFrameRaw, PyStackHead},
    record::{RecordHeader, kind},
    signal::SignalRecord,
};

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum DecodeError {
    #[error("record of {len} bytes is shorter than the {need} bytes its kind {kind} needs")]
    TooShort { kind: u32, len: usize, need: usize },
    #[error("record kind {0} is unknown (agent and eBPF programs from different builds?)")]
    UnknownKind(u32),
    #[error("record is not 8-byte aligned")]
    Misaligned,
}

/// A decoded record, borrowed from the ring buffer.
#[derive(Debug, Clone, Copy)]
pub enum Record<'a> {
    /// A syscall without extra data, or with data and maybe a copied stack.
    Syscall(SyscallView<'a>),
    Fork(&'a ForkRecord),
    Exec(&'a ExecRecord),
    /// An exec by a process not traced (yet): a candidate for `--comm`/`--cgroup` selection.
    ExecUntraced(&'a ExecRecord),
    Exit(&'a ExitRecord),
    Reap(&'a ReapRecord),
    Lock(&'a LockRecord),
    Signal(&'a SignalRecord),
    /// The Python frames of the next syscall record of the same thread and time.
    PyStack(PyStackView<'a>),
}

/// A Python stack record: its header and the frames it carries (innermost first).
#[derive(Debug, Clone, Copy)]
pub struct PyStackView<'a> {
    pub head: &'a PyStackHead,
    pub frames: &'a [PyFrameRaw],
}

fn py_stack_view(bytes: &[u8]) -> Result<Record<'_>, DecodeError> {
    let head: &PyStackHead = cast(bytes, kind::PY_STACK)?;
    let n = usize::from(head.n).min(PY_FRAMES_MAX);
    let start = core::mem::size_of::<PyStackHead>();
    let need = start + n * core::mem::size_of::<PyFrameRaw>();
    if bytes.len() < need {
        return Err(DecodeError::TooShort {
            kind: kind::PY_STACK,
            len: bytes.len(),
            need,
        });
    }
    // SAFETY: `bytes` holds `n` frames after the head (checked above); the head's size is a
    // multiple of 8 and `bytes` is 8-byte aligned (checked by `cast`), so the frames are aligned;
    // PyFrameRaw is plain old data.
    let frames = unsafe { core::slice::from_raw_parts(bytes.as_ptr().add(start).cast::<PyFrameRaw>(), n) };
    Ok(Record::PyStack(PyStackView { head, frames }))
}

/// A syscall record of any of the three sizes.
#[derive(Debug, Clone, Copy)]
pub struct SyscallView<'a> {
    pub core: &'a SyscallCore,
    pub detail: Option<&'a SyscallRecord>,
    /// Copied user stack (DWARF mode), exactly `stack_len` bytes.
    pub stack: &'a [u8],
    /// The record's room for stack (its size class; 0 without a stack copy): what the kernel
    /// chose to copy, of which `stack` is the readable part.
    pub stack_room: usize,
}

impl<'a> SyscallView<'a> {
    pub fn header(&self) -> &'a RecordHeader {
        &self.core.header
    }

    /// The captured data bytes (path, fd pair or control messages), bounded by `data_len`.
    pub fn data(&self) -> &'a [u8] {
        match self.detail {
            Some(d) => &d.data[..usize::from(d.data_len).min(DATA_MAX)],
            None => &[],
        }
    }
}

impl ExecRecord {
    pub fn filename_bytes(&self) -> &[u8] {
        let n = (self.filename_len as usize).min(EXEC_FILENAME_MAX);
        let raw = &self.filename[..n];
        raw.split(|b| *b == 0).next().unwrap_or(raw)
    }
}

fn cast<T>(bytes: &[u8], kind: u32) -> Result<&T, DecodeError> {
    let need = core::mem::size_of::<T>();
    if bytes.len() < need {
        return Err(DecodeError::TooShort {
            kind,
            len: bytes.len(),
            need,
        });
    }
    if !(bytes.as_ptr() as usize).is_multiple_of(core::mem::align_of::<T>()) {
        return Err(DecodeError::Misaligned);
    }
    // SAFETY: length and alignment were checked above; every record type is #[repr(C)] plain
    // old data (integers and byte arrays), for which any bit pattern is a valid value.
    Ok(unsafe { &*bytes.as_ptr().cast::<T>() })
}

fn stack_view<const N: usize>(bytes: &[u8], kind: u32) -> Result<Record<'_>, DecodeError> {
    let r: &StackRecord<N> = cast(bytes, kind)?;
    let n = (r.record.stack_len as usize).min(N).min(STACK_COPY_MAX);
    Ok(Record::Syscall(SyscallView {
        core: &r.record.core,
        detail: Some(&r.record),
        stack: &r.stack[..n],
        stack_room: N,
    }))
}

impl<'a> TryFrom<&'a [u8]> for Record<'a> {
    type Error = DecodeError;

    fn try_from(bytes: &'a [u8]) -> Result<Self, DecodeError> {
        let header: &RecordHeader = cast(bytes, 0)?;
        let k = header.kind;
        Ok(match k {
            kind::SYSCALL_CORE => Record::Syscall(SyscallView {
                core: cast(bytes, k)?,
                detail: None,
                stack: &[],
                stack_room: 0,
            }),
            kind::SYSCALL => {
                let r: &SyscallRecord = cast(bytes, k)?;
                Record::Syscall(SyscallView {
                    core: &r.core,
                    detail: Some(r),
                    stack: &[],
                    stack_room: 0,
                })
            }
            kind::SYSCALL_STACK_1K => stack_view::<1024>(bytes, k)?,
            kind::SYSCALL_STACK_2K => stack_view::<2048>(bytes, k)?,
            kind::SYSCALL_STACK_4K => stack_view::<4096>(bytes, k)?,
            kind::SYSCALL_STACK => stack_view::<8192>(bytes, k)?,
            kind::SYSCALL_STACK_16K => stack_view::<16384>(bytes, k)?,
            kind::FORK => Record::Fork(cast(bytes, k)?),
            kind::EXEC => Record::Exec(cast(bytes, k)?),
            kind::EXEC_UNTRACED => Record::ExecUntraced(cast(bytes, k)?),
            kind::EXIT => Record::Exit(cast(bytes, k)?),
            kind::REAP => Record::Reap(cast(bytes, k)?),
            kind::LOCK => Record::Lock(cast(bytes, k)?),
            kind::SIGNAL => Record::Signal(cast(bytes, k)?),
            kind::PY_STACK => py_stack_view(bytes)?,
            other => return Err(DecodeError::UnknownKind(other)),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 8-byte aligned scratch space, as the ring buffer provides.
    #[repr(C, align(8))]
    struct Aligned([u8; 16384]);

    fn bytes_of<T>(v: &T) -> &[u8] {
        // SAFETY: reading the bytes of a repr(C) POD value for the duration of the borrow.
        unsafe { core::slice::from_raw_parts((v as *const T).cast::<u8>(), core::mem::size_of::<T>()) }
    }

    #[test]
    fn decodes_each_kind_by_its_size() {
        let mut buf = Box::new(Aligned([0; 16384]));
        let mut rec = SyscallRecord {
            core: SyscallCore {
                header: RecordHeader {
                    kind: kind::SYSCALL,
                    tgid: 7,
                    tid: 8,
                    _pad: 0,
                    ts_ns: 9,
                },
                nr: libc::SYS_openat as u32,
                capture: 0,
                ret: 5,
                args: [0; 6],
            },
            stack_id: -1,
            user_ip: 1,
            user_sp: 2,
            user_bp: 3,
            data_kind: crate::fd::data_kind::PATH,
            data_len: 4,
            stack_len: 0,
            msg_index: 0,
            kernel_stack_id: -1,
            stack_weight: 1,
            _pad: 0,
            data: [0; DATA_MAX],
        };
        rec.data[..4].copy_from_slice(b"/tmp");
        let b = bytes_of(&rec);
        buf.0[..b.len()].copy_from_slice(b);
        match Record::try_from(&buf.0[..b.len()]) {
            Ok(Record::Syscall(v)) => {
                assert_eq!(v.core.nr, libc::SYS_openat as u32);
                assert_eq!(v.data(), b"/tmp");
                assert!(v.stack.is_empty());
            }
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn decodes_python_stacks_by_their_frame_count() {
        use crate::python::{PyStackRecord, flags};
        let mut buf = Box::new(Aligned([0; 16384]));
        let mut rec = PyStackRecord {
            head: PyStackHead {
                header: RecordHeader {
                    kind: kind::PY_STACK,
                    tgid: 7,
                    tid: 9,
                    _pad: 0,
                    ts_ns: 11,
                },
                n: 2,
                flags: flags::TRUNCATED,
                _pad: 0,
            },
            frames: [PyFrameRaw::default(); PY_FRAMES_MAX],
        };
        rec.frames[0] = PyFrameRaw {
            code: 0x7f00_0000_1000,
            instr: 0x7f00_0000_10c0 | (1 << 56),
        };
        rec.frames[1].code = 0x7f00_0000_2000;
        rec.frames[2].code = 0xdead;
        // Sent with exactly `n` frames.
        let len = core::mem::size_of::<PyStackHead>() + 2 * 16;
        let b = &bytes_of(&rec)[..len];
        buf.0[..len].copy_from_slice(b);
        match Record::try_from(&buf.0[..len]) {
            Ok(Record::PyStack(v)) => {
                assert_eq!(
                    (v.head.header.tid, v.head.header.ts_ns, v.head.flags),
                    (9, 11, flags::TRUNCATED)
                );
                assert_eq!(v.frames.len(), 2);
                assert_eq!(v.frames[0].instr_ptr(), 0x7f00_0000_10c0);
                assert_eq!(v.frames[0].marker(), 1);
                assert_eq!(v.frames[1].code, 0x7f00_0000_2000);
            }
            other => panic!("unexpected {other:?}"),
        }
        // A record shorter than its frame count says is refused, not read past its end.
        assert!(matches!(
            Record::try_from(&buf.0[..len - 8]),
            Err(DecodeError::TooShort {
                kind: kind::PY_STACK,
                ..
            })
        ));
    }

    #[test]
    fn decodes_lock_signal_and_reap_records() {
        let mut buf = Box::new(Aligned([0; 16384]));
        let lock = LockRecord {
            header: RecordHeader {
                kind: kind::LOCK,
                tgid: 3,
                ..Default::default()
            },
            family: crate::lock::family::FLOCK,
            ino: 42,
            ret: crate::lock::FILE_LOCK_DEFERRED,
            lock_type: crate::lock::lock_type::WRITE,
            ..Default::default()
        };
        let b = bytes_of(&lock);
        buf.0[..b.len()].copy_from_slice(b);
        assert!(matches!(Record::try_from(&buf.0[..b.len()]), Ok(Record::Lock(l)) if *l == lock));
        let sig = SignalRecord {
            header: RecordHeader {
                kind: kind::SIGNAL,
                ..Default::default()
            },
            event: crate::signal::event::GENERATE,
            sig: 17,
            result: crate::signal::result::ALREADY_PENDING,
            ..Default::default()
        };
        let b = bytes_of(&sig);
        buf.0[..b.len()].copy_from_slice(b);
        assert!(matches!(Record::try_from(&buf.0[..b.len()]), Ok(Record::Signal(s)) if *s == sig));
        let reap = ReapRecord {
            header: RecordHeader {
                kind: kind::REAP,
                tgid: 77,
                ..Default::default()
            },
        };
        let b = bytes_of(&reap);
        buf.0[..b.len()].copy_from_slice(b);
        assert!(matches!(Record::try_from(&buf.0[..b.len()]), Ok(Record::Reap(r)) if r.header.tgid == 77));
        assert!(matches!(
            Record::try_from(&buf.0[..b.len() - 8]),
            Err(DecodeError::TooShort { .. })
        ));
    }

    #[test]
    fn short_and_unknown_records_are_errors() {
        let buf = Box::new(Aligned([0; 16384]));
        assert!(matches!(
            Record::try_from(&buf.0[..8]),
            Err(DecodeError::TooShort { .. })
        ));
        let mut buf = buf;
        buf.0[0] = 99;
        assert_eq!(Record::try_from(&buf.0[..64]).err(), Some(DecodeError::UnknownKind(99)));
        buf.0[0] = kind::SYSCALL_STACK as u8;
        assert!(matches!(
            Record::try_from(&buf.0[..200]),
            Err(DecodeError::TooShort { .. })
        ));
    }

    #[test]
    fn stack_length_is_bounded_by_the_record() {
        // Records are bigger than 16 KiB: use a heap buffer with room for the largest.
        let mut buf = vec![0u64; 4096];
        for (k, n) in [
            (kind::SYSCALL_STACK_1K, 1024usize),
            (kind::SYSCALL_STACK_2K, 2048),
            (kind::SYSCALL_STACK_4K, 4096),
            (kind::SYSCALL_STACK, 8192),
            (kind::SYSCALL_STACK_16K, 16384),
        ] {
            let bytes: &mut [u8] =
                // SAFETY: viewing a u64 buffer as bytes (8-byte aligned, as the ring buffer is).
                unsafe { core::slice::from_raw_parts_mut(buf.as_mut_ptr().cast::<u8>(), buf.len() * 8) };
            bytes.fill(0);
            let hdr = RecordHeader {
                kind: k,
                ..Default::default()
            };
            let hb = bytes_of(&hdr);
            bytes[..hb.len()].copy_from_slice(hb);
            // stack_len is at a fixed offset; write a huge value and check it is clamped.
            let off = core::mem::offset_of!(SyscallRecord, stack_len);
            bytes[off..off + 4].copy_from_slice(&u32::MAX.to_ne_bytes());
            let size = core::mem::size_of::<SyscallRecord>() + n;
            match Record::try_from(&bytes[..size]) {
                Ok(Record::Syscall(v)) => assert_eq!(v.stack.len(), n),
                other => panic!("unexpected {other:?}"),
            }
            assert!(matches!(
                Record::try_from(&bytes[..size - 1]),
                Err(DecodeError::TooShort { .. })
            ));
        }
    }
}
