//! Starting a command held before exec until the probes follow it (what libbpf-tools' memleak
//! `-c` does with an eventfd), so its very first fds are traced.

use std::{
    ffi::OsString,
    io,
    os::{
        fd::{AsRawFd, OwnedFd},
        unix::process::CommandExt,
    },
    process::{Child, Command},
};

#[derive(Debug, thiserror::Error)]
pub enum ChildError {
    #[error("command not found: {0}")]
    NotFound(String),
    #[error("cannot run {cmd}")]
    Spawn {
        cmd: String,
        #[source]
        source: io::Error,
    },
    #[error("the command did not start: {0}")]
    Handshake(io::Error),
}

/// A started command, stopped before its exec.
pub struct HeldChild {
    pub pid: u32,
    release: OwnedFd,
    spawned: std::thread::JoinHandle<io::Result<Child>>,
}

fn pipe() -> io::Result<(OwnedFd, OwnedFd)> {
    let mut fds = [0i32; 2];
    // SAFETY: `fds` is a valid array of two ints for pipe2 to fill.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return Err(io::Error::last_os_error());
    }
    use std::os::fd::FromRawFd;
    // SAFETY: pipe2 succeeded, so both fds are open and owned by nobody else.
    Ok(unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) })
}

impl HeldChild {
    /// Forks `argv`; the child reports its PID and waits for [`HeldChild::release`] before exec.
    pub fn spawn(argv: &[OsString]) -> Result<Self, ChildError> {
        let display = argv
            .first()
            .map(|a| a.to_string_lossy().into_owned())
            .unwrap_or_default();
        let Some(program) = argv.first() else {
            return Err(ChildError::NotFound(display));
        };
        if resolve(program).is_none() {
            return Err(ChildError::NotFound(display));
        }
        let mut cmd = Command::new(program);
        cmd.args(&argv[1..]);
        Self::spawn_command(cmd, display)
    }

    /// Like [`HeldChild::spawn`] for a prepared command (its stdio, environment, ...).
    pub fn spawn_command(mut cmd: Command, display: String) -> Result<Self, ChildError> {
        let (pid_r, pid_w) = pipe().map_err(ChildError::Handshake)?;
        let (go_r, go_w) = pipe().map_err(ChildError::Handshake)?;
        let (pid_w_raw, go_r_raw) = (pid_w.as_raw_fd(), go_r.as_raw_fd());
        let (pid_r_raw, go_w_raw) = (pid_r.as_raw_fd(), go_w.as_raw_fd());
        // SAFETY: the closure runs in the forked child and only calls async-signal-safe functions
        // (getpid, write, read) on fds that stay open until exec (they are O_CLOEXEC).
        unsafe {
            cmd.pre_exec(move || {
                // The child's copies of the tracer's ends: closing them lets a dying tracer
                // release the child (EOF) instead of leaving it blocked.
                libc::close(pid_r_raw);
                libc::close(go_w_raw);
                let pid = libc::getpid();
                let b = pid.to_ne_bytes();
                if libc::write(pid_w_raw, b.as_ptr().cast(), b.len()) != b.len() as isize {
                    return Err(io::Error::last_os_error());
                }
                let mut go = [0u8; 1];
                // Wait for the tracer; EOF (tracer died) also releases, the trace is then simply lost.
                while libc::read(go_r_raw, go.as_mut_ptr().cast(), 1) < 0 {
                    if *libc::__errno_location() != libc::EINTR {
                        break;
                    }
                }
                Ok(())
            });
        }
        // spawn() returns only after the exec (it reports exec errors), so it runs on a thread
        // while this one reads the PID and attaches.
        let spawned = std::thread::spawn(move || cmd.spawn());
        let mut b = [0u8; 4];
        let n = read_full(&pid_r, &mut b);
        drop(pid_w);
        drop(go_r);
        if n != 4 {
            drop(go_w);
            return match spawned.join() {
                Ok(Err(e)) => Err(ChildError::Spawn {
                    cmd: display,
                    source: e,
                }),
                _ => Err(ChildError::Handshake(io::Error::other(
                    "child exited before reporting its PID",
                ))),
            };
        }
        Ok(HeldChild {
            pid: i32::from_ne_bytes(b) as u32,
            release: go_w,
            spawned,
        })
    }

    /// Lets the child exec; returns the running child.
    pub fn release(self) -> Result<Child, ChildError> {
        let one = [1u8];
        // SAFETY: writing one byte from a valid buffer to an fd we own.
        unsafe { libc::write(self.release.as_raw_fd(), one.as_ptr().cast(), 1) };
        drop(self.release);
        match self.spawned.join() {
            Ok(Ok(child)) => Ok(child),
            Ok(Err(e)) => Err(if e.kind() == io::ErrorKind::NotFound {
                ChildError::NotFound(e.to_string())
            } else {
                ChildError::Spawn {
                    cmd: String::new(),
                    source: e,
                }
            }),
            Err(_) => Err(ChildError::Handshake(io::Error::other("spawn thread panicked"))),
        }
    }
}

fn read_full(fd: &OwnedFd, buf: &mut [u8]) -> usize {
    let mut got = 0;
    while got < buf.len() {
        // SAFETY: reading into the unfilled tail of a valid buffer.
        let n = unsafe { libc::read(fd.as_raw_fd(), buf[got..].as_mut_ptr().cast(), buf.len() - got) };
        if n > 0 {
            got += n as usize;
        } else if n < 0 && io::Error::last_os_error().kind() == io::ErrorKind::Interrupted {
            continue;
        } else {
            break;
        }
    }
    got
}

/// Finds the program the way execvp will: a path with a slash as is, else through $PATH.
fn resolve(program: &OsString) -> Option<std::path::PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    let p = std::path::Path::new(program);
    let executable = |p: &std::path::Path| {
        p.metadata()
            .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
    };
    if program.as_encoded_bytes().contains(&b'/') {
        return executable(p).then(|| p.to_path_buf());
    }
    let path = std::env::var_os("PATH").unwrap_or_else(|| "/usr/local/bin:/usr/bin:/bin".into());
    std::env::split_paths(&path).map(|d| d.join(p)).find(|c| executable(c))
}

/// The exit code a shell would give: the status, or 128 + signal.
pub fn exit_code(status: std::process::ExitStatus) -> i32 {
    use std::os::unix::process::ExitStatusExt;
    status.code().unwrap_or_else(|| 128 + status.signal().unwrap_or(0))
}
