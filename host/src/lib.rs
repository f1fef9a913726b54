//! cairn-host: loads sandboxed WebAssembly plugins (validators and fault
//! injectors defined by the `cairn:plugin` WIT contract), runs them under
//! strict time, memory and output limits, and gates changes on their
//! verdicts.
//!
//! Three layers, each knowing only the ones below it (a test checks the
//! `use` lines):
//!
//! - [`runtime`]: the sandbox. Engine, loading, pins, world and version
//!   detection, admission control, calls, limits, WASI, compile cache,
//!   pre-initialisation, bindings per contract version. Knows nothing of
//!   plans.
//! - [`check`] (and [`authoring`]): the product. Plans, changes run through
//!   checkpoints, gates, reports; golden cases and templates for authors.
//! - [`proxy`]: the HTTP fault proxy (experiments with fault injectors),
//!   beside `check`: it uses the runtime, never plans or the command line.
//! - [`rollout`]: changes walked through checkpoints with hooks, approvals,
//!   rollback and its verification, recorded in a hash-chained journal;
//!   above `check` and `proxy`, below the command line.
//! - [`serve`]: `cairn serve`, the HTTP API over checks, experiments and
//!   rollouts for many tenants; above `rollout`, below the command line.
//! - [`cli`]: the `cairn` command line, a thin shell over the others.
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use std::sync::Arc;
//! use cairn_host::check::{self, NoProgress, Plan, RunOptions};
//! use cairn_host::{Runtime, RuntimeConfig};
//!
//! let runtime = Runtime::new(RuntimeConfig::default())?;
//! let plan = Plan::load("examples/cairn.toml".as_ref())?;
//! let change = Arc::new(check::read_change("examples/changes/safe-edit".as_ref(), None)?);
//! let report = check::run_plan(&runtime, &plan, change, &RunOptions::default(), &NoProgress).await?;
//! println!("{}", report.outcome());
//! # Ok(()) }
//! ```

pub mod authoring;
pub mod check;
pub mod cli;
pub mod escape;
pub mod proxy;
pub mod rollout;
pub mod runtime;
pub mod serve;

pub use runtime::admission::{InstanceFootprint, PoolCapacity};
pub use runtime::bindings::{ContractVersion, World};
pub use runtime::cache::{CacheStatus, CompileCache};
pub use runtime::call::{CallOutcome, CallReport};
pub use runtime::change::{
    Change, ChangeError, Checkpoint, Document, DocumentStatus, MediaType, Metric,
};
pub use runtime::digest::Sha256Digest;
pub use runtime::failure::{Failure, FailureKind};
pub use runtime::inject::{AbortResponse, Action, BodyFaults, Decision, RequestInfo};
pub use runtime::limits::{LimitSettings, Limits};
pub use runtime::plugin::{LoadError, Plugin, PluginInfo};
pub use runtime::preinit::InitializationError;
pub use runtime::sandbox::{CapturedOutput, LogLevel, LogRecord};
pub use runtime::verdict::{ContractViolation, Finding, Location, Outcome, Severity, Verdict};
pub use runtime::{
    InstanceAllocation, LoadStats, PluginBytes, Runtime, RuntimeConfig, RuntimeError,
};

/// Renders an error and its causes on one line: `outer: inner: root`.
pub(crate) fn error_chain(err: &(dyn std::error::Error + 'static)) -> String {
    let mut parts = vec![err.to_string()];
    let mut source = err.source();
    while let Some(cause) = source {
        parts.push(cause.to_string());
        source = cause.source();
    }
    parts.join(": ")
}

/// The same for a wasmtime error (which is not a `std::error::Error`).
pub(crate) fn wasm_error_chain(err: &wasmtime::Error) -> String {
    err.chain()
        .map(|cause| cause.to_string())
        .collect::<Vec<_>>()
        .join(": ")
}

#[cfg(test)]
mod layering {
    //! The layers of the crate, checked on its `use` lines: the runtime
    //! knows nothing of plans, the product nothing of the command line.

    use std::path::Path;

    /// Every `.rs` file under `dir`, with its text.
    fn sources(dir: &Path) -> Vec<(String, String)> {
        let mut found = Vec::new();
        let mut pending = vec![dir.to_path_buf()];
        while let Some(dir) = pending.pop() {
            for entry in std::fs::read_dir(&dir).expect("source dir reads") {
                let path = entry.expect("dir entry").path();
                if path.is_dir() {
                    pending.push(path);
                } else if path.extension().is_some_and(|e| e == "rs") {
                    let text = std::fs::read_to_string(&path).expect("source reads");
                    found.push((path.display().to_string(), text));
                }
            }
        }
        found
    }

    fn assert_layer_does_not_use(layer: &str, forbidden: &[&str]) {
        let root = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("src")
            .join(layer);
        let files = sources(&root);
        assert!(!files.is_empty(), "no sources under {}", root.display());
        for (path, text) in files {
            for module in forbidden {
                for needle in [
                    format!("crate::{module}"),
                    format!("super::super::{module}"),
                ] {
                    assert!(
                        !text.contains(&needle),
                        "{path} uses `{needle}`: the {layer} layer must not depend on {module}"
                    );
                }
            }
        }
    }

    #[test]
    fn runtime_knows_nothing_of_plans_reports_or_the_command_line() {
        assert_layer_does_not_use("runtime", &["check", "authoring", "cli", "proxy"]);
    }

    #[test]
    fn product_library_knows_nothing_of_the_command_line() {
        assert_layer_does_not_use("check", &["cli", "authoring"]);
        assert_layer_does_not_use("authoring", &["cli"]);
    }

    #[test]
    fn fault_proxy_knows_nothing_of_plans_or_the_command_line() {
        assert_layer_does_not_use("proxy", &["check", "cli", "authoring"]);
    }

    #[test]
    fn rollouts_know_nothing_of_the_command_line_and_checks_nothing_of_rollouts() {
        assert_layer_does_not_use("rollout", &["cli", "authoring"]);
        assert_layer_does_not_use("check", &["rollout"]);
        assert_layer_does_not_use("proxy", &["rollout"]);
        assert_layer_does_not_use("runtime", &["rollout"]);
    }

    #[test]
    fn the_server_knows_nothing_of_the_command_line_and_nothing_below_knows_the_server() {
        assert_layer_does_not_use("serve", &["cli", "authoring"]);
        for layer in ["runtime", "check", "proxy", "rollout"] {
            assert_layer_does_not_use(layer, &["serve"]);
        }
    }
}
