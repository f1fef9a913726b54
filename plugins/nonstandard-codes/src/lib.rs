//! `nonstandard-codes` fault injector: answers a share of requests with
//! HTTP statuses outside the registered set (299, 520, 599 by default,
//! drawn from the request's random number), to find clients that only know
//! the statuses they were written for. Every decision is a function of the
//! request and the config: the same experiment seed replays the same
//! answers.

use cairn_plugin_sdk::{Decision, FaultInjector, PluginInfo, Request};
use serde::Deserialize;
use serde::de::DeserializeOwned;

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

/// One of `statuses` (checked non-empty), drawn from the request.
fn pick(statuses: &[u16], request: &Request) -> u16 {
    let index = request.random_below(statuses.len() as u64);
    let index = usize::try_from(index).unwrap_or(0);
    statuses
        .get(index)
        .or(statuses.first())
        .copied()
        .unwrap_or(DEFAULT_STATUSES[0])
}

/// Parses the config JSON (empty text counts as `{}`) into `T`: an object
/// whose keys and value types match, or a refusal naming the key at fault.
fn parse_config<T: DeserializeOwned>(config: &str) -> Result<T, String> {
    let text = if config.trim().is_empty() {
        "{}"
    } else {
        config
    };
    let value: serde_json::Value =
        serde_json::from_str(text).map_err(|err| format!("invalid config: not JSON: {err}"))?;
    if !value.is_object() {
        return Err("invalid config: expected a JSON object".to_owned());
    }
    serde_path_to_error::deserialize(value).map_err(|err| {
        let path = err.path().to_string();
        let inner = err.inner().to_string();
        if path == "." || inner.starts_with("unknown field") {
            format!("invalid config: {inner}")
        } else {
            format!("invalid config: `{path}`: {inner}")
        }
    })
}

fn check_percent(key: &str, percent: f64) -> Result<(), String> {
    if (0.0..=100.0).contains(&percent) {
        Ok(())
    } else {
        Err(format!(
            "invalid config: `{key}` must be from 0 to 100, got {percent}"
        ))
    }
}

/// A non-empty list of statuses the proxy can send (100..=999).
fn check_statuses(key: &str, statuses: &[u16]) -> Result<(), String> {
    if statuses.is_empty() {
        return Err(format!("invalid config: `{key}` is empty"));
    }
    for (i, status) in statuses.iter().enumerate() {
        if !(100..=999).contains(status) {
            return Err(format!(
                "invalid config: `{key}[{i}]` = {status} is outside 100..=999"
            ));
        }
    }
    Ok(())
}

/// `request` with its random number re-mixed with `salt` (SplitMix64): a
/// draw independent of the ones on `request` itself, and as deterministic.
fn redraw(request: &Request, salt: u64) -> Request {
    let mut z = request
        .random
        .wrapping_add(salt.wrapping_mul(0x9E37_79B9_7F4A_7C15));
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    Request {
        random: z ^ (z >> 31),
        ..request.clone()
    }
}
