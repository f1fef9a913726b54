//! The product library on top of the runtime: a plan's checkpoints run over
//! a change, verdicts counted into gate decisions, reports rendered. One
//! entry, [`run_plan`], serves `cairn check`, `cairn validate`, the tests
//! and the benchmark (and next, experiments, rollouts and the server).
//!
//! - `plan`: the TOML plan and its errors with file:line:column;
//! - `checkpoint`: the one checkpoint runner;
//! - `experiment`: a checkpoint's fault-injection experiments, run through
//!   `crate::proxy`, their figures handed to the validators as metrics;
//! - `gate`: where a verdict becomes a gate decision (`on-error`, advisory,
//!   inconclusive rules);
//! - `config`: plugin configs checked against the schemas plugins declare;
//! - `locate`: lines and columns for findings located only by a pointer;
//! - `report`: the check report and one file per format;
//! - `lock`: pinning a plan's plugins;
//! - `source`: building plugins given as Cargo projects.

pub mod checkpoint;
pub mod config;
pub mod experiment;
pub mod gate;
pub mod locate;
pub mod lock;
pub mod plan;
pub mod report;
pub mod source;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::runtime::bindings::World;
use crate::runtime::change::Change;
use crate::runtime::limits::LimitOutOfRange;
use crate::runtime::plugin::{LoadError, Plugin};
use crate::runtime::{PluginBytes, Runtime};

pub use checkpoint::{CheckpointResult, ValidatorResult, judge_checkpoint, run_checkpoint};
pub use experiment::{Approval, ExperimentError, ExperimentResult, StopSignal};
pub use gate::{Counted, GateDecision, OnError};
pub use plan::{CheckpointEntry, GateRules, Plan, PlanError};
pub use report::CheckReport;

/// Why a plan could not be run. Each variant is one kind of mistake, so a
/// caller (the command line, the server) maps it to a code or a status.
#[derive(Debug, thiserror::Error)]
pub enum CheckError {
    #[error(transparent)]
    Plan(#[from] PlanError),
    #[error("the plan has no checkpoint `{name}` (it has: {known})")]
    UnknownCheckpoint { name: String, known: String },
    #[error("invalid limit")]
    Limits(#[source] LimitOutOfRange),
    #[error("cannot read the change {}", path.display())]
    Change {
        path: PathBuf,
        #[source]
        source: crate::runtime::change::ChangeError,
    },
    #[error("cannot build plugin `{plugin}` from {}", path.display())]
    Build {
        plugin: String,
        path: PathBuf,
        #[source]
        source: source::BuildError,
    },
    #[error(
        "plugin `{plugin}`: {} builds {count} components; point `path` at one plugin crate",
        path.display()
    )]
    SeveralComponents {
        plugin: String,
        path: PathBuf,
        count: usize,
    },
    #[error("cannot load plugin `{plugin}` from {}", path.display())]
    Load {
        plugin: String,
        path: PathBuf,
        #[source]
        source: Box<LoadError>,
    },
    #[error(
        "plugin `{plugin}` ({}) is a {world}, but the plan uses it as a {expected}",
        path.display()
    )]
    WrongWorld {
        plugin: String,
        path: PathBuf,
        world: World,
        expected: World,
    },
    #[error(transparent)]
    Experiment(#[from] ExperimentError),
    /// A config the plugin's declared schema refuses, in a plan that is
    /// not a file (`cairn validate --config`).
    #[error("{message}")]
    ConfigRejected { message: String },
    /// A plugin declared a config schema cairn cannot use.
    #[error("plugin `{plugin}`: {message}")]
    ConfigSchema { plugin: String, message: String },
}

/// What to run of a plan, and how.
#[derive(Debug, Clone, Default)]
pub struct RunOptions {
    /// Run only these checkpoints, in this order (empty: every checkpoint,
    /// in plan order, stopping at the first gate that does not pass).
    pub checkpoints: Vec<String>,
    /// Run every selected checkpoint even after a gate stops the rollout.
    pub keep_going: bool,
    /// Warnings fail every gate, whatever the plan says.
    pub fail_on_warn: bool,
    /// Identifier of the change, passed to the validators.
    pub change_id: String,
    /// Who approved experiments at production checkpoints (required there).
    pub approval: Option<Approval>,
    /// Stops running experiments at once when it turns `true` (Ctrl-C).
    pub stop: Option<StopSignal>,
}

/// Told when a plugin must be compiled (seconds for a Python or JS one), so
/// a command line can show a spinner.
pub trait LoadProgress {
    fn compiling(&self, _plugin: &str, _bytes: usize) {}
    fn compiled(&self, _plugin: &str) {}
}

/// Progress nobody watches.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoProgress;

impl LoadProgress for NoProgress {}

/// The plan's plugins, loaded: by plan name.
pub type LoadedPlugins = BTreeMap<String, Plugin>;

/// Runs `plan` over `change` as a rollout would: the selected checkpoints in
/// order, each gate decided before the next, stopping at the first that does
/// not pass unless `keep_going`. Every plugin is loaded (and pinned, and
/// checked to implement the world the plan uses it as) before anything
/// runs. A checkpoint's experiments run first; the validators then judge
/// the change with the experiments' figures among its metrics.
pub async fn run_plan(
    runtime: &Runtime,
    plan: &Plan,
    change: Arc<Change>,
    options: &RunOptions,
    progress: &dyn LoadProgress,
) -> Result<CheckReport, CheckError> {
    let selected = select_checkpoints(plan, &options.checkpoints)?;
    let plugins = load_plugins(
        runtime,
        plan,
        selected.iter().flat_map(|c| {
            c.experiments
                .iter()
                .map(|e| e.injector.as_str())
                .chain(c.validators.iter().map(|v| v.plugin.as_str()))
        }),
        progress,
    )?;
    config::check_configs(plan, &plugins).await?;
    run_loaded(plan, &plugins, &selected, change, options).await
}

/// Runs the `selected` checkpoints of `plan` with plugins loaded already
/// (a server loads a plan's plugins once, at start and on reload).
pub async fn run_loaded(
    plan: &Plan,
    plugins: &LoadedPlugins,
    selected: &[&CheckpointEntry],
    change: Arc<Change>,
    options: &RunOptions,
) -> Result<CheckReport, CheckError> {
    let mut results: Vec<CheckpointResult> = Vec::new();
    let mut skipped = Vec::new();
    for &entry in selected {
        if results.last().is_some_and(|r| !r.decision.passed()) && !options.keep_going {
            skipped.push(entry.name.clone());
            continue;
        }
        let mut entry = entry.clone();
        entry.rules.fail_on_warn |= options.fail_on_warn;
        let experiments = experiment::run_experiments(
            plan,
            &entry,
            plugins,
            options.approval.as_ref(),
            options.stop.clone(),
        )
        .await?;
        let judged_change = if experiments.is_empty() {
            Arc::clone(&change)
        } else {
            let mut with_metrics = (*change).clone();
            with_metrics
                .metrics
                .extend(experiments.iter().flat_map(ExperimentResult::metrics));
            Arc::new(with_metrics)
        };
        results.push(
            judge_checkpoint(
                plan,
                &entry,
                plugins,
                judged_change,
                &options.change_id,
                experiments,
            )
            .await,
        );
    }
    Ok(CheckReport {
        plan: plan.path.clone(),
        change: PathBuf::new(),
        checkpoints: results,
        skipped,
    })
}

/// The checkpoints named in `names` (all, in plan order, if empty).
pub fn select_checkpoints<'p>(
    plan: &'p Plan,
    names: &[String],
) -> Result<Vec<&'p CheckpointEntry>, CheckError> {
    if names.is_empty() {
        return Ok(plan.checkpoints.iter().collect());
    }
    names
        .iter()
        .map(|name| {
            plan.checkpoint(name)
                .ok_or_else(|| CheckError::UnknownCheckpoint {
                    name: name.clone(),
                    known: plan
                        .checkpoints
                        .iter()
                        .map(|c| c.name.as_str())
                        .collect::<Vec<_>>()
                        .join(", "),
                })
        })
        .collect()
}

/// Loads the named plan plugins (each once), building Cargo projects first,
/// checking pins, and refusing any that does not implement the world the
/// plan uses it as (validator, or an experiment's fault injector).
pub fn load_plugins<'a>(
    runtime: &Runtime,
    plan: &Plan,
    names: impl IntoIterator<Item = &'a str>,
    progress: &dyn LoadProgress,
) -> Result<LoadedPlugins, CheckError> {
    let mut loaded = LoadedPlugins::new();
    // Plugins declared several times over one path (a wide ad-hoc plan) are
    // built, read and hashed once.
    let mut read: BTreeMap<PathBuf, (PathBuf, PluginBytes)> = BTreeMap::new();
    for name in names {
        if loaded.contains_key(name) {
            continue;
        }
        let Some(entry) = plan.plugins.get(name) else {
            // A checked plan names only declared plugins.
            continue;
        };
        let (file, bytes) = match read.get(&entry.path) {
            Some((file, bytes)) => (file.clone(), bytes.clone().named(name)),
            None => {
                let file = component_file(name, &entry.path)?;
                let bytes = PluginBytes::read(&file).map_err(|source| CheckError::Load {
                    plugin: name.to_owned(),
                    path: file.clone(),
                    source: Box::new(source),
                })?;
                read.insert(entry.path.clone(), (file.clone(), bytes.clone()));
                (file, bytes.named(name))
            }
        };
        let load_error = |source| CheckError::Load {
            plugin: name.to_owned(),
            path: file.clone(),
            source: Box::new(source),
        };
        let compiling = !runtime.is_compiled(&bytes.digest());
        if compiling {
            progress.compiling(name, bytes.bytes().len());
        }
        let plugin = runtime.load(&bytes, entry.sha256.as_ref());
        if compiling {
            progress.compiled(name);
        }
        let plugin = plugin.map_err(load_error)?;
        let expected = plan.expected_world(name);
        if plugin.world() != expected {
            return Err(CheckError::WrongWorld {
                plugin: name.to_owned(),
                path: file,
                world: plugin.world(),
                expected,
            });
        }
        loaded.insert(name.to_owned(), plugin);
    }
    Ok(loaded)
}

/// The component file of a plan plugin: the path itself, or the one
/// component a Cargo project builds.
pub fn component_file(plugin: &str, path: &Path) -> Result<PathBuf, CheckError> {
    let files = component_files(plugin, path)?;
    match files.as_slice() {
        [file] => Ok(file.clone()),
        _ => Err(CheckError::SeveralComponents {
            plugin: plugin.to_owned(),
            path: path.to_owned(),
            count: files.len(),
        }),
    }
}

/// Component files of a path: a `.wasm` file as given, a Cargo project (or
/// workspace) built first.
pub fn component_files(plugin: &str, path: &Path) -> Result<Vec<PathBuf>, CheckError> {
    if source::is_cargo_project(path) {
        source::build_cargo_project(path).map_err(|source| CheckError::Build {
            plugin: plugin.to_owned(),
            path: path.to_owned(),
            source,
        })
    } else {
        Ok(vec![path.to_owned()])
    }
}

/// Reads the change at `path` (a directory or a JSON bundle), with the
/// metrics of `metrics` in place of its own when given.
pub fn read_change(path: &Path, metrics: Option<&Path>) -> Result<Change, CheckError> {
    let change_error = |path: &Path| {
        let path = path.to_owned();
        move |source| CheckError::Change { path, source }
    };
    let change = Change::load(path).map_err(change_error(path))?;
    match metrics {
        Some(metrics) => change
            .with_metrics_file(metrics)
            .map_err(change_error(metrics)),
        None => Ok(change),
    }
}
