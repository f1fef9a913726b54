//! The experiment's loopback admin endpoint: `POST /stop` (the kill
//! switch) and `GET /status` (JSON: state, stop reason, live counts).

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{Method, Request, Response, StatusCode, header};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinSet;

use crate::proxy::server::{Shared, StopReason};

/// Serves the admin endpoint until shutdown.
pub(crate) async fn serve(
    shared: Arc<Shared>,
    listener: TcpListener,
    mut shutdown: watch::Receiver<Option<Duration>>,
) {
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => {
                    let shared = Arc::clone(&shared);
                    connections.spawn(async move {
                        let service = service_fn(move |request| {
                            let shared = Arc::clone(&shared);
                            async move { Ok::<_, Infallible>(respond(&shared, request)) }
                        });
                        let _ = http1::Builder::new()
                            .timer(TokioTimer::new())
                            .header_read_timeout(Duration::from_secs(10))
                            .serve_connection(TokioIo::new(stream), service)
                            .await;
                    });
                }
                Err(err) => {
                    tracing::warn!(error = %err, "accepting an admin client failed");
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            },
            changed = shutdown.changed() => {
                if changed.is_err() || shutdown.borrow().is_some() {
                    break;
                }
            }
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
    connections.shutdown().await;
}

fn respond(shared: &Shared, request: Request<Incoming>) -> Response<Full<Bytes>> {
    match (request.method(), request.uri().path()) {
        (&Method::POST, "/stop") => {
            let stopped_now = shared.stop(StopReason::Stopped {
                by: "admin".to_owned(),
            });
            json(
                StatusCode::OK,
                &serde_json::json!({
                    "stopped": true,
                    "already-stopped": !stopped_now,
                    "stop-reason": shared.stop_reason(),
                }),
            )
        }
        (&Method::GET, "/status") => json(
            StatusCode::OK,
            &serde_json::json!({
                "experiment": shared.config.name,
                "state": if shared.injecting() { "running" } else { "stopped" },
                "stop-reason": shared.stop_reason(),
                "stats": shared.snapshot(),
            }),
        ),
        (_, "/stop") | (_, "/status") => {
            let mut response = json(
                StatusCode::METHOD_NOT_ALLOWED,
                &serde_json::json!({"error": "use POST /stop or GET /status"}),
            );
            let allow = if request.uri().path() == "/stop" {
                "POST"
            } else {
                "GET"
            };
            response
                .headers_mut()
                .insert(header::ALLOW, header::HeaderValue::from_static(allow));
            response
        }
        _ => json(
            StatusCode::NOT_FOUND,
            &serde_json::json!({"error": "not found: use POST /stop or GET /status"}),
        ),
    }
}

fn json(status: StatusCode, value: &serde_json::Value) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(value.to_string())));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("application/json"),
    );
    response
}
