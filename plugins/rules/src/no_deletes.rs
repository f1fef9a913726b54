//! `no-deletes`: fails when a change deletes a document (a workflow, a table
//! definition, a connector) and warns when it empties one, unless the path
//! matches an `allow` pattern.

use serde::Deserialize;

use crate::glob;
use crate::model::{Change, Finding, Report, Severity, Status, parse_config};

pub const CONFIG_SCHEMA: &str = r#"{
  "type": "object",
  "properties": {
    "allow": {"type": "array", "items": {"type": "string"},
              "description": "path patterns that may be deleted; `*` matches any run of characters"}
  },
  "additionalProperties": false
}"#;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct Config {
    #[serde(default)]
    allow: Vec<String>,
}

/// Checks every document the `allow` patterns of `config` do not cover.
pub fn check(change: &Change, config: &str) -> Result<Report, String> {
    let config: Config = parse_config(config)?;
    let mut findings = Vec::new();
    for doc in &change.documents {
        if glob::any(&config.allow, &doc.path) {
            continue;
        }
        match doc.status {
            Status::Deleted => findings.push(
                Finding::new(
                    "no-deletes/deleted",
                    Severity::Error,
                    format!("{} is deleted", doc.path),
                )
                .at(&doc.path)
                .hint("deleting a live definition is irreversible; disable it first, or add the path to `allow`"),
            ),
            Status::Modified
                if doc
                    .after
                    .as_deref()
                    .is_some_and(|after| after.iter().all(u8::is_ascii_whitespace)) =>
            {
                findings.push(
                    Finding::new(
                        "no-deletes/emptied",
                        Severity::Warning,
                        format!("{} is emptied", doc.path),
                    )
                    .at(&doc.path),
                )
            }
            _ => {}
        }
    }
    let summary = match findings.len() {
        0 => "no document is deleted or emptied".to_owned(),
        n => format!("{n} document(s) deleted or emptied"),
    };
    Ok(Report::from_findings(findings, summary))
}

#[cfg(test)]
mod tests {
    use super::check;
    use crate::model::{Change, Document, Outcome, Severity};

    fn change(documents: Vec<Document>) -> Change {
        Change {
            documents,
            metrics: Default::default(),
        }
    }

    #[test]
    fn a_deleted_document_fails_and_an_emptied_one_warns() {
        let change = change(vec![
            Document::new("a.json", "application/json", Some(b"{}".to_vec()), None),
            Document::new(
                "b.json",
                "application/json",
                Some(b"{}".to_vec()),
                Some(b" \n".to_vec()),
            ),
            Document::new("c.json", "application/json", None, Some(b"{}".to_vec())),
        ]);
        let report = check(&change, "{}").expect("valid config");
        assert_eq!(report.outcome, Outcome::Fail);
        let rules: Vec<(&str, Severity, &str)> = report
            .findings
            .iter()
            .map(|f| {
                let doc = f.location.as_ref().map_or("", |l| l.document.as_str());
                (f.rule.as_str(), f.severity, doc)
            })
            .collect();
        assert_eq!(
            rules,
            [
                ("no-deletes/deleted", Severity::Error, "a.json"),
                ("no-deletes/emptied", Severity::Warning, "b.json"),
            ]
        );
    }

    #[test]
    fn allowed_paths_are_skipped_and_unknown_config_keys_are_refused() {
        let change = change(vec![Document::new(
            "legacy/a.json",
            "application/json",
            Some(b"{}".to_vec()),
            None,
        )]);
        let report = check(&change, r#"{"allow": ["legacy/*"]}"#).expect("valid config");
        assert_eq!(report.outcome, Outcome::Pass);
        assert!(check(&change, r#"{"alow": []}"#).is_err());
    }
}
