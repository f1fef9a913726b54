//! End-to-end tests of the proxy with closure deciders (no plugin): a
//! small upstream and raw HTTP/1.1 clients on 127.0.0.1, so resets, hangs
//! and short bodies are seen exactly as a client sees them.

use std::collections::BTreeSet;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use crate::proxy::stats::SkipReason;
use crate::proxy::{
    DecideOutcome, Experiment, ExperimentConfig, FnDecider, StopReason, Upstream,
    read_decision_log, replay,
};
use crate::runtime::inject::{AbortResponse, Action, BodyFaults, Decision, RequestInfo};

fn body_of(size: usize) -> Vec<u8> {
    (0..size).map(|i| b'a' + (i % 26) as u8).collect()
}

fn size_param(query: Option<&str>) -> usize {
    query
        .and_then(|q| q.strip_prefix("size="))
        .and_then(|n| n.parse().ok())
        .unwrap_or(100)
}

/// A body of unknown length (chunked on the wire).
struct Unsized(Option<Bytes>);

impl http_body::Body for Unsized {
    type Data = Bytes;
    type Error = Infallible;
    fn poll_frame(
        self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<http_body::Frame<Bytes>, Infallible>>> {
        std::task::Poll::Ready(
            self.get_mut()
                .0
                .take()
                .map(|b| Ok(http_body::Frame::data(b))),
        )
    }
}

/// `/ok?size=N` (content-length), `/chunked?size=N`, `/echo` (request head
/// as text), `/slow` (300 ms), anything else `ok`.
async fn upstream() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            tokio::spawn(async move {
                let service =
                    hyper::service::service_fn(|request: http::Request<Incoming>| async move {
                        let path = request.uri().path().to_owned();
                        let query = request.uri().query().map(str::to_owned);
                        let body: http_body_util::combinators::UnsyncBoxBody<Bytes, Infallible> =
                            match path.as_str() {
                                "/ok" => {
                                    Full::new(Bytes::from(body_of(size_param(query.as_deref()))))
                                        .boxed_unsync()
                                }
                                "/chunked" => Unsized(Some(Bytes::from(body_of(size_param(
                                    query.as_deref(),
                                )))))
                                .boxed_unsync(),
                                "/echo" => {
                                    let mut text =
                                        format!("{} {}\n", request.method(), request.uri());
                                    for (name, value) in request.headers() {
                                        text.push_str(&format!(
                                            "{name}: {}\n",
                                            value.to_str().unwrap_or("?")
                                        ));
                                    }
                                    Full::new(Bytes::from(text)).boxed_unsync()
                                }
                                "/slow" => {
                                    tokio::time::sleep(Duration::from_millis(300)).await;
                                    Full::new(Bytes::from_static(b"slow")).boxed_unsync()
                                }
                                _ => Full::new(Bytes::from_static(b"ok")).boxed_unsync(),
                            };
                        Ok::<_, Infallible>(http::Response::new(body))
                    });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    addr
}

fn config(upstream: SocketAddr) -> ExperimentConfig {
    let mut config = ExperimentConfig::new(
        "unit",
        "127.0.0.1:0".parse().unwrap(),
        Upstream::parse(&format!("http://{upstream}")).unwrap(),
        Duration::from_secs(3),
    );
    config.seed = 7;
    config
}

/// What a raw client saw.
#[derive(Debug)]
struct Seen {
    status: Option<u16>,
    head: String,
    body: Vec<u8>,
    error: Option<std::io::ErrorKind>,
    elapsed: Duration,
}

/// Sends one request on a fresh connection and reads until the server
/// closes it (or fails).
async fn send(addr: SocketAddr, method: &str, path: &str, headers: &[(&str, &str)]) -> Seen {
    let started = Instant::now();
    let mut stream = TcpStream::connect(addr).await.unwrap();
    let mut request = format!("{method} {path} HTTP/1.1\r\nhost: test\r\nconnection: close\r\n");
    for (name, value) in headers {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    request.push_str("\r\n");
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut bytes = Vec::new();
    let mut buf = [0u8; 8192];
    let error = loop {
        match stream.read(&mut buf).await {
            Ok(0) => break None,
            Ok(n) => bytes.extend_from_slice(&buf[..n]),
            Err(err) => break Some(err.kind()),
        }
    };
    let split = bytes
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map(|p| p + 4);
    let (head, body) = match split {
        Some(at) => (
            String::from_utf8_lossy(&bytes[..at]).into_owned(),
            bytes[at..].to_vec(),
        ),
        None => (String::from_utf8_lossy(&bytes).into_owned(), Vec::new()),
    };
    let status = head.split(' ').nth(1).and_then(|s| s.parse().ok());
    Seen {
        status,
        head,
        body,
        error,
        elapsed: started.elapsed(),
    }
}

async fn get(addr: SocketAddr, path: &str) -> Seen {
    send(addr, "GET", path, &[]).await
}

fn decided(decision: Decision) -> DecideOutcome {
    DecideOutcome::Decided(decision)
}

fn abort(status: u16) -> Decision {
    Decision {
        action: Action::Abort(AbortResponse {
            status,
            headers: vec![("retry-after".into(), "1".into())],
            body: Some(b"injected".to_vec()),
        }),
        ..Decision::PASS
    }
}

async fn within<F: std::future::Future>(future: F) -> F::Output {
    tokio::time::timeout(Duration::from_secs(20), future)
        .await
        .expect("the test finished within its bound")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn aborts_resets_hangs_and_nonstandard_statuses_reach_the_client_as_decided() {
    within(async {
        let decider = FnDecider::new("by-path", |request: &RequestInfo| {
            decided(match request.path.as_str() {
                "/abort" => abort(520),
                "/abort-299" => abort(299),
                "/early" => abort(103),
                "/reset" => Decision {
                    action: Action::Reset,
                    ..Decision::PASS
                },
                "/hang" => Decision {
                    action: Action::Hang { millis: 60_000 },
                    ..Decision::PASS
                },
                _ => Decision::PASS,
            })
        });
        let mut config = config(upstream().await);
        config.envelope.max_hang = Duration::from_millis(300);
        let experiment = Experiment::start(config, Arc::new(decider)).await.unwrap();
        let addr = experiment.local_addr();

        let seen = get(addr, "/abort").await;
        assert_eq!(seen.status, Some(520), "{seen:?}");
        assert_eq!(seen.body, b"injected");
        assert!(
            seen.head.to_ascii_lowercase().contains("retry-after: 1"),
            "{}",
            seen.head
        );
        assert_eq!(get(addr, "/abort-299").await.status, Some(299));

        // 1xx cannot be a final response: the head alone, then a close.
        let seen = get(addr, "/early").await;
        assert_eq!(seen.status, Some(103), "{seen:?}");
        assert!(seen.body.is_empty());

        let seen = get(addr, "/reset").await;
        assert_eq!(
            seen.error,
            Some(std::io::ErrorKind::ConnectionReset),
            "{seen:?}"
        );
        assert_eq!(seen.status, None);

        // Hang: capped at max_hang (300 ms), then closed without a byte.
        let seen = get(addr, "/hang").await;
        assert_eq!((seen.status, seen.error), (None, None), "{seen:?}");
        assert!(seen.head.is_empty());
        assert!(seen.elapsed >= Duration::from_millis(290), "{seen:?}");
        assert!(seen.elapsed < Duration::from_secs(3), "{seen:?}");

        let seen = get(addr, "/ok?size=10").await;
        assert_eq!((seen.status, seen.body.clone()), (Some(200), body_of(10)));

        experiment
            .stop_handle()
            .stop(StopReason::Stopped { by: "test".into() });
        let report = experiment.finish().await;
        let stats = &report.stats;
        assert_eq!(stats.requests, 6);
        assert_eq!(stats.fault_count("abort"), 3);
        assert_eq!(stats.fault_count("reset"), 1);
        assert_eq!(stats.fault_count("hang"), 1);
        assert_eq!(stats.faulted, 5);
        assert_eq!(stats.status_count(520), 1);
        assert_eq!(stats.status_count(299), 1);
        assert_eq!(stats.ends.get("reset"), Some(&1));
        // 520, reset, hang and the 103 close are errors to a client.
        assert_eq!(stats.client_errors, 4);
        assert_eq!(
            report.stop_reason,
            StopReason::Stopped { by: "test".into() }
        );
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn body_faults_truncate_corrupt_and_throttle_what_the_client_receives() {
    within(async {
        let decider = FnDecider::new("bodies", |request: &RequestInfo| {
            let body = match request.path.as_str() {
                "/ok" if request.query.as_deref() == Some("size=1000") => BodyFaults {
                    truncate_after_bytes: Some(100),
                    ..BodyFaults::default()
                },
                "/chunked" => BodyFaults {
                    truncate_after_bytes: Some(50),
                    ..BodyFaults::default()
                },
                "/ok" if request.query.as_deref() == Some("size=2000") => BodyFaults {
                    corrupt_bytes: Some(5),
                    ..BodyFaults::default()
                },
                "/ok" => BodyFaults {
                    throttle_bytes_per_second: Some(2000),
                    ..BodyFaults::default()
                },
                _ => BodyFaults::default(),
            };
            decided(Decision {
                body,
                ..Decision::PASS
            })
        });
        let experiment = Experiment::start(config(upstream().await), Arc::new(decider))
            .await
            .unwrap();
        let addr = experiment.local_addr();

        let seen = get(addr, "/ok?size=1000").await;
        assert_eq!(seen.status, Some(200));
        assert!(seen.head.contains("content-length: 1000"), "{}", seen.head);
        assert_eq!(seen.body, body_of(100), "the client sees 100 of 1000 bytes");

        let seen = get(addr, "/chunked?size=500").await;
        assert_eq!(seen.status, Some(200));
        assert!(
            seen.head.contains("transfer-encoding: chunked"),
            "{}",
            seen.head
        );
        let text = String::from_utf8_lossy(&seen.body).into_owned();
        assert!(
            !text.ends_with("0\r\n\r\n"),
            "a chunked body cut short has no last chunk: {text:?}"
        );

        let original = body_of(2000);
        let seen = get(addr, "/ok?size=2000").await;
        assert_eq!(seen.body.len(), 2000);
        let flipped = (0..2000).filter(|&i| seen.body[i] != original[i]).count();
        assert_eq!(flipped, 5);

        let seen = get(addr, "/ok?size=600").await;
        assert_eq!(seen.body, body_of(600));
        // 600 bytes at 2000 B/s in 200-byte pieces: due at 0, 100, 200 ms.
        assert!(seen.elapsed >= Duration::from_millis(190), "{seen:?}");

        experiment
            .stop_handle()
            .stop(StopReason::Stopped { by: "test".into() });
        let report = experiment.finish().await;
        let stats = &report.stats;
        assert_eq!(stats.fault_count("truncate"), 2);
        assert_eq!(stats.fault_count("corrupt"), 1);
        assert_eq!(stats.fault_count("throttle"), 1);
        assert_eq!(stats.ends.get("truncated"), Some(&2));
        assert_eq!(stats.client_errors, 2);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_concurrency_cap_is_never_exceeded() {
    within(async {
        let decider = FnDecider::new("slow", |_: &RequestInfo| {
            decided(Decision {
                delay_request_ms: 300,
                ..Decision::PASS
            })
        });
        let mut config = config(upstream().await);
        config.envelope.max_concurrent_faults = 2;
        let experiment = Experiment::start(config, Arc::new(decider)).await.unwrap();
        let addr = experiment.local_addr();
        let requests: Vec<_> = (0..8)
            .map(|_| tokio::spawn(async move { get(addr, "/ok?size=10").await }))
            .collect();
        for request in requests {
            assert_eq!(request.await.unwrap().status, Some(200));
        }
        experiment
            .stop_handle()
            .stop(StopReason::Stopped { by: "test".into() });
        let report = experiment.finish().await;
        assert_eq!(report.stats.max_active_faults, 2);
        assert_eq!(report.stats.fault_count("delay"), 2);
        assert_eq!(report.stats.skipped_count(SkipReason::Concurrency), 6);
        assert_eq!(report.stats.active_faults, 0);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_decider_never_breaks_traffic_and_stops_injection_past_its_cap() {
    within(async {
        let decider = FnDecider::new("broken", |_: &RequestInfo| DecideOutcome::Failed {
            kind: "trap".into(),
            message: "boom".into(),
        });
        let mut config = config(upstream().await);
        config.envelope.max_plugin_failures = 3;
        let experiment = Experiment::start(config, Arc::new(decider)).await.unwrap();
        let addr = experiment.local_addr();
        for _ in 0..5 {
            let seen = get(addr, "/ok?size=64").await;
            assert_eq!((seen.status, seen.body), (Some(200), body_of(64)));
        }
        assert_eq!(
            experiment.stop_reason(),
            Some(StopReason::PluginFailures { count: 3 })
        );
        // Still proxying until finish.
        assert_eq!(get(addr, "/ok?size=8").await.body, body_of(8));
        let report = experiment.finish().await;
        assert_eq!(report.stats.plugin_failures, 3);
        assert_eq!(report.stats.plugin_failures_by_kind.get("trap"), Some(&3));
        assert_eq!(report.stats.decided, 3);
        assert_eq!(report.stats.skipped_count(SkipReason::Stopped), 3);
        assert_eq!(report.stats.faulted, 0);
        assert_eq!(report.stats.client_errors, 0);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stop_cuts_delays_short_and_nothing_is_faulted_after_it() {
    within(async {
        let decider = FnDecider::new("slow", |_: &RequestInfo| {
            decided(Decision {
                delay_request_ms: 10_000,
                ..Decision::PASS
            })
        });
        let experiment = Experiment::start(config(upstream().await), Arc::new(decider))
            .await
            .unwrap();
        let addr = experiment.local_addr();
        let handle = experiment.stop_handle();
        let in_flight = tokio::spawn(async move { get(addr, "/ok?size=10").await });
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert!(handle.stop(StopReason::Stopped { by: "test".into() }));
        let seen = in_flight.await.unwrap();
        assert_eq!(seen.status, Some(200));
        assert!(seen.elapsed < Duration::from_secs(2), "{seen:?}");
        let after = get(addr, "/ok?size=10").await;
        assert!(after.elapsed < Duration::from_secs(1), "{after:?}");
        let report = experiment.finish().await;
        assert_eq!(report.stats.decided, 1);
        assert_eq!(report.stats.skipped_count(SkipReason::Stopped), 1);
        assert_eq!(report.stats.fault_count("delay"), 1);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_admin_endpoint_reports_status_and_stops_the_experiment() {
    within(async {
        let decider = FnDecider::new("pass", |_: &RequestInfo| decided(Decision::PASS));
        let mut config = config(upstream().await);
        config.admin_listen = Some("127.0.0.1:0".parse().unwrap());
        let experiment = Experiment::start(config, Arc::new(decider)).await.unwrap();
        let admin = experiment.admin_addr().unwrap();
        get(experiment.local_addr(), "/ok").await;
        let status = get(admin, "/status").await;
        assert_eq!(status.status, Some(200));
        let json: serde_json::Value = serde_json::from_slice(&status.body).unwrap();
        assert_eq!(json["state"], "running");
        assert_eq!(json["stats"]["requests"], 1);
        assert_eq!(get(admin, "/stop").await.status, Some(405));
        assert_eq!(get(admin, "/nope").await.status, Some(404));
        let stopped = send(admin, "POST", "/stop", &[("content-length", "0")]).await;
        assert_eq!(stopped.status, Some(200), "{stopped:?}");
        let report = experiment.finish().await;
        assert_eq!(
            report.stop_reason,
            StopReason::Stopped { by: "admin".into() }
        );
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_guardrail_breach_stops_the_experiment_with_the_window_figures() {
    within(async {
        let decider = FnDecider::new("fail", |_: &RequestInfo| decided(abort(503)));
        let mut config = config(upstream().await);
        config.guardrails.min_requests = 5;
        config.guardrails.max_error_rate = Some(0.5);
        let experiment = Experiment::start(config, Arc::new(decider)).await.unwrap();
        let addr = experiment.local_addr();
        for _ in 0..5 {
            assert_eq!(get(addr, "/ok").await.status, Some(503));
        }
        // The breach stopped the faults: the next request is forwarded.
        assert_eq!(get(addr, "/ok?size=3").await.body, body_of(3));
        let report = experiment.finish().await;
        assert_eq!(report.breaches.len(), 1);
        let breach = &report.breaches[0];
        assert_eq!(breach.guardrail, "error-rate");
        assert_eq!(
            (breach.observed, breach.limit, breach.window_requests),
            (1.0, 0.5, 5)
        );
        assert_eq!(
            report.stop_reason,
            StopReason::GuardrailBreach(breach.clone())
        );
        assert_eq!(report.metric("guardrail-breaches"), Some(1.0));
        assert_eq!(report.metric("error-rate"), Some(5.0 / 6.0));
        assert_eq!(report.metric("status.503"), Some(5.0));
        let json = serde_json::to_value(&report).unwrap();
        assert_eq!(json["stop-reason"]["kind"], "guardrail-breach");
        assert_eq!(json["stop-reason"]["window-requests"], 5);
        let names: Vec<String> = report.metrics().into_iter().map(|(name, _)| name).collect();
        for name in [
            "requests",
            "faulted",
            "faults.abort",
            "faults.delay",
            "client-errors",
            "latency-p50-ms",
            "latency-p90-ms",
            "latency-p99-ms",
            "plugin-failures",
            "logical-requests",
            "attempts-per-request-mean",
            "attempts-per-request-max",
            "retry-amplification",
            "skipped.blast-radius",
            "skipped.route",
            "skipped.protected",
            "skipped.concurrency",
            "skipped.stopped",
        ] {
            assert!(names.iter().any(|n| n == name), "{name} in {names:?}");
        }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn headers_pass_on_redacted_for_the_plugin_and_retries_are_grouped() {
    within(async {
        let seen_by_plugin: Arc<Mutex<Vec<RequestInfo>>> = Arc::default();
        let captured = Arc::clone(&seen_by_plugin);
        let decider = FnDecider::new("capture", move |request: &RequestInfo| {
            captured.lock().unwrap().push(request.clone());
            decided(Decision::PASS)
        });
        let mut config = config(upstream().await);
        config.sensitive_headers = vec!["X-Api-Key".into()];
        let experiment = Experiment::start(config, Arc::new(decider)).await.unwrap();
        let addr = experiment.local_addr();
        let traceparent = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";
        let headers = [
            ("authorization", "Bearer s3cret"),
            ("x-api-key", "k3y"),
            ("traceparent", traceparent),
            ("idempotency-key", "order-1"),
            ("keep-alive", "timeout=5"),
            ("x-private", "drop me"),
            ("connection", "x-private"),
        ];
        let echo = send(addr, "GET", "/echo?x=1", &headers).await;
        let echoed = String::from_utf8_lossy(&echo.body).into_owned();
        assert!(echoed.starts_with("GET /echo?x=1\n"), "{echoed}");
        assert!(echoed.contains("authorization: Bearer s3cret"), "{echoed}");
        assert!(
            echoed.contains(&format!("traceparent: {traceparent}")),
            "{echoed}"
        );
        assert!(!echoed.contains("x-private"), "{echoed}");
        assert!(!echoed.contains("keep-alive"), "{echoed}");
        assert!(
            echoed.contains(&format!("host: {}", experiment_upstream(&echoed))),
            "{echoed}"
        );
        send(addr, "GET", "/echo", &headers).await;
        send(addr, "GET", "/echo", &[]).await;
        experiment
            .stop_handle()
            .stop(StopReason::Stopped { by: "test".into() });
        let report = experiment.finish().await;
        let seen = seen_by_plugin.lock().unwrap();
        assert_eq!(seen.len(), 3);
        let first = &seen[0];
        assert_eq!(
            (first.path.as_str(), first.query.as_deref()),
            ("/echo", Some("x=1"))
        );
        let value = |name: &str| {
            first
                .headers
                .iter()
                .find(|(n, _)| n == name)
                .map(|(_, v)| v.as_str())
        };
        assert_eq!(value("authorization"), Some("[redacted]"));
        assert_eq!(value("x-api-key"), Some("[redacted]"));
        assert_eq!(value("traceparent"), Some(traceparent));
        assert_eq!(
            seen.iter().map(|r| r.attempt).collect::<Vec<_>>(),
            [1, 2, 1]
        );
        assert_eq!(
            seen.iter().map(|r| r.sequence).collect::<Vec<_>>(),
            [0, 1, 2]
        );
        assert_eq!(report.stats.logical_requests, 2);
        assert_eq!(report.stats.attempts_max, 2);
        assert_eq!(report.metric("attempts-per-request-mean"), Some(1.5));
        assert!(report.metric("retry-gap-min-ms").is_some());
    })
    .await;
}

/// The `host` the upstream saw: the upstream's own authority.
fn experiment_upstream(echoed: &str) -> String {
    echoed
        .lines()
        .find_map(|line| line.strip_prefix("host: "))
        .unwrap_or_default()
        .to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_envelope_decides_who_the_plugin_hears_of_and_the_log_replays() {
    within(async {
        let dir = tempfile::tempdir().unwrap();
        let log_path = dir.path().join("decisions.jsonl");
        let decide = |request: &RequestInfo| {
            decided(if request.random.is_multiple_of(3) {
                abort(503)
            } else {
                Decision::PASS
            })
        };
        let mut config = config(upstream().await);
        config.envelope.blast_radius_percent = 50.0;
        config.envelope.protected_paths = vec!["/health".into()];
        config.envelope.routes = vec![crate::proxy::RouteMatch {
            methods: vec!["GET".into()],
            path: "/ok/**".into(),
            header: None,
        }];
        config.decision_log = Some(log_path.clone());
        let seed = config.seed;
        let experiment = Experiment::start(config, Arc::new(FnDecider::new("thirds", decide)))
            .await
            .unwrap();
        let addr = experiment.local_addr();
        let mut expected_decided = 0;
        for sequence in 0..40u64 {
            get(addr, "/ok").await;
            if crate::proxy::seed::inside_blast_radius(seed, sequence, 50.0) {
                expected_decided += 1;
            }
        }
        for path in ["/health", "/other"] {
            get(addr, path).await;
        }
        experiment
            .stop_handle()
            .stop(StopReason::Stopped { by: "test".into() });
        let report = experiment.finish().await;
        assert_eq!(report.stats.decided, expected_decided);
        assert_eq!(
            report.stats.skipped_count(SkipReason::BlastRadius),
            40 - expected_decided
        );
        assert_eq!(
            report.stats.skipped_count(SkipReason::Protected),
            0,
            "no route matches /health"
        );
        assert_eq!(report.stats.skipped_count(SkipReason::Route), 2);
        assert_eq!(report.decision_log_error, None);

        let log = read_decision_log(&log_path).unwrap();
        assert_eq!(log.header.seed, seed);
        assert_eq!(log.header.plugin.name, "thirds");
        assert_eq!(log.events.len() as u64, expected_decided);
        let aborted = log.events.iter().filter(|e| e.applied == ["abort"]).count() as u64;
        assert_eq!(aborted, report.stats.fault_count("abort"));
        assert!(log.events.iter().all(|e| e.route == "GET /ok"));
        let again = replay(&log, &FnDecider::new("thirds", decide)).await;
        assert_eq!(
            (again.replayed, again.identical),
            (expected_decided, expected_decided)
        );
        let other = replay(
            &log,
            &FnDecider::new("pass", |_: &RequestInfo| decided(Decision::PASS)),
        )
        .await;
        assert_eq!(other.differences.len() as u64, aborted);
        let sequences: BTreeSet<u64> = log.events.iter().map(|e| e.sequence).collect();
        assert_eq!(sequences.len() as u64, expected_decided);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn start_errors_are_clear_and_leave_nothing_running() {
    within(async {
        let pass = || {
            Arc::new(FnDecider::new("pass", |_: &RequestInfo| {
                decided(Decision::PASS)
            }))
        };
        // An upstream that is down.
        let closed = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let down = closed.local_addr().unwrap();
        drop(closed);
        let err = Experiment::start(config(down), pass()).await.err().unwrap();
        let text = err.to_string();
        assert!(
            text.contains(&down.to_string()) && text.contains("unreachable"),
            "{text}"
        );

        // A port in use.
        let up = upstream().await;
        let taken = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let mut busy = config(up);
        busy.listen = taken.local_addr().unwrap();
        let err = Experiment::start(busy.clone(), pass()).await.err().unwrap();
        let text = err.to_string();
        assert!(
            text.contains(&busy.listen.to_string()) && text.contains("already in use"),
            "{text}"
        );

        // The admin port in use: the proxy's listener is released again.
        let mut admin_busy = config(up);
        let free = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let free_addr = free.local_addr().unwrap();
        drop(free);
        admin_busy.listen = free_addr;
        admin_busy.admin_listen = Some(taken.local_addr().unwrap());
        assert!(Experiment::start(admin_busy, pass()).await.is_err());
        assert!(
            TcpListener::bind(free_addr).await.is_ok(),
            "nothing left listening"
        );

        let mut public = config(up);
        public.listen = "0.0.0.0:0".parse().unwrap();
        let err = Experiment::start(public, pass()).await.err().unwrap();
        assert!(err.to_string().contains("loopback"), "{err}");
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_duration_ends_the_experiment() {
    within(async {
        let decider = FnDecider::new("fail", |_: &RequestInfo| decided(abort(503)));
        let mut config = config(upstream().await);
        config.duration = Duration::from_millis(300);
        let experiment = Experiment::start(config, Arc::new(decider)).await.unwrap();
        let addr = experiment.local_addr();
        assert_eq!(get(addr, "/ok").await.status, Some(503));
        tokio::time::sleep(Duration::from_millis(350)).await;
        assert_eq!(get(addr, "/ok").await.status, Some(200));
        let report = experiment.finish().await;
        assert_eq!(report.stop_reason, StopReason::DurationElapsed);
        assert_eq!(report.stats.faulted, 1);
        assert_eq!(report.stats.skipped_count(SkipReason::Stopped), 1);
    })
    .await;
}
