//! The fault proxy end to end: real fault injectors loaded through the
//! host, the workload client (bounded retries and backoff) driving traffic
//! through an experiment to a real upstream (plain and TLS), and exact
//! counts checked on both sides: what the proxy says it did, what the
//! client saw, what the upstream received.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use cairn_host::Limits;
use cairn_host::proxy::stats::SkipReason;
use cairn_host::proxy::{
    Experiment, ExperimentConfig, ExperimentReport, FaultDecider, PluginDecider, RequestTemplate,
    RetryPolicy, RouteMatch, StopReason, Upstream, Workload, WorkloadReport, read_decision_log,
    replay, run_workload, seed,
};
use cairn_tests::upstream::{TestUpstream, ok_body};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::util::{guests, load, within};

/// Outer bound of every test here.
const BOUND: Duration = Duration::from_secs(90);

fn injector(path: &str, config: serde_json::Value) -> Arc<dyn FaultDecider> {
    injector_with(path, &config.to_string(), Limits::default())
}

fn injector_with(path: &str, config: &str, limits: Limits) -> Arc<dyn FaultDecider> {
    Arc::new(PluginDecider::new(load(path), config, limits))
}

/// An experiment on `upstream` (its CA trusted, for TLS) of `duration`.
fn experiment_config(
    upstream: &TestUpstream,
    duration: Duration,
    dir: &tempfile::TempDir,
) -> ExperimentConfig {
    let mut config = ExperimentConfig::new(
        "suite",
        "127.0.0.1:0".parse().unwrap(),
        Upstream::parse(&upstream.url()).unwrap(),
        duration,
    );
    config.seed = 20_240_601;
    if let Some(pem) = upstream.ca_pem() {
        let path = dir.path().join("ca.pem");
        std::fs::write(&path, pem).unwrap();
        config.ca_file = Some(path);
    }
    config.decision_log = Some(dir.path().join("decisions.jsonl"));
    config
}

fn retry_policy() -> RetryPolicy {
    RetryPolicy {
        max_attempts: 3,
        backoff_initial: Duration::from_millis(20),
        backoff_max: Duration::from_millis(80),
        retry_on: vec![429, 502, 503, 504],
        attempt_timeout: Duration::from_secs(1),
    }
}

fn workload(paths: &[&str], rate: f64, duration: Duration) -> Workload {
    Workload {
        rate_per_second: rate,
        duration,
        concurrency: 8,
        requests: paths.iter().map(|p| RequestTemplate::get(*p)).collect(),
        retry: retry_policy(),
        idempotency_header: "idempotency-key".to_owned(),
    }
}

/// Counts the client, the proxy and the upstream must agree on.
fn assert_sides_agree(client: &WorkloadReport, report: &ExperimentReport, upstream: &TestUpstream) {
    let stats = &report.stats;
    assert_eq!(
        client.attempts, stats.requests,
        "attempts: client {client:?} proxy {stats:?}"
    );
    assert_eq!(client.logical_requests, stats.logical_requests);
    assert_eq!(client.successes + client.failures, client.logical_requests);
    assert_eq!(upstream.requests_received(), stats.upstream_requests);
    let client_statuses: u64 = client.statuses.values().sum();
    assert_eq!(
        client_statuses + client.connection_errors + client.timeouts,
        client.attempts
    );
}

/// One GET on a fresh connection, read until the server closes it.
struct Raw {
    status: Option<u16>,
    body: Vec<u8>,
    error: Option<std::io::ErrorKind>,
    elapsed: Duration,
}

async fn raw_get(addr: SocketAddr, path: &str) -> Raw {
    let started = Instant::now();
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let request = format!("GET {path} HTTP/1.1\r\nhost: test\r\nconnection: close\r\n\r\n");
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
    Raw {
        status: head.split(' ').nth(1).and_then(|s| s.parse().ok()),
        body,
        error,
        elapsed: started.elapsed(),
    }
}

async fn admin_post_stop(admin: SocketAddr) -> String {
    let mut stream = tokio::net::TcpStream::connect(admin).await.unwrap();
    stream
        .write_all(
            b"POST /stop HTTP/1.1\r\nhost: admin\r\ncontent-length: 0\r\nconnection: close\r\n\r\n",
        )
        .await
        .unwrap();
    let mut text = String::new();
    stream.read_to_string(&mut text).await.unwrap();
    text
}

/// flaky at 30 % through the proxy, plain and TLS: the share of aborted
/// requests is within 5 standard deviations of 30 %, and the client, the
/// proxy and the upstream agree on every count.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fault_rates_match_the_configured_percentage_over_plain_and_tls_upstreams() {
    within(BOUND, async {
        for upstream in [TestUpstream::plain().await, TestUpstream::tls().await] {
            let dir = tempfile::tempdir().unwrap();
            let config = experiment_config(&upstream, Duration::from_secs(3), &dir);
            let flaky = injector(
                guests::FLAKY,
                serde_json::json!({"percent": 30, "statuses": [503], "retry-after-s": null, "body": ""}),
            );
            let experiment = Experiment::start(config, flaky).await.unwrap();
            let client = run_workload(
                experiment.local_addr(),
                &workload(&["/ok?size=256"], 150.0, Duration::from_millis(1500)),
                None,
            )
            .await;
            experiment.stop_handle().stop(StopReason::Stopped { by: "test".into() });
            let report = experiment.finish().await;
            let stats = &report.stats;
            assert_sides_agree(&client, &report, &upstream);

            let decided = stats.decided as f64;
            let aborted = stats.fault_count("abort");
            assert_eq!(client.logical_requests, 225, "150 a second for 1.5 s");
            assert_eq!(stats.decided, stats.requests, "blast radius 100 %: every request asked");
            let share = aborted as f64 / decided;
            let sigma = (0.3 * 0.7 / decided).sqrt();
            assert!((share - 0.3).abs() < 5.0 * sigma, "{}: {share} of {decided}", upstream.url());
            // Every abort reached the client as a 503, nothing else did.
            assert_eq!(stats.status_count(503), aborted);
            assert_eq!(client.statuses.get(&503).copied().unwrap_or(0), aborted);
            assert_eq!(stats.upstream_requests, stats.requests - aborted);
            assert_eq!(stats.upstream_errors, 0, "{}", upstream.url());
            assert_eq!(client.connection_errors + client.timeouts, 0);
            assert_eq!(stats.faulted, aborted);
            // Retries are grouped by the workload's idempotency keys.
            assert_eq!(report.metric("logical-requests"), Some(client.logical_requests as f64));
            assert_eq!(
                report.metric("retry-amplification"),
                Some(stats.upstream_requests as f64 / client.logical_requests as f64)
            );
            assert!(stats.attempts_max <= 3);
            assert_eq!(client.successes, client.final_statuses.get(&200).copied().unwrap_or(0));
        }
    })
    .await;
}

/// Replaying a decision log through the same plugin gives every decision
/// again; through another config, exactly the aborts differ.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replaying_the_decision_log_gives_identical_decisions() {
    within(BOUND, async {
        let upstream = TestUpstream::plain().await;
        let dir = tempfile::tempdir().unwrap();
        let config = experiment_config(&upstream, Duration::from_secs(3), &dir);
        let log_path: PathBuf = config.decision_log.clone().unwrap();
        let flaky_config = serde_json::json!({"percent": 40, "statuses": [503, 429]});
        let experiment = Experiment::start(config, injector(guests::FLAKY, flaky_config.clone()))
            .await
            .unwrap();
        let client = run_workload(
            experiment.local_addr(),
            &workload(&["/ok?size=64"], 100.0, Duration::from_millis(800)),
            None,
        )
        .await;
        experiment
            .stop_handle()
            .stop(StopReason::Stopped { by: "test".into() });
        let report = experiment.finish().await;
        assert_sides_agree(&client, &report, &upstream);
        assert_eq!(report.decision_log_error, None);

        let log = read_decision_log(&log_path).unwrap();
        assert_eq!(log.header.seed, 20_240_601);
        assert_eq!(log.header.plugin.name, "flaky");
        assert!(
            log.header
                .plugin
                .digest
                .as_deref()
                .unwrap()
                .starts_with("sha256:")
        );
        assert_eq!(
            log.header.plugin.config.as_deref(),
            Some(flaky_config.to_string().as_str())
        );
        assert_eq!(log.events.len() as u64, report.stats.decided);
        let aborted = log.events.iter().filter(|e| e.applied == ["abort"]).count() as u64;
        assert_eq!(aborted, report.stats.fault_count("abort"));
        assert!(aborted > 0);
        // Retries carry their attempt number as the plugin saw it.
        assert!(log.events.iter().any(|e| e.request.attempt > 1));

        let again = replay(&log, &*injector(guests::FLAKY, flaky_config)).await;
        assert_eq!(
            (again.replayed, again.identical),
            (report.stats.decided, report.stats.decided)
        );
        assert!(again.is_identical(), "{:?}", again.differences);
        let never = replay(
            &log,
            &*injector(guests::FLAKY, serde_json::json!({"percent": 0})),
        )
        .await;
        assert_eq!(never.differences.len() as u64, aborted);
    })
    .await;
}

/// latency on a 40 % blast radius, routes limited to GET /ok/**, /health
/// protected, at most 3 faults at once: the plugin hears only of /ok
/// requests inside the radius, /health and other routes are never
/// faulted, and the cap is never passed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn blast_radius_routes_protected_paths_and_the_concurrency_cap_are_never_exceeded() {
    within(BOUND, async {
        let upstream = TestUpstream::plain().await;
        let dir = tempfile::tempdir().unwrap();
        let mut config = experiment_config(&upstream, Duration::from_secs(3), &dir);
        config.envelope.blast_radius_percent = 40.0;
        config.envelope.max_concurrent_faults = 3;
        config.envelope.routes = vec![
            RouteMatch {
                methods: vec!["GET".into()],
                path: "/ok/**".into(),
                header: None,
            },
            RouteMatch {
                methods: vec![],
                path: "/health".into(),
                header: None,
            },
        ];
        config.envelope.protected_paths = vec!["/health".into()];
        let seed_value = config.seed;
        let log_path = config.decision_log.clone().unwrap();
        let latency = injector(guests::LATENCY, serde_json::json!({"delay-ms": 400}));
        let experiment = Experiment::start(config, latency).await.unwrap();
        let client = run_workload(
            experiment.local_addr(),
            &workload(
                &["/ok?size=32", "/health", "/echo"],
                120.0,
                Duration::from_millis(1500),
            ),
            None,
        )
        .await;
        experiment
            .stop_handle()
            .stop(StopReason::Stopped { by: "test".into() });
        let report = experiment.finish().await;
        let stats = &report.stats;
        assert_sides_agree(&client, &report, &upstream);
        assert_eq!(client.failures, 0, "{client:?}");

        let health = stats.skipped_count(SkipReason::Protected);
        let other = stats.skipped_count(SkipReason::Route);
        let outside = stats.skipped_count(SkipReason::BlastRadius);
        assert_eq!(health + other + outside + stats.decided, stats.requests);
        // 120 logical requests a second for 1.5 s, in turn over 3 paths.
        assert_eq!(
            (client.logical_requests, health, other),
            (180, 60, 60),
            "{stats:?}"
        );
        assert!(
            stats.max_active_faults <= 3 && stats.max_active_faults > 0,
            "{stats:?}"
        );
        let capped = stats.skipped_count(SkipReason::Concurrency);
        assert!(
            capped > 0,
            "400 ms delays at ~16 req/s must hit a cap of 3: {stats:?}"
        );
        assert_eq!(stats.fault_count("delay") + capped, stats.decided);
        assert_eq!(stats.faulted, stats.fault_count("delay"));

        let log = read_decision_log(&log_path).unwrap();
        assert_eq!(log.events.len() as u64, stats.decided);
        for event in &log.events {
            assert_eq!(event.route, "GET /ok");
            assert!(
                seed::inside_blast_radius(seed_value, event.sequence, 40.0),
                "{event:?}"
            );
        }
        let eligible = stats.decided + outside;
        let share = stats.decided as f64 / eligible as f64;
        let sigma = (0.4 * 0.6 / eligible as f64).sqrt();
        assert!((share - 0.4).abs() < 5.0 * sigma, "{share} of {eligible}");
    })
    .await;
}

/// The kill switch, by handle and by the admin endpoint, and the end of
/// the duration: nothing is faulted after, and traffic keeps flowing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nothing_is_faulted_after_the_kill_switch_or_the_duration() {
    within(BOUND, async {
        let upstream = TestUpstream::plain().await;
        let codes = || {
            injector(
                guests::NONSTANDARD_CODES,
                serde_json::json!({"percent": 100, "statuses": [520], "body": ""}),
            )
        };
        let mut traffic = workload(&["/ok?size=16"], 50.0, Duration::from_millis(400));
        traffic.retry.retry_on.clear();

        for by_admin in [false, true] {
            let dir = tempfile::tempdir().unwrap();
            let mut config = experiment_config(&upstream, Duration::from_secs(3), &dir);
            config.admin_listen = Some("127.0.0.1:0".parse().unwrap());
            let experiment = Experiment::start(config, codes()).await.unwrap();
            let before = run_workload(experiment.local_addr(), &traffic, None).await;
            assert_eq!(
                before.final_statuses.get(&520),
                Some(&before.logical_requests)
            );
            if by_admin {
                let answer = admin_post_stop(experiment.admin_addr().unwrap()).await;
                assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
            } else {
                assert!(
                    experiment
                        .stop_handle()
                        .stop(StopReason::Stopped { by: "test".into() })
                );
            }
            let faulted_at_stop = experiment.snapshot().faulted;
            let after = run_workload(experiment.local_addr(), &traffic, None).await;
            assert_eq!(
                after.final_statuses.get(&200),
                Some(&after.logical_requests),
                "{after:?}"
            );
            let report = experiment.finish().await;
            let by = if by_admin { "admin" } else { "test" };
            assert_eq!(report.stop_reason, StopReason::Stopped { by: by.into() });
            assert_eq!(report.stats.faulted, faulted_at_stop);
            assert_eq!(report.stats.faulted, before.attempts);
            assert_eq!(
                report.stats.skipped_count(SkipReason::Stopped),
                after.attempts
            );
        }

        // The duration: 600 ms of faults in a 1.2 s workload.
        let dir = tempfile::tempdir().unwrap();
        let config = experiment_config(&upstream, Duration::from_millis(600), &dir);
        let log_path = config.decision_log.clone().unwrap();
        let experiment = Experiment::start(config, codes()).await.unwrap();
        let client = run_workload(
            experiment.local_addr(),
            &Workload {
                duration: Duration::from_millis(1200),
                ..traffic.clone()
            },
            None,
        )
        .await;
        let report = experiment.finish().await;
        assert_eq!(report.stop_reason, StopReason::DurationElapsed);
        let log = read_decision_log(&log_path).unwrap();
        assert!(
            log.events.iter().all(|e| e.timings.arrived_ms < 600),
            "a fault after the duration"
        );
        assert_eq!(report.stats.faulted, report.stats.fault_count("abort"));
        assert!(report.stats.skipped_count(SkipReason::Stopped) > 0);
        assert_eq!(
            client.statuses.get(&520).copied(),
            Some(report.stats.faulted)
        );
    })
    .await;
}

/// A guardrail on the error rate ends the experiment early, with the
/// window's figures.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_guardrail_breach_ends_the_experiment() {
    within(BOUND, async {
        let upstream = TestUpstream::plain().await;
        let dir = tempfile::tempdir().unwrap();
        let mut config = experiment_config(&upstream, Duration::from_secs(3), &dir);
        config.guardrails.min_requests = 10;
        config.guardrails.max_error_rate = Some(0.5);
        let flaky = injector(
            guests::FLAKY,
            serde_json::json!({"percent": 100, "statuses": [503]}),
        );
        let started = Instant::now();
        let experiment = Experiment::start(config, flaky).await.unwrap();
        let stop = experiment.stop_handle();
        let client = run_workload(
            experiment.local_addr(),
            &workload(&["/ok"], 50.0, Duration::from_secs(3)),
            Some(stop),
        )
        .await;
        // Once the breach stopped the faults, requests are forwarded.
        let after = raw_get(experiment.local_addr(), "/ok?size=5").await;
        assert_eq!((after.status, after.body), (Some(200), ok_body(5)));
        let report = experiment.finish().await;
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "ended early: {:?}",
            started.elapsed()
        );
        assert_eq!(report.breaches.len(), 1, "{:?}", report.breaches);
        let breach = &report.breaches[0];
        assert_eq!(breach.guardrail, "error-rate");
        assert_eq!(
            (breach.observed, breach.limit, breach.window_requests),
            (1.0, 0.5, 10)
        );
        assert_eq!(
            report.stop_reason,
            StopReason::GuardrailBreach(breach.clone())
        );
        assert_eq!(report.stats.status_count(503), report.stats.faulted);
        assert_eq!(
            client.statuses.get(&503).copied(),
            Some(report.stats.faulted)
        );
        assert!(report.stats.faulted >= 10);
    })
    .await;
}

/// Hostile injectors (spinning, sleeping, hoarding memory, trapping,
/// answering out of contract) are stopped by the sandbox: every request
/// still flows, unmodified, and the failures are counted by kind.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_injectors_leave_every_request_flowing_unmodified() {
    within(BOUND, async {
        let upstream = TestUpstream::plain().await;
        let limits = Limits {
            timeout: Duration::from_millis(150),
            memory_bytes: 32 << 20,
            ..Limits::default()
        };
        for (mode, kind) in [
            ("loop", "timeout"),
            ("sleep", "timeout"),
            ("memory", "memory-limit"),
            ("trap", "trap"),
            ("invalid-status", "invalid-output"),
            ("bad-header", "invalid-output"),
        ] {
            let dir = tempfile::tempdir().unwrap();
            let mut config = experiment_config(&upstream, Duration::from_secs(3), &dir);
            config.envelope.max_plugin_failures = 2;
            let hostile = injector_with(guests::HOSTILE_INJECTOR, &format!("{mode:?}"), limits);
            let experiment = Experiment::start(config, hostile).await.unwrap();
            for _ in 0..4 {
                let seen = raw_get(experiment.local_addr(), "/ok?size=300").await;
                assert_eq!(seen.status, Some(200), "{mode}");
                assert_eq!(
                    seen.body,
                    ok_body(300),
                    "{mode}: the body arrives unmodified"
                );
                assert!(
                    seen.elapsed < Duration::from_secs(2),
                    "{mode}: {:?}",
                    seen.elapsed
                );
            }
            assert_eq!(
                experiment.stop_reason(),
                Some(StopReason::PluginFailures { count: 2 }),
                "{mode}"
            );
            let report = experiment.finish().await;
            let stats = &report.stats;
            assert_eq!(stats.plugin_failures, 2, "{mode}: {stats:?}");
            assert_eq!(
                stats.plugin_failures_by_kind.get(kind),
                Some(&2),
                "{mode}: {stats:?}"
            );
            assert_eq!((stats.faulted, stats.client_errors), (0, 0), "{mode}");
            assert_eq!(stats.skipped_count(SkipReason::Stopped), 2, "{mode}");
            assert_eq!(stats.status_count(200), 4, "{mode}");
        }
    })
    .await;
}

/// A fault injector built against contract 0.1.0 still decides: the
/// fixture delays /orders by 50 ms, and its out-of-contract answer is a
/// counted failure that leaves the request untouched.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_v0_1_injector_still_works() {
    within(BOUND, async {
        let upstream = TestUpstream::plain().await;
        let dir = tempfile::tempdir().unwrap();
        let config = experiment_config(&upstream, Duration::from_secs(3), &dir);
        let experiment = Experiment::start(
            config,
            injector_with(guests::FAULT_INJECTOR, "{}", Limits::default()),
        )
        .await
        .unwrap();
        let orders = raw_get(experiment.local_addr(), "/orders/42").await;
        assert_eq!(
            orders.status,
            Some(404),
            "the upstream has no /orders; the delay came first"
        );
        assert!(
            orders.elapsed >= Duration::from_millis(50),
            "{:?}",
            orders.elapsed
        );
        let ok = raw_get(experiment.local_addr(), "/ok?size=10").await;
        assert_eq!((ok.status, ok.body), (Some(200), ok_body(10)));
        experiment
            .stop_handle()
            .stop(StopReason::Stopped { by: "test".into() });
        let report = experiment.finish().await;
        assert_eq!(
            (report.stats.faulted, report.stats.fault_count("delay")),
            (1, 1)
        );
        assert_eq!(report.decider.contract.as_deref(), Some("0.1.0"));

        let dir = tempfile::tempdir().unwrap();
        let config = experiment_config(&upstream, Duration::from_secs(3), &dir);
        let bad = injector_with(guests::FAULT_INJECTOR, "bad-status", Limits::default());
        let experiment = Experiment::start(config, bad).await.unwrap();
        let seen = raw_get(experiment.local_addr(), "/ok?size=10").await;
        assert_eq!((seen.status, seen.body), (Some(200), ok_body(10)));
        experiment
            .stop_handle()
            .stop(StopReason::Stopped { by: "test".into() });
        let report = experiment.finish().await;
        assert_eq!(
            report.stats.plugin_failures_by_kind.get("invalid-output"),
            Some(&1)
        );
    })
    .await;
}

/// Body faults from real injectors: corrupt-body flips exactly the bytes
/// it asks for, and truncation leaves the client a short body;
/// slow-connector throttles bodies and its hangs are capped and closed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn body_faults_and_hangs_from_real_injectors_reach_the_client() {
    within(BOUND, async {
        let upstream = TestUpstream::plain().await;
        let dir = tempfile::tempdir().unwrap();
        let config = experiment_config(&upstream, Duration::from_secs(3), &dir);
        let corrupt = injector(
            guests::CORRUPT_BODY,
            serde_json::json!({"corrupt-bytes": 4}),
        );
        let experiment = Experiment::start(config, corrupt).await.unwrap();
        for path in ["/ok?size=5000", "/ok/chunked?size=5000"] {
            let seen = raw_get(experiment.local_addr(), path).await;
            let body = if path.contains("chunked") {
                dechunk(&seen.body)
            } else {
                seen.body
            };
            assert_eq!(body.len(), 5000, "{path}");
            let flipped = body
                .iter()
                .zip(ok_body(5000))
                .filter(|(a, b)| **a != *b)
                .count();
            assert_eq!(flipped, 4, "{path}");
        }
        experiment
            .stop_handle()
            .stop(StopReason::Stopped { by: "test".into() });
        assert_eq!(experiment.finish().await.stats.fault_count("corrupt"), 2);

        let dir = tempfile::tempdir().unwrap();
        let config = experiment_config(&upstream, Duration::from_secs(3), &dir);
        let truncate = injector(
            guests::CORRUPT_BODY,
            serde_json::json!({"corrupt-bytes": 0, "truncate-after-bytes": 1000}),
        );
        let experiment = Experiment::start(config, truncate).await.unwrap();
        let seen = raw_get(experiment.local_addr(), "/ok?size=5000").await;
        assert_eq!((seen.status, seen.body), (Some(200), ok_body(1000)));
        experiment
            .stop_handle()
            .stop(StopReason::Stopped { by: "test".into() });
        let report = experiment.finish().await;
        assert_eq!(report.stats.ends.get("truncated"), Some(&1));

        let dir = tempfile::tempdir().unwrap();
        let mut config = experiment_config(&upstream, Duration::from_secs(3), &dir);
        config.envelope.max_hang = Duration::from_millis(200);
        let slow = injector(
            guests::SLOW_CONNECTOR,
            serde_json::json!({"bytes-per-second": 4000, "hang-percent": 0}),
        );
        let experiment = Experiment::start(config, slow).await.unwrap();
        let seen = raw_get(experiment.local_addr(), "/ok?size=1200").await;
        assert_eq!(seen.body, ok_body(1200));
        // 1200 bytes at 4000 B/s in 400-byte pieces: due at 0, 100, 200 ms.
        assert!(
            seen.elapsed >= Duration::from_millis(190),
            "{:?}",
            seen.elapsed
        );
        experiment
            .stop_handle()
            .stop(StopReason::Stopped { by: "test".into() });
        assert_eq!(experiment.finish().await.stats.fault_count("throttle"), 1);

        let dir = tempfile::tempdir().unwrap();
        let mut config = experiment_config(&upstream, Duration::from_secs(3), &dir);
        config.envelope.max_hang = Duration::from_millis(200);
        let hang = injector(
            guests::SLOW_CONNECTOR,
            serde_json::json!({"hang-percent": 100, "hang-ms": 60000}),
        );
        let experiment = Experiment::start(config, hang).await.unwrap();
        let seen = raw_get(experiment.local_addr(), "/ok").await;
        assert_eq!(
            (seen.status, seen.error),
            (None, None),
            "closed without an answer"
        );
        assert!(
            seen.elapsed >= Duration::from_millis(190) && seen.elapsed < Duration::from_secs(2)
        );
        experiment
            .stop_handle()
            .stop(StopReason::Stopped { by: "test".into() });
        assert_eq!(experiment.finish().await.stats.fault_count("hang"), 1);
    })
    .await;
}

/// Decodes a chunked body (sizes in hex, CRLF framed).
fn dechunk(mut raw: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    while let Some(line_end) = raw.windows(2).position(|w| w == b"\r\n") {
        let size = usize::from_str_radix(std::str::from_utf8(&raw[..line_end]).unwrap().trim(), 16)
            .unwrap();
        raw = &raw[line_end + 2..];
        if size == 0 {
            break;
        }
        out.extend_from_slice(&raw[..size]);
        raw = &raw[size + 2..];
    }
    out
}

/// A TLS upstream whose CA is not trusted: every request gets a 502, the
/// proxy keeps serving, and the failures are upstream errors.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_untrusted_tls_upstream_is_a_502_not_a_crash() {
    within(BOUND, async {
        let upstream = TestUpstream::tls().await;
        let dir = tempfile::tempdir().unwrap();
        let mut config = experiment_config(&upstream, Duration::from_secs(3), &dir);
        config.ca_file = None;
        let passthrough = injector(guests::PASSTHROUGH_INJECTOR, serde_json::json!({}));
        let experiment = Experiment::start(config, passthrough).await.unwrap();
        for _ in 0..3 {
            assert_eq!(
                raw_get(experiment.local_addr(), "/ok").await.status,
                Some(502)
            );
        }
        experiment
            .stop_handle()
            .stop(StopReason::Stopped { by: "test".into() });
        let report = experiment.finish().await;
        assert_eq!(report.stats.upstream_errors, 3);
        assert_eq!(report.stats.status_count(502), 3);
        assert_eq!(report.stats.plugin_failures, 0);
        assert_eq!(upstream.requests_received(), 0);
    })
    .await;
}

/// An upstream that is down and a port in use are clear errors at start.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upstream_that_is_down_and_a_port_in_use_are_clear_errors() {
    within(BOUND, async {
        let passthrough = || injector(guests::PASSTHROUGH_INJECTOR, serde_json::json!({}));
        let dir = tempfile::tempdir().unwrap();
        let upstream = TestUpstream::plain().await;
        let down_addr = {
            let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            listener.local_addr().unwrap()
        };
        let mut config = experiment_config(&upstream, Duration::from_secs(3), &dir);
        config.upstream = Upstream::parse(&format!("http://{down_addr}")).unwrap();
        let err = Experiment::start(config, passthrough())
            .await
            .err()
            .expect("refused");
        let text = err.to_string();
        assert!(
            text.contains(&format!("upstream {down_addr} is unreachable")),
            "{text}"
        );

        let taken = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let mut config = experiment_config(&upstream, Duration::from_secs(3), &dir);
        config.listen = taken.local_addr().unwrap();
        let err = Experiment::start(config, passthrough())
            .await
            .err()
            .expect("refused");
        let text = err.to_string();
        assert!(
            text.contains(&format!("cannot listen on {}", taken.local_addr().unwrap()))
                && text.contains("already in use"),
            "{text}"
        );
    })
    .await;
}
