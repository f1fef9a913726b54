//! `api-contract` plugin: flags breaking changes between two OpenAPI 3.x documents.
//! The rules live in `cairn_rules::api_contract`; this crate only wires them to the SDK.

use cairn_plugin_sdk::{Change, Checkpoint, PluginInfo, Validator, Verdict};
use cairn_rules::api_contract;

struct ApiContract;

impl Validator for ApiContract {
    fn info() -> PluginInfo {
        PluginInfo::new(
            "api-contract",
            env!("CARGO_PKG_VERSION"),
            env!("CARGO_PKG_DESCRIPTION"),
        )
        .with_config_schema(api_contract::CONFIG_SCHEMA)
    }

    fn validate(change: &Change, _at: &Checkpoint, config: &str) -> Result<Verdict, String> {
        cairn_rules::sdk::run(change, config, api_contract::check)
    }
}

cairn_plugin_sdk::export_validator!(ApiContract);
