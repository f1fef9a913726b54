//! What the proxy makes of a client's request: the headers passed on
//! (hop-by-hop ones stripped), the redacted copy the plugin and the log
//! see, the W3C trace id, and the grouping of retries into logical
//! requests by their idempotency key.

use std::collections::{HashMap, VecDeque};
use std::hash::{BuildHasher, RandomState};
use std::time::{Duration, Instant};

use http::HeaderMap;

/// The value every sensitive header is replaced with.
pub const REDACTED: &str = "[redacted]";

/// Headers that describe one connection, not the message: never passed on
/// (RFC 9110 7.6.1), nor shown to the plugin.
pub const HOP_BY_HOP_HEADERS: &[&str] = &[
    "connection",
    "keep-alive",
    "proxy-connection",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
];

/// Removes the hop-by-hop headers, those the `connection` header names
/// included.
pub fn strip_hop_by_hop(headers: &mut HeaderMap) {
    let named: Vec<String> = headers
        .get_all(http::header::CONNECTION)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .map(|name| name.trim().to_ascii_lowercase())
        .filter(|name| !name.is_empty())
        .collect();
    for name in HOP_BY_HOP_HEADERS {
        headers.remove(*name);
    }
    for name in named {
        headers.remove(name.as_str());
    }
}

/// The headers as the plugin and the log see them: in order, lower-case
/// names, invalid UTF-8 replaced, `redacted_names` (lower-case) replaced by
/// [`REDACTED`].
pub fn redacted_headers(headers: &HeaderMap, redacted_names: &[String]) -> Vec<(String, String)> {
    headers
        .iter()
        .map(|(name, value)| {
            let name = name.as_str().to_owned();
            let value = if redacted_names.contains(&name) {
                REDACTED.to_owned()
            } else {
                String::from_utf8_lossy(value.as_bytes()).into_owned()
            };
            (name, value)
        })
        .collect()
}

/// Redacts `redacted_names` in an already listed set of headers.
pub fn redact_pairs(headers: &mut [(String, String)], redacted_names: &[String]) {
    for (name, value) in headers {
        if redacted_names.contains(&name.to_ascii_lowercase()) {
            *value = REDACTED.to_owned();
        }
    }
}

/// The trace id of a W3C `traceparent` (`00-<32 hex>-<16 hex>-<2 hex>`),
/// when the header is well formed.
pub fn trace_id(headers: &HeaderMap) -> Option<String> {
    let value = headers.get("traceparent")?.to_str().ok()?.trim();
    let mut parts = value.split('-');
    let version = parts.next()?;
    let trace = parts.next()?;
    let parent = parts.next()?;
    let flags = parts.next()?;
    let hex = |s: &str, len: usize| s.len() == len && s.bytes().all(|b| b.is_ascii_hexdigit());
    if !hex(version, 2) || version == "ff" || !hex(parent, 16) || !hex(flags, 2) {
        return None;
    }
    if !hex(trace, 32) || trace.bytes().all(|b| b == b'0') {
        return None;
    }
    Some(trace.to_ascii_lowercase())
}

/// The request's `content-length`, when it gave a valid one.
pub fn content_length(headers: &HeaderMap) -> Option<u64> {
    headers
        .get(http::header::CONTENT_LENGTH)?
        .to_str()
        .ok()?
        .trim()
        .parse()
        .ok()
}

/// One request's place in its logical request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AttemptRecord {
    /// 1-based.
    pub attempt: u32,
    /// Time since the previous attempt of the same logical request.
    pub gap: Option<Duration>,
}

#[derive(Debug, Clone, Copy)]
struct KeyEntry {
    attempts: u32,
    last: Instant,
}

/// Groups requests by idempotency key into logical requests, remembering
/// at most `capacity` keys (the oldest is forgotten first; a retry after
/// that counts as a new logical request). Keys are kept as hashes.
#[derive(Debug)]
pub struct AttemptTracker {
    capacity: usize,
    hasher: RandomState,
    keys: HashMap<u64, KeyEntry>,
    order: VecDeque<u64>,
}

/// Keys an experiment remembers, by default.
pub const DEFAULT_TRACKED_KEYS: usize = 100_000;

impl AttemptTracker {
    pub fn new(capacity: usize) -> AttemptTracker {
        AttemptTracker {
            capacity: capacity.max(1),
            hasher: RandomState::new(),
            keys: HashMap::new(),
            order: VecDeque::new(),
        }
    }

    /// Records a request carrying `key` (or none) at `now`.
    pub fn record(&mut self, key: Option<&[u8]>, now: Instant) -> AttemptRecord {
        let Some(key) = key else {
            return AttemptRecord {
                attempt: 1,
                gap: None,
            };
        };
        let hash = self.hasher.hash_one(key);
        if let Some(entry) = self.keys.get_mut(&hash) {
            entry.attempts = entry.attempts.saturating_add(1);
            let gap = now.saturating_duration_since(entry.last);
            entry.last = now;
            return AttemptRecord {
                attempt: entry.attempts,
                gap: Some(gap),
            };
        }
        while self.keys.len() >= self.capacity {
            match self.order.pop_front() {
                Some(oldest) => {
                    self.keys.remove(&oldest);
                }
                None => break,
            }
        }
        self.keys.insert(
            hash,
            KeyEntry {
                attempts: 1,
                last: now,
            },
        );
        self.order.push_back(hash);
        AttemptRecord {
            attempt: 1,
            gap: None,
        }
    }

    pub fn len(&self) -> usize {
        self.keys.len()
    }

    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(
                http::HeaderName::from_bytes(name.as_bytes()).unwrap(),
                http::HeaderValue::from_str(value).unwrap(),
            );
        }
        map
    }

    #[test]
    fn sensitive_headers_are_redacted_and_others_kept_in_order() {
        let map = headers(&[
            ("Authorization", "Bearer secret"),
            ("x-trace", "1"),
            ("cookie", "a=b"),
            ("x-api-key", "k"),
            ("x-trace", "2"),
        ]);
        let names: Vec<String> = ["authorization", "cookie", "x-api-key"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        let seen = redacted_headers(&map, &names);
        assert_eq!(
            seen,
            vec![
                ("authorization".into(), REDACTED.into()),
                ("x-trace".into(), "1".into()),
                ("x-trace".into(), "2".into()),
                ("cookie".into(), REDACTED.into()),
                ("x-api-key".into(), REDACTED.into()),
            ]
        );
        assert!(!format!("{seen:?}").contains("secret"));
        let mut pairs = vec![("Set-Cookie".to_string(), "s=1".to_string())];
        redact_pairs(&mut pairs, &["set-cookie".to_string()]);
        assert_eq!(pairs[0].1, REDACTED);
    }

    #[test]
    fn hop_by_hop_headers_and_those_connection_names_are_stripped() {
        let mut map = headers(&[
            ("connection", "keep-alive, x-private"),
            ("keep-alive", "timeout=5"),
            ("x-private", "1"),
            (
                "traceparent",
                "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
            ),
            ("te", "trailers"),
            ("upgrade", "h2c"),
            ("x-kept", "yes"),
        ]);
        strip_hop_by_hop(&mut map);
        let mut left: Vec<&str> = map.keys().map(|k| k.as_str()).collect();
        left.sort();
        assert_eq!(left, ["traceparent", "x-kept"]);
    }

    #[test]
    fn trace_ids_come_from_well_formed_traceparents_only() {
        assert_eq!(
            trace_id(&headers(&[(
                "traceparent",
                "00-0AF7651916CD43DD8448EB211C80319C-b7ad6b7169203331-01"
            )])),
            Some("0af7651916cd43dd8448eb211c80319c".into())
        );
        for bad in [
            "00-0af7651916cd43dd8448eb211c80319-b7ad6b7169203331-01",
            "00-00000000000000000000000000000000-b7ad6b7169203331-01",
            "ff-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
            "garbage",
        ] {
            assert_eq!(trace_id(&headers(&[("traceparent", bad)])), None, "{bad}");
        }
        assert_eq!(trace_id(&HeaderMap::new()), None);
    }

    #[test]
    fn retries_with_one_key_are_one_logical_request() {
        let mut tracker = AttemptTracker::new(10);
        let t0 = Instant::now();
        let ms = Duration::from_millis;
        assert_eq!(tracker.record(Some(b"a"), t0).attempt, 1);
        assert_eq!(tracker.record(Some(b"b"), t0 + ms(1)).attempt, 1);
        let second = tracker.record(Some(b"a"), t0 + ms(100));
        assert_eq!(
            second,
            AttemptRecord {
                attempt: 2,
                gap: Some(ms(100))
            }
        );
        let third = tracker.record(Some(b"a"), t0 + ms(350));
        assert_eq!(
            third,
            AttemptRecord {
                attempt: 3,
                gap: Some(ms(250))
            }
        );
        // Without a key every request is its own logical request.
        assert_eq!(tracker.record(None, t0).attempt, 1);
        assert_eq!(tracker.record(None, t0).attempt, 1);
        assert_eq!(tracker.len(), 2);
    }

    #[test]
    fn the_key_map_is_bounded_and_forgets_the_oldest() {
        let mut tracker = AttemptTracker::new(3);
        let now = Instant::now();
        for key in [b"k1", b"k2", b"k3", b"k4"] {
            tracker.record(Some(key), now);
        }
        assert_eq!(tracker.len(), 3);
        // k1 was forgotten: its retry starts over; k4 is remembered.
        assert_eq!(tracker.record(Some(b"k4"), now).attempt, 2);
        assert_eq!(tracker.record(Some(b"k1"), now).attempt, 1);
        assert_eq!(tracker.len(), 3);
    }
}
