//! What an experiment is told: [`ExperimentConfig`] with its safety
//! [`Envelope`], [`Guardrails`] and [`Upstream`], their defaults, and the
//! checks run before anything starts (each error names its field).

use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use serde::Serialize;

use crate::proxy::envelope::{EnvelopeMatcher, is_token};
use crate::proxy::error::ProxyError;

/// The header that groups retries into one logical request, by default.
pub const DEFAULT_IDEMPOTENCY_HEADER: &str = "idempotency-key";

/// Headers redacted whatever the experiment says: credentials.
pub const ALWAYS_SENSITIVE_HEADERS: &[&str] = &[
    "authorization",
    "cookie",
    "set-cookie",
    "proxy-authorization",
];

/// One fault experiment.
#[derive(Debug, Clone)]
pub struct ExperimentConfig {
    pub name: String,
    /// Where clients connect; port 0 picks one. Loopback only for now.
    pub listen: SocketAddr,
    pub upstream: Upstream,
    /// An extra trusted CA (PEM) for a private https upstream.
    pub ca_file: Option<PathBuf>,
    pub seed: u64,
    /// Must be > 0; after it nothing is faulted and the experiment ends.
    pub duration: Duration,
    pub envelope: Envelope,
    pub guardrails: Guardrails,
    /// Lower-case header name grouping retries (`idempotency-key`).
    pub idempotency_header: String,
    /// Headers redacted in what the plugin sees, the log and the report,
    /// besides [`ALWAYS_SENSITIVE_HEADERS`].
    pub sensitive_headers: Vec<String>,
    /// Loopback admin endpoint: `POST /stop`, `GET /status`.
    pub admin_listen: Option<SocketAddr>,
    /// JSON Lines decision log.
    pub decision_log: Option<PathBuf>,
}

impl ExperimentConfig {
    /// A config with the defaults for everything but what has none.
    pub fn new(
        name: impl Into<String>,
        listen: SocketAddr,
        upstream: Upstream,
        duration: Duration,
    ) -> ExperimentConfig {
        ExperimentConfig {
            name: name.into(),
            listen,
            upstream,
            ca_file: None,
            seed: 0,
            duration,
            envelope: Envelope::default(),
            guardrails: Guardrails::default(),
            idempotency_header: DEFAULT_IDEMPOTENCY_HEADER.to_owned(),
            sensitive_headers: Vec::new(),
            admin_listen: None,
            decision_log: None,
        }
    }

    /// Checks every setting; the first error names its field. Returns the
    /// compiled envelope.
    pub fn validate(&self) -> Result<EnvelopeMatcher, ProxyError> {
        if self.name.trim().is_empty() {
            return Err(ProxyError::config("name", "must not be empty"));
        }
        if !self.listen.ip().is_loopback() {
            return Err(ProxyError::config(
                "listen",
                format!(
                    "{} is not a loopback address; experiments serve on loopback addresses only for now (use 127.0.0.1 or [::1])",
                    self.listen
                ),
            ));
        }
        if let Some(admin) = self.admin_listen {
            if !admin.ip().is_loopback() {
                return Err(ProxyError::config(
                    "admin_listen",
                    format!(
                        "{admin} is not a loopback address; the admin endpoint is loopback only"
                    ),
                ));
            }
            if admin == self.listen && admin.port() != 0 {
                return Err(ProxyError::config(
                    "admin_listen",
                    format!("{admin} is also the proxy's listen address"),
                ));
            }
        }
        if self.duration.is_zero() {
            return Err(ProxyError::config("duration", "must be greater than 0"));
        }
        if !is_token(&self.idempotency_header) {
            return Err(ProxyError::config(
                "idempotency_header",
                format!(
                    "{:?} is not a valid HTTP header name",
                    self.idempotency_header
                ),
            ));
        }
        for (index, name) in self.sensitive_headers.iter().enumerate() {
            if !is_token(name) {
                return Err(ProxyError::config(
                    format!("sensitive_headers[{index}]"),
                    format!("{name:?} is not a valid HTTP header name"),
                ));
            }
        }
        self.envelope.validate()?;
        self.guardrails.validate()?;
        EnvelopeMatcher::new(&self.envelope)
    }

    /// Every redacted header name, lower-case.
    pub fn redacted_header_names(&self) -> Vec<String> {
        let mut names: Vec<String> = ALWAYS_SENSITIVE_HEADERS
            .iter()
            .map(|s| (*s).to_owned())
            .collect();
        for name in &self.sensitive_headers {
            let name = name.to_ascii_lowercase();
            if !names.contains(&name) {
                names.push(name);
            }
        }
        names
    }
}

/// Limits on what an experiment may fault.
#[derive(Debug, Clone, PartialEq)]
pub struct Envelope {
    /// Share of eligible requests the plugin is asked about, 0..=100,
    /// sampled per request from the seed.
    pub blast_radius_percent: f64,
    /// Requests being faulted at once; past it a request is forwarded
    /// untouched (`skipped.concurrency`).
    pub max_concurrent_faults: u32,
    /// Empty: every route. Otherwise only matching requests are faulted.
    pub routes: Vec<RouteMatch>,
    /// Path globs never faulted (see [`crate::proxy::envelope`]).
    pub protected_paths: Vec<String>,
    /// Cap on each of delay-request and delay-response.
    pub max_delay: Duration,
    /// Cap on a hang.
    pub max_hang: Duration,
    /// After this many plugin failures the experiment stops injecting
    /// (it keeps proxying). At least 1.
    pub max_plugin_failures: u32,
}

impl Default for Envelope {
    fn default() -> Self {
        Envelope {
            blast_radius_percent: 100.0,
            max_concurrent_faults: 100,
            routes: Vec::new(),
            protected_paths: Vec::new(),
            max_delay: Duration::from_secs(30),
            max_hang: Duration::from_secs(30),
            max_plugin_failures: 100,
        }
    }
}

impl Envelope {
    fn validate(&self) -> Result<(), ProxyError> {
        if !self.blast_radius_percent.is_finite()
            || !(0.0..=100.0).contains(&self.blast_radius_percent)
        {
            return Err(ProxyError::config(
                "envelope.blast_radius_percent",
                format!("{} is outside 0..=100", self.blast_radius_percent),
            ));
        }
        if self.max_plugin_failures == 0 {
            return Err(ProxyError::config(
                "envelope.max_plugin_failures",
                "must be at least 1",
            ));
        }
        Ok(())
    }
}

/// A route the experiment may fault: any of `methods` (empty = any), a
/// path glob, and optionally a header (name in any case) with an exact
/// value. Sensitive headers are matched on their redacted value
/// (`[redacted]`), so a credential cannot select a route.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteMatch {
    pub methods: Vec<String>,
    pub path: String,
    pub header: Option<(String, String)>,
}

/// When an experiment stops itself: over a sliding `window` of responses
/// as clients saw them, once `min_requests` are in it.
#[derive(Debug, Clone, PartialEq)]
pub struct Guardrails {
    pub window: Duration,
    pub min_requests: u32,
    /// Share of errors (5xx, resets, hangs, truncations, upstream
    /// failures), 0..=1.
    pub max_error_rate: Option<f64>,
    /// p99 of the time from arrival to the response head.
    pub max_p99_latency: Option<Duration>,
}

impl Default for Guardrails {
    fn default() -> Self {
        Guardrails {
            window: Duration::from_secs(10),
            min_requests: 20,
            max_error_rate: None,
            max_p99_latency: None,
        }
    }
}

impl Guardrails {
    fn validate(&self) -> Result<(), ProxyError> {
        if self.window.is_zero() {
            return Err(ProxyError::config(
                "guardrails.window",
                "must be greater than 0",
            ));
        }
        if self.min_requests == 0 {
            return Err(ProxyError::config(
                "guardrails.min_requests",
                "must be at least 1",
            ));
        }
        if let Some(rate) = self.max_error_rate
            && (!rate.is_finite() || !(0.0..=1.0).contains(&rate))
        {
            return Err(ProxyError::config(
                "guardrails.max_error_rate",
                format!("{rate} is outside 0..=1"),
            ));
        }
        if self.max_p99_latency.is_some_and(|p99| p99.is_zero()) {
            return Err(ProxyError::config(
                "guardrails.max_p99_latency",
                "must be greater than 0",
            ));
        }
        Ok(())
    }
}

/// `http` or `https`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Scheme {
    Http,
    Https,
}

impl Scheme {
    pub fn as_str(self) -> &'static str {
        match self {
            Scheme::Http => "http",
            Scheme::Https => "https",
        }
    }

    fn default_port(self) -> u16 {
        match self {
            Scheme::Http => 80,
            Scheme::Https => 443,
        }
    }
}

/// The service behind the proxy: scheme, host, port and an optional base
/// path that forwarded paths are appended to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Upstream {
    pub scheme: Scheme,
    /// Host name or IP (IPv6 without brackets).
    pub host: String,
    pub port: u16,
    /// `""` or `/base` (no trailing slash).
    pub base_path: String,
}

impl Upstream {
    /// Parses `http(s)://host[:port][/base]`. Credentials, queries and
    /// fragments are refused.
    pub fn parse(text: &str) -> Result<Upstream, ProxyError> {
        let invalid = |reason: String| ProxyError::config("upstream", reason);
        let uri: http::Uri = text
            .parse()
            .map_err(|err| invalid(format!("{text:?} is not a URL: {err}")))?;
        let scheme = match uri.scheme_str() {
            Some("http") => Scheme::Http,
            Some("https") => Scheme::Https,
            Some(other) => {
                return Err(invalid(format!(
                    "scheme {other:?} is not supported: use http or https"
                )));
            }
            None => {
                return Err(invalid(format!(
                    "{text:?} has no scheme: write http://host:port or https://host:port"
                )));
            }
        };
        let authority = uri
            .authority()
            .ok_or_else(|| invalid(format!("{text:?} has no host")))?;
        if authority.as_str().contains('@') {
            return Err(invalid(
                "credentials in the upstream URL are not supported (they would end up in logs)"
                    .to_owned(),
            ));
        }
        if uri.query().is_some() || text.contains('#') {
            return Err(invalid(format!(
                "{text:?} has a query or fragment; give a base path only"
            )));
        }
        let host = authority
            .host()
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_owned();
        if host.is_empty() {
            return Err(invalid(format!("{text:?} has no host")));
        }
        let port = authority
            .port_u16()
            .unwrap_or_else(|| scheme.default_port());
        let base_path = uri.path().trim_end_matches('/').to_owned();
        Ok(Upstream {
            scheme,
            host,
            port,
            base_path,
        })
    }

    /// `host:port`, IPv6 hosts in brackets.
    pub fn authority(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }
}

impl fmt::Display for Upstream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}://{}{}",
            self.scheme.as_str(),
            self.authority(),
            self.base_path
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> ExperimentConfig {
        ExperimentConfig::new(
            "t",
            "127.0.0.1:0".parse().unwrap(),
            Upstream::parse("http://127.0.0.1:9").unwrap(),
            Duration::from_secs(1),
        )
    }

    #[test]
    fn upstream_urls_parse_with_defaults_and_base_paths() {
        let up = Upstream::parse("https://orders.internal:8443/api/").unwrap();
        assert_eq!(up.scheme, Scheme::Https);
        assert_eq!(up.host, "orders.internal");
        assert_eq!(up.port, 8443);
        assert_eq!(up.base_path, "/api");
        assert_eq!(up.to_string(), "https://orders.internal:8443/api");
        let up = Upstream::parse("http://[::1]").unwrap();
        assert_eq!((up.host.as_str(), up.port), ("::1", 80));
        assert_eq!(up.authority(), "[::1]:80");
        assert_eq!(Upstream::parse("https://x").unwrap().port, 443);
        for bad in [
            "ftp://x",
            "x:80",
            "http://user:pw@x",
            "http://x/?q=1",
            "not a url",
        ] {
            let err = Upstream::parse(bad).unwrap_err();
            assert!(err.to_string().contains("`upstream`"), "{bad}: {err}");
        }
    }

    #[test]
    fn config_checks_name_the_field_at_fault() {
        type Change = Box<dyn Fn(&mut ExperimentConfig)>;
        let cases: Vec<(Change, &str)> = vec![
            (
                Box::new(|c| c.envelope.blast_radius_percent = 101.0),
                "envelope.blast_radius_percent",
            ),
            (
                Box::new(|c| c.envelope.blast_radius_percent = f64::NAN),
                "envelope.blast_radius_percent",
            ),
            (Box::new(|c| c.duration = Duration::ZERO), "duration"),
            (
                Box::new(|c| c.listen = "0.0.0.0:0".parse().unwrap()),
                "listen",
            ),
            (
                Box::new(|c| c.admin_listen = Some("10.0.0.1:1".parse().unwrap())),
                "admin_listen",
            ),
            (
                Box::new(|c| c.guardrails.max_error_rate = Some(1.5)),
                "guardrails.max_error_rate",
            ),
            (
                Box::new(|c| c.guardrails.window = Duration::ZERO),
                "guardrails.window",
            ),
            (
                Box::new(|c| c.envelope.protected_paths = vec!["health".into()]),
                "envelope.protected_paths[0]",
            ),
            (
                Box::new(|c| c.idempotency_header = "bad header".into()),
                "idempotency_header",
            ),
            (
                Box::new(|c| c.envelope.max_plugin_failures = 0),
                "envelope.max_plugin_failures",
            ),
        ];
        for (change, field) in cases {
            let mut c = config();
            change(&mut c);
            let err = c.validate().unwrap_err();
            assert!(
                err.to_string().contains(&format!("`{field}`")),
                "{field}: {err}"
            );
        }
        assert!(config().validate().is_ok());
    }

    #[test]
    fn credentials_are_always_redacted_and_extra_names_are_added_once() {
        let mut c = config();
        c.sensitive_headers = vec!["X-Api-Key".into(), "cookie".into()];
        let names = c.redacted_header_names();
        for name in [
            "authorization",
            "cookie",
            "set-cookie",
            "proxy-authorization",
            "x-api-key",
        ] {
            assert_eq!(names.iter().filter(|n| *n == name).count(), 1, "{name}");
        }
    }
}
