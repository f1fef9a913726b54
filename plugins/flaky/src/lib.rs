//! `flaky` fault injector: answers a share of requests with a transient
//! error (503 or 429 by default, drawn from the request's random number)
//! carrying `Retry-After` and a short body, optionally only up to an attempt
//! number so that a client that retries gets through. Every decision is a
//! function of the request and the config: the same experiment seed replays
//! the same failures.

use cairn_plugin_sdk::{Decision, FaultInjector, PluginInfo, Request};
use injector_support::{check_percent, check_statuses, parse_config, pick, redraw};
use serde::Deserialize;

pub const CONFIG_SCHEMA: &str = r#"{
  "type": "object",
  "properties": {
    "percent": {"type": "number", "minimum": 0, "maximum": 100, "default": 10,
                "description": "share of requests that fail"},
    "statuses": {"type": "array", "minItems": 1,
                 "items": {"type": "integer", "minimum": 100, "maximum": 999},
                 "default": [503, 429],
                 "description": "a failing request gets one of these, drawn per request"},
    "retry-after-s": {"type": ["integer", "null"], "minimum": 0, "maximum": 4294967295, "default": 1,
                      "description": "`Retry-After` seconds of the error; null sends none"},
    "body": {"type": "string", "maxLength": 65536,
             "default": "injected by cairn flaky: transient failure, retry later",
             "description": "text body of the error; empty sends none"},
    "max-attempt": {"type": "integer", "minimum": 1, "maximum": 4294967295,
                    "description": "attempts after this one always pass (a retrying client gets through); no limit when absent"}
  },
  "additionalProperties": false
}"#;

/// Default `percent`: one request in ten fails, enough to exercise every
/// client's retry path without making the service unusable.
const DEFAULT_PERCENT: f64 = 10.0;

/// Default `statuses`: the two transient errors clients are expected to
/// retry (service unavailable, too many requests).
const DEFAULT_STATUSES: [u16; 2] = [503, 429];

/// Default `retry-after-s`: short, so an experiment's retries stay quick.
const DEFAULT_RETRY_AFTER_S: u32 = 1;

const DEFAULT_BODY: &str = "injected by cairn flaky: transient failure, retry later";

/// Longest `body`: "a short body"; the proxy's own cap is much higher.
const MAX_BODY_BYTES: usize = 64 << 10;

/// Salt of the status draw, so it is independent of the `percent` draw.
const STATUS_DRAW: u64 = 1;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct Config {
    #[serde(default = "default_percent")]
    percent: f64,
    #[serde(default = "default_statuses")]
    statuses: Vec<u16>,
    #[serde(default = "default_retry_after_s")]
    retry_after_s: Option<u32>,
    #[serde(default = "default_body")]
    body: String,
    #[serde(default)]
    max_attempt: Option<u32>,
}

fn default_percent() -> f64 {
    DEFAULT_PERCENT
}

fn default_statuses() -> Vec<u16> {
    DEFAULT_STATUSES.to_vec()
}

fn default_retry_after_s() -> Option<u32> {
    Some(DEFAULT_RETRY_AFTER_S)
}

fn default_body() -> String {
    DEFAULT_BODY.to_owned()
}

impl Config {
    fn parse(config: &str) -> Result<Config, String> {
        let config: Config = parse_config(config)?;
        check_percent("percent", config.percent)?;
        check_statuses("statuses", &config.statuses)?;
        if config.body.len() > MAX_BODY_BYTES {
            return Err(format!(
                "invalid config: `body` is {} bytes; at most {MAX_BODY_BYTES} are allowed",
                config.body.len()
            ));
        }
        if config.max_attempt == Some(0) {
            return Err(
                "invalid config: `max-attempt` must be at least 1 (attempts are numbered from 1)"
                    .to_owned(),
            );
        }
        Ok(config)
    }
}

struct Flaky;

impl FaultInjector for Flaky {
    fn info() -> PluginInfo {
        PluginInfo::new(
            "flaky",
            env!("CARGO_PKG_VERSION"),
            env!("CARGO_PKG_DESCRIPTION"),
        )
        .with_config_schema(CONFIG_SCHEMA)
    }

    fn decide(request: &Request, config: &str) -> Result<Decision, String> {
        let config = Config::parse(config)?;
        let retried_enough = config.max_attempt.is_some_and(|max| request.attempt > max);
        if retried_enough || !request.chance(config.percent) {
            return Ok(Decision::pass());
        }
        let status = pick(&config.statuses, &redraw(request, STATUS_DRAW));
        let mut decision = Decision::abort(status);
        if let Some(seconds) = config.retry_after_s {
            decision = decision.with_header("retry-after", seconds.to_string());
        }
        if !config.body.is_empty() {
            decision = decision
                .with_header("content-type", "text/plain; charset=utf-8")
                .with_body(config.body);
        }
        Ok(decision)
    }
}

cairn_plugin_sdk::export_fault_injector!(Flaky);
