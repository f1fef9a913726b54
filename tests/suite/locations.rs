//! Lines from pointers, end to end: a bundled validator (secrets-scan)
//! locates findings in JSON only by an RFC 6901 pointer; the real `cairn`
//! binary fills in the line and column before writing SARIF and GitHub
//! annotations.

use std::path::Path;
use std::process::Output;

use serde_json::Value;

use crate::util::guests;

fn cairn(args: &[&str]) -> Output {
    cairn_tests::run_bounded(
        cairn_tests::cairn_command(env!("CARGO_BIN_EXE_cairn-cli")).args(args),
        cairn_tests::SUBPROCESS_BOUND,
    )
}

/// A change whose new `config/app.json` holds an AWS key deep inside,
/// behind a key with `/` and `~` and a line with non-ASCII text before it.
fn change_with_a_secret(dir: &Path) {
    let after = dir.join("after/config");
    std::fs::create_dir_all(&after).expect("after dir");
    let key = format!("AKIA{}", "ABCDEFGHIJKLMNOP");
    let json = format!(
        "{{\n  \"name\": \"shop\",\n  \"a/b~c\": {{\n    \"ünïcode\": [\"x\", {{\"k\": \"{key}\"}}]\n  }}\n}}\n"
    );
    std::fs::write(after.join("app.json"), json).expect("write app.json");
}

fn validate(change: &Path, format: &str) -> Output {
    cairn(&[
        "validate",
        guests::SECRETS_SCAN,
        "--change",
        &change.display().to_string(),
        "--format",
        format,
    ])
}

#[test]
fn a_pointer_only_finding_gets_its_line_in_sarif_and_github_annotations() {
    let dir = tempfile::tempdir().expect("temp dir");
    change_with_a_secret(dir.path());

    let out = validate(dir.path(), "sarif");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    let sarif: Value = serde_json::from_slice(&out.stdout).expect("stdout is SARIF JSON");
    let results = sarif["runs"][0]["results"]
        .as_array()
        .expect("SARIF results");
    assert_eq!(results.len(), 1, "{sarif:#}");
    let location = &results[0]["locations"][0];
    let pointer = &location["logicalLocations"][0]["fullyQualifiedName"];
    assert_eq!(pointer, "/a~1b~0c/ünïcode/1/k", "{sarif:#}");
    let region = &location["physicalLocation"]["region"];
    // `    "ünïcode": ["x", {"k": …`: the member `k` is placed at its key.
    assert_eq!(region["startLine"], 4, "{sarif:#}");
    assert_eq!(region["startColumn"], 23, "{sarif:#}");

    let out = validate(dir.path(), "github");
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{text}{stderr}");
    let annotation = text
        .lines()
        .find(|line| line.starts_with("::error ") && line.contains("config/app.json"))
        .unwrap_or_else(|| panic!("no annotation for config/app.json: {text}"));
    assert!(annotation.contains("line=4,col=23"), "{annotation}");
}
