//! The messages of pprof's `profile.proto`, written by hand so the build needs no `protoc`.
//!
//! Source: google/pprof `proto/profile.proto` at commit 101d87ff5bc37124090081eb492825d9439a6a53
//! (package `perftools.profiles`, proto3). Field numbers and types are copied from it exactly;
//! the comments here are short summaries, the proto file has the full wording.

/// A stacktrace profile. On disk and on the wire it is gzipped.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Profile {
    /// What each `Sample.value` entry means, (type, unit).
    #[prost(message, repeated, tag = "1")]
    pub sample_type: Vec<ValueType>,
    #[prost(message, repeated, tag = "2")]
    pub sample: Vec<Sample>,
    /// By convention `mapping[0]` is the main binary.
    #[prost(message, repeated, tag = "3")]
    pub mapping: Vec<Mapping>,
    #[prost(message, repeated, tag = "4")]
    pub location: Vec<Location>,
    #[prost(message, repeated, tag = "5")]
    pub function: Vec<Function>,
    /// Every string of the profile; `string_table[0]` must be `""`.
    #[prost(string, repeated, tag = "6")]
    pub string_table: Vec<String>,
    /// Index into the string table: a regexp of frames to drop.
    #[prost(int64, tag = "7")]
    pub drop_frames: i64,
    /// Index into the string table: a regexp of frames kept even if dropped.
    #[prost(int64, tag = "8")]
    pub keep_frames: i64,
    /// Collection start, ns since the Unix epoch.
    #[prost(int64, tag = "9")]
    pub time_nanos: i64,
    #[prost(int64, tag = "10")]
    pub duration_nanos: i64,
    /// What is counted between sampled occurrences.
    #[prost(message, optional, tag = "11")]
    pub period_type: Option<ValueType>,
    #[prost(int64, tag = "12")]
    pub period: i64,
    /// Indices into the string table: free text for humans.
    #[prost(int64, repeated, tag = "13")]
    pub comment: Vec<i64>,
    /// Index into the string table: the sample type tools show first.
    #[prost(int64, tag = "14")]
    pub default_sample_type: i64,
    /// Index into the string table: an absolute URL documenting this profile type.
    #[prost(int64, tag = "15")]
    pub doc_url: i64,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct ValueType {
    /// Index into the string table.
    #[prost(int64, tag = "1")]
    pub r#type: i64,
    /// Index into the string table.
    #[prost(int64, tag = "2")]
    pub unit: i64,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct Sample {
    /// `Location.id`s, the leaf at `location_id[0]`.
    #[prost(uint64, repeated, tag = "1")]
    pub location_id: Vec<u64>,
    /// One value per `Profile.sample_type`.
    #[prost(int64, repeated, tag = "2")]
    pub value: Vec<i64>,
    #[prost(message, repeated, tag = "3")]
    pub label: Vec<Label>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct Label {
    /// Index into the string table; keys starting with `pprof::` are reserved.
    #[prost(int64, tag = "1")]
    pub key: i64,
    /// Index into the string table; at most one of `str` and `num` is set.
    #[prost(int64, tag = "2")]
    pub str: i64,
    #[prost(int64, tag = "3")]
    pub num: i64,
    /// Index into the string table: the unit of `num`.
    #[prost(int64, tag = "4")]
    pub num_unit: i64,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct Mapping {
    /// Unique and nonzero.
    #[prost(uint64, tag = "1")]
    pub id: u64,
    #[prost(uint64, tag = "2")]
    pub memory_start: u64,
    #[prost(uint64, tag = "3")]
    pub memory_limit: u64,
    #[prost(uint64, tag = "4")]
    pub file_offset: u64,
    /// Index into the string table: the object's path (or `[vdso]` and the like).
    #[prost(int64, tag = "5")]
    pub filename: i64,
    /// Index into the string table: e.g. the GNU build id.
    #[prost(int64, tag = "6")]
    pub build_id: i64,
    #[prost(bool, tag = "7")]
    pub has_functions: bool,
    #[prost(bool, tag = "8")]
    pub has_filenames: bool,
    #[prost(bool, tag = "9")]
    pub has_line_numbers: bool,
    #[prost(bool, tag = "10")]
    pub has_inline_frames: bool,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct Location {
    /// Unique and nonzero.
    #[prost(uint64, tag = "1")]
    pub id: u64,
    /// 0 when the mapping is unknown.
    #[prost(uint64, tag = "2")]
    pub mapping_id: u64,
    #[prost(uint64, tag = "3")]
    pub address: u64,
    /// Inlined functions first; the last line is the caller they were inlined into.
    #[prost(message, repeated, tag = "4")]
    pub line: Vec<Line>,
    #[prost(bool, tag = "5")]
    pub is_folded: bool,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct Line {
    #[prost(uint64, tag = "1")]
    pub function_id: u64,
    #[prost(int64, tag = "2")]
    pub line: i64,
    #[prost(int64, tag = "3")]
    pub column: i64,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct Function {
    /// Unique and nonzero.
    #[prost(uint64, tag = "1")]
    pub id: u64,
    /// Index into the string table: the human-readable name.
    #[prost(int64, tag = "2")]
    pub name: i64,
    /// Index into the string table: the name as the system knows it (e.g. mangled).
    #[prost(int64, tag = "3")]
    pub system_name: i64,
    /// Index into the string table: the source file.
    #[prost(int64, tag = "4")]
    pub filename: i64,
    #[prost(int64, tag = "5")]
    pub start_line: i64,
}
