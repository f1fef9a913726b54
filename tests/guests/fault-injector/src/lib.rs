//! Fault-injector fixture built against contract 0.1.0 (`wit/v0.1`, world
//! `fault-injector`) with wit-bindgen directly, so it stays a 0.1.0 plugin
//! whatever contract the SDK targets: delays requests under `/orders` by
//! 50 ms. With the config `"bad-status"` it answers an impossible HTTP
//! status instead.

wit_bindgen::generate!({
    path: "../../../wit/v0.1",
    world: "fault-injector",
});

use cairn::plugin::types::PluginInfo;
use exports::cairn::plugin::fault_injection::{ErrorResponse, Fault, Guest, RequestInfo};

struct DelayOrders;

impl Guest for DelayOrders {
    fn info() -> PluginInfo {
        PluginInfo {
            name: "delay-orders".into(),
            version: "0.1.0".into(),
            description: "delays /orders requests".into(),
            config_schema: None,
        }
    }

    fn decide(request: RequestInfo, config: String) -> Result<Fault, String> {
        if config == "bad-status" {
            return Ok(Fault::Error(ErrorResponse {
                status: 1000,
                body: None,
            }));
        }
        Ok(if request.path.starts_with("/orders") {
            Fault::Delay(50)
        } else {
            Fault::None
        })
    }
}

export!(DelayOrders);
