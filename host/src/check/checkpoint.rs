//! The one checkpoint runner: a checkpoint's validators run concurrently on
//! a change (each in its own task, store and tracing span), their reports
//! and the checkpoint's experiments are counted and the gate decided.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tracing::Instrument;

use crate::check::experiment::ExperimentResult;
use crate::check::gate::{self, Counted, GateDecision, OnError};
use crate::check::locate;
use crate::check::plan::{CheckpointEntry, GateRules, Plan};
use crate::runtime::call::{CallOutcome, CallReport};
use crate::runtime::change::{Change, Checkpoint};
use crate::runtime::digest::Sha256Digest;
use crate::runtime::failure::{Failure, FailureKind};
use crate::runtime::plugin::Plugin;
use crate::runtime::verdict::Verdict;

/// One validator's part in a checkpoint: what ran, its report, how it counted.
#[derive(Debug, Clone)]
pub struct ValidatorResult {
    /// The name in the plan (the plugin's name unless the plan renames it).
    pub name: String,
    pub plugin: String,
    /// sha256 of the component that ran (`None` if it never loaded).
    pub digest: Option<Sha256Digest>,
    pub advisory: bool,
    pub on_error: OnError,
    pub report: CallReport<Verdict>,
    pub counted: Counted,
}

/// A checkpoint that ran: its validators and its gate.
#[derive(Debug, Clone)]
pub struct CheckpointResult {
    pub checkpoint: Checkpoint,
    pub rules: GateRules,
    pub validators: Vec<ValidatorResult>,
    /// The experiments that ran before the validators, and how each
    /// counts (a guardrail breach fails the gate).
    pub experiments: Vec<(ExperimentResult, Counted)>,
    pub decision: GateDecision,
    pub elapsed: Duration,
}

/// Runs `entry`'s validators concurrently on `change` (each in its own task,
/// store and span tagged with plugin and checkpoint) and decides the gate.
/// `plugins` must hold every plugin the checkpoint uses, loaded. Runs no
/// experiments (see [`crate::check::run_plan`]).
pub async fn run_checkpoint(
    plan: &Plan,
    entry: &CheckpointEntry,
    plugins: &BTreeMap<String, Plugin>,
    change: Arc<Change>,
    change_id: &str,
) -> CheckpointResult {
    judge_checkpoint(plan, entry, plugins, change, change_id, Vec::new()).await
}

/// [`run_checkpoint`] after the checkpoint's experiments ran: `change`
/// carries their metrics, and each experiment counts towards the gate too.
pub async fn judge_checkpoint(
    plan: &Plan,
    entry: &CheckpointEntry,
    plugins: &BTreeMap<String, Plugin>,
    change: Arc<Change>,
    change_id: &str,
    experiments: Vec<ExperimentResult>,
) -> CheckpointResult {
    let started = Instant::now();
    let checkpoint = Checkpoint {
        name: entry.name.clone(),
        index: entry.index,
        environment: entry.environment.clone(),
        rollout_percent: entry.rollout_percent,
        change_id: change_id.to_owned(),
    };
    let mut tasks = Vec::new();
    for validator in &entry.validators {
        let declared = &plan.plugins[&validator.plugin];
        let task = plugins.get(&validator.plugin).cloned().map(|plugin| {
            let change = Arc::clone(&change);
            let at = checkpoint.clone();
            let config = validator.config.clone();
            let limits = declared.limits;
            let span = tracing::info_span!(
                "validator",
                plugin = %crate::escape::single_line(&validator.name),
                checkpoint = %crate::escape::single_line(&entry.name)
            );
            tokio::spawn(
                async move { plugin.validate(change, &at, &config, &limits).await }
                    .instrument(span),
            )
        });
        tasks.push((validator, declared, task));
    }
    let mut validators = Vec::with_capacity(tasks.len());
    for (validator, declared, task) in tasks {
        let not_run = |message: String| {
            CallReport::not_run(&validator.name, Failure::new(FailureKind::Load, message))
        };
        let mut report = match task {
            Some(task) => task
                .await
                .unwrap_or_else(|err| not_run(format!("host task failed: {err}"))),
            None => not_run(format!("plugin `{}` was not loaded", validator.plugin)),
        };
        report.plugin = validator.name.clone();
        let counted = gate::count(&report, declared.on_error, validator.advisory, &entry.rules);
        validators.push(ValidatorResult {
            name: validator.name.clone(),
            plugin: validator.plugin.clone(),
            digest: plugins.get(&validator.plugin).map(Plugin::digest),
            advisory: validator.advisory,
            on_error: declared.on_error,
            report,
            counted,
        });
    }
    // Before any report is written: findings located only by a pointer
    // get the line and column of what it names.
    locate::fill_positions(
        &change,
        validators
            .iter_mut()
            .filter_map(|validator| match &mut validator.report.outcome {
                CallOutcome::Completed(verdict) => Some(verdict),
                _ => None,
            }),
    );
    let experiments: Vec<(ExperimentResult, Counted)> = experiments
        .into_iter()
        .map(|result| {
            let counted =
                gate::count_experiment(result.breached(), result.injector_gave_up(), &entry.rules);
            (result, counted)
        })
        .collect();
    let counted: Vec<Counted> = validators
        .iter()
        .map(|v| v.counted)
        .chain(experiments.iter().map(|(_, counted)| *counted))
        .collect();
    CheckpointResult {
        decision: gate::decide(&counted, &entry.rules),
        checkpoint,
        rules: entry.rules,
        validators,
        experiments,
        elapsed: started.elapsed(),
    }
}
