//! How `cairn` answers SIGINT (Ctrl-C) and SIGTERM: one listener for the
//! whole process. A run with experiments (or `cairn proxy`) takes the first
//! signal to stop its faults and drain; otherwise, and on a second signal,
//! cairn stops: it kills the plugin builds it started, removes the report it
//! was writing (and the stale one at `--output`, which would speak for a run
//! that did not finish), says so on stderr and exits with 130 (SIGINT) or
//! 143 (SIGTERM). The compile cache needs nothing: its files are renamed
//! into place whole, and a killed writer's temp file is removed on a later
//! open.

use std::path::PathBuf;
use std::sync::{Mutex, OnceLock};

use tokio::sync::watch;

use crate::cli::exit;

/// Where a drain-on-first-signal run wants its stop signal.
static DRAIN: Mutex<Option<watch::Sender<bool>>> = Mutex::new(None);

/// The report being written: the `--output` path and its temp file.
static REPORT: Mutex<Option<ReportFiles>> = Mutex::new(None);

static INSTALLED: OnceLock<()> = OnceLock::new();

struct ReportFiles {
    output: PathBuf,
    temp: PathBuf,
}

/// Which signal stopped cairn.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Signal {
    Interrupt,
    Terminate,
}

impl Signal {
    fn exit_code(self) -> u8 {
        match self {
            Signal::Interrupt => exit::INTERRUPTED,
            Signal::Terminate => exit::TERMINATED,
        }
    }

    fn name(self) -> &'static str {
        match self {
            Signal::Interrupt => "SIGINT",
            Signal::Terminate => "SIGTERM",
        }
    }
}

/// Starts the process's signal listener on `tokio` (once; later calls do
/// nothing).
pub(crate) fn install(tokio: &tokio::runtime::Runtime) {
    if INSTALLED.set(()).is_err() {
        return;
    }
    tokio.spawn(async {
        use tokio::signal::unix::{SignalKind, signal};
        let (Ok(mut interrupt), Ok(mut terminate)) = (
            signal(SignalKind::interrupt()),
            signal(SignalKind::terminate()),
        ) else {
            tracing::warn!("cannot listen for SIGINT/SIGTERM; they will end cairn abruptly");
            return;
        };
        let mut seen = 0;
        loop {
            let signal = tokio::select! {
                _ = interrupt.recv() => Signal::Interrupt,
                _ = terminate.recv() => Signal::Terminate,
            };
            seen += 1;
            let drain = lock(&DRAIN).take();
            match drain {
                Some(sender) if seen == 1 => {
                    eprintln!(
                        "cairn: {}: stopping faults and draining (interrupt again to exit at once)",
                        signal.name()
                    );
                    let _ = sender.send(true);
                }
                _ => stop(signal),
            }
        }
    });
}

/// A stop signal that turns `true` on the first SIGINT or SIGTERM (the
/// listener must be installed); a second one stops cairn.
pub(crate) fn drain_on_first_signal() -> watch::Receiver<bool> {
    let (sender, receiver) = watch::channel(false);
    *lock(&DRAIN) = Some(sender);
    receiver
}

/// Records the report being written, so a signal removes it and the stale
/// report at `output`.
pub(crate) fn guard_report(output: PathBuf, temp: PathBuf) {
    *lock(&REPORT) = Some(ReportFiles { output, temp });
}

/// Runs `commit` (which writes the report and renames it into place) with
/// the report guard held, so a signal meanwhile waits for it and then
/// leaves the finished report alone.
pub(crate) fn commit_report<T>(commit: impl FnOnce() -> T) -> T {
    let mut guard = lock(&REPORT);
    let result = commit();
    *guard = None;
    result
}

/// Forgets the report guard (the run ended without writing a report).
pub(crate) fn release_report() {
    *lock(&REPORT) = None;
}

fn stop(signal: Signal) -> ! {
    crate::check::source::kill_running_builds();
    crate::rollout::hooks::kill_running_hooks();
    if let Some(files) = lock(&REPORT).take() {
        let _ = std::fs::remove_file(&files.temp);
        let _ = std::fs::remove_file(&files.output);
    }
    eprintln!(
        "cairn: stopped by {}; no verdict (exit {})",
        signal.name(),
        signal.exit_code()
    );
    std::process::exit(i32::from(signal.exit_code()))
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}
