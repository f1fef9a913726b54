//! Pass-through fault injector (contract 0.2.0): forwards every request
//! untouched, whatever the config. What the benchmark and the proxy's
//! overhead tests measure: the cost of asking a plugin, nothing else.

use cairn_plugin_sdk::{Decision, FaultInjector, PluginInfo, Request};

struct Passthrough;

impl FaultInjector for Passthrough {
    fn info() -> PluginInfo {
        PluginInfo::new(
            "passthrough-injector",
            "0.1.0",
            "forwards every request untouched",
        )
    }

    fn decide(_request: &Request, _config: &str) -> Result<Decision, String> {
        Ok(Decision::pass())
    }
}

cairn_plugin_sdk::export_fault_injector!(Passthrough);
