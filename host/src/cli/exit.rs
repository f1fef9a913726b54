//! Exit codes of `cairn` and the one place where an error becomes one.

use std::process::ExitCode;

use crate::authoring::golden::CaseError;
use crate::authoring::scaffold::ScaffoldError;
use crate::check::lock::LockError;
use crate::check::report::CheckReport;
use crate::check::{CheckError, ExperimentError};
use crate::escape::indented;
use crate::rollout::engine::RolloutError;
use crate::rollout::journal::JournalError;
use crate::runtime::RuntimeError;
use crate::runtime::verdict::Outcome;
use crate::serve::ServeError;
use crate::serve::catalog::CatalogError;
use crate::serve::config::ConfigError;

/// Every gate passed (warnings allowed unless `fail-on-warn`).
pub const PASS: u8 = 0;
/// A gate failed (also: `lock --check` found a stale pin, a golden case
/// failed).
pub const FAIL: u8 = 1;
/// A gate warned and `fail-on-warn` is set.
pub const WARN: u8 = 2;
/// A gate was inconclusive (and nothing failed); also when the host was
/// overloaded and could not run a validator.
pub const INCONCLUSIVE: u8 = 3;
/// The command line was wrong.
pub const USAGE: u8 = 64;
/// The plan is invalid (the message names file, line and column).
pub const INVALID_PLAN: u8 = 65;
/// The change, a metrics file, golden cases or a config could not be read.
pub const INVALID_INPUT: u8 = 66;
/// A plugin could not be built or loaded (bad wasm, wrong world, digest
/// mismatch).
pub const PLUGIN_LOAD: u8 = 67;
/// An experiment or the fault proxy could not start: its upstream is down,
/// its port is in use, its CA file is unreadable.
pub const UNAVAILABLE: u8 = 69;
/// cairn itself failed (engine, cache, runtime, writing the report).
pub const INTERNAL: u8 = 70;
/// An experiment at a production checkpoint has no recorded approval.
pub const NOT_APPROVED: u8 = 77;
/// A rollout paused, waiting for approval.
pub const ROLLOUT_PAUSED: u8 = 4;
/// A rollout rolled back, but the rollback did not verify (or a rollback
/// hook failed): the baseline is not proven back.
pub const ROLLBACK_UNVERIFIED: u8 = 5;
/// A rollout froze at an irreversible checkpoint.
pub const ROLLOUT_FROZEN: u8 = 6;
/// A journal failed verification (tampered, or not a journal).
pub const JOURNAL_BROKEN: u8 = 74;
/// A rollout is running in another process (its journal is locked).
pub const BUSY: u8 = 75;
/// Stopped by SIGINT (Ctrl-C) before a verdict (128 + 2, as shells report).
pub const INTERRUPTED: u8 = 130;
/// Stopped by SIGTERM before a verdict (128 + 15).
pub const TERMINATED: u8 = 143;

/// Why a command failed, typed by what went wrong; [`CliError::code`] is
/// the one mapping to exit codes.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    /// A mistake on the command line that clap cannot see.
    #[error("{0}")]
    Usage(String),
    /// Input given on the command line that cannot be read or parsed.
    #[error("{message}")]
    Input {
        message: String,
        #[source]
        source: Option<Box<dyn std::error::Error + Send + Sync>>,
    },
    #[error(transparent)]
    Check(#[from] CheckError),
    #[error(transparent)]
    Lock(#[from] LockError),
    #[error(transparent)]
    Cases(#[from] CaseError),
    #[error(transparent)]
    Scaffold(#[from] ScaffoldError),
    #[error("cannot start the plugin runtime")]
    Runtime(#[from] RuntimeError),
    #[error(transparent)]
    Rollout(#[from] RolloutError),
    #[error(transparent)]
    Serve(Box<ServeError>),
    /// A fault proxy could not start (upstream down, port in use).
    #[error("{message}")]
    Unavailable {
        message: String,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// A plugin answered `info()` with an error or was stopped.
    #[error("{0}")]
    PluginInfo(String),
    #[error("{message}")]
    Internal {
        message: String,
        #[source]
        source: Option<Box<dyn std::error::Error + Send + Sync>>,
    },
}

impl From<ServeError> for CliError {
    fn from(err: ServeError) -> Self {
        CliError::Serve(Box::new(err))
    }
}

impl CliError {
    pub fn input(
        message: impl Into<String>,
        source: impl Into<Box<dyn std::error::Error + Send + Sync>>,
    ) -> Self {
        CliError::Input {
            message: message.into(),
            source: Some(source.into()),
        }
    }

    pub fn internal(
        message: impl Into<String>,
        source: impl Into<Box<dyn std::error::Error + Send + Sync>>,
    ) -> Self {
        CliError::Internal {
            message: message.into(),
            source: Some(source.into()),
        }
    }

    /// The exit code of this error: the one mapping.
    pub fn code(&self) -> u8 {
        match self {
            CliError::Usage(_) => USAGE,
            CliError::Input { .. } => INVALID_INPUT,
            CliError::Check(err) => code_of_check(err),
            CliError::Lock(err) => match err {
                LockError::Check(check) => code_of_check(check),
                LockError::Read { .. } | LockError::Parse { .. } | LockError::NoTable { .. } => {
                    INVALID_PLAN
                }
                LockError::Write { .. } => INTERNAL,
            },
            CliError::Cases(_) => INVALID_INPUT,
            CliError::Scaffold(err) => match err {
                ScaffoldError::Io { .. } => INTERNAL,
                _ => USAGE,
            },
            CliError::PluginInfo(_) => PLUGIN_LOAD,
            CliError::Unavailable { .. } => UNAVAILABLE,
            CliError::Runtime(_) | CliError::Internal { .. } => INTERNAL,
            CliError::Rollout(err) => code_of_rollout(err),
            CliError::Serve(err) => match err.as_ref() {
                ServeError::Config(ConfigError::Read { .. }) => INVALID_INPUT,
                ServeError::Config(ConfigError::Invalid { .. })
                | ServeError::Catalog(CatalogError::NeedsFuel { .. }) => INVALID_PLAN,
                ServeError::Catalog(CatalogError::Plan { source, .. }) => code_of_check(source),
                ServeError::Listen { .. } | ServeError::Postgres(_) => UNAVAILABLE,
                ServeError::Http(_) | ServeError::Runtime(_) => INTERNAL,
            },
        }
    }

    /// What the user can do about it, when cairn knows.
    pub fn hint(&self) -> Option<&'static str> {
        match self {
            CliError::Runtime(RuntimeError::Cache { .. }) => Some(
                "fix the directory, set CAIRN_CACHE_DIR to another one, or pass --no-cache to run without a compile cache",
            ),
            _ => None,
        }
    }

    /// Prints `error: ...` and one `caused by: ...` line per cause, each
    /// escaped for the terminal (a message may quote a plan, a file name or
    /// a plugin), its continuation lines indented under it.
    pub fn print(&self) -> ExitCode {
        eprintln!("error: {}", indented(&self.to_string(), "  "));
        // `transparent` variants forward both their text and their source
        // to the wrapped error, so the chain starts at its first cause.
        let mut source = std::error::Error::source(self);
        while let Some(cause) = source {
            eprintln!("  caused by: {}", indented(&cause.to_string(), "    "));
            source = cause.source();
        }
        if let Some(hint) = self.hint() {
            eprintln!("  hint: {hint}");
        }
        ExitCode::from(self.code())
    }
}

fn code_of_rollout(err: &RolloutError) -> u8 {
    match err {
        RolloutError::Journal(err) => match err {
            JournalError::Locked { .. } => BUSY,
            JournalError::AlreadyExists { .. } => USAGE,
            JournalError::Broken { .. } | JournalError::NotAJournal { .. } => JOURNAL_BROKEN,
            _ => INTERNAL,
        },
        RolloutError::Replay { .. } => JOURNAL_BROKEN,
        RolloutError::Pg(err) => match err {
            crate::rollout::pg::PgError::Broken { .. } => JOURNAL_BROKEN,
            crate::rollout::pg::PgError::LeaseLost { .. }
            | crate::rollout::pg::PgError::Conflict { .. } => BUSY,
            _ => INTERNAL,
        },
        RolloutError::Check(err) => code_of_check(err),
        RolloutError::InputsChanged { .. } | RolloutError::Metrics { .. } => INVALID_INPUT,
        RolloutError::Unknown { .. }
        | RolloutError::Finished { .. }
        | RolloutError::NotPaused { .. }
        | RolloutError::UnknownRole { .. }
        | RolloutError::BadId { .. } => USAGE,
        RolloutError::StateDir { .. } => INTERNAL,
    }
}

fn code_of_check(err: &CheckError) -> u8 {
    match err {
        CheckError::Plan(_) => INVALID_PLAN,
        CheckError::UnknownCheckpoint { .. } | CheckError::Limits(_) => USAGE,
        CheckError::Change { .. } => INVALID_INPUT,
        CheckError::Build { .. }
        | CheckError::SeveralComponents { .. }
        | CheckError::Load { .. }
        | CheckError::WrongWorld { .. } => PLUGIN_LOAD,
        CheckError::ConfigRejected { .. } => USAGE,
        CheckError::ConfigSchema { .. } => PLUGIN_LOAD,
        CheckError::Experiment(err) => match err {
            ExperimentError::NeedsApproval { .. } => NOT_APPROVED,
            ExperimentError::Start { .. } | ExperimentError::EchoUpstream { .. } => UNAVAILABLE,
            ExperimentError::NotLoaded { .. } => INTERNAL,
        },
    }
}

/// The exit code for a report: the first gate that stopped the rollout.
pub fn for_report(report: &CheckReport) -> u8 {
    match report.stopped_at().map(|c| c.decision.outcome) {
        None | Some(Outcome::Pass) => PASS,
        Some(Outcome::Fail) => FAIL,
        Some(Outcome::Warn) => WARN,
        Some(Outcome::Inconclusive) => INCONCLUSIVE,
    }
}
