//! End to end: unwind this test process's own stack from registers and a stack copy, the way the
//! agent unwinds a syscall-time capture, then symbolize it.

use std::{
    ffi::{CString, c_long, c_void},
    os::unix::ffi::OsStrExt,
    path::Path,
    process::Command,
};

use super::{DwarfUnwinder, ModuleMap, SymbolizedFrame, Symbols, UserRegs};

/// As much stack as the kernel side copies.
const STACK_COPY: usize = 8 * 1024;

/// Registers of the caller's frame and a copy of the stack above them, like a syscall capture.
#[inline(never)]
fn capture(stack: &mut Vec<u8>) -> UserRegs {
    let (ip, sp, bp): (u64, u64, u64);
    // SAFETY: reads rip (via lea), rsp and rbp into registers; no memory is touched.
    unsafe {
        std::arch::asm!(
            "lea {ip}, [rip]", "mov {sp}, rsp", "mov {bp}, rbp",
            ip = out(reg) ip, sp = out(reg) sp, bp = out(reg) bp,
            options(nomem, nostack, preserves_flags)
        );
    }
    let len = stack_room(sp).min(STACK_COPY);
    // SAFETY: `len` bytes from rsp up are inside this thread's stack mapping (stack_room), and
    // this frame is still live, so they stay mapped while copied.
    let live = unsafe { std::slice::from_raw_parts(sp as *const u8, len) };
    stack.clear();
    stack.extend_from_slice(live);
    UserRegs { ip, sp, bp }
}

/// Bytes from `sp` to the end of the mapping that holds it.
fn stack_room(sp: u64) -> usize {
    let maps = std::fs::read_to_string("/proc/self/maps").unwrap_or_default();
    maps.lines()
        .filter_map(|line| {
            let (a, b) = line.split_whitespace().next()?.split_once('-')?;
            Some((u64::from_str_radix(a, 16).ok()?, u64::from_str_radix(b, 16).ok()?))
        })
        .find(|&(a, b)| a <= sp && sp < b)
        .map_or(0, |(_, b)| usize::try_from(b - sp).unwrap_or(0))
}

/// Unwinds `regs`/`stack` in this process and symbolizes the result.
fn unwind_and_symbolize(regs: UserRegs, stack: &[u8]) -> Vec<SymbolizedFrame> {
    let pid = std::process::id() as i32;
    let maps = ModuleMap::read(pid).unwrap_or_else(|e| panic!("{e}"));
    let mut out = Vec::new();
    DwarfUnwinder::new().unwind(pid, &maps, regs, stack, 64, &mut out);
    assert_eq!(out.first(), Some(&regs.ip), "the first frame is the ip");
    let frames: Vec<_> = out.iter().filter_map(|a| maps.lookup(*a)).collect();
    assert_eq!(frames.len(), out.len(), "every frame is in a module: {out:x?}");
    Symbols::new().symbolize(&frames)
}

/// Index of the first frame whose function contains `needle`.
fn position(frames: &[SymbolizedFrame], needle: &str) -> usize {
    frames
        .iter()
        .position(|f| f.function.as_deref().is_some_and(|n| n.contains(needle)))
        .unwrap_or_else(|| panic!("no {needle} in {:#?}", names(frames)))
}

fn names(frames: &[SymbolizedFrame]) -> Vec<&str> {
    frames.iter().map(|f| f.function.as_deref().unwrap_or("?")).collect()
}

#[inline(never)]
fn rust_level_two(stack: &mut Vec<u8>) -> UserRegs {
    std::hint::black_box(capture(stack))
}

#[inline(never)]
fn rust_level_one(stack: &mut Vec<u8>) -> UserRegs {
    std::hint::black_box(rust_level_two(stack))
}

#[test]
fn unwinds_and_symbolizes_own_rust_stack() {
    let mut stack = Vec::new();
    let regs = rust_level_one(&mut stack);
    let frames = unwind_and_symbolize(regs, &stack);
    let order: Vec<usize> = [
        "capture",
        "rust_level_two",
        "rust_level_one",
        "unwinds_and_symbolizes_own_rust_stack",
    ]
    .iter()
    .map(|n| position(&frames, n))
    .collect();
    assert!(order.is_sorted(), "callers out of order: {:#?}", names(&frames));
    let two = &frames[order[1]];
    assert!(
        two.file.as_deref().is_some_and(|f| f.ends_with("symbolize/tests.rs")) && two.line.is_some(),
        "file:line of a call site: {two:?}"
    );
    assert!(
        !names(&frames).iter().any(|n| n.contains("::h")),
        "Rust names are demangled without hash"
    );
}

/// C code built like distro libc: -O2, no frame pointers. `leaky_inner`'s call is line 5 and
/// `leaky_outer`'s is line 10.
const LEAKY_C: &str = "\
typedef long (*callback)(void *);
/* Interposable (default visibility, -fPIC), so GCC neither inlines nor clones these; the
   arithmetic after each call keeps it from being a tail call. */
__attribute__((noinline)) long leaky_inner(callback cb, void *ctx) {
    long r = cb(ctx);
    return r * 3 + 1;
}

__attribute__((noinline)) long leaky_outer(callback cb, void *ctx) {
    long r = leaky_inner(cb, ctx);
    return r * 5 + 2;
}
";

type LeakyOuter = unsafe extern "C" fn(extern "C" fn(*mut c_void) -> c_long, *mut c_void) -> c_long;

extern "C" fn capture_from_c(ctx: *mut c_void) -> c_long {
    // SAFETY: `ctx` is the `&mut (Vec<u8>, UserRegs)` passed to leaky_outer by `call_through_c`,
    // which outlives this call.
    let (stack, regs) = unsafe { &mut *ctx.cast::<(Vec<u8>, UserRegs)>() };
    *regs = capture(stack);
    1
}

/// Builds `libleaky.so` in `dir` and loads it (never unloaded: the test process ends soon).
fn load_leaky(dir: &Path) -> LeakyOuter {
    let src = dir.join("leaky.c");
    let lib = dir.join("libleaky.so");
    std::fs::write(&src, LEAKY_C).unwrap_or_else(|e| panic!("writing {}: {e}", src.display()));
    let status = Command::new("cc")
        .args(["-O2", "-g", "-fomit-frame-pointer", "-fPIC", "-shared", "-o"])
        .arg(&lib)
        .arg(&src)
        .status()
        .unwrap_or_else(|e| panic!("running cc (install gcc): {e}"));
    assert!(status.success(), "cc failed: {status}");
    let c_lib = CString::new(lib.as_os_str().as_bytes()).unwrap_or_else(|e| panic!("{e}"));
    // SAFETY: dlopen of a library we just built; its initializers are the compiler's defaults.
    let handle = unsafe { libc::dlopen(c_lib.as_ptr(), libc::RTLD_NOW) };
    assert!(!handle.is_null(), "dlopen {} failed", lib.display());
    // SAFETY: `handle` is a live handle and the name is NUL-terminated.
    let sym = unsafe { libc::dlsym(handle, c"leaky_outer".as_ptr()) };
    assert!(!sym.is_null(), "leaky_outer not exported");
    // SAFETY: leaky_outer has exactly the C signature of `LeakyOuter` (see LEAKY_C).
    unsafe { std::mem::transmute::<*mut c_void, LeakyOuter>(sym) }
}

#[inline(never)]
fn call_through_c(leaky_outer: LeakyOuter) -> (Vec<u8>, UserRegs) {
    let mut ctx = (Vec::new(), UserRegs::default());
    // SAFETY: leaky_outer only passes `ctx` back to capture_from_c, while `ctx` is live.
    let r = unsafe { leaky_outer(capture_from_c, (&raw mut ctx).cast()) };
    assert_eq!(r, 22, "(1 * 3 + 1) * 5 + 2");
    ctx
}

#[test]
fn unwinds_through_c_without_frame_pointers() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
    let leaky_outer = load_leaky(dir.path());
    let (stack, regs) = call_through_c(leaky_outer);
    let frames = unwind_and_symbolize(regs, &stack);
    let order: Vec<usize> = [
        "capture_from_c",
        "leaky_inner",
        "leaky_outer",
        "call_through_c",
        "unwinds_through_c_without_frame_pointers",
    ]
    .iter()
    .map(|n| position(&frames, n))
    .collect();
    assert!(order.is_sorted(), "callers out of order: {:#?}", names(&frames));
    // A frame-pointer walk would skip leaky_outer (C never saves rbp here); CFI finds it, and
    // return addresses are looked up at the call instruction (the call's line, not the next).
    for (i, line) in [(order[1], 5), (order[2], 10)] {
        let f = &frames[i];
        assert!(
            f.file.as_deref().is_some_and(|p| p.ends_with("leaky.c")) && f.line == Some(line),
            "{f:?} should be leaky.c:{line}"
        );
        assert!(f.module.as_deref().is_some_and(|m| m.ends_with("libleaky.so")), "{f:?}");
        assert!(!f.inlined);
    }
}

#[test]
fn unsymbolizable_frames_keep_address_and_module() {
    let maps = ModuleMap::from_maps_text("7f0000000000-7f0000001000 r-xp 00001000 08:01 9 /nonexistent/libgone.so\n");
    let frames: Vec<_> = [0x7f00_0000_0010, 0x7f00_0000_0020]
        .iter()
        .filter_map(|a| maps.lookup(*a))
        .collect();
    let out = Symbols::new().symbolize(&frames);
    let got: Vec<_> = out
        .iter()
        .map(|f| (f.address, f.function.clone(), f.module.as_deref()))
        .collect();
    assert_eq!(
        got,
        [
            (0x7f00_0000_0010, None, Some("/nonexistent/libgone.so")),
            (0x7f00_0000_0020, None, Some("/nonexistent/libgone.so"))
        ]
    );
}

/// The address of a kernel function from /proc/kallsyms (None when hidden: not root, or
/// kptr_restrict).
fn kallsyms_address(name: &str) -> Option<u64> {
    let text = std::fs::read_to_string("/proc/kallsyms").ok()?;
    text.lines().find_map(|l| {
        let mut f = l.split_whitespace();
        let addr = u64::from_str_radix(f.next()?, 16).ok()?;
        let _kind = f.next()?;
        (f.next()? == name && addr != 0).then_some(addr)
    })
}

#[test]
fn kernel_frames_are_named_from_kallsyms() {
    let Some(addr) = kallsyms_address("fd_install") else {
        let why = "kernel_frames_are_named_from_kallsyms: skipped: /proc/kallsyms hides addresses (run as root)";
        // Under CI (root, `cargo xtask setup`) a skip would hide a failure.
        assert!(
            !std::env::var("CI").is_ok_and(|v| v == "true" || v == "1"),
            "{why} (CI=true: a skip is a failure)"
        );
        eprintln!("{why}");
        return;
    };
    let mut symbols = Symbols::new();
    // Innermost frame: the address itself; callers: return addresses (looked up at address - 1).
    let frames = symbols.symbolize_kernel(&[addr, addr + 1]);
    let names: Vec<Option<&str>> = frames.iter().map(|f| f.function.as_deref()).collect();
    assert_eq!(names, vec![Some("fd_install"), Some("fd_install")]);
    assert!(frames.iter().all(|f| f.module.as_deref() == Some("[kernel]")));
    assert_eq!(frames[1].address, addr + 1, "the address shown is the one captured");
}

/// A library whose only name for `secret_helper` is in its DWARF: a local function, gone from
/// the stripped file's symbol tables.
const SPLIT_C: &str = "\
__attribute__((noinline)) static int secret_helper(int x) { return x * 7 + 3; }
int exported(int x) { return secret_helper(x) + 1; }
";

fn run(cmd: &mut Command) {
    let status = cmd
        .status()
        .unwrap_or_else(|e| panic!("{cmd:?}: {e} (install gcc and binutils)"));
    assert!(status.success(), "{cmd:?}: {status}");
}

/// Debian's layout: the binary stripped, with a `.gnu_debuglink` naming `REST.debug`, and its
/// debug file under `DIR/.build-id/xx/REST.debug` (the `-dbgsym` packages). The debug file is
/// found by build id in the debug directory, not beside the binary.
#[test]
fn split_debug_files_are_found_by_build_id() {
    use object::{Object, ObjectSegment, ObjectSymbol};
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
    let (src, full) = (dir.path().join("split.c"), dir.path().join("libsplit.full.so"));
    std::fs::write(&src, SPLIT_C).unwrap_or_else(|e| panic!("{e}"));
    run(Command::new("cc")
        .args(["-O2", "-g", "-fPIC", "-shared", "-Wl,--build-id", "-o"])
        .arg(&full)
        .arg(&src));
    let data = std::fs::read(&full).unwrap_or_else(|e| panic!("{e}"));
    let elf = object::File::parse(&*data).unwrap_or_else(|e| panic!("{e}"));
    let build_id: String = match elf.build_id() {
        Ok(Some(id)) => id.iter().map(|b| format!("{b:02x}")).collect(),
        other => panic!("no build id: {other:?}"),
    };
    let vaddr = elf
        .symbols()
        .find(|s| s.name() == Ok("secret_helper"))
        .map(|s| s.address())
        .unwrap_or_else(|| panic!("secret_helper not in the unstripped library"));
    let offset = elf
        .segments()
        .find(|s| s.address() <= vaddr && vaddr < s.address() + s.size())
        .map(|s| vaddr - s.address() + s.file_range().0)
        .unwrap_or_else(|| panic!("no segment holds {vaddr:#x}"));
    let debug_root = dir.path().join("debug");
    let by_id = debug_root.join(".build-id").join(&build_id[..2]);
    std::fs::create_dir_all(&by_id).unwrap_or_else(|e| panic!("{e}"));
    let debug_name = format!("{}.debug", &build_id[2..]);
    let debug_file = by_id.join(&debug_name);
    run(Command::new("objcopy")
        .arg("--only-keep-debug")
        .arg(&full)
        .arg(&debug_file));
    let bin_dir = dir.path().join("bin");
    std::fs::create_dir_all(&bin_dir).unwrap_or_else(|e| panic!("{e}"));
    let stripped = bin_dir.join("libsplit.so");
    run(Command::new("strip")
        .arg("--strip-all")
        .arg("-o")
        .arg(&stripped)
        .arg(&full));
    // objcopy names the link after the file it is given (and takes its CRC): a copy named like
    // Debian's, kept apart from both the binary and the debug directory.
    let link_dir = dir.path().join("link");
    std::fs::create_dir_all(&link_dir).unwrap_or_else(|e| panic!("{e}"));
    std::fs::copy(&debug_file, link_dir.join(&debug_name)).unwrap_or_else(|e| panic!("{e}"));
    run(Command::new("objcopy")
        .arg(format!("--add-gnu-debuglink={}", link_dir.join(&debug_name).display()))
        .arg(&stripped));
    std::fs::remove_dir_all(&link_dir).unwrap_or_else(|e| panic!("{e}"));

    let maps = ModuleMap::from_maps_text(&format!(
        "7f0000000000-7f0000100000 r-xp 00000000 08:01 9 {}\n",
        stripped.display()
    ));
    let frames: Vec<_> = maps.lookup(0x7f00_0000_0000 + offset).into_iter().collect();
    assert_eq!(frames.len(), 1);
    let names = |symbols: &mut Symbols| -> Vec<Option<String>> {
        symbols.symbolize(&frames).into_iter().map(|f| f.function).collect()
    };
    let found = names(&mut Symbols::with_debug_dirs(vec![debug_root.clone()]));
    assert_eq!(
        found,
        vec![Some("secret_helper".to_owned())],
        "named from the build-id debug file"
    );
    let without = names(&mut Symbols::with_debug_dirs(vec![dir.path().join("nowhere")]));
    assert_ne!(
        without, found,
        "the stripped file alone cannot name it (the test proves the lookup)"
    );
    let bare = Symbols::with_debug_dirs(vec![]).symbolize(&frames);
    assert_eq!(
        bare[0].file_offset,
        Some(offset),
        "the offset is kept for module+0xOFFSET"
    );
}
