//! `--format junit`: one `<testsuite>` per checkpoint, one `<testcase>` per
//! validator; a failing validator's findings go into its `<failure>`, a
//! stopped one becomes an `<error>` with the failure kind.
//!
//! The output is well-formed XML 1.0 whatever a plugin, a document or a
//! plan holds. XML 1.0 forbids most control characters even as `&#..;`, so
//! they are shown as visible escapes (`\u{1b}`, see [`crate::escape`]):
//! attribute values as one line ([`single_line`]: a raw line break would be
//! normalised to a space by parsers), text with its line breaks kept
//! ([`terminal_safe`]: `\r` is escaped, parsers would turn it into `\n`).
//! quick-xml then escapes `&`, `<`, `>`, `"` and `'` in both. No CDATA is
//! written, so a `]]>` in a message is plain escaped text.

use std::fmt::Write as _;

use quick_xml::Writer;
use quick_xml::events::{BytesDecl, BytesEnd, BytesStart, BytesText, Event};

use super::{CheckReport, findings, problem};
use crate::check::ValidatorResult;
use crate::escape::{single_line, terminal_safe};
use crate::runtime::call::CallOutcome;
use crate::runtime::verdict::Outcome;

pub(super) fn render(report: &CheckReport) -> String {
    let mut writer = Writer::new_with_indent(Vec::new(), b' ', 2);
    // Writing into a Vec cannot fail.
    let _ = write(&mut writer, report);
    let mut text = String::from_utf8_lossy(&writer.into_inner()).into_owned();
    text.push('\n');
    text
}

fn write(writer: &mut Writer<Vec<u8>>, report: &CheckReport) -> std::io::Result<()> {
    let all: Vec<&ValidatorResult> = report
        .checkpoints
        .iter()
        .flat_map(|c| &c.validators)
        .collect();
    writer.write_event(Event::Decl(BytesDecl::new("1.0", Some("UTF-8"), None)))?;
    let mut suites = BytesStart::new("testsuites");
    suites.push_attribute(("name", "cairn"));
    suites.push_attribute(("tests", all.len().to_string().as_str()));
    suites.push_attribute((
        "failures",
        all.iter()
            .filter(|v| is_failure(v))
            .count()
            .to_string()
            .as_str(),
    ));
    suites.push_attribute((
        "errors",
        all.iter()
            .filter(|v| is_error(v))
            .count()
            .to_string()
            .as_str(),
    ));
    writer.write_event(Event::Start(suites))?;
    for checkpoint in &report.checkpoints {
        let validators = &checkpoint.validators;
        let mut suite = BytesStart::new("testsuite");
        suite.push_attribute(("name", single_line(&checkpoint.checkpoint.name).as_ref()));
        suite.push_attribute(("tests", validators.len().to_string().as_str()));
        suite.push_attribute((
            "failures",
            validators
                .iter()
                .filter(|v| is_failure(v))
                .count()
                .to_string()
                .as_str(),
        ));
        suite.push_attribute((
            "errors",
            validators
                .iter()
                .filter(|v| is_error(v))
                .count()
                .to_string()
                .as_str(),
        ));
        suite.push_attribute(("time", seconds(checkpoint.elapsed).as_str()));
        writer.write_event(Event::Start(suite))?;
        for validator in validators {
            let mut case = BytesStart::new("testcase");
            case.push_attribute(("name", single_line(&validator.name).as_ref()));
            case.push_attribute((
                "classname",
                format!("cairn.{}", single_line(&checkpoint.checkpoint.name)).as_str(),
            ));
            case.push_attribute(("time", seconds(validator.report.elapsed).as_str()));
            writer.write_event(Event::Start(case))?;
            let text = findings_text(validator);
            if is_error(validator) {
                let kind = match &validator.report.outcome {
                    CallOutcome::Stopped(failure) => failure.kind.to_string(),
                    _ => "plugin-error".to_owned(),
                };
                element(
                    writer,
                    "error",
                    &[
                        ("type", &kind),
                        ("message", &problem(validator).unwrap_or_default()),
                    ],
                    &text,
                )?;
            } else if is_failure(validator) {
                let message = format!(
                    "{} with {} finding(s)",
                    validator.counted.outcome,
                    findings(validator).len()
                );
                element(
                    writer,
                    "failure",
                    &[
                        ("type", &validator.counted.outcome.to_string()),
                        ("message", &message),
                    ],
                    &text,
                )?;
            } else if !text.is_empty() {
                element(writer, "system-out", &[], &text)?;
            }
            writer.write_event(Event::End(BytesEnd::new("testcase")))?;
        }
        writer.write_event(Event::End(BytesEnd::new("testsuite")))?;
    }
    writer.write_event(Event::End(BytesEnd::new("testsuites")))?;
    Ok(())
}

/// The validator did not complete and that stops the gate.
fn is_error(validator: &ValidatorResult) -> bool {
    !matches!(validator.report.outcome, CallOutcome::Completed(_)) && blocks(validator)
}

/// The validator completed with a verdict that stops the gate.
fn is_failure(validator: &ValidatorResult) -> bool {
    matches!(validator.report.outcome, CallOutcome::Completed(_)) && blocks(validator)
}

fn blocks(validator: &ValidatorResult) -> bool {
    matches!(
        validator.counted.counts_as,
        Outcome::Fail | Outcome::Inconclusive
    )
}

fn findings_text(validator: &ValidatorResult) -> String {
    let mut text = String::new();
    for finding in findings(validator) {
        let location = finding.location.as_ref().map_or(String::new(), |l| {
            format!("{} {}", l.document, super::human::position(l).trim_end())
        });
        let _ = writeln!(
            text,
            "{} {} {}: {}",
            finding.severity,
            finding.rule,
            location.trim_end(),
            finding.message
        );
    }
    text
}

fn element(
    writer: &mut Writer<Vec<u8>>,
    name: &str,
    attributes: &[(&str, &str)],
    text: &str,
) -> std::io::Result<()> {
    let mut start = BytesStart::new(name);
    for (key, value) in attributes {
        start.push_attribute((*key, single_line(value).as_ref()));
    }
    writer.write_event(Event::Start(start))?;
    writer.write_event(Event::Text(BytesText::new(&terminal_safe(text))))?;
    writer.write_event(Event::End(BytesEnd::new(name)))?;
    Ok(())
}

fn seconds(duration: std::time::Duration) -> String {
    format!("{:.6}", duration.as_secs_f64())
}

#[cfg(test)]
mod tests {
    use quick_xml::Reader;
    use quick_xml::events::Event;

    use super::*;
    use crate::check::report::hostile;

    /// The `Char` production of XML 1.0.
    fn is_xml_char(c: char) -> bool {
        matches!(c, '\t' | '\n' | '\r' | '\u{20}'..='\u{D7FF}' | '\u{E000}'..='\u{FFFD}')
            || c >= '\u{10000}'
    }

    /// Parses `xml` to its end, unescaping every attribute and text; returns
    /// the attribute values and texts.
    fn parse(xml: &str) -> Vec<String> {
        let mut reader = Reader::from_str(xml);
        let mut values = Vec::new();
        let mut depth = 0i32;
        loop {
            match reader.read_event() {
                Ok(Event::Eof) => break,
                Ok(Event::Start(start)) => {
                    depth += 1;
                    for attribute in start.attributes() {
                        let attribute = attribute.expect("attribute parses");
                        values.push(
                            attribute
                                .unescape_value()
                                .expect("attribute unescapes")
                                .into_owned(),
                        );
                    }
                }
                Ok(Event::End(_)) => depth -= 1,
                Ok(Event::Text(text)) => {
                    values.push(text.decode().expect("text decodes").into_owned());
                }
                Ok(Event::GeneralRef(_)) => {}
                Ok(_) => {}
                Err(err) => panic!("invalid XML at {}: {err}\n{xml}", reader.error_position()),
            }
        }
        assert_eq!(depth, 0, "unbalanced tags:\n{xml}");
        values
    }

    #[test]
    fn hostile_text_leaves_the_report_well_formed_xml() {
        let xml = render(&hostile::report());
        let bad: Vec<char> = xml.chars().filter(|c| !is_xml_char(*c)).collect();
        assert!(bad.is_empty(), "characters XML 1.0 forbids: {bad:?}\n{xml}");
        assert!(
            xml.chars()
                .all(|c| c == '\n' || !crate::escape::is_unsafe(c)),
            "{xml:?}"
        );
        let values = parse(&xml);
        // The checkpoint name, as an attribute: one line, escaped, markup kept.
        assert!(
            values.iter().any(|v| v.starts_with(
                "checkpoint\\u{1b}[2J\\u{7}\\u{0}\\u{c}\\r\\nresult: PASS\\n\\u{9b}31m\\u{202e}<&>\"' ]]> \\u{fffe}"
            )),
            "{values:#?}"
        );
        // A finding message, as text: its line break kept, `\r` escaped.
        assert!(
            values
                .iter()
                .any(|v| v.contains("message\\u{1b}[2J\\u{7}\\u{0}\\u{c}\\r\nresult: PASS\n")),
            "{values:#?}"
        );
        assert!(!xml.contains("<![CDATA["), "{xml}");
    }
}
