//! Escaping for text that a plugin, a document or a plan controls (finding
//! messages, file names, checkpoint and plugin names, plugin logs) before it
//! reaches a terminal, an XML report or a log line.
//!
//! The policy, in one place:
//!
//! - Every control character (C0, DEL, C1: `char::is_control`), every
//!   Unicode character that reorders or breaks a line on screen (bidi
//!   embeddings, overrides, isolates and marks, U+2028, U+2029) and the
//!   noncharacters U+FFFE and U+FFFF are shown as a visible escape: `\n`,
//!   `\r`, `\t`, else `\u{1b}` (Rust's notation). No such character reaches
//!   a terminal, an XML file or a log line raw, so a document cannot clear
//!   the screen, move the cursor, ring the bell, recolour the output or
//!   make a report invalid XML (XML 1.0 forbids most control characters
//!   even as `&#..;`).
//! - [`single_line`] escapes line breaks and tabs too: for names, paths,
//!   pointers, rule ids, summaries, failure messages, XML attributes and
//!   log fields, where a line break could start a forged line.
//! - [`terminal_safe`] keeps `\n` and `\t`: for text that is a block of its
//!   own (an error and its causes, a plugin's config schema).
//! - [`indented`] keeps `\n` but indents every continuation line: for the
//!   multi-line fields of a report (finding messages, hints), so that no
//!   line of plugin text starts at column 0, where a report's own lines
//!   (`checkpoint ...`, `result: ...`) are.
//!
//! An escape is for display: a document holding the six characters
//! `\u{1b}` and one holding ESC look the same, which is what a reader needs.

use std::borrow::Cow;
use std::fmt::Write as _;

/// Whether `c` is shown as an escape (see the module docs); `\n` and `\t`
/// are decided by the caller.
pub(crate) fn is_unsafe(c: char) -> bool {
    c.is_control()
        || matches!(
            c,
            // Arabic letter mark, left-to-right / right-to-left marks.
            '\u{061C}' | '\u{200E}' | '\u{200F}'
            // Line and paragraph separators.
            | '\u{2028}' | '\u{2029}'
            // Bidi embeddings and overrides, then isolates.
            | '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}'
            // Noncharacters XML 1.0 forbids.
            | '\u{FFFE}' | '\u{FFFF}'
        )
}

fn escape(text: &str, keep: impl Fn(char) -> bool) -> Cow<'_, str> {
    let needs = |c: char| is_unsafe(c) && !keep(c);
    if !text.chars().any(needs) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 16);
    for c in text.chars() {
        if !needs(c) {
            out.push(c);
            continue;
        }
        match c {
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            other => {
                let _ = write!(out, "{}", other.escape_unicode());
            }
        }
    }
    Cow::Owned(out)
}

/// Text with its control characters escaped; line breaks and tabs are
/// kept. For text shown as a block of its own.
pub fn terminal_safe(text: &str) -> Cow<'_, str> {
    escape(text, |c| c == '\n' || c == '\t')
}

/// Text as one line: every control character escaped, line breaks and tabs
/// included (`\n`, `\t`).
pub fn single_line(text: &str) -> Cow<'_, str> {
    escape(text, |_| false)
}

/// Text that may span lines, with each continuation line starting with
/// `indent`, so it stays under the field it belongs to and cannot pass for
/// a line of the report itself. `\r` is escaped (it would return to column
/// 0), and so is every other control character but `\t`.
pub fn indented<'a>(text: &'a str, indent: &str) -> Cow<'a, str> {
    let safe = terminal_safe(text);
    if !safe.contains('\n') {
        return safe;
    }
    Cow::Owned(safe.replace('\n', &format!("\n{indent}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn terminal_escapes_from_plugins_are_neutralised() {
        assert_eq!(terminal_safe("a\u{1b}[31mb"), "a\\u{1b}[31mb");
        assert_eq!(terminal_safe("line\nnext\tcol"), "line\nnext\tcol");
        assert_eq!(
            terminal_safe("bell\u{7} nul\0 ff\u{c}"),
            "bell\\u{7} nul\\u{0} ff\\u{c}"
        );
        assert_eq!(terminal_safe("over\rwrite"), "over\\rwrite");
    }

    #[test]
    fn plain_text_is_borrowed_unchanged() {
        let text = "workflows/orders.json: id \"load\" — ünïcode ✓";
        assert!(matches!(terminal_safe(text), Cow::Borrowed(_)));
        assert!(matches!(single_line(text), Cow::Borrowed(_)));
        assert!(matches!(indented(text, "  "), Cow::Borrowed(_)));
    }

    #[test]
    fn single_line_escapes_line_breaks_and_tabs() {
        assert_eq!(
            single_line("a\nresult: PASS\r\tb"),
            "a\\nresult: PASS\\r\\tb"
        );
    }

    #[test]
    fn c1_controls_bidi_overrides_and_separators_are_escaped() {
        assert_eq!(single_line("\u{9b}2J"), "\\u{9b}2J");
        assert_eq!(single_line("\u{202e}txt.exe"), "\\u{202e}txt.exe");
        assert_eq!(terminal_safe("a\u{2028}b\u{2066}"), "a\\u{2028}b\\u{2066}");
        assert_eq!(single_line("\u{7f}\u{fffe}"), "\\u{7f}\\u{fffe}");
    }

    #[test]
    fn continuation_lines_cannot_start_at_column_zero() {
        let text = indented("bad step\n\u{c}result: PASS\nend", "    ");
        assert_eq!(text, "bad step\n    \\u{c}result: PASS\n    end");
        assert!(text.lines().skip(1).all(|line| line.starts_with("    ")));
    }

    #[test]
    fn every_escaped_text_is_free_of_control_characters() {
        let hostile: String = (0u32..0x200)
            .chain(0x2000..0x2070)
            .chain([0xfffe, 0xffff])
            .filter_map(char::from_u32)
            .collect();
        for (text, allowed) in [
            (single_line(&hostile), ""),
            (terminal_safe(&hostile), "\n\t"),
            (indented(&hostile, " "), "\n\t"),
        ] {
            assert!(
                text.chars().all(|c| !is_unsafe(c) || allowed.contains(c)),
                "{text:?}"
            );
        }
    }
}
