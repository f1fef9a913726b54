//! `no-deletes` plugin: fails when a change deletes a document and warns when
//! it empties one. The rule lives in `cairn_rules::no_deletes`; this crate
//! only wires it to the SDK.

use cairn_plugin_sdk::{Change, Checkpoint, PluginInfo, Validator, Verdict};
use cairn_rules::no_deletes;

struct NoDeletes;

impl Validator for NoDeletes {
    fn info() -> PluginInfo {
        PluginInfo::new(
            "no-deletes",
            env!("CARGO_PKG_VERSION"),
            env!("CARGO_PKG_DESCRIPTION"),
        )
        .with_config_schema(no_deletes::CONFIG_SCHEMA)
    }

    fn validate(change: &Change, _at: &Checkpoint, config: &str) -> Result<Verdict, String> {
        cairn_rules::sdk::run(change, config, no_deletes::check)
    }
}

cairn_plugin_sdk::export_validator!(NoDeletes);
