//! The decision log (JSON Lines: a header line, then one event per request
//! the plugin was asked about, failures included), reading it back, and
//! replaying its requests through a decider to list every decision that
//! differs. Sensitive headers are redacted in everything written.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use serde::{Deserialize, Serialize};

use crate::proxy::decider::{DecideOutcome, DeciderInfo, FaultDecider};
use crate::proxy::error::ProxyError;
use crate::proxy::request::redact_pairs;
use crate::runtime::inject::{Action, Decision, RequestInfo};

/// The format named in every header line.
pub const LOG_FORMAT: &str = "cairn-decision-log/1";

/// Buffer of the log file; writes reach the disk when it fills, and at
/// the end of the experiment.
const LOG_BUFFER_BYTES: usize = 256 * 1024;

/// The first line of a decision log.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct LogHeader {
    pub format: String,
    pub experiment: String,
    pub seed: u64,
    pub upstream: String,
    /// The plugin (name, digest, contract) and its config.
    pub plugin: DeciderInfo,
    pub idempotency_header: String,
    /// Header names whose values are redacted in the log.
    pub redacted_headers: Vec<String>,
    pub started_unix_ms: u64,
}

/// What the plugin answered.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum LoggedOutcome {
    Decision(Decision),
    Failure { kind: String, message: String },
}

impl LoggedOutcome {
    /// The logged form of an outcome: abort headers redacted.
    pub fn from_outcome(outcome: &DecideOutcome, redacted: &[String]) -> LoggedOutcome {
        match outcome {
            DecideOutcome::Decided(decision) => {
                let mut decision = decision.clone();
                if let Action::Abort(abort) = &mut decision.action {
                    redact_pairs(&mut abort.headers, redacted);
                }
                LoggedOutcome::Decision(decision)
            }
            DecideOutcome::Failed { kind, message } => LoggedOutcome::Failure {
                kind: kind.clone(),
                message: message.clone(),
            },
        }
    }

    /// Whether two outcomes are the same decision (failures: the same
    /// kind; their messages may carry timings).
    pub fn same_as(&self, other: &LoggedOutcome) -> bool {
        match (self, other) {
            (LoggedOutcome::Decision(a), LoggedOutcome::Decision(b)) => a == b,
            (LoggedOutcome::Failure { kind: a, .. }, LoggedOutcome::Failure { kind: b, .. }) => {
                a == b
            }
            _ => false,
        }
    }
}

/// Times of one request, in milliseconds since it arrived.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct LogTimings {
    /// Since the start of the experiment.
    pub arrived_ms: u64,
    pub plugin_ms: f64,
    /// Until the response head (absent when none was sent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub head_ms: Option<f64>,
    pub total_ms: f64,
}

/// One request the plugin was asked about.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct LogEvent {
    pub sequence: u64,
    /// `GET /orders/42`.
    pub route: String,
    /// The request as given to the plugin (sensitive headers redacted).
    pub request: RequestInfo,
    pub outcome: LoggedOutcome,
    /// Fault kinds applied (after the envelope's caps).
    pub applied: Vec<String>,
    /// Why the decision was not applied (`concurrency`, `stopped`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub skipped: Option<String>,
    /// Status sent to the client, when a response head was sent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<u16>,
    /// How the request ended (`complete`, `reset`, `hang`, ...).
    pub end: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_bytes: Option<u64>,
    pub response_bytes: u64,
    pub timings: LogTimings,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trace_id: Option<String>,
}

/// A decision log read back.
#[derive(Debug, Clone, PartialEq)]
pub struct DecisionLog {
    pub header: LogHeader,
    /// In sequence order.
    pub events: Vec<LogEvent>,
}

struct WriterState {
    writer: BufWriter<File>,
    error: Option<String>,
}

/// The log being written by a running experiment.
pub(crate) struct DecisionLogWriter {
    path: PathBuf,
    state: Mutex<WriterState>,
}

impl DecisionLogWriter {
    /// Creates (or truncates) the file and writes the header line.
    pub(crate) fn create(path: &Path, header: &LogHeader) -> Result<Self, ProxyError> {
        let unwritable = |source| ProxyError::LogUnwritable {
            path: path.to_owned(),
            source,
        };
        let file = File::create(path).map_err(unwritable)?;
        let mut writer = BufWriter::with_capacity(LOG_BUFFER_BYTES, file);
        let line = serde_json::to_string(header).map_err(|err| unwritable(err.into()))?;
        writeln!(writer, "{line}").map_err(unwritable)?;
        // The header reaches the disk now: an unwritable disk shows at start.
        writer.flush().map_err(unwritable)?;
        Ok(DecisionLogWriter {
            path: path.to_owned(),
            state: Mutex::new(WriterState {
                writer,
                error: None,
            }),
        })
    }

    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    /// Appends an event (buffered); the first write error is kept.
    pub(crate) fn write(&self, event: &LogEvent) {
        let Ok(mut state) = self.state.lock() else {
            return;
        };
        if state.error.is_some() {
            return;
        }
        let result = serde_json::to_string(event)
            .map_err(std::io::Error::from)
            .and_then(|line| writeln!(state.writer, "{line}"));
        if let Err(err) = result {
            state.error = Some(format!("{}: {err}", self.path.display()));
        }
    }

    /// Flushes; returns the first write error, if any.
    pub(crate) fn flush(&self) -> Option<String> {
        let Ok(mut state) = self.state.lock() else {
            return Some("the decision log's lock was poisoned".to_owned());
        };
        if state.error.is_none()
            && let Err(err) = state.writer.flush()
        {
            state.error = Some(format!("{}: {err}", self.path.display()));
        }
        state.error.clone()
    }
}

/// Reads a decision log: its header line, then its events (sorted by
/// sequence). Errors give the line.
pub fn read_decision_log(path: impl AsRef<Path>) -> Result<DecisionLog, ProxyError> {
    let path = path.as_ref();
    let unreadable = |line: usize, reason: String| ProxyError::LogUnreadable {
        path: path.to_owned(),
        line,
        reason,
    };
    let text = crate::runtime::input::read_limited_text(
        path,
        "decision log",
        crate::runtime::input::MAX_DECISION_LOG_BYTES,
    )
    .map_err(|err| unreadable(0, err.to_string()))?;
    let mut lines = text
        .lines()
        .enumerate()
        .filter(|(_, line)| !line.trim().is_empty());
    let (header_index, header_line) = lines
        .next()
        .ok_or_else(|| unreadable(1, "the file is empty; a header line is expected".to_owned()))?;
    let header: LogHeader = serde_json::from_str(header_line).map_err(|err| {
        unreadable(
            header_index + 1,
            format!("not a decision log header: {err}"),
        )
    })?;
    if header.format != LOG_FORMAT {
        return Err(unreadable(
            header_index + 1,
            format!("format {:?} is not {LOG_FORMAT:?}", header.format),
        ));
    }
    let mut events = Vec::new();
    for (index, line) in lines {
        let event: LogEvent = serde_json::from_str(line)
            .map_err(|err| unreadable(index + 1, format!("not a decision log event: {err}")))?;
        events.push(event);
    }
    events.sort_by_key(|event| event.sequence);
    Ok(DecisionLog { header, events })
}

/// A decision that came out differently on replay.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub struct ReplayDifference {
    pub sequence: u64,
    pub route: String,
    pub logged: LoggedOutcome,
    pub replayed: LoggedOutcome,
}

/// What a replay found.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub struct ReplayReport {
    pub replayed: u64,
    pub identical: u64,
    pub differences: Vec<ReplayDifference>,
}

impl ReplayReport {
    pub fn is_identical(&self) -> bool {
        self.differences.is_empty()
    }
}

/// Asks `decider` again about every logged request (as the plugin saw it)
/// and lists each decision that differs from the logged one.
pub async fn replay(log: &DecisionLog, decider: &dyn FaultDecider) -> ReplayReport {
    let mut report = ReplayReport::default();
    for event in &log.events {
        let outcome = decider.decide(&event.request).await;
        let replayed = LoggedOutcome::from_outcome(&outcome, &log.header.redacted_headers);
        report.replayed += 1;
        if replayed.same_as(&event.outcome) {
            report.identical += 1;
        } else {
            report.differences.push(ReplayDifference {
                sequence: event.sequence,
                route: event.route.clone(),
                logged: event.outcome.clone(),
                replayed,
            });
        }
    }
    report
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proxy::decider::FnDecider;
    use crate::runtime::inject::AbortResponse;

    fn header() -> LogHeader {
        LogHeader {
            format: LOG_FORMAT.to_owned(),
            experiment: "e".into(),
            seed: u64::MAX,
            upstream: "http://127.0.0.1:1".into(),
            plugin: DeciderInfo::default(),
            idempotency_header: "idempotency-key".into(),
            redacted_headers: vec!["authorization".into(), "set-cookie".into()],
            started_unix_ms: 1,
        }
    }

    fn event(sequence: u64, outcome: LoggedOutcome) -> LogEvent {
        LogEvent {
            sequence,
            route: "GET /x".into(),
            request: RequestInfo {
                sequence,
                random: sequence * 7,
                ..RequestInfo::default()
            },
            outcome,
            applied: vec![],
            skipped: None,
            status: Some(200),
            end: "complete".into(),
            request_bytes: None,
            response_bytes: 3,
            timings: LogTimings::default(),
            trace_id: None,
        }
    }

    fn abort_with_cookie() -> Decision {
        Decision {
            action: Action::Abort(AbortResponse {
                status: 503,
                headers: vec![("Set-Cookie".into(), "session=secret".into())],
                body: None,
            }),
            ..Decision::PASS
        }
    }

    #[tokio::test]
    async fn a_log_round_trips_and_replays_identically_with_the_same_decider() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("log.jsonl");
        let redacted = header().redacted_headers;
        let decide = |request: &RequestInfo| {
            if request.random.is_multiple_of(2) {
                DecideOutcome::Decided(abort_with_cookie())
            } else {
                DecideOutcome::Decided(Decision::PASS)
            }
        };
        let decider = FnDecider::new("alternate", decide);
        let writer = DecisionLogWriter::create(&path, &header()).unwrap();
        for sequence in [2u64, 0, 1, 3] {
            let outcome = decider
                .decide(&RequestInfo {
                    sequence,
                    random: sequence * 7,
                    ..RequestInfo::default()
                })
                .await;
            writer.write(&event(
                sequence,
                LoggedOutcome::from_outcome(&outcome, &redacted),
            ));
        }
        assert_eq!(writer.flush(), None);
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(!text.contains("secret"), "{text}");
        assert!(text.contains("[redacted]"));
        let log = read_decision_log(&path).unwrap();
        assert_eq!(log.header, header());
        assert_eq!(
            log.events.iter().map(|e| e.sequence).collect::<Vec<_>>(),
            [0, 1, 2, 3]
        );
        let report = replay(&log, &decider).await;
        assert_eq!((report.replayed, report.identical), (4, 4));
        assert!(report.is_identical());

        // A decider that always passes differs on the two aborts.
        let passing = FnDecider::new("pass", |_: &RequestInfo| {
            DecideOutcome::Decided(Decision::PASS)
        });
        let report = replay(&log, &passing).await;
        assert_eq!(report.identical, 2);
        assert_eq!(
            report
                .differences
                .iter()
                .map(|d| d.sequence)
                .collect::<Vec<_>>(),
            [0, 2]
        );
    }

    #[test]
    fn unreadable_logs_say_which_line() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("bad.jsonl");
        std::fs::write(&path, "").unwrap();
        assert!(
            read_decision_log(&path)
                .unwrap_err()
                .to_string()
                .contains("empty")
        );
        let mut text = serde_json::to_string(&header()).unwrap();
        text.push_str("\n{\"sequence\": \"x\"}\n");
        std::fs::write(&path, text).unwrap();
        let err = read_decision_log(&path).unwrap_err().to_string();
        assert!(err.contains("line 2"), "{err}");
        std::fs::write(&path, "{\"format\": 1}\n").unwrap();
        let err = read_decision_log(&path).unwrap_err().to_string();
        assert!(err.contains("line 1"), "{err}");
        let missing = dir.path().join("missing.jsonl");
        assert!(read_decision_log(&missing).is_err());
    }

    #[test]
    fn failures_compare_by_kind() {
        let a = LoggedOutcome::Failure {
            kind: "timeout".into(),
            message: "after 10 ms".into(),
        };
        let b = LoggedOutcome::Failure {
            kind: "timeout".into(),
            message: "after 11 ms".into(),
        };
        let c = LoggedOutcome::Failure {
            kind: "trap".into(),
            message: "after 10 ms".into(),
        };
        assert!(a.same_as(&b));
        assert!(!a.same_as(&c));
        assert!(!a.same_as(&LoggedOutcome::Decision(Decision::PASS)));
    }

    #[test]
    fn an_unwritable_log_is_a_clear_error() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("no-such-dir").join("log.jsonl");
        let err = DecisionLogWriter::create(&path, &header()).err().unwrap();
        assert!(err.to_string().contains("not writable"), "{err}");
    }
}
