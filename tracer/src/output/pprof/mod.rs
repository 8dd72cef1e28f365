//! In-use profiles as gzipped pprof `profile.proto`, the body every profile backend scrapes from
//! `/debug/pprof/<name>` (Pyroscope via Alloy, Parca, `go tool pprof`).
//!
//! The stacks arrive symbolized, so the profile carries functions and lines itself and marks its
//! mappings as symbolized: a backend must not try again with our absolute addresses.

pub mod proto;

use std::{collections::HashMap, io::Write};

use flate2::{Compression, write::GzEncoder};

use crate::{
    model::{
        Frame,
        profile::{LabelValue, Profile},
    },
    output::escape::escape_bytes,
};

/// The one sample type: how many objects (fds, IPC objects, locks) exist now. pprof's own heap
/// profiles call this `inuse_objects`/`count`, so tools label and aggregate it as a gauge.
const SAMPLE_TYPE: &str = "inuse_objects";
const SAMPLE_UNIT: &str = "count";

/// How the profile's stacks were taken, for its comments.
pub fn sampling_comment(stack: &str, budget: u32) -> String {
    if budget == 0 || stack == "none" {
        return format!("stacks: {stack}, every allocation's; values are exact");
    }
    format!(
        "stacks: {stack}, sampled past {budget} per second per CPU: each sampled stack stands for the \
         allocations of its sampling period, so values are estimates (tracer_open_fds is exact)"
    )
}

/// Encodes `profile` as a gzipped `profile.proto`.
pub fn encode(profile: &Profile) -> Vec<u8> {
    let message = build(profile);
    let raw = prost::Message::encode_to_vec(&message);
    gzip(&raw).unwrap_or(raw)
}

/// Writing into a `Vec` cannot fail; were it to, the plain protobuf is still a profile that pprof,
/// Alloy and Parca accept (they take gzip or protobuf), which beats sending nothing.
fn gzip(raw: &[u8]) -> std::io::Result<Vec<u8>> {
    let mut gz = GzEncoder::new(Vec::with_capacity(raw.len() / 2), Compression::default());
    gz.write_all(raw)?;
    gz.finish()
}

/// Builds the message that [`encode`] gzips.
fn build(profile: &Profile) -> proto::Profile {
    let mut b = Builder::default();
    b.strings.intern("");
    let sample_type = proto::ValueType {
        r#type: b.strings.intern(SAMPLE_TYPE),
        unit: b.strings.intern(SAMPLE_UNIT),
    };
    let mut samples = Vec::with_capacity(profile.samples.len());
    for s in &profile.samples {
        // A sample without a stack (open before tracing, stacks off) still counts: it keeps
        // its labels and an empty location list, so totals match the report.
        let location_id = address_groups(&s.stack.frames)
            .into_iter()
            .map(|group| b.location(group))
            .collect();
        let label = s
            .labels
            .iter()
            .map(|(key, value)| {
                let key = b.strings.intern(key);
                match value {
                    LabelValue::Str(v) => proto::Label {
                        key,
                        str: b.strings.intern(v),
                        ..Default::default()
                    },
                    LabelValue::Bytes(v) => proto::Label {
                        key,
                        str: b.strings.intern(&escape_bytes(v)),
                        ..Default::default()
                    },
                    // No num_unit: pprof then takes the key as the unit, and "pid" is just that.
                    LabelValue::Num(n) => proto::Label {
                        key,
                        num: *n,
                        ..Default::default()
                    },
                }
            })
            .collect();
        samples.push(proto::Sample {
            location_id,
            value: vec![s.value],
            label,
        });
    }
    let comment = profile.comments.iter().map(|c| b.strings.intern(c)).collect();
    b.main_binary_first(&samples);
    let default_sample_type = sample_type.r#type;
    proto::Profile {
        sample_type: vec![sample_type],
        sample: samples,
        mapping: b.mappings,
        location: b.locations,
        function: b.functions,
        time_nanos: profile.time_unix_ns,
        // An in-use snapshot counts every object: nothing is sampled, one object is one count.
        period_type: Some(sample_type),
        period: 1,
        comment,
        default_sample_type,
        string_table: b.strings.table,
        ..Default::default()
    }
}

/// The mapping Python frames are placed in.
pub const PYTHON_MAPPING: &str = "[python]";

/// Splits frames (innermost first) into one slice per address: the frames inlined at an address
/// come first, then the frame they were inlined into. A run of inlined frames that changes
/// address or ends the stack without its caller closes anyway rather than borrowing a neighbour.
fn address_groups(frames: &[Frame]) -> Vec<&[Frame]> {
    let mut groups = Vec::new();
    let mut start = 0;
    for (i, f) in frames.iter().enumerate() {
        let next_same_address = frames.get(i + 1).is_some_and(|n| n.address == f.address);
        if !f.inlined || !next_same_address {
            groups.push(&frames[start..=i]);
            start = i + 1;
        }
    }
    groups
}

/// The module's path as a protobuf string (which must be UTF-8): the raw bytes when they are
/// UTF-8, newlines and all, else escaped losslessly (`\xNN`, `\\`) as in the text report.
fn module_path(f: &Frame) -> Option<String> {
    let path = if f.module_bytes.is_empty() {
        f.module.clone()?
    } else {
        match std::str::from_utf8(&f.module_bytes) {
            Ok(s) => s.to_owned(),
            Err(_) => escape_bytes(&f.module_bytes),
        }
    };
    (!path.is_empty()).then_some(path)
}

#[derive(Default)]
struct StringTable {
    table: Vec<String>,
    index: HashMap<String, i64>,
}

impl StringTable {
    fn intern(&mut self, s: &str) -> i64 {
        if let Some(&i) = self.index.get(s) {
            return i;
        }
        let i = self.table.len() as i64;
        self.table.push(s.to_owned());
        self.index.insert(s.to_owned(), i);
        i
    }
}

/// (mapping id, address, lines as (function id, line number)).
type LocationKey = (u64, u64, Vec<(u64, i64)>);

/// The deduplicated tables; ids are 1-based positions (0 means "none" in pprof).
#[derive(Default)]
struct Builder {
    strings: StringTable,
    mappings: Vec<proto::Mapping>,
    mapping_ids: HashMap<String, u64>,
    functions: Vec<proto::Function>,
    function_ids: HashMap<(i64, i64), u64>,
    locations: Vec<proto::Location>,
    /// Keyed by the lines too: the same address in the same module path can resolve differently
    /// in two processes (another build at that path, another load address), and pprof's own
    /// merge keys locations the same way.
    location_ids: HashMap<LocationKey, u64>,
}

impl Builder {
    /// pprof takes `mapping[0]` for the main binary (`File:` in its header). A stack's outermost
    /// frame is in the executable (`_start`), so the first (biggest) sample's outermost module
    /// goes first; ids stay as they are, only the order changes.
    fn main_binary_first(&mut self, samples: &[proto::Sample]) {
        // Python frames, outermost where the native stack was cut short, are not the binary.
        let python = self.mapping_ids.get(PYTHON_MAPPING).copied();
        let mapping_of = |id: u64| self.locations.iter().find(|l| l.id == id).map(|l| l.mapping_id);
        let main = samples.iter().find_map(|s| {
            s.location_id
                .iter()
                .rev()
                .map(|id| mapping_of(*id))
                .find(|m| *m != python)
        });
        let main = main.flatten();
        if let Some(pos) = self.mappings.iter().position(|m| Some(m.id) == main) {
            self.mappings[..=pos].rotate_right(1);
        }
    }

    /// The location of one address group (inlined frames, then their caller).
    fn location(&mut self, group: &[Frame]) -> u64 {
        // The caller, last, is the frame the symbolizer resolved the address in.
        let Some(outer) = group.last() else { return 0 };
        let mapping_id = self.mapping(group);
        let address = outer.address.native().unwrap_or(0);
        let lines: Vec<(u64, i64)> = group
            .iter()
            .map(|f| (self.function(f), f.line.map_or(0, i64::from)))
            .collect();
        let key: LocationKey = (mapping_id, address, lines);
        if let Some(&id) = self.location_ids.get(&key) {
            return id;
        }
        let id = self.locations.len() as u64 + 1;
        self.locations.push(proto::Location {
            id,
            mapping_id,
            address,
            line: key
                .2
                .iter()
                .map(|&(function_id, line)| proto::Line { function_id, line })
                .collect(),
            is_folded: false,
        });
        self.location_ids.insert(key, id);
        id
    }

    /// The mapping of a module path, its flags raised by what this group's frames carry.
    /// Frames without a module get no mapping (id 0).
    fn mapping(&mut self, group: &[Frame]) -> u64 {
        let Some(outer) = group.last() else { return 0 };
        // Python frames share one mapping that says what they are (they have no module).
        let path = if outer.python {
            PYTHON_MAPPING.to_owned()
        } else {
            let Some(path) = module_path(outer) else { return 0 };
            path
        };
        let id = match self.mapping_ids.get(&path) {
            Some(&id) => id,
            None => {
                let id = self.mappings.len() as u64 + 1;
                let filename = self.strings.intern(&path);
                // Address ranges are not known here; the frames carry their symbols instead.
                self.mappings.push(proto::Mapping {
                    id,
                    filename,
                    ..Default::default()
                });
                self.mapping_ids.insert(path, id);
                id
            }
        };
        // Positions match ids until `main_binary_first` reorders, after the last lookup.
        let idx = id as usize - 1;
        // The first build id seen for the path wins: one mapping, one build id.
        if self.mappings.get(idx).is_some_and(|m| m.build_id == 0)
            && let Some(b) = group.iter().find_map(|f| f.build_id.as_deref())
        {
            let b = self.strings.intern(b);
            if let Some(m) = self.mappings.get_mut(idx) {
                m.build_id = b;
            }
        }
        let Some(m) = self.mappings.get_mut(idx) else {
            return id;
        };
        let functions = group.iter().any(|f| f.function.is_some());
        m.has_functions |= functions;
        m.has_filenames |= group.iter().any(|f| f.file.is_some());
        m.has_line_numbers |= group.iter().any(|f| f.line.is_some());
        // Our symbolizer asks blazesym for inlined functions whenever it resolves an address, so
        // a mapping with any function resolved has had its inline frames resolved too (pprof's
        // own symbolizer sets the flag the same way).
        m.has_inline_frames |= functions || group.iter().any(|f| f.inlined);
        id
    }

    /// The function of a frame, by (name, source file). Unresolved frames are named by their
    /// module and file offset (or their address), so `pprof -top` shows distinct rows for
    /// distinct unknown code, not one "??".
    fn function(&mut self, f: &Frame) -> u64 {
        // A Python function is its qualified name; its file and line are the function's and the
        // line's fields, as pprof readers expect.
        let name = match (&f.function, f.python) {
            (Some(q), true) => q.clone(),
            _ => crate::output::frame_name::frame_name_raw(f),
        };
        let name = self.strings.intern(&name);
        let filename = f.file.as_deref().map_or(0, |file| self.strings.intern(file));
        if let Some(&id) = self.function_ids.get(&(name, filename)) {
            return id;
        }
        let id = self.functions.len() as u64 + 1;
        self.functions.push(proto::Function {
            id,
            name,
            system_name: name,
            filename,
            start_line: 0,
        });
        self.function_ids.insert((name, filename), id);
        id
    }
}

#[cfg(test)]
mod tests;
