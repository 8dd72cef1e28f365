//! A throwaway nginx for the benchmark: its own prefix in a temporary directory (config, pid
//! file, error log, temp paths), in the foreground (`daemon off`), 2 workers, no access log,
//! listening on one free loopback port and serving a 6-byte file at `/f`.

use std::{
    net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream},
    os::unix::fs::PermissionsExt,
    path::{Path, PathBuf},
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use super::{guard::Guarded, have, procfs, scrape};
use crate::Result;

const WORKERS: usize = 2;
/// What `/f` holds (6 bytes).
const BODY: &str = "hello\n";

pub(super) struct Nginx {
    master: Guarded,
    workers: Vec<u32>,
    addr: SocketAddr,
    dir: PathBuf,
}

/// The nginx binary (Debian puts it in /usr/sbin, not on every user's PATH).
pub(super) fn binary() -> Option<PathBuf> {
    if have("nginx") {
        return Some(PathBuf::from("nginx"));
    }
    let sbin = Path::new("/usr/sbin/nginx");
    sbin.exists().then(|| sbin.to_path_buf())
}

fn config(dir: &Path, addr: SocketAddr) -> String {
    let d = dir.display();
    format!(
        "worker_processes {WORKERS};
daemon off;
master_process on;
pid {d}/nginx.pid;
lock_file {d}/nginx.lock;
error_log {d}/error.log warn;
events {{ worker_connections 1024; }}
http {{
    access_log off;
    default_type application/octet-stream;
    client_body_temp_path {d}/tmp/body;
    proxy_temp_path {d}/tmp/proxy;
    fastcgi_temp_path {d}/tmp/fastcgi;
    uwsgi_temp_path {d}/tmp/uwsgi;
    scgi_temp_path {d}/tmp/scgi;
    server {{
        listen {addr};
        root {d}/www;
    }}
}}
"
    )
}

impl Nginx {
    /// Starts it and waits until it answers `/f` with its workers up.
    pub(super) fn start() -> Result<Self> {
        let bin = binary().ok_or("nginx is not installed (Debian package nginx-light): run `cargo xtask setup`")?;
        let port = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
            .and_then(|l| l.local_addr())
            .map_err(|e| format!("no free loopback port: {e}"))?
            .port();
        let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
        let dir = std::env::temp_dir().join(format!("tracer-bench-nginx-{}-{port}", std::process::id()));
        let prepare = || -> std::io::Result<()> {
            std::fs::create_dir_all(dir.join("www"))?;
            std::fs::create_dir_all(dir.join("tmp"))?;
            std::fs::write(dir.join("www/f"), BODY)?;
            std::fs::write(dir.join("nginx.conf"), config(&dir, addr))?;
            // Workers run as nobody under root: the file must be theirs to read, whatever the umask.
            for (p, mode) in [
                (dir.clone(), 0o755),
                (dir.join("www"), 0o755),
                (dir.join("www/f"), 0o644),
            ] {
                std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode))?;
            }
            Ok(())
        };
        if let Err(e) = prepare() {
            let _ = std::fs::remove_dir_all(&dir);
            return Err(format!("{}: {e}", dir.display()));
        }
        let spawned = Guarded::spawn(
            Command::new(bin)
                .arg("-p")
                .arg(&dir)
                .arg("-c")
                .arg(dir.join("nginx.conf"))
                .arg("-e")
                .arg(dir.join("error.log"))
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null()),
            "nginx",
        );
        let master = match spawned {
            Ok(m) => m,
            Err(e) => {
                let _ = std::fs::remove_dir_all(&dir);
                return Err(e);
            }
        };
        let mut nginx = Nginx {
            master,
            workers: Vec::new(),
            addr,
            dir,
        };
        nginx.wait_ready()?;
        Ok(nginx)
    }

    fn wait_ready(&mut self) -> Result {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Ok(Some(status)) = self.master.try_wait() {
                return Err(format!("nginx exited ({status}): {}", self.error_log()));
            }
            self.workers = procfs::children(self.master.id());
            if self.workers.len() >= WORKERS && TcpStream::connect(self.addr).is_ok() {
                break;
            }
            if Instant::now() > deadline {
                return Err(format!(
                    "nginx did not come up on {} with {WORKERS} workers: {}",
                    self.addr,
                    self.error_log()
                ));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let body = scrape::get(self.addr, "/f")?;
        if body != BODY {
            return Err(format!("nginx served {body:?} for /f"));
        }
        Ok(())
    }

    fn error_log(&self) -> String {
        std::fs::read_to_string(self.dir.join("error.log")).unwrap_or_default()
    }

    pub(super) fn url(&self) -> String {
        format!("http://{}/f", self.addr)
    }

    /// The master and its workers.
    pub(super) fn pids(&self) -> Vec<u32> {
        let mut p = vec![self.master.id()];
        p.extend(&self.workers);
        p
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        // SIGINT: fast shutdown, the master waits for its workers. Had it to be killed, its
        // workers (reparented by now) are still there: they go too.
        let _ = self.master.halt();
        for w in &self.workers {
            let comm = std::fs::read_to_string(format!("/proc/{w}/comm")).unwrap_or_default();
            if comm.trim() == "nginx" {
                let _ = Command::new("kill").args(["-KILL", &w.to_string()]).status();
            }
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
