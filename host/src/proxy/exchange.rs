//! One request's record, from arrival to the end of its response (or of
//! its connection): what the envelope and the plugin made of it, what was
//! applied, what the client got. It is finalised exactly once, when it is
//! dropped (the body sent, the connection reset or closed, the client
//! gone), into the stats, the guardrail window and the decision log; and
//! the body wrapper that carries it and counts what the client receives.

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::task::{Context, Poll, ready};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use http_body_util::combinators::UnsyncBoxBody;

use crate::proxy::body::{BoxError, Truncated};
use crate::proxy::guardrails::millis_f64;
use crate::proxy::log::{LogEvent, LogTimings, LoggedOutcome};
use crate::proxy::server::{Shared, StopReason};
use crate::proxy::stats::{RequestEnd, SkipReason};
use crate::runtime::inject::RequestInfo;

/// The response body type of the proxy.
pub type ProxyBody = UnsyncBoxBody<Bytes, BoxError>;

/// What the plugin was asked and answered.
pub(crate) struct Asked {
    pub(crate) request: RequestInfo,
    pub(crate) outcome: LoggedOutcome,
    pub(crate) plugin_time: Duration,
}

/// One request, finalised on drop.
pub(crate) struct RequestRecord {
    shared: Arc<Shared>,
    pub(crate) sequence: u64,
    pub(crate) arrived: Instant,
    pub(crate) arrived_ms: u64,
    pub(crate) route: String,
    pub(crate) trace_id: Option<String>,
    pub(crate) request_bytes: Option<u64>,
    pub(crate) asked: Option<Asked>,
    pub(crate) skipped: Option<SkipReason>,
    pub(crate) applied: Vec<&'static str>,
    holds_fault_slot: bool,
    pub(crate) status: Option<u16>,
    pub(crate) head_at: Option<Instant>,
    pub(crate) response_bytes: u64,
    pub(crate) end: Option<RequestEnd>,
}

impl RequestRecord {
    pub(crate) fn new(
        shared: Arc<Shared>,
        sequence: u64,
        arrived: Instant,
        route: String,
        trace_id: Option<String>,
        request_bytes: Option<u64>,
    ) -> RequestRecord {
        let arrived_ms = shared.elapsed_ms_at(arrived);
        shared.in_flight.fetch_add(1, Ordering::Relaxed);
        RequestRecord {
            shared,
            sequence,
            arrived,
            arrived_ms,
            route,
            trace_id,
            request_bytes,
            asked: None,
            skipped: None,
            applied: Vec::new(),
            holds_fault_slot: false,
            status: None,
            head_at: None,
            response_bytes: 0,
            end: None,
        }
    }

    /// Notes a fault kind as applied (once).
    pub(crate) fn apply(&mut self, kind: &'static str) {
        if !self.applied.contains(&kind) {
            self.applied.push(kind);
        }
    }

    /// Notes why a decided fault was not applied.
    pub(crate) fn skip(&mut self, reason: SkipReason) {
        self.skipped = Some(reason);
        if let Ok(mut stats) = self.shared.stats.lock() {
            stats.skip(reason);
        }
    }

    /// Takes a slot under the concurrent-fault cap; false when full.
    pub(crate) fn take_fault_slot(&mut self) -> bool {
        if self.holds_fault_slot {
            return true;
        }
        let cap = self.shared.config.envelope.max_concurrent_faults;
        let taken =
            self.shared
                .active_faults
                .fetch_update(Ordering::AcqRel, Ordering::Acquire, |active| {
                    (active < cap).then_some(active + 1)
                });
        match taken {
            Ok(before) => {
                self.shared
                    .max_active_faults
                    .fetch_max(before + 1, Ordering::AcqRel);
                self.holds_fault_slot = true;
                true
            }
            Err(_) => false,
        }
    }

    /// The response head is about to be sent.
    pub(crate) fn head_sent(&mut self, status: u16) {
        self.status = Some(status);
        self.head_at = Some(Instant::now());
    }

    fn finalize(&mut self) {
        let shared = Arc::clone(&self.shared);
        let now = Instant::now();
        let end = self.end.unwrap_or(RequestEnd::ClientGone);
        let error = end.is_error() || self.status.is_some_and(|status| status >= 500);
        let latency = self
            .head_at
            .unwrap_or(now)
            .saturating_duration_since(self.arrived);
        if self.holds_fault_slot {
            shared.active_faults.fetch_sub(1, Ordering::AcqRel);
            self.holds_fault_slot = false;
        }
        shared.in_flight.fetch_sub(1, Ordering::Relaxed);
        if let Ok(mut stats) = shared.stats.lock() {
            *stats.ends.entry(end).or_default() += 1;
            if let Some(status) = self.status {
                *stats.statuses.entry(status).or_default() += 1;
            }
            if error {
                stats.client_errors += 1;
            }
            if end == RequestEnd::BodyError {
                stats.upstream_errors += 1;
            }
            stats.latency.record(latency);
            if !self.applied.is_empty() {
                stats.faulted += 1;
                for kind in &self.applied {
                    *stats.faults.entry(kind).or_default() += 1;
                }
            }
            stats.bytes_to_clients += self.response_bytes;
        }
        let elapsed_ms = shared.elapsed_ms_at(now);
        let breaches = match shared.guardrails.lock() {
            Ok(mut window) => window.record(now, latency, error, elapsed_ms),
            Err(_) => Vec::new(),
        };
        if let Some(first) = breaches.first()
            && shared.stop(StopReason::GuardrailBreach(first.clone()))
            && let Ok(mut recorded) = shared.breaches.lock()
        {
            recorded.extend(breaches);
        }
        if let (Some(asked), Some(log)) = (self.asked.take(), &shared.log) {
            let ms = |d: Duration| millis_f64(d);
            log.write(&LogEvent {
                sequence: self.sequence,
                route: std::mem::take(&mut self.route),
                request: asked.request,
                outcome: asked.outcome,
                applied: self.applied.iter().map(|k| (*k).to_owned()).collect(),
                skipped: self.skipped.map(|s| s.as_str().to_owned()),
                status: self.status,
                end: end.as_str().to_owned(),
                request_bytes: self.request_bytes,
                response_bytes: self.response_bytes,
                timings: LogTimings {
                    arrived_ms: self.arrived_ms,
                    plugin_ms: ms(asked.plugin_time),
                    head_ms: self
                        .head_at
                        .map(|head| ms(head.saturating_duration_since(self.arrived))),
                    total_ms: ms(now.saturating_duration_since(self.arrived)),
                },
                trace_id: self.trace_id.take(),
            });
        }
    }
}

impl Drop for RequestRecord {
    fn drop(&mut self) {
        self.finalize();
    }
}

/// A response body that counts what the client receives and carries the
/// request's record until the body ends (or is dropped).
pub(crate) struct TrackedBody {
    inner: ProxyBody,
    /// The length the body announced, when it did.
    exact: Option<u64>,
    record: Option<RequestRecord>,
}

impl TrackedBody {
    /// `record` has had `head_sent` called. Bodies that cannot have
    /// content (HEAD, 204, 304) end with the head.
    pub(crate) fn new(inner: ProxyBody, mut record: RequestRecord, bodiless: bool) -> TrackedBody {
        if bodiless || inner.is_end_stream() {
            record.end = Some(RequestEnd::Complete);
        }
        TrackedBody {
            exact: inner.size_hint().exact(),
            inner,
            record: Some(record),
        }
    }

    fn finish(&mut self, end: RequestEnd) {
        if let Some(mut record) = self.record.take() {
            if record.end.is_none() {
                record.end = Some(end);
            }
            drop(record);
        }
    }
}

impl Drop for TrackedBody {
    fn drop(&mut self) {
        // Dropped before its end: hyper saw the end first (a trailer-less
        // end of stream), or the client went away mid-body.
        if self.record.is_some() {
            let end = if self.inner.is_end_stream() {
                RequestEnd::Complete
            } else {
                RequestEnd::ClientGone
            };
            self.finish(end);
        }
    }
}

impl Body for TrackedBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = self.get_mut();
        let polled = ready!(Pin::new(&mut this.inner).poll_frame(cx));
        match &polled {
            None => this.finish(RequestEnd::Complete),
            Some(Ok(frame)) => {
                if let (Some(data), Some(record)) = (frame.data_ref(), this.record.as_mut()) {
                    record.response_bytes += data.len() as u64;
                    // hyper stops polling a body that says it has ended, or
                    // that has sent its announced length.
                    if this.inner.is_end_stream() || this.exact == Some(record.response_bytes) {
                        this.finish(RequestEnd::Complete);
                    }
                }
            }
            Some(Err(err)) => {
                let end = if err.is::<Truncated>() {
                    RequestEnd::Truncated
                } else {
                    RequestEnd::BodyError
                };
                this.finish(end);
            }
        }
        Poll::Ready(polled)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
