//! TLS towards the upstream: rustls (ring provider) trusting the public
//! CAs of webpki-roots, plus the certificates of an optional CA file (PEM)
//! for a private upstream.

use std::path::Path;
use std::sync::Arc;

use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;

use crate::proxy::error::ProxyError;

/// The client config for https upstreams.
pub fn client_config(ca_file: Option<&Path>) -> Result<rustls::ClientConfig, ProxyError> {
    let mut roots = rustls::RootCertStore::empty();
    roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    if let Some(path) = ca_file {
        for certificate in read_ca_file(path)? {
            roots.add(certificate).map_err(|err| ProxyError::CaFile {
                path: path.to_owned(),
                reason: format!("a certificate is not a usable CA: {err}"),
            })?;
        }
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|err| ProxyError::Tls {
            reason: err.to_string(),
        })?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(config)
}

/// Every certificate of a PEM file; at least one.
pub fn read_ca_file(path: &Path) -> Result<Vec<CertificateDer<'static>>, ProxyError> {
    let bytes = crate::runtime::input::read_limited(
        path,
        "CA file",
        crate::runtime::input::MAX_CA_FILE_BYTES,
    )
    .map_err(|err| ProxyError::CaFile {
        path: path.to_owned(),
        reason: format!("cannot be read: {err}"),
    })?;
    let certificates = CertificateDer::pem_slice_iter(&bytes)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|err| ProxyError::CaFile {
            path: path.to_owned(),
            reason: format!("is not valid PEM: {err}"),
        })?;
    if certificates.is_empty() {
        return Err(ProxyError::CaFile {
            path: path.to_owned(),
            reason: "holds no PEM certificate (`-----BEGIN CERTIFICATE-----`)".to_owned(),
        });
    }
    Ok(certificates)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_or_empty_ca_file_is_a_clear_error() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("missing.pem");
        let err = client_config(Some(&missing)).unwrap_err().to_string();
        assert!(
            err.contains("missing.pem") && err.contains("cannot be read"),
            "{err}"
        );
        let empty = dir.path().join("empty.pem");
        std::fs::write(&empty, "not a certificate\n").unwrap();
        let err = client_config(Some(&empty)).unwrap_err().to_string();
        assert!(err.contains("no PEM certificate"), "{err}");
        assert!(client_config(None).is_ok());
    }
}
