//! Path patterns for allowlists and document selection: `*` matches any run
//! of characters (slashes included).

/// Matches `text` against `pattern`, where `*` matches any run of characters.
pub fn matches(pattern: &str, text: &str) -> bool {
    let mut parts = pattern.split('*');
    let first = parts.next().unwrap_or_default();
    let Some(mut rest) = text.strip_prefix(first) else {
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

/// Whether any of `patterns` matches `text`.
pub fn any(patterns: &[String], text: &str) -> bool {
    patterns.iter().any(|pattern| matches(pattern, text))
}

#[cfg(test)]
mod tests {
    use super::matches;

    #[test]
    fn stars_match_prefixes_suffixes_and_middles() {
        assert!(matches("legacy/*", "legacy/a.json"));
        assert!(matches("*.tmp.json", "x/y.tmp.json"));
        assert!(matches("a*b*c", "aXbYc"));
        assert!(matches("exact.json", "exact.json"));
        assert!(!matches("exact.json", "exact.json.bak"));
        assert!(!matches("legacy/*", "live/a.json"));
        assert!(!matches("a*bc", "abc-x"));
    }
}
