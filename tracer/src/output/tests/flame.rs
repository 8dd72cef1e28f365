//! Folded stacks and the SVG flame graph, pinned: hostile names stay inside their frame,
//! suspects are red.

use super::{pin, render, sample};
use crate::{model::Report, output::Format};

/// The sample with a `;` and a newline in names: neither may add a frame or a line.
fn flame_sample() -> Report {
    let mut r = sample();
    r.outstanding[0].stack.frames[1].function = Some("load;config\nnow".into());
    r.suspects[0].stack.frames[1].function = Some("load;config\nnow".into());
    r.processes[1].comm_bytes = b"a;b".to_vec();
    r
}

#[test]
fn folded_stacks_are_pinned_and_hostile_names_stay_in_their_frame() {
    let out = render(Format::Folded, &flame_sample());
    pin("report.folded", &out);
    let text = String::from_utf8(out).unwrap_or_else(|e| panic!("{e}"));
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(
        lines.len(),
        5,
        "one line per fd site (two suspects, two flat, one emptied at exit): {text}"
    );
    // A Python site its process's teardown emptied: weighted by what it held, Python frames
    // named `function (file:line)`, the `;` in a qualified name escaped.
    assert!(
        text.contains("python3.11;pid 4244;<module> (/srv/app/pool.py:97);Pool.get\\x3b\\n\"x\" (/srv/app/pool.py:34);__libc_open64;file [leak suspect, held until exit] 42\n"),
        "{text}"
    );
    // Root first: comm, pid, then the outermost frame; the leaf is the kind.
    let leak = lines[0];
    assert!(
        leak.starts_with("svc\\xfe\\n;pid 4242;main;load\\x3bconfig\\nnow;__libc_open64;file [leak suspect] 120"),
        "{leak}"
    );
    for l in &lines {
        let (stack, count) = l.rsplit_once(' ').unwrap_or_else(|| panic!("no count: {l}"));
        assert!(count.parse::<u64>().is_ok(), "{l}");
        assert!(stack.split(';').all(|f| !f.is_empty()), "{l}");
    }
    assert!(
        text.contains("a\\x3bb;pid 4243;[opened before tracing];socket (inet6) 4"),
        "{text}"
    );
}

/// Text of the SVG's `<title>` elements (one per frame: name, fds, share) and whether the
/// suspect's frames are filled red.
fn svg_titles(svg: &[u8]) -> (Vec<String>, Vec<(String, String)>) {
    use quick_xml::{Reader, events::Event};
    let mut reader = Reader::from_reader(svg);
    let (mut titles, mut fills) = (Vec::new(), Vec::new());
    let (mut in_title, mut last_fill) = (false, String::new());
    let mut buf = Vec::new();
    loop {
        match reader.read_event_into(&mut buf) {
            Ok(Event::Start(e)) if e.name().as_ref() == b"title" => in_title = true,
            Ok(Event::End(e)) if e.name().as_ref() == b"title" => in_title = false,
            Ok(Event::Text(t)) if in_title => {
                let s = t.decode().map(|c| c.into_owned()).unwrap_or_default();
                let s = quick_xml::escape::unescape(&s).map(|c| c.into_owned()).unwrap_or(s);
                titles.push(s.clone());
                if !last_fill.is_empty() {
                    fills.push((s, std::mem::take(&mut last_fill)));
                }
            }
            Ok(Event::Empty(e)) if e.name().as_ref() == b"rect" => {
                if let Some(Ok(a)) = e
                    .attributes()
                    .find(|a| a.as_ref().is_ok_and(|a| a.key.as_ref() == b"fill"))
                {
                    last_fill = String::from_utf8_lossy(&a.value).into_owned();
                }
            }
            Ok(Event::Eof) => break,
            Err(e) => panic!("the SVG does not parse: {e}"),
            _ => {}
        }
        buf.clear();
    }
    (titles, fills)
}

#[test]
fn svg_flame_graph_text_is_pinned_and_suspects_are_red() {
    let out = render(Format::Svg, &flame_sample());
    let (titles, fills) = svg_titles(&out);
    let mut text = titles.join("\n");
    text.push('\n');
    pin("report.svg.txt", text.as_bytes());
    assert!(
        titles.iter().any(|t| t.starts_with("load\\x3bconfig\\nnow (120 fds")),
        "escaped names, weighted by fds: {titles:?}"
    );
    let fill_of = |prefix: &str| {
        fills
            .iter()
            .find(|(t, _)| t.starts_with(prefix))
            .map(|(_, f)| f.clone())
            .unwrap_or_else(|| panic!("no frame {prefix}: {fills:?}"))
    };
    assert_eq!(fill_of("file [leak suspect]"), "rgb(220,30,30)");
    assert_eq!(
        fill_of("load\\x3bconfig"),
        "rgb(220,30,30)",
        "the suspect's own frames are red"
    );
    assert_ne!(
        fill_of("socket (inet6)"),
        "rgb(220,30,30)",
        "what is not growing is not red"
    );
}
