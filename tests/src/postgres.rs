//! A real PostgreSQL server for tests, one per [`Postgres`] value: a fresh
//! cluster (`initdb`) in a temporary directory, listening on 127.0.0.1 at a
//! free port and on a Unix socket in that directory, with `fsync` off;
//! stopped (`pg_ctl stop -m immediate`) and removed when dropped.
//!
//! PostgreSQL must be installed (CI's `.ci/install-toolchains` installs
//! Debian's `postgresql`): `initdb` and `pg_ctl` are looked for on `PATH`,
//! then in `/usr/lib/postgresql/<version>/bin` (highest version first), where
//! Debian puts them. Without them [`Postgres::start`] fails with a message
//! saying so, and the tests that need it fail: they are not skipped.
//!
//! `initdb` refuses to run as root: as root, the server's commands run as
//! the `postgres` user (`runuser -u postgres --`, which Debian's package
//! creates) and the directory is given to that user. The temporary directory
//! is made under `std::env::temp_dir()`, which that user must be able to
//! reach (`/tmp` is).
//!
//! Starting takes about a second (mostly `initdb`); every wait is bounded.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// The bound of `initdb`.
const INITDB_BOUND: Duration = Duration::from_secs(60);
/// How long `pg_ctl start` waits for the server (`-t`), and the bound of
/// the command around it.
const START_WAIT_SECS: u64 = 30;
/// The bound of `pg_ctl stop` and of the other small commands.
const STOP_BOUND: Duration = Duration::from_secs(20);
/// Start attempts, each on another free port (another process may take the
/// port between our probe and the server's bind).
const START_ATTEMPTS: u32 = 3;
/// The role the cluster is made for (`-U`), superuser.
pub const USER: &str = "cairn";

/// A running PostgreSQL server, stopped and deleted on drop.
#[derive(Debug)]
pub struct Postgres {
    dir: PathBuf,
    data: PathBuf,
    bin: PathBuf,
    port: u16,
    as_postgres: bool,
    stopped: bool,
    /// How long [`Postgres::start`] took.
    pub startup: Duration,
}

impl Postgres {
    /// Starts a fresh server (see the module docs). The error says what
    /// failed, with the output of the command that did.
    pub fn start() -> Result<Postgres, String> {
        let started = Instant::now();
        let bin = find_bin_dir().map_err(|err| {
            let message = format!(
                "PostgreSQL is not installed, or not where the tests look for it: {err}. \
                 Install it (Debian: apt-get install postgresql; CI's .ci/install-toolchains \
                 does) so that initdb and pg_ctl are on PATH or in \
                 /usr/lib/postgresql/<version>/bin"
            );
            eprintln!("{message}");
            message
        })?;
        let as_postgres = effective_uid_is_root();
        let dir = make_temp_dir()?;
        let mut server = Postgres {
            data: dir.join("data"),
            dir,
            bin,
            port: 0,
            as_postgres,
            stopped: true,
            startup: Duration::ZERO,
        };
        if as_postgres {
            let out = run(
                Command::new("chown").arg("postgres").arg(&server.dir),
                STOP_BOUND,
                &server.dir.join("chown.out"),
            )?;
            if !out.success {
                return Err(format!(
                    "running as root, so PostgreSQL runs as the `postgres` user, but \
                     `chown postgres {}` failed (does the user exist? Debian's postgresql \
                     package creates it): {}",
                    server.dir.display(),
                    out.output
                ));
            }
        }
        let out = run(
            server
                .command("initdb")
                .arg("-D")
                .arg(&server.data)
                .args(["-A", "trust", "-U", USER, "--no-sync", "-E", "UTF8"])
                .env("LC_ALL", "C"),
            INITDB_BOUND,
            &server.dir.join("initdb.out"),
        )?;
        if !out.success {
            return Err(format!("initdb failed: {}", out.output));
        }
        let mut failures = Vec::new();
        for _ in 0..START_ATTEMPTS {
            let port = free_port()?;
            let log = server.dir.join("postgres.log");
            let out = run(
                server
                    .command("pg_ctl")
                    .arg("start")
                    .args(["-w", "-t", &START_WAIT_SECS.to_string()])
                    .arg("-D")
                    .arg(&server.data)
                    .arg("-l")
                    .arg(&log)
                    .arg("-o")
                    .arg(format!(
                        "-h 127.0.0.1 -p {port} -k {} -F",
                        server.dir.display()
                    )),
                Duration::from_secs(START_WAIT_SECS + 10),
                &server.dir.join("pg_ctl.out"),
            )?;
            if out.success {
                server.port = port;
                server.stopped = false;
                server.startup = started.elapsed();
                return Ok(server);
            }
            // Not started (most likely the port was taken meanwhile); make
            // sure it is not half-up before trying another port.
            server.stop();
            let log = std::fs::read_to_string(&log).unwrap_or_default();
            failures.push(format!(
                "port {port}: {}\n--- server log ---\n{}",
                out.output,
                tail(&log, 2000)
            ));
        }
        Err(format!(
            "pg_ctl start failed {START_ATTEMPTS} times:\n{}",
            failures.join("\n")
        ))
    }

    /// `postgres://cairn@127.0.0.1:PORT/postgres`.
    pub fn url(&self) -> String {
        self.url_of("postgres")
    }

    /// The URL of database `name` on this server.
    pub fn url_of(&self, name: &str) -> String {
        format!("postgres://{USER}@127.0.0.1:{}/{name}", self.port)
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// A command of the server's installation, run as `postgres` when we
    /// are root.
    fn command(&self, program: &str) -> Command {
        let path = self.bin.join(program);
        let mut command = if self.as_postgres {
            let mut command = Command::new("runuser");
            command.args(["-u", "postgres", "--"]).arg(path);
            command
        } else {
            Command::new(path)
        };
        command.current_dir(&self.dir);
        command
    }

    /// `pg_ctl stop -m immediate`, bounded; errors ignored (it may not run).
    fn stop(&mut self) {
        let _ = run(
            self.command("pg_ctl")
                .arg("stop")
                .args(["-m", "immediate", "-w", "-t", "10"])
                .arg("-D")
                .arg(&self.data),
            STOP_BOUND,
            &self.dir.join("pg_ctl-stop.out"),
        );
        self.stopped = true;
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        if !self.stopped {
            self.stop();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// What a bounded command did: whether it exited 0, and its output
/// (stdout and stderr, with its status).
struct Ran {
    success: bool,
    output: String,
}

/// Runs `command` with stdout and stderr to the file `out` (never pipes: a
/// server it starts could hold them open), killing it past `bound`.
fn run(command: &mut Command, bound: Duration, out: &Path) -> Result<Ran, String> {
    let description = format!("{command:?}");
    let file =
        File::create(out).map_err(|err| format!("cannot create {}: {err}", out.display()))?;
    let file2 = file
        .try_clone()
        .map_err(|err| format!("cannot clone a file handle: {err}"))?;
    let mut child = command
        .stdin(Stdio::null())
        .stdout(file)
        .stderr(file2)
        .spawn()
        .map_err(|err| format!("cannot run {description}: {err}"))?;
    let started = Instant::now();
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) if started.elapsed() > bound => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!(
                    "{description} ran past {bound:?} and was killed; its output:\n{}",
                    std::fs::read_to_string(out).unwrap_or_default()
                ));
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(10)),
            Err(err) => return Err(format!("cannot wait for {description}: {err}")),
        }
    };
    let text = std::fs::read_to_string(out).unwrap_or_default();
    Ok(Ran {
        success: status.success(),
        output: format!("{description} ({status}):\n{}", tail(&text, 4000)),
    })
}

/// The last `max` bytes of `text` (at a character boundary).
fn tail(text: &str, max: usize) -> &str {
    let mut start = text.len().saturating_sub(max);
    while !text.is_char_boundary(start) {
        start += 1;
    }
    &text[start..]
}

/// The directory holding both `initdb` and `pg_ctl`: the first on `PATH`,
/// else the highest version's `/usr/lib/postgresql/<version>/bin`.
fn find_bin_dir() -> Result<PathBuf, String> {
    let has_both = |dir: &Path| dir.join("initdb").is_file() && dir.join("pg_ctl").is_file();
    let path = std::env::var_os("PATH").unwrap_or_default();
    if let Some(dir) = std::env::split_paths(&path).find(|dir| has_both(dir)) {
        return Ok(dir);
    }
    let root = Path::new("/usr/lib/postgresql");
    let mut versions: Vec<(Vec<u64>, PathBuf)> = std::fs::read_dir(root)
        .map(|entries| {
            entries
                .filter_map(Result::ok)
                .filter_map(|entry| {
                    let name = entry.file_name().to_string_lossy().into_owned();
                    let version: Option<Vec<u64>> =
                        name.split('.').map(|part| part.parse().ok()).collect();
                    Some((version?, entry.path().join("bin")))
                })
                .filter(|(_, bin)| has_both(bin))
                .collect()
        })
        .unwrap_or_default();
    versions.sort();
    versions
        .pop()
        .map(|(_, bin)| bin)
        .ok_or_else(|| "no initdb and pg_ctl on PATH nor in /usr/lib/postgresql/*/bin".to_owned())
}

/// Whether this process runs as root (effective uid 0), from
/// `/proc/self/status` (`Uid: real effective saved fs`).
fn effective_uid_is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            status
                .lines()
                .find_map(|line| line.strip_prefix("Uid:"))
                .and_then(|ids| ids.split_whitespace().nth(1).map(|id| id == "0"))
        })
        .unwrap_or(false)
}

/// A new directory `cairn-pg-PID-N-NANOS` in the system's temporary
/// directory, mode 0700.
fn make_temp_dir() -> Result<PathBuf, String> {
    use std::os::unix::fs::DirBuilderExt as _;
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    let dir = std::env::temp_dir().join(format!(
        "cairn-pg-{}-{}-{nanos}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    ));
    std::fs::DirBuilder::new()
        .mode(0o700)
        .create(&dir)
        .map_err(|err| format!("cannot create {}: {err}", dir.display()))?;
    Ok(dir)
}

/// A TCP port on 127.0.0.1 that was free a moment ago.
fn free_port() -> Result<u16, String> {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .map(|addr| addr.port())
        .map_err(|err| format!("cannot find a free port: {err}"))
}
