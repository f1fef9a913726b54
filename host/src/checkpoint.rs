//! Running the validators of one checkpoint concurrently on tokio.

use std::sync::Arc;

use crate::call::CallReport;
use crate::change::{Change, Checkpoint};
use crate::failure::{Failure, FailureKind};
use crate::limits::Limits;
use crate::plugin::Plugin;
use crate::verdict::Verdict;

/// One validator to run at a checkpoint, with its config (JSON text) and
/// limits.
#[derive(Debug, Clone)]
pub struct ValidatorRun {
    pub plugin: Plugin,
    pub config: String,
    pub limits: Limits,
}

/// Runs every validator on `change` concurrently (each in its own task and
/// store) and returns their reports in the order given.
pub async fn run_validators(
    runs: Vec<ValidatorRun>,
    change: Arc<Change>,
    at: &Checkpoint,
) -> Vec<CallReport<Verdict>> {
    let tasks: Vec<_> = runs
        .into_iter()
        .map(|run| {
            let change = Arc::clone(&change);
            let at = at.clone();
            let name = run.plugin.name().to_owned();
            let task = tokio::spawn(async move {
                run.plugin
                    .validate(change, &at, &run.config, &run.limits)
                    .await
            });
            (name, task)
        })
        .collect();
    let mut reports = Vec::with_capacity(tasks.len());
    for (name, task) in tasks {
        reports.push(task.await.unwrap_or_else(|err| {
            // Only a bug in the host could get here: plugin failures are
            // reports, not panics.
            CallReport::not_run(
                name,
                Failure::new(FailureKind::Trap, format!("host task failed: {err}")),
            )
        }));
    }
    reports
}
