//! `schema`: validates every added or modified JSON, YAML or TOML document
//! against the JSON Schemas (draft 2020-12 or draft 7) that apply to it:
//! those bound to it by path in the config, given inline or as a schema
//! document shipped inside the change, and the one its own top-level
//! `$schema` names when that is a document of the change.

use std::collections::HashMap;

use serde::Deserialize;
use serde_json::Value;

use crate::glob;
use crate::model::{Change, Document, Finding, Report, Severity, parse_config};
use crate::parse::Parsed;
use crate::pointer;

pub const CONFIG_SCHEMA: &str = r#"{
  "type": "object",
  "properties": {
    "schemas": {
      "type": "array",
      "description": "schemas bound to documents by path pattern (`*` matches any run of characters)",
      "items": {
        "type": "object",
        "properties": {
          "documents": {"type": "array", "items": {"type": "string"}},
          "schema": {"description": "an inline JSON Schema", "type": ["object", "boolean"]},
          "schema-document": {"type": "string", "description": "path of a schema document inside the change"},
          "severity": {"enum": ["error", "warning", "info"], "default": "error"}
        },
        "required": ["documents"],
        "additionalProperties": false
      },
      "default": []
    },
    "follow-dollar-schema": {"type": "boolean", "default": true},
    "default-draft": {"enum": ["2020-12", "7"], "default": "2020-12"}
  },
  "additionalProperties": false
}"#;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct Config {
    #[serde(default)]
    schemas: Vec<Binding>,
    #[serde(default = "yes")]
    follow_dollar_schema: bool,
    #[serde(default)]
    default_draft: DraftName,
}

fn yes() -> bool {
    true
}

#[derive(Debug, Default, Clone, Copy, Deserialize)]
enum DraftName {
    #[default]
    #[serde(rename = "2020-12")]
    Draft202012,
    #[serde(rename = "7")]
    Draft7,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct Binding {
    documents: Vec<String>,
    schema: Option<Value>,
    schema_document: Option<String>,
    #[serde(default = "error")]
    severity: Severity,
}

fn error() -> Severity {
    Severity::Error
}

/// Where a schema comes from.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Source {
    /// The n-th binding of the config.
    Inline(usize),
    /// A document of the change (its after side).
    Document(String),
}

/// Compiled schemas, by source; `Err` holds why a schema document is unusable.
type Compiled = HashMap<Source, Result<jsonschema::Validator, String>>;

pub fn check(change: &Change, config: &str) -> Result<Report, String> {
    let config: Config = parse_config(config)?;
    let mut compiled: Compiled = HashMap::new();
    for (index, binding) in config.schemas.iter().enumerate() {
        match (&binding.schema, &binding.schema_document) {
            (Some(schema), None) => {
                let validator = compile(schema, config.default_draft).map_err(|err| {
                    format!(
                        "invalid config: schemas[{index}].schema is not a valid JSON Schema: {err}"
                    )
                })?;
                compiled.insert(Source::Inline(index), Ok(validator));
            }
            (None, Some(_)) => {}
            _ => {
                return Err(format!(
                    "invalid config: schemas[{index}] needs exactly one of `schema` and `schema-document`"
                ));
            }
        }
    }

    let mut findings = Vec::new();
    let mut checked = 0;
    for doc in change.documents.iter().filter(|doc| doc.is_changed()) {
        let mut sources: Vec<(Source, Severity)> = config
            .schemas
            .iter()
            .enumerate()
            .filter(|(_, binding)| glob::any(&binding.documents, &doc.path))
            .map(|(index, binding)| match &binding.schema_document {
                Some(path) => (Source::Document(path.clone()), binding.severity),
                None => (Source::Inline(index), binding.severity),
            })
            .collect();
        let parsed = match doc.parse_after() {
            None => continue,
            Some(Err(err)) => {
                if !sources.is_empty() {
                    findings.push(
                        Finding::new(
                            "schema/unparsable",
                            Severity::Error,
                            format!("{} does not parse: {}", doc.path, err.message),
                        )
                        .at_line(&doc.path, err.line, err.column),
                    );
                }
                continue;
            }
            Some(Ok(parsed)) => parsed,
        };
        if config.follow_dollar_schema
            && let Some(target) = dollar_schema_document(change, doc, &parsed.value)
        {
            sources.push((Source::Document(target), Severity::Error));
        }
        sources.dedup();
        if sources.is_empty() {
            continue;
        }
        checked += 1;
        for (source, severity) in sources {
            validate(
                change,
                doc,
                &parsed,
                &source,
                severity,
                config.default_draft,
                &mut compiled,
                &mut findings,
            );
        }
    }
    let errors = findings.len();
    Ok(Report::from_findings(
        findings,
        format!("{checked} document(s) checked against a schema, {errors} finding(s)"),
    ))
}

#[allow(clippy::too_many_arguments)]
fn validate(
    change: &Change,
    doc: &Document,
    parsed: &Parsed,
    source: &Source,
    severity: Severity,
    draft: DraftName,
    compiled: &mut Compiled,
    findings: &mut Vec<Finding>,
) {
    let validator = compiled
        .entry(source.clone())
        .or_insert_with(|| match source {
            Source::Document(path) => load_schema_document(change, path, draft),
            Source::Inline(index) => Err(format!("schemas[{index}] was not compiled")),
        });
    let validator = match validator {
        Ok(validator) => validator,
        Err(reason) => {
            let Source::Document(path) = source else {
                return;
            };
            let (rule, at) = if change
                .documents
                .iter()
                .any(|d| &d.path == path && d.after.is_some())
            {
                ("schema/invalid-schema", path.as_str())
            } else {
                ("schema/missing-schema", doc.path.as_str())
            };
            let finding = Finding::new(
                rule,
                Severity::Error,
                format!("schema {path} for {}: {reason}", doc.path),
            )
            .at(at);
            if !findings.contains(&finding) {
                findings.push(finding);
            }
            return;
        }
    };
    let named = match source {
        Source::Inline(index) => format!("config schemas[{index}]"),
        Source::Document(path) => path.clone(),
    };
    for error in validator.iter_errors(&parsed.value) {
        let keyword = pointer::last_token(error.schema_path().as_str())
            .filter(|token| !token.is_empty() && token.parse::<usize>().is_err())
            .unwrap_or_else(|| "schema".to_owned());
        let instance = error.instance_path().as_str().to_owned();
        findings.push(
            Finding::new(
                format!("schema/{keyword}"),
                severity,
                format!("{error} (keyword `{keyword}` of {named})"),
            )
            .at_value(&doc.path, &instance, Some(parsed)),
        );
    }
}

/// The change document named by the top-level `$schema` of `value`: a path
/// relative to the document's folder or to the change root. URLs (a schema
/// document's own meta-schema) are not documents of the change.
fn dollar_schema_document(change: &Change, doc: &Document, value: &Value) -> Option<String> {
    let target = value.get("$schema")?.as_str()?;
    if target.contains("://") {
        return None;
    }
    let folder = doc
        .path
        .rsplit_once('/')
        .map(|(folder, _)| folder)
        .unwrap_or("");
    let relative = normalize(&format!("{folder}/{target}"));
    [relative, normalize(target)]
        .into_iter()
        .find(|candidate| change.documents.iter().any(|d| &d.path == candidate))
        .or_else(|| Some(normalize(target)))
}

/// Resolves `.` and `..` segments of a `/`-separated path.
fn normalize(path: &str) -> String {
    let mut parts: Vec<&str> = Vec::new();
    for part in path.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            part => parts.push(part),
        }
    }
    parts.join("/")
}

fn load_schema_document(
    change: &Change,
    path: &str,
    draft: DraftName,
) -> Result<jsonschema::Validator, String> {
    let doc = change
        .documents
        .iter()
        .find(|doc| doc.path == path && doc.after.is_some())
        .ok_or_else(|| "is not a document of the change".to_owned())?;
    let parsed = match doc.parse_after() {
        Some(Ok(parsed)) => parsed,
        Some(Err(err)) => {
            return Err(format!(
                "does not parse: {} at line {}",
                err.message, err.line
            ));
        }
        None => return Err("is not a JSON, YAML or TOML document".to_owned()),
    };
    compile(&parsed.value, draft).map_err(|err| format!("is not a valid JSON Schema: {err}"))
}

/// Builds what every call would otherwise build first: jsonschema's
/// validators of the draft 2020-12 and draft 7 meta-schemas (process-wide
/// statics, built on first use; a schema is checked against its draft's
/// meta-schema when compiled). The plugin runs this as its `initialize`, so
/// cairn's snapshot already holds them.
pub fn warm_up() {
    let schema = serde_json::json!({"type": "object"});
    for draft in [DraftName::Draft202012, DraftName::Draft7] {
        // A fixed, valid schema: this cannot fail, and if it did the next
        // call would only build the statics itself.
        let _ = compile(&schema, draft);
    }
}

/// Compiles a schema; its own `$schema` picks the draft, else `draft`.
fn compile(schema: &Value, draft: DraftName) -> Result<jsonschema::Validator, String> {
    let mut options = jsonschema::options();
    if schema.get("$schema").is_none() {
        options = options.with_draft(match draft {
            DraftName::Draft202012 => jsonschema::Draft::Draft202012,
            DraftName::Draft7 => jsonschema::Draft::Draft7,
        });
    }
    options.build(schema).map_err(|err| err.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Outcome, Status};

    #[test]
    fn warm_up_leaves_checks_unchanged() {
        let docs = [("tables/users.json", r#"{"name": 1}"#)];
        let config = r#"{"schemas": [{"documents": ["tables/*.json"], "schema": {"properties": {"name": {"type": "string"}}}}]}"#;
        let before = check(&change(&docs), config).expect("config is valid");
        warm_up();
        let after = check(&change(&docs), config).expect("config is valid");
        assert_eq!(before, after);
        assert_eq!(after.outcome, Outcome::Fail, "{after:?}");
    }

    fn change(docs: &[(&str, &str)]) -> Change {
        Change {
            documents: docs
                .iter()
                .map(|(path, text)| {
                    let mut doc =
                        Document::new(*path, media(path), None, Some(text.as_bytes().to_vec()));
                    doc.status = Status::Added;
                    doc
                })
                .collect(),
            metrics: Default::default(),
        }
    }

    fn media(path: &str) -> &'static str {
        if path.ends_with(".yaml") {
            "application/yaml"
        } else {
            "application/json"
        }
    }

    #[test]
    fn inline_schema_violation_carries_keyword_pointer_and_line() {
        let change = change(&[(
            "tables/t.json",
            "{\n  \"columns\": [\n    {\"name\": 3}\n  ]\n}",
        )]);
        let config = r#"{"schemas": [{"documents": ["tables/*"], "schema":
            {"properties": {"columns": {"items": {"properties": {"name": {"type": "string"}}}}}}}]}"#;
        let report = check(&change, config).unwrap();
        assert_eq!(report.outcome, Outcome::Fail);
        let finding = &report.findings[0];
        assert_eq!(finding.rule, "schema/type");
        let location = finding.location.as_ref().unwrap();
        assert_eq!(location.pointer.as_deref(), Some("/columns/0/name"));
        assert_eq!(location.line, Some(3));
    }

    #[test]
    fn dollar_schema_relative_to_the_document_is_followed() {
        let change = change(&[
            (
                "schemas/w.json",
                r#"{"$schema": "http://json-schema.org/draft-07/schema#", "required": ["name"]}"#,
            ),
            (
                "workflows/a.yaml",
                "$schema: ../schemas/w.json\nsteps: []\n",
            ),
        ]);
        let report = check(&change, "{}").unwrap();
        assert_eq!(report.findings.len(), 1);
        assert_eq!(report.findings[0].rule, "schema/required");
    }

    #[test]
    fn invalid_inline_schema_is_refused() {
        let err = check(
            &change(&[]),
            r#"{"schemas": [{"documents": ["*"], "schema": {"type": 12}}]}"#,
        )
        .unwrap_err();
        assert!(err.contains("schemas[0]"), "{err}");
    }
}
