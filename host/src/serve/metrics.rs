//! The server's Prometheus metrics (`GET /metrics`, OpenMetrics text):
//! requests by route and status, plugin calls and failures by plugin and
//! kind, call latency, compile-cache hits, queue depth, refusals, reloads
//! and rollouts by state.

use std::sync::Mutex;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

use crate::check::CheckReport;
use crate::runtime::call::CallOutcome;
use crate::runtime::{LoadStats, Runtime};

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RouteLabels {
    pub route: String,
    pub status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct CallLabels {
    pub plugin: String,
    /// `pass`, `warn`, `fail`, `inconclusive`, `refused`, or the failure
    /// kind (`timeout`, `memory-limit`, …).
    pub kind: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct PluginLabels {
    pub plugin: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReasonLabels {
    pub reason: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct StateLabels {
    pub state: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ResultLabels {
    pub result: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct CacheLabels {
    /// `memory`, `disk` or `compiled` (a miss).
    pub source: String,
}

fn latency_histogram() -> Histogram {
    // 50 µs to about 3.3 s.
    Histogram::new(exponential_buckets(0.000_05, 2.0, 17))
}

/// Every metric the server exports.
pub struct Metrics {
    registry: Registry,
    pub requests: Family<RouteLabels, Counter>,
    pub request_seconds: Family<PluginLabels, Histogram, fn() -> Histogram>,
    pub calls: Family<CallLabels, Counter>,
    pub call_failures: Family<CallLabels, Counter>,
    pub call_seconds: Family<PluginLabels, Histogram, fn() -> Histogram>,
    pub rejected: Family<ReasonLabels, Counter>,
    pub queue_depth: Gauge,
    pub in_flight: Gauge,
    pub reloads: Family<ResultLabels, Counter>,
    pub rollouts: Family<StateLabels, Gauge>,
    plugin_loads: Family<CacheLabels, Counter>,
    seen_loads: Mutex<LoadStats>,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

impl Metrics {
    pub fn new() -> Metrics {
        let mut registry = Registry::with_prefix("cairn");
        let requests = Family::<RouteLabels, Counter>::default();
        registry.register(
            "http_requests",
            "HTTP requests answered, by route and status",
            requests.clone(),
        );
        let request_seconds =
            Family::<PluginLabels, Histogram, fn() -> Histogram>::new_with_constructor(
                latency_histogram,
            );
        registry.register(
            "check_duration_seconds",
            "Time to answer POST /v1/checks, queueing included, by plan (label `plugin` holds tenant/plan)",
            request_seconds.clone(),
        );
        let calls = Family::<CallLabels, Counter>::default();
        registry.register(
            "plugin_calls",
            "Validator calls by plugin and outcome kind",
            calls.clone(),
        );
        let call_failures = Family::<CallLabels, Counter>::default();
        registry.register(
            "plugin_call_failures",
            "Validator calls the sandbox stopped or the plugin refused, by plugin and kind",
            call_failures.clone(),
        );
        let call_seconds =
            Family::<PluginLabels, Histogram, fn() -> Histogram>::new_with_constructor(
                latency_histogram,
            );
        registry.register(
            "plugin_call_duration_seconds",
            "Validator call latency (instantiation included), by plugin",
            call_seconds.clone(),
        );
        let rejected = Family::<ReasonLabels, Counter>::default();
        registry.register(
            "requests_rejected",
            "Requests refused before running: overloaded, too-large, unauthorized, deadline, draining",
            rejected.clone(),
        );
        let queue_depth = Gauge::default();
        registry.register(
            "queue_depth",
            "Requests waiting for a slot",
            queue_depth.clone(),
        );
        let in_flight = Gauge::default();
        registry.register("in_flight", "Requests holding a slot", in_flight.clone());
        let reloads = Family::<ResultLabels, Counter>::default();
        registry.register(
            "plan_reloads",
            "Plan reloads by result (ok, failed)",
            reloads.clone(),
        );
        let rollouts = Family::<StateLabels, Gauge>::default();
        registry.register(
            "rollouts",
            "Rollouts this server knows, by state",
            rollouts.clone(),
        );
        let plugin_loads = Family::<CacheLabels, Counter>::default();
        registry.register(
            "plugin_loads",
            "Plugin loads by where the compiled code came from: memory or disk (cache hits), compiled (a miss)",
            plugin_loads.clone(),
        );
        Metrics {
            registry,
            requests,
            request_seconds,
            calls,
            call_failures,
            call_seconds,
            rejected,
            queue_depth,
            in_flight,
            reloads,
            rollouts,
            plugin_loads,
            seen_loads: Mutex::new(LoadStats::default()),
        }
    }

    /// Counts the calls of a finished check.
    pub fn record_check(&self, report: &CheckReport) {
        for checkpoint in &report.checkpoints {
            for validator in &checkpoint.validators {
                let plugin = validator.plugin.clone();
                let kind = match &validator.report.outcome {
                    CallOutcome::Completed(verdict) => verdict.outcome.to_string(),
                    CallOutcome::Refused(_) => "refused".to_owned(),
                    CallOutcome::Stopped(failure) => failure.kind.as_str().to_owned(),
                };
                let failed = !matches!(validator.report.outcome, CallOutcome::Completed(_));
                let labels = CallLabels { plugin, kind };
                self.calls.get_or_create(&labels).inc();
                if failed {
                    self.call_failures.get_or_create(&labels).inc();
                }
                self.call_seconds
                    .get_or_create(&PluginLabels {
                        plugin: labels.plugin,
                    })
                    .observe(validator.report.elapsed.as_secs_f64());
            }
        }
    }

    pub fn reject(&self, reason: &str) {
        self.rejected
            .get_or_create(&ReasonLabels {
                reason: reason.to_owned(),
            })
            .inc();
    }

    /// The metrics as OpenMetrics text, with the runtime's load counters
    /// brought up to date first.
    pub fn encode(&self, runtime: &Runtime) -> String {
        let now = runtime.load_stats();
        {
            let mut seen = self
                .seen_loads
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner());
            for (source, was, is) in [
                ("memory", seen.from_memory, now.from_memory),
                ("disk", seen.from_disk, now.from_disk),
                ("compiled", seen.compiled, now.compiled),
            ] {
                let counter = self.plugin_loads.get_or_create(&CacheLabels {
                    source: source.to_owned(),
                });
                counter.inc_by(is.saturating_sub(was));
            }
            *seen = now;
        }
        let mut out = String::new();
        // Writing to a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}
