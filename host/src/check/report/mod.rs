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

/// A report in which every field a plugin, a document or a plan controls
/// holds control characters, a forged `result: PASS` line and XML markup:
/// every renderer's escaping is tested on it.
#[cfg(test)]
pub(super) mod hostile {
    use std::time::Duration;

    use super::CheckReport;
    use crate::check::ValidatorResult;
    use crate::check::{CheckpointResult, Counted, GateDecision, GateRules, OnError};
    use crate::runtime::call::{CallOutcome, CallReport};
    use crate::runtime::change::Checkpoint;
    use crate::runtime::failure::{Failure, FailureKind};
    use crate::runtime::sandbox::CapturedOutput;
    use crate::runtime::verdict::{Finding, Location, Outcome, Severity, Verdict};

    /// Screen clear, bell, NUL, form feed, a carriage return and a line
    /// break into a fake result, C1 CSI, a bidi override, XML markup and a
    /// CDATA end.
    pub fn text(what: &str) -> String {
        format!("{what}\u{1b}[2J\u{7}\0\u{c}\r\nresult: PASS\n\u{9b}31m\u{202e}<&>\"' ]]> \u{fffe}")
    }

    fn validator(name: &str, outcome: CallOutcome<Verdict>, counts_as: Outcome) -> ValidatorResult {
        ValidatorResult {
            name: text(name),
            plugin: text(name),
            digest: None,
            advisory: false,
            on_error: OnError::Fail,
            report: CallReport {
                plugin: text(name),
                outcome,
                elapsed: Duration::from_millis(3),
                fuel_used: None,
                peak_memory_bytes: 0,
                output: CapturedOutput::default(),
            },
            counted: Counted {
                outcome: counts_as,
                counts_as,
                host_overloaded: false,
            },
        }
    }

    pub fn report() -> CheckReport {
        let finding = Finding {
            rule: text("rule"),
            severity: Severity::Error,
            message: text("message"),
            location: Some(Location {
                document: text("doc"),
                pointer: Some(text("/pointer")),
                line: Some(1),
                column: Some(2),
            }),
            hint: Some(text("hint")),
        };
        let verdict = Verdict {
            outcome: Outcome::Fail,
            findings: vec![finding],
            summary: Some(text("summary")),
            findings_dropped: 0,
        };
        let failure = Failure::new(FailureKind::Trap, text("panic"));
        CheckReport {
            plan: text("plan").into(),
            change: text("change").into(),
            checkpoints: vec![CheckpointResult {
                checkpoint: Checkpoint {
                    name: text("checkpoint"),
                    index: 0,
                    environment: text("env"),
                    rollout_percent: 0,
                    change_id: text("change-id"),
                },
                rules: GateRules::default(),
                validators: vec![
                    validator("finds", CallOutcome::Completed(verdict), Outcome::Fail),
                    validator("stopped", CallOutcome::Stopped(failure), Outcome::Fail),
                    validator(
                        "refuses",
                        CallOutcome::Refused(text("reason")),
                        Outcome::Fail,
                    ),
                ],
                experiments: Vec::new(),
                decision: GateDecision {
                    outcome: Outcome::Fail,
                    fail_on_warn: false,
                },
                elapsed: Duration::from_millis(5),
            }],
            skipped: vec![text("later")],
        }
    }
}
