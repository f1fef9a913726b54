//! `--format github`: GitHub Actions workflow commands, one annotation per
//! finding (and per validator that did not complete), plus a summary notice.
//!
//! A workflow command is one line: `%`, `\r` and `\n` are percent-encoded
//! in messages, and `:` and `,` too in properties. The Actions log renders
//! ANSI escapes, so every other control character a plugin, a document or a
//! plan controls is shown as a visible escape first (see [`crate::escape`]).

use std::fmt::Write;

use super::{CheckReport, RenderOptions, findings, problem};
use crate::escape::{single_line, terminal_safe};
use crate::runtime::verdict::Severity;

pub(super) fn render(report: &CheckReport, options: &RenderOptions) -> String {
    let mut out = String::new();
    for checkpoint in &report.checkpoints {
        for validator in &checkpoint.validators {
            for finding in findings(validator) {
                let command = match finding.severity {
                    Severity::Error => "error",
                    Severity::Warning => "warning",
                    Severity::Info => "notice",
                };
                let mut properties = Vec::new();
                if let Some(location) = &finding.location {
                    properties.push(format!(
                        "file={}",
                        property(&options.document_path(&location.document))
                    ));
                    if let Some(line) = location.line {
                        properties.push(format!("line={line}"));
                    }
                    if let Some(column) = location.column {
                        properties.push(format!("col={column}"));
                    }
                }
                properties.push(format!(
                    "title={}",
                    property(&format!("{} ({})", finding.rule, validator.name))
                ));
                let mut message = finding.message.clone();
                if let Some(pointer) = finding.location.as_ref().and_then(|l| l.pointer.as_ref()) {
                    let _ = write!(message, " [at {pointer}]");
                }
                if let Some(hint) = &finding.hint {
                    let _ = write!(message, "\nhint: {hint}");
                }
                let _ = writeln!(
                    out,
                    "::{command} {}::{}",
                    properties.join(","),
                    data(&message)
                );
            }
            if let Some(problem) = problem(validator) {
                let _ = writeln!(
                    out,
                    "::error title={}::{}",
                    property(&format!(
                        "cairn: {} at {}",
                        validator.name, checkpoint.checkpoint.name
                    )),
                    data(&problem)
                );
            }
        }
        let _ = writeln!(
            out,
            "::notice title={}::{}",
            property(&format!("cairn checkpoint {}", checkpoint.checkpoint.name)),
            data(&format!("gate {}", checkpoint.decision.outcome))
        );
    }
    out
}

/// Escapes a workflow-command message (line breaks kept, encoded).
fn data(text: &str) -> String {
    terminal_safe(text)
        .replace('%', "%25")
        .replace('\r', "%0D")
        .replace('\n', "%0A")
}

/// Escapes a workflow-command property value (one line).
fn property(text: &str) -> String {
    data(&single_line(text))
        .replace(':', "%3A")
        .replace(',', "%2C")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_and_properties_are_escaped() {
        assert_eq!(data("50%\nnext"), "50%25%0Anext");
        assert_eq!(property("a:b,c"), "a%3Ab%2Cc");
    }

    #[test]
    fn hostile_text_cannot_end_a_command_or_reach_the_log_raw() {
        let out = render(
            &crate::check::report::hostile::report(),
            &RenderOptions::default(),
        );
        for line in out.lines() {
            assert!(
                line.starts_with("::"),
                "a line that is no command: {line:?}"
            );
            assert!(
                line.chars().all(|c| !crate::escape::is_unsafe(c)),
                "{line:?}"
            );
        }
        assert!(out.contains("message\\u{1b}[2J"), "{out}");
        assert!(!out.contains("::result"), "{out}");
    }
}
