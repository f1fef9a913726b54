//! Hostile fault injector (contract 0.2.0): its config, a JSON string,
//! picks the misbehaviour the host must survive; anything else passes.
//!
//! - `"loop"`: spins forever (stopped at the deadline: `timeout`)
//! - `"sleep"`: a 60 s WASI sleep (cut at the deadline: `timeout`)
//! - `"memory"`: allocates until the memory limit (`memory-limit`)
//! - `"trap"`: panics (`trap`)
//! - `"invalid-status"`: aborts with status 1000 (`invalid-output`)
//! - `"bad-header"`: aborts with a header value holding CR LF (`invalid-output`)

use std::hint::black_box;

use cairn_plugin_sdk::{Decision, FaultInjector, PluginInfo, Request};

struct Hostile;

impl FaultInjector for Hostile {
    fn info() -> PluginInfo {
        PluginInfo::new("hostile-injector", "0.1.0", "misbehaves as its config says")
    }

    fn decide(_request: &Request, config: &str) -> Result<Decision, String> {
        let mode = serde_json::from_str::<String>(config).unwrap_or_default();
        match mode.as_str() {
            "loop" => {
                let mut n = 0u64;
                loop {
                    n = black_box(n.wrapping_add(1));
                }
            }
            "sleep" => {
                std::thread::sleep(std::time::Duration::from_secs(60));
                Ok(Decision::pass())
            }
            "memory" => {
                let mut hoard: Vec<Vec<u8>> = Vec::new();
                loop {
                    hoard.push(vec![1u8; 1 << 20]);
                    black_box(&hoard);
                }
            }
            "trap" => panic!("hostile-injector panicked on purpose"),
            "invalid-status" => Ok(Decision::abort(1000)),
            "bad-header" => {
                Ok(Decision::abort(503).with_header("x-injected", "a\r\nset-cookie: stolen=1"))
            }
            _ => Ok(Decision::pass()),
        }
    }
}

cairn_plugin_sdk::export_fault_injector!(Hostile);
