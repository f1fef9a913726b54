//! `retry-policy`: in workflow definitions (JSON or YAML), every step that
//! calls a connector must have bounded retries (max attempts ≤ N), a
//! backoff that is exponential and capped and never zero, a timeout, and an
//! idempotency key when the call is not idempotent. Field names match in
//! any of `max_attempts`, `maxAttempts`, `max-attempts`.

use serde::Deserialize;
use serde_json::{Map, Value};

use crate::glob;
use crate::model::{Change, Finding, Report, Severity, parse_config};
use crate::parse::Parsed;
use crate::pointer;

pub const CONFIG_SCHEMA: &str = r#"{
  "type": "object",
  "properties": {
    "documents": {"type": "array", "items": {"type": "string"}, "default": ["*"],
                  "description": "path patterns of the workflow documents to check"},
    "max-attempts": {"type": "integer", "minimum": 1, "default": 5},
    "max-backoff-ms": {"type": "integer", "minimum": 1, "default": 300000,
                       "description": "highest allowed backoff cap"},
    "max-timeout-ms": {"type": "integer", "minimum": 1, "default": 300000},
    "non-idempotent-methods": {"type": "array", "items": {"type": "string"}, "default": ["POST", "PATCH"]},
    "non-idempotent-operations": {"type": "array", "items": {"type": "string"},
                                  "default": ["create*", "insert*", "send*", "charge*", "append*", "post*"],
                                  "description": "patterns of connector operation names that are not idempotent"}
  },
  "additionalProperties": false
}"#;

/// Default `max-attempts`: beyond five attempts a retry storm costs more
/// than the failure it hides.
const DEFAULT_MAX_ATTEMPTS: u64 = 5;
/// Default `max-backoff-ms` and `max-timeout-ms`: five minutes.
const DEFAULT_MAX_MS: u64 = 300_000;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct Config {
    #[serde(default = "all_documents")]
    documents: Vec<String>,
    #[serde(default = "default_max_attempts")]
    max_attempts: u64,
    #[serde(default = "default_max_ms")]
    max_backoff_ms: u64,
    #[serde(default = "default_max_ms")]
    max_timeout_ms: u64,
    #[serde(default = "default_methods")]
    non_idempotent_methods: Vec<String>,
    #[serde(default = "default_operations")]
    non_idempotent_operations: Vec<String>,
}

fn all_documents() -> Vec<String> {
    vec!["*".into()]
}
fn default_max_attempts() -> u64 {
    DEFAULT_MAX_ATTEMPTS
}
fn default_max_ms() -> u64 {
    DEFAULT_MAX_MS
}
fn default_methods() -> Vec<String> {
    vec!["POST".into(), "PATCH".into()]
}
fn default_operations() -> Vec<String> {
    ["create*", "insert*", "send*", "charge*", "append*", "post*"]
        .map(String::from)
        .to_vec()
}

const RETRY: &[&str] = &["retry", "retrypolicy", "retries"];
const ATTEMPTS: &[&str] = &["maxattempts", "attempts", "maxretries", "max"];
const BACKOFF: &[&str] = &["backoff", "strategy", "backofftype"];
const DELAY: &[&str] = &[
    "initialdelayms",
    "delayms",
    "initialintervalms",
    "intervalms",
    "delay",
    "initialdelay",
];
const CAP: &[&str] = &[
    "maxdelayms",
    "maxintervalms",
    "capms",
    "maxbackoffms",
    "maxdelay",
];
const TIMEOUT: &[&str] = &["timeoutms", "timeout"];
const IDEMPOTENCY: &[&str] = &["idempotencykey"];
const METHOD: &[&str] = &["method", "httpmethod"];
const OPERATION: &[&str] = &["operation", "action"];

/// `max_attempts`, `maxAttempts` and `max-attempts` are one name.
fn normalize(key: &str) -> String {
    key.chars()
        .filter(|c| *c != '_' && *c != '-')
        .flat_map(char::to_lowercase)
        .collect()
}

/// The first member of `object` whose normalized name is in `names`.
fn field<'v>(object: &'v Map<String, Value>, names: &[&str]) -> Option<(&'v String, &'v Value)> {
    object
        .iter()
        .find(|(key, _)| names.contains(&normalize(key).as_str()))
}

pub fn check(change: &Change, config: &str) -> Result<Report, String> {
    let config: Config = parse_config(config)?;
    if config.max_attempts == 0 {
        return Err("invalid config: max-attempts must be at least 1".into());
    }
    let mut findings = Vec::new();
    let mut steps = 0;
    for doc in change
        .documents
        .iter()
        .filter(|d| d.is_changed() && glob::any(&config.documents, &d.path))
    {
        if !matches!(
            doc.media_type.as_str(),
            "application/json" | "application/yaml"
        ) {
            continue;
        }
        let Some(Ok(parsed)) = doc.parse_after() else {
            continue;
        };
        let mut walk = Walk {
            path: &doc.path,
            parsed: &parsed,
            config: &config,
            findings: &mut findings,
            steps: 0,
        };
        walk.value(&parsed.value, "", 0);
        steps += walk.steps;
    }
    let count = findings.len();
    Ok(Report::from_findings(
        findings,
        format!("{steps} connector step(s) checked, {count} finding(s)"),
    ))
}

/// Nesting depth the search for steps goes to.
const MAX_DEPTH: usize = 128;

struct Walk<'a> {
    path: &'a str,
    parsed: &'a Parsed,
    config: &'a Config,
    findings: &'a mut Vec<Finding>,
    steps: usize,
}

impl Walk<'_> {
    fn push(&mut self, rule: &str, severity: Severity, at: &str, message: String, hint: &str) {
        self.findings.push(
            Finding::new(format!("retry/{rule}"), severity, message)
                .at_value(self.path, at, Some(self.parsed))
                .hint(hint),
        );
    }

    fn value(&mut self, value: &Value, at: &str, depth: usize) {
        if depth > MAX_DEPTH {
            return;
        }
        match value {
            Value::Object(object) => {
                if object.keys().any(|k| normalize(k) == "connector") {
                    self.step(object, at);
                }
                for (key, child) in object {
                    self.value(child, &pointer::join(at, key), depth + 1);
                }
            }
            Value::Array(items) => {
                for (i, item) in items.iter().enumerate() {
                    self.value(item, &pointer::join_index(at, i), depth + 1);
                }
            }
            _ => {}
        }
    }

    fn step(&mut self, step: &Map<String, Value>, at: &str) {
        self.steps += 1;
        let name = step
            .get("id")
            .or_else(|| step.get("name"))
            .map(|v| {
                v.as_str()
                    .map(String::from)
                    .unwrap_or_else(|| v.to_string())
            })
            .unwrap_or_else(|| at.to_owned());
        let timeout = field(step, TIMEOUT);
        let retry = field(step, RETRY);
        self.timeout(
            &name,
            at,
            timeout.or_else(|| {
                retry
                    .and_then(|(_, r)| r.as_object())
                    .and_then(|r| field(r, TIMEOUT))
            }),
        );
        let Some((retry_key, retry)) = retry else {
            self.push(
                "missing-retry",
                Severity::Error,
                at,
                format!("step {name} calls a connector without a retry policy"),
                "add `retry` with `max_attempts`, an exponential `backoff` and its cap",
            );
            return;
        };
        let retry_at = pointer::join(at, retry_key);
        let attempts = match retry {
            Value::Object(retry) => {
                let attempts = field(retry, ATTEMPTS);
                self.attempts(&name, &retry_at, attempts)
            }
            Value::Number(_) | Value::Null | Value::String(_) => {
                self.attempts(&name, at, Some((retry_key, retry)))
            }
            Value::Bool(false) => Some(1),
            _ => None,
        };
        let retries = attempts.is_none_or(|n| n > 1);
        if let (true, Value::Object(retry)) = (retries, retry) {
            self.backoff(&name, &retry_at, retry);
        }
        if retries {
            self.idempotency(&name, at, step);
        }
    }

    /// Checks max attempts (a member of the object at `container_at`);
    /// returns the bound, `None` when unbounded.
    fn attempts(
        &mut self,
        name: &str,
        container_at: &str,
        attempts: Option<(&String, &Value)>,
    ) -> Option<u64> {
        let Some((key, value)) = attempts else {
            self.push(
                "unbounded",
                Severity::Error,
                container_at,
                format!("step {name} retries without a maximum number of attempts"),
                "set `max_attempts`",
            );
            return None;
        };
        let at = pointer::join(container_at, key);
        match value.as_f64() {
            Some(n) if n >= 1.0 => {
                let n = n as u64;
                if n > self.config.max_attempts {
                    self.push(
                        "too-many-attempts",
                        Severity::Error,
                        &at,
                        format!(
                            "step {name} retries up to {n} times (at most {} allowed)",
                            self.config.max_attempts
                        ),
                        "lower `max_attempts`",
                    );
                }
                Some(n)
            }
            _ => {
                self.push(
                    "unbounded",
                    Severity::Error,
                    &at,
                    format!("step {name} has max attempts {value}, which means unbounded retries"),
                    "set `max_attempts` to a positive bound",
                );
                None
            }
        }
    }

    fn backoff(&mut self, name: &str, retry_at: &str, retry: &Map<String, Value>) {
        let backoff = field(retry, BACKOFF);
        let (kind, settings, backoff_at) = match backoff {
            None => {
                self.push(
                    "no-backoff",
                    Severity::Error,
                    retry_at,
                    format!("step {name} retries back to back without a backoff"),
                    "add `backoff: exponential` with an initial delay and a cap",
                );
                return;
            }
            Some((key, Value::String(kind))) => (
                kind.to_ascii_lowercase(),
                retry,
                pointer::join(retry_at, key),
            ),
            Some((key, Value::Object(object))) => {
                let kind = field(object, &["type", "kind", "strategy"])
                    .and_then(|(_, v)| v.as_str())
                    .unwrap_or("")
                    .to_ascii_lowercase();
                (kind, object, pointer::join(retry_at, key))
            }
            Some((key, _)) => (String::new(), retry, pointer::join(retry_at, key)),
        };
        // The delay and cap may sit in the backoff object or next to it.
        let lookup = |names: &[&str]| field(settings, names).or_else(|| field(retry, names));
        let settings_at = |key: &String| {
            if std::ptr::eq(settings, retry) {
                pointer::join(retry_at, key)
            } else {
                pointer::join(&backoff_at, key)
            }
        };
        if kind != "exponential" {
            self.push(
                "not-exponential",
                Severity::Warning,
                &backoff_at,
                format!(
                    "step {name} uses {} backoff, not exponential",
                    if kind.is_empty() { "an unnamed" } else { &kind }
                ),
                "use exponential backoff so retries thin out under load",
            );
        }
        if let Some((key, delay)) = lookup(DELAY)
            && delay.as_f64().is_some_and(|d| d <= 0.0)
        {
            self.push(
                "zero-delay",
                Severity::Error,
                &settings_at(key),
                format!("step {name} retries with zero delay"),
                "start the backoff at 100 ms or more",
            );
        }
        if kind == "exponential" {
            match lookup(CAP) {
                None => self.push(
                    "uncapped-backoff",
                    Severity::Warning,
                    &backoff_at,
                    format!("step {name} has exponential backoff without a cap"),
                    "set `max_delay_ms`",
                ),
                Some((key, cap)) => {
                    if cap
                        .as_f64()
                        .is_none_or(|c| c <= 0.0 || c > self.config.max_backoff_ms as f64)
                    {
                        self.push(
                            "uncapped-backoff",
                            Severity::Warning,
                            &settings_at(key),
                            format!(
                                "step {name} caps its backoff at {cap} ms (at most {} allowed)",
                                self.config.max_backoff_ms
                            ),
                            "lower `max_delay_ms`",
                        );
                    }
                }
            }
        }
    }

    fn timeout(&mut self, name: &str, step_at: &str, timeout: Option<(&String, &Value)>) {
        let Some((key, value)) = timeout else {
            self.push(
                "missing-timeout",
                Severity::Error,
                step_at,
                format!("step {name} calls a connector without a timeout"),
                "set `timeout_ms`",
            );
            return;
        };
        let at = pointer::join(step_at, key);
        let at = if self.parsed.get(&at).is_some() {
            at
        } else {
            step_at.to_owned()
        };
        match value.as_f64() {
            Some(ms) if ms > 0.0 && ms <= self.config.max_timeout_ms as f64 => {}
            Some(ms) if ms > 0.0 => self.push(
                "long-timeout",
                Severity::Warning,
                &at,
                format!(
                    "step {name} waits up to {ms} ms (at most {} allowed)",
                    self.config.max_timeout_ms
                ),
                "lower `timeout_ms`",
            ),
            _ => self.push(
                "missing-timeout",
                Severity::Error,
                &at,
                format!("step {name} has timeout {value}, which never times out"),
                "set `timeout_ms` to a positive value",
            ),
        }
    }

    fn idempotency(&mut self, name: &str, at: &str, step: &Map<String, Value>) {
        let method = field(step, METHOD)
            .and_then(|(_, m)| m.as_str())
            .map(str::to_ascii_uppercase);
        let operation = field(step, OPERATION)
            .and_then(|(_, o)| o.as_str())
            .map(String::from);
        let non_idempotent = method.as_ref().is_some_and(|m| {
            self.config
                .non_idempotent_methods
                .iter()
                .any(|n| n.eq_ignore_ascii_case(m))
        }) || operation.as_ref().is_some_and(|o| {
            let o = o.to_ascii_lowercase();
            self.config
                .non_idempotent_operations
                .iter()
                .any(|p| glob::matches(&p.to_ascii_lowercase(), &o))
        });
        if !non_idempotent {
            return;
        }
        let has_key = field(step, IDEMPOTENCY).is_some()
            || ["headers", "request"].iter().any(|container| {
                step.get(*container)
                    .and_then(Value::as_object)
                    .is_some_and(|inner| {
                        field(inner, IDEMPOTENCY).is_some()
                            || inner
                                .get("headers")
                                .and_then(Value::as_object)
                                .is_some_and(|h| field(h, IDEMPOTENCY).is_some())
                    })
            });
        if !has_key {
            let what = operation.or(method).unwrap_or_default();
            self.push(
                "missing-idempotency-key",
                Severity::Error,
                at,
                format!(
                    "step {name} retries a non-idempotent call ({what}) without an idempotency key"
                ),
                "set `idempotency_key` from a stable id of the triggering record",
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Document;

    fn run(workflow: &str) -> Vec<String> {
        let change = Change {
            documents: vec![Document::new(
                "w.yaml",
                "application/yaml",
                None,
                Some(workflow.into()),
            )],
            metrics: Default::default(),
        };
        check(&change, "{}")
            .unwrap()
            .findings
            .into_iter()
            .map(|f| f.rule)
            .collect()
    }

    #[test]
    fn a_well_configured_step_passes() {
        let rules = run(
            "steps:\n  - id: a\n    connector: crm\n    method: POST\n    idempotency_key: '{{ order.id }}'\n    timeout_ms: 5000\n    retry:\n      max_attempts: 3\n      backoff: {type: exponential, initial_delay_ms: 200, max_delay_ms: 10000}\n",
        );
        assert!(rules.is_empty(), "{rules:?}");
    }

    #[test]
    fn unbounded_zero_delay_retries_are_flagged() {
        let rules = run(
            "steps:\n  - connector: crm\n    operation: createContact\n    timeoutMs: 100\n    retry: {maxAttempts: -1, backoff: fixed, delay_ms: 0}\n",
        );
        assert_eq!(
            rules,
            [
                "retry/unbounded",
                "retry/not-exponential",
                "retry/zero-delay",
                "retry/missing-idempotency-key"
            ]
        );
    }
}
