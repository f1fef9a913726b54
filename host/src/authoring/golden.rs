//! Golden test cases (`cairn plugin test`): loading a plugin's cases
//! directory, running the plugin over each case, and comparing its answer
//! with `expected.json`, with a readable diff of what differs; or, with
//! `--bless`, recording the plugin's current answer as `expected.json`.
//! Validator cases live here; fault-injector cases in [`fault`].
//! [`run_cases`] and [`bless_cases`] pick the kind from the plugin's world.
//!
//! A validator case is a directory `cases/<name>/` holding `change/` (a
//! change directory, see [`Change::from_dir`]), an optional `config.json`
//! (the plugin config, `{}` when absent) and `expected.json`:
//!
//! ```json
//! {"outcome": "fail",
//!  "summary": "1 destructive change(s)",
//!  "findings": [{"rule": "destructive/removed-field", "severity": "error",
//!                "document": "tables/users.json", "pointer": "/columns/email",
//!                "line": 7, "column": 5,
//!                "message": {"contains": "email"}, "hint": "keep the column"}]}
//! ```
//!
//! Only `outcome` is required (and each finding's `rule`); every other key
//! is checked only when given. A finding's location keys may also be nested
//! as the plugin reports them: `"location": {"document": ..., "pointer":
//! ..., "line": ..., "column": ...}`. Text keys (`summary`, `message`,
//! `hint`, and a `refused` text) match exactly, or, written as
//! `{"contains": "<text>"}`, when the actual text contains it.
//! `{"refused": true}` expects any refusal (the plugin's own `err`),
//! `{"refused": "<text>"}` that refusal exactly. Every expected finding
//! must match a distinct actual finding on each key it gives, and the
//! counts must be equal; order does not matter. Unknown keys are errors.
//!
//! A case that cannot be read (no or invalid `expected.json`, an invalid
//! `config.json`, an unreadable `change/`) is *broken*: it is reported with
//! its reason and the other cases still run.

use std::fmt;
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::de::Error as _;
use serde::{Deserialize, Deserializer, Serialize};
use tracing::Instrument;

use crate::escape::single_line;
use crate::runtime::bindings::World;
use crate::runtime::call::CallOutcome;
use crate::runtime::change::{Change, ChangeError, Checkpoint};
use crate::runtime::inject::Decision;
use crate::runtime::limits::Limits;
use crate::runtime::plugin::Plugin;
use crate::runtime::sandbox::CapturedOutput;
use crate::runtime::verdict::{Finding, Outcome, Severity, Verdict};

pub mod fault;

pub use fault::{FaultCase, FaultExpected, REQUEST_FILE, compare_decision, load_fault_cases};

/// Name of the file with the expected verdict of a case.
pub const EXPECTED_FILE: &str = "expected.json";
/// Name of the optional plugin config of a case.
pub const CONFIG_FILE: &str = "config.json";
/// Name of the change directory of a case.
pub const CHANGE_DIR: &str = "change";

/// Most lines of plugin output shown under one case; the rest are counted.
pub const MAX_OUTPUT_LINES: usize = 20;

/// Most characters of a plugin's text shown in a diff; the rest are counted.
const MAX_SHOWN_CHARS: usize = 300;

/// Why a case (or the cases directory) could not be read or recorded.
#[derive(Debug, thiserror::Error)]
pub enum CaseError {
    #[error("cannot read {path}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: invalid JSON")]
    Json {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
    #[error("{path}: {reason}")]
    Invalid { path: PathBuf, reason: String },
    #[error("cannot read {path}")]
    Change {
        path: PathBuf,
        #[source]
        source: ChangeError,
    },
    #[error(
        "{path}: no {EXPECTED_FILE}; run `cairn plugin test` with --bless to record the plugin's current answer"
    )]
    NoExpected { path: PathBuf },
    #[error("cannot write {path}")]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

impl CaseError {
    /// The error and its causes on one line, `: `-separated (the reason a
    /// broken case is shown with).
    pub fn reason(&self) -> String {
        let mut text = self.to_string();
        let mut source = std::error::Error::source(self);
        while let Some(cause) = source {
            text.push_str(": ");
            text.push_str(&cause.to_string());
            source = cause.source();
        }
        text
    }
}

/// A pinned text: the exact text, or (`{"contains": "..."}`) a part of it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TextMatch {
    Exact(String),
    Contains(String),
}

impl TextMatch {
    pub fn matches(&self, actual: &str) -> bool {
        match self {
            TextMatch::Exact(text) => text == actual,
            TextMatch::Contains(part) => actual.contains(part.as_str()),
        }
    }
}

impl fmt::Display for TextMatch {
    /// `"text"`, or `text containing "part"`, quoted and escaped.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TextMatch::Exact(text) => write!(f, "{}", quoted(text)),
            TextMatch::Contains(part) => write!(f, "text containing {}", quoted(part)),
        }
    }
}

impl<'de> Deserialize<'de> for TextMatch {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(deny_unknown_fields)]
        struct Contains {
            contains: String,
        }
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Exact(String),
            Contains(Contains),
        }
        match Raw::deserialize(deserializer) {
            Ok(Raw::Exact(text)) => Ok(TextMatch::Exact(text)),
            Ok(Raw::Contains(c)) => Ok(TextMatch::Contains(c.contains)),
            Err(_) => Err(D::Error::custom(
                "a text is a string (matched exactly) or {\"contains\": \"<part>\"}",
            )),
        }
    }
}

/// What `refused` expects.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ExpectedRefusal {
    /// `"refused": true`: any refusal.
    Any,
    /// `"refused": "<text>"` or `{"contains": ...}`: a refusal with this text.
    Text(TextMatch),
}

fn refusal<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<ExpectedRefusal>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Raw {
        Flag(bool),
        Text(TextMatch),
    }
    match Raw::deserialize(deserializer) {
        Ok(Raw::Flag(true)) => Ok(Some(ExpectedRefusal::Any)),
        Ok(Raw::Flag(false)) => Ok(None),
        Ok(Raw::Text(text)) => Ok(Some(ExpectedRefusal::Text(text))),
        Err(_) => Err(D::Error::custom(
            "`refused` is true (any refusal), the refusal's text, or {\"contains\": \"<part>\"}",
        )),
    }
}

/// What `expected.json` says.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Expected {
    pub outcome: Option<Outcome>,
    #[serde(default)]
    pub summary: Option<TextMatch>,
    #[serde(default)]
    pub findings: Vec<ExpectedFinding>,
    #[serde(default, deserialize_with = "refusal")]
    pub refused: Option<ExpectedRefusal>,
}

/// One expected finding: each key given must match.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(try_from = "RawFinding")]
pub struct ExpectedFinding {
    pub rule: String,
    pub severity: Option<Severity>,
    pub document: Option<String>,
    pub pointer: Option<String>,
    pub line: Option<u32>,
    pub column: Option<u32>,
    pub message: Option<TextMatch>,
    pub hint: Option<TextMatch>,
}

/// An expected finding as written: location keys flat or in `location`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFinding {
    rule: String,
    severity: Option<Severity>,
    document: Option<String>,
    pointer: Option<String>,
    line: Option<u32>,
    column: Option<u32>,
    message: Option<TextMatch>,
    hint: Option<TextMatch>,
    location: Option<RawLocation>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawLocation {
    document: Option<String>,
    pointer: Option<String>,
    line: Option<u32>,
    column: Option<u32>,
}

impl TryFrom<RawFinding> for ExpectedFinding {
    type Error = String;

    fn try_from(raw: RawFinding) -> Result<Self, String> {
        fn either<T>(flat: Option<T>, nested: Option<T>, key: &str) -> Result<Option<T>, String> {
            match (flat, nested) {
                (Some(_), Some(_)) => {
                    Err(format!("finding gives `{key}` both flat and in `location`"))
                }
                (flat, nested) => Ok(flat.or(nested)),
            }
        }
        let location = raw.location.unwrap_or(RawLocation {
            document: None,
            pointer: None,
            line: None,
            column: None,
        });
        Ok(ExpectedFinding {
            document: either(raw.document, location.document, "document")?,
            pointer: either(raw.pointer, location.pointer, "pointer")?,
            line: either(raw.line, location.line, "line")?,
            column: either(raw.column, location.column, "column")?,
            rule: raw.rule,
            severity: raw.severity,
            message: raw.message,
            hint: raw.hint,
        })
    }
}

/// One differing key of a finding: its name, what was expected and what
/// the plugin gave, as the diff shows them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldDiff {
    pub field: &'static str,
    pub expected: String,
    pub actual: String,
}

impl ExpectedFinding {
    /// Whether `actual` agrees with every key this expectation gives.
    pub fn matches(&self, actual: &Finding) -> bool {
        self.differences(actual).is_empty()
    }

    /// The keys this expectation gives that `actual` does not agree with.
    pub fn differences(&self, actual: &Finding) -> Vec<FieldDiff> {
        let location = actual.location.as_ref();
        let mut diffs = Vec::new();
        let mut diff = |field, expected: String, actual: String| {
            diffs.push(FieldDiff {
                field,
                expected,
                actual,
            });
        };
        let text = |value: Option<&str>| value.map_or_else(|| "none".to_owned(), quoted);
        let number =
            |value: Option<u32>| value.map_or_else(|| "none".to_owned(), |n| n.to_string());
        if self.rule != actual.rule {
            diff("rule", quoted(&self.rule), quoted(&actual.rule));
        }
        if let Some(severity) = self.severity
            && severity != actual.severity
        {
            diff(
                "severity",
                severity.to_string(),
                actual.severity.to_string(),
            );
        }
        let document = location.map(|l| l.document.as_str());
        if let Some(wanted) = &self.document
            && document != Some(wanted.as_str())
        {
            diff("document", quoted(wanted), text(document));
        }
        let pointer = location.and_then(|l| l.pointer.as_deref());
        if let Some(wanted) = &self.pointer
            && pointer != Some(wanted.as_str())
        {
            diff("pointer", quoted(wanted), text(pointer));
        }
        let line = location.and_then(|l| l.line);
        if let Some(wanted) = self.line
            && line != Some(wanted)
        {
            diff("line", wanted.to_string(), number(line));
        }
        let column = location.and_then(|l| l.column);
        if let Some(wanted) = self.column
            && column != Some(wanted)
        {
            diff("column", wanted.to_string(), number(column));
        }
        if let Some(wanted) = &self.message
            && !wanted.matches(&actual.message)
        {
            diff("message", wanted.to_string(), quoted(&actual.message));
        }
        if let Some(wanted) = &self.hint
            && !actual.hint.as_deref().is_some_and(|h| wanted.matches(h))
        {
            diff("hint", wanted.to_string(), text(actual.hint.as_deref()));
        }
        diffs
    }
}

impl fmt::Display for ExpectedFinding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.rule)?;
        if let Some(severity) = self.severity {
            write!(f, " [{severity}]")?;
        }
        if let Some(document) = &self.document {
            write!(f, " {document}")?;
        }
        if let Some(pointer) = &self.pointer {
            write!(f, " #{pointer}")?;
        }
        if let Some(line) = self.line {
            write!(f, " line {line}")?;
        }
        if let Some(column) = self.column {
            write!(f, " column {column}")?;
        }
        if let Some(message) = &self.message {
            write!(f, ": {message}")?;
        }
        if let Some(hint) = &self.hint {
            write!(f, " (hint: {hint})")?;
        }
        Ok(())
    }
}

/// A plugin's text as a diff shows it: in double quotes (its own quotes
/// left as they are), control characters escaped, cut after
/// [`MAX_SHOWN_CHARS`] characters.
fn quoted(text: &str) -> String {
    let mut chars = text.char_indices();
    match chars.nth(MAX_SHOWN_CHARS) {
        None => format!("\"{}\"", single_line(text)),
        Some((end, _)) => format!(
            "\"{}\"... ({} more byte(s))",
            single_line(&text[..end]),
            text.len() - end
        ),
    }
}

/// A finding as the diff shows it.
fn describe(finding: &Finding) -> String {
    let mut text = format!("{} [{}]", finding.rule, finding.severity);
    if let Some(location) = &finding.location {
        text.push_str(&format!(" {}", location.document));
        if let Some(pointer) = &location.pointer {
            text.push_str(&format!(" #{pointer}"));
        }
        if let Some(line) = location.line {
            text.push_str(&format!(" line {line}"));
        }
        if let Some(column) = location.column {
            text.push_str(&format!(" column {column}"));
        }
    }
    text.push_str(&format!(": {}", finding.message));
    text
}

/// One loaded case.
#[derive(Debug, Clone)]
pub struct Case {
    pub name: String,
    pub dir: PathBuf,
    pub change: Arc<Change>,
    pub config: String,
    pub expected: Expected,
}

/// What a case needs to run, whatever it expects.
struct CaseInput {
    change: Arc<Change>,
    config: String,
}

impl CaseInput {
    fn load(dir: &Path) -> Result<CaseInput, CaseError> {
        let change_dir = dir.join(CHANGE_DIR);
        if !change_dir.is_dir() && dir.join(REQUEST_FILE).is_file() {
            return Err(CaseError::Invalid {
                path: dir.to_owned(),
                reason: format!(
                    "has {REQUEST_FILE} but no {CHANGE_DIR}/: a fault-injector case, but the plugin is a validator"
                ),
            });
        }
        let config = read_config(dir)?;
        let change = Change::from_dir(&change_dir).map_err(|source| CaseError::Change {
            path: change_dir,
            source,
        })?;
        Ok(CaseInput {
            change: Arc::new(change),
            config,
        })
    }
}

impl Case {
    /// Loads the case in `dir`.
    pub fn load(dir: &Path) -> Result<Case, CaseError> {
        let name = case_name(dir);
        let expected_path = dir.join(EXPECTED_FILE);
        if !dir.join(CHANGE_DIR).is_dir() && dir.join(REQUEST_FILE).is_file() {
            // Said before anything about expected.json.
            CaseInput::load(dir)?;
        }
        if !expected_path.exists() {
            return Err(CaseError::NoExpected {
                path: dir.to_owned(),
            });
        }
        let expected: Expected = read_json(&expected_path)?;
        if expected.refused.is_some()
            && (expected.outcome.is_some()
                || expected.summary.is_some()
                || !expected.findings.is_empty())
        {
            return Err(CaseError::Invalid {
                path: expected_path,
                reason: "`refused` excludes `outcome`, `summary` and `findings`".into(),
            });
        }
        if expected.refused.is_none() && expected.outcome.is_none() {
            return Err(CaseError::Invalid {
                path: expected_path,
                reason: "needs `outcome` (or `\"refused\": true`)".into(),
            });
        }
        let input = CaseInput::load(dir)?;
        Ok(Case {
            name,
            dir: dir.to_owned(),
            change: input.change,
            config: input.config,
            expected,
        })
    }

    /// Runs `plugin` on this case and compares.
    pub async fn run(&self, plugin: &Plugin, limits: &Limits) -> CaseResult {
        let report = plugin
            .validate(
                Arc::clone(&self.change),
                &Checkpoint::default(),
                &self.config,
                limits,
            )
            .await;
        CaseResult {
            output: output_lines(&report.output),
            mismatches: compare(&self.expected, &report.outcome),
            ..CaseResult::new(&self.name)
        }
    }
}

/// Runs `plugin` on the validator case in `dir` and writes its answer as
/// the case's `expected.json`.
async fn bless_validator_case(dir: &Path, plugin: &Plugin, limits: &Limits) -> CaseResult {
    let name = case_name(dir);
    let input = match CaseInput::load(dir) {
        Ok(input) => input,
        Err(err) => return CaseResult::broken(&name, &err),
    };
    let report = plugin
        .validate(input.change, &Checkpoint::default(), &input.config, limits)
        .await;
    let output = output_lines(&report.output);
    let text = match &report.outcome {
        CallOutcome::Completed(verdict) => verdict_file(verdict),
        CallOutcome::Refused(reason) => refusal_file(reason),
        CallOutcome::Stopped(failure) => {
            return CaseResult {
                output,
                mismatches: vec![Mismatch::Stopped {
                    failure: format!("{}: {}", failure.kind, failure.message),
                }],
                ..CaseResult::new(&name)
            };
        }
    };
    let mut result = write_expected(dir, &name, &text);
    result.output = output;
    result
}

/// A verdict as a blessed `expected.json`: every key the plugin gave, in a
/// fixed order, findings sorted by where they point.
fn verdict_file(verdict: &Verdict) -> String {
    #[derive(Serialize)]
    struct File<'a> {
        outcome: Outcome,
        #[serde(skip_serializing_if = "Option::is_none")]
        summary: Option<&'a str>,
        findings: Vec<FindingFile<'a>>,
    }
    #[derive(Serialize)]
    struct FindingFile<'a> {
        rule: &'a str,
        severity: Severity,
        #[serde(skip_serializing_if = "Option::is_none")]
        document: Option<&'a str>,
        #[serde(skip_serializing_if = "Option::is_none")]
        pointer: Option<&'a str>,
        #[serde(skip_serializing_if = "Option::is_none")]
        line: Option<u32>,
        #[serde(skip_serializing_if = "Option::is_none")]
        column: Option<u32>,
        message: &'a str,
        #[serde(skip_serializing_if = "Option::is_none")]
        hint: Option<&'a str>,
    }
    let mut findings: Vec<FindingFile<'_>> = verdict
        .findings
        .iter()
        .map(|f| {
            let location = f.location.as_ref();
            FindingFile {
                rule: &f.rule,
                severity: f.severity,
                document: location.map(|l| l.document.as_str()),
                pointer: location.and_then(|l| l.pointer.as_deref()),
                line: location.and_then(|l| l.line),
                column: location.and_then(|l| l.column),
                message: &f.message,
                hint: f.hint.as_deref(),
            }
        })
        .collect();
    findings.sort_by(|a, b| {
        (a.document, a.line, a.column, a.pointer, a.rule, a.message)
            .cmp(&(b.document, b.line, b.column, b.pointer, b.rule, b.message))
    });
    to_file(&File {
        outcome: verdict.outcome,
        summary: verdict.summary.as_deref(),
        findings,
    })
}

/// A refusal as a blessed `expected.json`.
pub(crate) fn refusal_file(reason: &str) -> String {
    #[derive(Serialize)]
    struct File<'a> {
        refused: &'a str,
    }
    to_file(&File { refused: reason })
}

/// Pretty JSON with a final newline. The values serialized here are plain
/// structs of strings and numbers, which always serialize.
pub(crate) fn to_file<T: Serialize>(value: &T) -> String {
    let mut text = serde_json::to_string_pretty(value)
        .unwrap_or_else(|err| format!("\"unserializable answer: {err}\""));
    text.push('\n');
    text
}

/// Writes `text` as `dir/expected.json` unless it already holds exactly
/// that, and says which it did.
pub(crate) fn write_expected(dir: &Path, name: &str, text: &str) -> CaseResult {
    let path = dir.join(EXPECTED_FILE);
    let blessed = match fs::read(&path) {
        Ok(old) if old == text.as_bytes() => Blessed::Unchanged,
        Ok(_) => Blessed::Updated,
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => Blessed::Created,
        Err(source) => return CaseResult::broken(name, &CaseError::Io { path, source }),
    };
    if blessed != Blessed::Unchanged
        && let Err(source) = fs::write(&path, text)
    {
        return CaseResult::broken(name, &CaseError::Write { path, source });
    }
    CaseResult {
        blessed: Some((blessed, path)),
        ..CaseResult::new(name)
    }
}

/// The plugin's captured output as the lines shown under its case: log
/// records, then stdout, then stderr, each tagged with its channel (raw
/// text: [`CaseResult`]'s `Display` escapes it).
pub(crate) fn output_lines(output: &CapturedOutput) -> Vec<String> {
    let mut lines: Vec<String> = output
        .logs
        .iter()
        .map(|record| {
            let level = serde_json::to_value(record.level)
                .ok()
                .and_then(|v| v.as_str().map(str::to_owned))
                .unwrap_or_default();
            format!("log {level}: {}", record.message)
        })
        .collect();
    lines.extend(output.stdout.lines().map(|line| format!("stdout: {line}")));
    lines.extend(output.stderr.lines().map(|line| format!("stderr: {line}")));
    if output.dropped_bytes > 0 {
        lines.push(format!(
            "({} byte(s) of output over the cap were dropped)",
            output.dropped_bytes
        ));
    }
    lines
}

/// The plugin config of the case in `dir`: `config.json` as compact JSON
/// text, `{}` when there is none, handed over as a plan's config would be
/// (whole-number floats as integers; an integer beyond ±(2^53-1) breaks
/// the case). It is not checked against the plugin's schema: a case may
/// test the plugin's own refusal of a bad config.
fn read_config(dir: &Path) -> Result<String, CaseError> {
    let config_path = dir.join(CONFIG_FILE);
    if config_path.is_file() {
        let value: serde_json::Value = read_json(&config_path)?;
        let value =
            crate::check::config::canonical(value).map_err(|reason| CaseError::Invalid {
                path: config_path.clone(),
                reason,
            })?;
        Ok(value.to_string())
    } else {
        Ok("{}".to_owned())
    }
}

/// The name of a case: its directory's name.
fn case_name(dir: &Path) -> String {
    dir.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

fn read_json<T: serde::de::DeserializeOwned>(path: &Path) -> Result<T, CaseError> {
    let bytes = crate::runtime::input::read_limited(
        path,
        "golden case file",
        crate::runtime::input::MAX_DOCUMENT_BYTES,
    )
    .map_err(|source| CaseError::Io {
        path: path.to_owned(),
        source,
    })?;
    serde_json::from_slice(&bytes).map_err(|source| CaseError::Json {
        path: path.to_owned(),
        source,
    })
}

/// The case directories under `cases_dir` (one subdirectory per case),
/// sorted by name.
fn case_dirs(cases_dir: &Path) -> Result<Vec<PathBuf>, CaseError> {
    let io_err = |source| CaseError::Io {
        path: cases_dir.to_owned(),
        source,
    };
    let mut dirs = Vec::new();
    for entry in fs::read_dir(cases_dir).map_err(io_err)? {
        let entry = entry.map_err(io_err)?;
        if entry.file_type().map_err(io_err)?.is_dir() {
            dirs.push(entry.path());
        }
    }
    dirs.sort();
    Ok(dirs)
}

/// Loads every validator case under `cases_dir` (one subdirectory per
/// case), sorted by name; the first broken case is the error.
pub fn load_cases(cases_dir: &Path) -> Result<Vec<Case>, CaseError> {
    case_dirs(cases_dir)?
        .iter()
        .map(|dir| Case::load(dir))
        .collect()
}

/// Whether [`for_each_case`] compares with or records `expected.json`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Compare,
    Bless,
}

/// Runs `plugin` on each case under `cases_dir` and compares its answer
/// with the case's `expected.json`: validator cases for a validator,
/// fault-injector cases ([`fault`]) for a fault injector. A case that
/// cannot be read is a broken result and the others still run; the error
/// is only for a cases directory that cannot be listed.
pub async fn run_cases(
    plugin: &Plugin,
    cases_dir: &Path,
    limits: &Limits,
) -> Result<Vec<CaseResult>, CaseError> {
    for_each_case(plugin, cases_dir, limits, Mode::Compare).await
}

/// Runs `plugin` on each case under `cases_dir` and writes its answer as
/// the case's `expected.json` (creating it when missing). A result says
/// whether the file was created, updated or already held that answer; a
/// case the sandbox stopped is failed and its file left alone.
pub async fn bless_cases(
    plugin: &Plugin,
    cases_dir: &Path,
    limits: &Limits,
) -> Result<Vec<CaseResult>, CaseError> {
    for_each_case(plugin, cases_dir, limits, Mode::Bless).await
}

async fn for_each_case(
    plugin: &Plugin,
    cases_dir: &Path,
    limits: &Limits,
    mode: Mode,
) -> Result<Vec<CaseResult>, CaseError> {
    let mut results = Vec::new();
    for dir in case_dirs(cases_dir)? {
        let name = case_name(&dir);
        // The host's own forwarding of plugin output (`cairn::plugin`
        // events on stderr) names the case too.
        let span = tracing::info_span!("case", case = %single_line(&name));
        let result = async {
            match (plugin.world(), mode) {
                (World::Validator, Mode::Compare) => match Case::load(&dir) {
                    Ok(case) => case.run(plugin, limits).await,
                    Err(err) => CaseResult::broken(&name, &err),
                },
                (World::Validator, Mode::Bless) => bless_validator_case(&dir, plugin, limits).await,
                (World::FaultInjector, Mode::Compare) => match FaultCase::load(&dir) {
                    Ok(case) => case.run(plugin, limits).await,
                    Err(err) => CaseResult::broken(&name, &err),
                },
                (World::FaultInjector, Mode::Bless) => {
                    fault::bless_fault_case(&dir, plugin, limits).await
                }
            }
        }
        .instrument(span)
        .await;
        results.push(result);
    }
    Ok(results)
}

/// What `--bless` did with a case's `expected.json`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Blessed {
    /// There was none; it was written.
    Created,
    /// It held another answer; it was rewritten.
    Updated,
    /// It already held exactly this answer; it was left alone.
    Unchanged,
}

/// The result of one case: it passed when it is not broken and has no
/// mismatches.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CaseResult {
    pub name: String,
    pub mismatches: Vec<Mismatch>,
    /// Why the case could not be run (its files), when it could not.
    pub broken: Option<String>,
    /// With `--bless`: what was done with which `expected.json`.
    pub blessed: Option<(Blessed, PathBuf)>,
    /// What the plugin logged and printed during the case, one line each
    /// (tagged with the channel, not escaped).
    pub output: Vec<String>,
}

impl CaseResult {
    /// A passing result with nothing to show.
    pub fn new(name: &str) -> CaseResult {
        CaseResult {
            name: name.to_owned(),
            mismatches: Vec::new(),
            broken: None,
            blessed: None,
            output: Vec::new(),
        }
    }

    /// A case that could not be run, because of `err`.
    pub fn broken(name: &str, err: &CaseError) -> CaseResult {
        CaseResult {
            broken: Some(err.reason()),
            ..CaseResult::new(name)
        }
    }

    pub fn passed(&self) -> bool {
        self.broken.is_none() && self.mismatches.is_empty()
    }

    pub fn is_broken(&self) -> bool {
        self.broken.is_some()
    }
}

impl fmt::Display for CaseResult {
    /// `ok <name>`, `FAIL <name>` followed by the mismatches, one per line
    /// (a mismatch may take several), `BROKEN <name>` followed by the
    /// reason, or with `--bless` what was written; then the plugin's output
    /// lines, each prefixed with `[<name>]`, at most [`MAX_OUTPUT_LINES`].
    /// All but the first line are indented. Names, findings, refusals and
    /// output come from case directories and plugins: their control
    /// characters are escaped, and a line break in them starts another
    /// indented line, never one at column 0 (see [`crate::escape`]).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = single_line(&self.name);
        if let Some(reason) = &self.broken {
            write!(f, "BROKEN {name}")?;
            for line in reason.lines() {
                write!(f, "\n     {}", single_line(line))?;
            }
        } else if let Some((blessed, path)) = &self.blessed {
            let path = path.display().to_string();
            let path = single_line(&path);
            match blessed {
                Blessed::Created => write!(f, "wrote     {name}: created {path}")?,
                Blessed::Updated => write!(f, "wrote     {name}: updated {path}")?,
                Blessed::Unchanged => write!(f, "unchanged {name}: {path}")?,
            }
        } else if self.passed() {
            write!(f, "ok   {name}")?;
        } else {
            write!(f, "FAIL {name}")?;
        }
        for mismatch in &self.mismatches {
            for line in mismatch.to_string().lines() {
                write!(f, "\n     {}", single_line(line))?;
            }
        }
        for line in self.output.iter().take(MAX_OUTPUT_LINES) {
            write!(f, "\n     [{name}] {}", single_line(line))?;
        }
        if self.output.len() > MAX_OUTPUT_LINES {
            write!(
                f,
                "\n     [{name}] ... {} more line(s) of plugin output",
                self.output.len() - MAX_OUTPUT_LINES
            )?;
        }
        Ok(())
    }
}

/// One difference between the expected and the actual answer (a verdict
/// or a decision).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Mismatch {
    /// The validator was expected to refuse (its own `err`) but answered.
    NotRefused {
        outcome: Outcome,
    },
    /// The plugin refused, but an answer was expected.
    Refused {
        reason: String,
    },
    /// The sandbox stopped the plugin.
    Stopped {
        failure: String,
    },
    Outcome {
        expected: Outcome,
        actual: Outcome,
    },
    /// A pinned value of the verdict (`summary`, `refusal`) differs; both
    /// as the diff shows them (texts quoted and escaped).
    Field {
        field: String,
        expected: String,
        actual: String,
    },
    /// An expected finding no actual finding matched.
    Missing(String),
    /// An actual finding no expectation matched.
    Unexpected(String),
    /// An expected finding matched an actual one of its rule on all but
    /// these keys: the actual finding, then each differing key.
    FindingDiffers {
        actual: String,
        fields: Vec<FieldDiff>,
    },
    /// The fault injector was expected to refuse but decided.
    Decided {
        decision: Box<Decision>,
    },
    /// One field of the decision differs (`action.status`,
    /// `delay-response-ms`, ...); values as in the case's JSON.
    DecisionField {
        field: String,
        expected: String,
        actual: String,
    },
    /// The decision differs: both in full, as JSON.
    Decision {
        expected: Box<Decision>,
        actual: Box<Decision>,
    },
}

impl fmt::Display for Mismatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Mismatch::NotRefused { outcome } => {
                write!(f, "expected a refusal, got outcome {outcome}")
            }
            Mismatch::Refused { reason } => write!(f, "unexpected refusal: {reason}"),
            Mismatch::Stopped { failure } => write!(f, "stopped by the sandbox: {failure}"),
            Mismatch::Outcome { expected, actual } => {
                write!(f, "outcome: expected {expected}, got {actual}")
            }
            Mismatch::Field {
                field,
                expected,
                actual,
            } => write!(f, "{field}: expected {expected}, got {actual}"),
            Mismatch::Missing(finding) => write!(f, "- missing:    {finding}"),
            Mismatch::Unexpected(finding) => write!(f, "+ unexpected: {finding}"),
            Mismatch::FindingDiffers { actual, fields } => {
                write!(f, "~ differs:    {actual}")?;
                for diff in fields {
                    write!(
                        f,
                        "\n    {}: expected {}, got {}",
                        diff.field, diff.expected, diff.actual
                    )?;
                }
                Ok(())
            }
            Mismatch::Decided { decision } => {
                write!(
                    f,
                    "expected a refusal, got decision {}",
                    fault::decision_json(decision)
                )
            }
            Mismatch::DecisionField {
                field,
                expected,
                actual,
            } => write!(f, "{field}: expected {expected}, got {actual}"),
            Mismatch::Decision { expected, actual } => write!(
                f,
                "- expected decision: {}\n+ actual decision:   {}",
                fault::decision_json(expected),
                fault::decision_json(actual)
            ),
        }
    }
}

/// Compares what a validator call ended with against the expectation.
pub fn compare(expected: &Expected, actual: &CallOutcome<Verdict>) -> Vec<Mismatch> {
    match actual {
        CallOutcome::Stopped(failure) => vec![Mismatch::Stopped {
            failure: format!("{}: {}", failure.kind, failure.message),
        }],
        CallOutcome::Refused(reason) => match &expected.refused {
            None => vec![Mismatch::Refused {
                reason: reason.clone(),
            }],
            Some(ExpectedRefusal::Any) => Vec::new(),
            Some(ExpectedRefusal::Text(text)) if text.matches(reason) => Vec::new(),
            Some(ExpectedRefusal::Text(text)) => vec![Mismatch::Field {
                field: "refusal".into(),
                expected: text.to_string(),
                actual: quoted(reason),
            }],
        },
        CallOutcome::Completed(verdict) if expected.refused.is_some() => {
            vec![Mismatch::NotRefused {
                outcome: verdict.outcome,
            }]
        }
        CallOutcome::Completed(verdict) => compare_verdict(expected, verdict),
    }
}

fn compare_verdict(expected: &Expected, verdict: &Verdict) -> Vec<Mismatch> {
    let mut mismatches = Vec::new();
    if let Some(outcome) = expected.outcome
        && outcome != verdict.outcome
    {
        mismatches.push(Mismatch::Outcome {
            expected: outcome,
            actual: verdict.outcome,
        });
    }
    if let Some(summary) = &expected.summary
        && !verdict
            .summary
            .as_deref()
            .is_some_and(|s| summary.matches(s))
    {
        mismatches.push(Mismatch::Field {
            field: "summary".into(),
            expected: summary.to_string(),
            actual: verdict
                .summary
                .as_deref()
                .map_or_else(|| "no summary".to_owned(), quoted),
        });
    }
    let pairs = match_findings(&expected.findings, &verdict.findings);
    let mut used: Vec<bool> = vec![false; verdict.findings.len()];
    for a in pairs.iter().flatten() {
        used[*a] = true;
    }
    // An unmatched expectation is shown against the unmatched finding of
    // its rule it differs least from, key by key; else as missing.
    let mut missing = Vec::new();
    for (index, wanted) in expected.findings.iter().enumerate() {
        if pairs[index].is_some() {
            continue;
        }
        let closest = (0..verdict.findings.len())
            .filter(|&a| !used[a] && verdict.findings[a].rule == wanted.rule)
            .map(|a| (wanted.differences(&verdict.findings[a]), a))
            .min_by_key(|(diffs, a)| (diffs.len(), *a));
        match closest {
            Some((fields, a)) => {
                used[a] = true;
                mismatches.push(Mismatch::FindingDiffers {
                    actual: describe(&verdict.findings[a]),
                    fields,
                });
            }
            None => missing.push(Mismatch::Missing(wanted.to_string())),
        }
    }
    mismatches.extend(missing);
    for (index, finding) in verdict.findings.iter().enumerate() {
        if !used[index] {
            mismatches.push(Mismatch::Unexpected(describe(finding)));
        }
    }
    mismatches
}

/// A maximum one-to-one matching of expectations to actual findings
/// (augmenting paths): a partial expectation that fits several findings
/// must not take the one a stricter expectation needs. Returns, for each
/// expectation, the index of its actual finding.
pub fn match_findings(expected: &[ExpectedFinding], actual: &[Finding]) -> Vec<Option<usize>> {
    let fits: Vec<Vec<usize>> = expected
        .iter()
        .map(|e| {
            (0..actual.len())
                .filter(|&a| e.matches(&actual[a]))
                .collect()
        })
        .collect();
    let mut owner: Vec<Option<usize>> = vec![None; actual.len()];
    for e in 0..expected.len() {
        let mut seen = vec![false; actual.len()];
        augment(e, &fits, &mut owner, &mut seen);
    }
    let mut pairs = vec![None; expected.len()];
    for (a, e) in owner.iter().enumerate() {
        if let Some(e) = e {
            pairs[*e] = Some(a);
        }
    }
    pairs
}

fn augment(e: usize, fits: &[Vec<usize>], owner: &mut [Option<usize>], seen: &mut [bool]) -> bool {
    for &a in &fits[e] {
        if seen[a] {
            continue;
        }
        seen[a] = true;
        if owner[a].is_none_or(|other| augment(other, fits, owner, seen)) {
            owner[a] = Some(e);
            return true;
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_case_config_reaches_the_plugin_as_a_plan_config_would() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join(CONFIG_FILE), r#"{"max": 3.0, "big": 1e3}"#).unwrap();
        assert_eq!(read_config(dir.path()).unwrap(), r#"{"big":1000,"max":3}"#);
        fs::write(dir.path().join(CONFIG_FILE), r#"{"id": 9007199254740993}"#).unwrap();
        let err = read_config(dir.path()).unwrap_err().to_string();
        assert!(err.contains("config/id is beyond"), "{err}");
    }
    use crate::runtime::failure::{Failure, FailureKind};
    use crate::runtime::verdict::Location;

    fn actual(rule: &str, severity: Severity, document: &str, pointer: Option<&str>) -> Finding {
        Finding {
            rule: rule.into(),
            severity,
            message: "m".into(),
            location: Some(Location {
                document: document.into(),
                pointer: pointer.map(Into::into),
                line: Some(3),
                column: None,
            }),
            hint: None,
        }
    }

    fn expect(rule: &str, pointer: Option<&str>) -> ExpectedFinding {
        ExpectedFinding {
            rule: rule.into(),
            severity: None,
            document: None,
            pointer: pointer.map(Into::into),
            line: None,
            column: None,
            message: None,
            hint: None,
        }
    }

    fn verdict(outcome: Outcome, findings: Vec<Finding>) -> CallOutcome<Verdict> {
        CallOutcome::Completed(Verdict {
            outcome,
            findings,
            summary: None,
            findings_dropped: 0,
        })
    }

    fn expected(outcome: Outcome, findings: Vec<ExpectedFinding>) -> Expected {
        Expected {
            outcome: Some(outcome),
            summary: None,
            findings,
            refused: None,
        }
    }

    #[test]
    fn partial_expectations_match_on_the_keys_they_give() {
        let found = actual("r/a", Severity::Error, "a.json", Some("/x"));
        assert!(expect("r/a", None).matches(&found));
        assert!(expect("r/a", Some("/x")).matches(&found));
        assert!(!expect("r/a", Some("/y")).matches(&found));
        assert!(!expect("r/b", None).matches(&found));
        let mut with_line = expect("r/a", None);
        with_line.line = Some(4);
        assert!(!with_line.matches(&found));
    }

    #[test]
    fn a_loose_expectation_does_not_steal_the_finding_a_strict_one_needs() {
        // The loose one is listed first and fits both; greedy matching would
        // give it /x and leave the strict one without a partner.
        let findings = vec![
            actual("r/a", Severity::Error, "a.json", Some("/x")),
            actual("r/a", Severity::Error, "a.json", Some("/y")),
        ];
        let wanted = vec![expect("r/a", None), expect("r/a", Some("/x"))];
        let result = compare(
            &expected(Outcome::Fail, wanted),
            &verdict(Outcome::Fail, findings),
        );
        assert_eq!(result, Vec::new());
    }

    #[test]
    fn missing_and_unexpected_findings_and_outcome_are_all_reported() {
        let findings = vec![actual("r/extra", Severity::Warning, "a.json", None)];
        let result = compare(
            &expected(Outcome::Fail, vec![expect("r/a", Some("/x"))]),
            &verdict(Outcome::Warn, findings),
        );
        assert_eq!(result.len(), 3);
        assert!(matches!(
            result[0],
            Mismatch::Outcome {
                expected: Outcome::Fail,
                actual: Outcome::Warn
            }
        ));
        assert_eq!(result[1].to_string(), "- missing:    r/a #/x");
        assert_eq!(
            result[2].to_string(),
            "+ unexpected: r/extra [warning] a.json line 3: m"
        );
    }

    #[test]
    fn the_same_finding_cannot_satisfy_two_expectations() {
        let findings = vec![actual("r/a", Severity::Error, "a.json", None)];
        let wanted = vec![expect("r/a", None), expect("r/a", None)];
        let result = compare(
            &expected(Outcome::Fail, wanted),
            &verdict(Outcome::Fail, findings),
        );
        assert_eq!(result, vec![Mismatch::Missing("r/a".into())]);
    }

    #[test]
    fn refusals_match_only_when_expected() {
        let refused = Expected {
            outcome: None,
            summary: None,
            findings: Vec::new(),
            refused: Some(ExpectedRefusal::Any),
        };
        assert!(compare(&refused, &CallOutcome::Refused("bad config".into())).is_empty());
        assert_eq!(
            compare(&refused, &verdict(Outcome::Pass, Vec::new())),
            vec![Mismatch::NotRefused {
                outcome: Outcome::Pass
            }]
        );
        let wanted = expected(Outcome::Pass, Vec::new());
        assert!(matches!(
            compare(&wanted, &CallOutcome::Refused("bad".into()))[..],
            [Mismatch::Refused { .. }]
        ));
        let stopped = CallOutcome::Stopped(Failure::new(FailureKind::Timeout, "late"));
        assert!(matches!(
            compare(&wanted, &stopped)[..],
            [Mismatch::Stopped { .. }]
        ));
    }

    #[test]
    fn invalid_expected_file_is_an_error_naming_the_file() {
        let dir = tempfile::tempdir().unwrap();
        fs::create_dir_all(dir.path().join("change/after")).unwrap();
        fs::write(dir.path().join(EXPECTED_FILE), r#"{"outcome": "maybe"}"#).unwrap();
        let err = Case::load(dir.path()).unwrap_err();
        assert!(matches!(err, CaseError::Json { .. }));
        assert!(err.to_string().contains(EXPECTED_FILE), "{err}");

        fs::write(dir.path().join(EXPECTED_FILE), r#"{"findings": []}"#).unwrap();
        let err = Case::load(dir.path()).unwrap_err();
        assert!(matches!(err, CaseError::Invalid { .. }), "{err}");
    }

    #[test]
    fn a_fault_injector_case_given_to_a_validator_says_so() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join(REQUEST_FILE), "{}").unwrap();
        fs::write(dir.path().join(EXPECTED_FILE), r#"{"refused": ""}"#).unwrap();
        let err = Case::load(dir.path()).unwrap_err();
        assert!(matches!(err, CaseError::Invalid { .. }), "{err}");
        assert!(
            err.to_string()
                .contains("a fault-injector case, but the plugin is a validator"),
            "{err}"
        );
    }

    #[test]
    fn a_case_loads_its_change_config_and_expectation() {
        let dir = tempfile::tempdir().unwrap();
        fs::create_dir_all(dir.path().join("change/after")).unwrap();
        fs::write(dir.path().join("change/after/a.json"), "{}").unwrap();
        fs::write(dir.path().join(CONFIG_FILE), r#"{"allow": ["*"]}"#).unwrap();
        fs::write(
            dir.path().join(EXPECTED_FILE),
            r#"{"outcome": "pass", "findings": [{"rule": "r/a", "line": 2}]}"#,
        )
        .unwrap();
        let case = Case::load(dir.path()).unwrap();
        assert_eq!(case.config, r#"{"allow":["*"]}"#);
        assert_eq!(case.expected.findings[0].line, Some(2));
        assert!(case.change.document("a.json").is_some());
    }

    #[test]
    fn hostile_case_names_and_plugin_text_are_escaped_and_indented() {
        let result = CaseResult {
            output: vec!["log info: \u{1b}]0;title\u{7}\nok   forged".into()],
            mismatches: vec![
                Mismatch::Refused {
                    reason: "no\u{7}\rback\nok   all\u{0}".into(),
                },
                Mismatch::Unexpected(describe(&actual(
                    "r/\u{c}",
                    Severity::Error,
                    "doc\u{9b}.json",
                    None,
                ))),
            ],
            ..CaseResult::new("case\u{1b}[2J\nok   forged")
        };
        let text = result.to_string();
        assert!(
            text.chars()
                .all(|c| c == '\n' || !crate::escape::is_unsafe(c)),
            "{text:?}"
        );
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[0], "FAIL case\\u{1b}[2J\\nok   forged", "{text}");
        assert!(lines[1..].iter().all(|l| l.starts_with("     ")), "{text}");
        assert!(text.contains("no\\u{7}\\rback"), "{text}");
        assert!(text.contains("r/\\u{c}"), "{text}");
        assert!(text.contains("doc\\u{9b}.json"), "{text}");
        assert_eq!(
            lines[lines.len() - 1],
            "     [case\\u{1b}[2J\\nok   forged] log info: \\u{1b}]0;title\\u{7}\\nok   forged",
            "{text}"
        );
    }

    fn parse(text: &str) -> Expected {
        serde_json::from_str(text).expect("valid expected.json")
    }

    fn scanner_finding() -> Finding {
        Finding {
            rule: "secrets/token".into(),
            severity: Severity::Error,
            message: "a GitHub token is embedded".into(),
            location: Some(Location {
                document: "deploy/app.yaml".into(),
                pointer: None,
                line: Some(4),
                column: Some(9),
            }),
            hint: Some("use ${secret:NAME}".into()),
        }
    }

    fn scanner_verdict() -> CallOutcome<Verdict> {
        CallOutcome::Completed(Verdict {
            outcome: Outcome::Fail,
            findings: vec![scanner_finding()],
            summary: Some("found 1 secret".into()),
            findings_dropped: 0,
        })
    }

    #[test]
    fn text_keys_match_exactly_or_by_contains_and_a_difference_names_its_key() {
        let exact = parse(
            r#"{"outcome": "fail", "summary": "found 1 secret", "findings": [{"rule": "secrets/token",
                "document": "deploy/app.yaml", "line": 4, "column": 9,
                "message": "a GitHub token is embedded", "hint": "use ${secret:NAME}"}]}"#,
        );
        assert_eq!(compare(&exact, &scanner_verdict()), Vec::new());
        let contains = parse(
            r#"{"outcome": "fail", "summary": {"contains": "1 secret"}, "findings": [{"rule": "secrets/token",
                "message": {"contains": "GitHub"}, "hint": {"contains": "secret:"}}]}"#,
        );
        assert_eq!(compare(&contains, &scanner_verdict()), Vec::new());

        let wrong = parse(
            r#"{"outcome": "fail", "summary": {"contains": "2 secrets"}, "findings": [{"rule": "secrets/token",
                "column": 8, "message": "a GitLab token is embedded", "hint": {"contains": "vault"}}]}"#,
        );
        let result = compare(&wrong, &scanner_verdict());
        let text: Vec<String> = result.iter().map(ToString::to_string).collect();
        assert_eq!(
            text,
            vec![
                r#"summary: expected text containing "2 secrets", got "found 1 secret""#.to_owned(),
                concat!(
                    "~ differs:    secrets/token [error] deploy/app.yaml line 4 column 9: a GitHub token is embedded\n",
                    "    column: expected 8, got 9\n",
                    r#"    message: expected "a GitLab token is embedded", got "a GitHub token is embedded""#,
                    "\n",
                    r#"    hint: expected text containing "vault", got "use ${secret:NAME}""#,
                )
                .to_owned(),
            ]
        );
    }

    #[test]
    fn a_refusal_text_matches_exactly_and_true_matches_any() {
        let refused = CallOutcome::Refused("invalid config: allow".into());
        assert!(compare(&parse(r#"{"refused": true}"#), &refused).is_empty());
        assert!(compare(&parse(r#"{"refused": "invalid config: allow"}"#), &refused).is_empty());
        assert!(compare(&parse(r#"{"refused": {"contains": "config"}}"#), &refused).is_empty());
        assert_eq!(
            compare(&parse(r#"{"refused": "invalid config"}"#), &refused),
            vec![Mismatch::Field {
                field: "refusal".into(),
                expected: r#""invalid config""#.into(),
                actual: r#""invalid config: allow""#.into(),
            }]
        );
    }

    #[test]
    fn location_keys_may_be_nested_as_the_plugin_reports_them() {
        let nested = parse(
            r#"{"outcome": "fail", "findings": [{"rule": "secrets/token",
                "location": {"document": "deploy/app.yaml", "line": 4, "column": 9}}]}"#,
        );
        assert_eq!(
            nested.findings[0].document.as_deref(),
            Some("deploy/app.yaml")
        );
        assert_eq!(nested.findings[0].column, Some(9));
        assert_eq!(compare(&nested, &scanner_verdict()), Vec::new());
        let both = serde_json::from_str::<Expected>(
            r#"{"outcome": "fail", "findings": [{"rule": "r", "line": 1, "location": {"line": 2}}]}"#,
        )
        .expect_err("line given twice");
        assert!(
            both.to_string()
                .contains("`line` both flat and in `location`"),
            "{both}"
        );
    }

    #[test]
    fn an_unknown_key_is_an_error_naming_the_key_and_the_file() {
        let dir = tempfile::tempdir().unwrap();
        fs::create_dir_all(dir.path().join("change/after")).unwrap();
        fs::write(
            dir.path().join(EXPECTED_FILE),
            r#"{"outcome": "fail", "findings": [{"rule": "r", "mesage": "typo"}]}"#,
        )
        .unwrap();
        let reason = Case::load(dir.path()).unwrap_err().reason();
        assert!(reason.contains("unknown field `mesage`"), "{reason}");
        assert!(reason.contains(EXPECTED_FILE), "{reason}");
        fs::write(
            dir.path().join(EXPECTED_FILE),
            r#"{"outcome": "fail", "sumary": "x"}"#,
        )
        .unwrap();
        let reason = Case::load(dir.path()).unwrap_err().reason();
        assert!(reason.contains("unknown field `sumary`"), "{reason}");
    }

    #[test]
    fn a_case_without_expected_json_says_to_bless_it() {
        let dir = tempfile::tempdir().unwrap();
        fs::create_dir_all(dir.path().join("change/after")).unwrap();
        let err = Case::load(dir.path()).unwrap_err();
        assert!(matches!(err, CaseError::NoExpected { .. }), "{err}");
        assert!(err.to_string().contains("--bless"), "{err}");
        let shown = CaseResult::broken("new-case", &err).to_string();
        assert!(shown.starts_with("BROKEN new-case\n     "), "{shown}");
        assert!(shown.contains("no expected.json"), "{shown}");
    }

    #[test]
    fn a_blessed_verdict_is_every_key_in_a_fixed_order_and_matches_itself() {
        let CallOutcome::Completed(verdict) = scanner_verdict() else {
            unreachable!("scanner_verdict completes")
        };
        let text = verdict_file(&verdict);
        assert_eq!(
            text,
            concat!(
                "{\n",
                "  \"outcome\": \"fail\",\n",
                "  \"summary\": \"found 1 secret\",\n",
                "  \"findings\": [\n",
                "    {\n",
                "      \"rule\": \"secrets/token\",\n",
                "      \"severity\": \"error\",\n",
                "      \"document\": \"deploy/app.yaml\",\n",
                "      \"line\": 4,\n",
                "      \"column\": 9,\n",
                "      \"message\": \"a GitHub token is embedded\",\n",
                "      \"hint\": \"use ${secret:NAME}\"\n",
                "    }\n",
                "  ]\n",
                "}\n",
            )
        );
        assert_eq!(compare(&parse(&text), &scanner_verdict()), Vec::new());
        let refusal = refusal_file("bad \"config\"\n");
        assert_eq!(refusal, "{\n  \"refused\": \"bad \\\"config\\\"\\n\"\n}\n");
        assert!(
            compare(
                &parse(&refusal),
                &CallOutcome::Refused("bad \"config\"\n".into())
            )
            .is_empty()
        );
    }
}
