//! Helpers for the web-config tests: certificates made with the `openssl` command at test time (a
//! CA, a server certificate for 127.0.0.1, client certificates, a second CA nobody trusts),
//! bcrypt hashes made with `htpasswd`, and `curl` as the HTTPS client.

use std::{
    io::Read,
    net::TcpStream,
    path::{Path, PathBuf},
    process::Command,
};

use crate::agent::free_port;

/// Root (the agent is started), and curl, openssl, htpasswd and `extra` installed; otherwise
/// the test skips (fails under CI).
pub fn tools(test: &str, extra: &[&str]) -> bool {
    crate::can_trace(test)
        && ["curl", "openssl", "htpasswd"]
            .iter()
            .chain(extra)
            .all(|t| crate::have_tool(test, t))
}

fn run(cmd: &mut Command) {
    let out = cmd.output().unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A directory of certificates and keys, removed at drop.
pub struct Pki {
    pub dir: PathBuf,
}

impl Pki {
    /// `ca.pem`; `server.pem`/`server.key` for 127.0.0.1 and localhost; `client.pem`/`client.key`
    /// signed by the CA; `other-ca.pem` and `stranger.pem`/`stranger.key` signed by it instead.
    pub fn new(tag: &str) -> Pki {
        let dir = std::env::temp_dir().join(format!("tracer-pki-{tag}-{}-{}", std::process::id(), free_port()));
        let _ = std::fs::create_dir_all(&dir);
        let pki = Pki { dir };
        pki.ca("ca");
        pki.ca("other-ca");
        pki.issue(
            "server",
            "ca",
            "subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n",
        );
        pki.issue(
            "client",
            "ca",
            "subjectAltName=DNS:prometheus\nextendedKeyUsage=clientAuth\n",
        );
        pki.issue(
            "stranger",
            "other-ca",
            "subjectAltName=DNS:stranger\nextendedKeyUsage=clientAuth\n",
        );
        pki
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    /// `path` as a string (for arguments and configs).
    pub fn p(&self, name: &str) -> String {
        self.path(name).display().to_string()
    }

    /// A self-signed CA: `NAME.pem`, `NAME.key`.
    pub fn ca(&self, name: &str) {
        run(Command::new("openssl").current_dir(&self.dir).args([
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-days",
            "2",
            "-subj",
            &format!("/CN=tracer test {name}"),
            "-keyout",
            &format!("{name}.key"),
            "-out",
            &format!("{name}.pem"),
        ]));
    }

    /// A certificate `NAME.pem`/`NAME.key` signed by `ca`, with these X.509v3 extensions.
    pub fn issue(&self, name: &str, ca: &str, extensions: &str) {
        let ext = self.path(&format!("{name}.ext"));
        std::fs::write(&ext, extensions).unwrap_or_else(|e| panic!("{e}"));
        run(Command::new("openssl").current_dir(&self.dir).args([
            "req",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-subj",
            &format!("/CN={name}"),
            "-keyout",
            &format!("{name}.key"),
            "-out",
            &format!("{name}.csr"),
        ]));
        run(Command::new("openssl").current_dir(&self.dir).args([
            "x509",
            "-req",
            "-days",
            "2",
            "-in",
            &format!("{name}.csr"),
            "-CA",
            &format!("{ca}.pem"),
            "-CAkey",
            &format!("{ca}.key"),
            "-CAcreateserial",
            "-extfile",
            &format!("{name}.ext"),
            "-out",
            &format!("{name}.pem"),
        ]));
    }
}

impl Drop for Pki {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// The bcrypt hash of `password` (cost 10, `$2y$`), as `htpasswd -nBC 10` makes it.
pub fn bcrypt_hash(password: &str) -> String {
    let out = Command::new("htpasswd")
        .args(["-nbBC", "10", "", password])
        .output()
        .unwrap_or_else(|e| panic!("cannot run htpasswd (apache2-utils): {e}"));
    let text = String::from_utf8_lossy(&out.stdout);
    text.trim().trim_start_matches(':').to_owned()
}

/// Replaces `path` at once (a new file renamed over it, as editors and Kubernetes do).
pub fn write_atomic(path: &Path, text: &str) {
    let tmp = path.with_extension("tmp-write");
    std::fs::write(&tmp, text).unwrap_or_else(|e| panic!("{e}"));
    std::fs::rename(&tmp, path).unwrap_or_else(|e| panic!("{e}"));
}

#[derive(Debug)]
pub struct CurlReply {
    /// 0 when no HTTP answer came (the handshake failed).
    pub status: u16,
    pub headers: String,
    pub body: String,
    pub stderr: String,
}

/// `curl -sS ARGS URL` with a 30 s limit: the status, headers and body.
pub fn curl(args: &[&str], url: &str) -> CurlReply {
    let out = Command::new("curl")
        .args(["-sS", "--max-time", "30", "-D", "-", "-w", "\n%{http_code}"])
        .args(args)
        .arg(url)
        .output()
        .unwrap_or_else(|e| panic!("cannot run curl: {e}"));
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (rest, code) = text.rsplit_once('\n').unwrap_or(("", text.as_str()));
    let (headers, body) = rest.split_once("\r\n\r\n").unwrap_or((rest, ""));
    CurlReply {
        status: code.trim().parse().unwrap_or(0),
        headers: headers.to_ascii_lowercase(),
        body: body.to_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// User plus system CPU seconds of a process so far (/proc/PID/stat).
pub fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let after_comm = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let fields: Vec<&str> = after_comm.split_whitespace().collect();
    // utime and stime are fields 14 and 15; after the comm, 12 and 13 (0-based 11, 12).
    let ticks: f64 = [11, 12]
        .iter()
        .filter_map(|i| fields.get(*i).and_then(|v| v.parse::<f64>().ok()))
        .sum();
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
    ticks / hz.max(1.0)
}

/// The peer closed the connection (FIN, or RST when it left our bytes unread), rather than the
/// read timing out.
pub fn closed(s: &mut TcpStream, buf: &mut [u8]) -> bool {
    match s.read(buf) {
        Ok(n) => n == 0,
        Err(e) => e.kind() == std::io::ErrorKind::ConnectionReset,
    }
}
