//! Shared helpers of cairn's integration tests and benchmarks: the paths of
//! the wasm guests built by `build.rs`, and runtimes set up for tests.

use std::path::PathBuf;
use std::sync::{Arc, OnceLock};

use cairn_host::{Runtime, RuntimeConfig};

/// A small real upstream (plain and TLS) for the fault-proxy tests.
pub mod upstream;

/// A real PostgreSQL server per test, for the rollout store's tests.
pub mod postgres;

/// Paths of the wasm guests, one constant per guest.
pub mod guests {
    include!(concat!(env!("OUT_DIR"), "/guests.rs"));
}

/// The compile cache shared by all tests of this checkout (compiling a
/// guest once per test binary run is slow in debug builds).
pub fn shared_cache_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join("target")
        .join("cairn-test-cache")
}

/// One runtime per test binary, with the shared compile cache.
pub fn runtime() -> Arc<Runtime> {
    static RUNTIME: OnceLock<Arc<Runtime>> = OnceLock::new();
    Arc::clone(RUNTIME.get_or_init(|| {
        Arc::new(
            Runtime::new(RuntimeConfig {
                cache_dir: Some(shared_cache_dir()),
                ..RuntimeConfig::default()
            })
            .expect("runtime starts"),
        )
    }))
}

/// The Cargo target directory `build.rs` builds the wasm guests in. Tests
/// that make `cairn` build a plugin project point `CARGO_TARGET_DIR` here, so
/// the bundled plugins are not compiled a second time.
pub fn wasm_guests_target_dir() -> PathBuf {
    // <target dir>/wasm32-wasip2/release/<guest>.wasm
    PathBuf::from(guests::NO_DELETES)
        .ancestors()
        .nth(3)
        .map(PathBuf::from)
        .unwrap_or_default()
}

/// Outer bound of a test that waits on a limit: awaits `future`, and fails
/// the test if it has not finished within `bound` instead of hanging the
/// suite. Two layers, because a broken limit can hang in two ways: a future
/// that still yields is cut by a tokio timeout (the test panics with a
/// message); one that never yields (wasm spinning without deadline checks)
/// is caught by a watchdog thread that ends the whole test process after
/// twice the bound.
pub async fn within<F: std::future::Future>(bound: std::time::Duration, future: F) -> F::Output {
    let watchdog = Watchdog::start(bound * 2, "a test future");
    let result = tokio::time::timeout(bound, future).await;
    drop(watchdog);
    match result {
        Ok(output) => output,
        Err(_) => panic!("did not finish within {bound:?}: the limit meant to stop it did not"),
    }
}

/// Ends the test process if not dropped within its bound: the last resort
/// against a test that would otherwise hang the suite.
pub struct Watchdog {
    _cancel: std::sync::mpsc::Sender<()>,
}

impl Watchdog {
    pub fn start(bound: std::time::Duration, what: &'static str) -> Watchdog {
        let (cancel, cancelled) = std::sync::mpsc::channel::<()>();
        std::thread::spawn(move || {
            if let Err(std::sync::mpsc::RecvTimeoutError::Timeout) = cancelled.recv_timeout(bound) {
                eprintln!(
                    "{what} hung past {bound:?}; ending the test process so the suite fails instead of hanging"
                );
                std::process::exit(101);
            }
        });
        Watchdog { _cancel: cancel }
    }
}

/// Default bound of a `cairn` (or other) subprocess in the tests: a cold
/// build of a plugin project in a debug test run takes a minute or two.
pub const SUBPROCESS_BOUND: std::time::Duration = std::time::Duration::from_secs(600);

/// Runs `command` to completion with its output captured, killing it and
/// failing the test if it runs past `bound`. The one subprocess helper of
/// the suite.
pub fn run_bounded(
    command: &mut std::process::Command,
    bound: std::time::Duration,
) -> std::process::Output {
    use std::io::Read;
    use std::process::Stdio;
    let description = format!("{command:?}");
    let mut child = command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|err| panic!("cannot start {description}: {err}"));
    let drain = |pipe: Option<Box<dyn Read + Send>>| {
        std::thread::spawn(move || {
            let mut bytes = Vec::new();
            if let Some(mut pipe) = pipe {
                let _ = pipe.read_to_end(&mut bytes);
            }
            bytes
        })
    };
    let stdout = drain(
        child
            .stdout
            .take()
            .map(|p| Box::new(p) as Box<dyn Read + Send>),
    );
    let stderr = drain(
        child
            .stderr
            .take()
            .map(|p| Box::new(p) as Box<dyn Read + Send>),
    );
    let started = std::time::Instant::now();
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) if started.elapsed() > bound => {
                let _ = child.kill();
                let _ = child.wait();
                let stderr = stderr.join().unwrap_or_default();
                panic!(
                    "{description} ran past {bound:?} and was killed; its stderr:\n{}",
                    String::from_utf8_lossy(&stderr)
                );
            }
            Ok(None) => std::thread::sleep(std::time::Duration::from_millis(10)),
            Err(err) => panic!("cannot wait for {description}: {err}"),
        }
    };
    std::process::Output {
        status,
        stdout: stdout.join().unwrap_or_default(),
        stderr: stderr.join().unwrap_or_default(),
    }
}

/// The `cairn` binary as the suite runs it: the shared compile cache, plugin
/// projects built where build.rs built them, no colour.
pub fn cairn_command(binary: &str) -> std::process::Command {
    let mut command = std::process::Command::new(binary);
    command
        .env("CAIRN_CACHE_DIR", shared_cache_dir())
        // Plugin projects build where build.rs built them: no second compile.
        .env("CARGO_TARGET_DIR", wasm_guests_target_dir())
        .env("NO_COLOR", "1");
    command
}
