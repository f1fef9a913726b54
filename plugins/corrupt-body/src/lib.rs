//! `corrupt-body` fault injector: damages the bodies of a share of
//! responses, by flipping bytes (the proxy draws the positions from the
//! request's random number) and/or cutting the body short, optionally only
//! under some paths. The plugin sees the request, not the response, so its
//! scope is the request's path. Every decision is a function of the request
//! and the config: the same experiment seed replays the same damage.

use cairn_plugin_sdk::{Decision, FaultInjector, PluginInfo, Request};
use injector_support::{check_paths, check_percent, parse_config, under_prefix};
use serde::Deserialize;

pub const CONFIG_SCHEMA: &str = r#"{
  "type": "object",
  "properties": {
    "percent": {"type": "number", "minimum": 0, "maximum": 100, "default": 100,
                "description": "share of the matching responses that are damaged"},
    "corrupt-bytes": {"type": "integer", "minimum": 0, "maximum": 4294967295, "default": 1,
                      "description": "bytes of the body flipped; 0 flips none"},
    "truncate-after-bytes": {"type": ["integer", "null"], "minimum": 0,
                             "description": "the body ends after this many bytes; not cut when absent"},
    "paths": {"type": "array", "items": {"type": "string", "pattern": "^/"},
              "description": "only requests whose path is under one of these prefixes (whole segments); all when empty"}
  },
  "additionalProperties": false
}"#;

/// Default `corrupt-bytes`: one flipped byte is enough to break a JSON
/// document or a checksum, and hardest for a client to notice.
const DEFAULT_CORRUPT_BYTES: u32 = 1;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct Config {
    #[serde(default = "hundred")]
    percent: f64,
    #[serde(default = "default_corrupt_bytes")]
    corrupt_bytes: u32,
    #[serde(default)]
    truncate_after_bytes: Option<u64>,
    #[serde(default)]
    paths: Vec<String>,
}

fn hundred() -> f64 {
    100.0
}

fn default_corrupt_bytes() -> u32 {
    DEFAULT_CORRUPT_BYTES
}

impl Config {
    fn parse(config: &str) -> Result<Config, String> {
        let config: Config = parse_config(config)?;
        check_percent("percent", config.percent)?;
        check_paths("paths", &config.paths)?;
        if config.corrupt_bytes == 0 && config.truncate_after_bytes.is_none() {
            return Err(
                "invalid config: nothing to damage: `corrupt-bytes` is 0 and \
                 `truncate-after-bytes` is not set"
                    .to_owned(),
            );
        }
        Ok(config)
    }

    fn in_scope(&self, request: &Request) -> bool {
        self.paths.is_empty()
            || self
                .paths
                .iter()
                .any(|prefix| under_prefix(&request.path, prefix))
    }
}

struct CorruptBody;

impl FaultInjector for CorruptBody {
    fn info() -> PluginInfo {
        PluginInfo::new(
            "corrupt-body",
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
        let mut decision = Decision::pass();
        if let Some(bytes) = config.truncate_after_bytes {
            decision = decision.truncate_after(bytes);
        }
        if config.corrupt_bytes > 0 {
            decision = decision.corrupt(config.corrupt_bytes);
        }
        Ok(decision)
    }
}

cairn_plugin_sdk::export_fault_injector!(CorruptBody);
