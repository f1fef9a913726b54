//! A validator that exports `initialize`, for the pre-initialisation tests.
//! `initialize` builds a table and counts its runs; every call reports what
//! it finds in memory as one warning:
//! `initialize-runs=<n> table=<sum or none> calls=<n>`.

use std::sync::OnceLock;
use std::sync::atomic::{AtomicU32, Ordering};

use cairn_plugin_sdk::{Change, Checkpoint, Finding, PluginInfo, Validator, Verdict, log};

static INITIALIZE_RUNS: AtomicU32 = AtomicU32::new(0);
static CALLS: AtomicU32 = AtomicU32::new(0);
/// Built by `initialize`: the sum of the first 10 000 squares.
static TABLE: OnceLock<Vec<u64>> = OnceLock::new();

fn initialize() {
    INITIALIZE_RUNS.fetch_add(1, Ordering::SeqCst);
    TABLE.get_or_init(|| (0..10_000u64).map(|n| n * n).collect());
    log::info("initialize ran");
}

struct Initialized;

impl Validator for Initialized {
    fn info() -> PluginInfo {
        PluginInfo::new("initialized", env!("CARGO_PKG_VERSION"), env!("CARGO_PKG_DESCRIPTION"))
    }

    fn validate(_change: &Change, _at: &Checkpoint, _config: &str) -> Result<Verdict, String> {
        let calls = CALLS.fetch_add(1, Ordering::SeqCst) + 1;
        let table = TABLE
            .get()
            .map_or_else(|| "none".to_owned(), |t| t.iter().sum::<u64>().to_string());
        let state = format!(
            "initialize-runs={} table={table} calls={calls}",
            INITIALIZE_RUNS.load(Ordering::SeqCst)
        );
        Ok(Verdict::from_findings(vec![Finding::warning(
            "initialized/state",
            state,
        )]))
    }
}

cairn_plugin_sdk::export_validator!(Initialized);
cairn_plugin_sdk::export_initializer!(initialize);
