//! cairn's HTTP fault proxy: experiments that put a fault injector (a WASM
//! plugin, through [`crate::runtime`]) between clients and an upstream
//! service, inside a safety envelope (blast radius, routes, protected
//! paths, a cap on concurrent faults, a duration, a kill switch and
//! guardrails on what clients see), with a decision log that replays.
//!
//! A layer beside `check`: it uses the runtime and nothing of plans
//! or the command line (a test in `lib.rs` checks the `use` lines).
//!
//! - [`config`]: [`ExperimentConfig`], [`Envelope`], [`Guardrails`],
//!   [`Upstream`], and their validation.
//! - [`envelope`]: globs, route matching, protected paths.
//! - [`seed`]: the per-request random streams derived from the seed.
//! - [`decider`]: [`FaultDecider`], and [`PluginDecider`] over a plugin.
//! - [`request`]: what the plugin is told about a request (redaction,
//!   hop-by-hop headers, trace ids) and the grouping of retries.
//! - [`server`]: [`Experiment::start`], the accept loop, one request's path
//!   through the envelope and its faults, stop and drain.
//! - [`handler`]: one request through the envelope, the plugin and its
//!   faults; [`exchange`]: its record, finalised into stats, guardrails
//!   and the log.
//! - [`body`]: the response body as faulted (truncate, corrupt, throttle)
//!   and counted.
//! - [`upstream`] and [`tls`]: the pooled client to the upstream.
//! - [`admin`]: the loopback admin endpoint (`POST /stop`, `GET /status`).
//! - [`guardrails`]: the sliding window and its breaches.
//! - [`stats`]: counts, histograms, [`ExperimentReport`] and its metrics.
//! - [`log`]: the JSON Lines decision log, reading it back, replay.
//! - [`workload`]: a synthetic HTTP client with a retry policy.

pub mod admin;
pub mod body;
pub mod config;
pub mod decider;
pub mod envelope;
pub mod error;
pub mod exchange;
pub mod guardrails;
pub mod handler;
pub mod log;
pub mod request;
pub mod seed;
pub mod server;
pub mod stats;
pub mod tls;
pub mod upstream;
pub mod workload;

#[cfg(test)]
mod tests;

pub use config::{Envelope, ExperimentConfig, Guardrails, RouteMatch, Scheme, Upstream};
pub use decider::{DecideOutcome, DeciderInfo, FaultDecider, FnDecider, PluginDecider};
pub use envelope::Glob;
pub use error::ProxyError;
pub use guardrails::Breach;
pub use log::{
    DecisionLog, LogEvent, LogHeader, LoggedOutcome, ReplayDifference, ReplayReport,
    read_decision_log, replay,
};
pub use server::{Experiment, RunningExperiment, StopHandle, StopReason};
pub use stats::{ExperimentReport, ExperimentStats};
pub use workload::{RequestTemplate, RetryPolicy, Workload, WorkloadReport, run_workload};
