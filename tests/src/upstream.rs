//! A small real upstream for the fault-proxy tests: a hyper server on
//! 127.0.0.1 (port 0), plain or TLS with a certificate from a throwaway
//! rcgen CA, with a few routes:
//!
//! - `/ok?size=N`: N bytes of [`ok_body`] with a `content-length`
//!   (default 1024); `/ok/chunked?size=N`: the same, chunked;
//! - `/slow?ms=N`: answers `slow` after N ms (default 200);
//! - `/health`: `ok`;
//! - `/echo`: the request's method, path and headers as text lines
//!   (`name: value`), to check what the proxy passes on;
//! - anything else: 404.
//!
//! It counts the requests it receives.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use http_body_util::combinators::UnsyncBoxBody;
use hyper::body::{Body, Frame, Incoming, SizeHint};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

/// The body `/ok?size=N` answers with: `abc...xyzabc...`, N bytes.
pub fn ok_body(size: usize) -> Vec<u8> {
    (0..size).map(|i| b'a' + (i % 26) as u8).collect()
}

/// A running test upstream; stops when dropped.
pub struct TestUpstream {
    addr: SocketAddr,
    tls: Option<TestCa>,
    requests: Arc<AtomicU64>,
    task: JoinHandle<()>,
}

/// The throwaway CA of a TLS upstream.
pub struct TestCa {
    /// The CA certificate, PEM.
    pub ca_pem: String,
}

impl TestUpstream {
    /// A plain HTTP upstream.
    pub async fn plain() -> TestUpstream {
        Self::start(None).await
    }

    /// An HTTPS upstream for `localhost` and `127.0.0.1`, its certificate
    /// signed by a fresh CA (see [`TestUpstream::ca_pem`]).
    pub async fn tls() -> TestUpstream {
        let (ca_pem, server_config) = tls_config();
        Self::start(Some((ca_pem, server_config))).await
    }

    async fn start(tls: Option<(String, rustls::ServerConfig)>) -> TestUpstream {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("test upstream binds");
        let addr = listener.local_addr().expect("test upstream has an address");
        let requests = Arc::new(AtomicU64::new(0));
        let acceptor = tls
            .as_ref()
            .map(|(_, config)| tokio_rustls::TlsAcceptor::from(Arc::new(config.clone())));
        let counter = Arc::clone(&requests);
        let task = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let counter = Arc::clone(&counter);
                let acceptor = acceptor.clone();
                tokio::spawn(async move {
                    let service = service_fn(move |request| {
                        counter.fetch_add(1, Ordering::Relaxed);
                        route(request)
                    });
                    match acceptor {
                        None => {
                            let _ = http1::Builder::new()
                                .serve_connection(TokioIo::new(stream), service)
                                .await;
                        }
                        Some(acceptor) => {
                            if let Ok(stream) = acceptor.accept(stream).await {
                                let _ = http1::Builder::new()
                                    .serve_connection(TokioIo::new(stream), service)
                                    .await;
                            }
                        }
                    }
                });
            }
        });
        TestUpstream {
            addr,
            tls: tls.map(|(ca_pem, _)| TestCa { ca_pem }),
            requests,
            task,
        }
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:port` or `https://localhost:port`.
    pub fn url(&self) -> String {
        match self.tls {
            None => format!("http://{}", self.addr),
            Some(_) => format!("https://localhost:{}", self.addr.port()),
        }
    }

    /// The CA certificate (PEM) of a TLS upstream.
    pub fn ca_pem(&self) -> Option<&str> {
        self.tls.as_ref().map(|ca| ca.ca_pem.as_str())
    }

    /// Requests received so far.
    pub fn requests_received(&self) -> u64 {
        self.requests.load(Ordering::Relaxed)
    }
}

impl Drop for TestUpstream {
    fn drop(&mut self) {
        self.task.abort();
    }
}

type UpstreamBody = UnsyncBoxBody<Bytes, Infallible>;

fn query_number(request: &Request<Incoming>, name: &str) -> Option<u64> {
    request.uri().query()?.split('&').find_map(|pair| {
        let (key, value) = pair.split_once('=')?;
        (key == name).then(|| value.parse().ok())?
    })
}

async fn route(request: Request<Incoming>) -> Result<Response<UpstreamBody>, Infallible> {
    use http_body_util::BodyExt;
    let full = |bytes: Vec<u8>| Full::new(Bytes::from(bytes)).boxed_unsync();
    let response = match request.uri().path() {
        "/ok" => {
            let size = query_number(&request, "size").unwrap_or(1024) as usize;
            Response::new(full(ok_body(size)))
        }
        "/ok/chunked" => {
            let size = query_number(&request, "size").unwrap_or(1024) as usize;
            Response::new(Chunked::new(ok_body(size), 1000).boxed_unsync())
        }
        "/slow" => {
            let ms = query_number(&request, "ms").unwrap_or(200);
            tokio::time::sleep(Duration::from_millis(ms)).await;
            Response::new(full(b"slow".to_vec()))
        }
        "/health" => Response::new(full(b"ok".to_vec())),
        "/echo" => {
            let mut text = format!("{} {}\n", request.method(), request.uri());
            for (name, value) in request.headers() {
                text.push_str(&format!(
                    "{}: {}\n",
                    name,
                    String::from_utf8_lossy(value.as_bytes())
                ));
            }
            Response::new(full(text.into_bytes()))
        }
        _ => {
            let mut response = Response::new(full(b"not found".to_vec()));
            *response.status_mut() = StatusCode::NOT_FOUND;
            response
        }
    };
    Ok(response)
}

/// A body sent in chunks with no length announced (chunked encoding).
struct Chunked {
    data: Vec<u8>,
    chunk: usize,
    sent: usize,
}

impl Chunked {
    fn new(data: Vec<u8>, chunk: usize) -> Chunked {
        Chunked {
            data,
            chunk: chunk.max(1),
            sent: 0,
        }
    }
}

impl Body for Chunked {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        let this = self.get_mut();
        if this.sent >= this.data.len() {
            return Poll::Ready(None);
        }
        let end = (this.sent + this.chunk).min(this.data.len());
        let piece = Bytes::copy_from_slice(&this.data[this.sent..end]);
        this.sent = end;
        Poll::Ready(Some(Ok(Frame::data(piece))))
    }

    fn size_hint(&self) -> SizeHint {
        // Unknown length: hyper frames it chunked.
        SizeHint::default()
    }
}

/// A fresh CA and a server config whose certificate it signed, for
/// `localhost` and `127.0.0.1`.
fn tls_config() -> (String, rustls::ServerConfig) {
    use rcgen::{
        BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer,
        KeyPair, KeyUsagePurpose,
    };
    let ca_key = KeyPair::generate().expect("CA key");
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "cairn test CA");
    ca_params.key_usages = vec![
        KeyUsagePurpose::DigitalSignature,
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
    ];
    let ca_cert = ca_params.self_signed(&ca_key).expect("CA certificate");
    let issuer = Issuer::new(ca_params, ca_key);
    let server_key = KeyPair::generate().expect("server key");
    let mut params = CertificateParams::new(vec!["localhost".to_owned(), "127.0.0.1".to_owned()])
        .expect("server params");
    params
        .distinguished_name
        .push(DnType::CommonName, "localhost");
    params.use_authority_key_identifier_extension = true;
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    let server_cert = params
        .signed_by(&server_key, &issuer)
        .expect("server certificate");
    let key = rustls::pki_types::PrivateKeyDer::Pkcs8(rustls::pki_types::PrivatePkcs8KeyDer::from(
        server_key.serialize_der(),
    ));
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("TLS versions")
        .with_no_client_auth()
        .with_single_cert(vec![server_cert.der().clone()], key)
        .expect("server TLS config");
    (ca_cert.pem(), config)
}
