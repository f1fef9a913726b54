//! `cairn plugin test` as an author runs it: `expected.json` pins summary,
//! message, hint, column and refusal text (exactly or by `contains`) and a
//! difference names its key; `--bless` records the current answers (and a
//! second bless changes nothing); a broken case is reported BROKEN while
//! the others run; plugin output is shown prefixed with its case's name;
//! the Rust, Python and JS secrets scanners pass the shared conformance
//! corpus (`tests/conformance/secrets-scan`) as it is.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Output;

use crate::util::guests;

fn corpus_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("conformance/secrets-scan")
}

fn injector_cases_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../plugins/corrupt-body/cases")
}

/// `cairn plugin test PLUGIN --cases DIR [extra...]`, bounded.
fn plugin_test(plugin: &str, cases: &Path, extra: &[&str]) -> Output {
    cairn_tests::run_bounded(
        cairn_tests::cairn_command(env!("CARGO_BIN_EXE_cairn-cli"))
            .args(["plugin", "test", plugin, "--cases"])
            .arg(cases)
            .args(extra),
        cairn_tests::SUBPROCESS_BOUND,
    )
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn both(output: &Output) -> String {
    format!(
        "{}\n--- stderr ---\n{}",
        stdout(output),
        String::from_utf8_lossy(&output.stderr)
    )
}

/// Copies the directory `from` into `to`, recursively.
fn copy_dir(from: &Path, to: &Path) {
    fs::create_dir_all(to).expect("mkdir");
    for entry in fs::read_dir(from).expect("read dir") {
        let entry = entry.expect("dir entry");
        let target = to.join(entry.file_name());
        if entry.file_type().expect("file type").is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            fs::copy(entry.path(), &target).expect("copy");
        }
    }
}

/// A case under `cases` named `name`: the `change/` (and `config.json`,
/// if any) of the corpus case `corpus_case`, and `expected` as its
/// `expected.json` when given.
fn corpus_case(cases: &Path, name: &str, corpus_case: &str, expected: Option<&str>) {
    let from = corpus_dir().join(corpus_case);
    let case = cases.join(name);
    copy_dir(&from.join("change"), &case.join("change"));
    if from.join("config.json").is_file() {
        fs::copy(from.join("config.json"), case.join("config.json")).expect("copy config");
    }
    if let Some(expected) = expected {
        fs::write(case.join("expected.json"), expected).expect("write expected.json");
    }
}

/// A fixture case (no change documents) with this config and expectation.
fn fixture_case(cases: &Path, name: &str, config: &str, expected: &str) {
    let case = cases.join(name);
    fs::create_dir_all(case.join("change/after")).expect("mkdir");
    fs::write(case.join("config.json"), config).expect("write config");
    fs::write(case.join("expected.json"), expected).expect("write expected.json");
}

/// Every file under `dir` with its bytes, by path.
fn snapshot(dir: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    let mut files = BTreeMap::new();
    for entry in fs::read_dir(dir).expect("read dir") {
        let path = entry.expect("dir entry").path();
        if path.is_dir() {
            files.extend(snapshot(&path));
        } else {
            files.insert(path.clone(), fs::read(&path).expect("read"));
        }
    }
    files
}

/// The finding of the corpus case `malformed-json-scanned-by-line`.
const SCANNED: &str = "scanned 1 document(s), found 1 likely secret(s)";
const MESSAGE: &str = "`apiKey` holds a literal credential";
const HINT: &str = "move the value to the secret store and reference it (${secret:NAME})";
const REFUSAL: &str = r#"invalid config: expected {\"allow\": [document paths]}"#;

#[test]
fn pinned_summary_message_hint_column_and_refusal_pass_when_equal_and_fail_naming_the_field() {
    let dir = tempfile::tempdir().expect("temp dir");
    let cases = dir.path();
    let line = "malformed-json-scanned-by-line";
    corpus_case(
        cases,
        "a-exact",
        line,
        Some(&format!(
            r#"{{"outcome": "fail", "summary": "{SCANNED}", "findings": [{{"rule": "secrets/hardcoded-credential",
                "severity": "error", "document": "workflows/sync.json", "line": 5, "column": 7,
                "message": "{MESSAGE}", "hint": "{HINT}"}}]}}"#
        )),
    );
    corpus_case(
        cases,
        "b-contains",
        line,
        Some(
            r#"{"outcome": "fail", "summary": {"contains": "found 1"}, "findings": [{"rule": "secrets/hardcoded-credential",
                "message": {"contains": "apiKey"}, "hint": {"contains": "secret store"}}]}"#,
        ),
    );
    corpus_case(
        cases,
        "c-refusal",
        "invalid-config",
        Some(&format!(r#"{{"refused": "{REFUSAL}"}}"#)),
    );
    corpus_case(
        cases,
        "d-wrong-message-and-column",
        line,
        Some(&format!(
            r#"{{"outcome": "fail", "findings": [{{"rule": "secrets/hardcoded-credential",
                "column": 8, "message": "`apiKey` holds a credential", "hint": "{HINT}"}}]}}"#
        )),
    );
    corpus_case(
        cases,
        "e-wrong-summary-and-hint",
        line,
        Some(
            r#"{"outcome": "fail", "summary": {"contains": "found 2"}, "findings": [{"rule": "secrets/hardcoded-credential",
                "hint": {"contains": "vault"}}]}"#,
        ),
    );
    corpus_case(
        cases,
        "f-wrong-refusal",
        "invalid-config",
        Some(r#"{"refused": "invalid config"}"#),
    );
    corpus_case(
        cases,
        "g-wrong-refusal-part",
        "invalid-config",
        Some(r#"{"refused": {"contains": "allow-list"}}"#),
    );

    let out = plugin_test(guests::SECRETS_SCAN, cases, &[]);
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(1), "{}", both(&out));
    for passing in ["a-exact", "b-contains", "c-refusal"] {
        assert!(
            text.contains(&format!("ok   {passing}\n")),
            "{passing}: {text}"
        );
    }
    let found = format!(
        "secrets/hardcoded-credential [error] workflows/sync.json line 5 column 7: {MESSAGE}"
    );
    let expected_blocks = [
        format!(
            "FAIL d-wrong-message-and-column\n     ~ differs:    {found}\n         column: expected 8, got 7\n         message: expected \"`apiKey` holds a credential\", got \"{MESSAGE}\"\n"
        ),
        format!(
            "FAIL e-wrong-summary-and-hint\n     summary: expected text containing \"found 2\", got \"{SCANNED}\"\n     ~ differs:    {found}\n         hint: expected text containing \"vault\", got \"{HINT}\"\n"
        ),
        format!(
            "FAIL f-wrong-refusal\n     refusal: expected \"invalid config\", got \"{}\"\n",
            REFUSAL.replace('\\', "")
        ),
        format!(
            "FAIL g-wrong-refusal-part\n     refusal: expected text containing \"allow-list\", got \"{}\"\n",
            REFUSAL.replace('\\', "")
        ),
    ];
    for block in &expected_blocks {
        assert!(text.contains(block.as_str()), "{block}\nnot in:\n{text}");
    }
    assert!(
        text.contains(": 7 cases, 4 failed, 0 broken, 3 passed\n"),
        "{text}"
    );
}

#[test]
fn bless_writes_expected_files_that_then_pass_and_a_second_bless_changes_nothing() {
    let dir = tempfile::tempdir().expect("temp dir");
    let cases = dir.path();
    let mut names: Vec<String> = fs::read_dir(corpus_dir())
        .expect("read corpus")
        .map(|entry| {
            entry
                .expect("entry")
                .file_name()
                .to_string_lossy()
                .into_owned()
        })
        .collect();
    names.sort();
    assert_eq!(names.len(), 7, "{names:?}");
    for name in &names {
        corpus_case(cases, name, name, None);
    }
    // One case already has a wrong expectation: bless rewrites it.
    fs::write(cases.join("clean/expected.json"), r#"{"outcome": "fail"}"#).expect("write");

    let first = plugin_test(guests::SECRETS_SCAN, cases, &["--bless"]);
    let text = stdout(&first);
    assert_eq!(first.status.code(), Some(0), "{}", both(&first));
    for name in &names {
        let path = cases.join(name).join("expected.json");
        let verb = if name == "clean" {
            "updated"
        } else {
            "created"
        };
        assert!(
            text.contains(&format!("wrote     {name}: {verb} {}\n", path.display())),
            "{name}: {text}"
        );
    }
    assert!(
        text.contains(": 7 cases, 7 expected.json written, 0 failed, 0 broken\n"),
        "{text}"
    );
    assert_eq!(
        fs::read_to_string(cases.join("invalid-config/expected.json")).expect("read"),
        format!("{{\n  \"refused\": \"{REFUSAL}\"\n}}\n")
    );
    assert_eq!(
        fs::read_to_string(cases.join("malformed-json-scanned-by-line/expected.json"))
            .expect("read"),
        format!(
            concat!(
                "{{\n",
                "  \"outcome\": \"fail\",\n",
                "  \"summary\": \"{}\",\n",
                "  \"findings\": [\n",
                "    {{\n",
                "      \"rule\": \"secrets/hardcoded-credential\",\n",
                "      \"severity\": \"error\",\n",
                "      \"document\": \"workflows/sync.json\",\n",
                "      \"line\": 5,\n",
                "      \"column\": 7,\n",
                "      \"message\": \"{}\",\n",
                "      \"hint\": \"{}\"\n",
                "    }}\n",
                "  ]\n",
                "}}\n",
            ),
            SCANNED, MESSAGE, HINT
        )
    );

    let run = plugin_test(guests::SECRETS_SCAN, cases, &[]);
    assert_eq!(run.status.code(), Some(0), "{}", both(&run));
    assert!(
        stdout(&run).contains(": 7 cases, 0 failed, 0 broken, 7 passed\n"),
        "{}",
        stdout(&run)
    );

    let before = snapshot(cases);
    let second = plugin_test(guests::SECRETS_SCAN, cases, &["--bless"]);
    let text = stdout(&second);
    assert_eq!(second.status.code(), Some(0), "{}", both(&second));
    for name in &names {
        let path = cases.join(name).join("expected.json");
        assert!(
            text.contains(&format!("unchanged {name}: {}\n", path.display())),
            "{name}: {text}"
        );
    }
    assert!(
        text.contains(": 7 cases, 0 expected.json written, 0 failed, 0 broken\n"),
        "{text}"
    );
    assert!(snapshot(cases) == before, "a second bless changed a file");
}

#[test]
fn bless_records_fault_injector_decisions_and_refusals_that_then_pass() {
    let dir = tempfile::tempdir().expect("temp dir");
    let cases = dir.path();
    let mut count = 0;
    for entry in fs::read_dir(injector_cases_dir()).expect("read cases") {
        let from = entry.expect("entry").path();
        let case = cases.join(from.file_name().expect("case name"));
        fs::create_dir_all(&case).expect("mkdir");
        for file in ["request.json", "config.json"] {
            if from.join(file).is_file() {
                fs::copy(from.join(file), case.join(file)).expect("copy");
            }
        }
        count += 1;
    }
    let first = plugin_test(guests::CORRUPT_BODY, cases, &["--bless"]);
    assert_eq!(first.status.code(), Some(0), "{}", both(&first));
    assert!(
        stdout(&first).contains(&format!(
            "{count} cases, {count} expected.json written, 0 failed, 0 broken\n"
        )),
        "{}",
        stdout(&first)
    );
    let refused =
        fs::read_to_string(cases.join("negative-truncate-is-refused/expected.json")).expect("read");
    assert!(refused.starts_with("{\n  \"refused\": \""), "{refused}");
    let run = plugin_test(guests::CORRUPT_BODY, cases, &[]);
    assert_eq!(run.status.code(), Some(0), "{}", both(&run));
    assert!(
        stdout(&run).contains(&format!(
            "{count} cases, 0 failed, 0 broken, {count} passed\n"
        )),
        "{}",
        stdout(&run)
    );
    let before = snapshot(cases);
    let second = plugin_test(guests::CORRUPT_BODY, cases, &["--bless"]);
    assert_eq!(second.status.code(), Some(0), "{}", both(&second));
    assert!(snapshot(cases) == before, "a second bless changed a file");
}

#[test]
fn a_broken_case_is_reported_with_its_reason_and_the_other_cases_still_run() {
    let dir = tempfile::tempdir().expect("temp dir");
    let cases = dir.path();
    let pass = r#"{"outcome": "pass", "summary": "all good"}"#;
    fixture_case(cases, "a-good", r#"{"mode": "behave"}"#, pass);
    fixture_case(cases, "b-invalid-json", r#"{"mode": "behave"}"#, "{oops");
    fixture_case(cases, "c-no-expected", r#"{"mode": "behave"}"#, pass);
    fs::remove_file(cases.join("c-no-expected/expected.json")).expect("remove");
    fixture_case(cases, "d-bad-config", "{mode", pass);
    fixture_case(
        cases,
        "e-unknown-key",
        r#"{"mode": "behave"}"#,
        r#"{"outcome": "pass", "sumary": "all good"}"#,
    );
    fixture_case(cases, "f-no-change", r#"{"mode": "behave"}"#, pass);
    fs::remove_dir_all(cases.join("f-no-change/change")).expect("remove");
    fixture_case(cases, "g-good", r#"{"mode": "behave"}"#, pass);
    fixture_case(
        cases,
        "h-failing",
        r#"{"mode": "behave"}"#,
        r#"{"outcome": "pass", "summary": "not so good"}"#,
    );

    let out = plugin_test(guests::FIXTURE, cases, &[]);
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(1), "{}", both(&out));
    let case = |name: &str| cases.join(name).display().to_string();
    let expected_lines = [
        "ok   a-good\n".to_owned(),
        format!(
            "BROKEN b-invalid-json\n     {}/expected.json: invalid JSON: key must be a string at line 1 column 2\n",
            case("b-invalid-json")
        ),
        format!(
            "BROKEN c-no-expected\n     {}: no expected.json; run `cairn plugin test` with --bless to record the plugin's current answer\n",
            case("c-no-expected")
        ),
        format!(
            "BROKEN d-bad-config\n     {}/config.json: invalid JSON: key must be a string at line 1 column 2\n",
            case("d-bad-config")
        ),
        format!(
            "BROKEN e-unknown-key\n     {}/expected.json: invalid JSON: unknown field `sumary`, expected one of `outcome`, `summary`, `findings`, `refused` at line 1 column 28\n",
            case("e-unknown-key")
        ),
        format!(
            "BROKEN f-no-change\n     cannot read {}/change",
            case("f-no-change")
        ),
        "ok   g-good\n".to_owned(),
        "FAIL h-failing\n     summary: expected \"not so good\", got \"all good\"\n".to_owned(),
        "fixture: 8 cases, 1 failed, 5 broken, 2 passed\n".to_owned(),
    ];
    for line in &expected_lines {
        assert!(text.contains(line.as_str()), "{line}\nnot in:\n{text}");
    }
}

#[test]
fn plugin_log_and_output_lines_are_prefixed_with_their_case_name() {
    let dir = tempfile::tempdir().expect("temp dir");
    let cases = dir.path();
    fixture_case(
        cases,
        "logs",
        r#"{"mode": "log-flood"}"#,
        r#"{"outcome": "pass", "summary": "survived my own log flood"}"#,
    );
    fixture_case(
        cases,
        "prints",
        r#"{"mode": "stdout-flood"}"#,
        r#"{"outcome": "pass", "summary": "survived my own output flood"}"#,
    );
    fixture_case(
        cases,
        "quiet",
        r#"{"mode": "behave"}"#,
        r#"{"outcome": "pass"}"#,
    );
    let out = plugin_test(guests::FIXTURE, cases, &[]);
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(0), "{}", both(&out));
    let lines: Vec<&str> = text.lines().collect();
    let block = |name: &str| -> Vec<&str> {
        let start = lines
            .iter()
            .position(|l| *l == format!("ok   {name}"))
            .unwrap_or_else(|| panic!("no result for {name}: {text}"));
        lines[start + 1..]
            .iter()
            .take_while(|l| l.starts_with("     "))
            .copied()
            .collect()
    };
    let logs = block("logs");
    assert_eq!(logs.len(), 21, "{text}");
    let log_line = format!("     [logs] log info: {}", "x".repeat(1024));
    assert!(logs[..20].iter().all(|l| *l == log_line), "{text}");
    assert!(
        logs[20].starts_with("     [logs] ... ")
            && logs[20].ends_with(" more line(s) of plugin output"),
        "{text}"
    );
    let prints = block("prints");
    assert_eq!(prints.len(), 21, "{text}");
    let print_line = format!("     [prints] stdout: {}", "y".repeat(1023));
    assert!(prints[..20].iter().all(|l| *l == print_line), "{text}");
    assert!(prints[20].starts_with("     [prints] ... "), "{text}");
    assert_eq!(block("quiet"), Vec::<&str>::new(), "{text}");
    // Every line of plugin output is under its case, never unprefixed.
    for line in &lines {
        if line.contains("xxxx") {
            assert!(line.starts_with("     [logs] "), "{line}");
        }
        if line.contains("yyyy") {
            assert!(line.starts_with("     [prints] "), "{line}");
        }
    }
}

#[test]
fn the_rust_python_and_js_secrets_scanners_pass_the_conformance_corpus_as_it_is() {
    let count = fs::read_dir(corpus_dir())
        .expect("read corpus")
        .filter(|entry| entry.as_ref().is_ok_and(|e| e.path().is_dir()))
        .count();
    assert_eq!(count, 7);
    for (lang, guest) in [
        ("rust", guests::SECRETS_SCAN),
        ("python", guests::SECRETS_SCAN_PY),
        ("js", guests::SECRETS_SCAN_JS),
    ] {
        let out = plugin_test(guest, &corpus_dir(), &[]);
        let text = stdout(&out);
        assert_eq!(out.status.code(), Some(0), "{lang}: {}", both(&out));
        assert!(
            text.contains(&format!(
                ": {count} cases, 0 failed, 0 broken, {count} passed\n"
            )),
            "{lang}: {text}"
        );
    }
}
