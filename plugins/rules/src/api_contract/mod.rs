//! `api-contract`: breaking changes between the before and after versions of
//! an OpenAPI 3.0 or 3.1 document, on the lines of oasdiff's breaking-change
//! checker. Requests break when they accept less (narrowing), responses when
//! they may return more or something different (widening). Schemas are
//! compared at every depth — properties, items, additionalProperties,
//! allOf/oneOf/anyOf, if/then/else, local `$ref`s (cycles end) — for request
//! bodies, parameters, response bodies and headers, in paths and webhooks.
//! Every rule has a default level that the config can change or silence.

mod schema;
mod spec;

use std::collections::BTreeMap;

use serde::Deserialize;
use serde_json::Value;

use crate::model::{Change, Document, Finding, Report, Severity, Status, parse_config};
use crate::parse::Parsed;

/// Every rule: (id, default level, what it reports). The README documents
/// each with an example; `CONFIG_SCHEMA` lists the same ids.
pub const RULES: &[(&str, Severity, &str)] = &[
    (
        "api/removed-spec",
        Severity::Error,
        "an OpenAPI document is deleted",
    ),
    ("api/removed-path", Severity::Error, "a path is gone"),
    (
        "api/removed-operation",
        Severity::Error,
        "a method of a path is gone",
    ),
    (
        "api/removed-deprecated",
        Severity::Info,
        "a deprecated path or operation is removed (after its x-sunset date, when it has one)",
    ),
    (
        "api/removed-before-sunset",
        Severity::Error,
        "a deprecated path or operation is removed before its x-sunset date (a warning when `today` is not configured)",
    ),
    (
        "api/removed-webhook",
        Severity::Error,
        "a webhook (3.1) or one of its operations is gone",
    ),
    (
        "api/removed-response",
        Severity::Error,
        "a 2xx response of an operation is gone",
    ),
    (
        "api/new-required-parameter",
        Severity::Error,
        "a new required parameter, or an optional one made required",
    ),
    (
        "api/removed-parameter",
        Severity::Warning,
        "a parameter is gone (clients that send it may be refused)",
    ),
    (
        "api/retyped-parameter",
        Severity::Error,
        "a parameter's schema (or a property in it) no longer accepts a type or format it did",
    ),
    (
        "api/new-required-request-body",
        Severity::Error,
        "the request body becomes required, or a required one is added",
    ),
    (
        "api/removed-request-body",
        Severity::Error,
        "the request body is gone",
    ),
    (
        "api/removed-media-type",
        Severity::Error,
        "a request or response media type is gone",
    ),
    (
        "api/new-required-request-field",
        Severity::Error,
        "a new required request property, or one made required (not readOnly)",
    ),
    (
        "api/removed-request-field",
        Severity::Warning,
        "a request property is gone",
    ),
    (
        "api/retyped-request-field",
        Severity::Error,
        "a request body or property no longer accepts a type or format it did",
    ),
    (
        "api/request-became-not-nullable",
        Severity::Error,
        "a request body, property or parameter no longer accepts null",
    ),
    (
        "api/narrowed-enum",
        Severity::Error,
        "a request value accepts fewer enum or const values, or becomes an enum",
    ),
    (
        "api/narrowed-constraint",
        Severity::Error,
        "a request bound tightens: maxLength/maxItems/maximum/maxProperties lowered or set, minLength/minItems/minimum/minProperties raised or set, exclusive bounds, multipleOf, uniqueItems, additionalProperties: false",
    ),
    (
        "api/new-pattern",
        Severity::Error,
        "a request string gains a pattern",
    ),
    (
        "api/changed-pattern",
        Severity::Warning,
        "a request or response pattern changes (cannot be compared)",
    ),
    (
        "api/request-composition-narrowed",
        Severity::Error,
        "a request oneOf/anyOf loses an alternative, is wrapped in a oneOf, or gains an allOf part, if, then or else",
    ),
    (
        "api/removed-response-field",
        Severity::Error,
        "a response property is gone (a warning when it was optional, info when writeOnly)",
    ),
    (
        "api/response-field-became-optional",
        Severity::Error,
        "a required response property becomes optional",
    ),
    (
        "api/response-field-no-longer-write-only",
        Severity::Warning,
        "a required writeOnly response property stops being writeOnly",
    ),
    (
        "api/retyped-response-field",
        Severity::Error,
        "a response body or property may return a type or format it did not",
    ),
    (
        "api/response-became-nullable",
        Severity::Error,
        "a response body, property or header may be null",
    ),
    (
        "api/widened-response-enum",
        Severity::Warning,
        "a response value gains an enum value, or loses its enum or const",
    ),
    (
        "api/widened-response-constraint",
        Severity::Error,
        "a response bound loosens: maxLength/maxItems/maximum raised or unset, minLength/minItems/minimum lowered or unset, pattern removed, multipleOf, uniqueItems",
    ),
    (
        "api/response-composition-widened",
        Severity::Error,
        "a response oneOf/anyOf gains an alternative or is wrapped in one, or loses an allOf part, if, then or else",
    ),
    (
        "api/removed-response-header",
        Severity::Error,
        "a required response header is gone",
    ),
    (
        "api/removed-optional-response-header",
        Severity::Warning,
        "an optional response header is gone",
    ),
    (
        "api/response-header-became-optional",
        Severity::Error,
        "a required response header becomes optional",
    ),
    (
        "api/changed-auth",
        Severity::Error,
        "an operation stops accepting a security requirement it accepted (a scheme or scope added, an alternative removed), or a security scheme changes how clients authenticate",
    ),
    (
        "api/removed-auth",
        Severity::Warning,
        "an operation no longer requires any authentication",
    ),
    (
        "api/changed-default",
        Severity::Info,
        "a default value is added, changed or removed",
    ),
    ("api/added-path", Severity::Info, "a path is added"),
    (
        "api/added-operation",
        Severity::Info,
        "an operation is added",
    ),
    ("api/added-webhook", Severity::Info, "a webhook is added"),
    (
        "api/added-parameter",
        Severity::Info,
        "an optional parameter is added",
    ),
    (
        "api/added-media-type",
        Severity::Info,
        "a request or response media type is added",
    ),
    (
        "api/added-request-field",
        Severity::Info,
        "an optional request property is added",
    ),
    (
        "api/added-response-field",
        Severity::Info,
        "a response property is added",
    ),
    (
        "api/added-response",
        Severity::Info,
        "a response status is added",
    ),
];

/// The plugin's config schema. `rules` names only known rule ids (a test
/// keeps this list equal to [`RULES`]).
pub const CONFIG_SCHEMA: &str = r##"{
  "type": "object",
  "properties": {
    "report-additions": {"type": "boolean", "default": true,
                         "description": "report non-breaking changes (info findings)"},
    "today": {"type": "string", "pattern": "^[0-9]{4}-[0-9]{2}-[0-9]{2}$",
              "description": "the date (YYYY-MM-DD) x-sunset dates are compared with; plugins have no clock"},
    "rules": {
      "type": "object",
      "description": "per rule: off, or the level to report it at",
      "properties": {
        "api/removed-spec": {"$ref": "#/$defs/level"},
        "api/removed-path": {"$ref": "#/$defs/level"},
        "api/removed-operation": {"$ref": "#/$defs/level"},
        "api/removed-webhook": {"$ref": "#/$defs/level"},
        "api/removed-deprecated": {"$ref": "#/$defs/level"},
        "api/removed-before-sunset": {"$ref": "#/$defs/level"},
        "api/removed-response": {"$ref": "#/$defs/level"},
        "api/new-required-parameter": {"$ref": "#/$defs/level"},
        "api/removed-parameter": {"$ref": "#/$defs/level"},
        "api/retyped-parameter": {"$ref": "#/$defs/level"},
        "api/new-required-request-body": {"$ref": "#/$defs/level"},
        "api/removed-request-body": {"$ref": "#/$defs/level"},
        "api/removed-media-type": {"$ref": "#/$defs/level"},
        "api/new-required-request-field": {"$ref": "#/$defs/level"},
        "api/removed-request-field": {"$ref": "#/$defs/level"},
        "api/retyped-request-field": {"$ref": "#/$defs/level"},
        "api/request-became-not-nullable": {"$ref": "#/$defs/level"},
        "api/narrowed-enum": {"$ref": "#/$defs/level"},
        "api/narrowed-constraint": {"$ref": "#/$defs/level"},
        "api/new-pattern": {"$ref": "#/$defs/level"},
        "api/changed-pattern": {"$ref": "#/$defs/level"},
        "api/request-composition-narrowed": {"$ref": "#/$defs/level"},
        "api/removed-response-field": {"$ref": "#/$defs/level"},
        "api/response-field-became-optional": {"$ref": "#/$defs/level"},
        "api/response-field-no-longer-write-only": {"$ref": "#/$defs/level"},
        "api/retyped-response-field": {"$ref": "#/$defs/level"},
        "api/response-became-nullable": {"$ref": "#/$defs/level"},
        "api/widened-response-enum": {"$ref": "#/$defs/level"},
        "api/widened-response-constraint": {"$ref": "#/$defs/level"},
        "api/response-composition-widened": {"$ref": "#/$defs/level"},
        "api/removed-response-header": {"$ref": "#/$defs/level"},
        "api/removed-optional-response-header": {"$ref": "#/$defs/level"},
        "api/response-header-became-optional": {"$ref": "#/$defs/level"},
        "api/changed-auth": {"$ref": "#/$defs/level"},
        "api/removed-auth": {"$ref": "#/$defs/level"},
        "api/changed-default": {"$ref": "#/$defs/level"},
        "api/added-path": {"$ref": "#/$defs/level"},
        "api/added-operation": {"$ref": "#/$defs/level"},
        "api/added-webhook": {"$ref": "#/$defs/level"},
        "api/added-parameter": {"$ref": "#/$defs/level"},
        "api/added-media-type": {"$ref": "#/$defs/level"},
        "api/added-request-field": {"$ref": "#/$defs/level"},
        "api/added-response-field": {"$ref": "#/$defs/level"},
        "api/added-response": {"$ref": "#/$defs/level"}
      },
      "additionalProperties": false
    }
  },
  "additionalProperties": false,
  "$defs": {
    "level": {"enum": ["off", "error", "warning", "info"]}
  }
}"##;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct Config {
    #[serde(default = "yes")]
    report_additions: bool,
    #[serde(default)]
    rules: BTreeMap<String, Level>,
    /// The date `x-sunset` dates are compared with (plugins have no clock).
    today: Option<String>,
}

#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
enum Level {
    Off,
    Error,
    Warning,
    Info,
}

fn yes() -> bool {
    true
}

/// The level each rule reports at after the config.
struct Levels {
    /// Rules the config sets: `None` when off.
    configured: BTreeMap<&'static str, Option<Severity>>,
    report_additions: bool,
    /// `today` from the config, for `x-sunset` dates.
    today: Option<String>,
}

impl Levels {
    fn from_config(config: Config) -> Result<Levels, String> {
        let mut configured = BTreeMap::new();
        for (rule, level) in config.rules {
            let Some((id, _, _)) = RULES.iter().find(|(id, _, _)| *id == rule) else {
                return Err(format!(
                    "invalid config: unknown rule `{rule}` in `rules` (the rules are listed in the api-contract README)"
                ));
            };
            let level = match level {
                Level::Off => None,
                Level::Error => Some(Severity::Error),
                Level::Warning => Some(Severity::Warning),
                Level::Info => Some(Severity::Info),
            };
            configured.insert(*id, level);
        }
        if let Some(today) = &config.today
            && !is_date(today)
        {
            return Err(format!(
                "invalid config: `today` is {today:?}, not a YYYY-MM-DD date"
            ));
        }
        Ok(Levels {
            configured,
            report_additions: config.report_additions,
            today: config.today,
        })
    }

    /// The severity to report `rule` at, or `None` when it is silenced.
    fn of(&self, rule: &str) -> Option<Severity> {
        let default = RULES.iter().find(|(id, _, _)| *id == rule)?.1;
        self.at(rule, default)
    }

    /// As [`Levels::of`], for a finding whose level without config is
    /// `default` (a rule with two levels, such as a removed response field:
    /// error when it was required, warning when optional).
    fn at(&self, rule: &str, default: Severity) -> Option<Severity> {
        let severity = match self.configured.get(rule) {
            Some(configured) => (*configured)?,
            None => default,
        };
        (severity != Severity::Info || self.report_additions).then_some(severity)
    }
}

pub fn check(change: &Change, config: &str) -> Result<Report, String> {
    let config: Config = parse_config(config)?;
    let levels = Levels::from_config(config)?;
    let mut findings = Vec::new();
    let mut compared = 0;
    for doc in &change.documents {
        match doc.status {
            Status::Deleted => {
                if let Some(Ok(before)) = doc.parse_before()
                    && is_openapi(&before.value)
                    && let Some(severity) = levels.of("api/removed-spec")
                {
                    findings.push(
                        Finding::new(
                            "api/removed-spec",
                            severity,
                            format!("the API spec {} is deleted", doc.path),
                        )
                        .at(&doc.path),
                    );
                }
            }
            Status::Modified => {
                let (Some(Ok(before)), Some(Ok(after))) = (doc.parse_before(), doc.parse_after())
                else {
                    continue;
                };
                if !(is_openapi(&before.value) && is_openapi(&after.value)) {
                    continue;
                }
                compared += 1;
                let mut out = Findings {
                    doc,
                    before: &before,
                    after: &after,
                    levels: &levels,
                    refs_stable: spec::refs_stable(&before.value, &after.value),
                    same: std::collections::HashMap::new(),
                    findings: Vec::new(),
                };
                spec::compare(&mut out);
                findings.append(&mut out.findings);
            }
            _ => {}
        }
    }
    let breaking = findings
        .iter()
        .filter(|f| f.severity == Severity::Error)
        .count();
    Ok(Report::from_findings(
        findings,
        format!("{compared} OpenAPI document(s) compared, {breaking} breaking change(s)"),
    ))
}

/// `YYYY-MM-DD` (compared as text, which orders such dates).
fn is_date(text: &str) -> bool {
    let bytes = text.as_bytes();
    bytes.len() == 10
        && bytes.iter().enumerate().all(|(i, b)| match i {
            4 | 7 => *b == b'-',
            _ => b.is_ascii_digit(),
        })
}

fn is_openapi(value: &Value) -> bool {
    value
        .get("openapi")
        .and_then(Value::as_str)
        .is_some_and(|v| v.starts_with("3."))
}

/// Which version of the document a finding points into.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Side {
    Before,
    After,
}

/// Where the findings of one document pair go, leveled by the config.
struct Findings<'a> {
    doc: &'a Document,
    before: &'a Parsed,
    after: &'a Parsed,
    levels: &'a Levels,
    /// Everything outside `paths` and `webhooks` (components above all) is
    /// the same on both sides, so equal values with `$ref`s in them are
    /// equal after resolution too and need no walk.
    refs_stable: bool,
    /// (before pointer, after pointer) → whether the values there are
    /// equal once their `$ref`s are followed; see [`schema::same`].
    same: std::collections::HashMap<(String, String), bool>,
    findings: Vec<Finding>,
}

impl Findings<'_> {
    /// Reports `rule` at `pointer` in the `side` version, unless silenced.
    fn report(&mut self, rule: &str, side: Side, pointer: &str, message: String) {
        let Some(severity) = self.levels.of(rule) else {
            return;
        };
        self.push(rule, severity, side, pointer, message);
    }

    /// Reports `rule` at `default` (or the level the config sets).
    fn report_at(
        &mut self,
        rule: &str,
        default: Severity,
        side: Side,
        pointer: &str,
        message: String,
    ) {
        let Some(severity) = self.levels.at(rule, default) else {
            return;
        };
        self.push(rule, severity, side, pointer, message);
    }

    fn push(&mut self, rule: &str, severity: Severity, side: Side, pointer: &str, message: String) {
        let parsed = match side {
            Side::Before => self.before,
            Side::After => self.after,
        };
        self.findings
            .push(Finding::new(rule, severity, message).at_value(
                &self.doc.path,
                pointer,
                Some(parsed),
            ));
    }
}

#[cfg(test)]
mod tests;
