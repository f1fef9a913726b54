//! The host's own, version-independent model of what validators answer:
//! outcomes, findings and verdicts, plus the contract checks every verdict
//! must pass before the host believes it, and the caps on the text a plugin
//! puts in one (a plugin's words reach every report: each is bounded).

use std::collections::BTreeSet;
use std::fmt;

use serde::{Deserialize, Serialize};

/// A validator's (or a gate's) answer. Ordered as a gate ranks them, so
/// the worst of several is their `max()`: pass < warn < inconclusive < fail.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    Pass,
    Warn,
    /// The validator could not decide (a metric it needs is missing).
    Inconclusive,
    Fail,
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Outcome::Pass => "pass",
            Outcome::Warn => "warn",
            Outcome::Fail => "fail",
            Outcome::Inconclusive => "inconclusive",
        })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Info,
    Warning,
    Error,
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Severity::Info => "info",
            Severity::Warning => "warning",
            Severity::Error => "error",
        })
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Location {
    pub document: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pointer: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub line: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub column: Option<u32>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Finding {
    pub rule: String,
    pub severity: Severity,
    pub message: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub location: Option<Location>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hint: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Verdict {
    pub outcome: Outcome,
    pub findings: Vec<Finding>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub summary: Option<String>,
    /// Findings past the plugin's `max-findings` cap that were dropped.
    #[serde(default)]
    pub findings_dropped: usize,
}

/// Cap on a verdict's summary, in bytes (UTF-8). A longer summary keeps its
/// first `MAX_SUMMARY_BYTES` (cut on a character boundary) followed by
/// [`truncation_marker`]; the plugin's call still counts.
pub const MAX_SUMMARY_BYTES: usize = 4 << 10;
/// Cap on a finding's message, in bytes; cut as the summary is.
pub const MAX_MESSAGE_BYTES: usize = 4 << 10;
/// Cap on a finding's hint, in bytes; cut as the summary is.
pub const MAX_HINT_BYTES: usize = 4 << 10;
/// Cap on the reason a plugin gives when it refuses (returns `err`), in
/// bytes; cut as the summary is.
pub const MAX_REFUSAL_BYTES: usize = 4 << 10;
/// Cap on a finding's rule id, in bytes. A rule id is an identifier that
/// reports group and filter by, so it is never cut: a longer one breaks the
/// contract (`invalid-output`).
pub const MAX_RULE_BYTES: usize = 256;
/// Cap on a finding's JSON pointer, in bytes. A cut pointer would point
/// elsewhere, so a longer one breaks the contract (`invalid-output`).
pub const MAX_POINTER_BYTES: usize = 4 << 10;

/// What replaces the `dropped` bytes cut from the end of a plugin's text.
pub fn truncation_marker(dropped: usize) -> String {
    format!("… [truncated {dropped} bytes]")
}

/// `text` cut to at most `max` bytes on a character boundary, followed by
/// [`truncation_marker`] when anything was cut (so the result may exceed
/// `max` by the marker's length).
pub fn truncated(mut text: String, max: usize) -> String {
    if text.len() <= max {
        return text;
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    let dropped = text.len() - end;
    text.truncate(end);
    text.push_str(&truncation_marker(dropped));
    text
}

/// Why a verdict breaks the contract (reported as `invalid-output`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ContractViolation {
    #[error("finding #{index} has an empty rule id")]
    EmptyRule { index: usize },
    #[error("finding #{index} has a rule id of {len} bytes (at most {MAX_RULE_BYTES})")]
    RuleTooLong { index: usize, len: usize },
    #[error("finding #{index} has a pointer of {len} bytes (at most {MAX_POINTER_BYTES})")]
    PointerTooLong { index: usize, len: usize },
    #[error(
        "finding #{index} has rule id {rule:?}, which contains whitespace or control characters"
    )]
    MalformedRule { index: usize, rule: String },
    #[error("finding #{index} points at document {document:?}, which is not part of the change")]
    UnknownDocument { index: usize, document: String },
    #[error("finding #{index} has pointer {pointer:?}, which is not an RFC 6901 JSON pointer")]
    MalformedPointer { index: usize, pointer: String },
    #[error("finding #{index} has line or column 0 (they are 1-based)")]
    ZeroPosition { index: usize },
    #[error("outcome is pass but finding #{index} has severity error")]
    PassWithError { index: usize },
}

impl Verdict {
    /// Checks the verdict against the contract, caps its findings at
    /// `max_findings` (counting what was dropped) and cuts its free text to
    /// the caps above (summary, messages, hints). `documents` are the paths
    /// of the change the verdict is about.
    pub fn checked(
        mut self,
        documents: &BTreeSet<&str>,
        max_findings: usize,
    ) -> Result<Verdict, ContractViolation> {
        if self.findings.len() > max_findings {
            self.findings_dropped += self.findings.len() - max_findings;
            self.findings.truncate(max_findings);
        }
        self.summary = self
            .summary
            .map(|summary| truncated(summary, MAX_SUMMARY_BYTES));
        for (index, finding) in self.findings.iter_mut().enumerate() {
            check_finding(index, finding, documents)?;
            if self.outcome == Outcome::Pass && finding.severity == Severity::Error {
                return Err(ContractViolation::PassWithError { index });
            }
            finding.message = truncated(std::mem::take(&mut finding.message), MAX_MESSAGE_BYTES);
            finding.hint = finding
                .hint
                .take()
                .map(|hint| truncated(hint, MAX_HINT_BYTES));
        }
        Ok(self)
    }
}

fn check_finding(
    index: usize,
    finding: &Finding,
    documents: &BTreeSet<&str>,
) -> Result<(), ContractViolation> {
    if finding.rule.is_empty() {
        return Err(ContractViolation::EmptyRule { index });
    }
    if finding.rule.len() > MAX_RULE_BYTES {
        return Err(ContractViolation::RuleTooLong {
            index,
            len: finding.rule.len(),
        });
    }
    if finding
        .rule
        .chars()
        .any(|c| c.is_whitespace() || c.is_control())
    {
        return Err(ContractViolation::MalformedRule {
            index,
            rule: finding.rule.clone(),
        });
    }
    let Some(location) = &finding.location else {
        return Ok(());
    };
    if !documents.contains(location.document.as_str()) {
        return Err(ContractViolation::UnknownDocument {
            index,
            document: location.document.clone(),
        });
    }
    if let Some(pointer) = &location.pointer
        && pointer.len() > MAX_POINTER_BYTES
    {
        return Err(ContractViolation::PointerTooLong {
            index,
            len: pointer.len(),
        });
    }
    if let Some(pointer) = &location.pointer
        && !is_json_pointer(pointer)
    {
        return Err(ContractViolation::MalformedPointer {
            index,
            pointer: pointer.clone(),
        });
    }
    if location.line == Some(0) || location.column == Some(0) {
        return Err(ContractViolation::ZeroPosition { index });
    }
    Ok(())
}

/// RFC 6901: empty, or `/`-prefixed tokens where `~` is only followed by 0 or 1.
fn is_json_pointer(pointer: &str) -> bool {
    if pointer.is_empty() {
        return true;
    }
    if !pointer.starts_with('/') {
        return false;
    }
    let mut chars = pointer.chars();
    while let Some(c) = chars.next() {
        if c == '~' && !matches!(chars.next(), Some('0' | '1')) {
            return false;
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    fn finding(rule: &str, severity: Severity, location: Option<Location>) -> Finding {
        Finding {
            rule: rule.into(),
            severity,
            message: "m".into(),
            location,
            hint: None,
        }
    }

    fn at(document: &str, pointer: Option<&str>) -> Option<Location> {
        Some(Location {
            document: document.into(),
            pointer: pointer.map(Into::into),
            line: None,
            column: None,
        })
    }

    fn verdict(outcome: Outcome, findings: Vec<Finding>) -> Verdict {
        Verdict {
            outcome,
            findings,
            summary: None,
            findings_dropped: 0,
        }
    }

    #[test]
    fn findings_over_the_cap_are_dropped_and_counted() {
        let findings = (0..5).map(|_| finding("r", Severity::Info, None)).collect();
        let checked = verdict(Outcome::Warn, findings)
            .checked(&BTreeSet::new(), 2)
            .unwrap();
        assert_eq!(checked.findings.len(), 2);
        assert_eq!(checked.findings_dropped, 3);
    }

    #[test]
    fn verdicts_that_break_the_contract_are_rejected() {
        let docs = BTreeSet::from(["a.json"]);
        let check = |f: Finding, outcome| verdict(outcome, vec![f]).checked(&docs, 10);
        assert_eq!(
            check(finding("", Severity::Info, None), Outcome::Warn),
            Err(ContractViolation::EmptyRule { index: 0 })
        );
        assert!(matches!(
            check(finding("a rule", Severity::Info, None), Outcome::Warn),
            Err(ContractViolation::MalformedRule { .. })
        ));
        assert!(matches!(
            check(
                finding("r", Severity::Info, at("b.json", None)),
                Outcome::Warn
            ),
            Err(ContractViolation::UnknownDocument { .. })
        ));
        assert!(matches!(
            check(
                finding("r", Severity::Info, at("a.json", Some("steps/0"))),
                Outcome::Warn
            ),
            Err(ContractViolation::MalformedPointer { .. })
        ));
        assert!(matches!(
            check(
                finding("r", Severity::Info, at("a.json", Some("/a~2b"))),
                Outcome::Warn
            ),
            Err(ContractViolation::MalformedPointer { .. })
        ));
        assert_eq!(
            check(finding("r", Severity::Error, None), Outcome::Pass),
            Err(ContractViolation::PassWithError { index: 0 })
        );
        assert!(
            check(
                finding("r", Severity::Error, at("a.json", Some("/a~1b/0"))),
                Outcome::Fail
            )
            .is_ok()
        );
    }

    #[test]
    fn free_text_past_its_cap_is_cut_on_a_char_boundary_with_a_marker() {
        assert_eq!(truncated("short".into(), 5), "short");
        assert_eq!(truncated("abcdef".into(), 4), "abcd… [truncated 2 bytes]");
        // "é" is 2 bytes: a cut inside it backs off to the boundary before.
        assert_eq!(truncated("aéé".into(), 2), "a… [truncated 4 bytes]");
        assert_eq!(truncated("ééé".into(), 0), "… [truncated 6 bytes]");

        let big = |c: char, n: usize| c.to_string().repeat(n);
        let mut f = finding("r", Severity::Warning, at("a.json", None));
        f.message = big('m', MAX_MESSAGE_BYTES + 10);
        f.hint = Some(big('ü', MAX_HINT_BYTES)); // twice the cap in bytes
        let mut v = verdict(Outcome::Warn, vec![f]);
        v.summary = Some(big('s', 30 << 20));
        let checked = v.checked(&BTreeSet::from(["a.json"]), 10).unwrap();
        let summary = checked.summary.unwrap();
        assert_eq!(
            summary,
            big('s', MAX_SUMMARY_BYTES) + &truncation_marker((30 << 20) - MAX_SUMMARY_BYTES)
        );
        let f = &checked.findings[0];
        assert_eq!(
            f.message,
            big('m', MAX_MESSAGE_BYTES) + &truncation_marker(10)
        );
        assert_eq!(
            f.hint.as_deref(),
            Some((big('ü', MAX_HINT_BYTES / 2) + &truncation_marker(MAX_HINT_BYTES)).as_str())
        );

        // Text at its cap is kept whole.
        let mut f = finding("r", Severity::Info, None);
        f.message = big('m', MAX_MESSAGE_BYTES);
        let checked = verdict(Outcome::Pass, vec![f.clone()])
            .checked(&BTreeSet::new(), 10)
            .unwrap();
        assert_eq!(checked.findings[0], f);
    }

    #[test]
    fn rule_ids_and_pointers_past_their_cap_break_the_contract() {
        let docs = BTreeSet::from(["a.json"]);
        let rule = "r".repeat(MAX_RULE_BYTES + 1);
        assert_eq!(
            verdict(Outcome::Warn, vec![finding(&rule, Severity::Info, None)]).checked(&docs, 10),
            Err(ContractViolation::RuleTooLong {
                index: 0,
                len: MAX_RULE_BYTES + 1
            })
        );
        assert!(
            verdict(
                Outcome::Warn,
                vec![finding(&rule[1..], Severity::Info, None)]
            )
            .checked(&docs, 10)
            .is_ok()
        );
        let pointer = "/p".repeat(MAX_POINTER_BYTES / 2 + 1);
        assert!(matches!(
            verdict(
                Outcome::Warn,
                vec![finding("r", Severity::Info, at("a.json", Some(&pointer)))]
            )
            .checked(&docs, 10),
            Err(ContractViolation::PointerTooLong { index: 0, .. })
        ));
    }

    #[test]
    fn outcomes_are_ordered_as_the_gate_ranks_them() {
        let mut outcomes = [
            Outcome::Fail,
            Outcome::Pass,
            Outcome::Inconclusive,
            Outcome::Warn,
        ];
        outcomes.sort();
        assert_eq!(
            outcomes,
            [
                Outcome::Pass,
                Outcome::Warn,
                Outcome::Inconclusive,
                Outcome::Fail
            ]
        );
    }
}
