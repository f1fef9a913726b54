//! The host's own, version-independent model of what validators answer:
//! outcomes, findings and verdicts, plus the contract checks every verdict
//! must pass before the host believes it.

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

/// Why a verdict breaks the contract (reported as `invalid-output`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ContractViolation {
    #[error("finding #{index} has an empty rule id")]
    EmptyRule { index: usize },
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
    /// Checks the verdict against the contract and caps its findings at
    /// `max_findings` (counting what was dropped). `documents` are the paths
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
        for (index, finding) in self.findings.iter().enumerate() {
            check_finding(index, finding, documents)?;
            if self.outcome == Outcome::Pass && finding.severity == Severity::Error {
                return Err(ContractViolation::PassWithError { index });
            }
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
