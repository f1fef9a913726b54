//! `slow-connector` fault injector: makes a connected service look slow
//! rather than broken: response bodies trickle at a set rate, response
//! heads may wait, and a share of requests hangs (the proxy caps the hang
//! with the experiment's `max-hang-ms`). Every decision is a function of
//! the request and the config: the same experiment seed replays the same
//! slowness.

use cairn_plugin_sdk::{Decision, FaultInjector, PluginInfo, Request};
use injector_support::{check_percent, parse_config, redraw};
use serde::Deserialize;

pub const CONFIG_SCHEMA: &str = r#"{
  "type": "object",
  "properties": {
    "percent": {"type": "number", "minimum": 0, "maximum": 100, "default": 100,
                "description": "share of requests slowed at all"},
    "bytes-per-second": {"type": ["integer", "null"], "minimum": 1, "maximum": 4294967295, "default": 1024,
                         "description": "rate response bodies are delivered at; null leaves bodies alone"},
    "response-delay-ms": {"type": "integer", "minimum": 0, "maximum": 4294967295, "default": 0,
                          "description": "wait before sending the response head"},
    "hang-percent": {"type": "number", "minimum": 0, "maximum": 100, "default": 0,
                     "description": "share of the slowed requests that hang instead of being answered"},
    "hang-ms": {"type": "integer", "minimum": 1, "maximum": 4294967295, "default": 10000,
                "description": "how long a hanging request is held before its connection closes"}
  },
  "additionalProperties": false
}"#;

/// Default `bytes-per-second`: 1 KiB/s, a dial-up connector; a 100 KB
/// response takes over a minute and a streaming client's timeouts show.
const DEFAULT_BYTES_PER_SECOND: u32 = 1024;

/// Default `hang-ms`: past most clients' read timeouts, well under a
/// typical experiment; the proxy caps it anyway.
const DEFAULT_HANG_MS: u32 = 10_000;

/// Salt of the hang draw, so it is independent of the `percent` draw.
const HANG_DRAW: u64 = 1;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct Config {
    #[serde(default = "hundred")]
    percent: f64,
    #[serde(default = "default_bytes_per_second")]
    bytes_per_second: Option<u32>,
    #[serde(default)]
    response_delay_ms: u32,
    #[serde(default)]
    hang_percent: f64,
    #[serde(default = "default_hang_ms")]
    hang_ms: u32,
}

fn hundred() -> f64 {
    100.0
}

fn default_bytes_per_second() -> Option<u32> {
    Some(DEFAULT_BYTES_PER_SECOND)
}

fn default_hang_ms() -> u32 {
    DEFAULT_HANG_MS
}

impl Config {
    fn parse(config: &str) -> Result<Config, String> {
        let config: Config = parse_config(config)?;
        check_percent("percent", config.percent)?;
        check_percent("hang-percent", config.hang_percent)?;
        if config.bytes_per_second == Some(0) {
            return Err(
                "invalid config: `bytes-per-second` must be at least 1 (a body at 0 bytes/s never \
                 completes: use `hang-percent`)"
                    .to_owned(),
            );
        }
        if config.hang_ms == 0 {
            return Err("invalid config: `hang-ms` must be at least 1".to_owned());
        }
        if config.bytes_per_second.is_none()
            && config.response_delay_ms == 0
            && config.hang_percent <= 0.0
        {
            return Err(
                "invalid config: nothing to slow down: `bytes-per-second` is null, \
                 `response-delay-ms` is 0 and `hang-percent` is 0"
                    .to_owned(),
            );
        }
        Ok(config)
    }
}

struct SlowConnector;

impl FaultInjector for SlowConnector {
    fn info() -> PluginInfo {
        PluginInfo::new(
            "slow-connector",
            env!("CARGO_PKG_VERSION"),
            env!("CARGO_PKG_DESCRIPTION"),
        )
        .with_config_schema(CONFIG_SCHEMA)
    }

    fn decide(request: &Request, config: &str) -> Result<Decision, String> {
        let config = Config::parse(config)?;
        if !request.chance(config.percent) {
            return Ok(Decision::pass());
        }
        if redraw(request, HANG_DRAW).chance(config.hang_percent) {
            return Ok(Decision::hang(config.hang_ms));
        }
        let mut decision = Decision::pass().with_response_delay(config.response_delay_ms);
        if let Some(rate) = config.bytes_per_second {
            decision = decision.throttle(rate);
        }
        Ok(decision)
    }
}

cairn_plugin_sdk::export_fault_injector!(SlowConnector);
