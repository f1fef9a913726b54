//! Calling fault injectors: the host's model of a request and of the
//! decision a plugin makes about it (whatever contract version it was built
//! against), the contract checks on that decision, and the sandboxed
//! `decide` call. The fault proxy builds on this; a decision outside the
//! contract is `invalid-output`.

use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use wasmtime::Store;

use crate::runtime::bindings::{Pre, World};
use crate::runtime::call::{CallReport, CallState};
use crate::runtime::failure::{Failure, FailureKind};
use crate::runtime::limits::Limits;
use crate::runtime::plugin::Plugin;

/// What the proxy tells a fault injector about one request (the shape of
/// contract 0.2.0; older contracts are given what they know of it). In
/// JSON (decision logs, golden cases) fields are kebab-case and every one
/// is optional, defaulting to [`RequestInfo::default`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", default, deny_unknown_fields)]
pub struct RequestInfo {
    pub method: String,
    /// `http` or `https`: the upstream's scheme.
    pub scheme: String,
    /// The upstream's authority (`host:port`).
    pub authority: String,
    /// Path without the query.
    pub path: String,
    /// Query without the `?`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub query: Option<String>,
    /// Lower-case names, sensitive values already redacted.
    pub headers: Vec<(String, String)>,
    /// The request's `content-length`, when it gave one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub body_size: Option<u64>,
    /// 1-based attempt of this logical request.
    pub attempt: u32,
    /// 0-based number of the request within the experiment.
    pub sequence: u64,
    /// Milliseconds since the experiment started.
    pub elapsed_ms: u64,
    /// Faults the proxy is applying right now.
    pub active_faults: u32,
    /// The request's random number (from the experiment's seed and
    /// `sequence`).
    pub random: u64,
}

impl Default for RequestInfo {
    fn default() -> Self {
        RequestInfo {
            method: "GET".to_owned(),
            scheme: "http".to_owned(),
            authority: "127.0.0.1".to_owned(),
            path: "/".to_owned(),
            query: None,
            headers: Vec::new(),
            body_size: None,
            attempt: 1,
            sequence: 0,
            elapsed_ms: 0,
            active_faults: 0,
            random: 0,
        }
    }
}

impl RequestInfo {
    /// Path and query as one string (`/orders?page=2`), what contract 0.1.0
    /// calls the path.
    pub fn path_and_query(&self) -> String {
        match &self.query {
            Some(query) => format!("{}?{query}", self.path),
            None => self.path.clone(),
        }
    }
}

/// A response the proxy sends instead of forwarding.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AbortResponse {
    pub status: u16,
    #[serde(default)]
    pub headers: Vec<(String, String)>,
    /// The body, when the plugin gave one. Serialised as text when it is
    /// valid UTF-8, else as `{"base64": ...}`, so decision logs stay readable.
    #[serde(default, with = "body_text", skip_serializing_if = "Option::is_none")]
    pub body: Option<Vec<u8>>,
}

/// What happens to a request after its request delay.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", tag = "kind")]
pub enum Action {
    Forward,
    Abort(AbortResponse),
    Reset,
    Hang {
        #[serde(rename = "ms")]
        millis: u32,
    },
}

/// Faults on a forwarded response's body.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct BodyFaults {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub throttle_bytes_per_second: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub truncate_after_bytes: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub corrupt_bytes: Option<u32>,
}

impl BodyFaults {
    pub fn is_empty(&self) -> bool {
        *self == BodyFaults::default()
    }
}

/// A fault injector's answer for one request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct Decision {
    #[serde(default)]
    pub delay_request_ms: u32,
    #[serde(default)]
    pub delay_response_ms: u32,
    pub action: Action,
    #[serde(default, skip_serializing_if = "BodyFaults::is_empty")]
    pub body: BodyFaults,
}

impl Decision {
    /// Forward untouched.
    pub const PASS: Decision = Decision {
        delay_request_ms: 0,
        delay_response_ms: 0,
        action: Action::Forward,
        body: BodyFaults {
            throttle_bytes_per_second: None,
            truncate_after_bytes: None,
            corrupt_bytes: None,
        },
    };

    /// Whether the decision changes anything about the request.
    pub fn is_pass(&self) -> bool {
        *self == Decision::PASS
    }

    /// The fault kinds this decision applies, for counting (`delay`,
    /// `abort`, `reset`, `hang`, `throttle`, `truncate`, `corrupt`); empty
    /// for a pass.
    pub fn fault_kinds(&self) -> Vec<&'static str> {
        let mut kinds = Vec::new();
        if self.delay_request_ms > 0 || self.delay_response_ms > 0 {
            kinds.push("delay");
        }
        match self.action {
            Action::Forward => {}
            Action::Abort(_) => kinds.push("abort"),
            Action::Reset => kinds.push("reset"),
            Action::Hang { .. } => kinds.push("hang"),
        }
        if matches!(self.action, Action::Forward) {
            if self.body.truncate_after_bytes.is_some() {
                kinds.push("truncate");
            }
            if self.body.corrupt_bytes.is_some() {
                kinds.push("corrupt");
            }
            if self.body.throttle_bytes_per_second.is_some() {
                kinds.push("throttle");
            }
        }
        kinds
    }

    /// Checks a decision against the contract, whatever version it came
    /// from.
    pub fn checked(self) -> Result<Decision, Failure> {
        let invalid = |message: String| Failure::new(FailureKind::InvalidOutput, message);
        if let Action::Abort(abort) = &self.action {
            if !STATUS_RANGE.contains(&abort.status) {
                return Err(invalid(format!(
                    "abort status {} is outside 100..=999",
                    abort.status
                )));
            }
            if abort.headers.len() > MAX_ABORT_HEADERS {
                return Err(invalid(format!(
                    "abort has {} headers; at most {MAX_ABORT_HEADERS} are allowed",
                    abort.headers.len()
                )));
            }
            for (name, value) in &abort.headers {
                check_header(name, value).map_err(invalid)?;
            }
            let body_len = abort.body.as_ref().map_or(0, Vec::len);
            if body_len > MAX_ABORT_BODY_BYTES {
                return Err(invalid(format!(
                    "abort body is {body_len} bytes; at most {MAX_ABORT_BODY_BYTES} are allowed"
                )));
            }
        }
        if self.body.throttle_bytes_per_second == Some(0) {
            return Err(invalid(
                "throttle to 0 bytes per second never completes; use hang".to_owned(),
            ));
        }
        Ok(self)
    }
}

/// HTTP statuses a plugin may answer with (non-standard ones included).
pub const STATUS_RANGE: std::ops::RangeInclusive<u16> = 100..=999;

/// Most headers an abort response may carry.
pub const MAX_ABORT_HEADERS: usize = 64;

/// Largest abort body a plugin may ask for.
pub const MAX_ABORT_BODY_BYTES: usize = 1024 * 1024;

/// Headers the proxy frames itself; a plugin may not set them.
const FRAMING_HEADERS: &[&str] = &[
    "content-length",
    "transfer-encoding",
    "connection",
    "keep-alive",
    "upgrade",
    "te",
    "trailer",
];

/// A header name is an RFC 9110 token; a value is visible ASCII, space,
/// tab or obs-text, never CR, LF or NUL.
fn check_header(name: &str, value: &str) -> Result<(), String> {
    let is_tchar = |c: char| c.is_ascii_alphanumeric() || "!#$%&'*+-.^_`|~".contains(c);
    if name.is_empty() || !name.chars().all(is_tchar) {
        return Err(format!(
            "abort header name {name:?} is not a valid HTTP token"
        ));
    }
    if FRAMING_HEADERS.contains(&name.to_ascii_lowercase().as_str()) {
        return Err(format!(
            "abort header {name:?} is set by the proxy, not the plugin"
        ));
    }
    if value
        .bytes()
        .any(|b| b == b'\r' || b == b'\n' || b == 0 || (b < 0x20 && b != b'\t') || b == 0x7f)
    {
        return Err(format!(
            "abort header {name:?} has a value with control characters"
        ));
    }
    Ok(())
}

/// Serde for an abort body: UTF-8 text as a string, anything else as
/// `{"base64": "..."}`.
mod body_text {
    use base64::Engine as _;
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    #[derive(Serialize, Deserialize)]
    #[serde(untagged)]
    enum Body {
        Text(String),
        Bytes { base64: String },
    }

    pub fn serialize<S: Serializer>(body: &Option<Vec<u8>>, s: S) -> Result<S::Ok, S::Error> {
        match body {
            None => s.serialize_none(),
            Some(bytes) => match std::str::from_utf8(bytes) {
                Ok(text) => Body::Text(text.to_owned()).serialize(s),
                Err(_) => Body::Bytes {
                    base64: base64::engine::general_purpose::STANDARD.encode(bytes),
                }
                .serialize(s),
            },
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Vec<u8>>, D::Error> {
        match Option::<Body>::deserialize(d)? {
            None => Ok(None),
            Some(Body::Text(text)) => Ok(Some(text.into_bytes())),
            Some(Body::Bytes { base64 }) => base64::engine::general_purpose::STANDARD
                .decode(base64)
                .map(Some)
                .map_err(serde::de::Error::custom),
        }
    }
}

impl Plugin {
    /// Asks a fault injector what to do with `request`. The decision is
    /// checked against the contract (`invalid-output` if broken); the
    /// proxy's safety envelope is the caller's to apply.
    pub async fn decide(
        &self,
        request: &RequestInfo,
        config: &str,
        limits: &Limits,
    ) -> CallReport<Decision> {
        if self.world() != World::FaultInjector {
            return crate::runtime::call::wrong_world(self, World::FaultInjector);
        }
        self.call(
            Arc::default(),
            limits,
            async |pre: &Pre, store: &mut Store<CallState>| {
                pre.decide(store, request, config)
                    .await
                    .unwrap_or_else(|| Err(wasmtime::format_err!("not a fault injector")))
            },
            Decision::checked,
        )
        .await
    }
}

/// Milliseconds as a duration.
pub fn millis(ms: u32) -> Duration {
    Duration::from_millis(ms.into())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn abort(status: u16, headers: &[(&str, &str)]) -> Decision {
        Decision {
            action: Action::Abort(AbortResponse {
                status,
                headers: headers
                    .iter()
                    .map(|(n, v)| (n.to_string(), v.to_string()))
                    .collect(),
                body: None,
            }),
            ..Decision::PASS
        }
    }

    #[test]
    fn any_status_from_100_to_999_is_in_contract_and_nothing_else() {
        for status in [100, 299, 520, 599, 999] {
            assert!(abort(status, &[]).checked().is_ok(), "{status}");
        }
        for status in [0, 99, 1000, u16::MAX] {
            let failure = abort(status, &[]).checked().unwrap_err();
            assert_eq!(failure.kind, FailureKind::InvalidOutput, "{status}");
        }
    }

    #[test]
    fn abort_headers_must_be_valid_http_and_not_framing() {
        assert!(abort(503, &[("Retry-After", "2")]).checked().is_ok());
        for bad in [
            ("", "x"),
            ("bad name", "x"),
            ("x", "a\r\nset-cookie: y"),
            ("x", "nul\0"),
            ("Content-Length", "0"),
            ("transfer-encoding", "chunked"),
        ] {
            let failure = abort(503, &[bad]).checked().unwrap_err();
            assert_eq!(failure.kind, FailureKind::InvalidOutput, "{bad:?}");
        }
    }

    #[test]
    fn throttle_to_zero_is_out_of_contract() {
        let decision = Decision {
            body: BodyFaults {
                throttle_bytes_per_second: Some(0),
                ..BodyFaults::default()
            },
            ..Decision::PASS
        };
        assert_eq!(
            decision.checked().unwrap_err().kind,
            FailureKind::InvalidOutput
        );
    }

    #[test]
    fn fault_kinds_name_what_a_decision_does() {
        assert!(Decision::PASS.fault_kinds().is_empty());
        let decision = Decision {
            delay_request_ms: 5,
            body: BodyFaults {
                truncate_after_bytes: Some(3),
                throttle_bytes_per_second: Some(10),
                ..BodyFaults::default()
            },
            ..Decision::PASS
        };
        assert_eq!(decision.fault_kinds(), ["delay", "truncate", "throttle"]);
        assert_eq!(abort(503, &[]).fault_kinds(), ["abort"]);
    }

    #[test]
    fn decisions_round_trip_through_json_with_binary_bodies() {
        let mut decision = abort(520, &[("retry-after", "1")]);
        if let Action::Abort(abort) = &mut decision.action {
            abort.body = Some(vec![0xff, 0x00, b'a']);
        }
        let text = serde_json::to_string(&decision).unwrap();
        assert!(text.contains("base64"), "{text}");
        let back: Decision = serde_json::from_str(&text).unwrap();
        assert_eq!(back, decision);
        let text = serde_json::to_string(&abort(503, &[])).unwrap();
        let back: Decision = serde_json::from_str(&text).unwrap();
        assert_eq!(back, abort(503, &[]));
    }

    #[test]
    fn request_json_is_kebab_case_and_every_field_defaults() {
        let request: RequestInfo =
            serde_json::from_str(r#"{"path": "/orders", "elapsed-ms": 7, "random": 9}"#).unwrap();
        assert_eq!(
            request,
            RequestInfo {
                path: "/orders".into(),
                elapsed_ms: 7,
                random: 9,
                ..RequestInfo::default()
            }
        );
        assert!(serde_json::from_str::<RequestInfo>(r#"{"elapsed_ms": 7}"#).is_err());
    }
}
