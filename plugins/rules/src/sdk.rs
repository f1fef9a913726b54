//! The thin layer between the rules and the SDK: reads the change through
//! the host into a [`Change`], runs a rule's `check`, and turns its
//! [`Report`] into the SDK's verdict.

use cairn_plugin_sdk as sdk;

use crate::model::{Change, Document, Finding, Outcome, Report, Severity, Status};

/// Runs `check` on the change the host offers.
pub fn run(
    change: &sdk::Change,
    config: &str,
    check: fn(&Change, &str) -> Result<Report, String>,
) -> Result<sdk::Verdict, String> {
    let report = check(&read_change(change), config)?;
    Ok(verdict(report))
}

/// Copies the documents and metrics out of the host.
pub fn read_change(change: &sdk::Change) -> Change {
    let documents = change
        .documents()
        .into_iter()
        .map(|doc| {
            let status = match doc.status {
                sdk::DocStatus::Added => Status::Added,
                sdk::DocStatus::Modified => Status::Modified,
                sdk::DocStatus::Deleted => Status::Deleted,
                sdk::DocStatus::Unchanged => Status::Unchanged,
            };
            Document {
                before: change.before(&doc.path),
                after: change.after(&doc.path),
                path: doc.path,
                media_type: doc.media_type,
                status,
            }
        })
        .collect();
    let metrics = change
        .metrics()
        .into_iter()
        .map(|metric| (metric.name, metric.value))
        .collect();
    Change { documents, metrics }
}

fn verdict(report: Report) -> sdk::Verdict {
    sdk::Verdict {
        outcome: match report.outcome {
            Outcome::Pass => sdk::Outcome::Pass,
            Outcome::Warn => sdk::Outcome::Warn,
            Outcome::Fail => sdk::Outcome::Fail,
            Outcome::Inconclusive => sdk::Outcome::Inconclusive,
        },
        findings: report.findings.into_iter().map(finding).collect(),
        summary: Some(report.summary),
    }
}

fn finding(finding: Finding) -> sdk::Finding {
    sdk::Finding {
        rule: finding.rule,
        severity: match finding.severity {
            Severity::Info => sdk::Severity::Info,
            Severity::Warning => sdk::Severity::Warning,
            Severity::Error => sdk::Severity::Error,
        },
        message: finding.message,
        location: finding.location.map(|location| sdk::Location {
            document: location.document,
            pointer: location.pointer,
            line: location.line,
            column: location.column,
        }),
        hint: finding.hint,
    }
}
