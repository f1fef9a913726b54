//! Plugin configs checked by the host against the schema each plugin
//! declares: a config the schema refuses is a plan error at its own
//! file:line:column (exit 65) or, given with `--config`, a usage error
//! (exit 64), before any plugin runs; whole-number floats (`3.0`, `1e3`,
//! `-0.0`) reach every plugin as integers, and integers no plugin language
//! reads exactly are refused at load.

use std::path::{Path, PathBuf};
use std::process::Output;

use crate::util::guests;

fn cairn(args: &[&str]) -> Output {
    cairn_tests::run_bounded(
        cairn_tests::cairn_command(env!("CARGO_BIN_EXE_cairn-cli")).args(args),
        cairn_tests::SUBPROCESS_BOUND,
    )
}

fn examples() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../examples/changes")
}

/// A plan running retry-policy (whose schema says `max-attempts` is an
/// integer ≥ 1) with `config` on line 5.
fn plan_with(dir: &Path, config: &str) -> PathBuf {
    let plan = dir.join("plan.toml");
    std::fs::write(
        &plan,
        format!(
            "[plugins.retry-policy]\npath = {:?}\n\n[[checkpoint]]\nname = \"preflight\"\n\
             validators = [{{ plugin = \"retry-policy\", config = {config} }}]\n",
            guests::RETRY_POLICY
        ),
    )
    .unwrap();
    plan
}

fn check(plan: &Path) -> Output {
    cairn(&[
        "check",
        "--plan",
        plan.to_str().unwrap(),
        "--change",
        examples().join("safe-edit").to_str().unwrap(),
    ])
}

#[test]
fn a_config_the_plugins_schema_refuses_is_a_plan_error_at_the_values_line_and_column() {
    let dir = tempfile::tempdir().unwrap();
    let plan = plan_with(dir.path(), "{ max-attempts = \"4\" }");
    let out = check(&plan);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(65), "{stderr}");
    let expected = format!(
        "{}:6:53: checkpoint `preflight`, validator `retry-policy`: config/max-attempts: \
         \"4\" is not of type \"integer\" (the config schema of plugin `retry-policy`)",
        plan.display()
    );
    assert!(stderr.contains(&expected), "{expected}\nin:\n{stderr}");
    assert!(
        String::from_utf8_lossy(&out.stdout).is_empty(),
        "nothing ran"
    );

    // A violation with no value of its own (minimum) is at that value too.
    let plan = plan_with(dir.path(), "{ max-attempts = 0 }");
    let out = check(&plan);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(65), "{stderr}");
    assert!(
        stderr.contains(":6:53: ") && stderr.contains("minimum of 1"),
        "{stderr}"
    );
}

#[test]
fn whole_number_floats_reach_the_plugin_as_integers_and_unsafe_integers_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    for number in ["3.0", "1e3", "-0.0", "9007199254740991"] {
        let plan = plan_with(dir.path(), &format!("{{ max-attempts = {number} }}"));
        let out = check(&plan);
        // -0.0 is 0: below the schema's minimum, refused by the host for
        // every language alike.
        let expected = if number == "-0.0" { 65 } else { 0 };
        assert_eq!(
            out.status.code(),
            Some(expected),
            "{number}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let plan = plan_with(dir.path(), "{ max-attempts = 9007199254740992 }");
    let out = check(&plan);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(65), "{stderr}");
    assert!(
        stderr.contains("config.max-attempts is beyond ±(2^53-1)"),
        "{stderr}"
    );
}

#[test]
fn a_command_line_config_the_schema_refuses_is_a_usage_error_before_anything_runs() {
    let out = cairn(&[
        "validate",
        guests::RETRY_POLICY,
        "--change",
        examples().join("safe-edit").to_str().unwrap(),
        "--config",
        r#"{"max-attempts": "4"}"#,
    ]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(64), "{stderr}");
    assert!(
        stderr.contains("config/max-attempts: \"4\" is not of type \"integer\""),
        "{stderr}"
    );
    assert!(
        String::from_utf8_lossy(&out.stdout).is_empty(),
        "nothing ran"
    );
}

#[test]
fn a_command_line_config_reaches_the_plugin_with_whole_floats_as_integers() {
    for (config, code) in [
        (r#"{"max-attempts": 3.0}"#, 0),
        (r#"{"max-attempts": 1e3}"#, 0),
        (r#"{"max-attempts": 9007199254740993}"#, 64),
    ] {
        let out = cairn(&[
            "validate",
            guests::RETRY_POLICY,
            "--change",
            examples().join("safe-edit").to_str().unwrap(),
            "--config",
            config,
        ]);
        assert_eq!(
            out.status.code(),
            Some(code),
            "{config}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}
