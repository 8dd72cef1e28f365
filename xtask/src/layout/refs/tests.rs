use super::*;

fn names(source: &str, module: &[&str]) -> Vec<String> {
    root_refs(source, module).into_iter().map(|r| r.name).collect()
}

#[test]
fn plain_and_grouped_uses_name_each_room() {
    let src = "use crate::state::Fd;\n\
               pub(crate) use crate::{analysis, output::text::{self, Report}, model::Frame as F};\n\
               use std::collections::HashMap;\n";
    // One name per leaf: `text` and `Report` both reach into output.
    assert_eq!(
        names(src, &["tracker"]),
        ["state", "analysis", "output", "output", "model"]
    );
}

#[test]
fn nested_groups_and_a_leading_crate_in_a_group() {
    let src =
        "use {crate::procfs::stat, std::fs};\nuse crate::{\n    probes::{Probes, ProbeOptions},\n    stacks,\n};\n";
    let refs = root_refs(src, &["runtime"]);
    let got: Vec<(usize, &str)> = refs.iter().map(|r| (r.line, r.name.as_str())).collect();
    assert_eq!(got, [(1, "procfs"), (3, "probes"), (3, "probes"), (4, "stacks")]);
}

#[test]
fn paths_in_code_count_too() {
    let src = "fn f() -> crate::model::Report { crate::analysis::run(x::crate_y, $crate::z) }\n\
               pub(crate) struct S;\npub(in crate::state) fn g() {}\n";
    assert_eq!(names(src, &["output"]), ["model", "analysis", "state"]);
}

#[test]
fn comments_strings_and_chars_are_ignored() {
    let src = r####"
// use crate::analysis;
/* use crate::output; /* nested crate::http */ still crate::cli */
/// [`crate::modes`] in a doc comment
const A: &str = "use crate::runtime;";
const B: &str = r#"crate::tracker "quoted" "#;
const C: &[u8] = br"crate::stacks";
const D: char = '"'; const E: char = '\''; fn f<'a>(x: &'a str) {}
use crate::procfs;
"####;
    assert_eq!(names(src, &["state"]), ["procfs"]);
}

#[test]
fn super_climbs_from_the_files_module_and_inline_modules() {
    // state/apply.rs: `super` is the state room.
    assert_eq!(
        names("use super::{FdKind, scm};", &["state", "apply"]),
        ["state", "state"]
    );
    // A room's mod.rs: `super` is the crate root.
    assert_eq!(names("use super::analysis::Suspect;", &["state"]), ["analysis"]);
    assert_eq!(names("use super::*;", &["state"]), Vec::<String>::new());
    assert_eq!(names("fn f() { super::output::emit() }", &["state"]), ["output"]);
    // Inside `mod tests { .. }` of a mod.rs, `super` is the room again.
    let src = "mod tests {\n    use super::*;\n    use super::super::model::Frame;\n    use super::fds;\n}\nuse super::cli;\n";
    assert_eq!(names(src, &["state"]), ["state", "model", "state", "cli"]);
}

#[test]
fn self_and_other_crates_are_not_the_root() {
    assert_eq!(
        names(
            "use self::x::y;\nuse tracer_common::syscalls;\nuse ::std::fs;",
            &["state", "apply"]
        ),
        ["state"]
    );
    assert_eq!(
        names("use serde::{Deserialize, Serialize};", &["model"]),
        Vec::<String>::new()
    );
}

#[test]
fn lines_are_counted_through_blanked_comments() {
    let src = "/* one\ntwo */\n\"a\nb\"\nuse crate::cli;";
    assert_eq!(
        root_refs(src, &["modes"]),
        [RootRef {
            line: 5,
            name: "cli".into()
        }]
    );
}
