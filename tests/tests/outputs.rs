//! What people read and look at: frames without a symbol named `module+0xOFFSET` (checked with
//! addr2line), collapsed stacks and the flame graph SVG (rendered in headless Chromium).

use std::{path::Path, process::Command};

use integration_tests::{Build, can_trace, fixture_built, have_tool, tracer};

fn tmpdir(name: &str) -> std::path::PathBuf {
    let d = std::env::temp_dir().join(format!("tracer-outputs-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap_or_else(|e| panic!("{e}"));
    d
}

/// `tracer run --format FORMAT -o FILE -- CMD`, returning FILE's bytes.
fn run_to_file(format: &str, out: &Path, cmd: &[&str]) -> Vec<u8> {
    run_to_file_with(&[], format, out, cmd)
}

fn run_to_file_with(flags: &[&str], format: &str, out: &Path, cmd: &[&str]) -> Vec<u8> {
    let o = out.to_string_lossy().into_owned();
    let mut args = vec!["run", "--format", format, "-o", &o];
    args.extend_from_slice(flags);
    args.push("--");
    args.extend_from_slice(cmd);
    let r = tracer(&args);
    assert_eq!(r.status.code(), Some(0), "{}", String::from_utf8_lossy(&r.stderr));
    std::fs::read(out).unwrap_or_else(|e| panic!("no {format} output ({e})"))
}

#[test]
fn frames_without_symbols_are_module_plus_offset_that_addr2line_resolves() {
    if !can_trace("outputs_offsets") || !have_tool("outputs_offsets", "addr2line") {
        return;
    }
    let full = fixture_built("leaky_error_path", Build::Optimized);
    let dir = tmpdir("offsets");
    // No symbols and no debug file anywhere: only module and offset can name the frames.
    let bare = dir.join("bare_leaker");
    let st = Command::new("strip")
        .arg("--strip-all")
        .arg("-o")
        .arg(&bare)
        .arg(&full)
        .status()
        .unwrap_or_else(|e| panic!("strip: {e}"));
    assert!(st.success());
    let bare_s = bare.to_string_lossy().into_owned();
    let text = run_to_file("text", &dir.join("report.txt"), &[&bare_s, "60", "10"]);
    let text = String::from_utf8_lossy(&text).into_owned();
    assert!(!text.contains("??"), "never a bare ??:\n{text}");
    let needle = format!("{bare_s}+0x");
    let offsets: Vec<String> = text
        .lines()
        .filter_map(|l| {
            let at = l.find(&needle)? + needle.len() - 2;
            Some(l[at..].split_whitespace().next()?.to_owned())
        })
        .collect();
    assert!(!offsets.is_empty(), "no {needle} frames:\n{text}");
    // The form addr2line takes: the unstripped build names the leaking function there.
    let out = Command::new("addr2line")
        .arg("-f")
        .arg("-e")
        .arg(&full)
        .args(&offsets)
        .output()
        .unwrap_or_else(|e| panic!("addr2line: {e}"));
    let names = String::from_utf8_lossy(&out.stdout);
    assert!(
        names.lines().any(|l| l == "load_config") && names.lines().any(|l| l == "run_loop"),
        "addr2line of {offsets:?}:\n{names}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// `<title>` texts of an SVG, which must parse as XML.
fn svg_titles(svg: &[u8]) -> Vec<String> {
    use quick_xml::{Reader, events::Event};
    let mut reader = Reader::from_reader(svg);
    let (mut titles, mut in_title, mut buf) = (Vec::new(), false, Vec::new());
    let mut root = None;
    loop {
        match reader.read_event_into(&mut buf) {
            Ok(Event::Start(e)) => {
                root.get_or_insert_with(|| String::from_utf8_lossy(e.name().as_ref()).into_owned());
                in_title = e.name().as_ref() == b"title";
            }
            Ok(Event::End(_)) => in_title = false,
            Ok(Event::Text(t)) if in_title => titles.push(t.decode().map(|c| c.into_owned()).unwrap_or_default()),
            Ok(Event::Eof) => break,
            Err(e) => panic!("the SVG does not parse as XML: {e}"),
            _ => {}
        }
        buf.clear();
    }
    assert_eq!(root.as_deref(), Some("svg"), "an SVG document");
    titles
}

#[test]
fn folded_stacks_and_flame_graph_name_the_leak() {
    if !can_trace("outputs_flame") || !have_tool("outputs_flame", "chromium") {
        return;
    }
    let bin = fixture_built("leaky_error_path", Build::Optimized)
        .to_string_lossy()
        .into_owned();
    let dir = tmpdir("flame");
    let folded = run_to_file("folded", &dir.join("fds.folded"), &[&bin, "120", "10"]);
    let folded = String::from_utf8(folded).unwrap_or_else(|e| panic!("{e}"));
    let leak = folded
        .lines()
        .find(|l| l.contains(";load_config;"))
        .unwrap_or_else(|| panic!("no stack through load_config:\n{folded}"));
    // Root first: comm, pid, main ... load_config ... libc, the kind last, then the weight.
    let (stack, count) = leak.rsplit_once(' ').unwrap_or_default();
    assert!(count.parse::<u64>().is_ok_and(|c| c >= 100), "{leak}");
    let frames: Vec<&str> = stack.split(';').collect();
    assert!(
        frames[0].starts_with("leaky_error_pat") && frames[1].starts_with("pid "),
        "{leak}"
    );
    let pos = |n: &str| frames.iter().position(|f| *f == n);
    assert!(
        pos("main") < pos("run_loop") && pos("run_loop") < pos("load_config"),
        "{leak}"
    );
    assert_eq!(frames.last(), Some(&"file [leak suspect]"), "{leak}");

    let svg_path = dir.join("fds.svg");
    let svg = run_to_file("svg", &svg_path, &[&bin, "120", "10"]);
    let titles = svg_titles(&svg);
    assert!(titles.iter().any(|t| t.starts_with("load_config (")), "{titles:?}");
    // A person opens it in a browser: Chromium renders it (screenshot) and its DOM, after the
    // SVG's own script ran, still names the leak.
    let shot = dir.join("shot.png");
    let chromium = |extra: &[&str]| {
        Command::new("chromium")
            .args(["--headless", "--no-sandbox", "--disable-gpu", "--window-size=1200,900"])
            .args(extra)
            .arg(format!("file://{}", svg_path.display()))
            .output()
            .unwrap_or_else(|e| panic!("chromium: {e}"))
    };
    let out = chromium(&[&format!("--screenshot={}", shot.display())]);
    let png = std::fs::read(&shot)
        .unwrap_or_else(|e| panic!("no screenshot ({e}): {}", String::from_utf8_lossy(&out.stderr)));
    assert!(
        png.starts_with(b"\x89PNG") && png.len() > 5_000,
        "a real picture: {} bytes",
        png.len()
    );
    let dom = chromium(&["--dump-dom"]);
    let dom = String::from_utf8_lossy(&dom.stdout);
    assert!(
        dom.contains("load_config"),
        "the rendered DOM names the leak:\n{dom:.2000}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn text_report_sums_children_that_left_nothing_and_all_lists_them() {
    if !can_trace("outputs_condensed") {
        return;
    }
    // 10 bursts of 5 children that exit with nothing of their own open; --fixed reaps them all.
    let bin = integration_tests::fixture("zombie_parent")
        .to_string_lossy()
        .into_owned();
    let dir = tmpdir("condensed");
    let cmd = [bin.as_str(), "--fixed", "10", "5", "30", "100"];
    let text = run_to_file("text", &dir.join("condensed.txt"), &cmd);
    let text = String::from_utf8_lossy(&text).into_owned();
    let table: Vec<&str> = text
        .lines()
        .skip_while(|l| !l.starts_with("PID "))
        .skip(1)
        .take_while(|l| !l.is_empty())
        .collect();
    let summed = table
        .iter()
        .find(|l| l.contains("children of") && l.ends_with("(zombie_parent): exited, nothing left open"))
        .unwrap_or_else(|| panic!("no summed line:\n{text}"));
    let n: usize = summed
        .split_whitespace()
        .next()
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("{summed}"));
    assert_eq!(n, 50, "every child summed: {summed}");
    // Rows start with the pid; summed lines are indented.
    let listed = table
        .iter()
        .filter(|l| !l.starts_with(' ') && l.split_whitespace().next().is_some_and(|p| p.parse::<u32>().is_ok()));
    assert_eq!(listed.count(), 1, "only the parent is listed:\n{text}");
    assert!(!text.contains("\x1b"), "no colour in a file");

    // --all: every child on a line of its own.
    let all = run_to_file_with(&["--all"], "text", &dir.join("all.txt"), &cmd);
    let all = String::from_utf8_lossy(&all).into_owned();
    let rows = all
        .lines()
        .skip_while(|l| !l.starts_with("PID "))
        .skip(1)
        .take_while(|l| !l.is_empty())
        .filter(|l| l.contains("zombie_parent") && l.contains("(exited"))
        .count();
    assert_eq!(rows, 51, "--all lists the parent and every child:\n{all}");
    assert!(!all.contains("nothing left open"), "{all}");
    let _ = std::fs::remove_dir_all(&dir);
}
