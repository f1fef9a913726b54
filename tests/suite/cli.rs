//! The `cairn` command line as a user runs it: reports on stdout, the cause
//! chain on stderr, and each documented exit code.

use std::path::{Path, PathBuf};
use std::process::Output;

use serde_json::Value;

use crate::util::guests;

fn examples() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/changes")
}

fn cairn(args: &[&str]) -> Output {
    cairn_tests::run_bounded(
        cairn_tests::cairn_command(env!("CARGO_BIN_EXE_cairn-cli")).args(args),
        cairn_tests::SUBPROCESS_BOUND,
    )
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

fn example(name: &str) -> String {
    examples().join(name).display().to_string()
}

#[test]
fn risky_example_fails_with_findings_pointing_at_documents() {
    let out = cairn(&[
        "validate",
        guests::NO_DELETES,
        guests::WELL_FORMED,
        "--change",
        &example("risky-edit"),
    ]);
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(1), "{text}{}", stderr(&out));
    assert!(text.contains("connectors/crm.toml"), "{text}");
    assert!(text.contains("no-deletes/deleted"), "{text}");
    assert!(text.contains("workflows/order-sync.json"), "{text}");
    assert!(text.contains("well-formed/syntax"), "{text}");
    assert!(
        text.contains(" 7:72 "),
        "syntax error line:column is shown: {text}"
    );
    assert!(text.contains("result: FAIL"), "{text}");
}

#[test]
fn safe_example_passes_with_exit_code_zero() {
    let out = cairn(&[
        "validate",
        guests::NO_DELETES,
        guests::WELL_FORMED,
        "--change",
        &example("safe-edit"),
    ]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}{}",
        stdout(&out),
        stderr(&out)
    );
    assert!(stdout(&out).contains("result: PASS"));
}

#[test]
fn json_report_carries_outcome_verdicts_and_failure_kinds() {
    let out = cairn(&[
        "validate",
        guests::FIXTURE,
        "--change",
        &example("safe-edit"),
        "--config",
        r#"{"mode": "loop"}"#,
        "--timeout-ms",
        "100",
        "--format",
        "json",
    ]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let report: Value = serde_json::from_slice(&out.stdout).expect("stdout is JSON");
    assert_eq!(report["outcome"], "fail");
    let validator = &report["checkpoints"][0]["validators"][0];
    assert_eq!(validator["plugin"], "fixture");
    assert_eq!(validator["status"], "stopped");
    assert_eq!(validator["failure"]["kind"], "timeout");
    assert!(validator["elapsed-ms"].as_f64().unwrap() >= 100.0);
}

#[test]
fn on_error_warn_turns_a_stopped_plugin_into_a_warning() {
    let out = cairn(&[
        "validate",
        guests::FIXTURE,
        "--change",
        &example("safe-edit"),
        "--config",
        r#"{"mode": "panic"}"#,
        "--on-error",
        "warn",
    ]);
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(0), "{text}");
    assert!(text.contains("WARN") && text.contains("trap:"), "{text}");
}

#[test]
fn inconclusive_verdict_exits_3_and_an_ignored_refusal_passes() {
    let config = r#"{"mode": "inconclusive"}"#;
    let out = cairn(&[
        "validate",
        guests::FIXTURE,
        "--change",
        &example("safe-edit"),
        "--config",
        config,
    ]);
    assert_eq!(out.status.code(), Some(3), "{}", stdout(&out));
    assert!(stdout(&out).contains("INCONCLUSIVE"), "{}", stdout(&out));

    let config = r#"{"mode": "refuse"}"#;
    let args = [
        "validate",
        guests::FIXTURE,
        "--change",
        &example("safe-edit"),
        "--config",
        config,
    ];
    let out = cairn(&[&args[..], &["--on-error", "ignore"]].concat());
    assert_eq!(out.status.code(), Some(0), "{}", stdout(&out));
    assert!(
        stdout(&out).contains("plugin error: refusing on purpose"),
        "{}",
        stdout(&out)
    );
    assert_eq!(cairn(&args).status.code(), Some(1));
}

#[test]
fn unloadable_plugin_exits_67_with_the_cause() {
    let out = cairn(&[
        "validate",
        guests::CLI_COMMAND,
        "--change",
        &example("safe-edit"),
    ]);
    assert_eq!(out.status.code(), Some(67));
    assert!(
        stderr(&out).contains("exports no cairn interface"),
        "{}",
        stderr(&out)
    );

    let pin = "0".repeat(64);
    let out = cairn(&[
        "validate",
        guests::NO_DELETES,
        "--sha256",
        &pin,
        "--change",
        &example("safe-edit"),
    ]);
    assert_eq!(out.status.code(), Some(67));
    assert!(stderr(&out).contains("sha256 mismatch"), "{}", stderr(&out));
}

#[test]
fn unreadable_change_or_config_exits_66() {
    let out = cairn(&[
        "validate",
        guests::NO_DELETES,
        "--change",
        "/nonexistent/change",
    ]);
    assert_eq!(out.status.code(), Some(66));
    assert!(
        stderr(&out).contains("/nonexistent/change"),
        "{}",
        stderr(&out)
    );

    let out = cairn(&[
        "validate",
        guests::NO_DELETES,
        "--change",
        &example("safe-edit"),
        "--config",
        "{not json",
    ]);
    assert_eq!(out.status.code(), Some(66));
    assert!(stderr(&out).contains("not valid JSON"), "{}", stderr(&out));
}

#[test]
fn wrong_command_line_exits_64_and_help_exits_0() {
    assert_eq!(cairn(&["validate"]).status.code(), Some(64));
    assert_eq!(cairn(&["frobnicate"]).status.code(), Some(64));
    let help = cairn(&["--help"]);
    assert_eq!(help.status.code(), Some(0));
    let text = stdout(&help);
    assert!(
        text.contains("Exit codes:") && text.contains("validate"),
        "{text}"
    );
}

#[test]
fn plugin_inspect_shows_world_version_digest_imports_cache_and_info() {
    let out = cairn(&["plugin", "inspect", guests::NO_DELETES]);
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(0), "{text}{}", stderr(&out));
    assert!(
        text.contains("world:       validator (cairn:plugin@0.1.0)"),
        "{text}"
    );
    assert!(text.contains("name:        no-deletes"), "{text}");
    assert!(
        text.contains("cairn:plugin/change@0.1.0"),
        "imports are listed: {text}"
    );
    assert!(text.contains("config schema:"), "{text}");
    assert!(text.contains("initialized: no"), "{text}");
    let schema = stdout(&cairn(&["plugin", "inspect", guests::SCHEMA]));
    assert!(schema.contains("initialized: yes"), "{schema}");
    // The first inspect compiled it into the shared cache; the next says so.
    let again = stdout(&cairn(&["plugin", "info", guests::NO_DELETES]));
    assert!(again.contains("compiled (in the compile cache)"), "{again}");
}

/// Writes one golden case for the no-deletes plugin.
fn write_case(cases: &Path, name: &str, expected: &str) {
    let case = cases.join(name);
    std::fs::create_dir_all(case.join("change/before")).expect("mkdir");
    std::fs::write(case.join("change/before/gone.json"), "{}").expect("write");
    std::fs::write(case.join("expected.json"), expected).expect("write");
}

#[test]
fn plugin_test_runs_golden_cases_and_shows_what_differs() {
    let dir = tempfile::tempdir().expect("temp dir");
    let cases = dir.path();
    write_case(
        cases,
        "deletion-fails",
        r#"{"outcome": "fail", "findings": [{"rule": "no-deletes/deleted", "document": "gone.json"}]}"#,
    );
    let cases_arg = cases.display().to_string();
    let out = cairn(&["plugin", "test", guests::NO_DELETES, "--cases", &cases_arg]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}{}",
        stdout(&out),
        stderr(&out)
    );
    assert!(
        stdout(&out).contains("ok   deletion-fails"),
        "{}",
        stdout(&out)
    );

    write_case(
        cases,
        "wrong-expectation",
        r#"{"outcome": "pass", "findings": []}"#,
    );
    let out = cairn(&["plugin", "test", guests::NO_DELETES, "--cases", &cases_arg]);
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(text.contains("FAIL wrong-expectation"), "{text}");
    assert!(
        text.contains("no-deletes/deleted"),
        "the diff names the unexpected finding: {text}"
    );
    assert!(text.contains("2 cases, 1 failed"), "{text}");

    // An unreadable case is BROKEN (exit 1); the other case still runs.
    std::fs::write(cases.join("wrong-expectation/expected.json"), "{oops").expect("write");
    let out = cairn(&["plugin", "test", guests::NO_DELETES, "--cases", &cases_arg]);
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(1), "unreadable case: {text}");
    assert!(text.contains("ok   deletion-fails"), "{text}");
    assert!(
        text.contains("BROKEN wrong-expectation\n") && text.contains("expected.json: invalid JSON"),
        "{text}"
    );
    // A cases directory that cannot be listed is an input error.
    let missing = cases.join("no-such-dir").display().to_string();
    let out = cairn(&["plugin", "test", guests::NO_DELETES, "--cases", &missing]);
    assert_eq!(out.status.code(), Some(66), "{}", stderr(&out));
    assert!(stderr(&out).contains("no-such-dir"), "{}", stderr(&out));
}

#[test]
fn plugin_new_scaffolds_a_project_and_rejects_bad_names() {
    let dir = tempfile::tempdir().expect("temp dir");
    let dest = dir.path().display().to_string();
    let out = cairn(&[
        "plugin", "new", "my-check", "--lang", "rust", "--dir", &dest,
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(dir.path().join("my-check/Cargo.toml").is_file());
    assert!(
        stdout(&out).contains("created my-check (rust validator)"),
        "{}",
        stdout(&out)
    );
    let out = cairn(&["plugin", "new", "My Check", "--dir", &dest]);
    assert_eq!(out.status.code(), Some(64));
    assert!(
        stderr(&out).contains("invalid plugin name"),
        "{}",
        stderr(&out)
    );
    let out = cairn(&["plugin", "new", "my-check", "--dir", &dest]);
    assert_eq!(
        out.status.code(),
        Some(64),
        "an existing project is not overwritten"
    );
}

#[test]
fn plugin_logs_carry_the_plugin_and_checkpoint_names() {
    let out = cairn(&[
        "--log-format",
        "json",
        "-v",
        "validate",
        guests::FIXTURE,
        "--change",
        &example("safe-edit"),
        "--checkpoint",
        "canary-5",
        "--config",
        r#"{"mode": "log-flood"}"#,
    ]);
    let line = stderr(&out)
        .lines()
        .find(|l| l.contains("xxxxxxxx"))
        .map(str::to_owned)
        .unwrap_or_else(|| panic!("no plugin log line: {}", stderr(&out)));
    let record: Value = serde_json::from_str(&line).expect("JSON log line");
    assert_eq!(record["fields"]["plugin"], "fixture", "{record}");
    assert_eq!(record["span"]["checkpoint"], "canary-5", "{record}");
}

#[test]
fn compile_error_prints_its_real_cause_chain() {
    // A component cut in half: it has the component preamble, so it is
    // compiled, and the compiler says why it cannot be.
    let bytes = std::fs::read(guests::NO_DELETES).expect("guest reads");
    let dir = tempfile::tempdir().expect("temp dir");
    let truncated = dir.path().join("truncated.wasm");
    std::fs::write(&truncated, &bytes[..bytes.len() / 2]).expect("write");
    let out = cairn(&[
        "--no-cache",
        "validate",
        &truncated.display().to_string(),
        "--change",
        &example("safe-edit"),
    ]);
    assert_eq!(out.status.code(), Some(67), "{}", stderr(&out));
    let err = stderr(&out);
    let causes: Vec<&str> = err
        .lines()
        .filter_map(|line| line.trim_start().strip_prefix("caused by: "))
        .collect();
    assert!(
        err.starts_with("error: cannot load plugin"),
        "the error says what: {err}"
    );
    assert!(
        causes.iter().any(|c| c.contains("invalid component")),
        "the load error is a cause: {err}"
    );
    assert!(
        causes.len() >= 2,
        "the compiler's own reason follows as further causes, not flattened away: {err}"
    );
}

/// A plan over one bundled validator, in a temp dir.
fn one_validator_plan(dir: &Path) -> PathBuf {
    let plan = dir.join("cairn.toml");
    std::fs::write(
        &plan,
        format!(
            "[plugins.no-deletes]\npath = \"{}\"\n[[checkpoint]]\nname = \"a\"\nvalidators = [{{ plugin = \"no-deletes\" }}]\n",
            guests::NO_DELETES
        ),
    )
    .expect("write plan");
    plan
}

#[test]
fn an_output_that_names_an_input_or_cannot_be_written_is_refused_before_anything_runs() {
    let dir = tempfile::tempdir().expect("temp dir");
    let plan = one_validator_plan(dir.path());
    let plan_text = std::fs::read_to_string(&plan).expect("plan");
    let plan_arg = plan.display().to_string();
    let over_plan = cairn(&[
        "check",
        "--plan",
        &plan_arg,
        "--change",
        &example("safe-edit"),
        "--format",
        "json",
        "--output",
        &plan_arg,
    ]);
    assert_eq!(over_plan.status.code(), Some(64), "{}", stderr(&over_plan));
    assert!(
        stderr(&over_plan).contains("would overwrite an input"),
        "{}",
        stderr(&over_plan)
    );
    assert_eq!(
        std::fs::read_to_string(&plan).expect("plan"),
        plan_text,
        "the plan is intact"
    );
    assert!(stdout(&over_plan).is_empty(), "nothing ran");

    let nowhere = dir
        .path()
        .join("missing-dir/report.json")
        .display()
        .to_string();
    let unwritable = cairn(&[
        "check",
        "--plan",
        &plan_arg,
        "--change",
        &example("safe-edit"),
        "--output",
        &nowhere,
    ]);
    assert_eq!(
        unwritable.status.code(),
        Some(64),
        "{}",
        stderr(&unwritable)
    );
    assert!(
        stderr(&unwritable).contains("cannot write the report"),
        "{}",
        stderr(&unwritable)
    );
    assert!(stdout(&unwritable).is_empty(), "nothing ran");
}

#[test]
fn a_failed_run_removes_the_stale_report_of_an_earlier_run() {
    let dir = tempfile::tempdir().expect("temp dir");
    let plan = one_validator_plan(dir.path()).display().to_string();
    let report = dir.path().join("report.json");
    let report_arg = report.display().to_string();
    let ok = cairn(&[
        "check",
        "--plan",
        &plan,
        "--change",
        &example("safe-edit"),
        "--output",
        &report_arg,
    ]);
    assert_eq!(ok.status.code(), Some(0), "{}", stderr(&ok));
    let written: Value = serde_json::from_slice(&std::fs::read(&report).expect("report"))
        .expect("a complete JSON report");
    assert_eq!(written["outcome"], "pass");
    let failed = cairn(&[
        "check",
        "--plan",
        &plan,
        "--change",
        "/no/such/change",
        "--output",
        &report_arg,
    ]);
    assert_eq!(failed.status.code(), Some(66), "{}", stderr(&failed));
    assert!(
        !report.exists(),
        "the earlier PASS report no longer stands for this run"
    );
}

/// SIGKILL at seeded random moments while `cairn check` runs and writes its
/// report: the output path never holds a partial report (it is absent, the
/// previous complete report, or the new complete one). Quick mode in CI;
/// CAIRN_KILL_ROUNDS=200 for the full loop.
#[test]
fn a_kill_at_any_moment_never_leaves_a_partial_report() {
    use std::process::Stdio;
    let rounds: u64 = std::env::var("CAIRN_KILL_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(12);
    let seed: u64 = std::env::var("CAIRN_KILL_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(1, |d| d.as_nanos() as u64)
        });
    eprintln!(
        "kill-during-write: seed {seed} (CAIRN_KILL_SEED={seed} reproduces), {rounds} rounds"
    );
    let dir = tempfile::tempdir().expect("temp dir");
    let plan = one_validator_plan(dir.path()).display().to_string();
    let report = dir.path().join("report.sarif");
    let mut state = seed;
    let mut next = || {
        // SplitMix64.
        state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = state;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    };
    for round in 0..rounds {
        let delay = std::time::Duration::from_micros(next() % 400_000);
        let mut child = cairn_tests::cairn_command(env!("CARGO_BIN_EXE_cairn-cli"))
            .args([
                "check",
                "--plan",
                &plan,
                "--change",
                &example("safe-edit"),
                "--output",
                &report.display().to_string(),
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start cairn");
        std::thread::sleep(delay);
        let _ = child.kill();
        let _ = child.wait();
        if report.exists() {
            let text = std::fs::read(&report).expect("read report");
            let parsed: Result<Value, _> = serde_json::from_slice(&text);
            assert!(
                parsed.is_ok_and(|v| v["version"] == "2.1.0"),
                "seed {seed}, round {round}, kill after {delay:?}: a partial report at the output path:\n{}",
                String::from_utf8_lossy(&text)
            );
        }
        let leftovers: Vec<_> = std::fs::read_dir(dir.path())
            .expect("dir")
            .flatten()
            .filter(|e| {
                e.file_name()
                    .to_string_lossy()
                    .starts_with(".cairn-report-")
            })
            .collect();
        // A kill between creating the temp file and renaming it may leave
        // it; it is never at the output path, and it is removed here so the
        // next round starts clean.
        for leftover in leftovers {
            let _ = std::fs::remove_file(leftover.path());
        }
    }
}

#[test]
fn validate_names_a_plugin_by_its_own_info_name_in_every_language() {
    for guest in [
        guests::SECRETS_SCAN,
        guests::SECRETS_SCAN_PY,
        guests::SECRETS_SCAN_JS,
    ] {
        let out = cairn(&[
            "validate",
            guest,
            "--change",
            &example("safe-edit"),
            "--format",
            "json",
        ]);
        assert_eq!(out.status.code(), Some(0), "{guest}: {}", stderr(&out));
        let report: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON report");
        assert_eq!(
            report["checkpoints"][0]["validators"][0]["name"], "secrets-scan",
            "{guest}"
        );
    }
}
