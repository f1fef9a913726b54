//! `latency` fault injector: delays matching requests (or their responses)
//! by a fixed time plus jitter drawn from the request's random number,
//! optionally only for some paths and methods and a share of them. Every
//! decision is a function of the request and the config: the same
//! experiment seed replays the same delays.

use cairn_plugin_sdk::{Decision, FaultInjector, PluginInfo, Request};
use injector_support::{check_paths, check_percent, parse_config, redraw, under_prefix};
use serde::Deserialize;

pub const CONFIG_SCHEMA: &str = r#"{
  "type": "object",
  "properties": {
    "delay-ms": {"type": "integer", "minimum": 0, "maximum": 4294967295, "default": 100,
                 "description": "fixed delay of every faulted request"},
    "jitter-ms": {"type": "integer", "minimum": 0, "maximum": 4294967295, "default": 0,
                  "description": "up to this much more, drawn per request from its random number"},
    "delay-on": {"enum": ["request", "response"], "default": "request",
                 "description": "`request`: before forwarding; `response`: before sending the response head"},
    "paths": {"type": "array", "items": {"type": "string", "pattern": "^/"},
              "description": "only paths under one of these prefixes (whole segments); all when empty"},
    "methods": {"type": "array", "items": {"type": "string", "minLength": 1},
                "description": "only these methods (case-insensitive); all when empty"},
    "percent": {"type": "number", "minimum": 0, "maximum": 100, "default": 100,
                "description": "share of the matching requests that are delayed"}
  },
  "additionalProperties": false
}"#;

/// Default `delay-ms`: noticeable against a typical 10–50 ms service call,
/// far from any client timeout.
const DEFAULT_DELAY_MS: u32 = 100;

/// Salt of the jitter draw, so it is independent of the `percent` draw.
const JITTER_DRAW: u64 = 1;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct Config {
    #[serde(default = "default_delay_ms")]
    delay_ms: u32,
    #[serde(default)]
    jitter_ms: u32,
    #[serde(default)]
    delay_on: DelayOn,
    #[serde(default)]
    paths: Vec<String>,
    #[serde(default)]
    methods: Vec<String>,
    #[serde(default = "hundred")]
    percent: f64,
}

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
enum DelayOn {
    #[default]
    Request,
    Response,
}

fn default_delay_ms() -> u32 {
    DEFAULT_DELAY_MS
}

fn hundred() -> f64 {
    100.0
}

impl Config {
    fn parse(config: &str) -> Result<Config, String> {
        let config: Config = parse_config(config)?;
        if config.delay_ms.checked_add(config.jitter_ms).is_none() {
            return Err(format!(
                "invalid config: `delay-ms` + `jitter-ms` exceeds {} ms",
                u32::MAX
            ));
        }
        check_paths("paths", &config.paths)?;
        for (i, method) in config.methods.iter().enumerate() {
            if !is_token(method) {
                return Err(format!(
                    "invalid config: `methods[{i}]` is not an HTTP method: {method:?}"
                ));
            }
        }
        check_percent("percent", config.percent)?;
        Ok(config)
    }

    fn in_scope(&self, request: &Request) -> bool {
        let path_ok = self.paths.is_empty()
            || self
                .paths
                .iter()
                .any(|prefix| under_prefix(&request.path, prefix));
        let method_ok = self.methods.is_empty()
            || self
                .methods
                .iter()
                .any(|method| method.eq_ignore_ascii_case(&request.method));
        path_ok && method_ok
    }
}

struct Latency;

impl FaultInjector for Latency {
    fn info() -> PluginInfo {
        PluginInfo::new(
            "latency",
            env!("CARGO_PKG_VERSION"),
            env!("CARGO_PKG_DESCRIPTION"),
        )
        .with_config_schema(CONFIG_SCHEMA)
    }

    fn decide(request: &Request, config: &str) -> Result<Decision, String> {
        let config = Config::parse(config)?;
        if !config.in_scope(request) || !request.chance(config.percent) {
            return Ok(Decision::pass());
        }
        let jitter = if config.jitter_ms == 0 {
            0
        } else {
            let drawn = redraw(request, JITTER_DRAW).random_below(u64::from(config.jitter_ms) + 1);
            // Below `jitter-ms + 1`, so it fits; checked in `Config::parse`.
            u32::try_from(drawn).unwrap_or(config.jitter_ms)
        };
        let delay = config.delay_ms.saturating_add(jitter);
        Ok(match config.delay_on {
            DelayOn::Request => Decision::pass().with_request_delay(delay),
            DelayOn::Response => Decision::pass().with_response_delay(delay),
        })
    }
}

cairn_plugin_sdk::export_fault_injector!(Latency);

/// An RFC 9110 token, what a method is.
fn is_token(text: &str) -> bool {
    !text.is_empty()
        && text
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "!#$%&'*+-.^_`|~".contains(c))
}
