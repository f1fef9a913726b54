//! Check reports: the result of running a plan's checkpoints on a change,
//! and its renderings for people (`human`) and for CI systems (`json`,
//! `junit`, `sarif`, `github`).

mod experiment;
mod github;
mod human;
mod json;
mod junit;
mod sarif;

use std::path::PathBuf;

pub use experiment::experiment_summary;

use crate::check::{CheckpointResult, ValidatorResult};
use crate::runtime::call::CallOutcome;
use crate::runtime::verdict::{Finding, Outcome};

/// Version of the JSON report's schema (`host/schema/check-report.schema.json`).
pub const JSON_SCHEMA_ID: &str = "cairn-check-report/v1";

/// The JSON Schema of `--format json`, for consumers and tests.
pub const JSON_SCHEMA: &str = include_str!("../../../schema/check-report.schema.json");

/// Everything one `cairn check` run decided.
#[derive(Debug, Clone)]
pub struct CheckReport {
    pub plan: PathBuf,
    pub change: PathBuf,
    /// The checkpoints that ran, in order.
    pub checkpoints: Vec<CheckpointResult>,
    /// Checkpoints not run because an earlier gate stopped the rollout.
    pub skipped: Vec<String>,
}

impl CheckReport {
    /// The first gate that did not pass, if any.
    pub fn stopped_at(&self) -> Option<&CheckpointResult> {
        self.checkpoints.iter().find(|c| !c.decision.passed())
    }

    /// The overall outcome: the stopping gate's, else the worst warning.
    pub fn outcome(&self) -> Outcome {
        match self.stopped_at() {
            Some(checkpoint) => checkpoint.decision.outcome,
            None if self
                .checkpoints
                .iter()
                .any(|c| c.decision.outcome == Outcome::Warn) =>
            {
                Outcome::Warn
            }
            None => Outcome::Pass,
        }
    }

    pub fn passed(&self) -> bool {
        self.stopped_at().is_none()
    }
}

/// Text from plugins, plans and documents with control characters (an ANSI
/// escape smuggled into a finding or a file name) shown as `\u{..}` instead
/// of reaching a terminal; line breaks and tabs are kept.
pub fn terminal_safe(text: &str) -> std::borrow::Cow<'_, str> {
    let unsafe_char = |c: char| c.is_control() && c != '\n' && c != '\t';
    if !text.chars().any(unsafe_char) {
        return std::borrow::Cow::Borrowed(text);
    }
    std::borrow::Cow::Owned(
        text.chars()
            .map(|c| {
                if unsafe_char(c) {
                    c.escape_unicode().to_string()
                } else {
                    c.to_string()
                }
            })
            .collect(),
    )
}

/// A report format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Human,
    Json,
    Junit,
    Sarif,
    Github,
}

/// Rendering options.
#[derive(Debug, Clone, Default)]
pub struct RenderOptions {
    /// Colour the human report (ANSI escapes).
    pub color: bool,
    /// Prefix joined to document paths in SARIF and GitHub annotations, so
    /// they point at files in the repository (`changes/orders/after/`).
    pub path_prefix: Option<String>,
}

/// Renders `report` in `format`.
pub fn render(report: &CheckReport, format: Format, options: &RenderOptions) -> String {
    match format {
        Format::Human => human::render(report, options),
        Format::Json => json::render(report),
        Format::Junit => junit::render(report),
        Format::Sarif => sarif::render(report, options),
        Format::Github => github::render(report, options),
    }
}

impl RenderOptions {
    /// The path CI tools should show for a document of the change.
    fn document_path(&self, document: &str) -> String {
        match &self.path_prefix {
            Some(prefix) if prefix.ends_with('/') || prefix.is_empty() => {
                format!("{prefix}{document}")
            }
            Some(prefix) => format!("{prefix}/{document}"),
            None => document.to_owned(),
        }
    }
}

/// The findings of a validator that completed (none otherwise).
fn findings(validator: &ValidatorResult) -> &[Finding] {
    match &validator.report.outcome {
        CallOutcome::Completed(verdict) => &verdict.findings,
        _ => &[],
    }
}

/// One line on why a validator did not complete, if it did not.
fn problem(validator: &ValidatorResult) -> Option<String> {
    match &validator.report.outcome {
        CallOutcome::Completed(_) => None,
        CallOutcome::Refused(reason) => Some(format!("plugin error: {reason}")),
        CallOutcome::Stopped(failure) => Some(failure.to_string()),
    }
}

fn status(validator: &ValidatorResult) -> &'static str {
    match validator.report.outcome {
        CallOutcome::Completed(_) => "completed",
        CallOutcome::Refused(_) => "refused",
        CallOutcome::Stopped(_) => "stopped",
    }
}

fn millis(duration: std::time::Duration) -> f64 {
    (duration.as_secs_f64() * 1_000_000.0).round() / 1000.0
}
