//! Running a checkpoint: validators run concurrently and report in order;
//! the bundled example plugins give the verdicts they promise.

use std::sync::Arc;
use std::time::{Duration, Instant};

use cairn_host::check::plan::{AdHocCheckpoint, AdHocPlugin};
use cairn_host::{Change, Checkpoint, Document, FailureKind, Limits, Outcome};

use crate::util::{
    guests, harmless_change, load, run_ad_hoc_checkpoint, sample_change, verdict, within,
};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn validators_of_a_checkpoint_run_concurrently_and_report_in_order() {
    let sleeper = || AdHocPlugin {
        config: Some(r#"{"mode": "sleep"}"#.into()),
        limits: Some(Limits {
            timeout: Duration::from_millis(500),
            ..Limits::default()
        }),
        ..AdHocPlugin::new(guests::FIXTURE)
    };
    let mut plugins: Vec<AdHocPlugin> = (0..4).map(|_| sleeper()).collect();
    plugins.push(AdHocPlugin::new(guests::NO_DELETES));

    let started = Instant::now();
    let result = within(
        Duration::from_secs(30),
        run_ad_hoc_checkpoint(
            &cairn_tests::runtime(),
            AdHocCheckpoint::default(),
            plugins,
            sample_change(),
        ),
    )
    .await;
    let elapsed = started.elapsed();

    let names: Vec<&str> = result.validators.iter().map(|v| v.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "fixture",
            "fixture-2",
            "fixture-3",
            "fixture-4",
            "no_deletes"
        ]
    );
    for validator in &result.validators[..4] {
        assert_eq!(validator.report.failure_kind(), Some(FailureKind::Timeout));
    }
    assert_eq!(result.validators[4].report.plugin, "no_deletes");
    // Four 500 ms sleepers back to back would take 2 s.
    assert!(
        elapsed < Duration::from_millis(1500),
        "not concurrent: {elapsed:?}"
    );
}

#[tokio::test]
async fn no_deletes_fails_a_deletion_and_points_at_the_document() {
    let report = load(guests::NO_DELETES)
        .validate(
            sample_change(),
            &Checkpoint::default(),
            "{}",
            &Limits::default(),
        )
        .await;
    let verdict = verdict(&report);
    assert_eq!(verdict.outcome, Outcome::Fail);
    assert_eq!(verdict.findings.len(), 1);
    assert_eq!(verdict.findings[0].rule, "no-deletes/deleted");
    assert_eq!(
        verdict.findings[0].location.as_ref().unwrap().document,
        "connectors/legacy.json"
    );
}

#[tokio::test]
async fn no_deletes_honours_its_allowlist_and_rejects_bad_config() {
    let plugin = load(guests::NO_DELETES);
    let allowed = plugin
        .validate(
            sample_change(),
            &Checkpoint::default(),
            r#"{"allow": ["connectors/*"]}"#,
            &Limits::default(),
        )
        .await;
    assert_eq!(verdict(&allowed).outcome, Outcome::Pass);
    let bad = plugin
        .validate(
            sample_change(),
            &Checkpoint::default(),
            r#"{"alow": []}"#,
            &Limits::default(),
        )
        .await;
    assert!(
        matches!(&bad.outcome, cairn_host::CallOutcome::Refused(reason) if reason.contains("alow")),
        "{bad:#?}"
    );
}

#[tokio::test]
async fn well_formed_reports_syntax_errors_with_line_and_column() {
    let change = Arc::new(Change::new(
        [
            Document::new("ok.json", None, Some(b"{\"a\": 1}".to_vec())),
            Document::new(
                "broken.json",
                None,
                Some(b"{\n  \"a\": 1,\n  \"b\": ]\n}".to_vec()),
            ),
            Document::new(
                "broken.toml",
                Some(b"a = 1".to_vec()),
                Some(b"a = 1\nb = = 2\n".to_vec()),
            ),
        ],
        Vec::new(),
    ));
    let report = load(guests::WELL_FORMED)
        .validate(change, &Checkpoint::default(), "{}", &Limits::default())
        .await;
    let verdict = verdict(&report);
    assert_eq!(verdict.outcome, Outcome::Fail);
    let positions: Vec<_> = verdict
        .findings
        .iter()
        .map(|f| {
            let l = f.location.as_ref().unwrap();
            (l.document.as_str(), l.line, l.column)
        })
        .collect();
    assert_eq!(
        positions,
        vec![
            ("broken.json", Some(3), Some(8)),
            ("broken.toml", Some(2), Some(5))
        ]
    );
    let clean = load(guests::WELL_FORMED)
        .validate(
            harmless_change(),
            &Checkpoint::default(),
            "{}",
            &Limits::default(),
        )
        .await;
    assert_eq!(crate::util::verdict(&clean).outcome, Outcome::Pass);
}
