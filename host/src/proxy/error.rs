//! [`ProxyError`]: what can stop an experiment from starting, or a decision
//! log from being read, each saying what and where.

use std::net::SocketAddr;
use std::path::PathBuf;

/// Why an experiment could not start (nothing is left running), or a
/// decision log could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ProxyError {
    /// A setting of the experiment is out of range or malformed.
    #[error("invalid experiment config: `{field}`: {reason}")]
    InvalidConfig { field: String, reason: String },

    /// The upstream did not accept a TCP connection within the probe's
    /// bound.
    #[error("upstream {address} is unreachable: {reason}")]
    UpstreamUnreachable {
        address: String,
        reason: String,
        #[source]
        source: Option<std::io::Error>,
    },

    /// A listener (the proxy's or the admin endpoint's) could not be bound.
    #[error("cannot listen on {address}: {reason}")]
    Bind {
        address: SocketAddr,
        reason: String,
        #[source]
        source: std::io::Error,
    },

    /// The extra CA file for a private upstream cannot be used.
    #[error("CA file {}: {reason}", path.display())]
    CaFile { path: PathBuf, reason: String },

    /// The TLS client could not be set up.
    #[error("TLS setup for the upstream failed: {reason}")]
    Tls { reason: String },

    /// The decision log cannot be created or written.
    #[error("decision log {} is not writable: {source}", path.display())]
    LogUnwritable {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    /// A decision log cannot be read back.
    #[error("decision log {}: line {line}: {reason}", path.display())]
    LogUnreadable {
        path: PathBuf,
        /// 1-based line; 0 when the file itself cannot be read.
        line: usize,
        reason: String,
    },
}

impl ProxyError {
    pub(crate) fn config(field: impl Into<String>, reason: impl Into<String>) -> ProxyError {
        ProxyError::InvalidConfig {
            field: field.into(),
            reason: reason.into(),
        }
    }

    pub(crate) fn bind(address: SocketAddr, source: std::io::Error) -> ProxyError {
        let reason = match source.kind() {
            std::io::ErrorKind::AddrInUse => {
                "the address is already in use (another process listens on it)".to_owned()
            }
            std::io::ErrorKind::AddrNotAvailable => {
                "the address is not available on this machine".to_owned()
            }
            std::io::ErrorKind::PermissionDenied => "permission denied".to_owned(),
            _ => source.to_string(),
        };
        ProxyError::Bind {
            address,
            reason,
            source,
        }
    }
}
