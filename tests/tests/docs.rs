//! The docs stay true to the binary: every option `--help` prints is in docs/cli.md, every metric
//! family the agent emits is in docs/agent.md, and the README stays short with links that lead
//! somewhere.

use std::{
    collections::BTreeSet,
    io::{BufRead, BufReader},
    path::Path,
    process::{Command, Stdio},
};

use integration_tests::{agent::AgentProcess, can_trace, fixture, tracer, workspace_root};

const README_MAX_LINES: usize = 300;

fn read_doc(relative: &str) -> String {
    let path = workspace_root().join(relative);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()))
}

fn help(args: &[&str]) -> String {
    let out = tracer(args);
    assert!(
        out.status.success(),
        "tracer {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The subcommands `tracer --help` lists (hidden ones are not listed), without `help`.
fn subcommands(top_help: &str) -> Vec<String> {
    top_help
        .lines()
        .skip_while(|l| l.trim() != "Commands:")
        .skip(1)
        .take_while(|l| !l.trim().is_empty())
        .filter_map(|l| l.split_whitespace().next())
        .filter(|name| *name != "help")
        .map(str::to_owned)
        .collect()
}

/// The long options of the definition lines of a `--help` text (`-p, --pid <PID>`, `--all`),
/// not the `--xyz` that descriptions mention.
fn long_options(help_text: &str) -> BTreeSet<String> {
    let mut options = BTreeSet::new();
    for line in help_text.lines() {
        let line = line.trim_start();
        if !line.starts_with('-') {
            continue;
        }
        for token in line.split_whitespace() {
            let token = token.trim_end_matches(',');
            if let Some(name) = token.strip_prefix("--") {
                options.insert(format!("--{}", name.split('=').next().unwrap_or(name)));
            } else if !(token.starts_with('-') || token.starts_with('<') || token.starts_with('[')) {
                break;
            }
        }
    }
    options
}

/// True when `doc` names `option` whole: `--stack` followed by `-size` does not count.
fn names_option(doc: &str, option: &str) -> bool {
    doc.match_indices(option).any(|(i, _)| {
        doc[i + option.len()..]
            .chars()
            .next()
            .is_none_or(|c| !(c.is_ascii_alphanumeric() || c == '-' || c == '_'))
    })
}

#[test]
fn every_option_of_every_subcommand_is_in_docs_cli_md() {
    let doc = read_doc("docs/cli.md");
    let top = help(&["--help"]);
    let subs = subcommands(&top);
    assert!(subs.len() >= 4, "no subcommands found in `tracer --help`:\n{top}");
    let mut missing = Vec::new();
    let mut checked = 0;
    for option in long_options(&top) {
        checked += 1;
        if !names_option(&doc, &option) {
            missing.push(format!("tracer {option}"));
        }
    }
    for sub in &subs {
        if !doc.contains(&format!("## `tracer {sub}`")) {
            missing.push(format!("a `## `tracer {sub}`` section"));
        }
        let text = help(&[sub, "--help"]);
        let options = long_options(&text);
        assert!(
            options.len() > 1,
            "no options parsed from `tracer {sub} --help`:\n{text}"
        );
        for option in options {
            checked += 1;
            if !names_option(&doc, &option) {
                missing.push(format!("tracer {sub} {option}"));
            }
        }
    }
    assert!(
        missing.is_empty(),
        "docs/cli.md does not document:\n  {}",
        missing.join("\n  ")
    );
    eprintln!(
        "{checked} options of tracer and {} subcommands are in docs/cli.md",
        subs.len()
    );
}

/// Family names of a Prometheus text exposition, counters named as the docs name them (with
/// `_total`, whichever exposition format dropped it).
fn metric_families(exposition: &str) -> BTreeSet<String> {
    exposition
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .filter_map(|l| {
            let mut parts = l.split_whitespace();
            let name = parts.next()?;
            let kind = parts.next()?;
            Some(if kind == "counter" && !name.ends_with("_total") {
                format!("{name}_total")
            } else {
                name.to_owned()
            })
        })
        .collect()
}

/// Runs a fixture to its end (what it prints does not matter here, only what it makes the agent
/// count).
fn run_fixture(name: &str, args: &[&str]) {
    let status = Command::new(fixture(name))
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .unwrap_or_else(|e| panic!("cannot run {name}: {e}"));
    assert!(status.code().is_some(), "{name} was killed by a signal");
}

#[test]
fn every_metric_the_agent_emits_is_in_docs_agent_md() {
    if !can_trace("every metric the agent emits is in docs/agent.md") {
        return;
    }
    let doc = read_doc("docs/agent.md");
    // --bpf-stats and --write-block bring out the families that are off by default.
    let agent = AgentProcess::start(&["--bpf-stats", "--write-block", "100ms"]);
    // Families that appear once something happened: problems, locks, stalls, merged signals.
    let lock = std::env::temp_dir().join(format!("tracer-docs-{}.lock", std::process::id()));
    let lock_path = lock.to_string_lossy().into_owned();
    run_fixture("double_close", &[]);
    run_fixture("select_big", &[]);
    run_fixture("emfile", &[]);
    run_fixture("eventfd_overflow", &[]);
    run_fixture("write_stall", &["pipe", "2", "200"]);
    run_fixture("flock_contend", &[&lock_path, "300"]);
    let _ = std::fs::remove_file(&lock);
    run_fixture("zombie_pile", &[]);
    // Zombies are a gauge: scrape while the parent holds them.
    let mut parent = Command::new(fixture("zombie_parent"))
        .args(["4", "5", "50", "3000"])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run zombie_parent: {e}"));
    let out = parent.stdout.take().unwrap_or_else(|| panic!("no stdout"));
    let mut lines = BufReader::new(out).lines().map_while(Result::ok);
    let said_zombies = lines.any(|l| l.starts_with("ZOMBIES"));
    assert!(said_zombies, "zombie_parent never reported its zombies");
    let reply = agent.get("/metrics");
    lines.for_each(drop);
    let _ = parent.wait();
    assert_eq!(reply.status, 200, "{}", reply.text());
    let exposition = reply.text();
    let families = metric_families(&exposition);
    // The parse found the exposition's families, not nothing.
    assert!(
        families.contains("tracer_records_total") && families.contains("tracer_open_fds") && families.len() >= 30,
        "too few families parsed ({}):\n{exposition}",
        families.len()
    );
    let missing: Vec<&String> = families.iter().filter(|f| !doc.contains(&format!("`{f}`"))).collect();
    assert!(
        missing.is_empty(),
        "docs/agent.md does not document the metric families {missing:?}"
    );
    eprintln!(
        "{} metric families the agent emitted are in docs/agent.md",
        families.len()
    );
    assert_eq!(agent.stop(), 0);
}

/// GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens.
fn anchor(heading: &str) -> String {
    heading
        .trim()
        .to_lowercase()
        .chars()
        .filter(|c| c.is_alphanumeric() || *c == ' ' || *c == '-' || *c == '_')
        .map(|c| if c == ' ' { '-' } else { c })
        .collect()
}

/// The text of a markdown file outside its fenced code blocks.
fn prose(text: &str) -> Vec<&str> {
    let mut fenced = false;
    text.lines()
        .filter(|l| {
            if l.trim_start().starts_with("```") {
                fenced = !fenced;
                return false;
            }
            !fenced
        })
        .collect()
}

fn anchors(text: &str) -> BTreeSet<String> {
    prose(text)
        .into_iter()
        .filter(|l| l.starts_with('#'))
        .map(|l| anchor(l.trim_start_matches('#')))
        .collect()
}

/// Relative link targets (`[text](target)`) of a markdown file, outside code blocks.
fn relative_links(text: &str) -> Vec<String> {
    let mut links = Vec::new();
    for line in prose(text) {
        let mut rest = line;
        while let Some(i) = rest.find("](") {
            rest = &rest[i + 2..];
            let Some(end) = rest.find(')') else { break };
            let target = &rest[..end];
            if !target.contains("://") && !target.starts_with("mailto:") {
                links.push(target.to_owned());
            }
            rest = &rest[end..];
        }
    }
    links
}

/// Every relative link of `file` leads to a file that exists, and to a heading of it when it
/// names one. Returns what is broken.
fn broken_links(file: &str) -> Vec<String> {
    let text = read_doc(file);
    let dir = Path::new(file).parent().unwrap_or(Path::new(""));
    let mut broken = Vec::new();
    for link in relative_links(&text) {
        let (path, fragment) = link.split_once('#').unwrap_or((&link, ""));
        let target = if path.is_empty() {
            file.to_owned()
        } else {
            dir.join(path).to_string_lossy().into_owned()
        };
        let full = workspace_root().join(&target);
        if !full.exists() {
            broken.push(format!("{file}: ({link}): {} does not exist", full.display()));
            continue;
        }
        if !fragment.is_empty() && target.ends_with(".md") && !anchors(&read_doc(&target)).contains(fragment) {
            broken.push(format!("{file}: ({link}): no heading with that anchor in {target}"));
        }
    }
    broken
}

#[test]
fn the_readme_is_short_and_its_links_lead_somewhere() {
    let readme = read_doc("README.md");
    let lines = readme.lines().count();
    assert!(
        lines <= README_MAX_LINES,
        "README.md has {lines} lines (at most {README_MAX_LINES})"
    );
    let docs: Vec<String> = relative_links(&readme)
        .into_iter()
        .filter(|l| l.starts_with("docs/"))
        .collect();
    assert!(docs.len() >= 5, "the README links to too few docs: {docs:?}");
    let mut broken = broken_links("README.md");
    let dir = workspace_root().join("docs");
    let entries = std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("cannot list {}: {e}", dir.display()));
    for entry in entries.map_while(Result::ok) {
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.ends_with(".md") {
            broken.extend(broken_links(&format!("docs/{name}")));
        }
    }
    assert!(broken.is_empty(), "broken links:\n  {}", broken.join("\n  "));
}
