//! A running experiment: [`Experiment::start`] (validate, probe, bind,
//! serve), the state its requests share, the stop signal and
//! [`StopHandle`], the accept loop and each client connection (keep-alive
//! HTTP/1.1, closed or reset on a fault's demand), and
//! [`RunningExperiment::finish`] (wait for a stop, drain within a bound,
//! report).

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use serde::Serialize;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::{JoinHandle, JoinSet};

use crate::proxy::admin;
use crate::proxy::config::ExperimentConfig;
use crate::proxy::decider::{DeciderInfo, FaultDecider};
use crate::proxy::envelope::EnvelopeMatcher;
use crate::proxy::error::ProxyError;
use crate::proxy::guardrails::{Breach, GuardrailWindow};
use crate::proxy::handler;
use crate::proxy::log::{DecisionLogWriter, LOG_FORMAT, LogHeader};
use crate::proxy::request::{AttemptTracker, DEFAULT_TRACKED_KEYS};
use crate::proxy::stats::{ExperimentReport, ExperimentStats, StatsRecorder};
use crate::proxy::upstream::{self, UpstreamClient};

/// How long `finish` lets in-flight requests complete before closing
/// their connections.
pub const DEFAULT_DRAIN_TIMEOUT: Duration = Duration::from_secs(5);

/// How long a client may take to send a request head.
const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(30);

/// Why an experiment stopped.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "kebab-case", tag = "kind")]
pub enum StopReason {
    /// Its duration ran out.
    DurationElapsed,
    /// Someone stopped it (`by`: `admin`, `ctrl-c`, a caller's name).
    Stopped { by: String },
    /// A guardrail was crossed.
    GuardrailBreach(Breach),
    /// The plugin failed this many times.
    PluginFailures { count: u32 },
}

impl std::fmt::Display for StopReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StopReason::DurationElapsed => f.write_str("its duration elapsed"),
            StopReason::Stopped { by } => write!(f, "stopped by {by}"),
            StopReason::GuardrailBreach(breach) => write!(
                f,
                "guardrail {} breached: {} over the limit {} ({} requests in the window)",
                breach.guardrail, breach.observed, breach.limit, breach.window_requests
            ),
            StopReason::PluginFailures { count } => {
                write!(f, "the plugin failed {count} times")
            }
        }
    }
}

/// The stop signal: the first reason wins.
#[derive(Debug)]
struct StopSignal {
    reason: watch::Sender<Option<StopReason>>,
}

impl StopSignal {
    fn stop(&self, reason: StopReason) -> bool {
        self.reason.send_if_modified(|current| {
            if current.is_none() {
                *current = Some(reason);
                true
            } else {
                false
            }
        })
    }
}

/// Stops an experiment from anywhere (Ctrl-C handlers, tests, a workload).
#[derive(Debug, Clone)]
pub struct StopHandle {
    signal: Arc<StopSignal>,
}

impl StopHandle {
    /// Stops faults at once (in-flight delays and hangs are cut short);
    /// `finish` then drains. Returns whether this call stopped it (false
    /// when it had already stopped).
    pub fn stop(&self, reason: StopReason) -> bool {
        self.signal.stop(reason)
    }

    pub fn is_stopped(&self) -> bool {
        self.signal.reason.borrow().is_some()
    }

    pub fn reason(&self) -> Option<StopReason> {
        self.signal.reason.borrow().clone()
    }

    /// Resolves once the experiment has stopped.
    pub async fn stopped(&self) {
        let mut receiver = self.signal.reason.subscribe();
        let _ = receiver.wait_for(Option::is_some).await;
    }
}

/// State shared by an experiment's requests.
pub(crate) struct Shared {
    pub(crate) config: ExperimentConfig,
    pub(crate) matcher: EnvelopeMatcher,
    pub(crate) redacted: Vec<String>,
    pub(crate) decider: Arc<dyn FaultDecider>,
    pub(crate) decider_info: DeciderInfo,
    pub(crate) upstream: UpstreamClient,
    pub(crate) started: Instant,
    pub(crate) started_unix_ms: u64,
    pub(crate) sequence: AtomicU64,
    pub(crate) active_faults: AtomicU32,
    pub(crate) max_active_faults: AtomicU32,
    pub(crate) in_flight: AtomicU64,
    stop: Arc<StopSignal>,
    pub(crate) stats: Mutex<StatsRecorder>,
    pub(crate) guardrails: Mutex<GuardrailWindow>,
    pub(crate) breaches: Mutex<Vec<Breach>>,
    pub(crate) attempts: Mutex<AttemptTracker>,
    pub(crate) log: Option<DecisionLogWriter>,
}

impl Shared {
    pub(crate) fn elapsed_ms_at(&self, at: Instant) -> u64 {
        u64::try_from(at.saturating_duration_since(self.started).as_millis()).unwrap_or(u64::MAX)
    }

    pub(crate) fn deadline(&self) -> Instant {
        self.started + self.config.duration
    }

    /// Stops the experiment; true if this call did.
    pub(crate) fn stop(&self, reason: StopReason) -> bool {
        self.stop.stop(reason)
    }

    pub(crate) fn stop_reason(&self) -> Option<StopReason> {
        self.stop.reason.borrow().clone()
    }

    /// Whether faults may be applied now: not stopped, within the
    /// duration.
    pub(crate) fn injecting(&self) -> bool {
        self.stop.reason.borrow().is_none() && Instant::now() < self.deadline()
    }

    /// Resolves when faults must end: a stop, or the end of the duration.
    pub(crate) fn until_stopped(&self) -> impl Future<Output = ()> + Send + 'static {
        let mut receiver = self.stop.reason.subscribe();
        let deadline = tokio::time::Instant::from_std(self.deadline());
        async move {
            tokio::select! {
                _ = receiver.wait_for(Option::is_some) => {}
                _ = tokio::time::sleep_until(deadline) => {}
            }
        }
    }

    /// Sleeps `duration`, cut short by a stop; false when cut.
    pub(crate) async fn sleep_unless_stopped(&self, duration: Duration) -> bool {
        if duration.is_zero() {
            return self.injecting();
        }
        tokio::select! {
            _ = tokio::time::sleep(duration) => self.injecting(),
            _ = self.until_stopped() => false,
        }
    }

    pub(crate) fn snapshot(&self) -> ExperimentStats {
        let injecting = self.injecting();
        let elapsed = self.started.elapsed();
        match self.stats.lock() {
            Ok(stats) => stats.snapshot(
                self.active_faults.load(Ordering::Acquire),
                self.max_active_faults.load(Ordering::Acquire),
                elapsed,
                injecting,
            ),
            Err(poisoned) => poisoned.into_inner().snapshot(0, 0, elapsed, injecting),
        }
    }

    /// A plugin failure: counted; past the cap, injection stops.
    pub(crate) fn plugin_failed(&self, kind: &str) {
        let count = match self.stats.lock() {
            Ok(mut stats) => {
                stats.plugin_failures += 1;
                *stats
                    .plugin_failures_by_kind
                    .entry(kind.to_owned())
                    .or_default() += 1;
                stats.plugin_failures
            }
            Err(_) => return,
        };
        let cap = self.config.envelope.max_plugin_failures;
        if count >= u64::from(cap) {
            self.stop(StopReason::PluginFailures {
                count: u32::try_from(count).unwrap_or(u32::MAX),
            });
        }
    }
}

fn unix_ms(at: SystemTime) -> u64 {
    at.duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

/// Starts experiments.
pub struct Experiment;

impl Experiment {
    /// Validates the config (blast radius 0..=100, duration > 0, globs,
    /// guardrail ranges, loopback addresses), reads the CA file, probes the
    /// upstream (a TCP connect within a few seconds), creates the decision
    /// log, binds the listener and the admin endpoint, and starts serving.
    /// Nothing is left running on error.
    pub async fn start(
        config: ExperimentConfig,
        decider: Arc<dyn FaultDecider>,
    ) -> Result<RunningExperiment, ProxyError> {
        let matcher = config.validate()?;
        let upstream = UpstreamClient::new(&config)?;
        upstream::probe(&config.upstream, upstream::PROBE_TIMEOUT).await?;
        let listener = TcpListener::bind(config.listen)
            .await
            .map_err(|err| ProxyError::bind(config.listen, err))?;
        let local_addr = listener
            .local_addr()
            .map_err(|err| ProxyError::bind(config.listen, err))?;
        let admin_listener = match config.admin_listen {
            Some(address) => Some(
                TcpListener::bind(address)
                    .await
                    .map_err(|err| ProxyError::bind(address, err))?,
            ),
            None => None,
        };
        let admin_addr =
            match &admin_listener {
                Some(listener) => Some(listener.local_addr().map_err(|err| {
                    ProxyError::bind(config.admin_listen.unwrap_or(local_addr), err)
                })?),
                None => None,
            };
        let redacted = config.redacted_header_names();
        let decider_info = decider.info();
        let started_at = SystemTime::now();
        let log = match &config.decision_log {
            Some(path) => Some(DecisionLogWriter::create(
                path,
                &LogHeader {
                    format: LOG_FORMAT.to_owned(),
                    experiment: config.name.clone(),
                    seed: config.seed,
                    upstream: config.upstream.to_string(),
                    plugin: decider_info.clone(),
                    idempotency_header: config.idempotency_header.to_ascii_lowercase(),
                    redacted_headers: redacted.clone(),
                    started_unix_ms: unix_ms(started_at),
                },
            )?),
            None => None,
        };
        let (stop_sender, _) = watch::channel(None);
        let shared = Arc::new(Shared {
            matcher,
            redacted,
            decider,
            decider_info,
            upstream,
            started: Instant::now(),
            started_unix_ms: unix_ms(started_at),
            sequence: AtomicU64::new(0),
            active_faults: AtomicU32::new(0),
            max_active_faults: AtomicU32::new(0),
            in_flight: AtomicU64::new(0),
            stop: Arc::new(StopSignal {
                reason: stop_sender,
            }),
            stats: Mutex::new(StatsRecorder::default()),
            guardrails: Mutex::new(GuardrailWindow::new(config.guardrails.clone())),
            breaches: Mutex::new(Vec::new()),
            attempts: Mutex::new(AttemptTracker::new(DEFAULT_TRACKED_KEYS)),
            log,
            config,
        });
        let (shutdown, shutdown_receiver) = watch::channel(None);
        let accept_task = tokio::spawn(accept_loop(
            Arc::clone(&shared),
            listener,
            shutdown_receiver.clone(),
        ));
        let admin_task = admin_listener.map(|listener| {
            tokio::spawn(admin::serve(
                Arc::clone(&shared),
                listener,
                shutdown_receiver,
            ))
        });
        let timer_task = {
            let shared = Arc::clone(&shared);
            tokio::spawn(async move {
                tokio::time::sleep_until(tokio::time::Instant::from_std(shared.deadline())).await;
                shared.stop(StopReason::DurationElapsed);
            })
        };
        tracing::info!(
            experiment = %crate::escape::single_line(&shared.config.name),
            listen = %local_addr,
            upstream = %crate::escape::single_line(&shared.config.upstream.to_string()),
            "fault experiment started"
        );
        Ok(RunningExperiment {
            shared,
            local_addr,
            admin_addr,
            shutdown,
            accept_task: Some(accept_task),
            admin_task,
            timer_task: Some(timer_task),
        })
    }
}

/// An experiment that is serving. Dropping it without `finish` ends its
/// tasks abruptly.
pub struct RunningExperiment {
    shared: Arc<Shared>,
    local_addr: SocketAddr,
    admin_addr: Option<SocketAddr>,
    shutdown: watch::Sender<Option<Duration>>,
    accept_task: Option<JoinHandle<u64>>,
    admin_task: Option<JoinHandle<()>>,
    timer_task: Option<JoinHandle<()>>,
}

impl RunningExperiment {
    /// Where clients connect.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// The admin endpoint, when configured.
    pub fn admin_addr(&self) -> Option<SocketAddr> {
        self.admin_addr
    }

    pub fn stop_handle(&self) -> StopHandle {
        StopHandle {
            signal: Arc::clone(&self.shared.stop),
        }
    }

    /// Live counts.
    pub fn snapshot(&self) -> ExperimentStats {
        self.shared.snapshot()
    }

    /// Why it stopped, once it has.
    pub fn stop_reason(&self) -> Option<StopReason> {
        self.shared.stop_reason()
    }

    /// Waits for the end of the duration or a stop (handle, admin
    /// `POST /stop`, guardrail breach, too many plugin failures), drains
    /// in-flight requests for at most [`DEFAULT_DRAIN_TIMEOUT`], closes the
    /// listener and returns the report.
    pub async fn finish(self) -> ExperimentReport {
        self.finish_within(DEFAULT_DRAIN_TIMEOUT).await
    }

    /// [`RunningExperiment::finish`] with another drain bound.
    pub async fn finish_within(mut self, drain: Duration) -> ExperimentReport {
        self.stop_handle().stopped().await;
        let _ = self.shutdown.send(Some(drain));
        let abandoned = match self.accept_task.take() {
            Some(task) => task.await.unwrap_or(0),
            None => 0,
        };
        if let Some(task) = self.admin_task.take() {
            let _ = task.await;
        }
        if let Some(task) = self.timer_task.take() {
            task.abort();
        }
        let shared = &self.shared;
        let decision_log_error = shared.log.as_ref().and_then(DecisionLogWriter::flush);
        let stats = shared.snapshot();
        let breaches = shared
            .breaches
            .lock()
            .map(|b| b.clone())
            .unwrap_or_default();
        let report = ExperimentReport {
            name: shared.config.name.clone(),
            seed: shared.config.seed,
            upstream: shared.config.upstream.to_string(),
            decider: shared.decider_info.clone(),
            started_unix_ms: shared.started_unix_ms,
            ended_unix_ms: unix_ms(SystemTime::now()),
            stop_reason: shared.stop_reason().unwrap_or(StopReason::DurationElapsed),
            stats,
            breaches,
            decision_log: shared.log.as_ref().map(|log| log.path().to_owned()),
            decision_log_error,
            abandoned_in_drain: abandoned,
        };
        tracing::info!(
            experiment = %crate::escape::single_line(&report.name),
            reason = %report.stop_reason,
            requests = report.stats.requests,
            faulted = report.stats.faulted,
            "fault experiment finished"
        );
        report
    }
}

impl Drop for RunningExperiment {
    fn drop(&mut self) {
        // Aborting the accept loop drops its connections' tasks too.
        if let Some(task) = self.accept_task.take() {
            task.abort();
        }
        if let Some(task) = self.admin_task.take() {
            task.abort();
        }
        if let Some(task) = self.timer_task.take() {
            task.abort();
        }
    }
}

/// Accepts clients until shutdown, then drains: connections finish their
/// current request and close, for at most the drain bound; what is left
/// is closed. Returns the requests abandoned.
async fn accept_loop(
    shared: Arc<Shared>,
    listener: TcpListener,
    mut shutdown: watch::Receiver<Option<Duration>>,
) -> u64 {
    let (drain_sender, drain_receiver) = watch::channel(false);
    let mut connections = JoinSet::new();
    let drain_bound = loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _peer)) => {
                    connections.spawn(serve_connection(
                        Arc::clone(&shared),
                        stream,
                        drain_receiver.clone(),
                    ));
                }
                Err(err) => {
                    // Out of file descriptors and the like: back off a
                    // little rather than spin.
                    tracing::warn!(error = %err, "accepting a client failed");
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            },
            changed = shutdown.changed() => {
                match changed {
                    Ok(()) => if let Some(bound) = *shutdown.borrow() { break bound },
                    Err(_) => break DEFAULT_DRAIN_TIMEOUT,
                }
            }
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    };
    drop(listener);
    let _ = drain_sender.send(true);
    let drained = tokio::time::timeout(drain_bound, async {
        while connections.join_next().await.is_some() {}
    })
    .await;
    if drained.is_ok() {
        return 0;
    }
    let abandoned = shared.in_flight.load(Ordering::Relaxed);
    connections.shutdown().await;
    abandoned
}

/// What a fault asks of its client connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ConnCommand {
    Serve,
    /// Close (FIN) without answering.
    Close,
    /// Close with a TCP reset.
    Reset,
}

/// State shared by a connection and its stream.
#[derive(Debug, Default)]
struct ConnState {
    reset: AtomicBool,
    /// Bytes written raw just before closing (a 1xx "response").
    final_bytes: Mutex<Option<Vec<u8>>>,
}

/// What a request handler may do to its client connection.
#[derive(Clone)]
pub(crate) struct ConnControl {
    state: Arc<ConnState>,
    commands: Arc<watch::Sender<ConnCommand>>,
}

impl ConnControl {
    /// Closes the connection with a TCP reset (SO_LINGER 0).
    pub(crate) fn reset(&self) {
        self.state.reset.store(true, Ordering::Release);
        let _ = self.commands.send(ConnCommand::Reset);
    }

    /// Closes the connection without answering.
    pub(crate) fn close(&self) {
        let _ = self.commands.send(ConnCommand::Close);
    }

    /// Writes `bytes` as they are, then closes: how a 1xx status (which
    /// HTTP/1.1 cannot send as a final response) reaches the client.
    pub(crate) fn write_raw_and_close(&self, bytes: Vec<u8>) {
        if let Ok(mut slot) = self.state.final_bytes.lock() {
            *slot = Some(bytes);
        }
        let _ = self.commands.send(ConnCommand::Close);
    }
}

/// A client's TCP stream; on drop it writes the raw final bytes (if any)
/// and, for a reset, sets SO_LINGER 0 so the close sends RST.
struct ClientStream {
    stream: TcpStream,
    state: Arc<ConnState>,
}

impl Drop for ClientStream {
    fn drop(&mut self) {
        if let Ok(mut slot) = self.state.final_bytes.lock()
            && let Some(bytes) = slot.take()
        {
            // A small head into an empty socket buffer: one try is enough;
            // a client that does not read gets less.
            let _ = self.stream.try_write(&bytes);
        }
        if self.state.reset.load(Ordering::Acquire) {
            let socket = socket2::SockRef::from(&self.stream);
            if let Err(err) = socket.set_linger(Some(Duration::ZERO)) {
                tracing::debug!(error = %err, "SO_LINGER 0 failed; the close will not reset");
            }
        }
    }
}

impl AsyncRead for ClientStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_read(cx, buf)
    }
}

impl AsyncWrite for ClientStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().stream).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().stream).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }
}

/// Serves one client connection (keep-alive HTTP/1.1) until it closes, a
/// fault closes or resets it, or the drain asks it to finish.
async fn serve_connection(
    shared: Arc<Shared>,
    stream: TcpStream,
    mut drain: watch::Receiver<bool>,
) {
    let _ = stream.set_nodelay(true);
    let state = Arc::new(ConnState::default());
    let (commands, mut command_receiver) = watch::channel(ConnCommand::Serve);
    let control = ConnControl {
        state: Arc::clone(&state),
        commands: Arc::new(commands),
    };
    let io = TokioIo::new(ClientStream { stream, state });
    let service =
        service_fn(move |request| handler::handle(Arc::clone(&shared), control.clone(), request));
    let connection = http1::Builder::new()
        .timer(TokioTimer::new())
        .keep_alive(true)
        .header_read_timeout(HEADER_READ_TIMEOUT)
        .serve_connection(io, service);
    tokio::pin!(connection);
    let mut draining = *drain.borrow();
    if draining {
        connection.as_mut().graceful_shutdown();
    }
    loop {
        tokio::select! {
            result = connection.as_mut() => {
                if let Err(err) = result {
                    tracing::debug!(error = %err, "client connection ended with an error");
                }
                break;
            }
            // A fault closes or resets the connection: dropping it drops
            // the stream (which resets if asked) and the request's record.
            _ = command_receiver.wait_for(|command| *command != ConnCommand::Serve) => break,
            _ = drain.changed(), if !draining => {
                draining = true;
                connection.as_mut().graceful_shutdown();
            }
        }
    }
}
