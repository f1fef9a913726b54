//! The `cairn` command line as a user runs it: reports on stdout, the cause
//! chain on stderr, and each documented exit code.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;

use crate::util::guests;

fn examples() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/changes")
}

fn cairn(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_cairn-cli"))
        .args(args)
        .env("CAIRN_CACHE_DIR", cairn_tests::shared_cache_dir())
        .output()
        .expect("cairn runs")
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
    // The first inspect compiled it into the shared cache; the next says so.
    let again = stdout(&cairn(&["plugin", "info", guests::NO_DELETES]));
    assert!(again.contains("compiled (in the compile cache)"), "{again}");
}
