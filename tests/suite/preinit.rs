//! Pre-initialisation: a plugin's `initialize` runs once, at first compile,
//! and every call starts from the snapshot taken after it (also when the
//! compiled snapshot comes from the disk cache); a hostile `initialize` is
//! stopped with the exact failure kind, in time, and the host keeps serving.

use std::path::Path;
use std::time::{Duration, Instant};

use cairn_host::{
    CacheStatus, FailureKind, InitializationError, Limits, LoadError, Outcome, Runtime,
    RuntimeConfig,
};
use serde_json::json;

use cairn_tests::Watchdog;

use crate::util::{guests, validate_on, verdict, within};

/// Room a load's outer bound leaves past its initialisation deadline:
/// compiling the instrumented component and then its snapshot (a debug test
/// build, a busy machine). Above the 30 s the hostile test asserts on, so a
/// slow load fails that assertion rather than ending the process.
const COMPILE_SLACK: Duration = Duration::from_secs(60);

/// Outer bound of a load that pre-initialises under `initialization_timeout`.
/// A load is synchronous, so a watchdog guards it: past the bound the
/// `initialize` deadline did not stop it, and the test process ends rather
/// than hang the suite.
fn load_watchdog(initialization_timeout: Duration, what: &'static str) -> Watchdog {
    Watchdog::start(initialization_timeout + COMPILE_SLACK, what)
}

/// Outer bound of one call under the default limits (a 1 s deadline),
/// loading the guest included when it needs no pre-initialisation or is
/// already loaded.
const CALL_BOUND: Duration = Duration::from_secs(60);

fn runtime_with_cache(dir: &Path, initialization_timeout: Duration) -> Runtime {
    let defaults = RuntimeConfig::default();
    Runtime::new(RuntimeConfig {
        cache_dir: Some(dir.to_owned()),
        initialization_limits: Limits {
            timeout: initialization_timeout,
            ..defaults.initialization_limits
        },
        ..defaults
    })
    .expect("runtime starts")
}

/// The state line the `initialized` guest reports from one fresh call.
async fn reported_state(runtime: &Runtime) -> (String, Vec<String>) {
    let report = validate_on(runtime, guests::INITIALIZED, &json!({}), &Limits::default()).await;
    let verdict = verdict(&report);
    assert_eq!(verdict.outcome, Outcome::Warn, "{report:#?}");
    let logs = report
        .output
        .logs
        .iter()
        .map(|record| record.message.clone())
        .collect();
    (verdict.findings[0].message.clone(), logs)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_call_starts_from_the_state_initialize_left_and_initialize_never_runs_in_a_call() {
    let dir = tempfile::tempdir().expect("temp dir");
    let initialization_timeout = Duration::from_secs(10);
    let runtime = runtime_with_cache(dir.path(), initialization_timeout);
    let watchdog = load_watchdog(initialization_timeout, "loading the initialized guest");
    let plugin = runtime
        .load_file(Path::new(guests::INITIALIZED), None)
        .expect("loads");
    drop(watchdog);
    assert!(plugin.pre_initialized());
    assert_eq!(plugin.cache_status(), CacheStatus::Compiled);

    // Sum of n² for n < 10 000, built by `initialize`.
    let expected = "initialize-runs=1 table=333283335000 calls=1";
    for _ in 0..3 {
        let (state, logs) = within(CALL_BOUND, reported_state(&runtime)).await;
        // `calls=1` every time: each call has a fresh instance made from the
        // snapshot, in which `initialize` had run once and no call yet.
        assert_eq!(state, expected);
        assert!(
            !logs.iter().any(|line| line.contains("initialize ran")),
            "initialize ran during a call: {logs:?}"
        );
    }

    // A second runtime loads the compiled snapshot from disk: same state,
    // without running `initialize` again.
    let second = runtime_with_cache(dir.path(), initialization_timeout);
    let watchdog = load_watchdog(
        initialization_timeout,
        "loading the initialized guest from disk",
    );
    let plugin = second
        .load_file(Path::new(guests::INITIALIZED), None)
        .expect("loads");
    drop(watchdog);
    assert_eq!(plugin.cache_status(), CacheStatus::Disk);
    assert!(plugin.pre_initialized());
    assert_eq!(
        within(CALL_BOUND, reported_state(&second)).await.0,
        expected
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_initialize_that_never_returns_is_stopped_at_its_deadline_and_the_host_still_serves() {
    let dir = tempfile::tempdir().expect("temp dir");
    let deadline = Duration::from_millis(200);
    let runtime = runtime_with_cache(dir.path(), deadline);

    let watchdog = load_watchdog(deadline, "loading the hostile_init guest");
    let started = Instant::now();
    let err = runtime
        .load_file(Path::new(guests::HOSTILE_INIT), None)
        .expect_err("a plugin whose initialize loops must not load");
    let elapsed = started.elapsed();
    drop(watchdog);
    // The bound covers compiling the instrumented component too (a debug
    // test build, a busy machine); the loop alone would never end.
    assert!(elapsed < Duration::from_secs(30), "took {elapsed:?}");
    assert!(
        matches!(
            &err,
            LoadError::Initialization {
                source: InitializationError::Stopped(failure),
                ..
            } if failure.kind == FailureKind::Timeout
        ),
        "{err:?}"
    );
    assert_eq!(err.failure().kind, FailureKind::Timeout);
    assert!(err.to_string().contains("hostile_init"), "{err}");
    // Nothing was cached for it: a second load runs `initialize` again and
    // fails the same way (a cached artifact would have loaded).
    let watchdog = load_watchdog(deadline, "loading the hostile_init guest again");
    let again = runtime
        .load_file(Path::new(guests::HOSTILE_INIT), None)
        .expect_err("still refused");
    drop(watchdog);
    assert_eq!(again.failure().kind, FailureKind::Timeout);

    // The same runtime still loads and serves other plugins, an initialised
    // one included (loaded, and pre-initialised under this runtime's
    // deadline, by this call: its bound covers that load too).
    let (state, _) = within(
        deadline + COMPILE_SLACK + CALL_BOUND,
        reported_state(&runtime),
    )
    .await;
    assert_eq!(state, "initialize-runs=1 table=333283335000 calls=1");
    let report = within(
        CALL_BOUND,
        validate_on(&runtime, guests::NO_DELETES, &json!({}), &Limits::default()),
    )
    .await;
    assert_eq!(verdict(&report).outcome, Outcome::Fail);
}
