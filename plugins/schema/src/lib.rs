//! `schema` plugin: validates changed documents against JSON Schemas.
//! The rules live in `cairn_rules::schema`; this crate only wires them to the SDK.

use cairn_plugin_sdk::{Change, Checkpoint, PluginInfo, Validator, Verdict};
use cairn_rules::schema;

struct Schema;

impl Validator for Schema {
    fn info() -> PluginInfo {
        PluginInfo::new(
            "schema",
            env!("CARGO_PKG_VERSION"),
            env!("CARGO_PKG_DESCRIPTION"),
        )
        .with_config_schema(schema::CONFIG_SCHEMA)
    }

    fn validate(change: &Change, _at: &Checkpoint, config: &str) -> Result<Verdict, String> {
        cairn_rules::sdk::run(change, config, schema::check)
    }
}

cairn_plugin_sdk::export_validator!(Schema);
// cairn runs this once at first compile and snapshots the result: the
// meta-schema validators are then built before any call starts.
cairn_plugin_sdk::export_initializer!(schema::warm_up);
