//! A plain HTTP/1.1 GET (the xtask has no dependencies) and sums over a Prometheus text
//! exposition: what the benchmark reads from the agent's /metrics (and nginx's file).

use std::{
    io::{Read, Write},
    net::{SocketAddr, TcpStream},
    time::Duration,
};

use crate::Result;

/// GET `path` on a fresh connection; the body of a 200 reply.
pub(super) fn get(addr: SocketAddr, path: &str) -> Result<String> {
    let mut s =
        TcpStream::connect_timeout(&addr, Duration::from_secs(10)).map_err(|e| format!("connecting to {addr}: {e}"))?;
    s.set_read_timeout(Some(Duration::from_secs(30)))
        .map_err(|e| e.to_string())?;
    s.write_all(format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n").as_bytes())
        .map_err(|e| format!("sending to {addr}: {e}"))?;
    let mut buf = Vec::new();
    s.read_to_end(&mut buf)
        .map_err(|e| format!("reading from {addr}: {e}"))?;
    let text = String::from_utf8_lossy(&buf);
    let (head, body) = text
        .split_once("\r\n\r\n")
        .ok_or_else(|| format!("GET {path} on {addr}: no HTTP reply: {text:?}"))?;
    let status = head.lines().next().unwrap_or("");
    if status.split_whitespace().nth(1) != Some("200") {
        return Err(format!("GET {path} on {addr}: {status}"));
    }
    if head
        .lines()
        .any(|l| l.to_ascii_lowercase().starts_with("transfer-encoding:") && l.contains("chunked"))
    {
        return Err(format!("GET {path} on {addr}: chunked reply (not read here)"));
    }
    Ok(body.to_owned())
}

/// The sum of the samples of metric `name` whose labels include every pair of `labels`; None
/// when no series matches.
pub(super) fn sum(exposition: &str, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    let mut total = None;
    for line in exposition.lines() {
        let Some(s) = parse_sample(line) else {
            continue;
        };
        if s.name == name
            && labels
                .iter()
                .all(|(k, want)| s.labels.iter().any(|(lk, lv)| lk == k && lv == want))
        {
            *total.get_or_insert(0.0) += s.value;
        }
    }
    total
}

/// The samples of metric `name` by the value of its label `label`, in order of appearance.
pub(super) fn by_label(exposition: &str, name: &str, label: &str) -> Vec<(String, f64)> {
    exposition
        .lines()
        .filter_map(parse_sample)
        .filter(|s| s.name == name)
        .filter_map(|s| {
            let v = s.labels.iter().find(|(k, _)| k == label)?.1.clone();
            Some((v, s.value))
        })
        .collect()
}

/// One line of the exposition.
struct Sample<'a> {
    name: &'a str,
    /// Label values unescaped.
    labels: Vec<(String, String)>,
    value: f64,
}

/// `name{k="v",...} value [timestamp]`.
fn parse_sample(line: &str) -> Option<Sample<'_>> {
    let line = line.trim();
    if line.is_empty() || line.starts_with('#') {
        return None;
    }
    let name_end = line.find(|c: char| c == '{' || c.is_whitespace())?;
    let name = &line[..name_end];
    let mut rest = &line[name_end..];
    let mut labels = Vec::new();
    if let Some(inner) = rest.strip_prefix('{') {
        let mut chars = inner.char_indices();
        let mut key = String::new();
        let end = loop {
            let (i, c) = chars.next()?;
            match c {
                '}' => break i,
                ',' | ' ' => {}
                '=' => {
                    if chars.next()?.1 != '"' {
                        return None;
                    }
                    let mut value = String::new();
                    loop {
                        match chars.next()?.1 {
                            '"' => break,
                            '\\' => match chars.next()?.1 {
                                'n' => value.push('\n'),
                                other => value.push(other),
                            },
                            other => value.push(other),
                        }
                    }
                    labels.push((std::mem::take(&mut key), value));
                }
                c => key.push(c),
            }
        };
        rest = &inner[end + 1..];
    }
    let value = rest.split_whitespace().next()?.parse().ok()?;
    Some(Sample { name, labels, value })
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEXT: &str = "# HELP tracer_leak_suspects x\n\
        # TYPE tracer_leak_suspects gauge\n\
        tracer_leak_suspects{comm=\"agent_leaker\",container=\"\",kind=\"socket\"} 1\n\
        tracer_leak_suspects{comm=\"agent_leaker\",container=\"\",kind=\"char_device\"} 0\n\
        tracer_leak_suspects{comm=\"we\\\"b} x\",container=\"\",kind=\"socket\"} 4\n\
        tracer_kernel_lost_events_total{reason=\"ring_buffer_full\"} 3\n\
        tracer_kernel_lost_events_total{reason=\"stack_not_captured\"} 2\n\
        tracer_agent_cpu_seconds_total 1.5\n";

    #[test]
    fn sums_matching_series() {
        assert_eq!(sum(TEXT, "tracer_kernel_lost_events_total", &[]), Some(5.0));
        assert_eq!(
            sum(TEXT, "tracer_leak_suspects", &[("comm", "agent_leaker")]),
            Some(1.0)
        );
        assert_eq!(sum(TEXT, "tracer_leak_suspects", &[("comm", "we\"b} x")]), Some(4.0));
        assert_eq!(sum(TEXT, "tracer_agent_cpu_seconds_total", &[]), Some(1.5));
        assert_eq!(sum(TEXT, "tracer_leak_suspects", &[("comm", "nginx")]), None);
        assert_eq!(sum(TEXT, "tracer_open_fds", &[]), None);
        assert_eq!(
            by_label(TEXT, "tracer_kernel_lost_events_total", "reason"),
            vec![
                ("ring_buffer_full".to_owned(), 3.0),
                ("stack_not_captured".to_owned(), 2.0)
            ]
        );
        assert!(by_label(TEXT, "tracer_agent_cpu_seconds_total", "reason").is_empty());
    }
}
