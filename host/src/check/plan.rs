//! Checkpoint plans: the TOML model (plugins, their limits and pins, ordered
//! checkpoints with validators and gate rules), resolution of paths relative
//! to the plan, and errors that name the file, line and column.

use std::collections::{BTreeMap, BTreeSet};
use std::ops::Range;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use toml::Spanned;

use crate::check::gate::OnError;
use crate::runtime::digest::Sha256Digest;
use crate::runtime::limits::{LimitOutOfRange, LimitSettings, Limits};

/// What an `inconclusive` verdict does to a checkpoint's gate.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum InconclusivePolicy {
    /// The gate is inconclusive (exit code 3) unless something failed.
    #[default]
    Inconclusive,
    /// Treat it as a failure (fail closed).
    Fail,
    /// Treat it as a warning.
    Warn,
    /// Treat it as a pass.
    Pass,
}

/// How a checkpoint turns verdicts into a decision.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub struct GateRules {
    /// Warnings fail the gate (exit code 2).
    pub fail_on_warn: bool,
    pub inconclusive: InconclusivePolicy,
}

/// A plugin declared in the plan, with its path resolved.
#[derive(Debug, Clone, PartialEq)]
pub struct PluginEntry {
    pub name: String,
    /// A component file, or a Rust plugin's Cargo project (built on use).
    pub path: PathBuf,
    /// The pin: loading refuses any other digest.
    pub sha256: Option<Sha256Digest>,
    /// The limits as the plan writes them (`timeout-ms`, ...).
    pub limit_settings: LimitSettings,
    /// The limits every call of this plugin runs under.
    pub limits: Limits,
    pub on_error: OnError,
}

/// One validator to run at a checkpoint.
#[derive(Debug, Clone, PartialEq)]
pub struct ValidatorEntry {
    /// Name in reports; the plugin's name unless the plan gives one.
    pub name: String,
    pub plugin: String,
    /// An advisory validator can warn but never fail the gate.
    pub advisory: bool,
    /// The config handed to the plugin, as JSON text.
    pub config: String,
}

#[derive(Debug, Clone, PartialEq)]
pub struct CheckpointEntry {
    pub name: String,
    pub index: u32,
    pub environment: String,
    pub rollout_percent: u8,
    pub rules: GateRules,
    pub validators: Vec<ValidatorEntry>,
}

/// A checked plan: every reference resolves and every value is in range.
#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    /// The plan file.
    pub path: PathBuf,
    pub plugins: BTreeMap<String, PluginEntry>,
    /// In rollout order.
    pub checkpoints: Vec<CheckpointEntry>,
}

/// The checkpoint of an ad-hoc plan ([`Plan::ad_hoc`]).
#[derive(Debug, Clone, PartialEq)]
pub struct AdHocCheckpoint {
    pub name: String,
    /// Defaults to the checkpoint's name.
    pub environment: Option<String>,
    pub rollout_percent: u8,
    pub rules: GateRules,
    /// Config handed to every plugin, as JSON text.
    pub config: String,
    pub limit_settings: LimitSettings,
    pub limits: Limits,
    pub on_error: OnError,
}

impl Default for AdHocCheckpoint {
    fn default() -> Self {
        Self {
            name: "preflight".to_owned(),
            environment: None,
            rollout_percent: 0,
            rules: GateRules::default(),
            config: "{}".to_owned(),
            limit_settings: LimitSettings::default(),
            limits: Limits::default(),
            on_error: OnError::default(),
        }
    }
}

/// A plugin of an ad-hoc plan: a component file or a Cargo project, with
/// its own config and limits where they differ from the checkpoint's.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct AdHocPlugin {
    pub path: PathBuf,
    pub sha256: Option<Sha256Digest>,
    /// Config (JSON text) in place of the checkpoint's.
    pub config: Option<String>,
    /// Limits in place of the checkpoint's.
    pub limits: Option<Limits>,
}

impl AdHocPlugin {
    pub fn new(path: impl Into<PathBuf>) -> Self {
        Self {
            path: path.into(),
            ..Self::default()
        }
    }
}

/// Why a plan could not be used.
#[derive(Debug, thiserror::Error)]
pub enum PlanError {
    #[error("cannot read plan {}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{}:{line}:{column}: {message}", path.display())]
    Invalid {
        path: PathBuf,
        /// 1-based.
        line: usize,
        /// 1-based, in characters.
        column: usize,
        message: String,
    },
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct PlanFile {
    #[serde(default)]
    gate: GateFile,
    #[serde(default)]
    plugins: BTreeMap<String, PluginFile>,
    #[serde(default, rename = "checkpoint")]
    checkpoints: Vec<CheckpointFile>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct GateFile {
    fail_on_warn: Option<bool>,
    inconclusive: Option<InconclusivePolicy>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct PluginFile {
    path: Spanned<String>,
    sha256: Option<Spanned<String>>,
    limits: Option<Spanned<LimitSettings>>,
    #[serde(default)]
    on_error: OnError,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct CheckpointFile {
    name: Spanned<String>,
    environment: Option<String>,
    rollout_percent: Option<Spanned<u8>>,
    fail_on_warn: Option<bool>,
    inconclusive: Option<InconclusivePolicy>,
    #[serde(default)]
    validators: Vec<ValidatorFile>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct ValidatorFile {
    plugin: Spanned<String>,
    name: Option<Spanned<String>>,
    #[serde(default)]
    advisory: bool,
    config: Option<toml::Value>,
}

impl Plan {
    /// Reads and checks the plan at `path`.
    pub fn load(path: &Path) -> Result<Plan, PlanError> {
        let text = std::fs::read_to_string(path).map_err(|source| PlanError::Read {
            path: path.to_owned(),
            source,
        })?;
        Plan::parse(path, &text)
    }

    /// Checks plan `text`; `path` names it in errors and anchors relative
    /// plugin paths.
    pub fn parse(path: &Path, text: &str) -> Result<Plan, PlanError> {
        let at = |span: Range<usize>, message: String| {
            let (line, column) = line_column(text, span.start);
            PlanError::Invalid {
                path: path.to_owned(),
                line,
                column,
                message,
            }
        };
        let file: PlanFile = toml::from_str(text)
            .map_err(|err| at(err.span().unwrap_or(0..0), err.message().to_owned()))?;
        let base = path.parent().unwrap_or(Path::new("."));

        let mut plugins = BTreeMap::new();
        for (name, plugin) in file.plugins {
            let (limit_settings, limits) = match &plugin.limits {
                Some(settings) => {
                    let limits = settings.get_ref().apply(Limits::default()).map_err(|err| {
                        at(settings.span(), format!("plugin `{name}`: limits.{err}"))
                    })?;
                    (*settings.get_ref(), limits)
                }
                None => (LimitSettings::default(), Limits::default()),
            };
            let sha256 =
                match plugin.sha256 {
                    Some(pin) => Some(pin.get_ref().parse::<Sha256Digest>().map_err(|err| {
                        at(pin.span(), format!("plugin `{name}`: sha256: {err}"))
                    })?),
                    None => None,
                };
            let resolved = base.join(plugin.path.get_ref());
            if !resolved.exists() {
                return Err(at(
                    plugin.path.span(),
                    format!("plugin `{name}`: {} does not exist", resolved.display()),
                ));
            }
            plugins.insert(
                name.clone(),
                PluginEntry {
                    name,
                    path: resolved,
                    sha256,
                    limit_settings,
                    limits,
                    on_error: plugin.on_error,
                },
            );
        }

        if file.checkpoints.is_empty() {
            return Err(at(0..0, "the plan has no [[checkpoint]]".to_owned()));
        }
        let defaults = GateRules {
            fail_on_warn: file.gate.fail_on_warn.unwrap_or(false),
            inconclusive: file.gate.inconclusive.unwrap_or_default(),
        };
        let mut checkpoints: Vec<CheckpointEntry> = Vec::new();
        let mut first_seen: BTreeMap<String, usize> = BTreeMap::new();
        let mut used_plugins = BTreeSet::new();
        for (index, checkpoint) in file.checkpoints.into_iter().enumerate() {
            let name = checkpoint.name.get_ref().clone();
            if name.trim().is_empty() {
                return Err(at(
                    checkpoint.name.span(),
                    "checkpoint name is empty".to_owned(),
                ));
            }
            if let Some(line) = first_seen.get(&name) {
                return Err(at(
                    checkpoint.name.span(),
                    format!("duplicate checkpoint name `{name}` (first defined on line {line})"),
                ));
            }
            first_seen.insert(
                name.clone(),
                line_column(text, checkpoint.name.span().start).0,
            );
            let rollout_percent = match checkpoint.rollout_percent {
                Some(percent) if *percent.get_ref() > 100 => {
                    return Err(at(
                        percent.span(),
                        format!(
                            "checkpoint `{name}`: rollout-percent must be 0..=100, got {}",
                            percent.get_ref()
                        ),
                    ));
                }
                Some(percent) => *percent.get_ref(),
                None => 0,
            };
            let mut validators: Vec<ValidatorEntry> = Vec::new();
            for validator in checkpoint.validators {
                let plugin = validator.plugin.get_ref();
                if !plugins.contains_key(plugin) {
                    let known: Vec<&str> = plugins.keys().map(String::as_str).collect();
                    return Err(at(
                        validator.plugin.span(),
                        format!(
                            "checkpoint `{name}`: unknown plugin `{plugin}` (plugins in this plan: {})",
                            if known.is_empty() {
                                "none".to_owned()
                            } else {
                                known.join(", ")
                            }
                        ),
                    ));
                }
                used_plugins.insert(plugin.clone());
                let (report_name, name_span) = match &validator.name {
                    Some(given) => (given.get_ref().clone(), given.span()),
                    None => (plugin.clone(), validator.plugin.span()),
                };
                if validators.iter().any(|v| v.name == report_name) {
                    return Err(at(
                        name_span,
                        format!(
                            "checkpoint `{name}`: validator `{report_name}` appears twice; give one a `name`"
                        ),
                    ));
                }
                let config = match &validator.config {
                    Some(value) => toml_to_json(value).to_string(),
                    None => "{}".to_owned(),
                };
                validators.push(ValidatorEntry {
                    name: report_name,
                    plugin: plugin.clone(),
                    advisory: validator.advisory,
                    config,
                });
            }
            checkpoints.push(CheckpointEntry {
                environment: checkpoint.environment.unwrap_or_else(|| name.clone()),
                name,
                index: u32::try_from(index).unwrap_or(u32::MAX),
                rollout_percent,
                rules: GateRules {
                    fail_on_warn: checkpoint.fail_on_warn.unwrap_or(defaults.fail_on_warn),
                    inconclusive: checkpoint.inconclusive.unwrap_or(defaults.inconclusive),
                },
                validators,
            });
        }
        for unused in plugins.keys().filter(|name| !used_plugins.contains(*name)) {
            tracing::warn!(plan = %path.display(), plugin = unused, "plugin is declared but no checkpoint uses it");
        }
        Ok(Plan {
            path: path.to_owned(),
            plugins,
            checkpoints,
        })
    }

    pub fn checkpoint(&self, name: &str) -> Option<&CheckpointEntry> {
        self.checkpoints.iter().find(|c| c.name == name)
    }

    /// Whether any plugin asks for a fuel budget (the runtime must meter it).
    pub fn needs_fuel(&self) -> bool {
        self.plugins.values().any(|p| p.limits.fuel.is_some())
    }

    /// The plan with `overrides` (the command line's limit flags) given
    /// precedence over every plugin's own settings, one setting at a time,
    /// through the same parser and range checks as the plan.
    pub fn with_limit_overrides(
        mut self,
        overrides: &LimitSettings,
    ) -> Result<Plan, LimitOutOfRange> {
        if overrides.is_empty() {
            return Ok(self);
        }
        for entry in self.plugins.values_mut() {
            entry.limit_settings = entry.limit_settings.overridden_by(overrides);
            entry.limits = entry.limit_settings.apply(Limits::default())?;
        }
        Ok(self)
    }

    /// One checkpoint that runs every plugin given, each with the same
    /// config (JSON text), limits and `on-error`: the plan of
    /// `cairn validate`, of benchmarks and tests. Plugins are named after
    /// their file stems, made unique with `-2`, `-3`...
    pub fn ad_hoc(checkpoint: AdHocCheckpoint, plugins: Vec<AdHocPlugin>) -> Plan {
        let mut entries = BTreeMap::new();
        let mut validators = Vec::new();
        for plugin in plugins {
            let stem = plugin.path.file_stem().map_or_else(
                || plugin.path.display().to_string(),
                |s| s.to_string_lossy().into_owned(),
            );
            let mut name = stem.clone();
            let mut n = 2;
            while entries.contains_key(&name) {
                name = format!("{stem}-{n}");
                n += 1;
            }
            entries.insert(
                name.clone(),
                PluginEntry {
                    name: name.clone(),
                    path: plugin.path,
                    sha256: plugin.sha256,
                    limit_settings: checkpoint.limit_settings,
                    limits: plugin.limits.unwrap_or(checkpoint.limits),
                    on_error: checkpoint.on_error,
                },
            );
            validators.push(ValidatorEntry {
                name: name.clone(),
                plugin: name,
                advisory: false,
                config: plugin.config.unwrap_or_else(|| checkpoint.config.clone()),
            });
        }
        Plan {
            path: PathBuf::from("(command line)"),
            plugins: entries,
            checkpoints: vec![CheckpointEntry {
                environment: checkpoint
                    .environment
                    .unwrap_or_else(|| checkpoint.name.clone()),
                name: checkpoint.name,
                index: 0,
                rollout_percent: checkpoint.rollout_percent,
                rules: checkpoint.rules,
                validators,
            }],
        }
    }
}

/// TOML values as JSON; datetimes become RFC 3339 strings.
pub fn toml_to_json(value: &toml::Value) -> serde_json::Value {
    use serde_json::Value as Json;
    match value {
        toml::Value::String(s) => Json::String(s.clone()),
        toml::Value::Integer(i) => Json::from(*i),
        toml::Value::Float(f) => serde_json::Number::from_f64(*f).map_or(Json::Null, Json::Number),
        toml::Value::Boolean(b) => Json::Bool(*b),
        toml::Value::Datetime(d) => Json::String(d.to_string()),
        toml::Value::Array(items) => Json::Array(items.iter().map(toml_to_json).collect()),
        toml::Value::Table(table) => Json::Object(
            table
                .iter()
                .map(|(key, value)| (key.clone(), toml_to_json(value)))
                .collect(),
        ),
    }
}

/// 1-based line and column (in characters) of byte `offset` in `text`.
pub fn line_column(text: &str, offset: usize) -> (usize, usize) {
    let mut offset = offset.min(text.len());
    while !text.is_char_boundary(offset) {
        offset -= 1;
    }
    let before = &text[..offset];
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, column)
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn parse(text: &str) -> Result<Plan, PlanError> {
        Plan::parse(
            Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("cairn.toml")
                .as_path(),
            text,
        )
    }

    fn position(err: PlanError) -> (usize, usize, String) {
        match err {
            PlanError::Invalid {
                line,
                column,
                message,
                ..
            } => (line, column, message),
            other => panic!("{other}"),
        }
    }

    const PLUGIN: &str = "[plugins.p]\npath = \"src\"\n";

    #[test]
    fn full_plan_resolves_paths_limits_rules_and_config() {
        let text = r#"
[gate]
fail-on-warn = true

[plugins.p]
path = "src"
sha256 = "sha256:ABABABABABABABABABABABABABABABABABABABABABABABABABABABABABABABAB"
on-error = "warn"
limits = { timeout-ms = 250, memory-mb = 32, fuel = 5000, output-kb = 8, max-findings = 10 }

[[checkpoint]]
name = "canary"
environment = "production"
rollout-percent = 5
inconclusive = "fail"
validators = [
  { plugin = "p", config = { allow = ["a*"], when = 1979-05-27T07:32:00Z } },
  { plugin = "p", name = "p-advisory", advisory = true },
]
"#;
        let plan = parse(text).unwrap();
        let plugin = &plan.plugins["p"];
        assert!(plugin.path.ends_with("src"));
        assert_eq!(plugin.sha256.map(|d| d.to_hex()), Some("ab".repeat(32)));
        assert_eq!(plugin.on_error, OnError::Warn);
        assert_eq!(plugin.limits.timeout, Duration::from_millis(250));
        assert_eq!(plugin.limits.memory_bytes, 32 << 20);
        assert_eq!(
            (
                plugin.limits.fuel,
                plugin.limits.output_bytes,
                plugin.limits.max_findings
            ),
            (Some(5000), 8192, 10)
        );
        let checkpoint = &plan.checkpoints[0];
        assert_eq!(
            (checkpoint.environment.as_str(), checkpoint.rollout_percent),
            ("production", 5)
        );
        assert_eq!(
            checkpoint.rules,
            GateRules {
                fail_on_warn: true,
                inconclusive: InconclusivePolicy::Fail
            }
        );
        assert_eq!(
            checkpoint.validators[0].config,
            r#"{"allow":["a*"],"when":"1979-05-27T07:32:00Z"}"#
        );
        assert_eq!(checkpoint.validators[1].name, "p-advisory");
        assert!(checkpoint.validators[1].advisory);
        assert!(plan.needs_fuel());
    }

    #[test]
    fn unknown_key_is_reported_at_its_line_and_column() {
        let text = format!("{PLUGIN}\n[[checkpoint]]\nname = \"a\"\ncolour = \"red\"\n");
        let (line, column, message) = position(parse(&text).unwrap_err());
        assert_eq!((line, column), (6, 1), "{message}");
        assert!(message.contains("colour"), "{message}");
    }

    #[test]
    fn wrong_type_is_reported_at_the_value() {
        let text = format!("{PLUGIN}\n[[checkpoint]]\nname = \"a\"\nrollout-percent = \"five\"\n");
        let (line, column, _) = position(parse(&text).unwrap_err());
        assert_eq!((line, column), (6, 19));
    }

    #[test]
    fn unknown_plugin_is_reported_at_the_reference_with_the_known_names() {
        let text = format!(
            "{PLUGIN}\n[[checkpoint]]\nname = \"a\"\nvalidators = [{{ plugin = \"nope\" }}]\n"
        );
        let (line, column, message) = position(parse(&text).unwrap_err());
        assert_eq!((line, column), (6, 26));
        assert!(
            message.contains("unknown plugin `nope`")
                && message.contains("plugins in this plan: p"),
            "{message}"
        );
    }

    #[test]
    fn duplicate_checkpoint_name_points_at_the_second_and_names_the_first() {
        let text =
            format!("{PLUGIN}\n[[checkpoint]]\nname = \"a\"\n\n[[checkpoint]]\nname = \"a\"\n");
        let (line, column, message) = position(parse(&text).unwrap_err());
        assert_eq!((line, column), (8, 8));
        assert!(message.contains("first defined on line 5"), "{message}");
    }

    #[test]
    fn out_of_range_values_and_missing_files_are_located() {
        let text = format!("{PLUGIN}\n[[checkpoint]]\nname = \"a\"\nrollout-percent = 101\n");
        assert_eq!(position(parse(&text).unwrap_err()).0, 6);
        let text = "[plugins.p]\npath = \"missing.wasm\"\n[[checkpoint]]\nname = \"a\"\n";
        let (line, column, message) = position(parse(text).unwrap_err());
        assert_eq!((line, column), (2, 8));
        assert!(message.contains("does not exist"), "{message}");
        let text = "[plugins.p]\npath = \"src\"\nsha256 = \"abc\"\n[[checkpoint]]\nname = \"a\"\n";
        assert_eq!(position(parse(text).unwrap_err()).0, 3);
        let text = "[plugins.p]\npath = \"src\"\nlimits = { timeout-ms = 0 }\n[[checkpoint]]\nname = \"a\"\n";
        assert_eq!(position(parse(text).unwrap_err()).0, 3);
    }

    #[test]
    fn toml_syntax_error_is_located() {
        let text = format!("{PLUGIN}[[checkpoint]]\nname = \"a\n");
        let (line, column, _) = position(parse(&text).unwrap_err());
        assert_eq!((line, column), (4, 10));
    }

    #[test]
    fn same_validator_twice_needs_a_name() {
        let text = format!(
            "{PLUGIN}[[checkpoint]]\nname = \"a\"\nvalidators = [{{ plugin = \"p\" }}, {{ plugin = \"p\" }}]\n"
        );
        let (line, column, message) = position(parse(&text).unwrap_err());
        assert_eq!((line, column), (5, 44));
        assert!(
            message.contains("appears twice; give one a `name`"),
            "{message}"
        );
        let named = format!(
            "{PLUGIN}[[checkpoint]]\nname = \"a\"\nvalidators = [{{ plugin = \"p\" }}, {{ plugin = \"p\", name = \"q\" }}]\n"
        );
        assert_eq!(
            parse(&named).unwrap().checkpoints[0].validators[1].name,
            "q"
        );
    }

    #[test]
    fn plan_without_checkpoints_is_refused() {
        let (_, _, message) = position(parse(PLUGIN).unwrap_err());
        assert!(message.contains("no [[checkpoint]]"), "{message}");
    }

    #[test]
    fn line_column_counts_characters_not_bytes() {
        assert_eq!(line_column("ab\néé x", 7), (2, 3));
        assert_eq!(line_column("", 5), (1, 1));
    }
}
