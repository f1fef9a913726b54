//! The report for people: per checkpoint, one line per validator (outcome,
//! time, failure kind), then the findings grouped by document.
//!
//! Everything a plugin, a document or a plan controls is escaped (see
//! [`crate::escape`]). Names, paths, pointers, rule ids, summaries and
//! failure messages are one line each: a line break in them shows as `\n`.
//! Finding messages and hints may span lines, but every continuation line
//! is indented under the message: the report's own lines (`checkpoint`,
//! `not run`, `result:`) start at column 0, and plugin text never does, so
//! a finding cannot forge a `result: PASS`.

use std::collections::BTreeMap;
use std::fmt::Write;

use anstyle::{AnsiColor, Style};

use super::{CheckReport, RenderOptions, findings, problem};
use crate::escape::{indented, single_line as safe};
use crate::runtime::verdict::{Finding, Location, Outcome, Severity};

/// Where a finding's message starts (after `    error   `), and where its
/// continuation lines go.
const MESSAGE_INDENT: &str = "            ";
/// Where a hint's text starts (after `hint: `).
const HINT_INDENT: &str = "                  ";

pub(super) fn render(report: &CheckReport, options: &RenderOptions) -> String {
    let paint = |style: Style, text: &str| {
        if options.color {
            format!("{style}{text}{style:#}")
        } else {
            text.to_owned()
        }
    };
    let outcome_style = |outcome: Outcome| match outcome {
        Outcome::Pass => AnsiColor::Green.on_default().bold(),
        Outcome::Warn => AnsiColor::Yellow.on_default().bold(),
        Outcome::Fail => AnsiColor::Red.on_default().bold(),
        Outcome::Inconclusive => AnsiColor::Magenta.on_default().bold(),
    };
    let dim = Style::new().dimmed();
    let mut out = String::new();
    for checkpoint in &report.checkpoints {
        let at = &checkpoint.checkpoint;
        let _ = writeln!(
            out,
            "checkpoint {} ({}, {}% rollout)",
            paint(Style::new().bold(), &safe(&at.name)),
            safe(&at.environment),
            at.rollout_percent
        );
        for (experiment, counted) in &checkpoint.experiments {
            out.push_str(&super::experiment::human(experiment, counted));
        }
        let width = checkpoint
            .validators
            .iter()
            .map(|v| safe(&v.name).chars().count())
            .max()
            .unwrap_or(0);
        for validator in &checkpoint.validators {
            let counted = validator.counted;
            let mut label = counted.counts_as.to_string().to_uppercase();
            if counted.counts_as != counted.outcome {
                let _ = write!(label, " ({})", counted.outcome);
            }
            let ms = validator.report.elapsed.as_secs_f64() * 1000.0;
            let detail = match problem(validator) {
                Some(problem) => paint(AnsiColor::Red.on_default(), &safe(&problem)),
                None => safe(&summary(validator)).into_owned(),
            };
            let _ = writeln!(
                out,
                "  {}  {:<width$}  {}  {}{}",
                paint(outcome_style(counted.counts_as), &format!("{label:<12}")),
                safe(&validator.name),
                paint(dim, &format!("{ms:>8.1} ms")),
                detail,
                if validator.advisory {
                    " (advisory)"
                } else {
                    ""
                },
            );
        }
        let mut by_document: BTreeMap<&str, Vec<(&str, &Finding)>> = BTreeMap::new();
        for validator in &checkpoint.validators {
            for finding in findings(validator) {
                let document = finding
                    .location
                    .as_ref()
                    .map_or("(change)", |l| l.document.as_str());
                by_document
                    .entry(document)
                    .or_default()
                    .push((validator.name.as_str(), finding));
            }
        }
        for (document, findings) in by_document {
            let _ = writeln!(
                out,
                "\n  {}",
                paint(Style::new().bold().underline(), &safe(document))
            );
            for (validator, finding) in findings {
                let severity = match finding.severity {
                    Severity::Error => paint(AnsiColor::Red.on_default(), "error  "),
                    Severity::Warning => paint(AnsiColor::Yellow.on_default(), "warning"),
                    Severity::Info => paint(AnsiColor::Blue.on_default(), "info   "),
                };
                let position = finding.location.as_ref().map(position).unwrap_or_default();
                let _ = writeln!(
                    out,
                    "    {severity} {}{}  {}",
                    paint(dim, &safe(&position)),
                    indented(&finding.message, MESSAGE_INDENT),
                    paint(dim, &safe(&format!("[{} {}]", validator, finding.rule))),
                );
                if let Some(hint) = &finding.hint {
                    let _ = writeln!(
                        out,
                        "{MESSAGE_INDENT}{} {}",
                        paint(dim, "hint:"),
                        indented(hint, HINT_INDENT)
                    );
                }
            }
        }
        let overloaded = checkpoint
            .validators
            .iter()
            .filter(|v| v.counted.host_overloaded)
            .count();
        if overloaded > 0 {
            let _ = writeln!(
                out,
                "\n  {} the host was overloaded: {overloaded} validator(s) could not run in time \
                 (counted as inconclusive, not against the plugins); rerun, or run fewer at once",
                paint(AnsiColor::Yellow.on_default(), "!")
            );
        }
        let decision = checkpoint.decision;
        let mut verdict = format!("gate {}", decision.outcome.to_string().to_uppercase());
        if decision.outcome == Outcome::Warn && decision.fail_on_warn {
            verdict.push_str(" (fail-on-warn)");
        }
        let _ = writeln!(
            out,
            "  {} {}\n",
            if decision.passed() { "→" } else { "✗" },
            paint(outcome_style(decision.outcome), &verdict)
        );
    }
    if !report.skipped.is_empty() {
        let _ = writeln!(
            out,
            "not run (the rollout stopped earlier): {}",
            report
                .skipped
                .iter()
                .map(|name| safe(name))
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    let result = report.outcome().to_string().to_uppercase();
    let _ = writeln!(
        out,
        "result: {}",
        paint(outcome_style(report.outcome()), &result)
    );
    out
}

fn summary(validator: &super::ValidatorResult) -> String {
    let crate::runtime::call::CallOutcome::Completed(verdict) = &validator.report.outcome else {
        return String::new();
    };
    let mut text = match verdict.findings.len() {
        0 => "no findings".to_owned(),
        1 => "1 finding".to_owned(),
        n => format!("{n} findings"),
    };
    if verdict.findings_dropped > 0 {
        let _ = write!(text, " (+{} dropped)", verdict.findings_dropped);
    }
    if let Some(summary) = &verdict.summary {
        let _ = write!(text, ": {summary}");
    }
    text
}

/// `/steps/1 7:72  `: the pointer and line:column a finding points at.
pub(crate) fn position(location: &Location) -> String {
    let mut parts = Vec::new();
    if let Some(pointer) = &location.pointer {
        parts.push(pointer.clone());
    }
    match (location.line, location.column) {
        (Some(line), Some(column)) => parts.push(format!("{line}:{column}")),
        (Some(line), None) => parts.push(format!("line {line}")),
        _ => {}
    }
    if parts.is_empty() {
        String::new()
    } else {
        format!("{}  ", parts.join(" "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::check::report::hostile;

    #[test]
    fn hostile_text_reaches_the_terminal_escaped_and_cannot_forge_a_result_line() {
        let text = render(&hostile::report(), &RenderOptions::default());
        assert!(
            text.chars()
                .all(|c| c == '\n' || !crate::escape::is_unsafe(c)),
            "{text:?}"
        );
        let results: Vec<&str> = text
            .lines()
            .filter(|line| line.starts_with("result:"))
            .collect();
        assert_eq!(results, ["result: FAIL"], "{text}");
        // Every line is the report's own or indented under it.
        for line in text
            .lines()
            .filter(|l| !l.is_empty() && !l.starts_with(' '))
        {
            assert!(
                ["checkpoint ", "not run ", "result: "]
                    .iter()
                    .any(|own| line.starts_with(own)),
                "a line at column 0 that cairn did not write: {line:?}\n{text}"
            );
        }
        // The text is still there to read, escaped.
        assert!(
            text.contains("message\\u{1b}[2J\\u{7}\\u{0}\\u{c}\\r\n"),
            "{text}"
        );
        assert!(
            text.contains("doc\\u{1b}[2J\\u{7}\\u{0}\\u{c}\\r\\nresult: PASS\\n"),
            "{text}"
        );
    }

    #[test]
    fn validator_names_align_on_their_escaped_width() {
        let text = render(&hostile::report(), &RenderOptions::default());
        let columns: Vec<usize> = text
            .lines()
            .filter(|line| line.contains(" ms  "))
            .map(|line| line.find(" ms  ").unwrap_or(0))
            .collect();
        assert_eq!(columns.len(), 3, "{text}");
        assert!(columns.windows(2).all(|w| w[0] == w[1]), "{text}");
    }
}
