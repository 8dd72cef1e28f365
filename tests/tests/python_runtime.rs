//! CPython found in a live process, from outside: the runtime, the thread list, and the frame
//! chain of each thread named through `CodeCache` (the agent's half of Python frames; the
//! kernel walks the same chain with the same offsets).
//!
//! `/usr/bin/python3.11` always (Debian's: a non-PIE executable that defines `_PyRuntime`
//! itself); more interpreters with `TRACER_EXTRA_PYTHONS=/path/python3.12:/path/python3.13`
//! (e.g. pyenv's, which load `libpython3.X.so`; one before 3.11 must be found and said
//! unsupported).

use std::{
    collections::BTreeSet,
    io::{BufRead, BufReader},
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use integration_tests::{can_trace, skip};
use tracer::symbolize::{
    ModuleMap,
    python::{self, CodeCache, PyFrame},
};

const SCRIPT: &str = r#"import sys, threading

started = threading.Barrier(3)
stop = threading.Event()


def inner(tag):
    started.wait()
    stop.wait()  # INNER
    return tag


def outer(tag):
    return inner(tag)  # OUTER


def gen(tag):
    yield inner(tag)  # GEN


t = threading.Thread(target=outer, args=("worker",))
t.start()
g = threading.Thread(target=lambda: next(gen("gen")))
g.start()
print(threading.get_native_id(), t.native_id, g.native_id, flush=True)
outer("main")
"#;

fn line_of(marker: &str) -> u32 {
    SCRIPT
        .lines()
        .position(|l| l.ends_with(marker))
        .map(|i| i as u32 + 1)
        .unwrap()
}

pub fn interpreters() -> Vec<PathBuf> {
    let mut v = vec![PathBuf::from("/usr/bin/python3.11")];
    if let Ok(extra) = std::env::var("TRACER_EXTRA_PYTHONS") {
        v.extend(extra.split(':').filter(|s| !s.is_empty()).map(PathBuf::from));
    }
    v
}

struct Kill(Child);

impl Drop for Kill {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn tasks(pid: u32) -> BTreeSet<u32> {
    std::fs::read_dir(format!("/proc/{pid}/task"))
        .map(|d| d.filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok()).collect())
        .unwrap_or_default()
}

fn check(python: &Path) {
    let dir = std::env::temp_dir().join(format!("tracer-pyrt-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let script = dir.join("blocked_app.py");
    std::fs::write(&script, SCRIPT).unwrap();
    let mut child = Kill(
        Command::new(python)
            .arg(&script)
            .stdout(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("{}: {e}", python.display())),
    );
    let pid = child.0.id();
    // Both threads are running Python once this line is out (the ids of both).
    let mut first = String::new();
    BufReader::new(child.0.stdout.take().unwrap())
        .read_line(&mut first)
        .unwrap();
    let ids: BTreeSet<u32> = first.split_whitespace().map(|s| s.parse().unwrap()).collect();
    assert_eq!(ids.len(), 3, "{first:?}");

    let maps = ModuleMap::read(pid as i32).unwrap();
    let found_in = Instant::now();
    let rt = python::find_runtime(pid as i32, &maps)
        .unwrap()
        .expect("a CPython runtime");
    let want_minor: u8 = python
        .file_name()
        .unwrap()
        .to_str()
        .unwrap()
        .trim_start_matches("python3.")
        .parse()
        .unwrap();
    assert_eq!((rt.version.0, rt.version.1), (3, want_minor), "{rt:?}");
    if want_minor < 11 {
        // Before 3.11 frames are PyFrameObjects: not read, and said why.
        assert!(rt.kernel.is_none() && rt.layout.is_none(), "{rt:?}");
        let why = format!("CPython 3.{want_minor}: native frames only (tracer reads 3.11-3.14)");
        assert_eq!(rt.unsupported.as_deref(), Some(&*why));
        assert!(python::thread_states(pid as i32, &rt).is_err());
        let _ = std::fs::remove_dir_all(&dir);
        return;
    }
    assert!(rt.unsupported.is_none(), "{rt:?}");
    let kernel = rt.kernel.expect("a kernel config");
    assert_eq!(kernel.runtime, rt.runtime);
    assert_eq!(Some(kernel.offsets), rt.layout.as_ref().map(|l| l.kernel));
    if let Some(table) = python::offsets::table(3, want_minor) {
        assert_eq!(kernel.offsets, table.kernel);
    }
    // `_PyRuntime` lies in a mapping of the module; the eval loop in an executable one of it.
    let in_module = |a: u64, exec: bool| {
        maps.mappings
            .iter()
            .any(|m| m.path == rt.module && (!exec || m.executable) && (m.start..m.end).contains(&a))
    };
    assert!(
        in_module(rt.runtime, false),
        "_PyRuntime {:#x} outside {}",
        rt.runtime,
        rt.module.display()
    );
    assert!(!rt.eval_ranges.is_empty());
    for r in &rt.eval_ranges {
        assert!(in_module(r.start, true), "eval loop {r:x?}");
    }

    // The thread list: both threads, nothing else, the same as the kernel's /proc view.
    let states = python::thread_states(pid as i32, &rt).unwrap();
    let tids: BTreeSet<u32> = states.iter().map(|s| s.0).collect();
    assert_eq!(tids, ids, "{states:x?}");
    assert_eq!(tids, tasks(pid), "{states:x?}");

    // Each thread's frames: `inner` at the wait line, called by `outer` at its line; above it
    // threading's `Event.wait`. Polled until both threads are inside the wait.
    let script_name = script.to_str().unwrap();
    eprintln!("{}: find_runtime took {:?}", python.display(), found_in.elapsed());
    let mut cache = CodeCache::new(pid as i32, &rt);
    let deadline = Instant::now() + Duration::from_secs(10);
    let last: Vec<Vec<PyFrame>> = loop {
        let last: Vec<Vec<PyFrame>> = states
            .iter()
            .map(|&(_, ts)| cache.resolve(&python::read_frames(pid as i32, &rt, ts).unwrap()))
            .collect();
        let ok = last.iter().all(|frames| {
            let Some(i) = frames.iter().position(|f| &*f.qualname == "inner") else {
                return false;
            };
            frames
                .get(i + 1)
                .is_some_and(|o| matches!(&*o.qualname, "outer" | "gen"))
                && frames[i].line == line_of("# INNER")
                && frames[..i].iter().any(|f| &*f.qualname == "Event.wait")
        });
        if ok || Instant::now() > deadline {
            break last;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let show = |fs: &Vec<PyFrame>| {
        fs.iter()
            .map(|f| {
                format!(
                    "{} ({}:{}){}",
                    f.qualname,
                    f.file,
                    f.line,
                    if f.entry { " entry" } else { "" }
                )
            })
            .collect::<Vec<_>>()
    };
    let raws: Vec<_> = states
        .iter()
        .map(|&(_, ts)| python::read_frames(pid as i32, &rt, ts).unwrap())
        .collect();
    let warm = Instant::now();
    let n: usize = raws.iter().map(|r| cache.resolve(r).len()).sum();
    eprintln!(
        "{}: {n} frames resolved (cached) in {:?}",
        python.display(),
        warm.elapsed()
    );
    let mut cold_cache = CodeCache::new(pid as i32, &rt);
    let cold = Instant::now();
    let n: usize = raws.iter().map(|r| cold_cache.resolve(r).len()).sum();
    eprintln!(
        "{}: {n} frames resolved (cold) in {:?}",
        python.display(),
        cold.elapsed()
    );
    let mut generators = 0;
    for frames in &last {
        eprintln!("{} {:?}: {:#?}", python.display(), rt.version, show(frames));
        let i = frames
            .iter()
            .position(|f| &*f.qualname == "inner")
            .unwrap_or_else(|| panic!("{:#?}", show(frames)));
        let (inner, caller) = (&frames[i], &frames[i + 1]);
        assert_eq!(
            (&*inner.file, inner.line),
            (script_name, line_of("# INNER")),
            "{:#?}",
            show(frames)
        );
        if &*caller.qualname == "gen" {
            // A generator's frame (owner FRAME_OWNED_BY_GENERATOR from 3.12) resumed by
            // `next()`, a C function: it begins an eval-loop invocation.
            assert_eq!(
                (&*caller.file, caller.line, caller.entry),
                (script_name, line_of("# GEN"), true)
            );
            assert_eq!(
                frames.get(i + 2).map(|f| &*f.qualname),
                Some("<lambda>"),
                "{:#?}",
                show(frames)
            );
            generators += 1;
        } else {
            assert_eq!(
                (&*caller.qualname, &*caller.file, caller.line),
                ("outer", script_name, line_of("# OUTER")),
                "{:#?}",
                show(frames)
            );
        }
        let wait = frames[..i]
            .iter()
            .find(|f| &*f.qualname == "Event.wait")
            .unwrap_or_else(|| panic!("{:#?}", show(frames)));
        assert!(
            wait.file.ends_with("threading.py") && wait.line > 0,
            "{:#?}",
            show(frames)
        );
        // The outermost frame began an eval-loop invocation (more begin where C calls back
        // into Python, e.g. `Thread.run` calling its target with `**kwargs`).
        let entries: Vec<usize> = frames
            .iter()
            .enumerate()
            .filter(|(_, f)| f.entry)
            .map(|(i, _)| i)
            .collect();
        assert!(entries.contains(&(frames.len() - 1)), "{:#?}", show(frames));
    }
    assert_eq!(generators, 1);
    // The main thread's outermost frame is the module; the workers' `Thread._bootstrap`.
    let outermost: BTreeSet<&str> = last.iter().map(|f| &*f.last().unwrap().qualname).collect();
    assert_eq!(
        outermost,
        BTreeSet::from(["<module>", "Thread._bootstrap"]),
        "{:#?}",
        last.iter().map(show).collect::<Vec<_>>()
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn python_runtime_frames() {
    // Reading another process's memory needs root (or ptrace rights), as the agent does.
    if !can_trace("python_runtime_frames") {
        return;
    }
    for python in interpreters() {
        if !python.exists() {
            skip(
                "python_runtime_frames",
                &format!("{} is not installed", python.display()),
            );
            return;
        }
        check(&python);
    }
}

#[test]
fn python_runtime_absent() {
    if !can_trace("python_runtime_absent") {
        return;
    }
    // `sleep` is no CPython.
    let child = Kill(Command::new("sleep").arg("30").spawn().unwrap());
    let pid = child.0.id() as i32;
    let maps = ModuleMap::read(pid).unwrap();
    assert!(python::find_runtime(pid, &maps).unwrap().is_none());
}
