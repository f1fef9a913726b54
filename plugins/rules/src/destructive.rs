//! `destructive-change`: flags what a change cannot take back — removed
//! documents, fields and items (tables, columns, workflow steps,
//! connectors), narrowed types, optional values made required, renames that
//! amount to delete + add, and bulk deletions over a threshold. Findings
//! about something that was removed point where it was, in the document's
//! previous version; everything else points into the new version.

use std::collections::{BTreeMap, HashSet};

use serde::Deserialize;
use serde_json::Value;

use crate::glob;
use crate::model::{Change, Document, Finding, Report, Severity, Status, parse_config};
use crate::parse::Parsed;
use crate::pointer;

pub const CONFIG_SCHEMA: &str = r#"{
  "type": "object",
  "properties": {
    "allow": {"type": "array", "items": {"type": "string"}, "default": [],
              "description": "`path-glob` or `path-glob#pointer-glob`: removals there are allowed"},
    "severity": {"type": "object", "default": {},
                 "additionalProperties": {"enum": ["error", "warning", "info", "off"]},
                 "description": "severity per rule: removed-document, removed-field, removed-item, type-narrowed, became-required, renamed, bulk-deletion"},
    "bulk-threshold": {"type": "integer", "minimum": 1, "default": 10,
                       "description": "removals in one document (or deleted documents in the change) that make a bulk deletion"},
    "identity-keys": {"type": "array", "items": {"type": "string"}, "default": ["id", "name", "key"],
                      "description": "fields that identify the items of an array of objects"}
  },
  "additionalProperties": false
}"#;

/// The rules and their default severities.
const RULES: &[(&str, Severity)] = &[
    ("removed-document", Severity::Error),
    ("removed-field", Severity::Error),
    ("removed-item", Severity::Error),
    ("type-narrowed", Severity::Error),
    ("became-required", Severity::Error),
    ("renamed", Severity::Warning),
    ("bulk-deletion", Severity::Error),
];

/// Nesting depth past which the comparison stops (deeper documents are
/// compared down to this depth only): keeps the walk within the wasm stack.
const MAX_DEPTH: usize = 200;

/// Default `bulk-threshold`: ten removals in one document is more than a
/// routine edit.
const DEFAULT_BULK_THRESHOLD: usize = 10;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct Config {
    #[serde(default)]
    allow: Vec<String>,
    #[serde(default)]
    severity: BTreeMap<String, Level>,
    #[serde(default = "default_bulk_threshold")]
    bulk_threshold: usize,
    #[serde(default = "default_identity_keys")]
    identity_keys: Vec<String>,
}

fn default_bulk_threshold() -> usize {
    DEFAULT_BULK_THRESHOLD
}

fn default_identity_keys() -> Vec<String> {
    ["id", "name", "key"].map(String::from).to_vec()
}

#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(rename_all = "lowercase")]
enum Level {
    Error,
    Warning,
    Info,
    Off,
}

/// The config, checked and resolved.
struct Settings {
    allow: Vec<(String, Option<String>)>,
    severity: BTreeMap<&'static str, Option<Severity>>,
    bulk_threshold: usize,
    identity_keys: Vec<String>,
}

impl Settings {
    fn new(config: Config) -> Result<Settings, String> {
        let mut severity: BTreeMap<&'static str, Option<Severity>> = RULES
            .iter()
            .map(|(rule, severity)| (*rule, Some(*severity)))
            .collect();
        for (rule, level) in config.severity {
            let Some((known, _)) = RULES.iter().find(|(known, _)| *known == rule) else {
                return Err(format!(
                    "invalid config: severity names unknown rule {rule:?}"
                ));
            };
            severity.insert(
                known,
                match level {
                    Level::Error => Some(Severity::Error),
                    Level::Warning => Some(Severity::Warning),
                    Level::Info => Some(Severity::Info),
                    Level::Off => None,
                },
            );
        }
        if config.bulk_threshold == 0 {
            return Err("invalid config: bulk-threshold must be at least 1".into());
        }
        let allow = config
            .allow
            .into_iter()
            .map(|pattern| match pattern.split_once('#') {
                Some((path, pointer)) => (path.to_owned(), Some(pointer.to_owned())),
                None => (pattern, None),
            })
            .collect();
        Ok(Settings {
            allow,
            severity,
            bulk_threshold: config.bulk_threshold,
            identity_keys: config.identity_keys,
        })
    }

    fn allowed(&self, document: &str, pointer: Option<&str>) -> bool {
        self.allow.iter().any(|(path, pointer_glob)| {
            glob::matches(path, document)
                && match (pointer_glob, pointer) {
                    (None, _) => true,
                    (Some(glob), Some(pointer)) => glob::matches(glob, pointer),
                    (Some(_), None) => false,
                }
        })
    }
}

pub fn check(change: &Change, config: &str) -> Result<Report, String> {
    let settings = Settings::new(parse_config(config)?)?;
    let mut findings = Vec::new();
    let mut deleted = 0;
    for doc in &change.documents {
        match doc.status {
            Status::Deleted => {
                if settings.allowed(&doc.path, None) {
                    continue;
                }
                deleted += 1;
                push(
                    &settings,
                    &mut findings,
                    "removed-document",
                    format!("{} is deleted", doc.path),
                    |f| {
                        f.at(&doc.path).hint("disable or archive the definition first; add the path to `allow` once it is unused")
                    },
                );
            }
            Status::Modified => compare_document(doc, &settings, &mut findings),
            Status::Added | Status::Unchanged => {}
        }
    }
    if deleted >= settings.bulk_threshold {
        push(
            &settings,
            &mut findings,
            "bulk-deletion",
            format!(
                "{deleted} documents are deleted (threshold {})",
                settings.bulk_threshold
            ),
            |f| f.hint("split the change, or raise `bulk-threshold` if this is intended"),
        );
    }
    let count = findings.len();
    Ok(Report::from_findings(
        findings,
        format!("{count} destructive change(s)"),
    ))
}

/// Adds a finding for `rule` unless that rule is off.
fn push(
    settings: &Settings,
    findings: &mut Vec<Finding>,
    rule: &'static str,
    message: String,
    locate: impl FnOnce(Finding) -> Finding,
) {
    if let Some(Some(severity)) = settings.severity.get(rule) {
        findings.push(locate(Finding::new(
            format!("destructive/{rule}"),
            *severity,
            message,
        )));
    }
}

fn compare_document(doc: &Document, settings: &Settings, findings: &mut Vec<Finding>) {
    let (Some(Ok(before)), Some(Ok(after))) = (doc.parse_before(), doc.parse_after()) else {
        // Text documents and ones that do not parse are not compared here
        // (`well-formed` reports syntax errors).
        return;
    };
    let mut diff = Diff {
        doc,
        before: &before,
        after: &after,
        settings,
        findings: Vec::new(),
        removals: 0,
    };
    diff.values(&before.value, &after.value, "", "", None, 0);
    let removals = diff.removals;
    findings.append(&mut diff.findings);
    if removals >= settings.bulk_threshold {
        push(
            settings,
            findings,
            "bulk-deletion",
            format!(
                "{removals} fields or items are removed from {} (threshold {})",
                doc.path, settings.bulk_threshold
            ),
            |f| {
                f.at(&doc.path)
                    .hint("split the change, or raise `bulk-threshold` if this is intended")
            },
        );
    }
}

/// The comparison of one document's two versions.
struct Diff<'a> {
    doc: &'a Document,
    before: &'a Parsed,
    after: &'a Parsed,
    settings: &'a Settings,
    findings: Vec<Finding>,
    removals: usize,
}

impl<'a> Diff<'a> {
    /// A finding about something removed, at `pointer` in the before version.
    fn removed(&mut self, rule: &'static str, pointer: &str, message: String) {
        if self.settings.allowed(&self.doc.path, Some(pointer)) {
            return;
        }
        self.removals += 1;
        let (path, before) = (&self.doc.path, self.before);
        push(self.settings, &mut self.findings, rule, message, |f| {
            f.at_value(path, pointer, Some(before))
                .hint("removing a live definition is irreversible; deprecate it first, or list it in `allow`")
        });
    }

    /// A finding about the new version, at `pointer` in the after version.
    fn changed(&mut self, rule: &'static str, pointer: &str, message: String) {
        if self.settings.allowed(&self.doc.path, Some(pointer)) {
            return;
        }
        let (path, after) = (&self.doc.path, self.after);
        push(self.settings, &mut self.findings, rule, message, |f| {
            f.at_value(path, pointer, Some(after))
        });
    }

    /// Compares `b` (at `bp` in before) with `a` (at `ap` in after); `key`
    /// is the member name both hang under, if any.
    fn values(
        &mut self,
        b: &Value,
        a: &Value,
        bp: &str,
        ap: &str,
        key: Option<&str>,
        depth: usize,
    ) {
        if depth > MAX_DEPTH || b == a {
            return;
        }
        match (b, a) {
            (Value::Object(bo), Value::Object(ao)) => self.objects(bo, ao, bp, ap, depth),
            (Value::Array(ba), Value::Array(aa)) => self.arrays(ba, aa, bp, ap, key, depth),
            _ if kind(b) != kind(a) && narrows_kind(b, a) => {
                self.changed(
                    "type-narrowed",
                    ap,
                    format!("{} changes from {} to {}", display(ap), kind(b), kind(a)),
                );
            }
            _ => {}
        }
    }

    fn objects(
        &mut self,
        bo: &serde_json::Map<String, Value>,
        ao: &serde_json::Map<String, Value>,
        bp: &str,
        ap: &str,
        depth: usize,
    ) {
        let removed: Vec<&String> = bo.keys().filter(|k| !ao.contains_key(*k)).collect();
        let added: Vec<&String> = ao.keys().filter(|k| !bo.contains_key(*k)).collect();
        let mut renamed_to: HashSet<&String> = HashSet::new();
        for old in &removed {
            let old_value = &bo[*old];
            let lone_pair = removed.len() == 1 && added.len() == 1;
            let rename = added.iter().find(|new| {
                !renamed_to.contains(**new)
                    && !old_value.is_null()
                    && ao[**new] == *old_value
                    && (lone_pair || old_value.is_object() || old_value.is_array())
            });
            if let Some(new) = rename {
                renamed_to.insert(new);
                self.removals += 1;
                self.changed(
                    "renamed",
                    &pointer::join(ap, new),
                    format!("`{old}` is renamed to `{new}` under {}: readers of `{old}` break as on a delete", display(ap)),
                );
            } else {
                let at = pointer::join(bp, old);
                self.removed(
                    "removed-field",
                    &at,
                    format!("field `{old}` is removed from {}", display(bp)),
                );
            }
        }
        for (name, b) in bo {
            let Some(a) = ao.get(name) else { continue };
            let (bp_child, ap_child) = (pointer::join(bp, name), pointer::join(ap, name));
            match name.as_str() {
                "type" | "data_type" | "dataType"
                    if type_set(b).is_some() && type_set(a).is_some() =>
                {
                    // A type declaration: judged by meaning, not by JSON kind.
                    self.type_change(b, a, &ap_child);
                    continue;
                }
                "required" | "nullable" | "optional" => {
                    self.requiredness(name, b, a, ao, &ap_child)
                }
                _ => {}
            }
            self.values(b, a, &bp_child, &ap_child, Some(name), depth + 1);
        }
    }

    fn arrays(
        &mut self,
        ba: &[Value],
        aa: &[Value],
        bp: &str,
        ap: &str,
        key: Option<&str>,
        depth: usize,
    ) {
        if key == Some("required") {
            // A JSON Schema `required` list: compared in `requiredness`.
            return;
        }
        if let Some(identity) = self.identity_key(ba, aa) {
            let identity = identity.as_str();
            let id_of = |v: &Value| v.get(identity).map(Value::to_string).unwrap_or_default();
            let after_ids: BTreeMap<String, usize> =
                aa.iter().enumerate().map(|(i, v)| (id_of(v), i)).collect();
            let before_ids: HashSet<String> = ba.iter().map(id_of).collect();
            let mut renamed_to = HashSet::new();
            for (i, item) in ba.iter().enumerate() {
                let id = id_of(item);
                if let Some(&j) = after_ids.get(&id) {
                    self.values(
                        item,
                        &aa[j],
                        &pointer::join_index(bp, i),
                        &pointer::join_index(ap, j),
                        None,
                        depth + 1,
                    );
                    continue;
                }
                let rename = aa.iter().enumerate().find(|(j, new)| {
                    !before_ids.contains(&id_of(new))
                        && !renamed_to.contains(j)
                        && same_except(item, new, identity)
                });
                if let Some((j, new)) = rename {
                    renamed_to.insert(j);
                    self.removals += 1;
                    self.changed(
                        "renamed",
                        &pointer::join(&pointer::join_index(ap, j), identity),
                        format!("{} {id} is renamed to {} in {}: references to {id} break as on a delete", identity, id_of(new), display(ap)),
                    );
                } else {
                    self.removed(
                        "removed-item",
                        &pointer::join_index(bp, i),
                        format!("{} {id} is removed from {}", identity, display(bp)),
                    );
                }
            }
            return;
        }
        if ba.iter().all(is_scalar) && aa.iter().all(is_scalar) {
            // A set of values (scopes, enum members): a missing one is removed.
            for (i, item) in ba.iter().enumerate() {
                if !aa.contains(item) {
                    self.removed(
                        "removed-item",
                        &pointer::join_index(bp, i),
                        format!("value {item} is removed from {}", display(bp)),
                    );
                }
            }
            return;
        }
        for (i, (b, a)) in ba.iter().zip(aa).enumerate() {
            self.values(
                b,
                a,
                &pointer::join_index(bp, i),
                &pointer::join_index(ap, i),
                None,
                depth + 1,
            );
        }
        for i in aa.len()..ba.len() {
            self.removed(
                "removed-item",
                &pointer::join_index(bp, i),
                format!("item {i} is removed from {}", display(bp)),
            );
        }
    }

    /// The identity field shared by every object of both arrays, if any.
    fn identity_key(&self, ba: &[Value], aa: &[Value]) -> Option<&'a String> {
        if ba.is_empty() {
            return None;
        }
        let settings: &'a Settings = self.settings;
        settings.identity_keys.iter().find(|key| {
            ba.iter()
                .chain(aa)
                .all(|item| item.get(key.as_str()).is_some_and(is_scalar))
        })
    }

    /// A `type` member changes: narrowing unless every old type is covered
    /// by a new one; dropping `null` makes the value required.
    fn type_change(&mut self, b: &Value, a: &Value, ap: &str) {
        let (Some(old), Some(new)) = (type_set(b), type_set(a)) else {
            return;
        };
        if old.contains(&"null".to_owned()) && !new.contains(&"null".to_owned()) {
            self.changed(
                "became-required",
                ap,
                format!("{} no longer allows null ({} → {})", display(ap), b, a),
            );
        }
        // `type: exponential` → `type: fixed` is not a data type.
        if !old.iter().chain(&new).all(|t| is_data_type(t)) {
            return;
        }
        let narrowed: Vec<&String> = old
            .iter()
            .filter(|t| *t != "null" && !new.iter().any(|n| widens(t, n)))
            .collect();
        if !narrowed.is_empty() {
            self.changed(
                "type-narrowed",
                ap,
                format!("{} narrows from {} to {}", display(ap), b, a),
            );
        }
    }

    /// `required`/`nullable`/`optional` flags and JSON Schema `required` lists.
    fn requiredness(
        &mut self,
        name: &str,
        b: &Value,
        a: &Value,
        after_object: &serde_json::Map<String, Value>,
        ap: &str,
    ) {
        let became_required = match (name, b, a) {
            ("required", Value::Bool(false), Value::Bool(true)) => true,
            ("nullable" | "optional", Value::Bool(true), Value::Bool(false)) => true,
            ("required", Value::Array(old), Value::Array(new)) => {
                let properties = after_object.get("properties");
                for (i, field) in new.iter().enumerate() {
                    let existed = field
                        .as_str()
                        .is_some_and(|f| properties.is_some_and(|p| p.get(f).is_some()));
                    if !old.contains(field) && existed {
                        self.changed(
                            "became-required",
                            &pointer::join_index(ap, i),
                            format!("{field} becomes required in {}", display(ap)),
                        );
                    }
                }
                false
            }
            _ => false,
        };
        if became_required {
            self.changed(
                "became-required",
                ap,
                format!(
                    "{} changes from {b} to {a}: the value becomes required",
                    display(ap)
                ),
            );
        }
    }
}

fn is_scalar(value: &Value) -> bool {
    !value.is_object() && !value.is_array()
}

/// Whether two objects are equal except for `identity`.
fn same_except(a: &Value, b: &Value, identity: &str) -> bool {
    let (Some(a), Some(b)) = (a.as_object(), b.as_object()) else {
        return false;
    };
    a.len() == b.len() && a.len() > 1 && a.iter().all(|(k, v)| k == identity || b.get(k) == Some(v))
}

fn kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

/// A value changing JSON kind narrows it, except from null or to a string.
fn narrows_kind(b: &Value, a: &Value) -> bool {
    !(b.is_null() || (a.is_string() && is_scalar(b)))
}

fn type_set(value: &Value) -> Option<Vec<String>> {
    match value {
        Value::String(t) => Some(vec![t.to_ascii_lowercase()]),
        Value::Array(items) => items
            .iter()
            .map(|t| t.as_str().map(str::to_ascii_lowercase))
            .collect(),
        _ => None,
    }
}

/// Whether a value of type `old` still fits type `new`. Covers JSON Schema
/// and common SQL type names; a length suffix (`varchar(64)`) is compared
/// by its base name and length.
fn widens(old: &str, new: &str) -> bool {
    if old == new {
        return true;
    }
    let (old_base, old_len) = split_length(old);
    let (new_base, new_len) = split_length(new);
    if old_base == new_base {
        return match (old_len, new_len) {
            (Some(o), Some(n)) => n >= o,
            (Some(_), None) => true,
            (None, Some(_)) => false,
            (None, None) => true,
        };
    }
    const TEXT: &[&str] = &["string", "text", "varchar", "char", "json", "jsonb"];
    const INTEGERS: &[&str] = &["smallint", "integer", "int", "bigint"];
    const NUMBERS: &[&str] = &["number", "numeric", "decimal", "float", "double", "real"];
    let rank = |t: &str| INTEGERS.iter().position(|i| *i == t);
    if matches!(new_base, "string" | "text")
        || (TEXT.contains(&old_base) && TEXT.contains(&new_base) && new_len.is_none())
    {
        return true;
    }
    match (rank(old_base), rank(new_base)) {
        (Some(o), Some(n)) => n >= o || (old_base == "integer" && new_base == "int"),
        (Some(_), None) => NUMBERS.contains(&new_base),
        _ => false,
    }
}

/// JSON Schema types and common SQL column types (a length suffix aside).
fn is_data_type(name: &str) -> bool {
    const KNOWN: &[&str] = &[
        "null",
        "boolean",
        "bool",
        "object",
        "array",
        "string",
        "number",
        "integer",
        "int",
        "smallint",
        "bigint",
        "numeric",
        "decimal",
        "float",
        "double",
        "real",
        "text",
        "varchar",
        "char",
        "uuid",
        "date",
        "time",
        "timestamp",
        "timestamptz",
        "datetime",
        "json",
        "jsonb",
        "bytea",
        "blob",
    ];
    KNOWN.contains(&split_length(name).0)
}

fn split_length(name: &str) -> (&str, Option<u64>) {
    match name.split_once('(') {
        Some((base, rest)) => (base.trim(), rest.trim_end_matches(')').trim().parse().ok()),
        None => (name, None),
    }
}

fn display(pointer: &str) -> String {
    if pointer.is_empty() {
        "the document root".into()
    } else {
        pointer.to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Outcome;

    fn modified(path: &str, before: &str, after: &str) -> Change {
        Change {
            documents: vec![Document::new(
                path,
                "application/json",
                Some(before.into()),
                Some(after.into()),
            )],
            metrics: Default::default(),
        }
    }

    fn rules(report: &Report) -> Vec<&str> {
        report.findings.iter().map(|f| f.rule.as_str()).collect()
    }

    #[test]
    fn removed_column_points_into_the_previous_version() {
        let change = modified(
            "tables/users.json",
            "{\"columns\": [\n {\"name\": \"id\"},\n {\"name\": \"email\"}\n]}",
            "{\"columns\": [{\"name\": \"id\"}]}",
        );
        let report = check(&change, "{}").unwrap();
        assert_eq!(rules(&report), ["destructive/removed-item"]);
        let location = report.findings[0].location.as_ref().unwrap();
        assert_eq!(location.pointer.as_deref(), Some("/columns/1"));
        assert_eq!(location.line, Some(3));
    }

    #[test]
    fn widening_is_not_narrowing() {
        assert!(widens("integer", "number"));
        assert!(widens("varchar(64)", "varchar(128)"));
        assert!(widens("int", "bigint"));
        assert!(!widens("string", "integer"));
        assert!(!widens("varchar(128)", "varchar(64)"));
        assert!(!widens("bigint", "int"));
    }

    #[test]
    fn renamed_key_is_reported_once_as_a_rename() {
        let change = modified(
            "c.json",
            r#"{"auth": {"kind": "oauth", "scope": "x"}}"#,
            r#"{"authentication": {"kind": "oauth", "scope": "x"}}"#,
        );
        let report = check(&change, "{}").unwrap();
        assert_eq!(rules(&report), ["destructive/renamed"]);
        assert_eq!(report.outcome, Outcome::Warn);
    }

    #[test]
    fn allowlist_by_pointer_silences_a_removal() {
        let change = modified("w.json", r#"{"a": 1, "notes": "x"}"#, r#"{"a": 1}"#);
        let report = check(&change, r#"{"allow": ["w.json#/notes"]}"#).unwrap();
        assert!(report.findings.is_empty());
    }

    #[test]
    fn unknown_rule_in_severity_is_refused() {
        assert!(check(&Change::default(), r#"{"severity": {"nope": "off"}}"#).is_err());
    }
}
