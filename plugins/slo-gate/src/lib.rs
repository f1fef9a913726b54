//! `slo-gate` plugin: judges observed metrics against weighted SLO objectives.
//! The rules live in `cairn_rules::slo_gate`; this crate only wires them to the SDK.

use cairn_plugin_sdk::{Change, Checkpoint, PluginInfo, Validator, Verdict};
use cairn_rules::slo_gate;

struct SloGate;

impl Validator for SloGate {
    fn info() -> PluginInfo {
        PluginInfo::new(
            "slo-gate",
            env!("CARGO_PKG_VERSION"),
            env!("CARGO_PKG_DESCRIPTION"),
        )
        .with_config_schema(slo_gate::CONFIG_SCHEMA)
    }

    fn validate(change: &Change, _at: &Checkpoint, config: &str) -> Result<Verdict, String> {
        cairn_rules::sdk::run(change, config, slo_gate::check)
    }
}

cairn_plugin_sdk::export_validator!(SloGate);
