//! `references` plugin: references across the documents of a change (a
//! workflow's connector, a connector's table, a mapping's column). The rule
//! lives in `cairn_rules::references`; this crate only wires it to the SDK.

use cairn_plugin_sdk::{Change, Checkpoint, PluginInfo, Validator, Verdict};
use cairn_rules::references;

struct References;

impl Validator for References {
    fn info() -> PluginInfo {
        PluginInfo::new(
            "references",
            env!("CARGO_PKG_VERSION"),
            env!("CARGO_PKG_DESCRIPTION"),
        )
        .with_config_schema(references::CONFIG_SCHEMA)
    }

    fn validate(change: &Change, _at: &Checkpoint, config: &str) -> Result<Verdict, String> {
        cairn_rules::sdk::run(change, config, references::check)
    }
}

cairn_plugin_sdk::export_validator!(References);
