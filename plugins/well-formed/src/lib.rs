//! `well-formed`: every JSON and TOML document that a change adds or
//! modifies must parse; a syntax error is reported with its line and column.

use cairn_plugin_sdk::{Change, Checkpoint, Finding, MediaType, PluginInfo, Validator, Verdict};

struct WellFormed;

impl Validator for WellFormed {
    fn info() -> PluginInfo {
        PluginInfo::new(
            "well-formed",
            env!("CARGO_PKG_VERSION"),
            "Fails when a JSON or TOML document does not parse after the change",
        )
    }

    fn validate(change: &Change, _at: &Checkpoint, _config: &str) -> Result<Verdict, String> {
        let mut findings = Vec::new();
        let mut checked = 0;
        for doc in change.documents() {
            if !(doc.is_added() || doc.is_modified()) {
                continue;
            }
            let Some(text) = change.after_text(&doc.path) else {
                continue;
            };
            let error = match doc.media() {
                MediaType::Json => json_error(&text),
                MediaType::Toml => toml_error(&text),
                _ => continue,
            };
            checked += 1;
            if let Some((message, line, column)) = error {
                findings.push(
                    Finding::error(
                        "well-formed/syntax",
                        format!("{} does not parse: {message}", doc.path),
                    )
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

fn json_error(text: &str) -> Option<(String, u32, u32)> {
    let err = serde_json::from_str::<serde_json::Value>(text).err()?;
    let message = err.to_string();
    // serde_json appends " at line L column C"; keep only the cause.
    let cause = message
        .split(" at line ")
        .next()
        .unwrap_or(&message)
        .to_owned();
    Some((cause, clamp(err.line()), clamp(err.column())))
}

fn toml_error(text: &str) -> Option<(String, u32, u32)> {
    let err = text.parse::<toml::Table>().err()?;
    let offset = err
        .span()
        .map(|span| span.start)
        .unwrap_or(0)
        .min(text.len());
    let before = &text[..offset];
    let line = before.matches('\n').count() + 1;
    let column = before
        .rsplit('\n')
        .next()
        .map(|l| l.chars().count())
        .unwrap_or(0)
        + 1;
    Some((err.message().to_owned(), clamp(line), clamp(column)))
}

/// Positions are 1-based; 0 (unknown) becomes 1.
fn clamp(position: usize) -> u32 {
    u32::try_from(position.max(1)).unwrap_or(u32::MAX)
}

cairn_plugin_sdk::export_validator!(WellFormed);
