//! The outside programs the fault-proxy section runs (wrk, haproxy,
//! noxious-proxy): finding them, a guard that kills a child process when
//! dropped (also on error paths), bounded waits for a child to exit or a
//! port to accept, and a one-shot HTTP GET to check a hop answers right.

use std::io::{Read as _, Write as _};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, ExitStatus};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail, ensure};

/// A child process that is killed and reaped when the guard is dropped.
pub struct ChildGuard {
    name: String,
    child: Child,
    /// Where its stderr goes, to quote when it fails.
    stderr_file: Option<PathBuf>,
}

impl ChildGuard {
    pub fn new(name: impl Into<String>, child: Child) -> ChildGuard {
        ChildGuard {
            name: name.into(),
            child,
            stderr_file: None,
        }
    }

    /// Names the file its stderr was sent to.
    pub fn with_stderr_file(mut self, path: PathBuf) -> ChildGuard {
        self.stderr_file = Some(path);
        self
    }

    pub fn child_mut(&mut self) -> &mut Child {
        &mut self.child
    }

    /// An error if the process has exited, quoting its stderr.
    pub fn ensure_running(&mut self) -> anyhow::Result<()> {
        match self.child.try_wait() {
            Ok(None) => Ok(()),
            Ok(Some(status)) => bail!("{} exited with {status}{}", self.name, self.stderr_tail()),
            Err(err) => Err(err).with_context(|| format!("cannot check on {}", self.name)),
        }
    }

    fn stderr_tail(&self) -> String {
        let Some(path) = &self.stderr_file else {
            return String::new();
        };
        let text = std::fs::read_to_string(path).unwrap_or_default();
        let text = text.trim();
        if text.is_empty() {
            return String::new();
        }
        let start = text.len().saturating_sub(2000);
        let start = (start..text.len())
            .find(|&i| text.is_char_boundary(i))
            .unwrap_or(text.len());
        format!("; its stderr:\n{}", &text[start..])
    }
}

impl Drop for ChildGuard {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
        }
        // After SIGKILL the wait is immediate.
        let _ = self.child.wait();
    }
}

/// Waits at most `bound` for the child to exit; kills it and fails past
/// that.
pub fn wait_bounded(guard: &mut ChildGuard, bound: Duration) -> anyhow::Result<ExitStatus> {
    let start = Instant::now();
    loop {
        if let Some(status) = guard
            .child
            .try_wait()
            .with_context(|| format!("cannot wait for {}", guard.name))?
        {
            return Ok(status);
        }
        if start.elapsed() > bound {
            let _ = guard.child.kill();
            let _ = guard.child.wait();
            bail!(
                "{} did not finish within {} s; killed",
                guard.name,
                bound.as_secs()
            );
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Waits at most `bound` until `addr` accepts a TCP connection, failing
/// early if the child serving it exits.
pub fn wait_for_port(
    guard: &mut ChildGuard,
    addr: SocketAddr,
    bound: Duration,
) -> anyhow::Result<()> {
    let start = Instant::now();
    loop {
        guard.ensure_running()?;
        if TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
            return Ok(());
        }
        if start.elapsed() > bound {
            bail!(
                "{} did not accept connections on {addr} within {} s{}",
                guard.name,
                bound.as_secs(),
                guard.stderr_tail()
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A loopback port that was free a moment ago (for a child to bind).
pub fn free_port() -> anyhow::Result<u16> {
    let listener =
        TcpListener::bind("127.0.0.1:0").context("cannot find a free port on 127.0.0.1")?;
    Ok(listener.local_addr()?.port())
}

/// `name` on `PATH`, or in one of the sbin directories (haproxy lives in
/// /usr/sbin, which is not on every user's PATH), or at `fallback`.
pub fn find_tool(name: &str, fallback: Option<&Path>) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/sbin", "/usr/local/sbin", "/sbin"].map(PathBuf::from))
        .map(|dir| dir.join(name))
        .chain(fallback.map(Path::to_owned))
        .find(|candidate| is_executable(candidate))
}

fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::metadata(path)
        .is_ok_and(|meta| meta.is_file() && meta.permissions().mode() & 0o111 != 0)
}

/// One `GET /` to `addr` on a fresh connection (`Connection: close`),
/// bounded by 10 s; returns the status and the body.
pub fn http_get(addr: SocketAddr) -> anyhow::Result<(u16, Vec<u8>)> {
    let bound = Duration::from_secs(10);
    let mut stream = TcpStream::connect_timeout(&addr, bound)
        .with_context(|| format!("cannot connect to {addr}"))?;
    stream.set_read_timeout(Some(bound))?;
    stream.set_write_timeout(Some(bound))?;
    stream
        .write_all(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
        .with_context(|| format!("cannot send a request to {addr}"))?;
    let mut response = Vec::new();
    stream
        .read_to_end(&mut response)
        .with_context(|| format!("no whole response from {addr} within {} s", bound.as_secs()))?;
    let text = String::from_utf8_lossy(&response);
    let Some((head, _)) = text.split_once("\r\n\r\n") else {
        bail!("{addr} answered something that is not HTTP: {text:?}");
    };
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|code| code.parse::<u16>().ok());
    let Some(status) = status else {
        bail!("{addr} answered a response without a status: {head:?}");
    };
    let body = response[head.len() + 4..].to_vec();
    ensure!(
        !head
            .to_ascii_lowercase()
            .contains("transfer-encoding: chunked"),
        "{addr} answered a chunked body; the benchmark's upstream sends a content-length"
    );
    Ok((status, body))
}
