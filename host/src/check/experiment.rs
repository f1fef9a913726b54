//! Experiments at a checkpoint: turning a plan's `[[checkpoint.experiment]]`
//! into running fault proxies (with the production approval rule and the
//! built-in echo upstream), driving their synthetic workloads, and turning
//! what they observed into metrics the checkpoint's validators judge.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use http_body_util::Full;
use hyper::body::Bytes;
use serde::Serialize;
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::check::plan::{CheckpointEntry, ExperimentEntry, Plan, UpstreamSpec};
use crate::proxy::{
    Envelope, Experiment, ExperimentConfig, ExperimentReport, Guardrails, PluginDecider,
    ProxyError, RequestTemplate, RetryPolicy, RouteMatch, RunningExperiment, StopHandle,
    StopReason, Upstream, Workload, WorkloadReport, run_workload,
};
use crate::runtime::change::Metric;
use crate::runtime::digest::Sha256Digest;
use crate::runtime::plugin::Plugin;

/// Who allowed experiments against production, and when.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub struct Approval {
    pub by: String,
    /// Milliseconds since the Unix epoch.
    pub at_unix_ms: u64,
}

impl Approval {
    /// An approval by `by`, now.
    pub fn now(by: impl Into<String>) -> Approval {
        Approval {
            by: by.into(),
            at_unix_ms: unix_millis(),
        }
    }
}

fn unix_millis() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// One experiment that ran at a checkpoint.
#[derive(Debug, Clone)]
pub struct ExperimentResult {
    pub name: String,
    pub injector: String,
    /// sha256 of the injector component that ran.
    pub digest: Sha256Digest,
    pub seed: u64,
    /// The upstream as the plan gives it (`builtin:echo` for the built-in).
    pub upstream: String,
    pub approval: Option<Approval>,
    pub report: ExperimentReport,
    pub workload: Option<WorkloadReport>,
}

impl ExperimentResult {
    /// Whether a guardrail ended the experiment (the checkpoint fails).
    pub fn breached(&self) -> bool {
        matches!(self.report.stop_reason, StopReason::GuardrailBreach(_))
    }

    /// Whether the injector failed so often that the experiment stopped
    /// injecting (it proved nothing: the checkpoint is inconclusive).
    pub fn injector_gave_up(&self) -> bool {
        matches!(self.report.stop_reason, StopReason::PluginFailures { .. })
    }

    /// The experiment's figures as metrics for the checkpoint's validators:
    /// `experiment.<name>.<metric>`, and the workload's as
    /// `experiment.<name>.workload.<metric>`.
    pub fn metrics(&self) -> Vec<Metric> {
        let prefix = format!("experiment.{}.", self.name);
        let mut metrics: Vec<Metric> = self
            .report
            .metrics()
            .into_iter()
            .map(|(name, value)| Metric {
                name: format!("{prefix}{name}"),
                value,
            })
            .collect();
        if let Some(workload) = &self.workload {
            metrics.extend(
                workload_metrics(workload)
                    .into_iter()
                    .map(|(name, value)| Metric {
                        name: format!("{prefix}workload.{name}"),
                        value,
                    }),
            );
        }
        metrics
    }
}

/// What the synthetic client saw, as metrics: `logical-requests`,
/// `attempts`, `successes`, `failures`, `failed-rate` (failed logical
/// requests ÷ logical requests, after retries), `attempts-per-request`,
/// `attempts-max`, `connection-errors`, `timeouts`.
pub fn workload_metrics(workload: &WorkloadReport) -> Vec<(String, f64)> {
    let logical = workload.logical_requests as f64;
    let mut metrics = vec![
        ("logical-requests".to_owned(), logical),
        ("attempts".to_owned(), workload.attempts as f64),
        ("successes".to_owned(), workload.successes as f64),
        ("failures".to_owned(), workload.failures as f64),
        ("attempts-max".to_owned(), f64::from(workload.attempts_max)),
        (
            "connection-errors".to_owned(),
            workload.connection_errors as f64,
        ),
        ("timeouts".to_owned(), workload.timeouts as f64),
    ];
    if workload.logical_requests > 0 {
        metrics.push(("failed-rate".to_owned(), workload.failures as f64 / logical));
        metrics.push((
            "attempts-per-request".to_owned(),
            workload.attempts as f64 / logical,
        ));
    }
    metrics
}

/// Why a checkpoint's experiments could not run. Nothing is left running.
#[derive(Debug, thiserror::Error)]
pub enum ExperimentError {
    #[error(
        "checkpoint `{checkpoint}` targets production: experiment `{experiment}` needs a recorded \
         approval (pass --approve-experiments NAME to record who allowed it)"
    )]
    NeedsApproval {
        checkpoint: String,
        experiment: String,
    },
    #[error("experiment `{experiment}` at checkpoint `{checkpoint}` could not start")]
    Start {
        checkpoint: String,
        experiment: String,
        #[source]
        source: ProxyError,
    },
    #[error("experiment `{experiment}`: the built-in echo upstream could not start")]
    EchoUpstream {
        experiment: String,
        #[source]
        source: std::io::Error,
    },
    #[error("experiment `{experiment}`: its injector `{injector}` was not loaded")]
    NotLoaded {
        experiment: String,
        injector: String,
    },
}

/// A stop signal from the caller (Ctrl-C, SIGTERM): when it turns `true`
/// every running experiment stops faulting at once and drains.
pub type StopSignal = watch::Receiver<bool>;

/// Runs every experiment of `entry` at once: checks approvals, starts them
/// all (stopping those already started if one cannot start), drives their
/// workloads, and waits for each to end.
pub async fn run_experiments(
    plan: &Plan,
    entry: &CheckpointEntry,
    injectors: &BTreeMap<String, Plugin>,
    approval: Option<&Approval>,
    stop: Option<StopSignal>,
) -> Result<Vec<ExperimentResult>, ExperimentError> {
    if entry.experiments.is_empty() {
        return Ok(Vec::new());
    }
    if entry.is_production() && approval.is_none() {
        return Err(ExperimentError::NeedsApproval {
            checkpoint: entry.name.clone(),
            experiment: entry.experiments[0].name.clone(),
        });
    }
    let mut started: Vec<Started> = Vec::new();
    for experiment in &entry.experiments {
        match start_one(plan, entry, experiment, injectors).await {
            Ok(one) => started.push(one),
            Err(err) => {
                for one in started {
                    one.abandon().await;
                }
                return Err(err);
            }
        }
    }
    let stop_handles: Vec<StopHandle> = started.iter().map(|s| s.running.stop_handle()).collect();
    let watcher = stop.map(|mut signal| {
        let handles = stop_handles.clone();
        tokio::spawn(async move {
            while signal.changed().await.is_ok() {
                if *signal.borrow() {
                    for handle in &handles {
                        handle.stop(StopReason::Stopped {
                            by: "signal".to_owned(),
                        });
                    }
                    break;
                }
            }
        })
    });
    let mut tasks = Vec::new();
    for one in started {
        let approval = entry.is_production().then(|| approval.cloned()).flatten();
        tasks.push(tokio::spawn(one.run(approval)));
    }
    let mut results = Vec::new();
    for task in tasks {
        match task.await {
            Ok(result) => results.push(result),
            Err(err) => tracing::error!("experiment task failed: {err}"),
        }
    }
    if let Some(watcher) = watcher {
        watcher.abort();
    }
    Ok(results)
}

/// One started experiment, with what it needs to run and stop.
struct Started {
    experiment: ExperimentEntry,
    digest: Sha256Digest,
    running: RunningExperiment,
    echo: Option<EchoUpstream>,
    upstream_label: String,
}

impl Started {
    /// Runs the workload (if any), waits for the experiment to end, and
    /// collects the result.
    async fn run(self, approval: Option<Approval>) -> ExperimentResult {
        let workload = match &self.experiment.workload {
            Some(entry) => {
                let workload = Workload {
                    rate_per_second: entry.rate_per_second,
                    duration: entry.duration,
                    concurrency: entry.concurrency,
                    requests: entry
                        .requests
                        .iter()
                        .map(|r| RequestTemplate {
                            method: r.method.clone(),
                            path: r.path.clone(),
                            headers: r
                                .headers
                                .iter()
                                .map(|(n, v)| (n.clone(), v.clone()))
                                .collect(),
                            body: r.body.clone(),
                        })
                        .collect(),
                    retry: RetryPolicy {
                        max_attempts: entry.retry.max_attempts,
                        backoff_initial: entry.retry.backoff_initial,
                        backoff_max: entry.retry.backoff_max,
                        retry_on: entry.retry.retry_on.clone(),
                        attempt_timeout: entry.retry.attempt_timeout,
                    },
                    idempotency_header: self.experiment.idempotency_header.clone(),
                };
                let target = self.running.local_addr();
                Some(run_workload(target, &workload, Some(self.running.stop_handle())).await)
            }
            None => None,
        };
        // A workload shorter than the experiment: nothing more will come,
        // so end it rather than idle until its duration.
        if workload.is_some() {
            self.running.stop_handle().stop(StopReason::Stopped {
                by: "workload finished".to_owned(),
            });
        }
        let report = self.running.finish().await;
        if let Some(echo) = self.echo {
            echo.stop().await;
        }
        ExperimentResult {
            name: self.experiment.name.clone(),
            injector: self.experiment.injector.clone(),
            digest: self.digest,
            seed: self.experiment.seed,
            upstream: self.upstream_label,
            approval,
            report,
            workload,
        }
    }

    /// Stops an experiment that will not run (another could not start).
    async fn abandon(self) {
        self.running.stop_handle().stop(StopReason::Stopped {
            by: "another experiment could not start".to_owned(),
        });
        let _ = self.running.finish().await;
        if let Some(echo) = self.echo {
            echo.stop().await;
        }
    }
}

async fn start_one(
    plan: &Plan,
    entry: &CheckpointEntry,
    experiment: &ExperimentEntry,
    injectors: &BTreeMap<String, Plugin>,
) -> Result<Started, ExperimentError> {
    let plugin = injectors
        .get(&experiment.injector)
        .ok_or_else(|| ExperimentError::NotLoaded {
            experiment: experiment.name.clone(),
            injector: experiment.injector.clone(),
        })?;
    let start_error = |source| ExperimentError::Start {
        checkpoint: entry.name.clone(),
        experiment: experiment.name.clone(),
        source,
    };
    let (echo, upstream_url, upstream_label) = match &experiment.upstream {
        UpstreamSpec::Url(url) => (None, url.clone(), url.clone()),
        UpstreamSpec::BuiltinEcho => {
            let echo =
                EchoUpstream::start()
                    .await
                    .map_err(|source| ExperimentError::EchoUpstream {
                        experiment: experiment.name.clone(),
                        source,
                    })?;
            let url = format!("http://{}", echo.addr);
            (Some(echo), url, "builtin:echo".to_owned())
        }
    };
    let upstream = match Upstream::parse(&upstream_url) {
        Ok(upstream) => upstream,
        Err(err) => {
            if let Some(echo) = echo {
                echo.stop().await;
            }
            return Err(start_error(err));
        }
    };
    let declared = &plan.plugins[&experiment.injector];
    let decider = Arc::new(
        PluginDecider::new(plugin.clone(), experiment.config.clone(), declared.limits)
            .with_path(&declared.path),
    );
    let config = ExperimentConfig {
        name: experiment.name.clone(),
        listen: experiment.listen,
        upstream,
        ca_file: experiment.ca_file.clone(),
        seed: experiment.seed,
        duration: experiment.duration,
        envelope: Envelope {
            blast_radius_percent: experiment.blast_radius_percent,
            max_concurrent_faults: experiment.max_concurrent_faults,
            routes: experiment
                .routes
                .iter()
                .map(|route| RouteMatch {
                    methods: route.methods.clone(),
                    path: route.path.clone(),
                    header: route
                        .header
                        .as_ref()
                        .map(|h| (h.name.clone(), h.value.clone())),
                })
                .collect(),
            protected_paths: experiment.protected_paths.clone(),
            max_delay: experiment.max_delay,
            max_hang: experiment.max_hang,
            max_plugin_failures: experiment.max_plugin_failures,
        },
        guardrails: Guardrails {
            window: experiment.guardrails.window,
            min_requests: experiment.guardrails.min_requests,
            max_error_rate: experiment.guardrails.max_error_rate,
            max_p99_latency: experiment.guardrails.max_p99_latency,
        },
        idempotency_header: experiment.idempotency_header.clone(),
        sensitive_headers: experiment.sensitive_headers.clone(),
        admin_listen: experiment.admin_listen,
        decision_log: experiment.decision_log.clone(),
    };
    match Experiment::start(config, decider).await {
        Ok(running) => Ok(Started {
            experiment: experiment.clone(),
            digest: plugin.digest(),
            running,
            echo,
            upstream_label,
        }),
        Err(err) => {
            if let Some(echo) = echo {
                echo.stop().await;
            }
            Err(start_error(err))
        }
    }
}

/// `builtin:echo`: a small HTTP/1.1 server on a free loopback port that
/// answers every request with 200 and a JSON echo of its method and path
/// (`/bytes/N` answers N bytes), for examples and trying injectors out.
pub struct EchoUpstream {
    pub addr: SocketAddr,
    stop: watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

/// Largest body `/bytes/N` answers with.
const ECHO_MAX_BYTES: usize = 16 * 1024 * 1024;

impl EchoUpstream {
    pub async fn start() -> std::io::Result<EchoUpstream> {
        let listener = TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], 0))).await?;
        let addr = listener.local_addr()?;
        let (stop, mut stopped) = watch::channel(false);
        let task = tokio::spawn(async move {
            loop {
                let accepted = tokio::select! {
                    accepted = listener.accept() => accepted,
                    _ = stopped.changed() => break,
                };
                let Ok((stream, _)) = accepted else {
                    continue;
                };
                let mut connection_stopped = stopped.clone();
                tokio::spawn(async move {
                    let io = hyper_util::rt::TokioIo::new(stream);
                    let service = hyper::service::service_fn(echo);
                    let connection =
                        hyper::server::conn::http1::Builder::new().serve_connection(io, service);
                    tokio::pin!(connection);
                    tokio::select! {
                        _ = connection.as_mut() => {}
                        _ = connection_stopped.changed() => {
                            connection.as_mut().graceful_shutdown();
                            let _ = tokio::time::timeout(Duration::from_secs(1), connection).await;
                        }
                    }
                });
            }
        });
        Ok(EchoUpstream { addr, stop, task })
    }

    pub async fn stop(self) {
        let _ = self.stop.send(true);
        let _ = tokio::time::timeout(Duration::from_secs(2), self.task).await;
    }
}

async fn echo(
    request: hyper::Request<hyper::body::Incoming>,
) -> Result<hyper::Response<Full<Bytes>>, Infallible> {
    let path = request.uri().path().to_owned();
    let body = match path.strip_prefix("/bytes/").map(str::parse::<usize>) {
        Some(Ok(n)) => Bytes::from(vec![b'x'; n.min(ECHO_MAX_BYTES)]),
        _ => Bytes::from(
            serde_json::json!({
                "ok": true,
                "method": request.method().as_str(),
                "path": path,
            })
            .to_string(),
        ),
    };
    let mut response = hyper::Response::new(Full::new(body));
    response.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("application/json"),
    );
    Ok(response)
}
