//! The compile cache: a second load is served from disk without compiling,
//! keys include the engine settings, and nothing read from it is trusted: a
//! corrupted artifact, another plugin's artifact copied in its place, or a
//! directory others can write to never runs as the pinned plugin.

use std::path::{Path, PathBuf};
use std::process::Output;

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
    assert_eq!(
        entries, 4,
        "one artifact and its seal per engine configuration"
    );
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

/// `cairn validate PLUGIN --change examples/changes/remove-connector` with
/// its own compile cache directory.
fn validate_with_cache(cache: &Path, plugin: &str) -> Output {
    let change = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/changes/remove-connector");
    let mut command = cairn_tests::cairn_command(env!("CARGO_BIN_EXE_cairn-cli"));
    command
        .env("CAIRN_CACHE_DIR", cache)
        .args(["validate", plugin, "--change"])
        .arg(change);
    cairn_tests::run_bounded(&mut command, cairn_tests::SUBPROCESS_BOUND)
}

/// The artifact and seal paths of `plugin` in `cache`, after one load.
fn entry_of(cache: &Path, plugin: &str) -> (PathBuf, PathBuf) {
    let runtime = runtime_with_cache(cache, false);
    let digest = runtime.load_file(Path::new(plugin), None).unwrap().digest();
    let cache = runtime.compile_cache().unwrap();
    (cache.artifact_path(&digest), cache.seal_path(&digest))
}

fn describe(output: &Output) -> String {
    format!(
        "status {:?}\nstdout:\n{}\nstderr:\n{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

/// no-deletes fails remove-connector (exit 1); well-formed passes it (0):
/// an impostor's verdict would show in the exit code.
const NO_DELETES_EXIT: i32 = 1;

#[test]
fn a_corrupted_artifact_is_discarded_and_recompiled_never_run() {
    let cache = tempfile::tempdir().expect("temp dir");
    let (artifact, seal) = entry_of(cache.path(), guests::NO_DELETES);
    let pristine = std::fs::read(&artifact).unwrap();
    let seed: u64 = std::env::var("CAIRN_CACHE_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0x5eed_cace);
    // Seeded positions spread over the file: header, code, metadata.
    let mut state = seed;
    let mut positions: Vec<usize> = (0..6)
        .map(|_| {
            state = state
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (state >> 33) as usize % pristine.len()
        })
        .collect();
    positions.push(pristine.len() / 2);
    for position in positions {
        let mut corrupted = pristine.clone();
        corrupted[position] ^= 0x5a;
        std::fs::write(&artifact, &corrupted).unwrap();
        let output = validate_with_cache(cache.path(), guests::NO_DELETES);
        assert_eq!(
            output.status.code(),
            Some(NO_DELETES_EXIT),
            "byte {position} flipped (seed {seed}, set CAIRN_CACHE_SEED to repeat): {}",
            describe(&output)
        );
        assert!(
            String::from_utf8_lossy(&output.stderr).contains("discarding compile cache entry"),
            "the discarded entry is logged: {}",
            describe(&output)
        );
        assert!(seal.is_file(), "a good entry was written back");
        assert_ne!(
            std::fs::read(&artifact).unwrap(),
            corrupted,
            "the corrupted artifact was replaced"
        );
    }
}

#[test]
fn another_plugins_artifact_copied_over_the_pinned_one_never_runs() {
    let cache = tempfile::tempdir().expect("temp dir");
    let (victim, victim_seal) = entry_of(cache.path(), guests::NO_DELETES);
    let (impostor, impostor_seal) = entry_of(cache.path(), guests::WELL_FORMED);
    let well_formed = validate_with_cache(cache.path(), guests::WELL_FORMED);
    assert_eq!(
        well_formed.status.code(),
        Some(0),
        "{}",
        describe(&well_formed)
    );

    // The artifact alone (its seal then disagrees), then artifact and seal
    // together (the seal is for another plugin).
    for with_seal in [false, true] {
        std::fs::copy(&impostor, &victim).unwrap();
        if with_seal {
            std::fs::copy(&impostor_seal, &victim_seal).unwrap();
        }
        let output = validate_with_cache(cache.path(), guests::NO_DELETES);
        assert_eq!(
            output.status.code(),
            Some(NO_DELETES_EXIT),
            "swap with seal = {with_seal}: the pinned plugin's own verdict: {}",
            describe(&output)
        );
        assert!(
            String::from_utf8_lossy(&output.stderr).contains("discarding compile cache entry"),
            "{}",
            describe(&output)
        );
    }
}

#[test]
fn a_cache_directory_others_can_write_is_refused_with_the_fix() {
    use std::os::unix::fs::PermissionsExt;
    let parent = tempfile::tempdir().expect("temp dir");
    let cache = parent.path().join("shared-cache");
    std::fs::create_dir(&cache).unwrap();
    std::fs::set_permissions(&cache, std::fs::Permissions::from_mode(0o1777)).unwrap();
    let output = validate_with_cache(&cache, guests::NO_DELETES);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(70), "{}", describe(&output));
    assert!(
        stderr.contains("others can write to it (mode 1777)"),
        "{stderr}"
    );
    assert!(stderr.contains("chmod go-w"), "{stderr}");
    assert!(stderr.contains("--no-cache"), "{stderr}");
    assert_eq!(
        std::fs::read_dir(&cache).unwrap().count(),
        0,
        "nothing written"
    );

    // The hint works: --no-cache runs the plugin without the directory.
    let mut command = cairn_tests::cairn_command(env!("CARGO_BIN_EXE_cairn-cli"));
    command
        .env("CAIRN_CACHE_DIR", &cache)
        .args(["validate", guests::NO_DELETES, "--no-cache", "--change"])
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/changes/remove-connector"));
    let output = cairn_tests::run_bounded(&mut command, cairn_tests::SUBPROCESS_BOUND);
    assert_eq!(
        output.status.code(),
        Some(NO_DELETES_EXIT),
        "{}",
        describe(&output)
    );
}

#[test]
fn a_component_refused_at_detection_is_not_cached() {
    let cache = tempfile::tempdir().expect("temp dir");
    let runtime = runtime_with_cache(cache.path(), false);
    // A wasi:cli command: compiles, but is no cairn plugin.
    assert!(
        runtime
            .load_file(Path::new(guests::CLI_COMMAND), None)
            .is_err()
    );
    assert_eq!(std::fs::read_dir(cache.path()).unwrap().count(), 0);
}

/// `cairn cache ARGS...` with its own compile cache directory.
fn cache_command(cache: &Path, args: &[&str]) -> Output {
    let mut command = cairn_tests::cairn_command(env!("CARGO_BIN_EXE_cairn-cli"));
    command
        .env("CAIRN_CACHE_DIR", cache)
        .arg("cache")
        .args(args);
    cairn_tests::run_bounded(&mut command, cairn_tests::SUBPROCESS_BOUND)
}

/// The wasm digest a seal records.
fn sealed_wasm(seal: &Path) -> String {
    let text = std::fs::read_to_string(seal).expect("seal is text");
    text.lines()
        .find_map(|line| line.strip_prefix("wasm "))
        .expect("seal names its wasm")
        .to_owned()
}

/// Sets when an entry was last used (its seal's modification time).
fn set_last_use(seal: &Path, ago: std::time::Duration) {
    std::fs::File::options()
        .write(true)
        .open(seal)
        .unwrap()
        .set_modified(std::time::SystemTime::now() - ago)
        .unwrap();
}

/// The names in a directory, sorted.
fn listing(dir: &Path) -> Vec<std::ffi::OsString> {
    let mut names: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|entry| entry.unwrap().file_name())
        .collect();
    names.sort();
    names
}

#[test]
fn cache_ls_lists_the_entries_of_two_loaded_plugins() {
    let cache = tempfile::tempdir().expect("temp dir");
    for plugin in [guests::NO_DELETES, guests::WELL_FORMED] {
        validate_with_cache(cache.path(), plugin);
    }
    let (_, no_deletes_seal) = entry_of(cache.path(), guests::NO_DELETES);
    let (_, well_formed_seal) = entry_of(cache.path(), guests::WELL_FORMED);
    set_last_use(
        &no_deletes_seal,
        std::time::Duration::from_secs(3 * 3600 + 60),
    );
    let digests = [
        sealed_wasm(&no_deletes_seal),
        sealed_wasm(&well_formed_seal),
    ];

    let output = cache_command(cache.path(), &["ls"]);
    assert_eq!(output.status.code(), Some(0), "{}", describe(&output));
    let stdout = String::from_utf8_lossy(&output.stdout);
    for digest in &digests {
        let row = stdout
            .lines()
            .find(|line| line.contains(&digest[..12]))
            .unwrap_or_else(|| panic!("a row for {digest}: {stdout}"));
        assert!(row.trim_end().ends_with("ok"), "{row}");
        assert!(row.contains("KiB") || row.contains("MiB"), "{row}");
    }
    assert!(stdout.contains("3 h ago"), "{stdout}");
    assert!(stdout.contains("2 entries, "), "{stdout}");

    let output = cache_command(cache.path(), &["ls", "--format", "json"]);
    assert_eq!(output.status.code(), Some(0), "{}", describe(&output));
    let json: serde_json::Value = serde_json::from_slice(&output.stdout).expect("JSON");
    let entries = json["entries"].as_array().expect("entries");
    assert_eq!(entries.len(), 2, "{json:#}");
    let mut listed: Vec<&str> = entries
        .iter()
        .map(|e| e["wasm-sha256"].as_str().unwrap())
        .collect();
    listed.sort();
    let mut expected: Vec<&str> = digests.iter().map(String::as_str).collect();
    expected.sort();
    assert_eq!(listed, expected);
    for entry in entries {
        assert_eq!(entry["status"], "ok");
        assert_eq!(entry["this-engine"], true);
        assert!(
            entry["last-use"].as_str().unwrap().ends_with('Z'),
            "{entry}"
        );
    }
    let total: u64 = entries.iter().map(|e| e["bytes"].as_u64().unwrap()).sum();
    assert_eq!(json["total-bytes"].as_u64(), Some(total));
}

#[test]
fn cache_prune_max_size_keeps_the_most_recently_used() {
    let cache = tempfile::tempdir().expect("temp dir");
    let (old_artifact, old_seal) = entry_of(cache.path(), guests::NO_DELETES);
    let (new_artifact, new_seal) = entry_of(cache.path(), guests::WELL_FORMED);
    set_last_use(&old_seal, std::time::Duration::from_secs(2 * 3600));
    set_last_use(&new_seal, std::time::Duration::from_secs(60));
    let size = |path: &Path| std::fs::metadata(path).unwrap().len();
    let newest = size(&new_artifact) + size(&new_seal);

    let limit = format!("{newest}B");
    let output = cache_command(cache.path(), &["prune", "--max-size", &limit]);
    assert_eq!(output.status.code(), Some(0), "{}", describe(&output));
    assert!(
        !old_artifact.exists() && !old_seal.exists(),
        "{}",
        describe(&output)
    );
    assert!(
        new_artifact.exists() && new_seal.exists(),
        "{}",
        describe(&output)
    );
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(stdout.contains("over max size"), "{stdout}");
    assert!(stdout.contains("removed 1 entry"), "{stdout}");

    // What is left still loads from disk.
    let output = validate_with_cache(cache.path(), guests::WELL_FORMED);
    assert_eq!(output.status.code(), Some(0), "{}", describe(&output));
    assert!(
        !String::from_utf8_lossy(&output.stderr).contains("discarding"),
        "{}",
        describe(&output)
    );
}

#[test]
fn cache_prune_dry_run_removes_nothing() {
    let cache = tempfile::tempdir().expect("temp dir");
    entry_of(cache.path(), guests::NO_DELETES);
    let before = listing(cache.path());
    let output = cache_command(cache.path(), &["prune", "--all", "--dry-run"]);
    assert_eq!(output.status.code(), Some(0), "{}", describe(&output));
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(stdout.contains("would remove 1 entry"), "{stdout}");
    assert_eq!(listing(cache.path()), before, "nothing removed");

    let output = cache_command(cache.path(), &["prune", "--all"]);
    assert_eq!(output.status.code(), Some(0), "{}", describe(&output));
    assert!(listing(cache.path()).is_empty(), "{}", describe(&output));
}

#[test]
fn cache_prune_with_a_bad_size_or_duration_is_a_usage_error() {
    let cache = tempfile::tempdir().expect("temp dir");
    for args in [
        ["prune", "--max-size", "12parsecs"],
        ["prune", "--max-size", "GiB"],
        ["prune", "--older-than", "soon"],
    ] {
        let output = cache_command(cache.path(), &args);
        assert_eq!(
            output.status.code(),
            Some(64),
            "{args:?}: {}",
            describe(&output)
        );
        assert!(
            String::from_utf8_lossy(&output.stderr).contains(args[2]),
            "{}",
            describe(&output)
        );
    }
}
