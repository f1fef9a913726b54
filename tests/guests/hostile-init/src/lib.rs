//! A validator whose `initialize` loops forever: cairn must stop it at the
//! initialization deadline and refuse to load the plugin.

use cairn_plugin_sdk::{Change, Checkpoint, PluginInfo, Validator, Verdict};

fn initialize() {
    let mut n: u64 = 0;
    loop {
        n = std::hint::black_box(n.wrapping_add(1));
    }
}

struct HostileInit;

impl Validator for HostileInit {
    fn info() -> PluginInfo {
        PluginInfo::new("hostile-init", env!("CARGO_PKG_VERSION"), env!("CARGO_PKG_DESCRIPTION"))
    }

    fn validate(_change: &Change, _at: &Checkpoint, _config: &str) -> Result<Verdict, String> {
        Ok(Verdict::from_findings(Vec::new()))
    }
}

cairn_plugin_sdk::export_validator!(HostileInit);
cairn_plugin_sdk::export_initializer!(initialize);
