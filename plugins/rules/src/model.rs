//! The plain data the rules work on and answer with: a change (documents
//! with their before/after bytes, metrics) and a report (outcome, findings
//! with locations). Independent of the SDK and of the host.

use std::collections::BTreeMap;

use serde::Deserialize;

use crate::parse::Parsed;

/// How a document differs between before and after.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    Added,
    Modified,
    Deleted,
    Unchanged,
}

/// One document of the change.
#[derive(Debug, Clone, PartialEq)]
pub struct Document {
    /// Relative, `/`-separated path.
    pub path: String,
    /// `application/json`, `application/yaml`, `application/toml`, ...
    pub media_type: String,
    pub status: Status,
    pub before: Option<Vec<u8>>,
    pub after: Option<Vec<u8>>,
}

impl Document {
    /// A document whose status follows from which sides exist and differ.
    pub fn new(
        path: impl Into<String>,
        media_type: impl Into<String>,
        before: Option<Vec<u8>>,
        after: Option<Vec<u8>>,
    ) -> Document {
        let status = match (&before, &after) {
            (None, _) => Status::Added,
            (Some(_), None) => Status::Deleted,
            (Some(b), Some(a)) if a == b => Status::Unchanged,
            _ => Status::Modified,
        };
        Document {
            path: path.into(),
            media_type: media_type.into(),
            status,
            before,
            after,
        }
    }

    /// Whether the document exists after the change and differs from before.
    pub fn is_changed(&self) -> bool {
        matches!(self.status, Status::Added | Status::Modified)
    }

    /// The parsed before side: `None` when absent or not structured,
    /// `Some(Err)` when it does not parse.
    pub fn parse_before(&self) -> Option<Result<Parsed, crate::parse::ParseError>> {
        let bytes = self.before.as_deref()?;
        crate::parse::parse(&self.media_type, bytes).transpose()
    }

    /// The parsed after side, as [`Document::parse_before`].
    pub fn parse_after(&self) -> Option<Result<Parsed, crate::parse::ParseError>> {
        let bytes = self.after.as_deref()?;
        crate::parse::parse(&self.media_type, bytes).transpose()
    }
}

/// Everything a validator may see.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Change {
    /// Sorted by path.
    pub documents: Vec<Document>,
    pub metrics: BTreeMap<String, f64>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Info,
    Warning,
    Error,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Pass,
    Warn,
    Fail,
    Inconclusive,
}

/// Where a finding points.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Location {
    pub document: String,
    /// RFC 6901 pointer into the parsed document.
    pub pointer: Option<String>,
    /// 1-based.
    pub line: Option<u32>,
    /// 1-based, in characters.
    pub column: Option<u32>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    /// `plugin/rule`, no whitespace.
    pub rule: String,
    pub severity: Severity,
    pub message: String,
    pub location: Option<Location>,
    pub hint: Option<String>,
}

impl Finding {
    pub fn new(rule: impl Into<String>, severity: Severity, message: impl Into<String>) -> Finding {
        Finding {
            rule: rule.into(),
            severity,
            message: message.into(),
            location: None,
            hint: None,
        }
    }

    /// Points at a document, without a position inside it.
    pub fn at(mut self, document: &str) -> Finding {
        self.location = Some(Location {
            document: document.to_owned(),
            pointer: None,
            line: None,
            column: None,
        });
        self
    }

    /// Points at `pointer` inside `document`, with the line and column of
    /// that value when `parsed` knows them.
    pub fn at_value(mut self, document: &str, pointer: &str, parsed: Option<&Parsed>) -> Finding {
        let position = parsed.and_then(|parsed| parsed.position(pointer));
        self.location = Some(Location {
            document: document.to_owned(),
            pointer: Some(pointer.to_owned()),
            line: position.map(|(line, _)| line),
            column: position.map(|(_, column)| column),
        });
        self
    }

    /// Points at a line and column of `document` (a syntax error).
    pub fn at_line(mut self, document: &str, line: u32, column: u32) -> Finding {
        self.location = Some(Location {
            document: document.to_owned(),
            pointer: None,
            line: Some(line.max(1)),
            column: Some(column.max(1)),
        });
        self
    }

    pub fn hint(mut self, hint: impl Into<String>) -> Finding {
        self.hint = Some(hint.into());
        self
    }
}

/// A validator's answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Report {
    pub outcome: Outcome,
    pub findings: Vec<Finding>,
    pub summary: String,
}

impl Report {
    /// Outcome from the worst finding: error fails, warning warns, else pass.
    pub fn from_findings(findings: Vec<Finding>, summary: impl Into<String>) -> Report {
        let outcome = match findings.iter().map(|f| f.severity).max() {
            Some(Severity::Error) => Outcome::Fail,
            Some(Severity::Warning) => Outcome::Warn,
            _ => Outcome::Pass,
        };
        Report {
            outcome,
            findings,
            summary: summary.into(),
        }
    }
}

/// Parses a plugin config (JSON text, `{}` when none was given); an empty
/// text counts as `{}`.
pub fn parse_config<T: serde::de::DeserializeOwned>(config: &str) -> Result<T, String> {
    let text = if config.trim().is_empty() {
        "{}"
    } else {
        config
    };
    serde_json::from_str(text).map_err(|err| format!("invalid config: {err}"))
}
