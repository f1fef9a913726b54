//! Shared helpers of cairn's integration tests and benchmarks: the paths of
//! the wasm guests built by `build.rs`, and runtimes set up for tests.

use std::path::PathBuf;
use std::sync::{Arc, OnceLock};

use cairn_host::{Runtime, RuntimeConfig};

/// Paths of the wasm guests, one constant per guest.
pub mod guests {
    include!(concat!(env!("OUT_DIR"), "/guests.rs"));
}

/// The compile cache shared by all tests of this checkout (compiling a
/// guest once per test binary run is slow in debug builds).
pub fn shared_cache_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join("target")
        .join("cairn-test-cache")
}

/// One runtime per test binary, with the shared compile cache.
pub fn runtime() -> Arc<Runtime> {
    static RUNTIME: OnceLock<Arc<Runtime>> = OnceLock::new();
    Arc::clone(RUNTIME.get_or_init(|| {
        Arc::new(
            Runtime::new(RuntimeConfig {
                cache_dir: Some(shared_cache_dir()),
                ..RuntimeConfig::default()
            })
            .expect("runtime starts"),
        )
    }))
}

/// The Cargo target directory `build.rs` builds the wasm guests in. Tests
/// that make `cairn` build a plugin project point `CARGO_TARGET_DIR` here, so
/// the bundled plugins are not compiled a second time.
pub fn wasm_guests_target_dir() -> PathBuf {
    // <target dir>/wasm32-wasip2/release/<guest>.wasm
    PathBuf::from(guests::NO_DELETES)
        .ancestors()
        .nth(3)
        .map(PathBuf::from)
        .unwrap_or_default()
}
