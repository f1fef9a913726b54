//! cairn-host: loads sandboxed WebAssembly plugins (validators and fault
//! injectors defined by the `cairn:plugin` WIT contract) and runs them under
//! strict time, memory and output limits.
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use std::sync::Arc;
//! use cairn_host::{Change, Checkpoint, Limits, Runtime, RuntimeConfig};
//!
//! let runtime = Runtime::new(RuntimeConfig::default())?;
//! let plugin = runtime.load_file("plugins/no-delete.wasm".as_ref(), None)?;
//! let change = Arc::new(Change::from_dir("examples/change".as_ref())?);
//! let report = plugin
//!     .validate(change, &Checkpoint::default(), "{}", &Limits::default())
//!     .await;
//! println!("{:?} in {:?}", report.outcome, report.elapsed);
//! # Ok(()) }
//! ```

pub mod bindings;
pub mod cache;
pub mod call;
pub mod change;
pub mod check;
pub mod checkpoint;
pub mod cli;
pub mod failure;
pub mod gate;
pub mod golden;
pub mod inject;
pub mod limits;
pub mod plan;
pub mod plugin;
pub mod preinit;
pub mod report;
pub mod runtime;
pub mod sandbox;
pub mod scaffold;
pub mod source;
pub mod verdict;

pub use cache::{CacheStatus, CompileCache};
pub use call::{CallOutcome, CallReport};
pub use change::{Change, ChangeError, Checkpoint, Document, DocumentStatus, Metric};
pub use checkpoint::{ValidatorRun, run_validators};
pub use failure::{Failure, FailureKind, OnError};
pub use inject::{Fault, RequestInfo};
pub use limits::Limits;
pub use plugin::{LoadError, Plugin, PluginInfo, World};
pub use preinit::InitializationError;
pub use runtime::{InstanceAllocation, LoadStats, Runtime, RuntimeConfig, RuntimeError};
pub use sandbox::{CapturedOutput, LogLevel, LogRecord};
pub use verdict::{ContractViolation, Finding, Location, Outcome, Severity, Verdict};

/// Renders an error and its causes on one line: `outer: inner: root`.
pub(crate) fn error_chain(err: &wasmtime::Error) -> String {
    err.chain()
        .map(|cause| cause.to_string())
        .collect::<Vec<_>>()
        .join(": ")
}
