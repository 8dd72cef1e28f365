//! What one module file contributes to unwinding: its CFI sections and `PT_LOAD` segments,
//! parsed once per file and shared by every process mapping it.

use std::{fs::File, os::fd::AsRawFd, path::Path, sync::Arc};

use framehop::ExplicitModuleSectionInfo;
use object::{Object, ObjectSection};

use super::maps::Mapping;

/// Section bytes handed to framehop (shared between the per-process unwinders).
pub type Data = Arc<[u8]>;

/// One `PT_LOAD` segment.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Load {
    pub offset: u64,
    pub size: u64,
    pub vaddr: u64,
    pub executable: bool,
}

pub struct FileUnwindInfo {
    pub sections: ExplicitModuleSectionInfo<Data>,
    pub loads: Vec<Load>,
}

impl FileUnwindInfo {
    /// Parses the file at `path`, or None if it is not a readable ELF file.
    ///
    /// Only the unwind sections are copied out: `.text` bytes are left behind because framehop
    /// only runs instruction analysis for mach-O (ELF CFI is exact at every instruction), and
    /// `.debug_frame` is kept only when there is no `.eh_frame` (framehop prefers the latter).
    pub fn parse(path: &Path) -> Option<Self> {
        let mapped = MappedFile::open(path)?;
        let file = object::File::parse(mapped.bytes()).ok()?;
        let section = |name: &str| file.section_by_name(name);
        let range = |name: &str| section(name).map(|s| s.address()..s.address() + s.size());
        let data = |name: &str| {
            section(name)
                .and_then(|s| s.data().ok())
                .filter(|d| !d.is_empty())
                .map(Data::from)
        };
        let eh_frame = data(".eh_frame");
        let debug_frame = if eh_frame.is_none() { data(".debug_frame") } else { None };
        let sections = ExplicitModuleSectionInfo {
            // ELF addresses are stated relative to 0 (framehop's docs for base_svma).
            base_svma: 0,
            text_svma: range(".text"),
            got_svma: range(".got"),
            eh_frame_svma: range(".eh_frame"),
            eh_frame,
            eh_frame_hdr_svma: range(".eh_frame_hdr"),
            eh_frame_hdr: data(".eh_frame_hdr"),
            debug_frame,
            ..Default::default()
        };
        let loads = super::image::load_segments(mapped.bytes())?;
        Some(FileUnwindInfo { sections, loads })
    }

    /// Load bias: where virtual address 0 of the file lands, given one mapping of it.
    pub fn base_avma(&self, m: &Mapping) -> Option<u64> {
        base_avma(&self.loads, m.start, m.offset, m.executable)
    }
}

/// Load bias from one mapping (`start`, file `offset`) and the file's `PT_LOAD` segments.
///
/// The loader maps each segment from its file offset rounded down to a page, so a mapping's
/// offset can fall inside the previous segment's file range too (lld puts `.text` at
/// vaddr = file offset + a page, sharing that page with the read-only segment): prefer the
/// segment whose permissions match the mapping's.
pub fn base_avma(loads: &[Load], start: u64, offset: u64, executable: bool) -> Option<u64> {
    const PAGE: u64 = 4096;
    let within = |l: &&Load| offset >= l.offset & !(PAGE - 1) && offset < l.offset.saturating_add(l.size.max(1));
    let load = loads
        .iter()
        .filter(within)
        .find(|l| l.executable == executable)
        .or_else(|| loads.iter().find(within))?;
    // The mapping's first byte is file `offset`, i.e. vaddr `load.vaddr - (load.offset - offset)`.
    let svma = load.vaddr.checked_add(offset)?.checked_sub(load.offset)?;
    start.checked_sub(svma)
}

/// A read-only private mapping of a whole file: parsing needs the section headers at the end of
/// the file but copies out only a few sections, so reading a debug-info-heavy binary (hundreds
/// of MiB) into the heap would be waste.
struct MappedFile {
    ptr: *mut libc::c_void,
    len: usize,
}

impl MappedFile {
    fn open(path: &Path) -> Option<Self> {
        let file = File::open(path).ok()?;
        let len = usize::try_from(file.metadata().ok()?.len()).ok()?;
        if len == 0 {
            return None;
        }
        // SAFETY: a fresh read-only private mapping of a file we hold open; no existing memory is
        // affected. The fd may be closed afterwards (the mapping keeps its own reference).
        let ptr = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ,
                libc::MAP_PRIVATE,
                file.as_raw_fd(),
                0,
            )
        };
        (ptr != libc::MAP_FAILED).then_some(MappedFile { ptr, len })
    }

    fn bytes(&self) -> &[u8] {
        // SAFETY: `ptr..ptr+len` is a live PROT_READ mapping owned by `self` until drop. Module
        // files are replaced by rename, not rewritten in place (executables are even protected by
        // ETXTBSY); a file truncated under us would fault, the same risk blazesym takes when it
        // maps these files.
        unsafe { std::slice::from_raw_parts(self.ptr.cast::<u8>(), self.len) }
    }
}

impl Drop for MappedFile {
    fn drop(&mut self) {
        // SAFETY: unmaps exactly the mapping created in `open`; no slice from `bytes` outlives
        // `self` (they borrow it).
        unsafe {
            libc::munmap(self.ptr, self.len);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(offset: u64, size: u64, vaddr: u64, executable: bool) -> Load {
        Load {
            offset,
            size,
            vaddr,
            executable,
        }
    }

    #[test]
    fn load_bias_uses_the_segment_of_the_mapping() {
        // lld layout: R at offset 0/vaddr 0, RX at offset 0x5f1a0/vaddr 0x601a0.
        let lld = [load(0, 0x5f1a0, 0, false), load(0x5f1a0, 0x10_0000, 0x60_1a0, true)];
        assert_eq!(base_avma(&lld, 0x5555_0006_0000, 0x5f000, true), Some(0x5555_0000_0000));
        assert_eq!(base_avma(&lld, 0x5555_0000_0000, 0, false), Some(0x5555_0000_0000));
        // GNU ld layout: vaddr == offset.
        let gnu = [load(0, 0x1000, 0, false), load(0x1000, 0x2000, 0x1000, true)];
        assert_eq!(base_avma(&gnu, 0x5600_0000_1000, 0x1000, true), Some(0x5600_0000_0000));
        // Non-PIE executable: mapped at its stated addresses, bias 0.
        let fixed = [load(0, 0x5000, 0x40_0000, true)];
        assert_eq!(base_avma(&fixed, 0x40_0000, 0, true), Some(0));
    }

    #[test]
    fn impossible_layouts_have_no_bias() {
        let gnu = [load(0x1000, 0x2000, 0x1000, true)];
        assert_eq!(base_avma(&gnu, 0x10, 0x1000, true), None, "mapped below its own vaddr");
        assert_eq!(
            base_avma(&gnu, 0x5600_0000_0000, 0x9000, true),
            None,
            "offset outside every segment"
        );
        assert_eq!(base_avma(&[], 0x5600_0000_0000, 0, true), None);
    }

    #[test]
    fn parses_this_test_binary() {
        let exe = std::env::current_exe().unwrap_or_else(|e| panic!("current_exe: {e}"));
        let info = FileUnwindInfo::parse(&exe).unwrap_or_else(|| panic!("{} did not parse", exe.display()));
        assert!(info.sections.eh_frame.is_some(), "Rust binaries have .eh_frame");
        assert!(info.sections.text.is_none(), ".text bytes are not kept");
        assert!(info.loads.iter().any(|l| l.executable));
        assert!(
            FileUnwindInfo::parse(&Path::new(env!("CARGO_MANIFEST_DIR")).join("Cargo.toml")).is_none(),
            "not ELF"
        );
        assert!(FileUnwindInfo::parse(Path::new("/nonexistent/lib.so")).is_none());
    }
}
