//! The runtime's engine settings other than the default: the on-demand
//! instance allocator keeps every limit, and a runtime without epoch checks
//! does what its documentation says (no deadline inside pure computation;
//! fuel still stops it).

use std::time::Duration;

use cairn_host::{CallOutcome, FailureKind, InstanceAllocation, Limits, Runtime, RuntimeConfig};
use serde_json::json;

use crate::util::{guests, validate_on, verdict, within};

/// Room an outer bound leaves past the deadline of the call it bounds:
/// loading the guest (a compile on a cold cache, once per runtime) on a busy
/// machine. A call stopped by its limit ends well inside it; only a broken
/// limit comes near this.
const SLACK: Duration = Duration::from_secs(60);

/// Outer bound of one call under `limits`: its deadline plus `SLACK`.
fn bound(limits: &Limits) -> Duration {
    limits.timeout + SLACK
}

/// Outer bound of the call that nothing stops (no epoch checks, no fuel):
/// 200 M rounds of pure computation, well under a second here, leave a wide
/// margin for a slower or busy machine. Past it the computation is hung, not
/// slow.
const UNCHECKED_BOUND: Duration = Duration::from_secs(120);

fn runtime(config: RuntimeConfig) -> Runtime {
    Runtime::new(RuntimeConfig {
        cache_dir: Some(cairn_tests::shared_cache_dir()),
        ..config
    })
    .expect("runtime starts")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_on_demand_allocator_keeps_the_memory_and_time_limits() {
    let runtime = runtime(RuntimeConfig {
        instance_allocation: InstanceAllocation::OnDemand,
        ..RuntimeConfig::default()
    });
    let bomb = Limits {
        memory_bytes: 8 << 20,
        ..Limits::default()
    };
    let report = within(
        bound(&bomb),
        validate_on(&runtime, guests::FIXTURE, &json!({"mode": "alloc"}), &bomb),
    )
    .await;
    assert_eq!(
        report.failure_kind(),
        Some(FailureKind::MemoryLimit),
        "{report:#?}"
    );
    assert!(report.peak_memory_bytes <= 8 << 20, "{report:#?}");

    let short = Limits {
        timeout: Duration::from_millis(100),
        ..Limits::default()
    };
    let report = within(
        bound(&short),
        validate_on(&runtime, guests::FIXTURE, &json!({"mode": "loop"}), &short),
    )
    .await;
    assert_eq!(
        report.failure_kind(),
        Some(FailureKind::Timeout),
        "{report:#?}"
    );
    assert!(report.elapsed < Duration::from_millis(100) + Duration::from_millis(250));

    // And it still serves: the next call completes with the plugin's answer
    // (the sample change deletes a document).
    let limits = Limits::default();
    let report = within(
        bound(&limits),
        validate_on(&runtime, guests::NO_DELETES, &json!({}), &limits),
    )
    .await;
    assert_eq!(verdict(&report).outcome, cairn_host::Outcome::Fail);
    assert_eq!(verdict(&report).findings[0].rule, "no-deletes/deleted");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_epoch_checks_pure_computation_outlives_its_deadline_and_fuel_still_stops_it() {
    // 200 M rounds take far longer than 5 ms even on a fast machine.
    let long = json!({"mode": "compute", "rounds": 200_000_000});
    let deadline = Limits {
        timeout: Duration::from_millis(5),
        ..Limits::default()
    };
    let unchecked = runtime(RuntimeConfig {
        epoch_interruption: false,
        ..RuntimeConfig::default()
    });
    let report = within(
        UNCHECKED_BOUND,
        validate_on(&unchecked, guests::FIXTURE, &long, &deadline),
    )
    .await;
    assert!(
        matches!(report.outcome, CallOutcome::Completed(_)),
        "nothing checks the deadline inside the loop: {report:#?}"
    );
    assert!(report.elapsed > deadline.timeout, "{report:#?}");

    // The default runtime stops the same call at its deadline.
    let checked = runtime(RuntimeConfig::default());
    let report = within(
        bound(&deadline),
        validate_on(&checked, guests::FIXTURE, &long, &deadline),
    )
    .await;
    assert_eq!(
        report.failure_kind(),
        Some(FailureKind::Timeout),
        "{report:#?}"
    );

    // Fuel without epoch checks: the budget stops it.
    let fuel_only = runtime(RuntimeConfig {
        epoch_interruption: false,
        fuel_metering: true,
        ..RuntimeConfig::default()
    });
    let budget = Limits {
        fuel: Some(1_000_000),
        timeout: Duration::from_secs(10),
        ..Limits::default()
    };
    // Without epoch checks nothing enforces this call's 10 s deadline: the
    // fuel budget is its only limit, and the outer bound stands in for the
    // deadline.
    let report = within(
        bound(&budget),
        validate_on(&fuel_only, guests::FIXTURE, &long, &budget),
    )
    .await;
    assert_eq!(
        report.failure_kind(),
        Some(FailureKind::FuelExhausted),
        "{report:#?}"
    );
}
