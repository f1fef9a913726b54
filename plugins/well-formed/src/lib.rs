//! `well-formed`: every JSON, YAML and TOML document that a change adds or
//! modifies must parse; a syntax error is reported with its line and column.
//!
//! Policy, per format:
//!
//! - Every document must be valid UTF-8 (`well-formed/encoding`, located at
//!   the first invalid byte): the three formats are text in UTF-8, and a
//!   replacement character would hide the damage from every other plugin.
//! - YAML is checked as a stream: each document after `---` must parse, and
//!   the first error in the file is reported (the parser cannot resume
//!   past it). An empty file, or one of only comments, is a valid YAML
//!   stream with no document: it passes here and counts as checked (an
//!   emptied document is `no-deletes`' concern, not a syntax error).
//! - Duplicate mapping keys pass in YAML as they do in JSON (the last
//!   wins); TOML refuses them, as its grammar does.
//! - YAML nested deeper than the parser's limit (flow collections past a
//!   few hundred levels) is reported as malformed, as JSON past serde_json's
//!   128 levels is.

use cairn_plugin_sdk::{Change, Checkpoint, Finding, MediaType, PluginInfo, Validator, Verdict};
use yaml_rust2::parser::{Event, MarkedEventReceiver, Parser};
use yaml_rust2::scanner::Marker;

struct WellFormed;

/// A syntax error: (rule, cause, 1-based line, 1-based column in characters).
type SyntaxError = (&'static str, String, u32, u32);

/// Rule of a document that does not parse.
const SYNTAX: &str = "well-formed/syntax";
/// Rule of a document that is not valid UTF-8.
const ENCODING: &str = "well-formed/encoding";

impl Validator for WellFormed {
    fn info() -> PluginInfo {
        PluginInfo::new(
            "well-formed",
            env!("CARGO_PKG_VERSION"),
            "Fails when a JSON, YAML or TOML document does not parse after the change",
        )
    }

    fn validate(change: &Change, _at: &Checkpoint, _config: &str) -> Result<Verdict, String> {
        let mut findings = Vec::new();
        let mut checked = 0;
        for doc in change.documents() {
            if !(doc.is_added() || doc.is_modified()) {
                continue;
            }
            let parse: fn(&str) -> Option<SyntaxError> = match doc.media() {
                MediaType::Json => json_error,
                MediaType::Yaml => yaml_error,
                MediaType::Toml => toml_error,
                _ => continue,
            };
            let Some(bytes) = change.after(&doc.path) else {
                continue;
            };
            checked += 1;
            let error = match std::str::from_utf8(&bytes) {
                Ok(text) => parse(text),
                Err(err) => Some(encoding_error(&bytes, err)),
            };
            if let Some((rule, message, line, column)) = error {
                findings.push(
                    Finding::error(rule, format!("{} does not parse: {message}", doc.path))
                        .at(&doc.path)
                        .line(line, Some(column)),
                );
            }
        }
        let summary = format!(
            "{checked} document(s) checked, {} malformed",
            findings.len()
        );
        Ok(Verdict::from_findings(findings).with_summary(summary))
    }
}

fn json_error(text: &str) -> Option<SyntaxError> {
    let err = serde_json::from_str::<serde_json::Value>(text).err()?;
    let message = err.to_string();
    // serde_json appends " at line L column C"; keep only the cause.
    let cause = message
        .split(" at line ")
        .next()
        .unwrap_or(&message)
        .to_owned();
    Some((SYNTAX, cause, clamp(err.line()), clamp(err.column())))
}

/// Receives the parser's events and keeps none: only the error matters.
struct Discard;

impl MarkedEventReceiver for Discard {
    fn on_event(&mut self, _event: Event, _mark: Marker) {}
}

fn yaml_error(text: &str) -> Option<SyntaxError> {
    // `multi`: every document of a `---` stream, not only the first.
    let err = Parser::new_from_str(text).load(&mut Discard, true).err()?;
    let mark = err.marker();
    let message = err.info().to_owned();
    // A tab in an indentation is reported where the scalar or block that
    // meets it starts, often a line earlier: point at the tab itself.
    if message.contains("tab")
        && let Some(offset) = indenting_tab(text, mark.index())
    {
        let (line, column) = position_of_offset(text, offset);
        return Some((SYNTAX, message, line, column));
    }
    // yaml-rust2's lines are 1-based, its columns 0-based (in characters).
    Some((
        SYNTAX,
        message,
        clamp(mark.line()),
        clamp(mark.col().saturating_add(1)),
    ))
}

/// Byte offset of the first tab that is part of a line's indentation (only
/// spaces and tabs before it on its line), from the start of the line that
/// holds character `from` on.
fn indenting_tab(text: &str, from: usize) -> Option<usize> {
    let at = text.char_indices().nth(from).map_or(text.len(), |(i, _)| i);
    let start = text[..at].rfind('\n').map_or(0, |newline| newline + 1);
    let mut indenting = true;
    for (offset, c) in text[start..].char_indices() {
        match c {
            '\t' if indenting => return Some(start + offset),
            '\n' => indenting = true,
            ' ' | '\t' => {}
            _ => indenting = false,
        }
    }
    None
}

fn toml_error(text: &str) -> Option<SyntaxError> {
    let err = text.parse::<toml::Table>().err()?;
    let offset = err.span().map(|span| span.start).unwrap_or(0);
    let (line, column) = position_of_offset(text, offset);
    Some((SYNTAX, err.message().to_owned(), line, column))
}

/// The first invalid byte of a document that is not UTF-8.
fn encoding_error(bytes: &[u8], err: std::str::Utf8Error) -> SyntaxError {
    let valid = bytes.get(..err.valid_up_to()).unwrap_or_default();
    let text = std::str::from_utf8(valid).unwrap_or_default();
    let (line, column) = position_of_offset(text, text.len());
    (ENCODING, "not valid UTF-8".to_owned(), line, column)
}

/// 1-based line and column (in characters) of byte `offset` in `text`.
fn position_of_offset(text: &str, offset: usize) -> (u32, u32) {
    let mut offset = offset.min(text.len());
    while !text.is_char_boundary(offset) {
        offset -= 1;
    }
    let before = &text[..offset];
    let line = before.matches('\n').count() + 1;
    let column = before
        .rsplit('\n')
        .next()
        .map(|l| l.chars().count())
        .unwrap_or(0)
        + 1;
    (clamp(line), clamp(column))
}

/// Positions are 1-based; 0 (unknown) becomes 1.
fn clamp(position: usize) -> u32 {
    u32::try_from(position.max(1)).unwrap_or(u32::MAX)
}

cairn_plugin_sdk::export_validator!(WellFormed);
