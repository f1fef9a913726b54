//! Running checkpoints of a plan: loading the plan's plugins, running a
//! checkpoint's validators concurrently on a change, and deciding its gate.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tracing::Instrument;

use crate::call::CallReport;
use crate::change::{Change, Checkpoint};
use crate::failure::{Failure, FailureKind, OnError};
use crate::gate::{self, Counted, GateDecision};
use crate::plan::{CheckpointEntry, GateRules, Plan};
use crate::plugin::Plugin;
use crate::verdict::Verdict;

/// One validator's part in a checkpoint: what ran, its report, how it counted.
#[derive(Debug, Clone)]
pub struct ValidatorResult {
    /// The name in the plan (the plugin's name unless the plan renames it).
    pub name: String,
    pub plugin: String,
    /// sha256 of the component that ran.
    pub sha256: String,
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
    pub decision: GateDecision,
    pub elapsed: Duration,
}

/// Runs `entry`'s validators concurrently on `change` (each in its own task,
/// store and span tagged with plugin and checkpoint) and decides the gate.
/// `plugins` must hold every plugin the checkpoint uses, loaded.
pub async fn run_checkpoint(
    plan: &Plan,
    entry: &CheckpointEntry,
    plugins: &BTreeMap<String, Plugin>,
    change: Arc<Change>,
    change_id: &str,
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
            let span = tracing::info_span!("validator", plugin = %validator.name, checkpoint = %entry.name);
            tokio::spawn(
                async move { plugin.validate(change, &at, &config, &limits).await }.instrument(span),
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
            sha256: plugins
                .get(&validator.plugin)
                .map(|p| p.sha256().to_owned())
                .unwrap_or_default(),
            advisory: validator.advisory,
            on_error: declared.on_error,
            report,
            counted,
        });
    }
    let counted: Vec<Counted> = validators.iter().map(|v| v.counted).collect();
    CheckpointResult {
        decision: gate::decide(&counted, &entry.rules),
        checkpoint,
        rules: entry.rules,
        validators,
        elapsed: started.elapsed(),
    }
}
