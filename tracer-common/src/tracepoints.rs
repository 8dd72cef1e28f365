//! Every field the kernel programs read from a plain tracepoint's record, at offsets hard-coded
//! in the programs: a plain tracepoint has no BTF, so `TracePointContext::read_at(offset)` reads
//! at a number. The numbers are those of `/sys/kernel/tracing/events/CATEGORY/EVENT/format` on
//! the kernels we measured (Linux 6.18). The agent checks them against the running kernel's
//! format files before it loads the programs ([`check_format`]), so a kernel that moved or
//! resized a field fails the load, naming the event, the field and both places, instead of the
//! programs reading another field.
//!
//! The first 8 bytes of every record are the common fields (`common_type`, `common_flags`,
//! `common_preempt_count`, `common_pid`); the event's own fields follow.

/// A field of a tracepoint's record: its name in the format file, its offset and size in bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Field {
    pub name: &'static str,
    pub offset: usize,
    pub size: usize,
}

const fn field(name: &'static str, offset: usize, size: usize) -> Field {
    Field { name, offset, size }
}

/// A plain tracepoint (`events/CATEGORY/NAME`) and the fields the programs read from it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Event {
    pub category: &'static str,
    pub name: &'static str,
    pub fields: &'static [Field],
}

/// `task/task_newtask` (kernel/fork.c `copy_process`, in the forking thread).
pub mod task_newtask {
    use super::{Field, field};
    /// `pid_t pid`: the new task.
    pub const PID: Field = field("pid", 8, 4);
    /// `u64 clone_flags`.
    pub const CLONE_FLAGS: Field = field("clone_flags", 32, 8);
}

/// `sched/sched_process_exec` (fs/exec.c, once the new image is in place).
pub mod sched_process_exec {
    use super::{Field, field};
    /// `__data_loc char[] filename`: a u32 whose low 16 bits are the string's offset in the
    /// record.
    pub const FILENAME: Field = field("filename", 8, 4);
    /// `pid_t old_pid`: the thread that called exec (the leader's id once exec is done).
    pub const OLD_PID: Field = field("old_pid", 16, 4);
}

/// `sched/sched_process_exit` (kernel/exit.c `do_exit`, before `exit_files`).
pub mod sched_process_exit {
    use super::{Field, field};
    /// `bool group_dead`: true for the last thread of the process.
    pub const GROUP_DEAD: Field = field("group_dead", 32, 1);
}

/// `sched/sched_process_free` (kernel/exit.c `delayed_put_task_struct`).
pub mod sched_process_free {
    use super::{Field, field};
    /// `pid_t pid`: the task released.
    pub const PID: Field = field("pid", 12, 4);
}

/// `filelock/flock_lock_inode` and `filelock/posix_lock_inode` (fs/locks.c): one event class
/// (`filelock_lock` in include/trace/events/filelock.h), one format.
pub mod filelock_lock {
    use super::{Field, field};
    /// `unsigned long i_ino`.
    pub const INODE: Field = field("i_ino", 16, 8);
    /// `dev_t s_dev`.
    pub const DEV: Field = field("s_dev", 24, 4);
    /// `fl_owner_t owner`: the open file or fd table the lock belongs to.
    pub const OWNER: Field = field("owner", 40, 8);
    /// `unsigned int pid`: the lock's `fl_pid`.
    pub const PID: Field = field("pid", 48, 4);
    /// `unsigned int flags`: `FL_*`.
    pub const FLAGS: Field = field("flags", 52, 4);
    /// `unsigned char type`: `F_RDLCK`, `F_WRLCK`, `F_UNLCK`.
    pub const TYPE: Field = field("type", 56, 1);
    /// `loff_t fl_start`.
    pub const START: Field = field("fl_start", 64, 8);
    /// `loff_t fl_end`.
    pub const END: Field = field("fl_end", 72, 8);
    /// `int ret`: 0, `FILE_LOCK_DEFERRED` or -errno.
    pub const RET: Field = field("ret", 80, 4);
    /// The fields read, for [`super::OFFSETS`].
    pub const FIELDS: &[Field] = &[INODE, DEV, OWNER, PID, FLAGS, TYPE, START, END, RET];
}

/// `signal/signal_generate` (kernel/signal.c `__send_signal_locked`).
pub mod signal_generate {
    use super::{Field, field};
    /// `int sig`.
    pub const SIG: Field = field("sig", 8, 4);
    /// `int code`: `si_code`.
    pub const CODE: Field = field("code", 16, 4);
    /// `pid_t pid`: the receiving task.
    pub const PID: Field = field("pid", 36, 4);
    /// `int group`: process-directed.
    pub const GROUP: Field = field("group", 40, 4);
    /// `int result`: delivered, ignored, already pending, ...
    pub const RESULT: Field = field("result", 44, 4);
}

/// `signal/signal_deliver` (kernel/signal.c `get_signal`, in the receiver).
pub mod signal_deliver {
    use super::{Field, field};
    /// `int sig`.
    pub const SIG: Field = field("sig", 8, 4);
    /// `int code`: `si_code`.
    pub const CODE: Field = field("code", 16, 4);
    /// `unsigned long sa_handler`.
    pub const SA_HANDLER: Field = field("sa_handler", 24, 8);
}

/// Every plain tracepoint the programs read fields from, with those fields: what the agent checks
/// against tracefs at load. (`syscalls/sys_enter_*` are attached too, but nothing is read from
/// their records.)
pub const OFFSETS: &[Event] = &[
    Event {
        category: "task",
        name: "task_newtask",
        fields: &[task_newtask::PID, task_newtask::CLONE_FLAGS],
    },
    Event {
        category: "sched",
        name: "sched_process_exec",
        fields: &[sched_process_exec::FILENAME, sched_process_exec::OLD_PID],
    },
    Event {
        category: "sched",
        name: "sched_process_exit",
        fields: &[sched_process_exit::GROUP_DEAD],
    },
    Event {
        category: "sched",
        name: "sched_process_free",
        fields: &[sched_process_free::PID],
    },
    Event {
        category: "filelock",
        name: "flock_lock_inode",
        fields: filelock_lock::FIELDS,
    },
    Event {
        category: "filelock",
        name: "posix_lock_inode",
        fields: filelock_lock::FIELDS,
    },
    Event {
        category: "signal",
        name: "signal_generate",
        fields: &[
            signal_generate::SIG,
            signal_generate::CODE,
            signal_generate::PID,
            signal_generate::GROUP,
            signal_generate::RESULT,
        ],
    },
    Event {
        category: "signal",
        name: "signal_deliver",
        fields: &[signal_deliver::SIG, signal_deliver::CODE, signal_deliver::SA_HANDLER],
    },
];

/// A field line of a format file, as the kernel states it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FormatField<'a> {
    pub name: &'a str,
    pub offset: usize,
    pub size: usize,
}

/// The fields of a format file, in order, common fields included. A field line reads
/// `field:TYPE NAME;\toffset:N;\tsize:N;\tsigned:N;` (kernel/trace/trace_events.c `f_show`);
/// other lines (`name:`, `ID:`, `print fmt:`) are skipped.
pub fn format_fields(text: &str) -> impl Iterator<Item = FormatField<'_>> {
    text.lines().filter_map(format_field)
}

fn format_field(line: &str) -> Option<FormatField<'_>> {
    let mut parts = line.trim().strip_prefix("field:")?.split(';').map(str::trim);
    // `unsigned long i_ino`, `char comm[16]`, `__data_loc char[] filename`,
    // `struct file_lock * fl`: the name is the last word, without an array's brackets.
    let decl = parts.next()?;
    let last = decl.rsplit(|c: char| c.is_whitespace() || c == '*').next()?;
    let name = last.split('[').next()?;
    let (mut offset, mut size) = (None, None);
    for part in parts {
        if let Some(v) = part.strip_prefix("offset:") {
            offset = v.parse().ok();
        } else if let Some(v) = part.strip_prefix("size:") {
            size = v.parse().ok();
        }
    }
    Some(FormatField {
        name,
        offset: offset?,
        size: size?,
    })
}

/// A field the programs read is not where the running kernel puts it.
#[cfg(feature = "user")]
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FormatMismatch {
    #[error(
        "tracepoint {category}/{event} has no field `{field}` (the programs read it at offset {offset}); \
         this kernel's trace record differs from the ones tracer was built for"
    )]
    Missing {
        category: &'static str,
        event: &'static str,
        field: &'static str,
        offset: usize,
    },
    #[error(
        "tracepoint {category}/{event} field `{field}`: the programs read {expected_size} bytes at offset \
         {expected_offset}, but this kernel has {found_size} bytes at offset {found_offset}; this kernel's \
         trace record differs from the ones tracer was built for"
    )]
    Moved {
        category: &'static str,
        event: &'static str,
        field: &'static str,
        expected_offset: usize,
        expected_size: usize,
        found_offset: usize,
        found_size: usize,
    },
}

/// Checks the fields `event` reads against the text of its format file
/// (`events/CATEGORY/NAME/format` in tracefs): each must be there, at the same offset, with the
/// same size. The first difference is the error.
#[cfg(feature = "user")]
pub fn check_format(event: &Event, format: &str) -> Result<(), FormatMismatch> {
    for want in event.fields {
        let Some(found) = format_fields(format).find(|f| f.name == want.name) else {
            return Err(FormatMismatch::Missing {
                category: event.category,
                event: event.name,
                field: want.name,
                offset: want.offset,
            });
        };
        if found.offset != want.offset || found.size != want.size {
            return Err(FormatMismatch::Moved {
                category: event.category,
                event: event.name,
                field: want.name,
                expected_offset: want.offset,
                expected_size: want.size,
                found_offset: found.offset,
                found_size: found.size,
            });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests;
