//! `cairn check` with plans: rollout order and gate rules, every report
//! format parsed back and checked, `--output`, every exit code, plan errors
//! with their location, `cairn lock`, and the bundled example plan.

use std::path::{Path, PathBuf};
use std::process::Output;

use serde_json::Value;

use crate::util::guests;

fn cairn(args: &[&str]) -> Output {
    cairn_tests::run_bounded(
        cairn_tests::cairn_command(env!("CARGO_BIN_EXE_cairn-cli")).args(args),
        cairn_tests::SUBPROCESS_BOUND,
    )
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn example_change(name: &str) -> String {
    repo()
        .join("examples/changes")
        .join(name)
        .display()
        .to_string()
}

/// A plan over the test guests, written into a temp dir.
struct TestPlan {
    dir: tempfile::TempDir,
}

impl TestPlan {
    fn new(checkpoints: &str) -> TestPlan {
        let dir = tempfile::tempdir().expect("temp dir");
        let plan = format!(
            r#"
[plugins.no-deletes]
path = "{no_deletes}"

[plugins.well-formed]
path = "{well_formed}"

[plugins.fixture]
path = "{fixture}"
limits = {{ timeout-ms = 200 }}
{checkpoints}"#,
            no_deletes = guests::NO_DELETES,
            well_formed = guests::WELL_FORMED,
            fixture = guests::FIXTURE,
        );
        std::fs::write(dir.path().join("cairn.toml"), plan).expect("write plan");
        TestPlan { dir }
    }

    fn path(&self) -> String {
        self.dir.path().join("cairn.toml").display().to_string()
    }

    fn check(&self, change: &str, extra: &[&str]) -> Output {
        let plan = self.path();
        cairn(
            &[
                &[
                    "check",
                    "--plan",
                    &plan,
                    "--change",
                    &example_change(change),
                ],
                extra,
            ]
            .concat(),
        )
    }
}

/// preflight: well-formed; staging: no-deletes (+ an advisory fixture).
const ROLLOUT: &str = r#"
[[checkpoint]]
name = "preflight"
validators = [{ plugin = "well-formed" }]

[[checkpoint]]
name = "staging"
rollout-percent = 0
validators = [
  { plugin = "no-deletes" },
  { plugin = "fixture", name = "loops", advisory = true, config = { mode = "loop" } },
]

[[checkpoint]]
name = "canary"
rollout-percent = 5
validators = [{ plugin = "well-formed" }]
"#;

#[test]
fn rollout_runs_in_order_and_stops_at_the_first_failing_gate() {
    let plan = TestPlan::new(ROLLOUT);
    let out = plan.check("remove-connector", &[]);
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}{}", text(&out.stderr));
    assert!(
        stdout.contains("checkpoint preflight") && stdout.contains("→ gate PASS"),
        "{stdout}"
    );
    assert!(
        stdout.contains("checkpoint staging") && stdout.contains("✗ gate FAIL"),
        "{stdout}"
    );
    assert!(
        stdout.contains("not run (the rollout stopped earlier): canary"),
        "{stdout}"
    );
    // The advisory plugin was stopped by the sandbox but only warns.
    assert!(
        stdout.contains("WARN (fail)") && stdout.contains("timeout:"),
        "{stdout}"
    );

    let out = plan.check("safe-edit", &[]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stdout));
}

#[test]
fn keep_going_and_checkpoint_selection_run_what_was_asked() {
    let plan = TestPlan::new(ROLLOUT);
    let out = plan.check("remove-connector", &["--keep-going"]);
    assert!(
        text(&out.stdout).contains("checkpoint canary"),
        "{}",
        text(&out.stdout)
    );
    let out = plan.check("remove-connector", &["--checkpoint", "canary"]);
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}");
    assert!(!stdout.contains("checkpoint staging"), "{stdout}");
    let out = plan.check("remove-connector", &["--checkpoint", "nope"]);
    assert_eq!(out.status.code(), Some(64));
    assert!(
        text(&out.stderr).contains("has no checkpoint `nope` (it has: preflight, staging, canary)")
    );
}

#[test]
fn warnings_exit_2_only_with_fail_on_warn() {
    let plan = TestPlan::new(
        r#"
[[checkpoint]]
name = "staging"
validators = [{ plugin = "fixture", config = { mode = "echo" } }]
"#,
    );
    assert_eq!(plan.check("safe-edit", &[]).status.code(), Some(0));
    let out = plan.check("safe-edit", &["--fail-on-warn"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stdout).contains("gate WARN (fail-on-warn)"),
        "{}",
        text(&out.stdout)
    );
}

#[test]
fn inconclusive_follows_the_plan_policy() {
    let checkpoint = |policy: &str| {
        format!(
            "[[checkpoint]]\nname = \"canary\"\ninconclusive = \"{policy}\"\nvalidators = [{{ plugin = \"fixture\", config = {{ mode = \"inconclusive\" }} }}]\n"
        )
    };
    let expectations = [("inconclusive", 3), ("fail", 1), ("warn", 0), ("pass", 0)];
    for (policy, code) in expectations {
        let plan = TestPlan::new(&checkpoint(policy));
        assert_eq!(
            plan.check("safe-edit", &[]).status.code(),
            Some(code),
            "policy {policy}"
        );
    }
}

#[test]
fn json_report_validates_against_its_schema() {
    let plan = TestPlan::new(ROLLOUT);
    let out = plan.check("remove-connector", &["--format", "json", "--keep-going"]);
    let report: Value = serde_json::from_slice(&out.stdout).expect("stdout is JSON");
    let schema: Value =
        serde_json::from_str(cairn_host::check::report::JSON_SCHEMA).expect("schema is JSON");
    let validator = jsonschema::validator_for(&schema).expect("schema compiles");
    let errors: Vec<String> = validator
        .iter_errors(&report)
        .map(|e| format!("{} at {}", e, e.instance_path()))
        .collect();
    assert!(errors.is_empty(), "{errors:#?}");

    assert_eq!(report["outcome"], "fail");
    assert_eq!(report["passed"], false);
    let staging = &report["checkpoints"][1];
    assert_eq!(staging["name"], "staging");
    let no_deletes = &staging["validators"][0];
    assert_eq!(no_deletes["status"], "completed");
    assert_eq!(no_deletes["findings"][0]["rule"], "no-deletes/deleted");
    assert_eq!(
        no_deletes["findings"][0]["location"]["document"],
        "connectors/erp.toml"
    );
    let loops = &staging["validators"][1];
    assert_eq!(
        (loops["status"].as_str(), loops["failure"]["kind"].as_str()),
        (Some("stopped"), Some("timeout"))
    );
    assert_eq!(
        (loops["outcome"].as_str(), loops["counts-as"].as_str()),
        (Some("fail"), Some("warn"))
    );

    // A report that breaks the schema is caught by the same check.
    let mut broken = report.clone();
    broken["checkpoints"][1]["validators"][0]["status"] = Value::from("finished");
    assert!(!validator.is_valid(&broken));
}

#[test]
fn junit_report_has_a_testcase_per_validator_with_failures_and_errors() {
    let plan = TestPlan::new(ROLLOUT);
    let out = plan.check("remove-connector", &["--format", "junit", "--keep-going"]);
    let xml = text(&out.stdout);
    let mut reader = quick_xml::Reader::from_str(&xml);
    let mut cases = Vec::new();
    let mut current = String::new();
    let mut elements = Vec::new();
    let mut failure_text = String::new();
    loop {
        match reader.read_event().expect("well-formed XML") {
            quick_xml::events::Event::Start(e) => {
                let name = String::from_utf8_lossy(e.name().as_ref()).into_owned();
                let attr = |key: &str| {
                    e.attributes()
                        .flatten()
                        .find(|a| a.key.as_ref() == key.as_bytes())
                        .map(|a| a.unescape_value().expect("attribute").into_owned())
                        .unwrap_or_default()
                };
                if name == "testcase" {
                    current = format!("{}/{}", attr("classname"), attr("name"));
                    cases.push(current.clone());
                } else if name == "failure" || name == "error" {
                    elements.push((current.clone(), name, attr("type")));
                }
            }
            quick_xml::events::Event::Text(t) => failure_text.push_str(&t.decode().expect("text")),
            quick_xml::events::Event::Eof => break,
            _ => {}
        }
    }
    assert_eq!(
        cases,
        [
            "cairn.preflight/well-formed",
            "cairn.staging/no-deletes",
            "cairn.staging/loops",
            "cairn.canary/well-formed"
        ]
    );
    // Only the blocking validator fails; the advisory timeout only warns.
    assert_eq!(
        elements,
        [(
            "cairn.staging/no-deletes".to_owned(),
            "failure".to_owned(),
            "fail".to_owned()
        )]
    );
    assert!(
        failure_text.contains("no-deletes/deleted connectors/erp.toml"),
        "{failure_text}"
    );
}

#[test]
fn junit_marks_a_stopped_required_validator_as_an_error() {
    let plan = TestPlan::new(
        "[[checkpoint]]\nname = \"c\"\nvalidators = [{ plugin = \"fixture\", config = { mode = \"panic\" } }]\n",
    );
    let xml = text(&plan.check("safe-edit", &["--format", "junit"]).stdout);
    assert!(xml.contains("<error type=\"trap\""), "{xml}");
    assert!(xml.contains("fixture panicked on purpose"), "{xml}");
}

#[test]
fn sarif_report_parses_as_sarif_2_1_0_with_locations() {
    let plan = TestPlan::new(
        "[[checkpoint]]\nname = \"c\"\nvalidators = [{ plugin = \"well-formed\" }, { plugin = \"no-deletes\" }]\n",
    );
    let out = plan.check(
        "risky-edit",
        &["--format", "sarif", "--path-prefix", "changes/risky/after"],
    );
    let sarif: serde_sarif::sarif::Sarif =
        serde_json::from_slice(&out.stdout).expect("valid SARIF");
    assert_eq!(sarif.version.to_string().trim_matches('"'), "2.1.0");
    assert_eq!(sarif.runs.len(), 2);
    let value: Value = serde_json::from_slice(&out.stdout).expect("JSON");
    let result = &value["runs"][0]["results"][0];
    assert_eq!(
        value["runs"][0]["tool"]["driver"]["name"],
        "cairn/well-formed"
    );
    assert_eq!(result["ruleId"], "well-formed/syntax");
    assert_eq!(result["level"], "error");
    let physical = &result["locations"][0]["physicalLocation"];
    assert_eq!(
        physical["artifactLocation"]["uri"],
        "changes/risky/after/workflows/order-sync.json"
    );
    assert_eq!(
        (
            physical["region"]["startLine"].as_u64(),
            physical["region"]["startColumn"].as_u64()
        ),
        (Some(7), Some(72))
    );
    assert_eq!(
        value["runs"][1]["results"][0]["ruleId"],
        "no-deletes/deleted"
    );
}

#[test]
fn github_report_emits_workflow_annotations() {
    let plan = TestPlan::new(
        "[[checkpoint]]\nname = \"c\"\nvalidators = [{ plugin = \"well-formed\" }, { plugin = \"fixture\", config = { mode = \"loop\" } }]\n",
    );
    let out = plan.check("risky-edit", &["--format", "github"]);
    let lines: Vec<String> = text(&out.stdout).lines().map(str::to_owned).collect();
    assert!(
        lines.iter().any(|l| l.starts_with("::error file=workflows/order-sync.json,line=7,col=72,title=well-formed/syntax (well-formed)::")),
        "{lines:#?}"
    );
    assert!(
        lines.iter().any(
            |l| l.starts_with("::error title=cairn%3A fixture at c::timeout%3A")
                || l.contains("::timeout: ran past")
        ),
        "{lines:#?}"
    );
    assert!(
        lines
            .iter()
            .any(|l| l == "::notice title=cairn checkpoint c::gate fail"),
        "{lines:#?}"
    );
}

#[test]
fn output_file_gets_the_report_and_stdout_the_human_summary() {
    let plan = TestPlan::new(ROLLOUT);
    let dir = tempfile::tempdir().expect("temp dir");
    let file = dir.path().join("report.sarif");
    let out = plan.check("safe-edit", &["--output", &file.display().to_string()]);
    assert_eq!(out.status.code(), Some(0));
    // The advisory looping fixture warns; the summary says so.
    assert!(
        text(&out.stdout).contains("result: WARN"),
        "{}",
        text(&out.stdout)
    );
    let written: Value =
        serde_json::from_str(&std::fs::read_to_string(&file).expect("report written"))
            .expect("JSON");
    assert_eq!(
        written["version"], "2.1.0",
        "format from the .sarif extension"
    );
    let out = plan.check(
        "safe-edit",
        &[
            "--output",
            &dir.path().join("report.txt").display().to_string(),
        ],
    );
    assert_eq!(
        out.status.code(),
        Some(64),
        "unknown extension needs --format"
    );
    let unwritable = dir
        .path()
        .join("no/such/dir/report.json")
        .display()
        .to_string();
    let out = plan.check("safe-edit", &["--output", &unwritable]);
    assert_eq!(
        out.status.code(),
        Some(64),
        "a report that cannot be written is refused up front, before any plugin runs"
    );
    assert!(
        text(&out.stderr).contains("cannot write the report"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn invalid_plan_exits_65_naming_file_line_and_column() {
    let plan =
        TestPlan::new("[[checkpoint]]\nname = \"c\"\nvalidators = [{ plugin = \"missing\" }]\n");
    let out = plan.check("safe-edit", &[]);
    assert_eq!(out.status.code(), Some(65));
    let stderr = text(&out.stderr);
    // The plan starts with a blank line; the checkpoint is on lines 11-13.
    assert!(
        stderr.contains(&format!(
            "{}:13:26: checkpoint `c`: unknown plugin `missing`",
            plan.path()
        )),
        "{stderr}"
    );
}

#[test]
fn unreadable_change_and_metrics_exit_66() {
    let plan = TestPlan::new(ROLLOUT);
    assert_eq!(plan.check("does-not-exist", &[]).status.code(), Some(66));
    let dir = tempfile::tempdir().expect("temp dir");
    let metrics = dir.path().join("metrics.json");
    std::fs::write(&metrics, "[1, 2]").expect("write");
    let out = plan.check("safe-edit", &["--metrics", &metrics.display().to_string()]);
    assert_eq!(out.status.code(), Some(66));
    assert!(
        text(&out.stderr).contains("invalid metrics file"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn metrics_file_reaches_the_validators() {
    let plan = TestPlan::new(
        "[[checkpoint]]\nname = \"c\"\nvalidators = [{ plugin = \"fixture\", config = { mode = \"echo\" } }]\n",
    );
    let dir = tempfile::tempdir().expect("temp dir");
    let metrics = dir.path().join("metrics.json");
    std::fs::write(&metrics, r#"{"error-rate": 0.02}"#).expect("write");
    let out = plan.check(
        "safe-edit",
        &[
            "--metrics",
            &metrics.display().to_string(),
            "--format",
            "json",
        ],
    );
    let report: Value = serde_json::from_slice(&out.stdout).expect("JSON");
    let findings = report["checkpoints"][0]["validators"][0]["findings"]
        .as_array()
        .expect("findings")
        .clone();
    assert!(
        findings
            .iter()
            .any(|f| f["message"] == r#"{"name":"error-rate","value":0.02}"#),
        "{findings:#?}"
    );
}

#[test]
fn lock_pins_digests_check_detects_staleness_and_pins_are_enforced() {
    let plan = TestPlan::new(ROLLOUT);
    let out = cairn(&["lock", "--plan", &plan.path(), "--check"]);
    assert_eq!(out.status.code(), Some(1), "missing pins fail --check");
    let out = cairn(&["lock", "--plan", &plan.path()]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let pinned = std::fs::read_to_string(plan.path()).expect("plan");
    assert_eq!(pinned.matches("sha256 = ").count(), 3, "{pinned}");
    assert!(
        pinned.contains("limits = { timeout-ms = 200 }"),
        "the rest of the file is kept: {pinned}"
    );
    assert_eq!(
        cairn(&["lock", "--plan", &plan.path(), "--check"])
            .status
            .code(),
        Some(0)
    );
    assert_eq!(plan.check("safe-edit", &[]).status.code(), Some(0));

    // Swap the pinned component for another one: the pin refuses it.
    let swapped = pinned.replace(guests::WELL_FORMED, guests::NO_DELETES);
    std::fs::write(plan.path(), swapped).expect("write");
    let out = plan.check("safe-edit", &[]);
    assert_eq!(out.status.code(), Some(67));
    assert!(
        text(&out.stderr).contains("sha256 mismatch"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn change_bundle_file_works_like_a_directory() {
    let plan = TestPlan::new(ROLLOUT);
    let dir = tempfile::tempdir().expect("temp dir");
    let bundle = dir.path().join("change.json");
    std::fs::write(
        &bundle,
        r#"{"documents": [{"path": "connectors/crm.toml", "before": "name = \"crm\"\n"}]}"#,
    )
    .expect("write");
    let plan_path = plan.path();
    let out = cairn(&[
        "check",
        "--plan",
        &plan_path,
        "--change",
        &bundle.display().to_string(),
    ]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stdout));
    assert!(text(&out.stdout).contains("connectors/crm.toml is deleted"));
}

#[test]
fn bundled_example_plan_passes_preflight_and_fails_staging() {
    let plan = repo().join("examples/cairn.toml").display().to_string();
    let out = cairn(&[
        "check",
        "--plan",
        &plan,
        "--change",
        &example_change("remove-connector"),
    ]);
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}{}", text(&out.stderr));
    assert!(
        stdout.contains("checkpoint preflight") && stdout.contains("→ gate PASS"),
        "{stdout}"
    );
    assert!(
        stdout.contains("checkpoint staging") && stdout.contains("✗ gate FAIL"),
        "{stdout}"
    );
    assert!(
        stdout.contains("connectors/erp.toml is deleted"),
        "{stdout}"
    );
}

#[test]
fn every_subcommand_help_explains_itself() {
    for (args, needle) in [
        (&["check", "--help"][..], "stopping at the first gate"),
        (&["validate", "--help"][..], "without a plan"),
        (&["lock", "--help"][..], "--check"),
        (&["plugin", "inspect", "--help"][..], "compile cache"),
        (&["proxy", "--help"][..], "Safety envelope"),
        (
            &["experiment", "replay", "--help"][..],
            "Exit code 0 when every decision",
        ),
        (&["check", "--help"][..], "--approve-experiments"),
    ] {
        let out = cairn(args);
        assert_eq!(out.status.code(), Some(0));
        assert!(
            text(&out.stdout).contains(needle),
            "{args:?}: {}",
            text(&out.stdout)
        );
    }
}

/// Runs the bundled plan on an example change; returns the exit code and
/// the JSON report.
fn example_check(change: &str, checkpoints: &[&str]) -> (Option<i32>, Value) {
    let plan = repo().join("examples/cairn.toml").display().to_string();
    let change = example_change(change);
    let mut args = vec![
        "check", "--plan", &plan, "--change", &change, "--format", "json",
    ];
    for checkpoint in checkpoints {
        args.extend(["--checkpoint", checkpoint]);
    }
    let out = cairn(&args);
    let report = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|err| panic!("{err}: {}{}", text(&out.stdout), text(&out.stderr)));
    (out.status.code(), report)
}

/// Every (rule, document, pointer) the report's findings point at.
fn finding_locations(report: &Value) -> Vec<(String, String, String)> {
    let mut found = Vec::new();
    for checkpoint in report["checkpoints"].as_array().into_iter().flatten() {
        for validator in checkpoint["validators"].as_array().into_iter().flatten() {
            for finding in validator["findings"].as_array().into_iter().flatten() {
                let location = &finding["location"];
                found.push((
                    finding["rule"].as_str().unwrap_or_default().to_owned(),
                    location["document"].as_str().unwrap_or_default().to_owned(),
                    location["pointer"].as_str().unwrap_or_default().to_owned(),
                ));
            }
        }
    }
    found
}

const BEFORE_DEPLOY: &[&str] = &["preflight", "staging"];

#[test]
fn example_plan_passes_the_safe_example_changes_before_deploy() {
    for change in [
        "safe-edit",
        "api-additive",
        "connector-scale-up",
        "table-widen-columns",
        "workflow-hardening",
    ] {
        let (code, report) = example_check(change, BEFORE_DEPLOY);
        assert_eq!(code, Some(0), "{change}: {report:#}");
    }
}

#[test]
fn example_plan_fails_the_dangerous_example_changes_at_the_right_place() {
    let cases = [
        (
            "risky-edit",
            "well-formed/syntax",
            "workflows/order-sync.json",
            "",
        ),
        (
            "remove-connector",
            "destructive/removed-document",
            "connectors/erp.toml",
            "",
        ),
        (
            "workflow-retry-storm",
            "retry/unbounded",
            "workflows/order-fulfilment.json",
            "/steps/1/retry/max_attempts",
        ),
        (
            "table-drop-column",
            "destructive/removed-item",
            "tables/crm/customers.json",
            "/columns/2",
        ),
        (
            "api-v2-breaking",
            "api/removed-response-field",
            "api/orders.openapi.yaml",
            "/components/schemas/Order/properties/total",
        ),
        (
            "connector-auth-rework",
            "destructive/renamed",
            "connectors/crm.yaml",
            "/signing_secret_ref",
        ),
    ];
    for (change, rule, document, pointer) in cases {
        let (code, report) = example_check(change, BEFORE_DEPLOY);
        assert_eq!(code, Some(1), "{change}: {report:#}");
        let expected = (rule.to_owned(), document.to_owned(), pointer.to_owned());
        let found = finding_locations(&report);
        assert!(
            found.contains(&expected),
            "{change}: no {expected:?} in {found:#?}"
        );
    }
}

#[test]
fn example_plan_canary_judges_observed_metrics() {
    assert_eq!(example_check("canary-healthy", &["canary-5"]).0, Some(0));
    let (code, report) = example_check("canary-degraded", &["canary-5"]);
    assert_eq!(code, Some(1));
    assert!(
        finding_locations(&report)
            .iter()
            .any(|(rule, ..)| rule == "slo/objective-failed"),
        "{report:#}"
    );
    // A missing metric leaves the canary gate inconclusive, not passed.
    assert_eq!(
        example_check("canary-missing-metrics", &["canary-5"]).0,
        Some(3)
    );
}

/// The fixture's `alloc` mode's report under a plan whose fixture has the
/// limit `setting` written in the plan or given as a flag; returns the JSON
/// validator entry.
fn fixture_under_limit(plan_limits: &str, flags: &[&str], mode: &str) -> Value {
    let dir = tempfile::tempdir().expect("temp dir");
    let plan = format!(
        r#"
[plugins.fixture]
path = "{fixture}"
{plan_limits}

[[checkpoint]]
name = "preflight"
validators = [{{ plugin = "fixture", config = {{ mode = "{mode}" }} }}]
"#,
        fixture = guests::FIXTURE,
    );
    let plan_path = dir.path().join("cairn.toml");
    std::fs::write(&plan_path, plan).expect("write plan");
    let plan_path = plan_path.display().to_string();
    let out = cairn(
        &[
            &[
                "check",
                "--plan",
                &plan_path,
                "--change",
                &example_change("safe-edit"),
                "--format",
                "json",
            ],
            flags,
        ]
        .concat(),
    );
    let report: Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|err| panic!("json report: {err}\n{}", text(&out.stderr)));
    report["checkpoints"][0]["validators"][0].clone()
}

#[test]
fn a_limit_in_the_plan_and_the_same_flag_mean_the_same_thing() {
    // (setting, flag, tight value, the most lenient value in range, mode, kind)
    for (setting, flag, value, lenient, mode, kind) in [
        (
            "timeout-ms",
            "--timeout-ms",
            "150",
            "600000",
            "sleep",
            "timeout",
        ),
        (
            "memory-mb",
            "--memory-mb",
            "2",
            "4096",
            "alloc",
            "memory-limit",
        ),
    ] {
        let in_plan =
            fixture_under_limit(&format!("limits = {{ {setting} = {value} }}"), &[], mode);
        let on_cli = fixture_under_limit("", &[flag, value], mode);
        assert_eq!(in_plan["failure"]["kind"], kind, "{setting}: {in_plan:#}");
        assert_eq!(
            in_plan["failure"], on_cli["failure"],
            "{setting} in the plan and {flag} on the command line differ"
        );
        // A flag replaces the plan's own setting.
        let overridden = fixture_under_limit(
            &format!("limits = {{ {setting} = {lenient} }}"),
            &[flag, value],
            mode,
        );
        assert_eq!(overridden["failure"], in_plan["failure"], "{setting}");
    }
}

#[test]
fn a_limit_out_of_range_is_refused_alike_in_the_plan_and_on_the_command_line() {
    let plan =
        TestPlan::new("[[checkpoint]]\nname = \"a\"\nvalidators = [{ plugin = \"fixture\" }]\n");
    let out = plan.check("safe-edit", &["--memory-mb", "5000"]);
    assert_eq!(out.status.code(), Some(64), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("memory-mb = 5000 is out of range (allowed: 1..=4096)"),
        "{}",
        text(&out.stderr)
    );
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("cairn.toml");
    std::fs::write(
        &path,
        format!(
            "[plugins.fixture]\npath = \"{}\"\nlimits = {{ memory-mb = 5000 }}\n[[checkpoint]]\nname = \"a\"\n",
            guests::FIXTURE
        ),
    )
    .expect("write plan");
    let out = cairn(&[
        "check",
        "--plan",
        &path.display().to_string(),
        "--change",
        &example_change("safe-edit"),
    ]);
    assert_eq!(out.status.code(), Some(65), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("memory-mb = 5000 is out of range (allowed: 1..=4096)"),
        "{}",
        text(&out.stderr)
    );
}
