//! `no-deletes`: fails when a change deletes a document (a workflow, a table
//! definition, a connector) and warns when it empties one, unless the path
//! matches an `allow` pattern.

use cairn_plugin_sdk::{Change, Checkpoint, Finding, PluginInfo, Validator, Verdict};
use serde::Deserialize;

const CONFIG_SCHEMA: &str = r#"{
  "type": "object",
  "properties": {
    "allow": {"type": "array", "items": {"type": "string"},
              "description": "path patterns that may be deleted; `*` matches any run of characters"}
  },
  "additionalProperties": false
}"#;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct Config {
    #[serde(default)]
    allow: Vec<String>,
}

struct NoDeletes;

impl Validator for NoDeletes {
    fn info() -> PluginInfo {
        PluginInfo::new(
            "no-deletes",
            env!("CARGO_PKG_VERSION"),
            "Fails when a change deletes a document; warns when it empties one",
        )
        .with_config_schema(CONFIG_SCHEMA)
    }

    fn validate(change: &Change, _at: &Checkpoint, config: &str) -> Result<Verdict, String> {
        let config: Config =
            serde_json::from_str(config).map_err(|err| format!("invalid config: {err}"))?;
        let allowed = |path: &str| config.allow.iter().any(|pattern| glob_match(pattern, path));
        let mut findings = Vec::new();
        for doc in change.documents() {
            if allowed(&doc.path) {
                continue;
            }
            if doc.is_deleted() {
                findings.push(
                    Finding::error("no-deletes/deleted", format!("{} is deleted", doc.path))
                        .at(&doc.path)
                        .hint("deleting a live definition is irreversible; disable it first, or add the path to `allow`"),
                );
            } else if doc.is_modified()
                && change
                    .after(&doc.path)
                    .is_some_and(|after| after.iter().all(u8::is_ascii_whitespace))
            {
                findings.push(
                    Finding::warning("no-deletes/emptied", format!("{} is emptied", doc.path))
                        .at(&doc.path),
                );
            }
        }
        let summary = match findings.len() {
            0 => "no document is deleted or emptied".to_owned(),
            n => format!("{n} document(s) deleted or emptied"),
        };
        Ok(Verdict::from_findings(findings).with_summary(summary))
    }
}

/// Matches `path` against `pattern`, where `*` matches any run of characters.
fn glob_match(pattern: &str, path: &str) -> bool {
    let mut parts = pattern.split('*');
    let first = parts.next().unwrap_or_default();
    let Some(mut rest) = path.strip_prefix(first) else {
        return false;
    };
    let parts: Vec<&str> = parts.collect();
    let Some((last, middle)) = parts.split_last() else {
        return rest.is_empty();
    };
    for part in middle {
        match rest.find(part) {
            Some(at) => rest = &rest[at + part.len()..],
            None => return false,
        }
    }
    rest.len() >= last.len() && rest.ends_with(last)
}

cairn_plugin_sdk::export_validator!(NoDeletes);

#[cfg(test)]
mod tests {
    use super::glob_match;

    #[test]
    fn globs_match_prefixes_suffixes_and_middles() {
        assert!(glob_match("legacy/*", "legacy/a.json"));
        assert!(glob_match("*.tmp.json", "x/y.tmp.json"));
        assert!(glob_match("a*b*c", "aXbYc"));
        assert!(glob_match("exact.json", "exact.json"));
        assert!(!glob_match("exact.json", "exact.json.bak"));
        assert!(!glob_match("legacy/*", "live/a.json"));
        assert!(!glob_match("a*bc", "abc-x"));
    }
}
