//! Control characters from documents, file names and plans (ESC, BEL, NUL,
//! U+000C, CR, line breaks) run through the real `cairn` binary: the human
//! report shows them escaped and cannot be made to print a forged
//! `result: PASS`, the JUnit report stays well-formed XML, GitHub workflow
//! commands stay one per line, stderr gets nothing raw, and the JSON report
//! keeps the exact text.

use std::path::Path;
use std::process::Output;

use quick_xml::Reader;
use quick_xml::events::Event;
use serde_json::Value;

use crate::util::guests;

/// What a hostile name or document tries: clear the screen, ring the bell,
/// a NUL, a form feed, return to column 0, then a line that looks like the
/// report's last one.
const FORGED: &str = "\u{1b}[2J\u{1b}[H\u{7}\u{c}\r\nresult: PASS\n";

/// The same, as a TOML basic string escape (a plan can hold NUL too).
const FORGED_TOML: &str = r"\u001b[2J\u001b[H\u0007\u0000\u000c\r\nresult: PASS\n";

/// A file name holding everything but NUL (no file system allows it).
fn hostile_file_name() -> String {
    format!("gone{FORGED}x.json")
}

fn cairn(args: &[&str]) -> Output {
    cairn_tests::run_bounded(
        cairn_tests::cairn_command(env!("CARGO_BIN_EXE_cairn-cli")).args(args),
        cairn_tests::SUBPROCESS_BOUND,
    )
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// A change that deletes a document with a hostile name (no-deletes puts
/// the name in its finding's message and location), and adds one whose
/// content holds the same characters and a NUL.
fn hostile_change(root: &Path) -> String {
    let change = root.join("change");
    std::fs::create_dir_all(change.join("before")).expect("before/");
    std::fs::create_dir_all(change.join("after")).expect("after/");
    std::fs::write(change.join("before").join(hostile_file_name()), "{}").expect("write before");
    std::fs::write(
        change.join("after").join("added.toml"),
        format!("name = \"{FORGED}\0\"\n"),
    )
    .expect("write after");
    change.display().to_string()
}

/// A plan whose checkpoint, environment and validator names hold the same
/// characters and a NUL; the gate runs no-deletes and well-formed.
fn hostile_plan(root: &Path) -> String {
    let plan = format!(
        r#"
[plugins.no-deletes]
path = "{no_deletes}"

[plugins.well-formed]
path = "{well_formed}"

[[checkpoint]]
name = "pre{FORGED_TOML}flight"
environment = "ci{FORGED_TOML}"
validators = [
  {{ plugin = "no-deletes", name = "nd{FORGED_TOML}" }},
  {{ plugin = "well-formed" }},
]

[[checkpoint]]
name = "later{FORGED_TOML}"
validators = [{{ plugin = "well-formed" }}]
"#,
        no_deletes = guests::NO_DELETES,
        well_formed = guests::WELL_FORMED,
    );
    let path = root.join("cairn.toml");
    std::fs::write(&path, plan).expect("write plan");
    path.display().to_string()
}

/// Runs `cairn check` of the hostile plan on the hostile change in `format`.
fn check_hostile(format: &str) -> Output {
    let dir = tempfile::tempdir().expect("temp dir");
    let plan = hostile_plan(dir.path());
    let change = hostile_change(dir.path());
    let out = cairn(&[
        "check", "--plan", &plan, "--change", &change, "--format", format,
    ]);
    assert_eq!(
        out.status.code(),
        Some(1),
        "the deletion fails the gate\nstdout:\n{}\nstderr:\n{}",
        text(&out.stdout),
        text(&out.stderr)
    );
    out
}

/// Control characters in `text` other than line breaks and tabs.
fn raw_controls(text: &str) -> Vec<char> {
    text.chars()
        .filter(|c| c.is_control() && *c != '\n' && *c != '\t')
        .collect()
}

#[test]
fn human_report_escapes_control_characters_and_cannot_be_made_to_forge_a_result() {
    let out = check_hostile("human");
    let stdout = text(&out.stdout);
    assert_eq!(raw_controls(&stdout), Vec::<char>::new(), "{stdout:?}");
    let results: Vec<&str> = stdout
        .lines()
        .filter(|line| line.starts_with("result:"))
        .collect();
    assert_eq!(
        results,
        ["result: FAIL"],
        "only cairn's own result line starts with `result:`:\n{stdout}"
    );
    assert_eq!(stdout.lines().last(), Some("result: FAIL"), "{stdout}");
    // A line break a finding keeps starts an indented line, under the
    // finding: at column 0 there are only the report's own lines.
    for line in stdout
        .lines()
        .filter(|l| !l.is_empty() && !l.starts_with(' '))
    {
        assert!(
            ["checkpoint ", "not run ", "result: "]
                .iter()
                .any(|own| line.starts_with(own)),
            "a line at column 0 that cairn did not write: {line:?}\n{stdout}"
        );
    }
    // The hostile text is there to read, escaped: the file name in the
    // finding, the checkpoint and validator names from the plan.
    assert!(
        stdout.contains("gone\\u{1b}[2J\\u{1b}[H\\u{7}\\u{c}\\r\\nresult: PASS\\nx.json"),
        "{stdout}"
    );
    assert!(
        stdout.contains(
            "checkpoint pre\\u{1b}[2J\\u{1b}[H\\u{7}\\u{0}\\u{c}\\r\\nresult: PASS\\nflight"
        ),
        "{stdout}"
    );
    assert!(stdout.contains("nd\\u{1b}[2J"), "{stdout}");
    assert!(
        stdout.contains("not run (the rollout stopped earlier): later\\u{1b}[2J"),
        "{stdout}"
    );
    assert_eq!(
        raw_controls(&text(&out.stderr)),
        Vec::<char>::new(),
        "stderr: {:?}",
        text(&out.stderr)
    );
}

/// The `Char` production of XML 1.0: what a well-formed document may hold.
fn is_xml_char(c: char) -> bool {
    matches!(c, '\t' | '\n' | '\r' | '\u{20}'..='\u{D7FF}' | '\u{E000}'..='\u{FFFD}')
        || c >= '\u{10000}'
}

#[test]
fn junit_report_is_well_formed_xml_whatever_the_names_and_documents_hold() {
    let out = check_hostile("junit");
    let xml = text(&out.stdout);
    let forbidden: Vec<char> = xml.chars().filter(|c| !is_xml_char(*c)).collect();
    assert!(
        forbidden.is_empty(),
        "characters XML 1.0 forbids: {forbidden:?}\n{xml}"
    );
    // quick-xml checks the markup (matching end tags, attribute syntax,
    // entity references on unescape); the line above checks characters,
    // which quick-xml does not.
    let mut reader = Reader::from_str(&xml);
    let (mut depth, mut elements, mut values) = (0i32, 0, Vec::new());
    loop {
        match reader.read_event() {
            Ok(Event::Eof) => break,
            Ok(Event::Start(start)) => {
                depth += 1;
                elements += 1;
                for attribute in start.attributes() {
                    let attribute = attribute.unwrap_or_else(|err| panic!("{err}\n{xml}"));
                    let value = attribute
                        .unescape_value()
                        .unwrap_or_else(|err| panic!("{err}\n{xml}"));
                    values.push(value.into_owned());
                }
            }
            Ok(Event::End(_)) => depth -= 1,
            Ok(Event::Text(text)) => {
                values.push(
                    text.decode()
                        .unwrap_or_else(|err| panic!("{err}\n{xml}"))
                        .into_owned(),
                );
            }
            Ok(_) => {}
            Err(err) => panic!(
                "invalid XML at byte {}: {err}\n{xml}",
                reader.error_position()
            ),
        }
    }
    assert_eq!(depth, 0, "every element is closed:\n{xml}");
    assert!(elements >= 4, "testsuites, testsuite, testcases:\n{xml}");
    assert!(
        values.iter().any(|v| v.starts_with("pre\\u{1b}[2J")),
        "the checkpoint name, escaped: {values:#?}"
    );
    assert!(
        values.iter().any(|v| v.contains("gone\\u{1b}[2J")),
        "the file name in the failure text, escaped: {values:#?}"
    );
}

#[test]
fn github_commands_stay_one_per_line_and_json_keeps_the_exact_text() {
    let out = check_hostile("github");
    let commands = text(&out.stdout);
    assert_eq!(raw_controls(&commands), Vec::<char>::new(), "{commands:?}");
    for line in commands.lines() {
        assert!(
            line.starts_with("::"),
            "a line that is no workflow command: {line:?}\n{commands}"
        );
    }

    // Machine formats carry the exact text: escaping is for display only.
    let out = check_hostile("json");
    let report: Value = serde_json::from_slice(&out.stdout).expect("stdout is JSON");
    let documents: Vec<&str> = report["checkpoints"][0]["validators"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|v| v["findings"].as_array().into_iter().flatten())
        .filter_map(|f| f["location"]["document"].as_str())
        .collect();
    assert!(
        documents.contains(&hostile_file_name().as_str()),
        "{documents:?}"
    );
    assert_eq!(
        report["checkpoints"][0]["name"],
        "pre\u{1b}[2J\u{1b}[H\u{7}\0\u{c}\r\nresult: PASS\nflight"
    );
}

#[test]
fn log_lines_on_stderr_escape_plan_names_and_plugin_logs() {
    let dir = tempfile::tempdir().expect("temp dir");
    let plan = dir.path().join("cairn.toml");
    std::fs::write(
        &plan,
        format!(
            r#"
[plugins.fixture]
path = "{fixture}"

[[checkpoint]]
name = "pre{FORGED_TOML}"
validators = [{{ plugin = "fixture", name = "logs{FORGED_TOML}", config = {{ mode = "log-flood" }} }}]
"#,
            fixture = guests::FIXTURE,
        ),
    )
    .expect("write plan");
    let change = hostile_change(dir.path());
    let plan = plan.display().to_string();
    let out = cairn(&["-v", "check", "--plan", &plan, "--change", &change]);
    let stderr = text(&out.stderr);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}\n{stderr}",
        text(&out.stdout)
    );
    assert!(
        stderr.contains("cairn::plugin"),
        "the plugin's log is forwarded at -v: {stderr}"
    );
    assert!(
        stderr.contains("logs\\u{1b}[2J\\u{1b}[H\\u{7}\\u{0}\\u{c}\\r\\nresult: PASS\\n"),
        "the validator's span, escaped: {stderr}"
    );
    assert_eq!(raw_controls(&stderr), Vec::<char>::new(), "{stderr:?}");
    for line in stderr.lines() {
        assert!(
            line.starts_with(|c: char| c.is_ascii_digit()),
            "every stderr line is a log event of its own (timestamp first): {line:?}"
        );
    }
}
