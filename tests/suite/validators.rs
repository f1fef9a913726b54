//! The bundled validators (well-formed, schema, destructive-change,
//! api-contract, retry-policy, slo-gate, references): every golden case under `plugins/<name>/cases`
//! passes through the wasm plugin, every rule has a case that fires it, and
//! each plugin finishes a ~1 MB document inside the default limits.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use cairn_host::authoring::golden::{self, CaseResult};
use cairn_host::{CallOutcome, Change, Checkpoint, Document, Limits, Metric, Outcome};
use serde_json::json;

use crate::util::{guests, load, within};

/// Outer bound of loading one bundled validator and running its golden
/// cases: the load pre-initialises the schema plugin under the runtime's
/// default 10 s deadline and compiles on a cold cache (seconds on a busy
/// machine); each case is a call under the default limits (a 1 s deadline)
/// that ends in milliseconds. Past it a limit did not stop a call.
const GOLDEN_BOUND: Duration = Duration::from_secs(120);

/// Outer bound of loading one bundled validator and judging the 1 MB
/// document: the load as above, plus one call under the default limits.
const BIG_DOCUMENT_BOUND: Duration = Duration::from_secs(90);

/// Each plugin with cases: (directory under `plugins/`, wasm guest, the
/// rules its cases must fire).
const PLUGINS: &[(&str, &str, &[&str])] = &[
    (
        "well-formed",
        guests::WELL_FORMED,
        &["well-formed/syntax", "well-formed/encoding"],
    ),
    (
        "schema",
        guests::SCHEMA,
        &[
            "schema/type",
            "schema/required",
            "schema/enum",
            "schema/unparsable",
            "schema/missing-schema",
            "schema/invalid-schema",
        ],
    ),
    (
        "destructive-change",
        guests::DESTRUCTIVE_CHANGE,
        &[
            "destructive/removed-document",
            "destructive/removed-field",
            "destructive/removed-item",
            "destructive/type-narrowed",
            "destructive/became-required",
            "destructive/renamed",
            "destructive/bulk-deletion",
        ],
    ),
    (
        "api-contract",
        guests::API_CONTRACT,
        &[
            "api/added-media-type",
            "api/added-operation",
            "api/added-parameter",
            "api/added-path",
            "api/added-request-field",
            "api/added-response",
            "api/added-response-field",
            "api/added-webhook",
            "api/changed-auth",
            "api/changed-default",
            "api/changed-pattern",
            "api/narrowed-constraint",
            "api/narrowed-enum",
            "api/new-pattern",
            "api/new-required-parameter",
            "api/new-required-request-body",
            "api/new-required-request-field",
            "api/removed-auth",
            "api/removed-before-sunset",
            "api/removed-deprecated",
            "api/removed-media-type",
            "api/removed-operation",
            "api/removed-optional-response-header",
            "api/removed-parameter",
            "api/removed-path",
            "api/removed-request-body",
            "api/removed-request-field",
            "api/removed-response",
            "api/removed-response-field",
            "api/removed-response-header",
            "api/removed-spec",
            "api/removed-webhook",
            "api/request-became-not-nullable",
            "api/request-composition-narrowed",
            "api/response-became-nullable",
            "api/response-composition-widened",
            "api/response-field-became-optional",
            "api/response-field-no-longer-write-only",
            "api/response-header-became-optional",
            "api/retyped-parameter",
            "api/retyped-request-field",
            "api/retyped-response-field",
            "api/widened-response-constraint",
            "api/widened-response-enum",
        ],
    ),
    (
        "retry-policy",
        guests::RETRY_POLICY,
        &[
            "retry/missing-retry",
            "retry/unbounded",
            "retry/too-many-attempts",
            "retry/no-backoff",
            "retry/not-exponential",
            "retry/zero-delay",
            "retry/uncapped-backoff",
            "retry/missing-timeout",
            "retry/missing-idempotency-key",
        ],
    ),
    (
        "slo-gate",
        guests::SLO_GATE,
        &[
            "slo/objective-met",
            "slo/objective-warned",
            "slo/objective-failed",
            "slo/missing-metric",
        ],
    ),
    (
        "references",
        guests::REFERENCES,
        &[
            "references/dangling",
            "references/already-dangling",
            "references/impact",
            "references/cycle",
        ],
    ),
];

fn plugins_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../plugins")
}

fn cases_dir(plugin: &str) -> PathBuf {
    plugins_dir().join(plugin).join("cases")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_golden_case_of_every_bundled_validator_matches() {
    let mut report = Vec::new();
    let mut failed = 0;
    for (name, guest, _) in PLUGINS {
        let results: Vec<CaseResult> = within(GOLDEN_BOUND, async {
            let plugin = load(guest);
            golden::run_cases(&plugin, &cases_dir(name), &Limits::default()).await
        })
        .await
        .unwrap_or_else(|err| panic!("cases of {name}: {err}"));
        assert!(results.len() >= 2, "{name} has {} case(s)", results.len());
        for result in results {
            failed += usize::from(!result.passed());
            report.push(format!("{name}: {result}"));
        }
    }
    assert_eq!(
        failed,
        0,
        "{failed} golden case(s) failed:\n{}",
        report.join("\n")
    );
}

#[test]
fn every_plugin_with_cases_is_run_by_the_suite() {
    let listed: BTreeSet<&str> = PLUGINS.iter().map(|(name, _, _)| *name).collect();
    // Fault injectors' cases (a `request.json` each) are run by
    // `injectors::every_fault_injector_with_cases_is_run_by_the_suite`.
    let is_injector_cases = |cases: &std::path::Path| {
        std::fs::read_dir(cases)
            .map(|dir| {
                dir.flatten()
                    .any(|case| case.path().join("request.json").is_file())
            })
            .unwrap_or(false)
    };
    for entry in std::fs::read_dir(plugins_dir()).unwrap() {
        let entry = entry.unwrap();
        let cases = entry.path().join("cases");
        if cases.is_dir() && !is_injector_cases(&cases) {
            let name = entry.file_name().to_string_lossy().into_owned();
            assert!(
                listed.contains(name.as_str()),
                "plugins/{name}/cases is not run: add it to PLUGINS"
            );
        }
    }
}

#[test]
fn every_rule_has_a_case_that_fires_it_and_every_plugin_a_passing_case() {
    for (name, _, rules) in PLUGINS {
        let cases = golden::load_cases(&cases_dir(name)).unwrap();
        let fired: BTreeSet<&str> = cases
            .iter()
            .flat_map(|case| case.expected.findings.iter().map(|f| f.rule.as_str()))
            .collect();
        for rule in *rules {
            assert!(fired.contains(rule), "{name}: no case expects {rule}");
        }
        assert!(
            cases
                .iter()
                .any(|case| case.expected.outcome == Some(Outcome::Pass)),
            "{name}: no case where the change is fine"
        );
    }
}

/// Issue 11 item 7: `well-formed` passed malformed YAML ("0 document(s)
/// checked"). Each malformed YAML document fails at the line and column
/// where the parser stopped; an empty stream and a stream of comments are
/// valid YAML (no document) and pass, but count as checked.
#[tokio::test]
async fn well_formed_fails_each_malformed_yaml_document_at_its_line_and_column() {
    // (path, text, expected 1-based line and column of the finding)
    let malformed: &[(&str, &str, (u32, u32))] = &[
        // The key at the wrong indentation: the parser stops at its `:`.
        ("bad-indent.yaml", "a:\n  b: 1\n c: 2\n", (3, 3)),
        // The quote that is never closed.
        ("unclosed-quote.yaml", "a: \"abc\nb: 2\n", (1, 4)),
        // The end of the text, where `}` was expected.
        ("unclosed-flow.yml", "a: {x: 1\n", (2, 1)),
        // The tab itself, not the scalar before it.
        ("tab-indent.yaml", "a:\n\tb: 1\n", (2, 1)),
        ("tab-in-list.yaml", "k: v\nl:\n  - a\n\t- b\n", (4, 1)),
        // The second document of three.
        ("stream.yaml", "---\na: 1\n---\nb: [1\n---\nc: 3\n", (5, 1)),
    ];
    let fine: &[(&str, &str)] = &[
        ("empty.yaml", ""),
        ("comments.yml", "# nothing here yet\n# name: erp\n"),
        ("two-documents.yaml", "---\na: 1\n---\nb: [1, 2]\n...\n"),
    ];
    let documents = malformed
        .iter()
        .map(|(path, text, _)| (path, text))
        .chain(fine.iter().map(|(path, text)| (path, text)))
        .map(|(path, text)| Document::new(*path, None, Some(text.as_bytes().to_vec())));
    let change = Arc::new(Change::new(documents, Vec::new()));
    let report = within(BIG_DOCUMENT_BOUND, async {
        load(guests::WELL_FORMED)
            .validate(change, &Checkpoint::default(), "{}", &Limits::default())
            .await
    })
    .await;
    let CallOutcome::Completed(verdict) = &report.outcome else {
        panic!("well-formed did not complete: {:?}", report.outcome);
    };
    assert_eq!(verdict.outcome, Outcome::Fail);
    assert_eq!(
        verdict.summary.as_deref(),
        Some(
            format!(
                "{} document(s) checked, {} malformed",
                malformed.len() + fine.len(),
                malformed.len()
            )
            .as_str()
        )
    );
    for (path, _, (line, column)) in malformed {
        let finding = verdict
            .findings
            .iter()
            .find(|f| f.location.as_ref().is_some_and(|l| l.document == *path))
            .unwrap_or_else(|| panic!("no finding for {path}: {:?}", verdict.findings));
        assert_eq!(finding.rule, "well-formed/syntax", "{path}");
        let location = finding.location.as_ref().expect("located");
        assert_eq!(
            (location.line, location.column),
            (Some(*line), Some(*column)),
            "{path}: {}",
            finding.message
        );
    }
    assert_eq!(
        verdict.findings.len(),
        malformed.len(),
        "{:?}",
        verdict.findings
    );
}

/// A document of about this many bytes for the limits test: the issue's
/// "1 MB document".
const BIG_DOCUMENT_BYTES: usize = 1_000_000;

/// A workflow of well-configured connector steps, about `bytes` long.
fn big_workflow(bytes: usize) -> serde_json::Value {
    let step = |i: usize| {
        json!({"id": format!("step-{i}"), "connector": "crm", "operation": "updateContact",
               "method": "PUT", "timeout_ms": 5000,
               "retry": {"max_attempts": 3, "backoff": {"type": "exponential", "initial_delay_ms": 200, "max_delay_ms": 10000}},
               "input": {"contact": format!("{{{{ trigger.contact_{i} }}}}")}})
    };
    let per_step = pretty(&json!({"steps": [step(0), step(1)]})).len() / 2;
    json!({"name": "bulk-sync", "trigger": {"type": "schedule", "cron": "0 * * * *"},
           "steps": (0..bytes / per_step).map(step).collect::<Vec<_>>()})
}

/// An OpenAPI document with enough paths to weigh about `bytes`.
fn big_openapi(bytes: usize) -> serde_json::Value {
    let item = json!({"get": {"parameters": [{"in": "query", "name": "limit", "schema": {"type": "integer"}}],
        "responses": {"200": {"description": "ok", "content": {"application/json": {"schema": {"type": "object",
            "properties": {"id": {"type": "string"}, "total": {"type": "number"}, "status": {"type": "string", "enum": ["open", "paid"]}}}}}}}}});
    let per_path = pretty(&json!({"paths": {"/resources-0/{id}": item}})).len();
    let paths: serde_json::Map<String, serde_json::Value> = (0..bytes / per_path)
        .map(|i| (format!("/resources-{i}/{{id}}"), item.clone()))
        .collect();
    json!({"openapi": "3.1.0", "info": {"title": "big", "version": "1"}, "paths": paths})
}

fn pretty(value: &serde_json::Value) -> Vec<u8> {
    serde_json::to_vec_pretty(value).unwrap()
}

#[tokio::test]
async fn each_bundled_validator_judges_a_1mb_document_inside_the_default_limits() {
    let workflow = big_workflow(BIG_DOCUMENT_BYTES);
    let mut trimmed = workflow.clone();
    trimmed["steps"].as_array_mut().unwrap().pop();
    let mut retyped = workflow.clone();
    retyped["steps"][7]["retry"]["max_attempts"] = json!(-1);
    let api = big_openapi(BIG_DOCUMENT_BYTES);
    let mut api_after = api.clone();
    api_after["paths"]
        .as_object_mut()
        .unwrap()
        .remove("/resources-3/{id}");
    let schema = json!({"type": "object", "required": ["name", "steps"],
        "properties": {"steps": {"type": "array", "items": {"type": "object", "required": ["id", "connector"],
            "properties": {"id": {"type": "string"}, "timeout_ms": {"type": "integer", "maximum": 4000}}}}}});

    let runs: Vec<(&str, &str, Vec<Document>, String, &str)> = vec![
        (
            "schema",
            guests::SCHEMA,
            vec![Document::new(
                "workflows/big.json",
                None,
                Some(pretty(&workflow)),
            )],
            json!({"schemas": [{"documents": ["workflows/*"], "schema": schema}]}).to_string(),
            "schema/maximum",
        ),
        (
            "destructive-change",
            guests::DESTRUCTIVE_CHANGE,
            vec![Document::new(
                "workflows/big.json",
                Some(pretty(&workflow)),
                Some(pretty(&trimmed)),
            )],
            "{}".into(),
            "destructive/removed-item",
        ),
        (
            "api-contract",
            guests::API_CONTRACT,
            vec![Document::new(
                "api/openapi.json",
                Some(pretty(&api)),
                Some(pretty(&api_after)),
            )],
            "{}".into(),
            "api/removed-path",
        ),
        (
            "retry-policy",
            guests::RETRY_POLICY,
            vec![Document::new(
                "workflows/big.json",
                Some(pretty(&workflow)),
                Some(pretty(&retyped)),
            )],
            "{}".into(),
            "retry/unbounded",
        ),
        (
            "slo-gate",
            guests::SLO_GATE,
            vec![Document::new(
                "workflows/big.json",
                None,
                Some(pretty(&workflow)),
            )],
            "{}".into(),
            "slo/objective-met",
        ),
    ];
    for (name, guest, documents, config, expected_rule) in runs {
        let size: usize = documents
            .iter()
            .filter_map(|d| d.after.as_ref())
            .map(Vec::len)
            .sum();
        assert!(
            size >= BIG_DOCUMENT_BYTES * 9 / 10,
            "{name}: document is only {size} bytes"
        );
        let metrics = ["error-rate", "latency-p99-ms", "cpu-saturation"]
            .map(|name| Metric {
                name: name.into(),
                value: 0.001,
            })
            .to_vec();
        let change = Arc::new(Change::new(documents, metrics));
        let report = within(BIG_DOCUMENT_BOUND, async {
            load(guest)
                .validate(change, &Checkpoint::default(), &config, &Limits::default())
                .await
        })
        .await;
        let CallOutcome::Completed(verdict) = &report.outcome else {
            panic!(
                "{name} did not complete on a 1 MB document: {:?}",
                report.outcome
            );
        };
        assert!(
            verdict.findings.iter().any(|f| f.rule == expected_rule),
            "{name}: expected a {expected_rule} finding, got {:?}",
            verdict.findings.iter().map(|f| &f.rule).collect::<Vec<_>>()
        );
        assert!(
            report.elapsed < Limits::default().timeout,
            "{name} took {:?}",
            report.elapsed
        );
        assert!(
            report.peak_memory_bytes < Limits::default().memory_bytes,
            "{name}"
        );
        eprintln!(
            "{name}: {:?}, peak {} MiB",
            report.elapsed,
            report.peak_memory_bytes >> 20
        );
    }
}
