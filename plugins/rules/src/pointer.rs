//! RFC 6901 JSON pointers: building them token by token.

/// Escapes one reference token (`~` → `~0`, `/` → `~1`).
pub fn escape(token: &str) -> String {
    if token.contains(['~', '/']) {
        token.replace('~', "~0").replace('/', "~1")
    } else {
        token.to_owned()
    }
}

/// `base` followed by the escaped `token`.
pub fn join(base: &str, token: &str) -> String {
    let mut pointer = String::with_capacity(base.len() + token.len() + 1);
    pointer.push_str(base);
    pointer.push('/');
    pointer.push_str(&escape(token));
    pointer
}

/// `base` followed by an array index.
pub fn join_index(base: &str, index: usize) -> String {
    format!("{base}/{index}")
}

/// The last unescaped token of `pointer`, if any.
pub fn last_token(pointer: &str) -> Option<String> {
    let (_, last) = pointer.rsplit_once('/')?;
    Some(last.replace("~1", "/").replace("~0", "~"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_with_slash_and_tilde_are_escaped() {
        assert_eq!(join("/paths", "/orders/{id}"), "/paths/~1orders~1{id}");
        assert_eq!(join("", "a~b"), "/a~0b");
        assert_eq!(
            last_token("/paths/~1orders~1{id}").as_deref(),
            Some("/orders/{id}")
        );
    }
}
