//! secrets-scan: flags likely secrets in the added and modified documents of
//! a change. The same check is written in Python (`plugins/secrets-scan-py`)
//! and JavaScript (`plugins/secrets-scan-js`); the three must give identical
//! verdicts on `tests/conformance/secrets-scan`.
//!
//! The rules, which all three follow:
//!
//! - Only added and modified documents are scanned, and only when their new
//!   content is valid UTF-8 (anything else is binary). Paths in the config's
//!   `allow` list are skipped.
//! - A JSON document that parses is walked: every string value is checked,
//!   and a finding points at it with an RFC 6901 pointer. Any other document
//!   (or JSON that does not parse) is checked line by line, and a finding
//!   carries a 1-based line and column (counted in characters).
//! - Patterns, each at most once per value or line: `secrets/private-key`
//!   (`-----BEGIN [A-Z ]*PRIVATE KEY-----`), `secrets/aws-access-key`
//!   (`AKIA[0-9A-Z]{16}`) and `secrets/token`, for the first of these kinds
//!   that matches: GitHub `ghp_[A-Za-z0-9]{36}`, GitLab
//!   `glpat-[A-Za-z0-9_-]{20}`, Slack `xox[abprs]-[A-Za-z0-9-]{10,}`, Stripe
//!   `sk_live_[A-Za-z0-9]{24,}`. The column is where the match starts.
//! - When no pattern matched, `secrets/hardcoded-credential`: the value's key
//!   (in JSON the nearest object key; in a line `key: value` or
//!   `key = value`, after indentation and a `- `, the key made only of
//!   `[A-Za-z0-9_.-]`, quotes removed) names a credential (lowercased, without
//!   `-`, `_` and `.`, it contains `password`, `passwd`, `secret`, `token`,
//!   `apikey`, `accesskey`, `privatekey` or `credential`), and the value
//!   (quotes and a trailing comma removed) is a literal: at least 8
//!   characters, not only digits, not starting with `${`, `{{`, `<`, `$(`,
//!   `env:`, `vault:` or `secret:`, not `changeme`, `redacted`, `true`,
//!   `false`, `null` or `none` (any case), not only `*`, `x` or `X`. The
//!   column is where the key starts.
//! - Every finding is an error with the same hint. They are sorted by
//!   document, pointer, line, column and rule. The verdict fails when there
//!   is any finding.

use cairn_plugin_sdk::{Change, Checkpoint, Finding, PluginInfo, Validator, Verdict, log};
use serde_json::Value;

/// The config the plugin accepts: an optional list of document paths to skip
/// (test fixtures that hold fake keys on purpose).
const CONFIG_SCHEMA: &str = r#"{"type":"object","properties":{"allow":{"type":"array","items":{"type":"string"}}},"additionalProperties":false}"#;
/// One hint for every rule: the fix is always to reference, not embed.
const HINT: &str = "move the value to the secret store and reference it (${secret:NAME})";
/// One fixed refusal, so the three languages word it identically (their
/// JSON parsers' messages differ).
const INVALID_CONFIG: &str = r#"invalid config: expected {"allow": [document paths]}"#;
/// Key fragments that name a credential, matched after folding case and
/// dropping `-`, `_` and `.` (so `api-key`, `apiKey` and `API_KEY` all match).
const KEY_WORDS: &[&str] = &[
    "password",
    "passwd",
    "secret",
    "token",
    "apikey",
    "accesskey",
    "privatekey",
    "credential",
];
/// Values starting like this reference a secret instead of holding one.
const PLACEHOLDER_PREFIXES: &[&str] = &["${", "{{", "<", "$(", "env:", "vault:", "secret:"];
/// Values that are obviously not a secret (placeholders and literals).
const PLACEHOLDERS: &[&str] = &["changeme", "redacted", "true", "false", "null", "none"];
/// Shorter values are too weak to be real credentials and are mostly words
/// such as `strict` or `short`; real secrets are longer.
const MIN_CREDENTIAL_CHARS: usize = 8;

struct SecretsScan;

/// A pattern rule found in a value or line: rule, message, byte offset.
type Match = (&'static str, String, usize);

fn is_alnum(b: u8) -> bool {
    b.is_ascii_alphanumeric()
}

/// Byte offset of the first match of `prefix` followed by at least `min`
/// bytes in `class`.
fn find_prefixed(text: &str, prefix: &str, class: fn(u8) -> bool, min: usize) -> Option<usize> {
    let bytes = text.as_bytes();
    text.match_indices(prefix).map(|(i, _)| i).find(|&i| {
        let rest = &bytes[i + prefix.len()..];
        rest.len() >= min && rest[..min].iter().all(|&b| class(b))
    })
}

fn find_private_key(text: &str) -> Option<usize> {
    text.match_indices("-----BEGIN ")
        .map(|(i, _)| i)
        .find(|&i| {
            let rest = &text[i + "-----BEGIN ".len()..];
            let run = rest
                .bytes()
                .take_while(|b| b.is_ascii_uppercase() || *b == b' ')
                .count();
            rest[..run].ends_with("PRIVATE KEY") && rest[run..].starts_with("-----")
        })
}

fn find_slack(text: &str) -> Option<usize> {
    text.match_indices("xox").map(|(i, _)| i).find(|&i| {
        let rest = &text.as_bytes()[i + 3..];
        rest.len() >= 12
            && b"abprs".contains(&rest[0])
            && rest[1] == b'-'
            && rest[2..12].iter().all(|&b| is_alnum(b) || b == b'-')
    })
}

fn matches(text: &str) -> Vec<Match> {
    let mut found = Vec::new();
    if let Some(i) = find_private_key(text) {
        found.push(("secrets/private-key", "a private key is embedded".into(), i));
    }
    let upper_or_digit = |b: u8| b.is_ascii_uppercase() || b.is_ascii_digit();
    if let Some(i) = find_prefixed(text, "AKIA", upper_or_digit, 16) {
        found.push((
            "secrets/aws-access-key",
            "an AWS access key id is embedded".into(),
            i,
        ));
    }
    let token = find_prefixed(text, "ghp_", is_alnum, 36)
        .map(|i| ("GitHub", i))
        .or_else(|| {
            find_prefixed(
                text,
                "glpat-",
                |b| is_alnum(b) || b == b'_' || b == b'-',
                20,
            )
            .map(|i| ("GitLab", i))
        })
        .or_else(|| find_slack(text).map(|i| ("Slack", i)))
        .or_else(|| find_prefixed(text, "sk_live_", is_alnum, 24).map(|i| ("Stripe", i)));
    if let Some((kind, i)) = token {
        found.push(("secrets/token", format!("a {kind} token is embedded"), i));
    }
    found
}

fn is_credential_key(key: &str) -> bool {
    let folded: String = key
        .to_lowercase()
        .chars()
        .filter(|c| !matches!(c, '-' | '_' | '.'))
        .collect();
    KEY_WORDS.iter().any(|word| folded.contains(word))
}

fn is_literal_credential(value: &str) -> bool {
    if value.chars().count() < MIN_CREDENTIAL_CHARS || value.bytes().all(|b| b.is_ascii_digit()) {
        return false;
    }
    if PLACEHOLDER_PREFIXES.iter().any(|p| value.starts_with(p)) {
        return false;
    }
    if PLACEHOLDERS.contains(&value.to_lowercase().as_str()) {
        return false;
    }
    !value.chars().all(|c| matches!(c, '*' | 'x' | 'X'))
}

fn credential(key: &str) -> Finding {
    Finding::error(
        "secrets/hardcoded-credential",
        format!("`{key}` holds a literal credential"),
    )
}

fn pointer_token(key: &str) -> String {
    key.replace('~', "~0").replace('/', "~1")
}

fn scan_json(path: &str, value: &Value, pointer: &str, key: &str, out: &mut Vec<Finding>) {
    match value {
        Value::Object(map) => {
            for (k, v) in map {
                scan_json(path, v, &format!("{pointer}/{}", pointer_token(k)), k, out);
            }
        }
        Value::Array(items) => {
            for (i, v) in items.iter().enumerate() {
                scan_json(path, v, &format!("{pointer}/{i}"), key, out);
            }
        }
        Value::String(text) => {
            let found = matches(text);
            let none = found.is_empty();
            for (rule, message, _) in found {
                out.push(
                    Finding::error(rule, message)
                        .at(path)
                        .pointer(pointer)
                        .hint(HINT),
                );
            }
            if none && is_credential_key(key) && is_literal_credential(text) {
                out.push(credential(key).at(path).pointer(pointer).hint(HINT));
            }
        }
        _ => {}
    }
}

fn strip_quotes(text: &str) -> &str {
    for quote in ['"', '\''] {
        if text.len() >= 2 && text.starts_with(quote) && text.ends_with(quote) {
            return &text[1..text.len() - 1];
        }
    }
    text
}

/// What counts as blank around keys and values: YAML and TOML indent with
/// spaces or tabs only.
const BLANK: &[char] = &[' ', '\t'];

/// (key, value, byte offset of the key) of a `key: value` or `key = value` line.
fn key_value(line: &str) -> Option<(&str, &str, usize)> {
    let mut start = line.len() - line.trim_start_matches(BLANK).len();
    if line[start..].starts_with("- ") {
        start += 2;
    }
    let rest = &line[start..];
    let cut = rest.find([':', '='])?;
    let key = strip_quotes(rest[..cut].trim_matches(BLANK));
    let key_chars = |c: char| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-');
    if key.is_empty() || !key.chars().all(key_chars) {
        return None;
    }
    let mut value = rest[cut + 1..].trim_matches(BLANK);
    if let Some(stripped) = value.strip_suffix(',') {
        value = stripped.trim_end_matches(BLANK);
    }
    Some((key, strip_quotes(value), start))
}

/// 1-based column, in characters, of a byte offset in `line`.
fn column(line: &str, offset: usize) -> u32 {
    u32::try_from(line[..offset].chars().count() + 1).unwrap_or(u32::MAX)
}

fn scan_lines(path: &str, text: &str, out: &mut Vec<Finding>) {
    for (index, raw) in text.split('\n').enumerate() {
        let line = raw.strip_suffix('\r').unwrap_or(raw);
        let number = u32::try_from(index + 1).unwrap_or(u32::MAX);
        let found = matches(line);
        if !found.is_empty() {
            for (rule, message, offset) in found {
                out.push(
                    Finding::error(rule, message)
                        .at(path)
                        .line(number, Some(column(line, offset)))
                        .hint(HINT),
                );
            }
            continue;
        }
        if let Some((key, value, offset)) = key_value(line)
            && is_credential_key(key)
            && is_literal_credential(value)
        {
            out.push(
                credential(key)
                    .at(path)
                    .line(number, Some(column(line, offset)))
                    .hint(HINT),
            );
        }
    }
}

fn read_allow(config: &str) -> Result<Vec<String>, String> {
    let invalid = || INVALID_CONFIG.to_string();
    let Value::Object(map) = serde_json::from_str::<Value>(config).map_err(|_| invalid())? else {
        return Err(invalid());
    };
    if map.keys().any(|k| k != "allow") {
        return Err(invalid());
    }
    match map.get("allow") {
        None => Ok(Vec::new()),
        Some(Value::Array(items)) => items
            .iter()
            .map(|item| item.as_str().map(str::to_owned).ok_or_else(invalid))
            .collect(),
        Some(_) => Err(invalid()),
    }
}

fn sort_key(finding: &Finding) -> (String, String, u32, u32, String) {
    let location = finding.location.as_ref();
    (
        location.map(|l| l.document.clone()).unwrap_or_default(),
        location.and_then(|l| l.pointer.clone()).unwrap_or_default(),
        location.and_then(|l| l.line).unwrap_or(0),
        location.and_then(|l| l.column).unwrap_or(0),
        finding.rule.clone(),
    )
}

impl Validator for SecretsScan {
    fn info() -> PluginInfo {
        PluginInfo::new(
            "secrets-scan",
            env!("CARGO_PKG_VERSION"),
            "Flags likely secrets (keys, tokens, passwords) in changed documents",
        )
        .with_config_schema(CONFIG_SCHEMA)
    }

    fn validate(change: &Change, at: &Checkpoint, config: &str) -> Result<Verdict, String> {
        let allow = read_allow(config)?;
        let mut findings = Vec::new();
        let mut scanned = 0usize;
        for doc in change.documents() {
            if !(doc.is_added() || doc.is_modified()) || allow.contains(&doc.path) {
                continue;
            }
            let Some(bytes) = change.after(&doc.path) else {
                continue;
            };
            let Ok(text) = String::from_utf8(bytes) else {
                continue; // binary: not a config document
            };
            scanned += 1;
            let parsed = if doc.is_json() {
                serde_json::from_str::<Value>(&text).ok()
            } else {
                None
            };
            match parsed {
                Some(value) => scan_json(&doc.path, &value, "", "", &mut findings),
                None => scan_lines(&doc.path, &text, &mut findings),
            }
        }
        findings.sort_by_cached_key(sort_key);
        log::debug(&format!("scanned {scanned} document(s) at {}", at.name));
        let summary = format!(
            "scanned {scanned} document(s), found {} likely secret(s)",
            findings.len()
        );
        Ok(Verdict::from_findings(findings).with_summary(summary))
    }
}

cairn_plugin_sdk::export_validator!(SecretsScan);
