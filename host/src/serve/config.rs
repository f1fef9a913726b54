//! The server's configuration file (`serve.toml`): where it listens, its
//! capacity and limits, where rollout state lives, and the tenants with
//! their plans and hashed bearer tokens. Errors name file:line:column.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use sha2::{Digest, Sha256};

use crate::check::plan::LineIndex;
use crate::runtime::input::{MAX_PLAN_BYTES, read_limited_text};

/// Why the configuration cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read the server configuration {}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{}:{line}:{column}: {message}", path.display())]
    Invalid {
        path: PathBuf,
        line: usize,
        column: usize,
        message: String,
    },
}

/// The whole configuration, as read.
#[derive(Debug, Clone, PartialEq)]
pub struct ServeConfig {
    /// The configuration file (plan paths are relative to its directory).
    pub path: PathBuf,
    pub server: ServerSettings,
    pub tenants: Vec<TenantConfig>,
}

/// `[server]`: settings read at start (a reload that changes them says they
/// need a restart).
#[derive(Debug, Clone, PartialEq)]
pub struct ServerSettings {
    pub listen: SocketAddr,
    /// Checks and rollout commands run at once.
    pub max_concurrent: usize,
    /// Requests waiting for a slot; more are refused with 503.
    pub max_queue: usize,
    pub max_body_bytes: usize,
    /// Bound on one request, queueing included (504 past it).
    pub request_timeout: Duration,
    /// How long a shutdown waits for requests in flight.
    pub shutdown_grace: Duration,
    /// Where rollout journals live when there is no PostgreSQL.
    pub state_dir: PathBuf,
    /// Journals, rollouts and leases in PostgreSQL, shared by replicas.
    pub postgres: Option<String>,
    /// A replica's lease on a rollout it drives; renewed at a third of it.
    pub lease: Duration,
    /// This replica's name in leases (default: host name and pid).
    pub replica: String,
    /// SHA-256 of the token `/metrics` asks for (none: it is open).
    pub metrics_token: Option<[u8; 32]>,
}

/// One `[[tenant]]`.
#[derive(Debug, Clone, PartialEq)]
pub struct TenantConfig {
    pub name: String,
    /// Plan name → plan file (absolute, resolved against the config's
    /// directory).
    pub plans: BTreeMap<String, PathBuf>,
    pub tokens: Vec<TokenConfig>,
}

/// One `[[tenant.token]]`: a bearer token, stored as its SHA-256.
#[derive(Debug, Clone, PartialEq)]
pub struct TokenConfig {
    /// Who holds the token: recorded as the approver of what it approves.
    pub identity: String,
    pub sha256: [u8; 32],
    /// Roles the token may approve rollout pauses for (empty: any).
    pub roles: Vec<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct File {
    #[serde(default)]
    server: ServerFile,
    #[serde(default, rename = "tenant")]
    tenants: Vec<toml::Spanned<TenantFile>>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct ServerFile {
    listen: Option<toml::Spanned<String>>,
    max_concurrent: Option<toml::Spanned<u64>>,
    max_queue: Option<u64>,
    max_body_bytes: Option<toml::Spanned<u64>>,
    request_timeout_ms: Option<toml::Spanned<u64>>,
    shutdown_grace_ms: Option<u64>,
    state_dir: Option<String>,
    postgres: Option<String>,
    lease_ms: Option<toml::Spanned<u64>>,
    replica: Option<String>,
    metrics_token_sha256: Option<toml::Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct TenantFile {
    name: toml::Spanned<String>,
    #[serde(default)]
    plans: BTreeMap<String, toml::Spanned<String>>,
    #[serde(default, rename = "token")]
    tokens: Vec<toml::Spanned<TokenFile>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct TokenFile {
    identity: String,
    sha256: toml::Spanned<String>,
    #[serde(default)]
    roles: Vec<String>,
}

/// Largest request body accepted at most (a change bundle is at most
/// 256 MiB on the command line too).
const MAX_BODY_CEILING: u64 = 256 * 1024 * 1024;

/// The environment variable that sets (and overrides) `[server] postgres`,
/// so the password stays out of the file.
pub const POSTGRES_ENV: &str = "CAIRN_POSTGRES_URL";

impl ServeConfig {
    /// Reads and checks the configuration at `path`.
    pub fn load(path: &Path) -> Result<ServeConfig, ConfigError> {
        let text =
            read_limited_text(path, "server configuration", MAX_PLAN_BYTES).map_err(|source| {
                ConfigError::Read {
                    path: path.to_owned(),
                    source,
                }
            })?;
        let mut config = ServeConfig::parse(path, &text)?;
        if let Ok(url) = std::env::var(POSTGRES_ENV)
            && !url.is_empty()
        {
            config.server.postgres = Some(url);
        }
        Ok(config)
    }

    /// Parses configuration text; `path` names it in errors and anchors
    /// relative paths.
    pub fn parse(path: &Path, text: &str) -> Result<ServeConfig, ConfigError> {
        let lines = LineIndex::new(text);
        let at = |span: Range<usize>, message: String| {
            let (line, column) = lines.line_column(span.start);
            ConfigError::Invalid {
                path: path.to_owned(),
                line,
                column,
                message,
            }
        };
        let file: File = toml::from_str(text)
            .map_err(|err| at(err.span().unwrap_or(0..0), err.message().to_owned()))?;
        let base = path.parent().unwrap_or(Path::new("."));
        let resolve = |p: &str| {
            let p = Path::new(p);
            if p.is_absolute() {
                p.to_owned()
            } else {
                base.join(p)
            }
        };
        let s = file.server;
        let listen = match &s.listen {
            None => SocketAddr::from(([127, 0, 0, 1], 7878)),
            Some(listen) => listen.get_ref().parse().map_err(|_| {
                at(
                    listen.span(),
                    format!(
                        "`listen` must be an address and port such as 127.0.0.1:7878, not {:?}",
                        listen.get_ref()
                    ),
                )
            })?,
        };
        let positive = |value: &Option<toml::Spanned<u64>>,
                        key: &str,
                        default: u64,
                        max: u64|
         -> Result<u64, ConfigError> {
            match value {
                None => Ok(default),
                Some(v) if *v.get_ref() == 0 || *v.get_ref() > max => Err(at(
                    v.span(),
                    format!("`{key}` must be between 1 and {max}, not {}", v.get_ref()),
                )),
                Some(v) => Ok(*v.get_ref()),
            }
        };
        let cores = std::thread::available_parallelism().map_or(2, |n| n.get()) as u64;
        let server = ServerSettings {
            listen,
            max_concurrent: positive(&s.max_concurrent, "max-concurrent", 4 * cores, 4096)?
                as usize,
            max_queue: s.max_queue.unwrap_or(256).min(1 << 20) as usize,
            max_body_bytes: positive(
                &s.max_body_bytes,
                "max-body-bytes",
                8 * 1024 * 1024,
                MAX_BODY_CEILING,
            )? as usize,
            request_timeout: Duration::from_millis(positive(
                &s.request_timeout_ms,
                "request-timeout-ms",
                30_000,
                3_600_000,
            )?),
            shutdown_grace: Duration::from_millis(s.shutdown_grace_ms.unwrap_or(30_000)),
            state_dir: resolve(s.state_dir.as_deref().unwrap_or(".cairn/serve")),
            postgres: s.postgres.filter(|url| !url.is_empty()),
            lease: Duration::from_millis(positive(&s.lease_ms, "lease-ms", 15_000, 3_600_000)?),
            replica: s.replica.unwrap_or_else(default_replica),
            metrics_token: match &s.metrics_token_sha256 {
                None => None,
                Some(hash) => Some(parse_sha256(hash.get_ref()).ok_or_else(|| {
                    at(
                        hash.span(),
                        "`metrics-token-sha256` must be 64 hex digits".to_owned(),
                    )
                })?),
            },
        };
        let mut tenants: Vec<TenantConfig> = Vec::new();
        let mut seen_hashes = BTreeMap::new();
        for tenant in file.tenants {
            let span = tenant.span();
            let tenant = tenant.into_inner();
            let name = tenant.name.get_ref().clone();
            if !valid_name(&name) {
                return Err(at(
                    tenant.name.span(),
                    format!(
                        "tenant name {name:?}: use letters, digits, `-`, `_` or `.` (at most 64)"
                    ),
                ));
            }
            if tenants.iter().any(|t| t.name == name) {
                return Err(at(
                    tenant.name.span(),
                    format!("tenant `{name}` is declared twice"),
                ));
            }
            if tenant.tokens.is_empty() {
                return Err(at(
                    span,
                    format!("tenant `{name}` has no [[tenant.token]]: nobody could call it"),
                ));
            }
            let mut plans = BTreeMap::new();
            for (plan, file) in &tenant.plans {
                if !valid_name(plan) {
                    return Err(at(
                        file.span(),
                        format!("plan name {plan:?}: use letters, digits, `-`, `_` or `.`"),
                    ));
                }
                plans.insert(plan.clone(), resolve(file.get_ref()));
            }
            let mut tokens = Vec::new();
            for token in tenant.tokens {
                let token = token.into_inner();
                let hash = parse_sha256(token.sha256.get_ref()).ok_or_else(|| {
                    at(
                        token.sha256.span(),
                        "`sha256` must be 64 hex digits: the SHA-256 of the token \
                         (`cairn serve --new-token NAME` makes one)"
                            .to_owned(),
                    )
                })?;
                if let Some(other) = seen_hashes.insert(hash, name.clone()) {
                    return Err(at(
                        token.sha256.span(),
                        format!("this token hash is already used by tenant `{other}`"),
                    ));
                }
                if token.identity.is_empty() || token.identity.chars().any(char::is_control) {
                    return Err(at(
                        token.sha256.span(),
                        "`identity` must be a non-empty name without control characters".to_owned(),
                    ));
                }
                tokens.push(TokenConfig {
                    identity: token.identity,
                    sha256: hash,
                    roles: token.roles,
                });
            }
            tenants.push(TenantConfig {
                name,
                plans,
                tokens,
            });
        }
        if tenants.is_empty() {
            return Err(at(
                0..0,
                "no [[tenant]]: declare at least one, with its plans and a token".to_owned(),
            ));
        }
        Ok(ServeConfig {
            path: path.to_owned(),
            server,
            tenants,
        })
    }
}

/// A name that is safe as a file name and in a URL path segment.
pub fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && !name.starts_with('.')
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
}

fn parse_sha256(text: &str) -> Option<[u8; 32]> {
    let bytes = hex::decode(text.trim()).ok()?;
    bytes.try_into().ok()
}

/// The SHA-256 of a bearer token, as stored in the configuration.
pub fn token_sha256(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

/// A new random token (32 bytes from the kernel, URL-safe base64) and its
/// SHA-256 in hex.
pub fn new_token() -> std::io::Result<(String, String)> {
    use base64::Engine as _;
    use std::io::Read as _;
    let mut bytes = [0u8; 32];
    std::fs::File::open("/dev/urandom")?.read_exact(&mut bytes)?;
    let token = format!(
        "cairn_{}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
    );
    let hash = hex::encode(token_sha256(&token));
    Ok((token, hash))
}

fn default_replica() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_owned())
        .unwrap_or_else(|_| "cairn".to_owned());
    format!("{host}-{}", std::process::id())
}

#[cfg(test)]
mod tests {
    use super::*;

    const HASH: &str = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08";

    fn parse(text: &str) -> Result<ServeConfig, ConfigError> {
        ServeConfig::parse(Path::new("/etc/cairn/serve.toml"), text)
    }

    #[test]
    fn defaults_fill_a_minimal_configuration_and_paths_resolve_against_it() {
        let config = parse(&format!(
            "[[tenant]]\nname = \"a\"\nplans = {{ main = \"plans/a.toml\" }}\n\
             [[tenant.token]]\nidentity = \"ci\"\nsha256 = \"{HASH}\"\n"
        ))
        .expect("valid");
        assert_eq!(config.server.listen.to_string(), "127.0.0.1:7878");
        assert_eq!(config.server.max_body_bytes, 8 * 1024 * 1024);
        assert_eq!(
            config.tenants[0].plans["main"],
            Path::new("/etc/cairn/plans/a.toml")
        );
        assert_eq!(config.tenants[0].tokens[0].sha256, token_sha256("test"));
    }

    #[test]
    fn mistakes_are_named_at_their_line_and_column() {
        let err = parse(&format!(
            "[server]\nlisten = \"nowhere\"\n[[tenant]]\nname = \"a\"\n\
             [[tenant.token]]\nidentity = \"ci\"\nsha256 = \"{HASH}\"\n"
        ))
        .expect_err("bad listen");
        assert!(
            err.to_string()
                .starts_with("/etc/cairn/serve.toml:2:10: `listen`"),
            "{err}"
        );
        let err = parse(
            "[[tenant]]\nname = \"a\"\n[[tenant.token]]\nidentity = \"ci\"\nsha256 = \"abc\"\n",
        )
        .expect_err("bad hash");
        assert!(
            err.to_string().contains(":5:10: `sha256` must be 64 hex"),
            "{err}"
        );
        let err = parse("[server]\nlisen = \"x\"\n").expect_err("unknown key");
        assert!(err.to_string().contains(":2:1:"), "{err}");
        let err = parse(&format!(
            "[[tenant]]\nname = \"a\"\n[[tenant.token]]\nidentity = \"ci\"\nsha256 = \"{HASH}\"\n\
             [[tenant]]\nname = \"b\"\n[[tenant.token]]\nidentity = \"ci\"\nsha256 = \"{HASH}\"\n"
        ))
        .expect_err("shared token");
        assert!(
            err.to_string().contains("already used by tenant `a`"),
            "{err}"
        );
    }

    #[test]
    fn a_new_token_hashes_to_the_hash_printed_with_it() {
        let (token, hash) = new_token().expect("urandom");
        assert!(token.starts_with("cairn_") && token.len() > 40);
        assert_eq!(hex::encode(token_sha256(&token)), hash);
    }
}
