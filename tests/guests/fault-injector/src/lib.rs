//! Fault-injector fixture: delays requests under `/orders` by 50 ms.

use cairn_plugin_sdk::{Fault, FaultInjector, PluginInfo, RequestInfo};

struct DelayOrders;

impl FaultInjector for DelayOrders {
    fn info() -> PluginInfo {
        PluginInfo::new("delay-orders", "0.1.0", "delays /orders requests")
    }

    fn decide(request: &RequestInfo, _config: &str) -> Result<Fault, String> {
        Ok(if request.path.starts_with("/orders") {
            Fault::Delay(50)
        } else {
            Fault::None
        })
    }
}

cairn_plugin_sdk::export_fault_injector!(DelayOrders);
