//! `destructive-change` plugin: flags irreversible changes between before and after.
//! The rules live in `cairn_rules::destructive`; this crate only wires them to the SDK.

use cairn_plugin_sdk::{Change, Checkpoint, PluginInfo, Validator, Verdict};
use cairn_rules::destructive;

struct DestructiveChange;

impl Validator for DestructiveChange {
    fn info() -> PluginInfo {
        PluginInfo::new(
            "destructive-change",
            env!("CARGO_PKG_VERSION"),
            env!("CARGO_PKG_DESCRIPTION"),
        )
        .with_config_schema(destructive::CONFIG_SCHEMA)
    }

    fn validate(change: &Change, _at: &Checkpoint, config: &str) -> Result<Verdict, String> {
        cairn_rules::sdk::run(change, config, destructive::check)
    }
}

cairn_plugin_sdk::export_validator!(DestructiveChange);
