//! The CPython struct offsets tracer uses, against the C compiler's `offsetof` on the
//! interpreter's own headers: the 3.11/3.12 tables, and what `_Py_DebugOffsets` gives (3.13+).
//!
//! `/usr/bin/python3.11` with its headers (`libpython3.11-dev`) always; more interpreters with
//! `TRACER_EXTRA_PYTHONS=/path/python3.12:/path/python3.13` (their headers found through
//! `sysconfig`).

use std::{
    collections::BTreeMap,
    path::{Path, PathBuf},
    process::{Command, Stdio},
};

use integration_tests::{can_trace, have_tool, skip};
use tracer::symbolize::{ModuleMap, python};

/// Prints `name value` for every offset `Layout::named` lists.
const OFFSETS_C: &str = r#"
#define Py_BUILD_CORE 1
#include <Python.h>
#include <stddef.h>
#include <stdio.h>
#include "internal/pycore_runtime.h"
#include "internal/pycore_interp.h"
#include "internal/pycore_frame.h"
#define P(n, e) printf("%s %zu\n", n, (size_t)(e))
int main(void) {
    P("runtime.interpreters.main", offsetof(_PyRuntimeState, interpreters.main));
    P("interp.threads.head", offsetof(PyInterpreterState, threads.head));
    P("tstate.next", offsetof(PyThreadState, next));
    P("tstate.native_thread_id", offsetof(PyThreadState, native_thread_id));
#if PY_VERSION_HEX < 0x030D0000
    P("tstate.cframe", offsetof(PyThreadState, cframe));
    P("cframe.current_frame", offsetof(_PyCFrame, current_frame));
    P("frame.f_code", offsetof(_PyInterpreterFrame, f_code));
    P("frame.prev_instr", offsetof(_PyInterpreterFrame, prev_instr));
#else
    P("tstate.current_frame", offsetof(PyThreadState, current_frame));
    P("frame.f_executable", offsetof(_PyInterpreterFrame, f_executable));
    P("frame.instr_ptr", offsetof(_PyInterpreterFrame, instr_ptr));
#endif
#if PY_VERSION_HEX < 0x030C0000
    P("frame.is_entry", offsetof(_PyInterpreterFrame, is_entry));
#else
    P("frame.owner", offsetof(_PyInterpreterFrame, owner));
#endif
    P("frame.previous", offsetof(_PyInterpreterFrame, previous));
    P("code.co_filename", offsetof(PyCodeObject, co_filename));
    P("code.co_name", offsetof(PyCodeObject, co_name));
    P("code.co_qualname", offsetof(PyCodeObject, co_qualname));
    P("code.co_linetable", offsetof(PyCodeObject, co_linetable));
    P("code.co_firstlineno", offsetof(PyCodeObject, co_firstlineno));
    P("code._co_firsttraceable", offsetof(PyCodeObject, _co_firsttraceable));
    P("code.co_code_adaptive", offsetof(PyCodeObject, co_code_adaptive));
    P("bytes.ob_sval", offsetof(PyBytesObject, ob_sval));
    P("varobject.ob_size", offsetof(PyVarObject, ob_size));
    P("sizeof.PyASCIIObject", sizeof(PyASCIIObject));
    P("sizeof.PyCompactUnicodeObject", sizeof(PyCompactUnicodeObject));
    P("ascii.length", offsetof(PyASCIIObject, length));
    P("ascii.state", offsetof(PyASCIIObject, state));
    printf("PY_VERSION_HEX %u\n", (unsigned)PY_VERSION_HEX);
    return 0;
}
"#;

fn interpreters() -> Vec<PathBuf> {
    let mut v = vec![PathBuf::from("/usr/bin/python3.11")];
    if let Ok(extra) = std::env::var("TRACER_EXTRA_PYTHONS") {
        v.extend(extra.split(':').filter(|s| !s.is_empty()).map(PathBuf::from));
    }
    v
}

/// `offsetof` values from the interpreter's headers.
fn compiled(python: &Path, dir: &Path) -> BTreeMap<String, u64> {
    let out = Command::new(python)
        .args(["-c", "import sysconfig; print(sysconfig.get_paths()['include'])"])
        .output()
        .unwrap();
    let include = String::from_utf8(out.stdout).unwrap().trim().to_string();
    assert!(
        Path::new(&include).join("internal/pycore_frame.h").exists(),
        "no internal headers in {include} (libpython3.X-dev)"
    );
    let name = python.file_name().unwrap().to_str().unwrap();
    let src = dir.join("offsets.c");
    std::fs::write(&src, OFFSETS_C).unwrap();
    let bin = dir.join(format!("offsets-{name}"));
    let cc = Command::new("cc")
        .arg(format!("-I{include}"))
        .arg(&src)
        .arg("-o")
        .arg(&bin)
        .output()
        .unwrap();
    assert!(cc.status.success(), "cc: {}", String::from_utf8_lossy(&cc.stderr));
    let out = Command::new(&bin).output().unwrap();
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| {
            let (k, v) = l.rsplit_once(' ').unwrap();
            (k.to_string(), v.parse().unwrap())
        })
        .collect()
}

#[test]
fn python_offsets_match_headers() {
    // The layout of 3.13+ comes from the live process's `_Py_DebugOffsets`: reading it needs
    // root (or ptrace rights) as the agent does.
    if !can_trace("python_offsets_match_headers") || !have_tool("python_offsets_match_headers", "cc") {
        return;
    }
    let dir = std::env::temp_dir().join(format!("tracer-pyoff-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    for python in interpreters() {
        if !python.exists() {
            skip(
                "python_offsets_match_headers",
                &format!("{} is not installed", python.display()),
            );
            return;
        }
        let minor = Command::new(&python)
            .args(["-c", "import sys; print(sys.version_info[1])"])
            .output()
            .unwrap();
        if String::from_utf8_lossy(&minor.stdout).trim().parse::<u8>().unwrap() < 11 {
            // No offsets before 3.11 (python_runtime checks that such a one is said unsupported).
            continue;
        }
        let c = compiled(&python, &dir);
        let hex = c["PY_VERSION_HEX"];
        let (major, minor) = ((hex >> 24) as u8, (hex >> 16) as u8);

        let mut child = Command::new(&python)
            .args(["-c", "import sys; print(flush=True); sys.stdin.read()"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let mut line = String::new();
        std::io::BufRead::read_line(&mut std::io::BufReader::new(child.stdout.take().unwrap()), &mut line).unwrap();
        let pid = child.id() as i32;
        let rt = python::find_runtime(pid, &ModuleMap::read(pid).unwrap())
            .unwrap()
            .expect("CPython");
        let _ = child.kill();
        let _ = child.wait();
        assert_eq!((rt.version.0, rt.version.1), (major, minor), "{}", python.display());
        let layout = rt
            .layout
            .unwrap_or_else(|| panic!("{}: {:?}", python.display(), rt.unsupported));
        if let Some(table) = python::offsets::table(major, minor) {
            assert_eq!(layout, table);
        }
        let named = layout.named();
        assert!(named.len() >= 22);
        for (name, value) in named {
            assert_eq!(
                c.get(name).copied(),
                Some(u64::from(value)),
                "{} {major}.{minor}: {name} (tracer {value}, offsetof {:?})",
                python.display(),
                c.get(name)
            );
        }
        eprintln!(
            "{} {major}.{minor}: {} offsets match the headers",
            python.display(),
            c.len() - 1
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
}
