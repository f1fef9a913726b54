//! The proxy's client to its upstream: pooled keep-alive HTTP/1.1 (TLS for
//! https), the URI a request is forwarded to, and the start-up probe (a
//! TCP connect within a bound).

use std::time::Duration;

use http::Uri;
use hyper::body::Incoming;
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;

use crate::proxy::config::{ExperimentConfig, Upstream};
use crate::proxy::error::ProxyError;
use crate::proxy::tls;

/// How long the start-up probe waits for a TCP connection.
pub const PROBE_TIMEOUT: Duration = Duration::from_secs(3);

/// How long a forwarded request waits for a connection to the upstream.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// Idle pooled connections are closed after this.
pub const POOL_IDLE_TIMEOUT: Duration = Duration::from_secs(30);

/// The pooled client to one upstream.
#[derive(Clone)]
pub struct UpstreamClient {
    upstream: Upstream,
    client: Client<HttpsConnector<HttpConnector>, Incoming>,
}

impl UpstreamClient {
    pub fn new(config: &ExperimentConfig) -> Result<UpstreamClient, ProxyError> {
        let tls = tls::client_config(config.ca_file.as_deref())?;
        let connector = connector(tls, CONNECT_TIMEOUT);
        let client = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(POOL_IDLE_TIMEOUT)
            .pool_timer(hyper_util::rt::TokioTimer::new())
            .build(connector);
        Ok(UpstreamClient {
            upstream: config.upstream.clone(),
            client,
        })
    }

    pub fn upstream(&self) -> &Upstream {
        &self.upstream
    }

    /// The upstream URI for a client's path and query (the base path
    /// first).
    pub fn uri_for(&self, path: &str, query: Option<&str>) -> Result<Uri, http::Error> {
        let mut path_and_query = String::with_capacity(
            self.upstream.base_path.len() + path.len() + query.map_or(0, |q| q.len() + 1),
        );
        path_and_query.push_str(&self.upstream.base_path);
        if !path.starts_with('/') {
            path_and_query.push('/');
        }
        path_and_query.push_str(path);
        if let Some(query) = query {
            path_and_query.push('?');
            path_and_query.push_str(query);
        }
        Uri::builder()
            .scheme(self.upstream.scheme.as_str())
            .authority(self.upstream.authority())
            .path_and_query(path_and_query)
            .build()
    }

    pub async fn send(
        &self,
        request: http::Request<Incoming>,
    ) -> Result<http::Response<Incoming>, hyper_util::client::legacy::Error> {
        self.client.request(request).await
    }
}

/// The connector of cairn's HTTP clients (this proxy's upstream client and
/// the rollout webhooks): http, or https with `tls`, HTTP/1.1, no Nagle, a
/// connect timeout.
pub(crate) fn connector(
    tls: rustls::ClientConfig,
    connect_timeout: Duration,
) -> HttpsConnector<HttpConnector> {
    let mut http = HttpConnector::new();
    http.enforce_http(false);
    http.set_nodelay(true);
    http.set_connect_timeout(Some(connect_timeout));
    hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config(tls)
        .https_or_http()
        .enable_http1()
        .wrap_connector(http)
}

/// Checks that the upstream accepts a TCP connection within `bound`.
pub async fn probe(upstream: &Upstream, bound: Duration) -> Result<(), ProxyError> {
    let address = upstream.authority();
    let unreachable =
        |reason: String, source: Option<std::io::Error>| ProxyError::UpstreamUnreachable {
            address: address.clone(),
            reason,
            source,
        };
    let connect = async {
        let addresses: Vec<_> = tokio::net::lookup_host((upstream.host.as_str(), upstream.port))
            .await
            .map_err(|err| unreachable(format!("cannot resolve {}", upstream.host), Some(err)))?
            .collect();
        let mut last_error = None;
        for address in &addresses {
            match tokio::net::TcpStream::connect(address).await {
                Ok(_) => return Ok(()),
                Err(err) => last_error = Some(err),
            }
        }
        Err(match last_error {
            Some(err) => unreachable(format!("TCP connect failed ({})", err.kind()), Some(err)),
            None => unreachable("the name resolved to no address".to_owned(), None),
        })
    };
    match tokio::time::timeout(bound, connect).await {
        Ok(result) => result,
        Err(_) => Err(unreachable(
            format!("no TCP connection within {} ms", bound.as_millis()),
            None,
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn client(url: &str) -> UpstreamClient {
        let config = ExperimentConfig::new(
            "t",
            "127.0.0.1:0".parse().unwrap(),
            Upstream::parse(url).unwrap(),
            Duration::from_secs(1),
        );
        UpstreamClient::new(&config).unwrap()
    }

    #[test]
    fn forwarded_uris_keep_the_base_path_and_the_query() {
        let plain = client("http://127.0.0.1:8080");
        assert_eq!(
            plain
                .uri_for("/orders/1", Some("a=1&b"))
                .unwrap()
                .to_string(),
            "http://127.0.0.1:8080/orders/1?a=1&b"
        );
        let based = client("https://orders.internal:8443/api/v1/");
        assert_eq!(
            based.uri_for("/orders", None).unwrap().to_string(),
            "https://orders.internal:8443/api/v1/orders"
        );
        assert_eq!(
            based.uri_for("/", None).unwrap().to_string(),
            "https://orders.internal:8443/api/v1/"
        );
    }

    #[tokio::test]
    async fn a_probe_of_a_closed_port_names_the_address() {
        let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let address = closed.local_addr().unwrap();
        drop(closed);
        let upstream = Upstream::parse(&format!("http://{address}")).unwrap();
        let err = probe(&upstream, PROBE_TIMEOUT).await.unwrap_err();
        let text = err.to_string();
        assert!(
            text.contains(&address.to_string()) && text.contains("TCP connect failed"),
            "{text}"
        );
    }
}
