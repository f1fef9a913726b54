//! Which requests an experiment may fault: path globs, route matches and
//! protected paths, matched on a normalised path.
//!
//! Glob syntax (patterns start with `/`; matched segment by segment):
//!
//! - `*` matches any run of characters within one segment (not `/`):
//!   `/admin/*` matches `/admin/users` but neither `/admin` nor
//!   `/admin/users/1`;
//! - `?` matches one character within a segment;
//! - `**` as a whole segment matches any number of segments, none
//!   included: `/admin/**` matches `/admin`, `/admin/users` and
//!   `/admin/users/1`; `/**/health` matches `/health` and `/v1/health`;
//!   `**` inside a segment (`/a**`) is refused;
//! - anything else matches itself (case-sensitive).
//!
//! Paths are normalised before matching, so that a spelling the upstream
//! treats as the same path cannot slip past a protected pattern:
//! percent-encoded unreserved characters are decoded (`/%61dmin` is
//! `/admin`), repeated slashes collapse, and `.` and `..` segments are
//! resolved.

use crate::proxy::config::{Envelope, RouteMatch};
use crate::proxy::error::ProxyError;

/// A compiled path glob.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Glob {
    pattern: String,
    segments: Vec<GlobSegment>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum GlobSegment {
    /// `**`: any number of segments.
    AnySegments,
    /// A segment pattern with `*` and `?`.
    Pattern(Vec<char>),
}

impl Glob {
    /// Parses a glob; the error says why it is refused.
    pub fn new(pattern: &str) -> Result<Glob, String> {
        if !pattern.starts_with('/') {
            return Err(format!("path pattern {pattern:?} must start with `/`"));
        }
        if pattern.chars().any(|c| c.is_control() || c == ' ') {
            return Err(format!(
                "path pattern {pattern:?} contains spaces or control characters"
            ));
        }
        let mut segments = Vec::new();
        for segment in pattern[1..].split('/') {
            if segment == "**" {
                // `/**/**` is the same as `/**`.
                if segments.last() != Some(&GlobSegment::AnySegments) {
                    segments.push(GlobSegment::AnySegments);
                }
            } else if segment.contains("**") {
                return Err(format!(
                    "path pattern {pattern:?}: `**` must be a whole segment (`/a/**`, not `/a**`)"
                ));
            } else {
                segments.push(GlobSegment::Pattern(segment.chars().collect()));
            }
        }
        Ok(Glob {
            pattern: pattern.to_owned(),
            segments,
        })
    }

    pub fn as_str(&self) -> &str {
        &self.pattern
    }

    /// Whether `path` (without query) matches, after normalisation.
    pub fn matches(&self, path: &str) -> bool {
        self.matches_normalized(&normalize_path(path))
    }

    /// Whether an already normalised path matches.
    pub fn matches_normalized(&self, normalized: &str) -> bool {
        let path: Vec<&str> = normalized
            .strip_prefix('/')
            .unwrap_or(normalized)
            .split('/')
            .collect();
        let pattern = &self.segments;
        // matched[j]: pattern[..i] matches path[..j], for the current i.
        let mut matched = vec![false; path.len() + 1];
        matched[0] = true;
        for segment in pattern {
            let mut next = vec![false; path.len() + 1];
            match segment {
                GlobSegment::AnySegments => {
                    let mut reachable = false;
                    for j in 0..=path.len() {
                        reachable |= matched[j];
                        next[j] = reachable;
                    }
                }
                GlobSegment::Pattern(chars) => {
                    for j in 0..path.len() {
                        if matched[j] && segment_matches(chars, path[j]) {
                            next[j + 1] = true;
                        }
                    }
                }
            }
            matched = next;
        }
        matched[path.len()]
    }
}

/// `*` and `?` within one segment (greedy with one backtrack point).
fn segment_matches(pattern: &[char], text: &str) -> bool {
    let text: Vec<char> = text.chars().collect();
    let (mut p, mut t) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while t < text.len() {
        if p < pattern.len() && (pattern[p] == '?' || pattern[p] == text[t]) {
            p += 1;
            t += 1;
        } else if p < pattern.len() && pattern[p] == '*' {
            star = Some((p, t));
            p += 1;
        } else if let Some((star_p, star_t)) = star {
            p = star_p + 1;
            t = star_t + 1;
            star = Some((star_p, star_t + 1));
        } else {
            return false;
        }
    }
    pattern[p..].iter().all(|c| *c == '*')
}

/// The path as the envelope matches it: unreserved percent-encodings
/// decoded, repeated slashes collapsed, dot segments resolved. Always
/// starts with `/`.
pub fn normalize_path(path: &str) -> String {
    let decoded = decode_unreserved(path);
    let mut segments: Vec<&str> = Vec::new();
    let trailing_slash = decoded.ends_with('/') && decoded.len() > 1;
    for segment in decoded.split('/') {
        match segment {
            "" | "." => {}
            ".." => {
                segments.pop();
            }
            other => segments.push(other),
        }
    }
    let mut normalized = String::with_capacity(decoded.len() + 1);
    for segment in &segments {
        normalized.push('/');
        normalized.push_str(segment);
    }
    if normalized.is_empty() || (trailing_slash && !segments.is_empty()) {
        normalized.push('/');
    }
    normalized
}

/// Decodes `%XX` where XX is an unreserved character (RFC 3986: letters,
/// digits, `-._~`); everything else stays as written.
fn decode_unreserved(path: &str) -> String {
    let bytes = path.as_bytes();
    let mut out = String::with_capacity(path.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && i + 2 < bytes.len()
            && let (Some(hi), Some(lo)) = (hex_value(bytes[i + 1]), hex_value(bytes[i + 2]))
        {
            let decoded = hi * 16 + lo;
            if decoded.is_ascii_alphanumeric() || b"-._~".contains(&decoded) {
                out.push(decoded as char);
                i += 3;
                continue;
            }
        }
        // Copy one UTF-8 character (paths from hyper are ASCII, but be safe).
        let ch_len = path[i..].chars().next().map_or(1, char::len_utf8);
        out.push_str(&path[i..i + ch_len]);
        i += ch_len;
    }
    out
}

fn hex_value(byte: u8) -> Option<u8> {
    match byte {
        b'0'..=b'9' => Some(byte - b'0'),
        b'a'..=b'f' => Some(byte - b'a' + 10),
        b'A'..=b'F' => Some(byte - b'A' + 10),
        _ => None,
    }
}

/// A [`RouteMatch`] compiled.
#[derive(Debug, Clone)]
struct CompiledRoute {
    /// Upper-case; empty = any method.
    methods: Vec<String>,
    path: Glob,
    /// Lower-case name, exact value.
    header: Option<(String, String)>,
}

/// The envelope's route and protected-path rules, compiled once.
#[derive(Debug, Clone)]
pub struct EnvelopeMatcher {
    routes: Vec<CompiledRoute>,
    protected: Vec<Glob>,
}

/// Why the envelope keeps a request from the plugin.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RouteVerdict {
    /// Matches a route (or there are none) and is not protected.
    Eligible,
    /// Matches no route.
    NoRoute,
    /// Matches a protected path.
    Protected,
}

impl EnvelopeMatcher {
    /// Compiles the envelope's globs; errors name the field.
    pub fn new(envelope: &Envelope) -> Result<EnvelopeMatcher, ProxyError> {
        let mut routes = Vec::with_capacity(envelope.routes.len());
        for (index, route) in envelope.routes.iter().enumerate() {
            routes.push(compile_route(route).map_err(|reason| {
                ProxyError::config(format!("envelope.routes[{index}]"), reason)
            })?);
        }
        let mut protected = Vec::with_capacity(envelope.protected_paths.len());
        for (index, pattern) in envelope.protected_paths.iter().enumerate() {
            protected.push(Glob::new(pattern).map_err(|reason| {
                ProxyError::config(format!("envelope.protected_paths[{index}]"), reason)
            })?);
        }
        Ok(EnvelopeMatcher { routes, protected })
    }

    /// Whether a request may be faulted as far as routes and protected
    /// paths go. `headers` have lower-case names.
    pub fn classify(&self, method: &str, path: &str, headers: &[(String, String)]) -> RouteVerdict {
        let normalized = normalize_path(path);
        if !self.routes.is_empty()
            && !self
                .routes
                .iter()
                .any(|route| route_matches(route, method, &normalized, headers))
        {
            return RouteVerdict::NoRoute;
        }
        if self
            .protected
            .iter()
            .any(|glob| glob.matches_normalized(&normalized))
        {
            return RouteVerdict::Protected;
        }
        RouteVerdict::Eligible
    }
}

fn compile_route(route: &RouteMatch) -> Result<CompiledRoute, String> {
    let mut methods = Vec::with_capacity(route.methods.len());
    for method in &route.methods {
        if !is_token(method) {
            return Err(format!("method {method:?} is not an HTTP method token"));
        }
        methods.push(method.to_ascii_uppercase());
    }
    let path = Glob::new(&route.path)?;
    let header = match &route.header {
        None => None,
        Some((name, value)) => {
            if !is_token(name) {
                return Err(format!("header name {name:?} is not a valid HTTP token"));
            }
            Some((name.to_ascii_lowercase(), value.clone()))
        }
    };
    Ok(CompiledRoute {
        methods,
        path,
        header,
    })
}

fn route_matches(
    route: &CompiledRoute,
    method: &str,
    normalized_path: &str,
    headers: &[(String, String)],
) -> bool {
    if !route.methods.is_empty() && !route.methods.iter().any(|m| m.eq_ignore_ascii_case(method)) {
        return false;
    }
    if !route.path.matches_normalized(normalized_path) {
        return false;
    }
    match &route.header {
        None => true,
        Some((name, value)) => headers.iter().any(|(n, v)| n == name && v == value),
    }
}

/// An RFC 9110 token (header names, methods).
pub fn is_token(text: &str) -> bool {
    !text.is_empty()
        && text
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "!#$%&'*+-.^_`|~".contains(c))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn glob(pattern: &str) -> Glob {
        Glob::new(pattern).unwrap()
    }

    #[test]
    fn literal_and_single_segment_wildcards() {
        assert!(glob("/health").matches("/health"));
        assert!(!glob("/health").matches("/healthz"));
        assert!(!glob("/health").matches("/health/deep"));
        assert!(glob("/admin/*").matches("/admin/users"));
        assert!(!glob("/admin/*").matches("/admin/users/1"));
        assert!(!glob("/admin/*").matches("/admin"));
        assert!(glob("/orders/*/items").matches("/orders/42/items"));
        assert!(glob("/v?/orders").matches("/v1/orders"));
        assert!(!glob("/v?/orders").matches("/v10/orders"));
        assert!(glob("/files/*.json").matches("/files/a.b.json"));
        assert!(!glob("/files/*.json").matches("/files/a.jsonx"));
        assert!(glob("/").matches("/"));
        assert!(!glob("/").matches("/a"));
    }

    #[test]
    fn double_star_spans_any_number_of_segments() {
        assert!(glob("/admin/**").matches("/admin"));
        assert!(glob("/admin/**").matches("/admin/users"));
        assert!(glob("/admin/**").matches("/admin/users/1/roles"));
        assert!(!glob("/admin/**").matches("/administrator"));
        assert!(glob("/**/health").matches("/health"));
        assert!(glob("/**/health").matches("/v1/internal/health"));
        assert!(!glob("/**/health").matches("/v1/healthy"));
        assert!(glob("/**").matches("/"));
        assert!(glob("/**").matches("/anything/at/all"));
        assert!(glob("/a/**/z").matches("/a/z"));
        assert!(glob("/a/**/z").matches("/a/b/c/z"));
        assert!(!glob("/a/**/z").matches("/a/b/c"));
    }

    #[test]
    fn malformed_patterns_are_refused_with_a_reason() {
        assert!(Glob::new("health").unwrap_err().contains("start with `/`"));
        assert!(Glob::new("/a**").unwrap_err().contains("whole segment"));
        assert!(Glob::new("/a b").is_err());
        assert!(Glob::new("").is_err());
    }

    #[test]
    fn paths_are_normalised_so_protected_paths_cannot_be_dodged() {
        assert_eq!(normalize_path("/%61dmin/x"), "/admin/x");
        assert_eq!(normalize_path("//admin///x"), "/admin/x");
        assert_eq!(normalize_path("/health/../admin/./x"), "/admin/x");
        assert_eq!(normalize_path("/../../etc"), "/etc");
        assert_eq!(normalize_path("/a/"), "/a/");
        assert_eq!(normalize_path(""), "/");
        // Reserved characters stay encoded.
        assert_eq!(normalize_path("/a%2Fb"), "/a%2Fb");
        assert_eq!(normalize_path("/bad%zz%"), "/bad%zz%");
        let protected = glob("/admin/**");
        for dodge in ["/%61dmin/users", "//admin/users", "/public/../admin/users"] {
            assert!(protected.matches(dodge), "{dodge}");
        }
    }

    fn envelope(routes: Vec<RouteMatch>, protected: &[&str]) -> EnvelopeMatcher {
        EnvelopeMatcher::new(&Envelope {
            routes,
            protected_paths: protected.iter().map(|p| p.to_string()).collect(),
            ..Envelope::default()
        })
        .unwrap()
    }

    #[test]
    fn routes_match_on_method_path_and_header() {
        let matcher = envelope(
            vec![
                RouteMatch {
                    methods: vec!["get".into(), "POST".into()],
                    path: "/orders/**".into(),
                    header: None,
                },
                RouteMatch {
                    methods: vec![],
                    path: "/carts/*".into(),
                    header: Some(("X-Canary".into(), "yes".into())),
                },
            ],
            &[],
        );
        let none: Vec<(String, String)> = vec![];
        let canary = vec![("x-canary".to_string(), "yes".to_string())];
        assert_eq!(
            matcher.classify("GET", "/orders/1", &none),
            RouteVerdict::Eligible
        );
        assert_eq!(
            matcher.classify("post", "/orders", &none),
            RouteVerdict::Eligible
        );
        assert_eq!(
            matcher.classify("DELETE", "/orders/1", &none),
            RouteVerdict::NoRoute
        );
        assert_eq!(
            matcher.classify("GET", "/carts/1", &none),
            RouteVerdict::NoRoute
        );
        assert_eq!(
            matcher.classify("PUT", "/carts/1", &canary),
            RouteVerdict::Eligible
        );
        assert_eq!(
            matcher.classify("GET", "/users", &canary),
            RouteVerdict::NoRoute
        );
    }

    #[test]
    fn protected_paths_win_over_routes_and_no_routes_means_every_route() {
        let matcher = envelope(vec![], &["/health", "/admin/**"]);
        let none: Vec<(String, String)> = vec![];
        assert_eq!(
            matcher.classify("GET", "/anything", &none),
            RouteVerdict::Eligible
        );
        assert_eq!(
            matcher.classify("GET", "/health", &none),
            RouteVerdict::Protected
        );
        assert_eq!(
            matcher.classify("GET", "/admin/x/y", &none),
            RouteVerdict::Protected
        );
        let matcher = envelope(
            vec![RouteMatch {
                methods: vec![],
                path: "/**".into(),
                header: None,
            }],
            &["/health"],
        );
        assert_eq!(
            matcher.classify("GET", "/health", &none),
            RouteVerdict::Protected
        );
    }

    #[test]
    fn invalid_routes_name_their_field() {
        let err = EnvelopeMatcher::new(&Envelope {
            routes: vec![RouteMatch {
                methods: vec!["GE T".into()],
                path: "/x".into(),
                header: None,
            }],
            ..Envelope::default()
        })
        .unwrap_err();
        assert!(err.to_string().contains("envelope.routes[0]"), "{err}");
        let err = EnvelopeMatcher::new(&Envelope {
            protected_paths: vec!["/ok".into(), "nope".into()],
            ..Envelope::default()
        })
        .unwrap_err();
        assert!(
            err.to_string().contains("envelope.protected_paths[1]"),
            "{err}"
        );
    }

    #[test]
    fn a_long_hostile_path_matches_in_bounded_time() {
        let path = "/a".repeat(20_000) + "/b";
        let started = std::time::Instant::now();
        assert!(glob("/**/a/**/a/**/b").matches(&path));
        assert!(!glob("/**/a/**/c/**/b").matches(&path));
        assert!(started.elapsed() < std::time::Duration::from_secs(2));
    }
}
