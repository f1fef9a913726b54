//! Helpers shared by the suite's modules.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use cairn_host::check::plan::{AdHocCheckpoint, AdHocPlugin, Plan};
use cairn_host::check::{self, CheckpointResult, NoProgress};
use cairn_host::{
    CallOutcome, CallReport, Change, Checkpoint, Document, Limits, Metric, Plugin, Runtime, Verdict,
};
pub use cairn_tests::{guests, within};

/// Loads a guest into the shared test runtime.
pub fn load(path: &str) -> Plugin {
    cairn_tests::runtime()
        .load_file(Path::new(path), None)
        .unwrap_or_else(|err| panic!("{path} loads: {err}"))
}

/// A small change: one modified, one added and one deleted document, plus
/// a metric.
pub fn sample_change() -> Arc<Change> {
    Arc::new(Change::new(
        [
            Document::new(
                "workflows/orders.json",
                Some(br#"{"steps": []}"#.to_vec()),
                Some(br#"{"steps": [1]}"#.to_vec()),
            ),
            Document::new(
                "tables/users.toml",
                None,
                Some(b"name = \"users\"\n".to_vec()),
            ),
            Document::new("connectors/legacy.json", Some(b"{}".to_vec()), None),
        ],
        vec![Metric {
            name: "error-rate".into(),
            value: 0.01,
        }],
    ))
}

/// A change no example validator objects to.
pub fn harmless_change() -> Arc<Change> {
    Arc::new(Change::new(
        [Document::new(
            "workflows/orders.json",
            Some(b"{}".to_vec()),
            Some(br#"{"a": 1}"#.to_vec()),
        )],
        Vec::new(),
    ))
}

/// Limits with a shorter deadline, to keep the suite fast.
pub fn limits_with_timeout(timeout: Duration) -> Limits {
    Limits {
        timeout,
        ..Limits::default()
    }
}

/// Runs the fixture in `mode` (extra config keys merged in) on the sample change.
pub async fn run_fixture(
    mode: &str,
    extra: serde_json::Value,
    limits: &Limits,
) -> CallReport<Verdict> {
    let mut config = serde_json::json!({ "mode": mode });
    if let (Some(config), Some(extra)) = (config.as_object_mut(), extra.as_object()) {
        config.extend(extra.clone());
    }
    validate_on(&cairn_tests::runtime(), guests::FIXTURE, &config, limits).await
}

/// Loads `guest` into `runtime` and validates the sample change with
/// `config` under `limits`.
pub async fn validate_on(
    runtime: &Runtime,
    guest: &str,
    config: &serde_json::Value,
    limits: &Limits,
) -> CallReport<Verdict> {
    runtime
        .load_file(Path::new(guest), None)
        .unwrap_or_else(|err| panic!("{guest} loads: {err}"))
        .validate(
            sample_change(),
            &Checkpoint::default(),
            &config.to_string(),
            limits,
        )
        .await
}

/// The verdict of a call that must have completed.
pub fn verdict(report: &CallReport<Verdict>) -> &Verdict {
    match &report.outcome {
        CallOutcome::Completed(verdict) => verdict,
        other => panic!("{} did not complete: {other:#?}", report.plugin),
    }
}

/// Proves the host still serves after a hostile call: a well-behaved
/// plugin, and the hostile plugin itself in a fresh store, both pass.
pub async fn assert_host_still_serves() {
    let next = load(guests::NO_DELETES)
        .validate(
            harmless_change(),
            &Checkpoint::default(),
            "{}",
            &Limits::default(),
        )
        .await;
    assert_eq!(
        verdict(&next).outcome,
        cairn_host::Outcome::Pass,
        "{next:#?}"
    );
    let again = run_fixture("behave", serde_json::json!({}), &Limits::default()).await;
    assert_eq!(
        verdict(&again).outcome,
        cairn_host::Outcome::Pass,
        "{again:#?}"
    );
}

/// Runs one ad-hoc checkpoint of `plugins` on `change` in `runtime`
/// through the library's one checkpoint runner (plugins load first).
pub async fn run_ad_hoc_checkpoint(
    runtime: &Runtime,
    checkpoint: AdHocCheckpoint,
    plugins: Vec<AdHocPlugin>,
    change: Arc<Change>,
) -> CheckpointResult {
    let plan = Plan::ad_hoc(checkpoint, plugins);
    let loaded = check::load_plugins(
        runtime,
        &plan,
        plan.plugins.keys().map(String::as_str),
        &NoProgress,
    )
    .unwrap_or_else(|err| panic!("plugins load: {err}"));
    check::run_checkpoint(&plan, &plan.checkpoints[0], &loaded, change, "test").await
}

/// examples/rollout (its plan and stand-in platform) copied into `dest`, its
/// plugins pointed at the suite's guests and its plan text rewritten by
/// `edit`. The rollout, server and replica tests run on such copies.
pub(crate) fn copy_rollout_example(dest: &std::path::Path, edit: impl FnOnce(String) -> String) {
    let source = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/rollout");
    std::fs::create_dir_all(dest.join("platform")).expect("mkdir");
    for file in ["platform/ctl.sh", "platform/baseline-metrics.json"] {
        std::fs::copy(source.join(file), dest.join(file)).expect("copy the example platform");
    }
    let plan = std::fs::read_to_string(source.join("plan.toml"))
        .expect("the example plan")
        .replace("../../plugins/well-formed", guests::WELL_FORMED)
        .replace(
            "../../plugins/destructive-change",
            guests::DESTRUCTIVE_CHANGE,
        )
        .replace("../../plugins/slo-gate", guests::SLO_GATE);
    std::fs::write(dest.join("plan.toml"), edit(plan)).expect("write the plan");
}
