//! The compile cache: a second load is served from disk without compiling,
//! keys include the engine settings, and a corrupt entry is recompiled.

use std::path::Path;

use cairn_host::{CacheStatus, Runtime, RuntimeConfig};

use crate::util::guests;

fn runtime_with_cache(dir: &Path, fuel_metering: bool) -> Runtime {
    Runtime::new(RuntimeConfig {
        cache_dir: Some(dir.to_owned()),
        fuel_metering,
        ..RuntimeConfig::default()
    })
    .expect("runtime starts")
}

#[test]
fn second_load_is_served_from_disk_then_from_memory() {
    let dir = tempfile::tempdir().expect("temp dir");
    let plugin = Path::new(guests::NO_DELETES);

    let first = runtime_with_cache(dir.path(), false);
    assert_eq!(
        first.load_file(plugin, None).unwrap().cache_status(),
        CacheStatus::Compiled
    );
    assert_eq!(first.load_stats().compiled, 1);

    let second = runtime_with_cache(dir.path(), false);
    let cache = second.compile_cache().expect("cache is on");
    let sha256 = first.load_file(plugin, None).unwrap().digest();
    assert!(cache.contains(&sha256));
    assert_eq!(
        second.load_file(plugin, None).unwrap().cache_status(),
        CacheStatus::Disk
    );
    assert_eq!(
        second.load_file(plugin, None).unwrap().cache_status(),
        CacheStatus::Memory
    );
    let stats = second.load_stats();
    assert_eq!(
        (stats.compiled, stats.from_disk, stats.from_memory),
        (0, 1, 1)
    );
}

#[test]
fn cache_key_includes_engine_settings() {
    let dir = tempfile::tempdir().expect("temp dir");
    let plugin = Path::new(guests::NO_DELETES);
    runtime_with_cache(dir.path(), false)
        .load_file(plugin, None)
        .unwrap();
    // Fuel metering changes the generated code: the artifact must not be reused.
    let metered = runtime_with_cache(dir.path(), true);
    assert_eq!(
        metered.load_file(plugin, None).unwrap().cache_status(),
        CacheStatus::Compiled
    );
    let entries = std::fs::read_dir(dir.path()).unwrap().count();
    assert_eq!(entries, 2, "one artifact per engine configuration");
}

#[test]
fn corrupt_cache_entry_is_recompiled_not_fatal() {
    let dir = tempfile::tempdir().expect("temp dir");
    let plugin = Path::new(guests::NO_DELETES);
    let first = runtime_with_cache(dir.path(), false);
    let sha256 = first.load_file(plugin, None).unwrap().digest();
    let artifact = first.compile_cache().unwrap().artifact_path(&sha256);
    std::fs::write(&artifact, b"not a compiled component").unwrap();

    let second = runtime_with_cache(dir.path(), false);
    assert_eq!(
        second.load_file(plugin, None).unwrap().cache_status(),
        CacheStatus::Compiled
    );
    // The entry was replaced by a good one.
    let third = runtime_with_cache(dir.path(), false);
    assert_eq!(
        third.load_file(plugin, None).unwrap().cache_status(),
        CacheStatus::Disk
    );
}
