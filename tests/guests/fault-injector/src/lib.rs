//! Fault-injector fixture: delays requests under `/orders` by 50 ms. With
//! the config `"bad-status"` it answers an impossible HTTP status instead.

use cairn_plugin_sdk::{ErrorResponse, Fault, FaultInjector, PluginInfo, RequestInfo};

struct DelayOrders;

impl FaultInjector for DelayOrders {
    fn info() -> PluginInfo {
        PluginInfo::new("delay-orders", "0.1.0", "delays /orders requests")
    }

    fn decide(request: &RequestInfo, config: &str) -> Result<Fault, String> {
        if config == "bad-status" {
            return Ok(Fault::Error(ErrorResponse { status: 1000, body: None }));
        }
        Ok(if request.path.starts_with("/orders") {
            Fault::Delay(50)
        } else {
            Fault::None
        })
    }
}

cairn_plugin_sdk::export_fault_injector!(DelayOrders);
