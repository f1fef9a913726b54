//! A synthetic workload: a real HTTP client sending logical requests at a
//! rate, each with a fresh idempotency key and retried under a bounded
//! policy (backoff, per-attempt timeout), for when no real client drives
//! traffic through an experiment, and for tests.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use http::{Method, Request};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use serde::Serialize;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;

use crate::proxy::server::StopHandle;

/// Traffic to send.
#[derive(Debug, Clone, PartialEq)]
pub struct Workload {
    /// Logical requests started per second.
    pub rate_per_second: f64,
    /// Logical requests start during this long (their retries may run
    /// past it).
    pub duration: Duration,
    /// Logical requests in flight at once, at most.
    pub concurrency: u32,
    /// Sent in turn (round robin).
    pub requests: Vec<RequestTemplate>,
    pub retry: RetryPolicy,
    /// Header carrying each logical request's key, the same on all its
    /// attempts: the experiment's `idempotency-header`, so the proxy groups
    /// the workload's retries.
    pub idempotency_header: String,
}

/// One kind of request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestTemplate {
    pub method: String,
    /// Path and query (`/orders?page=2`).
    pub path: String,
    pub headers: Vec<(String, String)>,
    pub body: Option<String>,
}

impl RequestTemplate {
    pub fn get(path: impl Into<String>) -> RequestTemplate {
        RequestTemplate {
            method: "GET".to_owned(),
            path: path.into(),
            headers: Vec::new(),
            body: None,
        }
    }
}

/// When and how a logical request is retried.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Attempts in all, at least 1.
    pub max_attempts: u32,
    /// Wait before the second attempt; doubled each time.
    pub backoff_initial: Duration,
    pub backoff_max: Duration,
    /// Statuses retried; connection errors and timeouts always are.
    pub retry_on: Vec<u16>,
    /// Bound of one attempt, body included.
    pub attempt_timeout: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_attempts: 3,
            backoff_initial: Duration::from_millis(50),
            backoff_max: Duration::from_secs(1),
            retry_on: vec![502, 503, 504],
            attempt_timeout: Duration::from_secs(2),
        }
    }
}

impl RetryPolicy {
    /// The wait after failed attempt `attempt` (1-based).
    pub fn backoff(&self, attempt: u32) -> Duration {
        let factor = 2u32.saturating_pow(attempt.saturating_sub(1));
        self.backoff_initial
            .saturating_mul(factor)
            .min(self.backoff_max)
    }
}

/// What the workload saw.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub struct WorkloadReport {
    pub logical_requests: u64,
    pub attempts: u64,
    /// Logical requests whose last attempt got a 2xx or 3xx with its whole
    /// body.
    pub successes: u64,
    pub failures: u64,
    /// Responses per status, over all attempts.
    pub statuses: BTreeMap<u16, u64>,
    /// The status each logical request ended with (absent: it ended on a
    /// connection error or timeout).
    pub final_statuses: BTreeMap<u16, u64>,
    /// Attempts that ended in a connection error (refused, reset, closed,
    /// a body cut short).
    pub connection_errors: u64,
    /// Attempts past the attempt timeout.
    pub timeouts: u64,
    /// Most attempts one logical request took.
    pub attempts_max: u32,
    /// Response body bytes received.
    pub bytes_received: u64,
    pub elapsed_ms: u64,
}

enum AttemptResult {
    Status { status: u16, bytes: u64 },
    ConnectionError,
    Timeout,
}

/// Sends `workload` to `target` (plain HTTP) until its duration ends, or
/// `stop` fires; waits for the logical requests in flight (their retries
/// included). Every logical request carries a fresh key in the workload's
/// `idempotency_header`, the same on all its attempts.
pub async fn run_workload(
    target: SocketAddr,
    workload: &Workload,
    stop: Option<StopHandle>,
) -> WorkloadReport {
    let started = Instant::now();
    let report = Arc::new(Mutex::new(WorkloadReport::default()));
    if workload.requests.is_empty() || workload.rate_per_second <= 0.0 {
        return WorkloadReport::default();
    }
    let mut connector = HttpConnector::new();
    connector.set_nodelay(true);
    connector.set_connect_timeout(Some(workload.retry.attempt_timeout));
    let client: Client<HttpConnector, Full<Bytes>> = Client::builder(TokioExecutor::new())
        .pool_idle_timeout(Duration::from_secs(10))
        .pool_timer(hyper_util::rt::TokioTimer::new())
        .build(connector);
    let run_id = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0)
        ^ u64::from(std::process::id()).rotate_left(32);
    let permits = Arc::new(Semaphore::new(workload.concurrency.max(1) as usize));
    let mut tasks = JoinSet::new();
    let mut index: u64 = 0;
    loop {
        // Request `index` starts at index / rate: exactly rate x duration
        // logical requests in all.
        let offset = index as f64 / workload.rate_per_second;
        if offset >= workload.duration.as_secs_f64() {
            break;
        }
        let due = started + Duration::from_secs_f64(offset);
        tokio::time::sleep_until(tokio::time::Instant::from_std(due)).await;
        if stop.as_ref().is_some_and(StopHandle::is_stopped) {
            break;
        }
        let Ok(permit) = Arc::clone(&permits).acquire_owned().await else {
            break;
        };
        let mut template = workload.requests
            [usize::try_from(index).unwrap_or(0) % workload.requests.len()]
        .clone();
        let key = format!("wl-{run_id:016x}-{index}");
        template
            .headers
            .push((workload.idempotency_header.clone(), key));
        let client = client.clone();
        let retry = workload.retry.clone();
        let report = Arc::clone(&report);
        tasks.spawn(async move {
            logical_request(&client, target, &template, &retry, &report).await;
            drop(permit);
        });
        index += 1;
        while tasks.try_join_next().is_some() {}
    }
    while tasks.join_next().await.is_some() {}
    let mut report = report.lock().map(|r| r.clone()).unwrap_or_default();
    report.elapsed_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
    report
}

async fn logical_request(
    client: &Client<HttpConnector, Full<Bytes>>,
    target: SocketAddr,
    template: &RequestTemplate,
    retry: &RetryPolicy,
    report: &Mutex<WorkloadReport>,
) {
    let max_attempts = retry.max_attempts.max(1);
    let mut attempt = 0;
    let final_status = loop {
        attempt += 1;
        let result =
            match tokio::time::timeout(retry.attempt_timeout, send(client, target, template)).await
            {
                Ok(result) => result,
                Err(_) => AttemptResult::Timeout,
            };
        let retryable = match &result {
            AttemptResult::Status { status, .. } => retry.retry_on.contains(status),
            AttemptResult::ConnectionError | AttemptResult::Timeout => true,
        };
        if let Ok(mut report) = report.lock() {
            report.attempts += 1;
            match &result {
                AttemptResult::Status { status, bytes } => {
                    *report.statuses.entry(*status).or_default() += 1;
                    report.bytes_received += bytes;
                }
                AttemptResult::ConnectionError => report.connection_errors += 1,
                AttemptResult::Timeout => report.timeouts += 1,
            }
        }
        if !retryable || attempt >= max_attempts {
            break match result {
                AttemptResult::Status { status, .. } => Some(status),
                _ => None,
            };
        }
        tokio::time::sleep(retry.backoff(attempt)).await;
    };
    if let Ok(mut report) = report.lock() {
        report.logical_requests += 1;
        report.attempts_max = report.attempts_max.max(attempt);
        match final_status {
            Some(status) => {
                *report.final_statuses.entry(status).or_default() += 1;
                if (200..400).contains(&status) {
                    report.successes += 1;
                } else {
                    report.failures += 1;
                }
            }
            None => report.failures += 1,
        }
    }
}

async fn send(
    client: &Client<HttpConnector, Full<Bytes>>,
    target: SocketAddr,
    template: &RequestTemplate,
) -> AttemptResult {
    let Ok(method) = Method::from_bytes(template.method.as_bytes()) else {
        return AttemptResult::ConnectionError;
    };
    let mut builder = Request::builder()
        .method(method)
        .uri(format!("http://{target}{}", template.path));
    for (name, value) in &template.headers {
        builder = builder.header(name.as_str(), value.as_str());
    }
    let body = Full::new(Bytes::from(template.body.clone().unwrap_or_default()));
    let Ok(request) = builder.body(body) else {
        return AttemptResult::ConnectionError;
    };
    let response = match client.request(request).await {
        Ok(response) => response,
        Err(_) => return AttemptResult::ConnectionError,
    };
    let status = response.status().as_u16();
    match response.into_body().collect().await {
        Ok(body) => AttemptResult::Status {
            status,
            bytes: body.to_bytes().len() as u64,
        },
        // A body cut short (a truncation, a reset mid-body).
        Err(_) => AttemptResult::ConnectionError,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_its_cap() {
        let policy = RetryPolicy {
            backoff_initial: Duration::from_millis(10),
            backoff_max: Duration::from_millis(50),
            ..RetryPolicy::default()
        };
        let waits: Vec<u128> = (1..=5).map(|a| policy.backoff(a).as_millis()).collect();
        assert_eq!(waits, [10, 20, 40, 50, 50]);
        assert_eq!(policy.backoff(100), Duration::from_millis(50));
    }
}
