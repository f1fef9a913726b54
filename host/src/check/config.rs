//! Plugin configs checked by the host against the JSON Schema each plugin
//! declares in `info()`, before anything runs: a config the plugin would
//! refuse is a plan error at the config's own line and column (exit 65),
//! not a failed gate at run time.
//!
//! The schema comes from an untrusted plugin: it is read within a size
//! limit, compiled without any network or file access (no remote `$ref`),
//! and a schema that does not compile is the plugin's error (exit 67).

use std::collections::BTreeMap;
use std::path::Path;

use crate::check::plan::{Plan, PlanError};
use crate::check::{CheckError, LoadedPlugins};
use crate::runtime::call::CallOutcome;
use crate::runtime::change::MediaType;

/// The largest config schema cairn compiles.
pub const MAX_SCHEMA_BYTES: usize = 256 * 1024;

/// How many schema violations one error lists.
const SHOWN_VIOLATIONS: usize = 3;

/// One config of a plan, with where it is and whose it is.
struct ConfigUse<'p> {
    /// `checkpoint `x`, validator `y`` and the like.
    context: String,
    plugin: &'p str,
    config: &'p str,
    at: Option<&'p str>,
}

/// A schema violation: where in the config, and what.
#[derive(Debug, Clone, PartialEq)]
pub struct Violation {
    /// JSON pointer into the config (`""` for the config itself).
    pub pointer: String,
    pub message: String,
}

/// Checks every config of `plan` whose plugin is in `plugins` against the
/// plugin's declared schema. Plugins that declare none, or whose `info()`
/// does not answer, are not checked here (a broken plugin fails its call).
pub async fn check_configs(plan: &Plan, plugins: &LoadedPlugins) -> Result<(), CheckError> {
    let mut uses = Vec::new();
    for checkpoint in &plan.checkpoints {
        for validator in &checkpoint.validators {
            uses.push(ConfigUse {
                context: format!(
                    "checkpoint `{}`, validator `{}`",
                    checkpoint.name, validator.name
                ),
                plugin: &validator.plugin,
                config: &validator.config,
                at: validator.config_at.as_deref(),
            });
        }
        for experiment in &checkpoint.experiments {
            uses.push(ConfigUse {
                context: format!(
                    "checkpoint `{}`, experiment `{}`",
                    checkpoint.name, experiment.name
                ),
                plugin: &experiment.injector,
                config: &experiment.config,
                at: experiment.config_at.as_deref(),
            });
        }
    }
    for validator in &plan.verify {
        uses.push(ConfigUse {
            context: format!("[rollout] verify, validator `{}`", validator.name),
            plugin: &validator.plugin,
            config: &validator.config,
            at: validator.config_at.as_deref(),
        });
    }
    let mut schemas: BTreeMap<&str, Option<jsonschema::Validator>> = BTreeMap::new();
    for config_use in uses {
        let Some(plugin) = plugins.get(config_use.plugin) else {
            continue;
        };
        if !schemas.contains_key(config_use.plugin) {
            let limits = plan
                .plugins
                .get(config_use.plugin)
                .map(|entry| entry.limits)
                .unwrap_or_default();
            let schema = match plugin.info(&limits).await.outcome {
                CallOutcome::Completed(info) => info.config_schema,
                _ => None,
            };
            let compiled = match schema {
                None => None,
                Some(text) => Some(compile(&text).map_err(|message| CheckError::ConfigSchema {
                    plugin: config_use.plugin.to_owned(),
                    message,
                })?),
            };
            schemas.insert(config_use.plugin, compiled);
        }
        let Some(Some(schema)) = schemas.get(config_use.plugin) else {
            continue;
        };
        let config: serde_json::Value = match serde_json::from_str(config_use.config) {
            Ok(config) => config,
            // A plan's configs are JSON by construction; `--config` is
            // checked where it is read.
            Err(_) => continue,
        };
        let violations = violations(schema, &config);
        if violations.is_empty() {
            continue;
        }
        return Err(rejected(plan, &config_use, &violations));
    }
    Ok(())
}

/// A config as every plugin language reads it alike: whole-number floats
/// (`3.0`, `1e3`, `-0.0`) become integers; an integer beyond ±(2^53-1),
/// which a JavaScript plugin would round, is refused with its pointer.
pub fn canonical(value: serde_json::Value) -> Result<serde_json::Value, String> {
    canonical_at(value, "")
}

fn canonical_at(value: serde_json::Value, at: &str) -> Result<serde_json::Value, String> {
    use crate::check::plan::{MAX_SAFE_INTEGER, canonical_number};
    use serde_json::Value;
    match value {
        Value::Number(number) => {
            if let Some(i) = number.as_i64() {
                if i.unsigned_abs() > MAX_SAFE_INTEGER as u64 {
                    return Err(format!(
                        "config{at} is beyond ±(2^53-1), which not every plugin language reads exactly; quote it as a string"
                    ));
                }
                Ok(Value::from(i))
            } else if number.as_u64().is_some() {
                Err(format!(
                    "config{at} is beyond ±(2^53-1), which not every plugin language reads exactly; quote it as a string"
                ))
            } else {
                Ok(number.as_f64().map_or(Value::Null, canonical_number))
            }
        }
        Value::Array(items) => items
            .into_iter()
            .enumerate()
            .map(|(i, item)| canonical_at(item, &format!("{at}/{i}")))
            .collect::<Result<Vec<_>, _>>()
            .map(Value::Array),
        Value::Object(map) => map
            .into_iter()
            .map(|(key, item)| {
                let escaped = key.replace('~', "~0").replace('/', "~1");
                canonical_at(item, &format!("{at}/{escaped}")).map(|item| (key, item))
            })
            .collect::<Result<serde_json::Map<_, _>, _>>()
            .map(Value::Object),
        other => Ok(other),
    }
}

/// Compiles a plugin's schema text.
pub fn compile(text: &str) -> Result<jsonschema::Validator, String> {
    if text.len() > MAX_SCHEMA_BYTES {
        return Err(format!(
            "its config schema is {} bytes; cairn compiles at most {MAX_SCHEMA_BYTES}",
            text.len()
        ));
    }
    let schema: serde_json::Value = serde_json::from_str(text)
        .map_err(|err| format!("its config schema is not JSON: {err}"))?;
    jsonschema::options()
        .build(&schema)
        .map_err(|err| format!("its config schema is not a valid JSON Schema: {err}"))
}

/// What `schema` finds wrong with `config` (empty: it conforms).
pub fn violations(schema: &jsonschema::Validator, config: &serde_json::Value) -> Vec<Violation> {
    schema
        .iter_errors(config)
        .map(|err| Violation {
            pointer: err.instance_path().to_string(),
            message: err.to_string(),
        })
        .collect()
}

/// The error for a config the schema refuses: at its line in the plan when
/// the plan is a file, else naming the config.
fn rejected(plan: &Plan, config_use: &ConfigUse<'_>, violations: &[Violation]) -> CheckError {
    let first = &violations[0];
    let listed = violations
        .iter()
        .take(SHOWN_VIOLATIONS)
        .map(|v| format!("config{}: {}", v.pointer, v.message))
        .collect::<Vec<_>>()
        .join("; ");
    let more = violations.len().saturating_sub(SHOWN_VIOLATIONS);
    let message = format!(
        "{}: {listed}{} (the config schema of plugin `{}`)",
        config_use.context,
        if more > 0 {
            format!("; and {more} more")
        } else {
            String::new()
        },
        config_use.plugin
    );
    match config_use
        .at
        .and_then(|at| position_in_plan(&plan.path, at, &first.pointer))
    {
        Some((line, column)) => CheckError::Plan(PlanError::Invalid {
            path: plan.path.clone(),
            line,
            column,
            message,
        }),
        None => CheckError::ConfigRejected { message },
    }
}

/// The line and column, in the plan file, of the value at `pointer` inside
/// the config at `config_at` (the config itself when the value is not
/// there: a missing required key).
fn position_in_plan(path: &Path, config_at: &str, pointer: &str) -> Option<(usize, usize)> {
    let text = std::fs::read(path).ok()?;
    let exact = format!("{config_at}{pointer}");
    let found = crate::check::locate::locate(&MediaType::Toml, &text, &[&exact, config_at]);
    found
        .get(&exact)
        .or_else(|| found.get(config_at))
        .map(|p| (p.line as usize, p.column as usize))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_schema_finds_every_violation_with_its_pointer() {
        let schema = compile(
            r#"{"type": "object", "properties": {"max-steps": {"type": "integer", "minimum": 1}},
                "required": ["max-steps"], "additionalProperties": false}"#,
        )
        .expect("compiles");
        assert!(violations(&schema, &serde_json::json!({"max-steps": 3})).is_empty());
        // JSON Schema's integer is a number with no fraction: 3.0 is one.
        assert!(violations(&schema, &serde_json::json!({"max-steps": 3.0})).is_empty());
        let found = violations(&schema, &serde_json::json!({"max-steps": "4", "x": 1}));
        let pointers: Vec<&str> = found.iter().map(|v| v.pointer.as_str()).collect();
        assert!(pointers.contains(&"/max-steps"), "{found:?}");
        assert!(
            found
                .iter()
                .any(|v| v.message.contains("\"4\" is not of type \"integer\"")),
            "{found:?}"
        );
    }

    #[test]
    fn a_schema_that_is_not_json_or_not_a_schema_or_too_large_is_refused() {
        assert!(compile("{").unwrap_err().contains("not JSON"));
        assert!(
            compile(r#"{"type": 12}"#)
                .unwrap_err()
                .contains("not a valid JSON Schema")
        );
        let huge = format!("{{\"description\": \"{}\"}}", "x".repeat(MAX_SCHEMA_BYTES));
        assert!(compile(&huge).unwrap_err().contains("at most"));
    }

    #[test]
    fn whole_floats_become_integers_and_unsafe_integers_are_refused_by_pointer() {
        let config: serde_json::Value =
            serde_json::from_str(r#"{"a": 3.0, "b": [1e3, -0.0, 2.5], "c": 9007199254740991}"#)
                .unwrap();
        assert_eq!(
            canonical(config).unwrap().to_string(),
            r#"{"a":3,"b":[1000,0,2.5],"c":9007199254740991}"#
        );
        let big: serde_json::Value =
            serde_json::from_str(r#"{"x/y": [9007199254740992]}"#).unwrap();
        assert!(
            canonical(big)
                .unwrap_err()
                .starts_with("config/x~1y/0 is beyond")
        );
        let negative: serde_json::Value = serde_json::from_str("-9007199254740992").unwrap();
        assert!(canonical(negative).is_err());
    }

    #[test]
    fn a_remote_reference_is_not_fetched() {
        let err = compile(r#"{"$ref": "https://example.com/schema.json"}"#);
        assert!(err.is_err(), "a remote $ref must not resolve");
    }
}
