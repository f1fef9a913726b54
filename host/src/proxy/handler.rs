//! One request's path through an experiment: recorded and grouped with its
//! retries, through the envelope (stopped, route, protected, blast radius),
//! to the plugin, under the concurrency cap, then the faults applied in
//! order: request delay, then abort, reset, hang or forward (with response
//! delay and body faults). A plugin that fails never breaks the request:
//! it is forwarded untouched.

use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{HeaderValue, Request, Response, StatusCode, header};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;

use crate::proxy::body::{BodyFaultPlan, FaultedBody};
use crate::proxy::decider::DecideOutcome;
use crate::proxy::envelope::RouteVerdict;
use crate::proxy::exchange::{Asked, ProxyBody, RequestRecord, TrackedBody};
use crate::proxy::log::LoggedOutcome;
use crate::proxy::request::{content_length, redacted_headers, strip_hop_by_hop, trace_id};
use crate::proxy::seed::{self, STREAM_PLUGIN};
use crate::proxy::server::{ConnControl, Shared};
use crate::proxy::stats::{RequestEnd, SkipReason};
use crate::runtime::inject::{AbortResponse, Action, Decision, RequestInfo, millis};

/// Serves one request.
pub(crate) async fn handle(
    shared: Arc<Shared>,
    connection: ConnControl,
    request: Request<Incoming>,
) -> Result<Response<ProxyBody>, Infallible> {
    let arrived = Instant::now();
    let sequence = shared.sequence.fetch_add(1, Ordering::AcqRel);
    let (parts, body) = request.into_parts();
    let method = parts.method.as_str().to_owned();
    let path = parts.uri.path().to_owned();
    let query = parts.uri.query().map(str::to_owned);
    let headers = redacted_headers(&parts.headers, &shared.redacted);
    let request_bytes = content_length(&parts.headers);
    let mut record = RequestRecord::new(
        Arc::clone(&shared),
        sequence,
        arrived,
        format!("{method} {path}"),
        trace_id(&parts.headers),
        request_bytes,
    );
    let attempt = {
        let key = parts
            .headers
            .get(shared.config.idempotency_header.as_str())
            .map(HeaderValue::as_bytes);
        match shared.attempts.lock() {
            Ok(mut tracker) => tracker.record(key, arrived),
            Err(_) => crate::proxy::request::AttemptRecord {
                attempt: 1,
                gap: None,
            },
        }
    };
    if let Ok(mut stats) = shared.stats.lock() {
        stats.requests += 1;
        if attempt.attempt == 1 {
            stats.logical_requests += 1;
        }
        stats.attempts_max = stats.attempts_max.max(attempt.attempt);
        if let Some(gap) = attempt.gap {
            stats.retry_gaps.record(gap);
        }
    }

    // The envelope, before the plugin hears of the request.
    let eligible = if !shared.injecting() {
        Err(SkipReason::Stopped)
    } else {
        match shared.matcher.classify(&method, &path, &headers) {
            RouteVerdict::NoRoute => Err(SkipReason::Route),
            RouteVerdict::Protected => Err(SkipReason::Protected),
            RouteVerdict::Eligible => {
                if seed::inside_blast_radius(
                    shared.config.seed,
                    sequence,
                    shared.config.envelope.blast_radius_percent,
                ) {
                    Ok(())
                } else {
                    Err(SkipReason::BlastRadius)
                }
            }
        }
    };
    let decision = match eligible {
        Err(reason) => {
            record.skip(reason);
            None
        }
        Ok(()) => {
            let info = RequestInfo {
                method: method.clone(),
                scheme: shared.config.upstream.scheme.as_str().to_owned(),
                authority: shared.config.upstream.authority(),
                path: path.clone(),
                query: query.clone(),
                headers,
                body_size: request_bytes,
                attempt: attempt.attempt,
                sequence,
                elapsed_ms: record.arrived_ms,
                active_faults: shared.active_faults.load(Ordering::Acquire),
                random: seed::request_random(shared.config.seed, sequence, STREAM_PLUGIN),
            };
            if let Ok(mut stats) = shared.stats.lock() {
                stats.decided += 1;
            }
            let asked_at = Instant::now();
            let outcome = shared.decider.decide(&info).await;
            let plugin_time = asked_at.elapsed();
            let logged = LoggedOutcome::from_outcome(&outcome, &shared.redacted);
            record.asked = Some(Asked {
                request: info,
                outcome: logged,
                plugin_time,
            });
            match outcome {
                DecideOutcome::Decided(decision) => Some(decision),
                DecideOutcome::Failed { kind, message } => {
                    tracing::debug!(
                        sequence,
                        kind,
                        error = %crate::escape::single_line(&message),
                        "fault injector failed; forwarding untouched"
                    );
                    shared.plugin_failed(&kind);
                    None
                }
            }
        }
    };

    // Capped by the envelope, and only while the experiment injects and
    // the concurrency cap has room.
    let mut decision = decision
        .map(|decision| capped(decision, &shared))
        .filter(|decision| !decision.is_pass());
    if decision.is_some() {
        if !shared.injecting() {
            record.skip(SkipReason::Stopped);
            decision = None;
        } else if !record.take_fault_slot() {
            record.skip(SkipReason::Concurrency);
            decision = None;
        }
    }
    let decision = decision.unwrap_or(Decision::PASS);

    // Request delay; a stop cuts it short and cancels what follows.
    let mut live = true;
    if decision.delay_request_ms > 0 {
        record.apply("delay");
        live = shared
            .sleep_unless_stopped(millis(decision.delay_request_ms))
            .await;
    }
    let action = if live {
        decision.action.clone()
    } else {
        Action::Forward
    };
    match action {
        Action::Abort(abort) => {
            record.apply("abort");
            if decision.delay_response_ms > 0 && shared.injecting() {
                record.apply("delay");
                shared
                    .sleep_unless_stopped(millis(decision.delay_response_ms))
                    .await;
            }
            Ok(abort_response(abort, record, &connection, &method).await)
        }
        Action::Reset => {
            record.apply("reset");
            record.end = Some(RequestEnd::Reset);
            // Dropping the connection drops this future and the record.
            connection.reset();
            std::future::pending().await
        }
        Action::Hang { millis: hold } => {
            record.apply("hang");
            shared.sleep_unless_stopped(millis(hold)).await;
            record.end = Some(RequestEnd::Hang);
            connection.close();
            std::future::pending().await
        }
        Action::Forward => {
            let body_faults = if live {
                decision.body
            } else {
                Default::default()
            };
            let delay_response = if live { decision.delay_response_ms } else { 0 };
            Ok(forward(
                &shared,
                record,
                parts,
                body,
                &path,
                query.as_deref(),
                delay_response,
                body_faults,
            )
            .await)
        }
    }
}

/// The decision within the envelope's caps on delays and hangs.
fn capped(mut decision: Decision, shared: &Shared) -> Decision {
    let cap = |ms: u32, max: Duration| -> u32 {
        let max_ms = u32::try_from(max.as_millis()).unwrap_or(u32::MAX);
        ms.min(max_ms)
    };
    let envelope = &shared.config.envelope;
    decision.delay_request_ms = cap(decision.delay_request_ms, envelope.max_delay);
    decision.delay_response_ms = cap(decision.delay_response_ms, envelope.max_delay);
    if let Action::Hang { millis } = &mut decision.action {
        *millis = cap(*millis, envelope.max_hang);
    }
    decision
}

/// The response a plugin's abort asks for. A 1xx status, which HTTP/1.1
/// cannot send as a final response, is written as its head alone, then
/// the connection closes.
async fn abort_response(
    abort: AbortResponse,
    mut record: RequestRecord,
    connection: &ConnControl,
    method: &str,
) -> Response<ProxyBody> {
    let status = StatusCode::from_u16(abort.status).unwrap_or(StatusCode::SERVICE_UNAVAILABLE);
    if status.is_informational() {
        let mut head = format!(
            "HTTP/1.1 {} {}\r\n",
            status.as_u16(),
            status.canonical_reason().unwrap_or("Informational")
        );
        for (name, value) in &abort.headers {
            head.push_str(&format!("{name}: {value}\r\n"));
        }
        head.push_str("\r\n");
        record.head_sent(status.as_u16());
        record.end = Some(RequestEnd::Hang);
        connection.write_raw_and_close(head.into_bytes());
        return std::future::pending().await;
    }
    let body = Bytes::from(abort.body.unwrap_or_default());
    let mut response = Response::new(full(body));
    *response.status_mut() = status;
    for (name, value) in &abort.headers {
        // The runtime checked them against the contract; skip any that
        // still does not parse rather than fail the response.
        if let (Ok(name), Ok(value)) = (
            http::HeaderName::from_bytes(name.as_bytes()),
            HeaderValue::from_str(value),
        ) {
            response.headers_mut().append(name, value);
        }
    }
    record.head_sent(status.as_u16());
    let bodiless = method == "HEAD" || is_bodiless(status);
    response.map(|body| TrackedBody::new(body, record, bodiless).boxed_unsync())
}

/// Forwards to the upstream and streams its response back, with the
/// response delay and body faults.
#[allow(clippy::too_many_arguments)]
async fn forward(
    shared: &Arc<Shared>,
    mut record: RequestRecord,
    mut parts: http::request::Parts,
    body: Incoming,
    path: &str,
    query: Option<&str>,
    delay_response_ms: u32,
    body_faults: crate::runtime::inject::BodyFaults,
) -> Response<ProxyBody> {
    let uri = match shared.upstream.uri_for(path, query) {
        Ok(uri) => uri,
        Err(err) => {
            return error_response(
                record,
                StatusCode::BAD_REQUEST,
                format!("bad request path: {err}"),
            );
        }
    };
    let method_is_head = parts.method == http::Method::HEAD;
    strip_hop_by_hop(&mut parts.headers);
    // The client sets the upstream's Host from the URI.
    parts.headers.remove(header::HOST);
    parts.uri = uri;
    parts.version = http::Version::HTTP_11;
    let upstream_request = Request::from_parts(parts, body);
    if let Ok(mut stats) = shared.stats.lock() {
        stats.upstream_requests += 1;
    }
    let response = match shared.upstream.send(upstream_request).await {
        Ok(response) => response,
        Err(err) => {
            let cause = crate::error_chain(&err);
            tracing::debug!(sequence = record.sequence, error = %cause, "upstream request failed");
            if let Ok(mut stats) = shared.stats.lock() {
                stats.upstream_errors += 1;
            }
            record.end = Some(RequestEnd::UpstreamError);
            return error_response(
                record,
                StatusCode::BAD_GATEWAY,
                format!("cairn proxy: the upstream failed: {cause}\n"),
            );
        }
    };
    if delay_response_ms > 0 && shared.injecting() {
        record.apply("delay");
        shared.sleep_unless_stopped(millis(delay_response_ms)).await;
    }
    let (mut head, upstream_body) = response.into_parts();
    strip_hop_by_hop(&mut head.headers);
    let status = head.status;
    let content_length = content_length(&head.headers);
    let bodiless = method_is_head || is_bodiless(status);
    let plan = if bodiless || body_faults.is_empty() || !shared.injecting() {
        BodyFaultPlan::default()
    } else {
        BodyFaultPlan::new(
            shared.config.seed,
            record.sequence,
            &body_faults,
            content_length,
        )
    };
    let body: ProxyBody = if plan.is_empty() {
        upstream_body.map_err(Into::into).boxed_unsync()
    } else {
        if plan.truncate_after.is_some() {
            record.apply("truncate");
        }
        if body_faults.corrupt_bytes.is_some() {
            record.apply("corrupt");
        }
        if plan.throttle_bytes_per_second.is_some() {
            record.apply("throttle");
        }
        let stop = Box::pin(shared.until_stopped());
        FaultedBody::new(upstream_body, plan, Some(stop)).boxed_unsync()
    };
    record.head_sent(status.as_u16());
    let mut response = Response::from_parts(head, body);
    *response.version_mut() = http::Version::HTTP_11;
    response.map(|body| TrackedBody::new(body, record, bodiless).boxed_unsync())
}

fn is_bodiless(status: StatusCode) -> bool {
    status == StatusCode::NO_CONTENT || status == StatusCode::NOT_MODIFIED
}

fn full(bytes: Bytes) -> ProxyBody {
    Full::new(bytes)
        .map_err(|never| match never {})
        .boxed_unsync()
}

/// A response of the proxy's own (400, 502).
fn error_response(
    mut record: RequestRecord,
    status: StatusCode,
    message: String,
) -> Response<ProxyBody> {
    let mut response = Response::new(full(Bytes::from(message)));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    record.head_sent(status.as_u16());
    if record.end.is_none() {
        record.end = Some(RequestEnd::Complete);
    }
    response.map(|body| TrackedBody::new(body, record, false).boxed_unsync())
}
