//! `nonstandard-codes` fault injector: answers a share of requests with
//! HTTP statuses outside the registered set (299, 520, 599 by default,
//! drawn from the request's random number), to find clients that only know
//! the statuses they were written for. Every decision is a function of the
//! request and the config: the same experiment seed replays the same
//! answers.

use cairn_plugin_sdk::{Decision, FaultInjector, PluginInfo, Request};
use injector_support::{check_percent, check_statuses, parse_config, pick, redraw};
use serde::Deserialize;

pub const CONFIG_SCHEMA: &str = r#"{
  "type": "object",
  "properties": {
    "percent": {"type": "number", "minimum": 0, "maximum": 100, "default": 10,
                "description": "share of requests answered with a non-standard status"},
    "statuses": {"type": "array", "minItems": 1,
                 "items": {"type": "integer", "minimum": 100, "maximum": 999},
                 "default": [299, 520, 599],
                 "description": "an answered request gets one of these, drawn per request"},
    "body": {"type": "string", "maxLength": 65536,
             "default": "injected by cairn nonstandard-codes",
             "description": "text body of the answer; empty sends none"}
  },
  "additionalProperties": false
}"#;

/// Default `percent`: one request in ten.
const DEFAULT_PERCENT: f64 = 10.0;

/// Default `statuses`: a success no client expects (299), the
/// CDN-specific "unknown error" (520) and the top of the 5xx range (599).
const DEFAULT_STATUSES: [u16; 3] = [299, 520, 599];

const DEFAULT_BODY: &str = "injected by cairn nonstandard-codes";

/// Longest `body`; the proxy's own cap is much higher.
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
    #[serde(default = "default_body")]
    body: String,
}

fn default_percent() -> f64 {
    DEFAULT_PERCENT
}

fn default_statuses() -> Vec<u16> {
    DEFAULT_STATUSES.to_vec()
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
        Ok(config)
    }
}

struct NonstandardCodes;

impl FaultInjector for NonstandardCodes {
    fn info() -> PluginInfo {
        PluginInfo::new(
            "nonstandard-codes",
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
        let status = pick(&config.statuses, &redraw(request, STATUS_DRAW));
        let mut decision = Decision::abort(status);
        if !config.body.is_empty() {
            decision = decision
                .with_header("content-type", "text/plain; charset=utf-8")
                .with_body(config.body);
        }
        Ok(decision)
    }
}

cairn_plugin_sdk::export_fault_injector!(NonstandardCodes);
