//! Admission control: a checkpoint of a hundred Python (or JavaScript)
//! validators, more instances than the pool holds at once, gets
//! a hundred verdicts because calls wait for capacity; with a short wait the
//! excess ends as `overloaded` (a host condition, counted inconclusive and
//! never against the plugin), not as `trap`.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use cairn_host::check::gate::OnError;
use cairn_host::check::plan::{AdHocCheckpoint, AdHocPlugin};
use cairn_host::check::report::{self, CheckReport, RenderOptions};
use cairn_host::check::{self, CheckpointResult};
use cairn_host::{CallOutcome, Checkpoint, FailureKind, Limits, Outcome, Runtime, RuntimeConfig};

use crate::util::{guests, run_ad_hoc_checkpoint, within};

/// How many validators the checkpoint runs: more Python or JavaScript
/// instances than the default pool holds at once (64 instances and 512 core
/// instances; a Python one takes 14 core instances).
const VALIDATORS: usize = 100;

/// The per-call deadline of these tests. Dozens of interpreter instances
/// share two cores at once, so a call's wall time is many times its CPU
/// time; what is under test is admission, not the deadline.
const CALL_TIMEOUT: Duration = Duration::from_secs(30);

/// Outer bound of a whole checkpoint (loading included).
const CHECKPOINT_BOUND: Duration = Duration::from_secs(300);

fn runtime(admission_wait: Duration) -> Runtime {
    Runtime::new(RuntimeConfig {
        cache_dir: Some(cairn_tests::shared_cache_dir()),
        admission_wait,
        ..RuntimeConfig::default()
    })
    .expect("runtime starts")
}

fn safe_edit() -> Arc<cairn_host::Change> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/changes/safe-edit");
    Arc::new(check::read_change(&dir, None).expect("the example change reads"))
}

async fn hundred_of(runtime: &Runtime, guest: &str) -> CheckpointResult {
    let plugins = (0..VALIDATORS)
        .map(|_| AdHocPlugin::new(guest))
        .collect::<Vec<_>>();
    let checkpoint = AdHocCheckpoint {
        limits: Limits {
            timeout: CALL_TIMEOUT,
            ..Limits::default()
        },
        on_error: OnError::Fail,
        ..AdHocCheckpoint::default()
    };
    within(
        CHECKPOINT_BOUND,
        run_ad_hoc_checkpoint(runtime, checkpoint, plugins, safe_edit()),
    )
    .await
}

fn assert_every_validator_answered(result: &CheckpointResult, guest: &str) {
    assert_eq!(result.validators.len(), VALIDATORS);
    for validator in &result.validators {
        match &validator.report.outcome {
            CallOutcome::Completed(verdict) => assert_eq!(
                verdict.outcome,
                Outcome::Pass,
                "{guest}: {} on a safe edit",
                validator.name
            ),
            other => panic!("{guest}: {} did not answer: {other:?}", validator.name),
        }
    }
    assert_eq!(result.decision.outcome, Outcome::Pass, "{guest}");
}

fn assert_excess_is_overloaded_never_trap(result: &CheckpointResult) {
    let kinds: Vec<Option<FailureKind>> = result
        .validators
        .iter()
        .map(|v| v.report.failure_kind())
        .collect();
    let overloaded = kinds
        .iter()
        .filter(|k| **k == Some(FailureKind::Overloaded))
        .count();
    let completed = kinds.iter().filter(|k| k.is_none()).count();
    assert!(
        overloaded > 0,
        "a 1 ms admission wait cannot admit {VALIDATORS} interpreter instances at once: {kinds:?}"
    );
    assert_eq!(
        completed + overloaded,
        VALIDATORS,
        "every call either answered or was refused by admission, none trapped: {kinds:?}"
    );
    for validator in result
        .validators
        .iter()
        .filter(|v| v.counted.host_overloaded)
    {
        // Not held against the plugin: `on-error = fail` does not apply.
        assert_eq!(validator.counted.outcome, Outcome::Inconclusive);
        let CallOutcome::Stopped(failure) = &validator.report.outcome else {
            panic!("{:?}", validator.report.outcome);
        };
        assert!(failure.message.contains("host was overloaded"), "{failure}");
    }
    assert_eq!(result.decision.outcome, Outcome::Inconclusive);
    let report = CheckReport {
        plan: "(test)".into(),
        change: "examples/changes/safe-edit".into(),
        checkpoints: vec![result.clone()],
        skipped: Vec::new(),
    };
    let human = report::render(&report, report::Format::Human, &RenderOptions::default());
    assert!(
        human.contains(&format!(
            "the host was overloaded: {overloaded} validator(s) could not run"
        )),
        "{human}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hundred_python_validators_wait_for_capacity_and_all_answer() {
    let runtime = runtime(Duration::from_secs(120));
    let result = hundred_of(&runtime, guests::SECRETS_SCAN_PY).await;
    assert_every_validator_answered(&result, "python");
    assert_eq!(runtime.calls_waiting(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hundred_javascript_validators_wait_for_capacity_and_all_answer() {
    let runtime = runtime(Duration::from_secs(120));
    let result = hundred_of(&runtime, guests::SECRETS_SCAN_JS).await;
    assert_every_validator_answered(&result, "javascript");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_calls_past_a_short_admission_wait_are_overloaded_not_traps() {
    let runtime = runtime(Duration::from_millis(1));
    let result = hundred_of(&runtime, guests::SECRETS_SCAN_PY).await;
    assert_excess_is_overloaded_never_trap(&result);
    // The host still serves: with the burst gone, the next call on the same
    // runtime is admitted at once and answers.
    let plugin = runtime
        .load_file(Path::new(guests::SECRETS_SCAN_PY), None)
        .expect("loads");
    let next = within(
        CHECKPOINT_BOUND,
        plugin.validate(
            safe_edit(),
            &Checkpoint::default(),
            "{}",
            &Limits {
                timeout: CALL_TIMEOUT,
                ..Limits::default()
            },
        ),
    )
    .await;
    assert!(
        matches!(next.outcome, CallOutcome::Completed(_)),
        "{next:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn javascript_calls_past_a_short_admission_wait_are_overloaded_not_traps() {
    let runtime = runtime(Duration::from_millis(1));
    let result = hundred_of(&runtime, guests::SECRETS_SCAN_JS).await;
    assert_excess_is_overloaded_never_trap(&result);
}

#[test]
fn footprints_are_measured_per_plugin_and_an_interpreter_takes_more_than_rust() {
    let runtime = cairn_tests::runtime();
    let footprint = |guest: &str| {
        runtime
            .load_file(Path::new(guest), None)
            .unwrap_or_else(|err| panic!("{guest}: {err}"))
            .footprint()
    };
    let rust = footprint(guests::NO_DELETES);
    let python = footprint(guests::SECRETS_SCAN_PY);
    let javascript = footprint(guests::SECRETS_SCAN_JS);
    assert!(rust.core_instances >= 1 && rust.memories >= 1, "{rust:?}");
    // componentize-py links the interpreter, libc and its adapters as
    // separate core modules; each takes a pool slot of its own.
    assert!(
        python.core_instances > rust.core_instances && python.memories >= rust.memories,
        "python {python:?} vs rust {rust:?}"
    );
    assert!(
        javascript.core_instances >= rust.core_instances,
        "{javascript:?}"
    );
    let capacity = runtime.pool_capacity();
    for footprint in [rust, python, javascript] {
        assert!(footprint.core_instances <= capacity.core_instances);
        assert!(footprint.memories <= capacity.memories);
    }
}
