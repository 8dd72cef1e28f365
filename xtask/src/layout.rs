//! `cargo xtask layout`: the shape of the sources, checked (also the first step of
//! `cargo xtask test`).
//!
//! - No `.rs` file of the workspace (outside `target/`) is over [`MAX_LINES`] lines: a module
//!   that long is asking to be split along a concept.
//! - In `tracer/src`, every reference from one room to another (`crate::ROOM`, `use` trees,
//!   `super::` climbing to the root) goes down the layers of `layers.rs`.
//!
//! Every problem is reported at once, sorted.

mod refs;

use std::path::{Path, PathBuf};

use crate::{Result, layers};

/// Lines a source file may have.
pub const MAX_LINES: usize = 500;

pub fn check(root: &Path) -> Result {
    let mut files = Vec::new();
    rust_files(root, &mut files)?;
    files.sort();
    let mut problems = Vec::new();
    for file in &files {
        let lines = read(file)?.lines().count();
        if lines > MAX_LINES {
            problems.push(format!(
                "{} has {lines} lines, over {MAX_LINES}: split it along a concept",
                rel(root, file)
            ));
        }
    }
    problems.extend(room_problems(root)?);
    if problems.is_empty() {
        eprintln!(
            "xtask: layout: {} files within {MAX_LINES} lines; tracer/src's rooms import downwards only",
            files.len()
        );
        return Ok(());
    }
    problems.sort();
    for p in &problems {
        eprintln!("{p}");
    }
    Err(format!("layout: {} problem(s) (listed above)", problems.len()))
}

/// The `.rs` files under `dir`, leaving out `target/` and hidden folders.
fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) -> Result {
    let entries = std::fs::read_dir(dir).map_err(|e| format!("reading {}: {e}", dir.display()))?;
    for entry in entries {
        let path = entry.map_err(|e| format!("reading {}: {e}", dir.display()))?.path();
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        if path.is_dir() {
            if name != "target" && !name.starts_with('.') {
                rust_files(&path, out)?;
            }
        } else if name.ends_with(".rs") {
            out.push(path);
        }
    }
    Ok(())
}

fn read(file: &Path) -> Result<String> {
    std::fs::read_to_string(file).map_err(|e| format!("reading {}: {e}", file.display()))
}

fn rel(root: &Path, file: &Path) -> String {
    file.strip_prefix(root).unwrap_or(file).display().to_string()
}

/// The room checks of `tracer/src`: rooms missing from the table, imports against it.
fn room_problems(root: &Path) -> Result<Vec<String>> {
    let src = root.join("tracer/src");
    let mut rooms = Vec::new();
    let entries = std::fs::read_dir(&src).map_err(|e| format!("reading {}: {e}", src.display()))?;
    for entry in entries {
        let path = entry.map_err(|e| format!("reading {}: {e}", src.display()))?.path();
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        if path.is_dir() {
            rooms.push(name);
        } else if let Some(stem) = name.strip_suffix(".rs") {
            rooms.push(stem.to_owned());
        }
    }
    let mut problems: Vec<String> = rooms
        .iter()
        .filter(|r| layers::layer(r).is_none())
        .map(|r| format!("tracer/src/{r} is a room missing from xtask/src/layers.rs: place it in a layer"))
        .collect();
    let mut files = Vec::new();
    rust_files(&src, &mut files)?;
    files.sort();
    for file in files {
        let path = rel(&src, &file);
        let module = module_path(&path);
        let Some(&from) = module.first() else { continue };
        let mut seen: Vec<String> = Vec::new();
        for r in refs::root_refs(&read(&file)?, &module) {
            // A name at the root that is no room is an item of the crate root: the `lib` room.
            let to = if rooms.contains(&r.name) {
                r.name
            } else {
                "lib".to_owned()
            };
            if from == "main" || seen.contains(&to) {
                continue;
            }
            seen.push(to.clone());
            if !layers::may_import(from, &to) {
                problems.push(format!(
                    "tracer/src/{path} imports crate::{to}, but {from} may not import {to} (see xtask/src/layers.rs)"
                ));
            }
        }
    }
    Ok(problems)
}

/// The module path of a file under `tracer/src`: `state/apply.rs` -> `[state, apply]`,
/// `state/mod.rs` -> `[state]`, `cli.rs` -> `[cli]`, `lib.rs` and `main.rs` -> their own room.
fn module_path(path: &str) -> Vec<&str> {
    let path = path.strip_suffix(".rs").unwrap_or(path);
    let mut parts: Vec<&str> = path.split('/').collect();
    if parts.len() > 1 && parts.last() == Some(&"mod") {
        parts.pop();
    }
    parts
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn module_paths_of_files() {
        assert_eq!(module_path("state/apply.rs"), ["state", "apply"]);
        assert_eq!(module_path("state/mod.rs"), ["state"]);
        assert_eq!(module_path("output/text/mod.rs"), ["output", "text"]);
        assert_eq!(module_path("cli.rs"), ["cli"]);
        assert_eq!(module_path("lib.rs"), ["lib"]);
    }
}
