//! Checkpoint plans: the TOML model (plugins, their limits and pins, ordered
//! checkpoints with experiments, validators and gate rules), resolution of
//! paths relative to the plan, and errors that name the file, line and
//! column.

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use toml::Spanned;

use crate::check::gate::OnError;
use crate::runtime::digest::Sha256Digest;
use crate::runtime::input::{MAX_PLAN_BYTES, read_limited};
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
    /// Where the config is in the plan file, as a JSON pointer into the
    /// plan (`/checkpoint/2/validators/0/config`; the validator's own
    /// pointer when it gives none), so a config the plugin's schema refuses
    /// is reported at its line. `None` for plans not read from a file.
    pub config_at: Option<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct CheckpointEntry {
    pub name: String,
    pub index: u32,
    pub environment: String,
    pub rollout_percent: u8,
    pub rules: GateRules,
    /// Run before the validators, which judge their metrics.
    pub experiments: Vec<ExperimentEntry>,
    pub validators: Vec<ValidatorEntry>,
}

impl CheckpointEntry {
    /// Whether the checkpoint targets production (its experiments need a
    /// recorded approval).
    pub fn is_production(&self) -> bool {
        self.environment.eq_ignore_ascii_case("production")
            || self.environment.eq_ignore_ascii_case("prod")
    }
}

/// Where an experiment's proxy sends traffic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UpstreamSpec {
    /// `http://host:port[/base]` or `https://...`.
    Url(String),
    /// `builtin:echo`: a small HTTP server cairn starts on loopback for the
    /// experiment's length (examples, trying an injector out).
    BuiltinEcho,
}

/// One route an experiment may fault: all given parts must match.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct RouteEntry {
    /// Methods (any when empty).
    #[serde(default)]
    pub methods: Vec<String>,
    /// Path glob (`/orders/*`); every path when absent.
    #[serde(default = "any_path")]
    pub path: String,
    /// A header that must be present with this value.
    #[serde(default)]
    pub header: Option<HeaderEntry>,
}

fn any_path() -> String {
    "/**".to_owned()
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HeaderEntry {
    pub name: String,
    pub value: String,
}

/// Guardrails on what clients see; a breach ends the experiment early and
/// fails the checkpoint.
#[derive(Debug, Clone, PartialEq)]
pub struct GuardrailEntry {
    pub window: Duration,
    pub min_requests: u32,
    /// 0..=1.
    pub max_error_rate: Option<f64>,
    pub max_p99_latency: Option<Duration>,
}

impl Default for GuardrailEntry {
    fn default() -> Self {
        GuardrailEntry {
            window: Duration::from_secs(10),
            min_requests: 20,
            max_error_rate: None,
            max_p99_latency: None,
        }
    }
}

/// One request of a synthetic workload.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct RequestEntry {
    #[serde(default = "get")]
    pub method: String,
    pub path: String,
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    #[serde(default)]
    pub body: Option<String>,
}

fn get() -> String {
    "GET".to_owned()
}

/// How the synthetic client retries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetryEntry {
    pub max_attempts: u32,
    pub backoff_initial: Duration,
    pub backoff_max: Duration,
    pub retry_on: Vec<u16>,
    pub attempt_timeout: Duration,
}

impl Default for RetryEntry {
    fn default() -> Self {
        RetryEntry {
            max_attempts: 3,
            backoff_initial: Duration::from_millis(50),
            backoff_max: Duration::from_secs(1),
            retry_on: vec![429, 502, 503, 504],
            attempt_timeout: Duration::from_secs(5),
        }
    }
}

/// Traffic cairn generates when no real client drives the experiment.
#[derive(Debug, Clone, PartialEq)]
pub struct WorkloadEntry {
    pub rate_per_second: f64,
    /// Defaults to the experiment's duration.
    pub duration: Duration,
    pub concurrency: u32,
    pub requests: Vec<RequestEntry>,
    pub retry: RetryEntry,
}

/// A fault-injection experiment at a checkpoint: a fault proxy in front of
/// one upstream, asking `injector` per request, inside the envelope.
#[derive(Debug, Clone, PartialEq)]
pub struct ExperimentEntry {
    /// Name in reports and metric names (`experiment.<name>.error-rate`).
    pub name: String,
    /// The fault-injector plugin (a key of `[plugins]`).
    pub injector: String,
    pub upstream: UpstreamSpec,
    /// Loopback address the proxy listens on (port 0: any free port).
    pub listen: SocketAddr,
    /// Loopback admin address (`POST /stop`), if any.
    pub admin_listen: Option<SocketAddr>,
    pub seed: u64,
    pub duration: Duration,
    pub blast_radius_percent: f64,
    pub max_concurrent_faults: u32,
    pub routes: Vec<RouteEntry>,
    pub protected_paths: Vec<String>,
    pub max_delay: Duration,
    pub max_hang: Duration,
    pub max_plugin_failures: u32,
    pub idempotency_header: String,
    pub sensitive_headers: Vec<String>,
    pub ca_file: Option<PathBuf>,
    pub decision_log: Option<PathBuf>,
    pub guardrails: GuardrailEntry,
    pub workload: Option<WorkloadEntry>,
    /// The injector's config, as JSON text.
    pub config: String,
    /// Where the config is in the plan file (see [`ValidatorEntry::config_at`]).
    pub config_at: Option<String>,
}

/// A checked plan: every reference resolves and every value is in range.
#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    /// The plan file.
    pub path: PathBuf,
    pub plugins: BTreeMap<String, PluginEntry>,
    /// In rollout order.
    pub checkpoints: Vec<CheckpointEntry>,
    /// `[rollout] verify`: the validators that prove a rolled-back change
    /// left the baseline as it was (run by rollouts, never by `check`).
    pub verify: Vec<ValidatorEntry>,
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
    rollout: Option<RolloutSectionFile>,
}

/// `[rollout]`: its `verify` validators are checked here like any other;
/// its other keys belong to rollouts (the rollout layer reads them).
#[derive(Debug, Deserialize)]
#[serde(rename_all = "kebab-case")]
struct RolloutSectionFile {
    #[serde(default)]
    verify: Vec<ValidatorFile>,
    #[serde(flatten)]
    _rollout_keys: BTreeMap<String, toml::Value>,
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
    #[serde(default, rename = "experiment")]
    experiments: Vec<Spanned<ExperimentFile>>,
    /// `[checkpoint.rollout]`: read by rollouts, not by `check`.
    #[serde(rename = "rollout")]
    _rollout: Option<toml::Value>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct ExperimentFile {
    name: Option<Spanned<String>>,
    injector: Spanned<String>,
    upstream: Spanned<String>,
    listen: Option<Spanned<String>>,
    admin_listen: Option<Spanned<String>>,
    seed: Option<u64>,
    duration_ms: Spanned<u64>,
    #[serde(default = "full_blast")]
    blast_radius: Spanned<f64>,
    max_concurrent_faults: Option<Spanned<u32>>,
    #[serde(default)]
    routes: Vec<RouteEntry>,
    #[serde(default)]
    protected_paths: Vec<String>,
    max_delay_ms: Option<Spanned<u64>>,
    max_hang_ms: Option<Spanned<u64>>,
    max_plugin_failures: Option<u32>,
    idempotency_header: Option<String>,
    #[serde(default)]
    sensitive_headers: Vec<String>,
    ca_file: Option<Spanned<String>>,
    decision_log: Option<String>,
    guardrails: Option<Spanned<GuardrailFile>>,
    workload: Option<Spanned<WorkloadFile>>,
    config: Option<toml::Value>,
}

fn full_blast() -> Spanned<f64> {
    Spanned::new(0..0, 100.0)
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct GuardrailFile {
    window_ms: Option<u64>,
    min_requests: Option<u32>,
    max_error_rate: Option<f64>,
    max_p99_latency_ms: Option<u64>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct WorkloadFile {
    rate: f64,
    duration_ms: Option<u64>,
    concurrency: Option<u32>,
    requests: Vec<RequestEntry>,
    retry: Option<RetryFile>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct RetryFile {
    max_attempts: Option<u32>,
    backoff_initial_ms: Option<u64>,
    backoff_max_ms: Option<u64>,
    retry_on: Option<Vec<u16>>,
    attempt_timeout_ms: Option<u64>,
}

/// Defaults of an experiment's envelope.
pub const DEFAULT_MAX_CONCURRENT_FAULTS: u32 = 100;
pub const DEFAULT_MAX_DELAY: Duration = Duration::from_secs(30);
pub const DEFAULT_MAX_HANG: Duration = Duration::from_secs(30);
pub const DEFAULT_MAX_PLUGIN_FAILURES: u32 = 10;
/// The longest experiment a plan may declare (one hour).
pub const MAX_EXPERIMENT_DURATION: Duration = Duration::from_secs(3600);

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
        let bytes =
            read_limited(path, "plan", MAX_PLAN_BYTES).map_err(|source| PlanError::Read {
                path: path.to_owned(),
                source,
            })?;
        let text = match String::from_utf8(bytes) {
            Ok(text) => text,
            Err(err) => {
                let valid = err.utf8_error().valid_up_to();
                let prefix = String::from_utf8_lossy(&err.as_bytes()[..valid]).into_owned();
                let (line, column) = LineIndex::new(&prefix).line_column(valid);
                return Err(PlanError::Invalid {
                    path: path.to_owned(),
                    line,
                    column,
                    message: "the plan is not valid UTF-8 here (TOML files are UTF-8)".to_owned(),
                });
            }
        };
        Plan::parse(path, &text)
    }

    /// Checks plan `text`; `path` names it in errors and anchors relative
    /// plugin paths.
    pub fn parse(path: &Path, text: &str) -> Result<Plan, PlanError> {
        let lines = LineIndex::new(text);
        let at = |span: Range<usize>, message: String| {
            let (line, column) = lines.line_column(span.start);
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
        let mut file_plugin_spans: BTreeMap<String, Range<usize>> = BTreeMap::new();
        for (name, plugin) in file.plugins {
            file_plugin_spans.insert(name.clone(), plugin.path.span());
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
            if plugin.path.get_ref().trim().is_empty() {
                return Err(at(
                    plugin.path.span(),
                    format!("plugin `{name}`: path is empty; give a .wasm file or a Cargo project"),
                ));
            }
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
                lines.line_column(checkpoint.name.span().start).0,
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
            let validators = validator_entries(
                checkpoint.validators,
                &format!("checkpoint `{name}`"),
                &format!("/checkpoint/{index}/validators"),
                &plugins,
                &mut used_plugins,
                &at,
            )?;
            let mut experiments: Vec<ExperimentEntry> = Vec::new();
            for (number, experiment) in checkpoint.experiments.into_iter().enumerate() {
                let span = experiment.span();
                let pointer = format!("/checkpoint/{index}/experiment/{number}");
                let entry = parse_experiment(experiment.into_inner(), &name, &plugins, base, &at)
                    .map(|mut entry| {
                        entry.config_at = Some(pointer);
                        entry
                    })
                    .map_err(|err| match err {
                        ExperimentParseError::At(err) => err,
                        ExperimentParseError::Whole(message) => at(span.clone(), message),
                    })?;
                if experiments.iter().any(|e| e.name == entry.name) {
                    return Err(at(
                        span,
                        format!(
                            "checkpoint `{name}`: experiment `{}` appears twice; give one a `name`",
                            entry.name
                        ),
                    ));
                }
                used_plugins.insert(entry.injector.clone());
                experiments.push(entry);
            }
            checkpoints.push(CheckpointEntry {
                environment: checkpoint.environment.unwrap_or_else(|| name.clone()),
                experiments,
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
        let verify = match file.rollout {
            Some(rollout) => validator_entries(
                rollout.verify,
                "[rollout] verify",
                "/rollout/verify",
                &plugins,
                &mut used_plugins,
                &at,
            )?,
            None => Vec::new(),
        };
        let injectors: BTreeSet<&str> = checkpoints
            .iter()
            .flat_map(|c| c.experiments.iter().map(|e| e.injector.as_str()))
            .collect();
        if let Some(both) = checkpoints
            .iter()
            .flat_map(|c| c.validators.iter())
            .find(|v| injectors.contains(v.plugin.as_str()))
        {
            let span = file_plugin_spans.get(&both.plugin).cloned().unwrap_or(0..0);
            return Err(at(
                span,
                format!(
                    "plugin `{}` is used both as a validator and as an experiment's injector; \
                     a plugin is one or the other",
                    both.plugin
                ),
            ));
        }
        for unused in plugins.keys().filter(|name| !used_plugins.contains(*name)) {
            tracing::warn!(plan = %path.display(), plugin = unused, "plugin is declared but no checkpoint uses it");
        }
        Ok(Plan {
            path: path.to_owned(),
            plugins,
            checkpoints,
            verify,
        })
    }

    /// The world plugin `name` must implement: a fault injector if an
    /// experiment uses it, else a validator.
    pub fn expected_world(&self, name: &str) -> crate::runtime::bindings::World {
        use crate::runtime::bindings::World;
        let injects = self
            .checkpoints
            .iter()
            .flat_map(|c| c.experiments.iter())
            .any(|e| e.injector == name);
        if injects {
            World::FaultInjector
        } else {
            World::Validator
        }
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

    /// Renames plugin `old` of an ad-hoc plan to `new` (its own `info()`
    /// name, so reports name a check the same in every language), with its
    /// validators. Does nothing when `new` is taken or `old` is unknown.
    pub fn rename_plugin(&mut self, old: &str, new: &str) {
        if old == new || self.plugins.contains_key(new) {
            return;
        }
        let Some(mut entry) = self.plugins.remove(old) else {
            return;
        };
        entry.name = new.to_owned();
        self.plugins.insert(new.to_owned(), entry);
        for validator in self
            .checkpoints
            .iter_mut()
            .flat_map(|c| c.validators.iter_mut())
            .chain(self.verify.iter_mut())
        {
            if validator.plugin == old {
                validator.plugin = new.to_owned();
                if validator.name == old {
                    validator.name = new.to_owned();
                }
            }
        }
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
                config_at: None,
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
                experiments: Vec::new(),
                validators,
            }],
            verify: Vec::new(),
        }
    }
}

/// Why an experiment table is invalid: at a value's own position, or at
/// the table.
/// Checks validators as a plan lists them (at a checkpoint, or `[rollout]
/// verify`): every plugin exists, report names are unique, configs are JSON.
fn validator_entries(
    files: Vec<ValidatorFile>,
    context: &str,
    pointer_base: &str,
    plugins: &BTreeMap<String, PluginEntry>,
    used_plugins: &mut BTreeSet<String>,
    at: &dyn Fn(Range<usize>, String) -> PlanError,
) -> Result<Vec<ValidatorEntry>, PlanError> {
    let mut validators: Vec<ValidatorEntry> = Vec::new();
    for (number, validator) in files.into_iter().enumerate() {
        let plugin = validator.plugin.get_ref();
        if !plugins.contains_key(plugin) {
            let known: Vec<&str> = plugins.keys().map(String::as_str).collect();
            return Err(at(
                validator.plugin.span(),
                format!(
                    "{context}: unknown plugin `{plugin}` (plugins in this plan: {})",
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
                format!("{context}: validator `{report_name}` appears twice; give one a `name`"),
            ));
        }
        let config = match &validator.config {
            Some(value) => {
                if let Some(key) = non_finite_at(value, "config") {
                    return Err(at(
                        validator.plugin.span(),
                        format!(
                            "{context}: validator `{report_name}`: {key} is inf or nan, \
                             which JSON cannot carry"
                        ),
                    ));
                }
                if let Some(key) = unsafe_integer_at(value, "config") {
                    return Err(at(
                        validator.plugin.span(),
                        format!(
                            "{context}: validator `{report_name}`: {key} is beyond ±(2^53-1), \
                             which not every plugin language reads exactly; quote it as a string"
                        ),
                    ));
                }
                toml_to_json(value).to_string()
            }
            None => "{}".to_owned(),
        };
        let pointer = format!("{pointer_base}/{number}");
        validators.push(ValidatorEntry {
            name: report_name,
            plugin: plugin.clone(),
            advisory: validator.advisory,
            config_at: Some(if validator.config.is_some() {
                format!("{pointer}/config")
            } else {
                pointer
            }),
            config,
        });
    }
    Ok(validators)
}

enum ExperimentParseError {
    At(PlanError),
    Whole(String),
}

/// Checks one `[[checkpoint.experiment]]` and resolves its paths.
fn parse_experiment(
    file: ExperimentFile,
    checkpoint: &str,
    plugins: &BTreeMap<String, PluginEntry>,
    base: &Path,
    at: &dyn Fn(Range<usize>, String) -> PlanError,
) -> Result<ExperimentEntry, ExperimentParseError> {
    let located = |span: Range<usize>, message: String| {
        ExperimentParseError::At(at(span, format!("checkpoint `{checkpoint}`: {message}")))
    };
    let injector = file.injector.get_ref().clone();
    if !plugins.contains_key(&injector) {
        let known: Vec<&str> = plugins.keys().map(String::as_str).collect();
        return Err(located(
            file.injector.span(),
            format!(
                "unknown injector `{injector}` (plugins in this plan: {})",
                if known.is_empty() {
                    "none".to_owned()
                } else {
                    known.join(", ")
                }
            ),
        ));
    }
    let name = match &file.name {
        Some(name) if name.get_ref().trim().is_empty() => {
            return Err(located(name.span(), "experiment name is empty".to_owned()));
        }
        Some(name) => name.get_ref().clone(),
        None => injector.clone(),
    };
    if !name
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
    {
        let span = file.name.as_ref().map_or(0..0, Spanned::span);
        return Err(located(
            span,
            format!(
                "experiment name `{name}` may hold only letters, digits, `-`, `_` and `.` \
                 (it becomes part of metric names)"
            ),
        ));
    }
    let upstream = match file.upstream.get_ref().as_str() {
        "builtin:echo" => UpstreamSpec::BuiltinEcho,
        url if url.starts_with("http://") || url.starts_with("https://") => {
            UpstreamSpec::Url(url.to_owned())
        }
        other => {
            return Err(located(
                file.upstream.span(),
                format!(
                    "experiment `{name}`: upstream `{other}` is not an http:// or https:// URL \
                     (or `builtin:echo`)"
                ),
            ));
        }
    };
    let address =
        |value: &Spanned<String>, what: &str| -> Result<SocketAddr, ExperimentParseError> {
            let addr: SocketAddr = value.get_ref().parse().map_err(|_| {
                located(
                    value.span(),
                    format!(
                        "experiment `{name}`: {what} `{}` is not an address like 127.0.0.1:8080",
                        value.get_ref()
                    ),
                )
            })?;
            if !addr.ip().is_loopback() {
                return Err(located(
                    value.span(),
                    format!(
                        "experiment `{name}`: {what} `{addr}` is not a loopback address; \
                     a fault proxy listens on 127.0.0.1 or ::1 only"
                    ),
                ));
            }
            Ok(addr)
        };
    let listen = match &file.listen {
        Some(value) => address(value, "listen")?,
        None => SocketAddr::from(([127, 0, 0, 1], 0)),
    };
    let admin_listen = file
        .admin_listen
        .as_ref()
        .map(|value| address(value, "admin-listen"))
        .transpose()?;
    let duration_ms = *file.duration_ms.get_ref();
    let duration = Duration::from_millis(duration_ms);
    if duration.is_zero() || duration > MAX_EXPERIMENT_DURATION {
        return Err(located(
            file.duration_ms.span(),
            format!(
                "experiment `{name}`: duration-ms must be 1..={}, got {duration_ms}",
                MAX_EXPERIMENT_DURATION.as_millis()
            ),
        ));
    }
    let blast = *file.blast_radius.get_ref();
    if !(0.0..=100.0).contains(&blast) {
        return Err(located(
            file.blast_radius.span(),
            format!("experiment `{name}`: blast-radius is a percentage, 0..=100, got {blast}"),
        ));
    }
    let positive_ms = |value: &Option<Spanned<u64>>, key: &str, default: Duration| match value {
        Some(ms) if *ms.get_ref() == 0 => Err(located(
            ms.span(),
            format!("experiment `{name}`: {key} must be at least 1"),
        )),
        Some(ms) => Ok(Duration::from_millis(*ms.get_ref())),
        None => Ok(default),
    };
    let max_delay = positive_ms(&file.max_delay_ms, "max-delay-ms", DEFAULT_MAX_DELAY)?;
    let max_hang = positive_ms(&file.max_hang_ms, "max-hang-ms", DEFAULT_MAX_HANG)?;
    let max_concurrent_faults = match &file.max_concurrent_faults {
        Some(cap) => *cap.get_ref(),
        None => DEFAULT_MAX_CONCURRENT_FAULTS,
    };
    for route in &file.routes {
        if !route.path.starts_with('/') {
            return Err(ExperimentParseError::Whole(format!(
                "checkpoint `{checkpoint}`: experiment `{name}`: route path `{}` must start with `/`",
                route.path
            )));
        }
    }
    for path in &file.protected_paths {
        if !path.starts_with('/') {
            return Err(ExperimentParseError::Whole(format!(
                "checkpoint `{checkpoint}`: experiment `{name}`: protected path `{path}` must start with `/`"
            )));
        }
    }
    let ca_file = match &file.ca_file {
        Some(path) => {
            let resolved = base.join(path.get_ref());
            if !resolved.is_file() {
                return Err(located(
                    path.span(),
                    format!(
                        "experiment `{name}`: ca-file {} does not exist",
                        resolved.display()
                    ),
                ));
            }
            Some(resolved)
        }
        None => None,
    };
    let guardrails = match &file.guardrails {
        Some(spanned) => {
            let given = spanned.get_ref();
            let defaults = GuardrailEntry::default();
            if let Some(rate) = given.max_error_rate
                && !(0.0..=1.0).contains(&rate)
            {
                return Err(located(
                    spanned.span(),
                    format!(
                        "experiment `{name}`: guardrails.max-error-rate is a ratio, 0..=1, got {rate}"
                    ),
                ));
            }
            if given.window_ms == Some(0) || given.max_p99_latency_ms == Some(0) {
                return Err(located(
                    spanned.span(),
                    format!(
                        "experiment `{name}`: guardrails.window-ms and max-p99-latency-ms must be at least 1"
                    ),
                ));
            }
            GuardrailEntry {
                window: given
                    .window_ms
                    .map_or(defaults.window, Duration::from_millis),
                min_requests: given.min_requests.unwrap_or(defaults.min_requests),
                max_error_rate: given.max_error_rate,
                max_p99_latency: given.max_p99_latency_ms.map(Duration::from_millis),
            }
        }
        None => GuardrailEntry::default(),
    };
    let workload = match file.workload {
        Some(spanned) => {
            let span = spanned.span();
            let given = spanned.into_inner();
            let invalid = |message: String| {
                located(
                    span.clone(),
                    format!("experiment `{name}`: workload.{message}"),
                )
            };
            if !(given.rate.is_finite() && given.rate > 0.0 && given.rate <= 100_000.0) {
                return Err(invalid(format!(
                    "rate is requests per second, above 0 and at most 100000, got {}",
                    given.rate
                )));
            }
            if given.requests.is_empty() {
                return Err(invalid("requests is empty; give at least one".to_owned()));
            }
            if let Some(request) = given.requests.iter().find(|r| !r.path.starts_with('/')) {
                return Err(invalid(format!(
                    "requests: path `{}` must start with `/`",
                    request.path
                )));
            }
            let workload_duration = given.duration_ms.map_or(duration, Duration::from_millis);
            if workload_duration.is_zero() || workload_duration > duration {
                return Err(invalid(format!(
                    "duration-ms must be 1..={} (the experiment's duration)",
                    duration.as_millis()
                )));
            }
            let defaults = RetryEntry::default();
            let retry = match given.retry {
                Some(retry) => {
                    let max_attempts = retry.max_attempts.unwrap_or(defaults.max_attempts);
                    if !(1..=20).contains(&max_attempts) {
                        return Err(invalid(format!(
                            "retry.max-attempts must be 1..=20, got {max_attempts}"
                        )));
                    }
                    if retry.attempt_timeout_ms == Some(0) {
                        return Err(invalid(
                            "retry.attempt-timeout-ms must be at least 1".to_owned(),
                        ));
                    }
                    RetryEntry {
                        max_attempts,
                        backoff_initial: retry
                            .backoff_initial_ms
                            .map_or(defaults.backoff_initial, Duration::from_millis),
                        backoff_max: retry
                            .backoff_max_ms
                            .map_or(defaults.backoff_max, Duration::from_millis),
                        retry_on: retry.retry_on.unwrap_or(defaults.retry_on),
                        attempt_timeout: retry
                            .attempt_timeout_ms
                            .map_or(defaults.attempt_timeout, Duration::from_millis),
                    }
                }
                None => defaults,
            };
            let concurrency = given.concurrency.unwrap_or(8);
            if !(1..=1024).contains(&concurrency) {
                return Err(invalid(format!(
                    "concurrency must be 1..=1024, got {concurrency}"
                )));
            }
            Some(WorkloadEntry {
                rate_per_second: given.rate,
                duration: workload_duration,
                concurrency,
                requests: given.requests,
                retry,
            })
        }
        None => None,
    };
    let config = match &file.config {
        Some(value) => {
            if let Some(key) = non_finite_at(value, "config") {
                return Err(located(
                    file.injector.span(),
                    format!("experiment `{name}`: {key} is inf or nan, which JSON cannot carry"),
                ));
            }
            if let Some(key) = unsafe_integer_at(value, "config") {
                return Err(located(
                    file.injector.span(),
                    format!(
                        "experiment `{name}`: {key} is beyond ±(2^53-1), which not every \
                         plugin language reads exactly; quote it as a string"
                    ),
                ));
            }
            toml_to_json(value).to_string()
        }
        None => "{}".to_owned(),
    };
    Ok(ExperimentEntry {
        seed: file.seed.unwrap_or_else(|| default_seed(checkpoint, &name)),
        name,
        injector,
        upstream,
        listen,
        admin_listen,
        duration,
        blast_radius_percent: blast,
        max_concurrent_faults,
        routes: file.routes,
        protected_paths: file.protected_paths,
        max_delay,
        max_hang,
        max_plugin_failures: file
            .max_plugin_failures
            .unwrap_or(DEFAULT_MAX_PLUGIN_FAILURES),
        idempotency_header: file
            .idempotency_header
            .unwrap_or_else(|| "idempotency-key".to_owned())
            .to_ascii_lowercase(),
        sensitive_headers: file.sensitive_headers,
        ca_file,
        decision_log: file.decision_log.map(|path| base.join(path)),
        guardrails,
        workload,
        config,
        config_at: None,
    })
}

/// The seed of an experiment that gives none: derived from its checkpoint
/// and name (FNV-1a), so a rerun of the plan makes the same decisions.
pub fn default_seed(checkpoint: &str, experiment: &str) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in checkpoint.bytes().chain([0]).chain(experiment.bytes()) {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
    hash
}

/// The dotted path of the first `inf` or `nan` in a TOML value (JSON has
/// neither, so a config holding one would silently become `null`).
pub fn non_finite_at(value: &toml::Value, path: &str) -> Option<String> {
    match value {
        toml::Value::Float(f) if !f.is_finite() => Some(path.to_owned()),
        toml::Value::Array(items) => items
            .iter()
            .enumerate()
            .find_map(|(i, item)| non_finite_at(item, &format!("{path}[{i}]"))),
        toml::Value::Table(table) => table
            .iter()
            .find_map(|(key, item)| non_finite_at(item, &format!("{path}.{key}"))),
        _ => None,
    }
}

/// The largest integer every plugin language reads exactly (a JavaScript
/// number is an IEEE double): 2^53 - 1, as in I-JSON (RFC 7493).
pub const MAX_SAFE_INTEGER: i64 = (1 << 53) - 1;

/// Where an integer beyond ±[`MAX_SAFE_INTEGER`] is in a config, if one is.
pub fn unsafe_integer_at(value: &toml::Value, path: &str) -> Option<String> {
    match value {
        toml::Value::Integer(i) if i.unsigned_abs() > MAX_SAFE_INTEGER as u64 => {
            Some(path.to_owned())
        }
        toml::Value::Array(items) => items
            .iter()
            .enumerate()
            .find_map(|(i, item)| unsafe_integer_at(item, &format!("{path}[{i}]"))),
        toml::Value::Table(table) => table
            .iter()
            .find_map(|(key, item)| unsafe_integer_at(item, &format!("{path}.{key}"))),
        _ => None,
    }
}

/// A float that is a whole number a plugin in any language reads exactly
/// (`3.0`, `1e3`, `-0.0`) as that integer: every SDK then sees the same
/// JSON (`3`, `1000`, `0`), whether its config type is an integer or a
/// float.
pub fn canonical_number(f: f64) -> serde_json::Value {
    if f.is_finite() && f.fract() == 0.0 && f.abs() <= MAX_SAFE_INTEGER as f64 {
        // In range and whole: the cast is exact.
        serde_json::Value::from(f as i64)
    } else {
        serde_json::Number::from_f64(f).map_or(serde_json::Value::Null, serde_json::Value::Number)
    }
}

/// TOML values as JSON; datetimes become RFC 3339 strings and whole floats
/// integers ([`canonical_number`]).
pub fn toml_to_json(value: &toml::Value) -> serde_json::Value {
    use serde_json::Value as Json;
    match value {
        toml::Value::String(s) => Json::String(s.clone()),
        toml::Value::Integer(i) => Json::from(*i),
        toml::Value::Float(f) => canonical_number(*f),
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

/// Where each line of a text starts, so a plan with many checkpoints finds
/// each position in O(log lines) (once per checkpoint name, it was a scan
/// of the text: 50 000 checkpoints took 68 s).
pub struct LineIndex<'t> {
    text: &'t str,
    /// Byte offset of the start of every line.
    starts: Vec<usize>,
}

impl<'t> LineIndex<'t> {
    pub fn new(text: &'t str) -> LineIndex<'t> {
        let starts = std::iter::once(0)
            .chain(text.match_indices('\n').map(|(i, _)| i + 1))
            .collect();
        LineIndex { text, starts }
    }

    /// 1-based line and column (in characters) of byte `offset`.
    pub fn line_column(&self, offset: usize) -> (usize, usize) {
        let mut offset = offset.min(self.text.len());
        while !self.text.is_char_boundary(offset) {
            offset -= 1;
        }
        let line = self.starts.partition_point(|&start| start <= offset);
        let start = self.starts[line - 1];
        (line, self.text[start..offset].chars().count() + 1)
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

    const INJECTOR: &str = "[plugins.p]\npath = \"src\"\n[plugins.inj]\npath = \"src\"\n";

    fn experiment_plan(table: &str) -> String {
        format!(
            "{INJECTOR}[[checkpoint]]\nname = \"resilience\"\n[[checkpoint.experiment]]\n{table}"
        )
    }

    #[test]
    fn experiment_tables_resolve_with_defaults_and_given_values() {
        let text = experiment_plan(
            r#"injector = "inj"
upstream = "builtin:echo"
duration-ms = 2000
blast-radius = 25.5
routes = [{ methods = ["GET"], path = "/orders/*" }]
protected-paths = ["/health"]
config = { percent = 50 }
guardrails = { max-error-rate = 0.2, window-ms = 1000 }
workload = { rate = 20, requests = [{ path = "/orders/1" }], retry = { max-attempts = 4 } }
"#,
        );
        let plan = parse(&text).unwrap();
        let experiment = &plan.checkpoints[0].experiments[0];
        assert_eq!(experiment.name, "inj");
        assert_eq!(experiment.upstream, UpstreamSpec::BuiltinEcho);
        assert_eq!(experiment.listen, SocketAddr::from(([127, 0, 0, 1], 0)));
        assert_eq!(experiment.duration, Duration::from_millis(2000));
        assert_eq!(experiment.blast_radius_percent, 25.5);
        assert_eq!(experiment.routes[0].methods, ["GET"]);
        assert_eq!(experiment.config, r#"{"percent":50}"#);
        assert_eq!(experiment.guardrails.max_error_rate, Some(0.2));
        assert_eq!(experiment.guardrails.window, Duration::from_millis(1000));
        assert_eq!(
            experiment.max_concurrent_faults,
            DEFAULT_MAX_CONCURRENT_FAULTS
        );
        assert_eq!(experiment.seed, default_seed("resilience", "inj"));
        let workload = experiment.workload.as_ref().unwrap();
        assert_eq!(workload.duration, experiment.duration);
        assert_eq!(workload.retry.max_attempts, 4);
        assert_eq!(workload.requests[0].method, "GET");
        assert_eq!(
            plan.expected_world("inj"),
            crate::runtime::bindings::World::FaultInjector
        );
        assert_eq!(
            plan.expected_world("p"),
            crate::runtime::bindings::World::Validator
        );
    }

    #[test]
    fn experiment_mistakes_are_located_and_explained() {
        let cases = [
            (
                "injector = \"inj\"\nupstream = \"builtin:echo\"\nduration-ms = 1000\nblast-radius = 150\n",
                11,
                "blast-radius is a percentage",
            ),
            (
                "injector = \"inj\"\nupstream = \"builtin:echo\"\nduration-ms = 0\n",
                10,
                "duration-ms must be 1..=",
            ),
            (
                "injector = \"nope\"\nupstream = \"builtin:echo\"\nduration-ms = 10\n",
                8,
                "unknown injector `nope`",
            ),
            (
                "injector = \"inj\"\nupstream = \"ftp://x\"\nduration-ms = 10\n",
                9,
                "not an http:// or https:// URL",
            ),
            (
                "injector = \"inj\"\nupstream = \"builtin:echo\"\nduration-ms = 10\nlisten = \"0.0.0.0:80\"\n",
                11,
                "not a loopback address",
            ),
            (
                "injector = \"inj\"\nupstream = \"builtin:echo\"\nduration-ms = 10\nguardrails = { max-error-rate = 2 }\n",
                11,
                "max-error-rate is a ratio",
            ),
            (
                "injector = \"inj\"\nupstream = \"builtin:echo\"\nduration-ms = 10\nworkload = { rate = 0, requests = [{ path = \"/\" }] }\n",
                11,
                "rate is requests per second",
            ),
        ];
        for (table, line, expected) in cases {
            let (got_line, _, message) = position(parse(&experiment_plan(table)).unwrap_err());
            assert!(message.contains(expected), "{table}: {message}");
            assert_eq!(got_line, line, "{table}: {message}");
        }
    }

    #[test]
    fn a_plugin_cannot_be_both_validator_and_injector() {
        let text = format!(
            "{INJECTOR}[[checkpoint]]\nname = \"a\"\nvalidators = [{{ plugin = \"inj\" }}]\n[[checkpoint.experiment]]\ninjector = \"inj\"\nupstream = \"builtin:echo\"\nduration-ms = 10\n"
        );
        let (line, _, message) = position(parse(&text).unwrap_err());
        assert_eq!(line, 4, "{message}");
        assert!(
            message.contains("both as a validator and as an experiment"),
            "{message}"
        );
    }

    #[test]
    fn an_empty_plugin_path_and_a_non_finite_config_are_located() {
        let text = "[plugins.p]\npath = \"\"\n[[checkpoint]]\nname = \"a\"\n";
        let (line, _, message) = position(parse(text).unwrap_err());
        assert_eq!(line, 2, "{message}");
        assert!(message.contains("path is empty"), "{message}");
        let text = format!(
            "{PLUGIN}[[checkpoint]]\nname = \"a\"\nvalidators = [{{ plugin = \"p\", config = {{ limits = [1.0, nan] }} }}]\n"
        );
        let (line, _, message) = position(parse(&text).unwrap_err());
        assert_eq!(line, 5, "{message}");
        assert!(
            message.contains("config.limits[1] is inf or nan"),
            "{message}"
        );
    }

    #[test]
    fn a_plan_that_is_not_utf8_is_located() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("cairn.toml");
        std::fs::write(&path, b"[plugins.p]\npath = \"a\xff\"\n").unwrap();
        let (line, column, message) = position(Plan::load(&path).unwrap_err());
        assert_eq!((line, column), (2, 10), "{message}");
        assert!(message.contains("not valid UTF-8"), "{message}");
    }

    #[test]
    fn default_seeds_are_stable_and_differ_per_experiment() {
        assert_eq!(default_seed("a", "b"), default_seed("a", "b"));
        assert_ne!(default_seed("a", "b"), default_seed("a", "c"));
        assert_ne!(default_seed("ab", ""), default_seed("a", "b"));
    }

    #[test]
    fn line_column_counts_characters_not_bytes() {
        assert_eq!(line_column("ab\néé x", 7), (2, 3));
        assert_eq!(line_column("", 5), (1, 1));
        for text in ["ab\néé x", "", "\n\n", "x\ny\n", "ünï\ncödé\n\nend"] {
            let index = LineIndex::new(text);
            for offset in 0..=text.len() + 2 {
                assert_eq!(
                    index.line_column(offset),
                    line_column(text, offset),
                    "{text:?} at {offset}"
                );
            }
        }
    }
}
