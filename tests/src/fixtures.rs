//! The fixture programs of `tests/fixtures`, compiled on first use: C ones the ways a test needs
//! (frame pointers, optimized, stripped with a debuglink), Rust ones with the toolchain running
//! the tests. Builds are serialised across threads and processes and renamed into place, so a
//! test never runs a half-written binary.

use std::{
    os::fd::AsRawFd,
    path::{Path, PathBuf},
    process::Command,
    sync::{Mutex, MutexGuard, Once},
};

use crate::{unique, workspace_root};

/// Serialises fixture builds across threads and processes (`cargo test` runs test binaries one
/// after another, but two `cargo test` runs, or `cargo xtask fixtures`, may overlap).
struct BuildLock {
    _local: MutexGuard<'static, ()>,
    file: std::fs::File,
}

static BUILDING: Mutex<()> = Mutex::new(());

impl BuildLock {
    fn take(dir: &Path) -> BuildLock {
        let local = BUILDING.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let path = dir.join(".build.lock");
        let file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .unwrap_or_else(|e| panic!("cannot open {}: {e}", path.display()));
        // SAFETY: flock on a descriptor this function owns; released when it is closed.
        let r = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX) };
        assert_eq!(r, 0, "flock {}: {}", path.display(), std::io::Error::last_os_error());
        BuildLock { _local: local, file }
    }
}

impl Drop for BuildLock {
    fn drop(&mut self) {
        // SAFETY: as above; closing the file would release it too.
        unsafe { libc::flock(self.file.as_raw_fd(), libc::LOCK_UN) };
    }
}

/// A path next to `bin` that no other build uses, to compile into before renaming onto `bin`:
/// a test running `bin` meanwhile keeps the old file, never sees a half-written one.
fn staging(bin: &Path) -> PathBuf {
    let mut name = bin.file_name().map(|n| n.to_os_string()).unwrap_or_default();
    name.push(format!(".tmp{}-{}", std::process::id(), unique()));
    bin.with_file_name(name)
}

fn install(staged: &Path, bin: &Path) {
    std::fs::rename(staged, bin).unwrap_or_else(|e| panic!("renaming {} to {}: {e}", staged.display(), bin.display()));
}

static BUILD_FIXTURES: Once = Once::new();

/// How a fixture is compiled.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Build {
    /// `-O0 -g -fno-omit-frame-pointer`: frame pointers everywhere but libc.
    FramePointers,
    /// Plain `-O2 -g`, the way distro code is built: no frame pointers.
    Optimized,
    /// `Optimized`, then stripped, with its debug info in a `.gnu_debuglink` file beside it.
    StrippedWithDebuglink,
}

/// Path of a compiled fixture from `tests/fixtures/NAME.c` (compiled on first use).
pub fn fixture(name: &str) -> PathBuf {
    fixture_built(name, Build::FramePointers)
}

pub(crate) fn run_tool(cmd: &mut Command) {
    let status = cmd.status().unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    assert!(status.success(), "{cmd:?} failed");
}

/// Path of a fixture compiled the given way.
pub fn fixture_built(name: &str, build: Build) -> PathBuf {
    let out = workspace_root().join("target/fixtures");
    BUILD_FIXTURES.call_once(|| {
        let _ = std::fs::create_dir_all(&out);
    });
    let suffix = match build {
        Build::FramePointers => "",
        Build::Optimized => ".O2",
        Build::StrippedWithDebuglink => ".stripped",
    };
    let bin = out.join(format!("{name}{suffix}"));
    let src = workspace_root().join("tests/fixtures").join(format!("{name}.c"));
    let _lock = BuildLock::take(&out);
    let fresh = match (
        bin.metadata().and_then(|m| m.modified()),
        src.metadata().and_then(|m| m.modified()),
    ) {
        (Ok(b), Ok(s)) => b >= s,
        _ => false,
    };
    if fresh {
        return bin;
    }
    let flags: &[&str] = match build {
        Build::FramePointers => &["-O0", "-g", "-fno-omit-frame-pointer"],
        Build::Optimized | Build::StrippedWithDebuglink => &["-O2", "-g"],
    };
    let staged = staging(&bin);
    run_tool(
        Command::new("cc")
            .args(flags)
            .args(["-pthread", "-o"])
            .arg(&staged)
            .arg(&src),
    );
    if build == Build::StrippedWithDebuglink {
        // The debug file keeps its final name: the debuglink records it.
        let debug = out.join(format!("{name}{suffix}.debug"));
        let staged_debug = staging(&debug);
        run_tool(
            Command::new("objcopy")
                .arg("--only-keep-debug")
                .arg(&staged)
                .arg(&staged_debug),
        );
        install(&staged_debug, &debug);
        run_tool(
            Command::new("strip")
                .args(["--strip-debug", "--strip-unneeded"])
                .arg(&staged),
        );
        run_tool(
            Command::new("objcopy")
                .arg(format!("--add-gnu-debuglink={}", debug.display()))
                .arg(&staged),
        );
    }
    install(&staged, &bin);
    bin
}

/// Path of a Rust fixture `tests/fixtures/NAME.rs`, built as a release binary with debug info
/// (`-C opt-level=2 -g`: no frame pointers), with the toolchain running the tests.
pub fn rust_fixture(name: &str) -> PathBuf {
    let out = workspace_root().join("target/fixtures");
    let _ = std::fs::create_dir_all(&out);
    let bin = out.join(name);
    let src = workspace_root().join("tests/fixtures").join(format!("{name}.rs"));
    let _lock = BuildLock::take(&out);
    let staged = staging(&bin);
    run_tool(
        Command::new("rustc")
            .args(["-C", "opt-level=2", "-g", "--edition", "2021", "-o"])
            .arg(&staged)
            .arg(&src),
    );
    install(&staged, &bin);
    bin
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What plain `cargo test` does: tests on many threads wanting the same fixture at once.
    /// None may run a binary another is still writing (ETXTBSY, a truncated ELF).
    #[test]
    fn parallel_builds_of_one_fixture_never_expose_a_partial_binary() {
        let out = workspace_root().join("target/fixtures");
        for round in 0..3 {
            let _ = std::fs::remove_file(out.join("short_lived.O2"));
            let runs: Vec<_> = (0..8)
                .map(|_| {
                    std::thread::spawn(|| {
                        let bin = fixture_built("short_lived", Build::Optimized);
                        Command::new(&bin).arg("1").output()
                    })
                })
                .collect();
            for r in runs {
                match r.join() {
                    Ok(Ok(o)) => assert!(o.status.success(), "round {round}: {o:?}"),
                    Ok(Err(e)) => panic!("round {round}: cannot run the fixture: {e}"),
                    Err(_) => panic!("round {round}: a build panicked"),
                }
            }
        }
    }
}
