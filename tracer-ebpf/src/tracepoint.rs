//! Reading a plain tracepoint's fields. The offsets live in one table,
//! `tracer_common::tracepoints`, which the agent checks against the running kernel's tracefs
//! format files before loading; here each read is also checked, at compile time, to be of the
//! size the table states.

/// `read_field!(ctx, FIELD, TYPE)`: reads `TYPE` at `FIELD.offset` of the tracepoint's record,
/// `Result<TYPE, i64>`. Does not compile when `TYPE` is not `FIELD.size` bytes.
macro_rules! read_field {
    ($ctx:expr, $field:path, $ty:ty) => {{
        const _: () = assert!(
            core::mem::size_of::<$ty>() == $field.size,
            "read size differs from tracer_common::tracepoints"
        );
        // SAFETY: the offset is the field's in the tracepoint's format (checked against tracefs at
        // load); `read_at` copies with bpf_probe_read_kernel, which fails instead of faulting.
        unsafe { $ctx.read_at::<$ty>($field.offset) }
    }};
}

pub(crate) use read_field;
