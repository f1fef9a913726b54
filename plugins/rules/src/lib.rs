//! cairn-rules: the rule logic of cairn's bundled validators (schema,
//! destructive-change, api-contract, retry-policy, slo-gate, no-deletes,
//! references) as plain Rust over parsed documents, apart from the SDK so it
//! can be unit-tested and benchmarked natively. Each plugin crate is a thin
//! wrapper around one `check` function (see [`sdk`], behind the `sdk`
//! feature).

pub mod api_contract;
pub mod destructive;
pub mod glob;
pub mod model;
pub mod no_deletes;
pub mod parse;
pub mod pointer;
pub mod references;
pub mod retry_policy;
#[cfg(feature = "schema")]
pub mod schema;
#[cfg(feature = "sdk")]
pub mod sdk;
pub mod slo_gate;

pub use model::{Change, Document, Finding, Location, Outcome, Report, Severity, Status};
