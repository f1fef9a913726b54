//! The `no-deletes` validator as an Extism plugin: JSON in (the change and
//! the config), JSON out (the verdict), the rule from `cairn_rules` — what a
//! team would write to run the same check on Extism.

use cairn_rules::{Change, Document, Outcome, Severity, no_deletes};
use extism_pdk::{FnResult, Json, plugin_fn};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

#[derive(Deserialize)]
struct Input<'a> {
    #[serde(borrow)]
    config: &'a RawValue,
    documents: Vec<InputDocument>,
}

#[derive(Deserialize)]
struct InputDocument {
    path: String,
    media_type: String,
    before: Option<String>,
    after: Option<String>,
}

#[derive(Serialize)]
struct Output {
    outcome: &'static str,
    findings: Vec<OutputFinding>,
    summary: String,
}

#[derive(Serialize)]
struct OutputFinding {
    rule: String,
    severity: &'static str,
    message: String,
    document: Option<String>,
}

#[plugin_fn]
pub fn validate(input: String) -> FnResult<Json<Output>> {
    let input: Input = serde_json::from_str(&input)?;
    let change = Change {
        documents: input
            .documents
            .into_iter()
            .map(|doc| {
                Document::new(
                    doc.path,
                    doc.media_type,
                    doc.before.map(String::into_bytes),
                    doc.after.map(String::into_bytes),
                )
            })
            .collect(),
        metrics: Default::default(),
    };
    let report = no_deletes::check(&change, input.config.get()).map_err(anyhow_error)?;
    Ok(Json(Output {
        outcome: match report.outcome {
            Outcome::Pass => "pass",
            Outcome::Warn => "warn",
            Outcome::Fail => "fail",
            Outcome::Inconclusive => "inconclusive",
        },
        findings: report
            .findings
            .into_iter()
            .map(|finding| OutputFinding {
                rule: finding.rule,
                severity: match finding.severity {
                    Severity::Info => "info",
                    Severity::Warning => "warning",
                    Severity::Error => "error",
                },
                message: finding.message,
                document: finding.location.map(|location| location.document),
            })
            .collect(),
        summary: report.summary,
    }))
}

fn anyhow_error(message: String) -> extism_pdk::Error {
    extism_pdk::Error::msg(message)
}
