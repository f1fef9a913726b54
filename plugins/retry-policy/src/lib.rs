//! `retry-policy` plugin: checks the retry settings of connector calls in workflows.
//! The rules live in `cairn_rules::retry_policy`; this crate only wires them to the SDK.

use cairn_plugin_sdk::{Change, Checkpoint, PluginInfo, Validator, Verdict};
use cairn_rules::retry_policy;

struct RetryPolicy;

impl Validator for RetryPolicy {
    fn info() -> PluginInfo {
        PluginInfo::new(
            "retry-policy",
            env!("CARGO_PKG_VERSION"),
            env!("CARGO_PKG_DESCRIPTION"),
        )
        .with_config_schema(retry_policy::CONFIG_SCHEMA)
    }

    fn validate(change: &Change, _at: &Checkpoint, config: &str) -> Result<Verdict, String> {
        cairn_rules::sdk::run(change, config, retry_policy::check)
    }
}

cairn_plugin_sdk::export_validator!(RetryPolicy);
