//! The fault-injector side of the SDK (contract `cairn:plugin@0.2.0`): the
//! [`FaultInjector`] trait and its export macro, helpers on [`Request`]
//! (headers, deterministic draws) and builders for [`Decision`]s.

pub use crate::__bindings::fault_injector::exports::cairn::plugin::fault_injection::{
    AbortResponse, Action, BodyFaults, Decision, Request,
};
use crate::PluginInfo;

/// Implement this for your fault injector and export it with
/// [`export_fault_injector!`](crate::export_fault_injector).
///
/// cairn's fault proxy asks [`FaultInjector::decide`] about every request
/// the experiment's safety envelope (blast radius, routes, protected paths,
/// concurrency cap, duration, kill switch) lets it fault; the proxy enforces
/// that envelope whatever the plugin answers.
pub trait FaultInjector {
    /// Name, version and description of the plugin.
    fn info() -> PluginInfo;

    /// Decides what happens to one request. `config` is the experiment's
    /// config for the plugin as JSON text (`{}` when none is given).
    ///
    /// Return `Err` to refuse (an invalid config, say): the proxy then
    /// forwards the request untouched and counts the refusal. It does the
    /// same when the plugin panics, runs out of time or memory, or answers
    /// out of contract (an abort status outside 100..=999, an invalid or
    /// framing header, a throttle of 0 bytes per second).
    fn decide(request: &Request, config: &str) -> Result<Decision, String>;
}

/// Exports a [`FaultInjector`] implementation as the plugin's
/// `fault-injection` interface (contract `cairn:plugin@0.2.0`). Use it once
/// per plugin crate.
#[macro_export]
macro_rules! export_fault_injector {
    ($injector:ty) => {
        #[doc(hidden)]
        pub struct __CairnFaultInjectorExport;

        impl $crate::__bindings::fault_injector::exports::cairn::plugin::fault_injection::Guest
            for __CairnFaultInjectorExport
        {
            fn info() -> $crate::__bindings::fault_injector::cairn::plugin::types::PluginInfo {
                $crate::log::__set_sink($crate::log::__v0_2_sink);
                $crate::__plugin_info_v0_2(<$injector as $crate::FaultInjector>::info())
            }

            fn decide(
                request: $crate::Request,
                config: ::std::string::String,
            ) -> ::std::result::Result<$crate::Decision, ::std::string::String> {
                $crate::log::__set_sink($crate::log::__v0_2_sink);
                <$injector as $crate::FaultInjector>::decide(&request, &config)
            }
        }

        $crate::__bindings::fault_injector::__export_fault_injector_world!(
            __CairnFaultInjectorExport with_types_in $crate::__bindings::fault_injector
        );
    };
}

/// [`PluginInfo`] (the record authors build) as contract 0.2.0's
/// `plugin-info`, which has the same fields.
#[doc(hidden)]
pub fn __plugin_info_v0_2(
    info: PluginInfo,
) -> crate::__bindings::fault_injector::cairn::plugin::types::PluginInfo {
    crate::__bindings::fault_injector::cairn::plugin::types::PluginInfo {
        name: info.name,
        version: info.version,
        description: info.description,
        config_schema: info.config_schema,
    }
}

/// 2^64 as a float: the size of the range `random` is drawn from.
const RANDOM_RANGE: f64 = 18_446_744_073_709_551_616.0;

impl Request {
    /// The first value of header `name`, matched case-insensitively
    /// (ASCII). Header names arrive lower-case; sensitive values arrive as
    /// `[redacted]`.
    ///
    /// ```
    /// # use cairn_plugin_sdk::Request;
    /// # let request = Request { method: "GET".into(), scheme: "http".into(), authority: "a".into(),
    /// #     path: "/".into(), query: None, body_size: None, attempt: 1, sequence: 0, elapsed_ms: 0,
    /// #     active_faults: 0, random: 0, headers: vec![("x-tenant".into(), "acme".into())] };
    /// assert_eq!(request.header("X-Tenant"), Some("acme"));
    /// assert_eq!(request.header("x-missing"), None);
    /// ```
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(key, _)| key.eq_ignore_ascii_case(name))
            .map(|(_, value)| value.as_str())
    }

    /// Whether this request falls in the given share (in percent) of
    /// requests: `true` for `percent`% of the possible `random` numbers,
    /// decided by `random` alone, so the same experiment seed gives the same
    /// answers. `percent` of 0 or less (or NaN) is never, 100 or more is
    /// always.
    ///
    /// Exactly: `random < ⌊percent / 100 × 2⁶⁴⌋`, computed in 64-bit
    /// floating point (the Python and JavaScript SDKs compute the same).
    /// Every draw on one request uses the same `random`: `chance(5.0)` and
    /// `chance(10.0)` are both true for the lowest 5% of numbers.
    pub fn chance(&self, percent: f64) -> bool {
        if percent.is_nan() || percent <= 0.0 {
            return false;
        }
        if percent >= 100.0 {
            return true;
        }
        // Truncates towards zero and saturates; below 2^64 here, and 2^64
        // itself fits a u128.
        let threshold = (percent / 100.0 * RANDOM_RANGE) as u128;
        u128::from(self.random) < threshold
    }

    /// A number in `0..n` drawn from `random` (0 when `n` is 0): the high
    /// bits of `random × n`, so every value is (nearly) equally likely and
    /// the same experiment seed gives the same numbers.
    ///
    /// Exactly: `(random × n) >> 64` (the Python and JavaScript SDKs
    /// compute the same). It uses the same `random` as [`Request::chance`]:
    /// a request for which `chance(p)` is true has a `random_below(n)` below
    /// about `p`% of `n`.
    pub fn random_below(&self, n: u64) -> u64 {
        let high = (u128::from(self.random) * u128::from(n)) >> 64;
        // `random < 2^64`, so `high < n`.
        u64::try_from(high).unwrap_or(0)
    }
}

impl Decision {
    /// Forward the request untouched: no delay, no body faults.
    pub fn pass() -> Decision {
        Decision {
            delay_request_ms: 0,
            delay_response_ms: 0,
            action: Action::Forward,
            body: BodyFaults {
                throttle_bytes_per_second: None,
                truncate_after_bytes: None,
                corrupt_bytes: None,
            },
        }
    }

    /// Answer with `status` (any of 100..=999, non-standard ones included)
    /// instead of forwarding, with no extra headers and an empty body: add
    /// them with [`Decision::with_header`] and [`Decision::with_body`].
    pub fn abort(status: u16) -> Decision {
        Decision {
            action: Action::Abort(AbortResponse {
                status,
                headers: Vec::new(),
                body: None,
            }),
            ..Decision::pass()
        }
    }

    /// Close the client connection abruptly (TCP reset), without an answer.
    pub fn reset() -> Decision {
        Decision {
            action: Action::Reset,
            ..Decision::pass()
        }
    }

    /// Hold the request `ms` milliseconds without answering, then close the
    /// connection. The proxy caps the hold (the experiment's `max-hang-ms`).
    pub fn hang(ms: u32) -> Decision {
        Decision {
            action: Action::Hang(ms),
            ..Decision::pass()
        }
    }

    /// Wait `ms` milliseconds before the action (forward, abort, reset,
    /// hang).
    pub fn with_request_delay(mut self, ms: u32) -> Decision {
        self.delay_request_ms = ms;
        self
    }

    /// For forward and abort: wait `ms` milliseconds before sending the
    /// response head to the client.
    pub fn with_response_delay(mut self, ms: u32) -> Decision {
        self.delay_response_ms = ms;
        self
    }

    /// Adds a header to an abort's response (`retry-after`, ...); does
    /// nothing for other actions. Names and values must be valid HTTP, and
    /// framing headers (`content-length`, `transfer-encoding`, `connection`,
    /// ...) are the proxy's: a decision breaking that is out of contract.
    pub fn with_header(mut self, name: impl Into<String>, value: impl Into<String>) -> Decision {
        if let Action::Abort(abort) = &mut self.action {
            abort.headers.push((name.into(), value.into()));
        }
        self
    }

    /// Sets the body of an abort's response; does nothing for other
    /// actions.
    pub fn with_body(mut self, body: impl Into<Vec<u8>>) -> Decision {
        if let Action::Abort(abort) = &mut self.action {
            abort.body = Some(body.into());
        }
        self
    }

    /// Delivers a forwarded response's body at `bytes_per_second` (at least
    /// 1: a throttle of 0 is out of contract; use [`Decision::hang`]).
    /// Body faults apply to `forward` only.
    pub fn throttle(mut self, bytes_per_second: u32) -> Decision {
        self.body.throttle_bytes_per_second = Some(bytes_per_second);
        self
    }

    /// Ends a forwarded response's body after `bytes`: the client sees a
    /// response shorter than its `content-length`, or a chunked body cut
    /// short. Body faults apply to `forward` only.
    pub fn truncate_after(mut self, bytes: u64) -> Decision {
        self.body.truncate_after_bytes = Some(bytes);
        self
    }

    /// Flips `bytes` bytes of a forwarded response's body, at positions the
    /// proxy draws from the request's random number. Body faults apply to
    /// `forward` only.
    pub fn corrupt(mut self, bytes: u32) -> Decision {
        self.body.corrupt_bytes = Some(bytes);
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(random: u64) -> Request {
        Request {
            method: "GET".into(),
            scheme: "http".into(),
            authority: "orders.internal:8080".into(),
            path: "/orders/1".into(),
            query: None,
            headers: vec![
                ("x-tenant".into(), "acme".into()),
                ("x-tenant".into(), "second".into()),
            ],
            body_size: None,
            attempt: 1,
            sequence: 0,
            elapsed_ms: 0,
            active_faults: 0,
            random,
        }
    }

    #[test]
    fn header_matches_names_case_insensitively_and_returns_the_first_value() {
        let request = request(0);
        assert_eq!(request.header("x-tenant"), Some("acme"));
        assert_eq!(request.header("X-TENANT"), Some("acme"));
        assert_eq!(request.header("x-other"), None);
    }

    #[test]
    fn chance_is_true_exactly_below_the_percent_of_the_random_range() {
        // 5 / 100 in f64, times 2^64, is 922337203685477632.
        let threshold = 922_337_203_685_477_632;
        assert!(request(0).chance(5.0));
        assert!(request(threshold - 1).chance(5.0));
        assert!(!request(threshold).chance(5.0));
        assert!(!request(u64::MAX).chance(99.999));
        // Half the range: 2^63.
        assert!(request((1 << 63) - 1).chance(50.0));
        assert!(!request(1 << 63).chance(50.0));
        // A share with no exact binary form: 33.3 / 100 × 2^64 in f64. The
        // Python and JavaScript SDKs' tests check the same numbers.
        assert!(request(6_142_765_776_545_279_999).chance(33.3));
        assert!(!request(6_142_765_776_545_280_000).chance(33.3));
    }

    #[test]
    fn chance_of_zero_or_nan_is_never_and_of_a_hundred_is_always() {
        for random in [0, 1, 1 << 63, u64::MAX] {
            assert!(!request(random).chance(0.0), "{random}");
            assert!(!request(random).chance(-3.0), "{random}");
            assert!(!request(random).chance(f64::NAN), "{random}");
            assert!(request(random).chance(100.0), "{random}");
            assert!(request(random).chance(250.0), "{random}");
        }
    }

    #[test]
    fn random_below_takes_the_high_bits_of_random_times_n() {
        assert_eq!(request(0).random_below(10), 0);
        assert_eq!(request(u64::MAX).random_below(10), 9);
        assert_eq!(request(1 << 63).random_below(10), 5);
        assert_eq!(request(u64::MAX).random_below(u64::MAX), u64::MAX - 1);
        assert_eq!(request(u64::MAX).random_below(1), 0);
        // The Python and JavaScript SDKs' tests check the same numbers.
        assert_eq!(request(0x9E37_79B9_7F4A_7C15).random_below(1000), 618);
        assert_eq!(request(0x9E37_79B9_7F4A_7C15).random_below(7), 4);
    }

    #[test]
    fn random_below_zero_is_zero() {
        for random in [0, 1 << 63, u64::MAX] {
            assert_eq!(request(random).random_below(0), 0);
        }
    }

    #[test]
    fn pass_forwards_without_delays_or_body_faults() {
        let pass = Decision::pass();
        assert_eq!(pass.delay_request_ms, 0);
        assert_eq!(pass.delay_response_ms, 0);
        assert_eq!(pass.action, Action::Forward);
        assert_eq!(
            pass.body,
            BodyFaults {
                throttle_bytes_per_second: None,
                truncate_after_bytes: None,
                corrupt_bytes: None,
            }
        );
    }

    #[test]
    fn abort_builders_fill_the_response_in_order() {
        let decision = Decision::abort(503)
            .with_header("retry-after", "2")
            .with_header("x-injected-by", String::from("cairn"))
            .with_body("try later")
            .with_request_delay(10)
            .with_response_delay(20);
        assert_eq!(
            decision,
            Decision {
                delay_request_ms: 10,
                delay_response_ms: 20,
                action: Action::Abort(AbortResponse {
                    status: 503,
                    headers: vec![
                        ("retry-after".into(), "2".into()),
                        ("x-injected-by".into(), "cairn".into()),
                    ],
                    body: Some(b"try later".to_vec()),
                }),
                ..Decision::pass()
            }
        );
    }

    #[test]
    fn headers_and_body_are_ignored_for_actions_other_than_abort() {
        for decision in [Decision::pass(), Decision::reset(), Decision::hang(100)] {
            let before = decision.clone();
            assert_eq!(
                decision.with_header("retry-after", "1").with_body("x"),
                before
            );
        }
    }

    #[test]
    fn body_faults_combine_and_delays_apply_to_any_action() {
        let decision = Decision::pass()
            .throttle(1024)
            .truncate_after(10_000)
            .corrupt(3);
        assert_eq!(
            decision.body,
            BodyFaults {
                throttle_bytes_per_second: Some(1024),
                truncate_after_bytes: Some(10_000),
                corrupt_bytes: Some(3),
            }
        );
        assert_eq!(Decision::reset().with_request_delay(5).delay_request_ms, 5);
        assert_eq!(Decision::hang(250).action, Action::Hang(250));
    }
}
