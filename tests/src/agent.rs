//! Helpers for the production-mode tests: the agent as a child process, a plain HTTP/1.1 client,
//! a real Prometheus server scraping the agent, `go tool pprof` and `promtool`.

use std::{
    io::{BufRead, BufReader, Read, Write},
    net::{SocketAddr, TcpListener, TcpStream},
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use crate::tracer_bin;

/// `tracer agent` running on a loopback port of its own choosing.
pub struct AgentProcess {
    pub child: Child,
    pub addr: SocketAddr,
    /// Everything it wrote to stderr so far.
    pub stderr: Arc<Mutex<String>>,
}

impl AgentProcess {
    /// Starts `tracer agent --listen 127.0.0.1:0 ARGS` and waits until it is ready.
    pub fn start(args: &[&str]) -> AgentProcess {
        let mut child = Command::new(tracer_bin())
            .arg("agent")
            .args(["--listen", "127.0.0.1:0"])
            .args(args)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start tracer agent: {e}"));
        let stderr = Arc::new(Mutex::new(String::new()));
        let pipe = child.stderr.take().unwrap_or_else(|| panic!("no stderr"));
        let (tx, rx) = std::sync::mpsc::channel::<Option<SocketAddr>>();
        let log = stderr.clone();
        std::thread::spawn(move || {
            let mut addr = None;
            for line in BufReader::new(pipe).lines().map_while(Result::ok) {
                if let Ok(mut l) = log.lock() {
                    l.push_str(&line);
                    l.push('\n');
                }
                let served = line
                    .strip_prefix("tracer: agent on http://")
                    .or_else(|| line.strip_prefix("tracer: agent on https://"));
                if let Some(rest) = served {
                    addr = rest.split_whitespace().next().and_then(|a| a.parse().ok());
                }
                if line == "tracer: ready" {
                    let _ = tx.send(addr);
                }
            }
            let _ = tx.send(None);
        });
        let addr = match rx.recv_timeout(Duration::from_secs(60)) {
            Ok(Some(a)) => a,
            other => {
                let _ = child.kill();
                let _ = child.wait();
                let text = stderr.lock().map(|s| s.clone()).unwrap_or_default();
                panic!("the agent did not become ready ({other:?}); stderr:\n{text}");
            }
        };
        AgentProcess { child, addr, stderr }
    }

    pub fn get(&self, path: &str) -> HttpReply {
        http_get(self.addr, path)
    }

    pub fn stderr(&self) -> String {
        self.stderr.lock().map(|s| s.clone()).unwrap_or_default()
    }

    /// SIGTERM, then the exit code.
    pub fn stop(mut self) -> i32 {
        terminate(&mut self.child)
    }
}

impl Drop for AgentProcess {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            terminate(&mut self.child);
        }
    }
}

/// SIGTERM a child and wait for it (killed after 10 s); returns its exit code (-1: signalled).
pub fn terminate(child: &mut Child) -> i32 {
    // SAFETY: kill(2) on our own child's pid.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match child.try_wait() {
            Ok(Some(s)) => return s.code().unwrap_or(-1),
            Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(20)),
            _ => {
                let _ = child.kill();
                return child.wait().ok().and_then(|s| s.code()).unwrap_or(-1);
            }
        }
    }
}

#[derive(Debug)]
pub struct HttpReply {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl HttpReply {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// One HTTP/1.1 request on a fresh connection; `raw` is sent as is (tests send malformed ones).
pub fn http_raw(addr: SocketAddr, raw: &[u8]) -> HttpReply {
    let mut s = TcpStream::connect(addr).unwrap_or_else(|e| panic!("connecting to {addr}: {e}"));
    let _ = s.set_read_timeout(Some(Duration::from_secs(30)));
    s.write_all(raw).unwrap_or_else(|e| panic!("sending to {addr}: {e}"));
    let mut buf = Vec::new();
    let _ = s.read_to_end(&mut buf);
    parse_reply(&buf)
}

pub fn http_get(addr: SocketAddr, path: &str) -> HttpReply {
    http_raw(
        addr,
        format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n").as_bytes(),
    )
}

fn parse_reply(buf: &[u8]) -> HttpReply {
    let end = buf
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap_or_else(|| panic!("no HTTP reply: {:?}", String::from_utf8_lossy(buf)));
    let head = String::from_utf8_lossy(&buf[..end]).into_owned();
    let mut lines = head.lines();
    let status = lines
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))
        .collect();
    let mut body = buf[end + 4..].to_vec();
    if headers
        .iter()
        .any(|(k, v)| k.eq_ignore_ascii_case("transfer-encoding") && v.contains("chunked"))
    {
        body = dechunk(&body);
    }
    HttpReply { status, headers, body }
}

fn dechunk(mut b: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    while let Some(nl) = b.windows(2).position(|w| w == b"\r\n") {
        let size = usize::from_str_radix(String::from_utf8_lossy(&b[..nl]).trim(), 16).unwrap_or(0);
        if size == 0 {
            break;
        }
        let start = nl + 2;
        out.extend_from_slice(&b[start..(start + size).min(b.len())]);
        b = &b[(start + size + 2).min(b.len())..];
    }
    out
}

/// A loopback port nobody listens on (bound and released: another process could take it, which
/// the tests tolerate by failing loudly).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap_or_else(|e| panic!("no free port: {e}"))
}

/// A real Prometheus server (Debian's `prometheus`) scraping `target` every second.
pub struct Prometheus {
    child: Child,
    pub addr: SocketAddr,
    dir: PathBuf,
}

impl Prometheus {
    pub fn start(target: SocketAddr) -> Prometheus {
        Prometheus::start_with(&format!(
            "  - job_name: tracer\n    static_configs:\n      - targets: ['{target}']\n"
        ))
    }

    /// Scrapes every second with these `scrape_configs` entries (YAML, indented by two).
    pub fn start_with(scrape_configs: &str) -> Prometheus {
        let dir = std::env::temp_dir().join(format!("tracer-prometheus-{}-{}", std::process::id(), free_port()));
        let _ = std::fs::create_dir_all(dir.join("data"));
        let config = dir.join("prometheus.yml");
        std::fs::write(
            &config,
            format!("global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\nscrape_configs:\n{scrape_configs}"),
        )
        .unwrap_or_else(|e| panic!("writing {}: {e}", config.display()));
        let port = free_port();
        let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap_or_else(|e| panic!("{e}"));
        let child = Command::new("prometheus")
            .arg(format!("--config.file={}", config.display()))
            .arg(format!("--storage.tsdb.path={}", dir.join("data").display()))
            .arg(format!("--web.listen-address={addr}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start prometheus (cargo xtask setup installs it): {e}"));
        let p = Prometheus { child, addr, dir };
        // Prometheus listens before its storage is open (it answers 503 until then): wait for
        // its readiness endpoint, not for the port.
        let deadline = Instant::now() + Duration::from_secs(60);
        while TcpStream::connect(addr).is_err() || http_get(addr, "/-/ready").status != 200 {
            assert!(Instant::now() < deadline, "prometheus did not become ready on {addr}");
            std::thread::sleep(Duration::from_millis(100));
        }
        p
    }

    /// `/api/v1/query` for `expr`: the result vector.
    pub fn query(&self, expr: &str) -> Vec<serde_json::Value> {
        let q: String = expr
            .bytes()
            .map(|b| match b {
                b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => (b as char).to_string(),
                _ => format!("%{b:02X}"),
            })
            .collect();
        let r = http_get(self.addr, &format!("/api/v1/query?query={q}"));
        let v: serde_json::Value = serde_json::from_slice(&r.body)
            .unwrap_or_else(|e| panic!("prometheus answered {} ({e}): {}", r.status, r.text()));
        assert_eq!(v["status"], "success", "{v}");
        v["data"]["result"].as_array().cloned().unwrap_or_default()
    }

    /// The scrape target's health as Prometheus sees it (`up`, last error).
    pub fn target_health(&self) -> String {
        http_get(self.addr, "/api/v1/targets").text()
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        terminate(&mut self.child);
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Runs `promtool check metrics` on `exposition`; returns (success, output).
pub fn promtool_check(exposition: &[u8]) -> (bool, String) {
    let mut child = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run promtool (cargo xtask setup installs it): {e}"));
    if let Some(mut stdin) = child.stdin.take() {
        let _ = stdin.write_all(exposition);
    }
    let out = child.wait_with_output().unwrap_or_else(|e| panic!("promtool: {e}"));
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

/// `go tool pprof ARGS FILE` (Debian's golang-go): its standard output.
pub fn go_pprof(args: &[&str], file: &Path) -> String {
    let out = Command::new("go")
        .args(["tool", "pprof"])
        .args(args)
        .arg(file)
        .env("HOME", std::env::temp_dir())
        .output()
        .unwrap_or_else(|e| panic!("cannot run go tool pprof (cargo xtask setup installs golang-go): {e}"));
    assert!(
        out.status.success(),
        "go tool pprof failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Polls `f` every 200 ms until it returns Some or `timeout` passes.
pub fn wait_for<T>(timeout: Duration, mut f: impl FnMut() -> Option<T>) -> Option<T> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = f() {
            return Some(v);
        }
        if Instant::now() >= deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// A fixture that prints `READY pid` and runs until killed.
pub struct Service(Child);

impl Service {
    pub fn start(bin: &Path, args: &[&str]) -> Service {
        let mut child = Command::new(bin)
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", bin.display()));
        let out = child.stdout.take().unwrap_or_else(|| panic!("no stdout"));
        let mut line = String::new();
        let _ = BufReader::new(out).read_line(&mut line);
        assert!(line.starts_with("READY"), "{} said {line:?}", bin.display());
        Service(child)
    }

    pub fn pid(&self) -> u32 {
        self.0.id()
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A scratch folder for one test's files.
pub fn temp_dir(tag: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("tracer-agent-{tag}-{}", std::process::id()));
    let _ = std::fs::create_dir_all(&d);
    d
}

/// A metric's value in an exposition (the first series whose name and labels start so).
pub fn metric(exposition: &str, series: &str) -> Option<f64> {
    exposition
        .lines()
        .find_map(|l| l.strip_prefix(series))
        .and_then(|rest| rest.trim().parse().ok())
}
