//! `--format json`: the stable, documented machine-readable report (schema
//! in `host/schema/check-report.schema.json`).

use serde_json::{Value, json};

use super::{CheckReport, JSON_SCHEMA_ID, millis, status};
use crate::check::{CheckpointResult, ValidatorResult};
use crate::runtime::call::CallOutcome;

pub(super) fn render(report: &CheckReport) -> String {
    let value = json!({
        "schema": JSON_SCHEMA_ID,
        "plan": report.plan.display().to_string(),
        "change": report.change.display().to_string(),
        "outcome": report.outcome(),
        "passed": report.passed(),
        "checkpoints": report.checkpoints.iter().map(checkpoint).collect::<Vec<_>>(),
        "skipped": report.skipped,
    });
    let mut text = serde_json::to_string_pretty(&value).unwrap_or_default();
    text.push('\n');
    text
}

fn checkpoint(result: &CheckpointResult) -> Value {
    let at = &result.checkpoint;
    json!({
        "name": at.name,
        "index": at.index,
        "environment": at.environment,
        "rollout-percent": at.rollout_percent,
        "change-id": at.change_id,
        "outcome": result.decision.outcome,
        "passed": result.decision.passed(),
        "fail-on-warn": result.rules.fail_on_warn,
        "inconclusive": result.rules.inconclusive,
        "elapsed-ms": millis(result.elapsed),
        "experiments": result
            .experiments
            .iter()
            .map(|(experiment, counted)| super::experiment::json(experiment, counted))
            .collect::<Vec<_>>(),
        "validators": result.validators.iter().map(validator).collect::<Vec<_>>(),
    })
}

fn validator(result: &ValidatorResult) -> Value {
    let report = &result.report;
    let mut value = json!({
        "name": result.name,
        "plugin": result.plugin,
        "sha256": result.digest.map(|d| d.to_hex()).unwrap_or_default(),
        "advisory": result.advisory,
        "on-error": result.on_error,
        "status": status(result),
        "outcome": result.counted.outcome,
        "counts-as": result.counted.counts_as,
        "elapsed-ms": millis(report.elapsed),
        "peak-memory-bytes": report.peak_memory_bytes,
        "output": {
            "stdout": report.output.stdout,
            "stderr": report.output.stderr,
            "logs": report.output.logs,
            "dropped-bytes": report.output.dropped_bytes,
        },
    });
    let fields = match &report.outcome {
        CallOutcome::Completed(verdict) => json!({
            "summary": verdict.summary,
            "findings": verdict.findings,
            "findings-dropped": verdict.findings_dropped,
        }),
        CallOutcome::Refused(reason) => json!({ "refusal": reason }),
        CallOutcome::Stopped(failure) => json!({ "failure": failure }),
    };
    if let (Some(value), Value::Object(fields)) = (value.as_object_mut(), fields) {
        value.extend(fields);
        if let Some(fuel) = report.fuel_used {
            value.insert("fuel-used".into(), json!(fuel));
        }
    }
    value
}
