//! Golden test cases (`cairn plugin test`): loading a plugin's cases
//! directory, running the plugin over each case, and comparing its answer
//! with `expected.json`, with a readable diff of what differs. Validator
//! cases live here; fault-injector cases in [`fault`]. [`run_cases`] picks
//! the kind from the plugin's world.
//!
//! A validator case is a directory `cases/<name>/` holding `change/` (a
//! change directory, see [`Change::from_dir`]), an optional `config.json`
//! (the plugin config, `{}` when absent) and `expected.json`:
//!
//! ```json
//! {"outcome": "fail",
//!  "findings": [{"rule": "destructive/removed-field", "severity": "error",
//!                "document": "tables/users.json", "pointer": "/columns/email", "line": 7}]}
//! ```
//!
//! or `{"refused": true}` when the plugin must return its own `err`. Every
//! expected finding must match a distinct actual finding on each key it
//! gives, and the counts must be equal; order does not matter.

use std::fmt;
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::Deserialize;

use crate::escape::single_line;
use crate::runtime::bindings::World;
use crate::runtime::call::CallOutcome;
use crate::runtime::change::{Change, ChangeError, Checkpoint};
use crate::runtime::inject::Decision;
use crate::runtime::limits::Limits;
use crate::runtime::plugin::Plugin;
use crate::runtime::verdict::{Finding, Outcome, Severity, Verdict};

pub mod fault;

pub use fault::{FaultCase, FaultExpected, REQUEST_FILE, load_fault_cases};

/// Name of the file with the expected verdict of a case.
pub const EXPECTED_FILE: &str = "expected.json";
/// Name of the optional plugin config of a case.
pub const CONFIG_FILE: &str = "config.json";
/// Name of the change directory of a case.
pub const CHANGE_DIR: &str = "change";

/// Why a case (or the cases directory) could not be read.
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
}

/// What `expected.json` says.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Expected {
    pub outcome: Option<Outcome>,
    #[serde(default)]
    pub findings: Vec<ExpectedFinding>,
    #[serde(default)]
    pub refused: bool,
}

/// One expected finding: each key given must match.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExpectedFinding {
    pub rule: String,
    pub severity: Option<Severity>,
    pub document: Option<String>,
    pub pointer: Option<String>,
    pub line: Option<u32>,
}

impl ExpectedFinding {
    /// Whether `actual` agrees with every key this expectation gives.
    pub fn matches(&self, actual: &Finding) -> bool {
        let location = actual.location.as_ref();
        self.rule == actual.rule
            && self.severity.is_none_or(|s| s == actual.severity)
            && self
                .document
                .as_ref()
                .is_none_or(|d| location.is_some_and(|l| &l.document == d))
            && self
                .pointer
                .as_ref()
                .is_none_or(|p| location.is_some_and(|l| l.pointer.as_ref() == Some(p)))
            && self
                .line
                .is_none_or(|n| location.is_some_and(|l| l.line == Some(n)))
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
        Ok(())
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

impl Case {
    /// Loads the case in `dir`.
    pub fn load(dir: &Path) -> Result<Case, CaseError> {
        let name = case_name(dir);
        let change_dir = dir.join(CHANGE_DIR);
        if !change_dir.is_dir() && dir.join(REQUEST_FILE).is_file() {
            return Err(CaseError::Invalid {
                path: dir.to_owned(),
                reason: format!(
                    "has {REQUEST_FILE} but no {CHANGE_DIR}/: a fault-injector case, but the plugin is a validator"
                ),
            });
        }
        let expected_path = dir.join(EXPECTED_FILE);
        let expected: Expected = read_json(&expected_path)?;
        if expected.refused && (expected.outcome.is_some() || !expected.findings.is_empty()) {
            return Err(CaseError::Invalid {
                path: expected_path,
                reason: "`refused` excludes `outcome` and `findings`".into(),
            });
        }
        if !expected.refused && expected.outcome.is_none() {
            return Err(CaseError::Invalid {
                path: expected_path,
                reason: "needs `outcome` (or `\"refused\": true`)".into(),
            });
        }
        let config = read_config(dir)?;
        let change = Change::from_dir(&change_dir).map_err(|source| CaseError::Change {
            path: change_dir,
            source,
        })?;
        Ok(Case {
            name,
            dir: dir.to_owned(),
            change: Arc::new(change),
            config,
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
            name: self.name.clone(),
            mismatches: compare(&self.expected, &report.outcome),
        }
    }
}

/// The plugin config of the case in `dir`: `config.json` as compact JSON
/// text, `{}` when there is none.
fn read_config(dir: &Path) -> Result<String, CaseError> {
    let config_path = dir.join(CONFIG_FILE);
    if config_path.is_file() {
        let value: serde_json::Value = read_json(&config_path)?;
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
/// case), sorted by name.
pub fn load_cases(cases_dir: &Path) -> Result<Vec<Case>, CaseError> {
    case_dirs(cases_dir)?
        .iter()
        .map(|dir| Case::load(dir))
        .collect()
}

/// Loads the cases under `cases_dir` and runs `plugin` on each: validator
/// cases for a validator, fault-injector cases ([`fault`]) for a fault
/// injector. Every case is loaded before the first runs, so a broken case
/// fails the whole run.
pub async fn run_cases(
    plugin: &Plugin,
    cases_dir: &Path,
    limits: &Limits,
) -> Result<Vec<CaseResult>, CaseError> {
    let mut results = Vec::new();
    match plugin.world() {
        World::Validator => {
            for case in load_cases(cases_dir)? {
                results.push(case.run(plugin, limits).await);
            }
        }
        World::FaultInjector => {
            for case in load_fault_cases(cases_dir)? {
                results.push(case.run(plugin, limits).await);
            }
        }
    }
    Ok(results)
}

/// The result of one case: empty `mismatches` means it passed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CaseResult {
    pub name: String,
    pub mismatches: Vec<Mismatch>,
}

impl CaseResult {
    pub fn passed(&self) -> bool {
        self.mismatches.is_empty()
    }
}

impl fmt::Display for CaseResult {
    /// `ok <name>`, or `FAIL <name>` followed by the mismatches, one per
    /// line (a mismatch may take several), indented. Names, findings and
    /// refusals come from case directories and plugins: their control
    /// characters are escaped, and a line break in them starts another
    /// indented line, never one at column 0 (see [`crate::escape`]).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = single_line(&self.name);
        if self.passed() {
            return write!(f, "ok   {name}");
        }
        write!(f, "FAIL {name}")?;
        for mismatch in &self.mismatches {
            for line in mismatch.to_string().lines() {
                write!(f, "\n     {}", single_line(line))?;
            }
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
    /// An expected finding no actual finding matched.
    Missing(String),
    /// An actual finding no expectation matched.
    Unexpected(String),
    /// The fault injector was expected to refuse but decided.
    Decided {
        decision: Box<Decision>,
    },
    /// The fault injector refused, without the expected text.
    RefusalText {
        expected: String,
        actual: String,
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
            Mismatch::Missing(finding) => write!(f, "- missing:    {finding}"),
            Mismatch::Unexpected(finding) => write!(f, "+ unexpected: {finding}"),
            Mismatch::Decided { decision } => {
                write!(
                    f,
                    "expected a refusal, got decision {}",
                    fault::decision_json(decision)
                )
            }
            Mismatch::RefusalText { expected, actual } => {
                write!(f, "refusal {actual:?} does not contain {expected:?}")
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
        CallOutcome::Refused(reason) if !expected.refused => vec![Mismatch::Refused {
            reason: reason.clone(),
        }],
        CallOutcome::Refused(_) => Vec::new(),
        CallOutcome::Completed(verdict) if expected.refused => vec![Mismatch::NotRefused {
            outcome: verdict.outcome,
        }],
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
    let pairs = match_findings(&expected.findings, &verdict.findings);
    for (index, finding) in expected.findings.iter().enumerate() {
        if pairs[index].is_none() {
            mismatches.push(Mismatch::Missing(finding.to_string()));
        }
    }
    let used: Vec<usize> = pairs.iter().flatten().copied().collect();
    for (index, finding) in verdict.findings.iter().enumerate() {
        if !used.contains(&index) {
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
            findings,
            refused: false,
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
            findings: Vec::new(),
            refused: true,
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
            name: "case\u{1b}[2J\nok   forged".into(),
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
    }
}
