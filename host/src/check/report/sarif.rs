//! `--format sarif`: SARIF 2.1.0, one run per validator, findings as results
//! with physical (file, line, column) and logical (JSON pointer) locations,
//! so code-scanning UIs show them on the document.

use std::collections::BTreeMap;

use serde_json::{Value, json};

use super::{CheckReport, RenderOptions, findings};
use crate::runtime::call::CallOutcome;
use crate::runtime::verdict::{Finding, Severity};

const SARIF_SCHEMA: &str = "https://json.schemastore.org/sarif-2.1.0.json";

pub(super) fn render(report: &CheckReport, options: &RenderOptions) -> String {
    let mut runs = Vec::new();
    for checkpoint in &report.checkpoints {
        for validator in &checkpoint.validators {
            let mut rules: BTreeMap<&str, Severity> = BTreeMap::new();
            for finding in findings(validator) {
                let severity = rules.entry(&finding.rule).or_insert(finding.severity);
                *severity = (*severity).max(finding.severity);
            }
            let notifications: Vec<Value> = match &validator.report.outcome {
                CallOutcome::Completed(_) => Vec::new(),
                CallOutcome::Refused(reason) => vec![json!({
                    "level": "error",
                    "message": { "text": format!("plugin error: {reason}") },
                })],
                CallOutcome::Stopped(failure) => vec![json!({
                    "level": "error",
                    "descriptor": { "id": failure.kind.as_str() },
                    "message": { "text": failure.to_string() },
                })],
            };
            runs.push(json!({
                "tool": { "driver": {
                    "name": format!("cairn/{}", validator.name),
                    "rules": rules.iter().map(|(id, severity)| json!({
                        "id": id,
                        "defaultConfiguration": { "level": level(*severity) },
                    })).collect::<Vec<_>>(),
                }},
                "automationDetails": { "id": format!("cairn/{}/{}/", checkpoint.checkpoint.name, validator.name) },
                "invocations": [{
                    "executionSuccessful": matches!(validator.report.outcome, CallOutcome::Completed(_)),
                    "toolExecutionNotifications": notifications,
                }],
                "results": findings(validator).iter().map(|f| result(f, options)).collect::<Vec<_>>(),
            }));
        }
    }
    let sarif = json!({ "$schema": SARIF_SCHEMA, "version": "2.1.0", "runs": runs });
    let mut text = serde_json::to_string_pretty(&sarif).unwrap_or_default();
    text.push('\n');
    text
}

fn level(severity: Severity) -> &'static str {
    match severity {
        Severity::Error => "error",
        Severity::Warning => "warning",
        Severity::Info => "note",
    }
}

fn result(finding: &Finding, options: &RenderOptions) -> Value {
    let mut message = finding.message.clone();
    if let Some(hint) = &finding.hint {
        message.push_str(&format!(" (hint: {hint})"));
    }
    let mut result = json!({
        "ruleId": finding.rule,
        "level": level(finding.severity),
        "message": { "text": message },
    });
    if let (Some(location), Some(object)) = (&finding.location, result.as_object_mut()) {
        let mut physical =
            json!({ "artifactLocation": { "uri": options.document_path(&location.document) } });
        if let Some(line) = location.line {
            let mut region = json!({ "startLine": line });
            if let Some(column) = location.column {
                region["startColumn"] = json!(column);
            }
            physical["region"] = region;
        }
        let mut sarif_location = json!({ "physicalLocation": physical });
        if let Some(pointer) = &location.pointer {
            sarif_location["logicalLocations"] =
                json!([{ "fullyQualifiedName": pointer, "kind": "element" }]);
        }
        object.insert("locations".into(), json!([sarif_location]));
    }
    result
}
