//! The `references` validator: its golden cases through the wasm plugin,
//! every rule fired by a case, a 1 MB workflow judged inside the default
//! limits, and `cairn check` with the example plan failing the example
//! change `connector-still-used` at the referring values while every other
//! example change has no dangling reference.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Output;
use std::sync::Arc;
use std::time::Duration;

use cairn_host::authoring::golden::{self, CaseResult};
use cairn_host::{CallOutcome, Change, Checkpoint, Document, Limits, Outcome};
use serde_json::{Value, json};

use crate::util::{guests, load, within};

/// Outer bound of loading the plugin and running its golden cases: a
/// compile on a cold cache (seconds on a busy machine) and a dozen calls
/// under the default limits that end in milliseconds.
const GOLDEN_BOUND: Duration = Duration::from_secs(120);

/// Outer bound of loading the plugin and judging the 1 MB change: the load
/// as above, plus one call under the default limits.
const BIG_DOCUMENT_BOUND: Duration = Duration::from_secs(90);

/// The rules the cases must fire.
const RULES: &[&str] = &[
    "references/dangling",
    "references/already-dangling",
    "references/impact",
    "references/cycle",
];

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn cases_dir() -> PathBuf {
    repo().join("plugins/references/cases")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_golden_case_of_references_matches() {
    let results: Vec<CaseResult> = within(GOLDEN_BOUND, async {
        let plugin = load(guests::REFERENCES);
        golden::run_cases(&plugin, &cases_dir(), &Limits::default()).await
    })
    .await
    .unwrap_or_else(|err| panic!("cases of references: {err}"));
    assert!(results.len() >= 10, "only {} case(s)", results.len());
    let failed: Vec<String> = results
        .iter()
        .filter(|result| !result.passed())
        .map(|result| result.to_string())
        .collect();
    assert!(
        failed.is_empty(),
        "golden cases failed:\n{}",
        failed.join("\n")
    );
}

#[test]
fn every_references_rule_has_a_case_and_some_change_passes() {
    let cases = golden::load_cases(&cases_dir()).unwrap();
    let fired: BTreeSet<&str> = cases
        .iter()
        .flat_map(|case| case.expected.findings.iter().map(|f| f.rule.as_str()))
        .collect();
    for rule in RULES {
        assert!(fired.contains(rule), "no case expects {rule}");
    }
    assert!(
        cases
            .iter()
            .any(|case| case.expected.outcome == Some(Outcome::Pass)),
        "no case where the change is fine"
    );
    assert!(
        cases.iter().any(|case| case.expected.refused.is_some()),
        "no case with a refused config"
    );
}

/// About 1 MB of workflow whose steps name 50 connectors round robin; the
/// change deletes connector `c7`. Returns the documents and how many steps
/// name `c7`.
fn big_change(bytes: usize) -> (Vec<Document>, usize) {
    let step = |i: usize| {
        json!({"id": format!("step-{i}"), "connector": format!("c{}", i % 50),
               "operation": "updateContact", "method": "PUT", "timeout_ms": 5000,
               "input": {"contact": format!("{{{{ trigger.contact_{i} }}}}")}})
    };
    let per_step = serde_json::to_vec_pretty(&step(0)).unwrap().len() + 8;
    let steps = bytes / per_step;
    let workflow = json!({"name": "bulk-sync", "steps": (0..steps).map(step).collect::<Vec<_>>()});
    let text = serde_json::to_vec_pretty(&workflow).unwrap();
    assert!(text.len() >= bytes * 9 / 10, "only {} bytes", text.len());
    let mut documents = vec![Document::new(
        "workflows/bulk-sync.json",
        Some(text.clone()),
        Some(text),
    )];
    for i in 0..50 {
        let connector = format!("name = \"c{i}\"\n").into_bytes();
        let after = (i != 7).then(|| connector.clone());
        documents.push(Document::new(
            format!("connectors/c{i}.toml"),
            Some(connector),
            after,
        ));
    }
    (documents, (0..steps).filter(|i| i % 50 == 7).count())
}

#[tokio::test]
async fn references_judges_a_1mb_workflow_inside_the_default_limits() {
    let (documents, naming_c7) = big_change(1_000_000);
    let change = Arc::new(Change::new(documents, Vec::new()));
    let report = within(BIG_DOCUMENT_BOUND, async {
        load(guests::REFERENCES)
            .validate(change, &Checkpoint::default(), "{}", &Limits::default())
            .await
    })
    .await;
    let CallOutcome::Completed(verdict) = &report.outcome else {
        panic!("references did not complete: {:?}", report.outcome);
    };
    assert_eq!(verdict.outcome, Outcome::Fail);
    let dangling = verdict
        .findings
        .iter()
        .filter(|f| f.rule == "references/dangling")
        .count();
    // At most 200 listed, the rest counted in one closing finding.
    let expected = naming_c7.min(200) + usize::from(naming_c7 > 200);
    assert_eq!(dangling, expected, "{:?}", verdict.summary);
    assert!(
        report.elapsed < Limits::default().timeout,
        "took {:?}",
        report.elapsed
    );
}

fn cairn(args: &[&str]) -> Output {
    cairn_tests::run_bounded(
        cairn_tests::cairn_command(env!("CARGO_BIN_EXE_cairn-cli")).args(args),
        cairn_tests::SUBPROCESS_BOUND,
    )
}

/// `cairn check` of the example plan's preflight on an example change, as
/// JSON: the exit code and the report.
fn example_preflight(change: &str) -> (Option<i32>, Value) {
    let plan = repo().join("examples/cairn.toml").display().to_string();
    let change = repo().join("examples/changes").join(change);
    let out = cairn(&[
        "check",
        "--plan",
        &plan,
        "--change",
        &change.display().to_string(),
        "--checkpoint",
        "preflight",
        "--format",
        "json",
    ]);
    let report = serde_json::from_slice(&out.stdout).unwrap_or_else(|err| {
        panic!(
            "{err}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    });
    (out.status.code(), report)
}

/// (rule, document, pointer, line) of the references validator's findings
/// of `severity`.
fn references_findings(report: &Value, severity: &str) -> Vec<(String, String, String, u64)> {
    let mut found = Vec::new();
    for checkpoint in report["checkpoints"].as_array().into_iter().flatten() {
        for validator in checkpoint["validators"].as_array().into_iter().flatten() {
            if validator["plugin"] != "references" {
                continue;
            }
            for finding in validator["findings"].as_array().into_iter().flatten() {
                if finding["severity"] != severity {
                    continue;
                }
                let location = &finding["location"];
                found.push((
                    finding["rule"].as_str().unwrap_or_default().to_owned(),
                    location["document"].as_str().unwrap_or_default().to_owned(),
                    location["pointer"].as_str().unwrap_or_default().to_owned(),
                    location["line"].as_u64().unwrap_or_default(),
                ));
            }
        }
    }
    found.sort();
    found
}

#[test]
fn example_plan_fails_a_deleted_connector_still_used_and_a_dropped_column_still_mapped() {
    let (code, report) = example_preflight("connector-still-used");
    assert_eq!(code, Some(1), "{report:#}");
    assert_eq!(report["outcome"], "fail", "{report:#}");
    let expected = [
        (
            "references/dangling",
            "connectors/crm.yaml",
            "/mappings/1/column",
            11,
        ),
        (
            "references/dangling",
            "workflows/order-sync.json",
            "/steps/1/connector",
            15,
        ),
    ]
    .map(|(rule, document, pointer, line)| {
        (
            rule.to_owned(),
            document.to_owned(),
            pointer.to_owned(),
            line,
        )
    });
    assert_eq!(references_findings(&report, "error"), expected);
    // The two workflows call each other: one cycle, reported as info.
    let cycles: Vec<_> = references_findings(&report, "info")
        .into_iter()
        .filter(|f| f.0 == "references/cycle")
        .collect();
    assert_eq!(cycles.len(), 1, "{report:#}");
    // The other validators of preflight pass: only the references fail it.
    for validator in report["checkpoints"][0]["validators"].as_array().unwrap() {
        let expected = if validator["plugin"] == "references" {
            "fail"
        } else {
            "pass"
        };
        assert_eq!(validator["outcome"], expected, "{validator:#}");
    }
}

#[test]
fn no_other_example_change_has_a_dangling_reference() {
    let changes = std::fs::read_dir(repo().join("examples/changes")).unwrap();
    for change in changes {
        let name = change.unwrap().file_name().to_string_lossy().into_owned();
        if name == "connector-still-used" {
            continue;
        }
        let (_, report) = example_preflight(&name);
        for severity in ["error", "warning"] {
            assert_eq!(
                references_findings(&report, severity),
                [],
                "{name}: {report:#}"
            );
        }
    }
}
