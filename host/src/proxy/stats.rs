//! What an experiment counts: requests, faults by kind, statuses, skips by
//! reason, plugin failures, latency and retry-gap histograms, logical
//! requests; the live [`ExperimentStats`], the final [`ExperimentReport`]
//! and its flat metrics for validators.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use serde::Serialize;

use crate::proxy::decider::DeciderInfo;
use crate::proxy::guardrails::{Breach, millis_f64, nearest_rank};
use crate::proxy::server::StopReason;

/// Every fault kind, in the order metrics list them.
pub const FAULT_KINDS: &[&str] = &[
    "delay", "abort", "reset", "hang", "throttle", "truncate", "corrupt",
];

/// Why a request was not faulted though it could have been.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum SkipReason {
    /// Outside the blast-radius sample.
    BlastRadius,
    /// Matches no route of the envelope.
    Route,
    /// Matches a protected path.
    Protected,
    /// The concurrent-fault cap was full when the fault was to be applied.
    Concurrency,
    /// The experiment had stopped injecting (stop, duration, failures).
    Stopped,
}

impl SkipReason {
    pub const ALL: [SkipReason; 5] = [
        SkipReason::BlastRadius,
        SkipReason::Route,
        SkipReason::Protected,
        SkipReason::Concurrency,
        SkipReason::Stopped,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            SkipReason::BlastRadius => "blast-radius",
            SkipReason::Route => "route",
            SkipReason::Protected => "protected",
            SkipReason::Concurrency => "concurrency",
            SkipReason::Stopped => "stopped",
        }
    }
}

/// How a request ended as its client saw it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum RequestEnd {
    /// A whole response was sent.
    Complete,
    /// The connection was reset (fault).
    Reset,
    /// Held, then closed without an answer (fault).
    Hang,
    /// The body was cut short (fault).
    Truncated,
    /// The upstream failed before a response: the client got a 502.
    UpstreamError,
    /// The upstream's body failed mid-way: the client's body is cut short.
    BodyError,
    /// The client went away before the response was complete.
    ClientGone,
}

impl RequestEnd {
    pub fn as_str(self) -> &'static str {
        match self {
            RequestEnd::Complete => "complete",
            RequestEnd::Reset => "reset",
            RequestEnd::Hang => "hang",
            RequestEnd::Truncated => "truncated",
            RequestEnd::UpstreamError => "upstream-error",
            RequestEnd::BodyError => "body-error",
            RequestEnd::ClientGone => "client-gone",
        }
    }

    /// Whether a client sees this as an error (whatever the status).
    pub fn is_error(self) -> bool {
        !matches!(self, RequestEnd::Complete)
    }
}

/// A log-linear histogram of microseconds (64 sub-buckets per power of
/// two: within 1.6 %), with exact count, min and max.
#[derive(Debug, Clone)]
pub struct Histogram {
    buckets: Vec<u64>,
    count: u64,
    min: u64,
    max: u64,
}

const SUB_BUCKET_BITS: u32 = 6;
const SUB_BUCKETS: u64 = 1 << SUB_BUCKET_BITS;

impl Default for Histogram {
    fn default() -> Self {
        Histogram {
            buckets: Vec::new(),
            count: 0,
            min: u64::MAX,
            max: 0,
        }
    }
}

impl Histogram {
    fn index(value: u64) -> usize {
        if value < SUB_BUCKETS {
            return value as usize;
        }
        let exponent = 63 - value.leading_zeros();
        let shift = exponent - SUB_BUCKET_BITS;
        let sub = (value >> shift) - SUB_BUCKETS;
        (SUB_BUCKETS + u64::from(shift) * SUB_BUCKETS + sub) as usize
    }

    /// The middle of bucket `index`.
    fn value_of(index: usize) -> u64 {
        let index = index as u64;
        if index < SUB_BUCKETS {
            return index;
        }
        let shift = (index - SUB_BUCKETS) / SUB_BUCKETS;
        let sub = (index - SUB_BUCKETS) % SUB_BUCKETS;
        let low = (SUB_BUCKETS + sub) << shift;
        let width = 1u64 << shift;
        low + (width - 1) / 2
    }

    pub fn record(&mut self, value: Duration) {
        let micros = u64::try_from(value.as_micros()).unwrap_or(u64::MAX);
        let index = Self::index(micros);
        if self.buckets.len() <= index {
            self.buckets.resize(index + 1, 0);
        }
        self.buckets[index] += 1;
        self.count += 1;
        self.min = self.min.min(micros);
        self.max = self.max.max(micros);
    }

    pub fn count(&self) -> u64 {
        self.count
    }

    pub fn min(&self) -> Option<Duration> {
        (self.count > 0).then(|| Duration::from_micros(self.min))
    }

    pub fn max(&self) -> Option<Duration> {
        (self.count > 0).then(|| Duration::from_micros(self.max))
    }

    /// Quantile `q` (0..=1) by nearest rank, to the bucket's precision and
    /// within the exact min and max.
    pub fn quantile(&self, q: f64) -> Option<Duration> {
        if self.count == 0 {
            return None;
        }
        let rank = nearest_rank(usize::try_from(self.count).unwrap_or(usize::MAX), q) as u64;
        // The extremes are known exactly.
        if rank == 0 {
            return self.min();
        }
        if rank + 1 >= self.count {
            return self.max();
        }
        let mut seen = 0u64;
        for (index, count) in self.buckets.iter().enumerate() {
            seen += count;
            if seen > rank {
                let value = Self::value_of(index).clamp(self.min, self.max);
                return Some(Duration::from_micros(value));
            }
        }
        self.max()
    }
}

/// The counters of a running experiment (behind the experiment's lock).
#[derive(Debug, Clone, Default)]
pub struct StatsRecorder {
    pub requests: u64,
    pub decided: u64,
    pub faulted: u64,
    pub upstream_requests: u64,
    pub upstream_errors: u64,
    pub logical_requests: u64,
    pub client_errors: u64,
    pub plugin_failures: u64,
    pub plugin_failures_by_kind: BTreeMap<String, u64>,
    pub faults: BTreeMap<&'static str, u64>,
    pub statuses: BTreeMap<u16, u64>,
    pub skipped: BTreeMap<SkipReason, u64>,
    pub ends: BTreeMap<RequestEnd, u64>,
    pub latency: Histogram,
    pub retry_gaps: Histogram,
    pub attempts_max: u32,
    pub bytes_to_clients: u64,
}

impl StatsRecorder {
    pub fn skip(&mut self, reason: SkipReason) {
        *self.skipped.entry(reason).or_default() += 1;
    }

    /// A live view.
    pub fn snapshot(
        &self,
        active_faults: u32,
        max_active_faults: u32,
        elapsed: Duration,
        injecting: bool,
    ) -> ExperimentStats {
        let ms = |d: Option<Duration>| d.map(millis_f64);
        ExperimentStats {
            elapsed_ms: u64::try_from(elapsed.as_millis()).unwrap_or(u64::MAX),
            injecting,
            requests: self.requests,
            completed: self.latency.count(),
            decided: self.decided,
            faulted: self.faulted,
            active_faults,
            max_active_faults,
            faults: FAULT_KINDS
                .iter()
                .map(|kind| {
                    (
                        (*kind).to_owned(),
                        self.faults.get(kind).copied().unwrap_or(0),
                    )
                })
                .collect(),
            statuses: self
                .statuses
                .iter()
                .map(|(status, count)| (status.to_string(), *count))
                .collect(),
            skipped: SkipReason::ALL
                .iter()
                .map(|reason| {
                    (
                        reason.as_str().to_owned(),
                        self.skipped.get(reason).copied().unwrap_or(0),
                    )
                })
                .collect(),
            ends: self
                .ends
                .iter()
                .map(|(end, count)| (end.as_str().to_owned(), *count))
                .collect(),
            client_errors: self.client_errors,
            upstream_requests: self.upstream_requests,
            upstream_errors: self.upstream_errors,
            plugin_failures: self.plugin_failures,
            plugin_failures_by_kind: self.plugin_failures_by_kind.clone(),
            logical_requests: self.logical_requests,
            attempts_max: self.attempts_max,
            latency_p50_ms: ms(self.latency.quantile(0.50)),
            latency_p90_ms: ms(self.latency.quantile(0.90)),
            latency_p99_ms: ms(self.latency.quantile(0.99)),
            latency_max_ms: ms(self.latency.max()),
            retry_gap_min_ms: ms(self.retry_gaps.min()),
            retry_gap_median_ms: ms(self.retry_gaps.quantile(0.5)),
            bytes_to_clients: self.bytes_to_clients,
        }
    }
}

/// Live counts of an experiment (the admin `GET /status`, a terminal
/// display, the report).
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub struct ExperimentStats {
    pub elapsed_ms: u64,
    /// Whether faults may still be applied.
    pub injecting: bool,
    /// Requests received.
    pub requests: u64,
    /// Requests finished (answered, reset, hung up, or abandoned).
    pub completed: u64,
    /// Requests the plugin was asked about.
    pub decided: u64,
    /// Requests at least one fault was applied to.
    pub faulted: u64,
    pub active_faults: u32,
    /// Most faults applied at once.
    pub max_active_faults: u32,
    /// Requests per fault kind applied (every kind listed).
    pub faults: BTreeMap<String, u64>,
    /// Responses sent per status.
    pub statuses: BTreeMap<String, u64>,
    /// Requests not faulted, per reason (every reason listed).
    pub skipped: BTreeMap<String, u64>,
    /// Requests per way they ended (`complete`, `reset`, `hang`, ...).
    pub ends: BTreeMap<String, u64>,
    /// Requests a client saw fail: 5xx, resets, hangs, truncations,
    /// upstream failures, abandoned requests.
    pub client_errors: u64,
    /// Requests forwarded to the upstream.
    pub upstream_requests: u64,
    /// Upstream failures (502 sent, or a body cut mid-way).
    pub upstream_errors: u64,
    pub plugin_failures: u64,
    pub plugin_failures_by_kind: BTreeMap<String, u64>,
    /// Distinct logical requests (idempotency keys; a request without one
    /// is its own).
    pub logical_requests: u64,
    /// Most attempts seen for one logical request.
    pub attempts_max: u32,
    pub latency_p50_ms: Option<f64>,
    pub latency_p90_ms: Option<f64>,
    pub latency_p99_ms: Option<f64>,
    pub latency_max_ms: Option<f64>,
    /// Shortest time between two attempts of one logical request.
    pub retry_gap_min_ms: Option<f64>,
    pub retry_gap_median_ms: Option<f64>,
    pub bytes_to_clients: u64,
}

impl ExperimentStats {
    pub fn fault_count(&self, kind: &str) -> u64 {
        self.faults.get(kind).copied().unwrap_or(0)
    }

    pub fn skipped_count(&self, reason: SkipReason) -> u64 {
        self.skipped.get(reason.as_str()).copied().unwrap_or(0)
    }

    pub fn status_count(&self, status: u16) -> u64 {
        self.statuses.get(&status.to_string()).copied().unwrap_or(0)
    }

    /// Client errors over finished requests.
    pub fn error_rate(&self) -> Option<f64> {
        (self.completed > 0).then(|| self.client_errors as f64 / self.completed as f64)
    }
}

/// The record of a finished experiment.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub struct ExperimentReport {
    pub name: String,
    pub seed: u64,
    /// The upstream's URL (never with credentials).
    pub upstream: String,
    pub decider: DeciderInfo,
    pub started_unix_ms: u64,
    pub ended_unix_ms: u64,
    pub stop_reason: StopReason,
    pub stats: ExperimentStats,
    pub breaches: Vec<Breach>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub decision_log: Option<PathBuf>,
    /// A failure to write the decision log (the experiment itself ran).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub decision_log_error: Option<String>,
    /// Requests still in flight when the drain's bound passed (their
    /// connections were closed).
    pub abandoned_in_drain: u64,
}

impl ExperimentReport {
    /// Flat metrics for validators (`slo-gate` and the like). Figures with
    /// nothing to measure (latency without a request, retry gaps without a
    /// retry) are left out rather than reported as 0.
    pub fn metrics(&self) -> Vec<(String, f64)> {
        let stats = &self.stats;
        let mut metrics: Vec<(String, f64)> = Vec::new();
        let mut put = |name: &str, value: f64| metrics.push((name.to_owned(), value));
        put("requests", stats.requests as f64);
        put("completed", stats.completed as f64);
        put("decided", stats.decided as f64);
        put("faulted", stats.faulted as f64);
        for kind in FAULT_KINDS {
            put(&format!("faults.{kind}"), stats.fault_count(kind) as f64);
        }
        for (status, count) in &stats.statuses {
            put(&format!("status.{status}"), *count as f64);
        }
        put("client-errors", stats.client_errors as f64);
        if let Some(rate) = stats.error_rate() {
            put("error-rate", rate);
        }
        for (name, value) in [
            ("latency-p50-ms", stats.latency_p50_ms),
            ("latency-p90-ms", stats.latency_p90_ms),
            ("latency-p99-ms", stats.latency_p99_ms),
            ("latency-max-ms", stats.latency_max_ms),
        ] {
            if let Some(value) = value {
                put(name, value);
            }
        }
        put("guardrail-breaches", self.breaches.len() as f64);
        put("plugin-failures", stats.plugin_failures as f64);
        put("upstream-requests", stats.upstream_requests as f64);
        put("upstream-errors", stats.upstream_errors as f64);
        put("logical-requests", stats.logical_requests as f64);
        if stats.logical_requests > 0 {
            let logical = stats.logical_requests as f64;
            put("attempts-per-request-mean", stats.requests as f64 / logical);
            put("attempts-per-request-max", f64::from(stats.attempts_max));
            put(
                "retry-amplification",
                stats.upstream_requests as f64 / logical,
            );
        }
        if let Some(min) = stats.retry_gap_min_ms {
            put("retry-gap-min-ms", min);
        }
        if let Some(median) = stats.retry_gap_median_ms {
            put("retry-gap-median-ms", median);
        }
        for reason in SkipReason::ALL {
            put(
                &format!("skipped.{}", reason.as_str()),
                stats.skipped_count(reason) as f64,
            );
        }
        put("max-active-faults", f64::from(stats.max_active_faults));
        put(
            "duration-ms",
            self.ended_unix_ms.saturating_sub(self.started_unix_ms) as f64,
        );
        metrics
    }

    /// One metric by name.
    pub fn metric(&self, name: &str) -> Option<f64> {
        self.metrics()
            .into_iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_buckets_round_trip_within_their_precision() {
        for value in [
            0u64,
            1,
            63,
            64,
            65,
            127,
            128,
            1000,
            123_456,
            10_000_000,
            u64::MAX / 2,
        ] {
            let index = Histogram::index(value);
            let back = Histogram::value_of(index);
            let error = back.abs_diff(value) as f64 / value.max(1) as f64;
            assert!(error <= 1.0 / 64.0, "{value} -> {back}");
        }
        // Bucket indexes grow with the value.
        let mut last = 0;
        for value in (0..200_000u64).step_by(7) {
            let index = Histogram::index(value);
            assert!(index >= last);
            last = index;
        }
    }

    #[test]
    fn histogram_quantiles_are_nearest_rank() {
        let mut h = Histogram::default();
        assert_eq!(h.quantile(0.5), None);
        for ms in 1..=100u64 {
            h.record(Duration::from_millis(ms));
        }
        let q = |q: f64| h.quantile(q).unwrap().as_secs_f64() * 1000.0;
        assert!((q(0.5) - 50.0).abs() <= 50.0 / 64.0, "{}", q(0.5));
        assert!((q(0.99) - 99.0).abs() <= 99.0 / 64.0, "{}", q(0.99));
        assert_eq!(h.min(), Some(Duration::from_millis(1)));
        assert_eq!(h.max(), Some(Duration::from_millis(100)));
        assert_eq!(q(1.0), 100.0);
        assert_eq!(q(0.0), 1.0);
    }
}
