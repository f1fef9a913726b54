//! The bundled fault injectors (latency, flaky, nonstandard-codes,
//! slow-connector, corrupt-body): every golden case under
//! `plugins/<name>/cases` decides as expected through the host, their config
//! schemas match what they accept, and their random draws are deterministic,
//! independent and spread as configured. The hostile injector is stopped
//! with the exact failure kind per misbehaviour, in time, and the same
//! loaded plugin then still decides a normal request; the pass-through
//! injector forwards everything.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::Duration;

use cairn_host::{
    Action, CallOutcome, CallReport, Decision, Failure, FailureKind, Limits, Plugin, RequestInfo,
};
use serde_json::{Value, json};

use cairn_host::authoring::golden::{self, ExpectedRefusal, FaultCase, FaultExpected, TextMatch};

use crate::util::{guests, limits_with_timeout, load, within};

/// Each bundled fault injector: (directory under `plugins/`, wasm guest).
const INJECTORS: &[(&str, &str)] = &[
    ("latency", guests::LATENCY),
    ("flaky", guests::FLAKY),
    ("nonstandard-codes", guests::NONSTANDARD_CODES),
    ("slow-connector", guests::SLOW_CONNECTOR),
    ("corrupt-body", guests::CORRUPT_BODY),
];

/// Outer bound of loading one injector (a compile on a cold cache, seconds
/// on a busy machine) and running its cases or a few hundred decisions,
/// each a call under the default limits that ends in milliseconds. Past it
/// a limit did not stop a call.
const BATCH_BOUND: Duration = Duration::from_secs(120);

/// Slack allowed past a deadline: the deadline is checked every
/// millisecond; the margin absorbs a loaded CI machine.
const MARGIN: Duration = Duration::from_millis(250);

/// Room an outer bound leaves past the deadline of the call it bounds:
/// loading the hostile injector (a cold compile on a busy machine) and the
/// normal call after the hostile one.
const SLACK: Duration = Duration::from_secs(60);

fn cases_dir(plugin: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../plugins")
        .join(plugin)
        .join("cases")
}

/// The cases of `plugin`, in directory-name order, loaded as `cairn plugin
/// test` loads them.
fn load_cases(plugin: &str) -> Vec<FaultCase> {
    let dir = cases_dir(plugin);
    golden::load_fault_cases(&dir)
        .unwrap_or_else(|err| panic!("cannot load the cases of {plugin}: {err}"))
}

/// Runs one case; `Err` says how the outcome differs, as `cairn plugin
/// test` would.
async fn run_case(plugin: &Plugin, case: &FaultCase) -> Result<(), String> {
    let report = plugin
        .decide(&case.request, &case.config, &Limits::default())
        .await;
    let mismatches = golden::compare_decision(&case.expected, &report.outcome);
    if mismatches.is_empty() {
        Ok(())
    } else {
        Err(mismatches
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join("; "))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_golden_case_of_every_bundled_fault_injector_decides_as_expected() {
    let mut report = Vec::new();
    let mut failed = 0;
    for (name, guest) in INJECTORS {
        let results = within(BATCH_BOUND, async {
            let plugin = load(guest);
            let mut results = Vec::new();
            for case in load_cases(name) {
                let result = run_case(&plugin, &case).await;
                results.push((case.name, result));
            }
            results
        })
        .await;
        assert!(results.len() >= 3, "{name} has {} case(s)", results.len());
        for (case, result) in results {
            match result {
                Ok(()) => report.push(format!("{name}/{case}: ok")),
                Err(why) => {
                    failed += 1;
                    report.push(format!("{name}/{case}: FAILED: {why}"));
                }
            }
        }
    }
    assert_eq!(
        failed,
        0,
        "{failed} golden case(s) failed:\n{}",
        report.join("\n")
    );
}

/// Whether the cases under `cases` are fault-injector cases (each holds a
/// `request.json`) rather than validator cases.
fn holds_injector_cases(cases: &Path) -> bool {
    std::fs::read_dir(cases).is_ok_and(|entries| {
        entries
            .flatten()
            .any(|entry| entry.path().join("request.json").is_file())
    })
}

#[test]
fn every_fault_injector_with_cases_is_run_by_the_suite() {
    let listed: BTreeSet<&str> = INJECTORS.iter().map(|(name, _)| *name).collect();
    let plugins = Path::new(env!("CARGO_MANIFEST_DIR")).join("../plugins");
    for entry in std::fs::read_dir(&plugins).expect("plugins/ lists") {
        let entry = entry.expect("a directory entry");
        if holds_injector_cases(&entry.path().join("cases")) {
            let name = entry.file_name().to_string_lossy().into_owned();
            assert!(
                listed.contains(name.as_str()),
                "plugins/{name}/cases is not run: add it to INJECTORS"
            );
        }
    }
    for name in listed {
        assert!(holds_injector_cases(&cases_dir(name)), "{name}");
    }
}

#[test]
fn every_fault_injector_has_a_faulting_a_passing_and_a_refused_case() {
    for (name, _) in INJECTORS {
        let cases = load_cases(name);
        let decisions: Vec<&Decision> = cases
            .iter()
            .filter_map(|case| match &case.expected {
                FaultExpected::Decision(decision) => Some(decision),
                FaultExpected::Refused(_) => None,
            })
            .collect();
        assert!(
            decisions.iter().any(|d| d.is_pass()),
            "{name}: no case where the request passes"
        );
        assert!(
            decisions.iter().any(|d| !d.is_pass()),
            "{name}: no case where a fault is injected"
        );
        for case in &cases {
            if let FaultExpected::Refused(refusal) = &case.expected {
                let part = match refusal {
                    ExpectedRefusal::Text(TextMatch::Exact(text) | TextMatch::Contains(text)) => {
                        text.as_str()
                    }
                    ExpectedRefusal::Any => "",
                };
                assert!(
                    part.contains('`'),
                    "{name}/{}: a refusal must name the config key (`key`): {part:?}",
                    case.name
                );
            }
        }
        assert!(
            cases
                .iter()
                .any(|case| matches!(case.expected, FaultExpected::Refused(_))),
            "{name}: no case with an invalid config"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_fault_injector_names_itself_and_its_schema_accepts_every_case_config_it_decides() {
    for (name, guest) in INJECTORS {
        let info = within(BATCH_BOUND, async {
            load(guest).info(&Limits::default()).await
        })
        .await;
        let info = match info.outcome {
            CallOutcome::Completed(info) => info,
            other => panic!("{name}: info() did not complete: {other:#?}"),
        };
        assert_eq!(info.name, *name);
        let schema_text = info
            .config_schema
            .unwrap_or_else(|| panic!("{name} has no config schema"));
        let schema: Value = serde_json::from_str(&schema_text)
            .unwrap_or_else(|err| panic!("{name}: config schema is not JSON: {err}"));
        let validator = jsonschema::validator_for(&schema)
            .unwrap_or_else(|err| panic!("{name}: config schema does not compile: {err}"));
        for case in load_cases(name) {
            if let FaultExpected::Decision(_) = case.expected {
                let config: Value = serde_json::from_str(&case.config).expect("case config");
                let errors: Vec<String> = validator
                    .iter_errors(&config)
                    .map(|e| e.to_string())
                    .collect();
                assert!(
                    errors.is_empty(),
                    "{name}/{}: the plugin accepts a config its schema rejects: {errors:?}",
                    case.name
                );
            }
        }
    }
}

/// `count` requests with well-spread random numbers (SplitMix64 of the
/// sequence), as an experiment's seed would give them.
fn requests(count: u64, attempt: u32) -> Vec<RequestInfo> {
    (0..count)
        .map(|sequence| {
            let mut z = sequence.wrapping_add(1).wrapping_mul(0x9E37_79B9_7F4A_7C15);
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            RequestInfo {
                path: "/orders/42".into(),
                attempt,
                sequence,
                random: z ^ (z >> 31),
                ..RequestInfo::default()
            }
        })
        .collect()
}

/// What `guest` decides for each of `requests` under `config`.
async fn decide_all(guest: &str, config: &Value, requests: &[RequestInfo]) -> Vec<Decision> {
    within(BATCH_BOUND, async {
        let plugin = load(guest);
        let mut decisions = Vec::new();
        for request in requests {
            let report = plugin
                .decide(request, &config.to_string(), &Limits::default())
                .await;
            match report.outcome {
                CallOutcome::Completed(decision) => decisions.push(decision),
                other => panic!("{guest} did not decide {request:?}: {other:?}"),
            }
        }
        decisions
    })
    .await
}

fn abort_status(decision: &Decision) -> Option<u16> {
    match &decision.action {
        Action::Abort(abort) => Some(abort.status),
        _ => None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn flaky_fails_about_its_percent_with_every_status_and_lets_retries_past_max_attempt_through()
{
    let config = json!({"percent": 30, "statuses": [503, 429, 502], "max-attempt": 2});
    let first = decide_all(guests::FLAKY, &config, &requests(300, 1)).await;
    let statuses: Vec<u16> = first.iter().filter_map(abort_status).collect();
    // 30 % of 300 is 90; the draws are fixed, the band only has to hold
    // for any fair `chance`.
    assert!(
        (50..=130).contains(&statuses.len()),
        "{} of 300 failed",
        statuses.len()
    );
    assert!(
        first
            .iter()
            .all(|d| d.is_pass() || abort_status(d).is_some()),
        "{first:?}"
    );
    let seen: BTreeSet<u16> = statuses.iter().copied().collect();
    assert_eq!(
        seen,
        BTreeSet::from([429, 502, 503]),
        "the status draw is independent of the percent draw"
    );
    let third = decide_all(guests::FLAKY, &config, &requests(100, 3)).await;
    assert!(
        third.iter().all(Decision::is_pass),
        "attempts past max-attempt pass"
    );
    let again = decide_all(guests::FLAKY, &config, &requests(300, 1)).await;
    assert_eq!(first, again, "the same requests get the same decisions");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn latency_jitter_spreads_over_its_range_and_replays_exactly() {
    let config = json!({"delay-ms": 100, "jitter-ms": 50});
    let requests = requests(200, 1);
    let decisions = decide_all(guests::LATENCY, &config, &requests).await;
    let delays: Vec<u32> = decisions.iter().map(|d| d.delay_request_ms).collect();
    assert!(delays.iter().all(|d| (100..=150).contains(d)), "{delays:?}");
    let distinct: BTreeSet<u32> = delays.iter().copied().collect();
    assert!(distinct.len() >= 30, "jitter barely varies: {distinct:?}");
    assert_eq!(
        decide_all(guests::LATENCY, &config, &requests).await,
        decisions
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_connector_hang_draw_is_independent_of_the_percent_draw() {
    let config = json!({"percent": 50, "hang-percent": 50, "hang-ms": 1000});
    let decisions = decide_all(guests::SLOW_CONNECTOR, &config, &requests(400, 1)).await;
    let hung = decisions
        .iter()
        .filter(|d| matches!(d.action, Action::Hang { millis: 1000 }))
        .count();
    let throttled = decisions
        .iter()
        .filter(|d| d.body.throttle_bytes_per_second == Some(1024))
        .count();
    let passed = decisions.iter().filter(|d| d.is_pass()).count();
    assert_eq!(hung + throttled + passed, 400, "{decisions:?}");
    // A quarter each hang and throttle, half pass; bands that hold for any
    // fair `chance`, and fail if the two draws were the same number.
    assert!((50..=150).contains(&hung), "{hung} hung");
    assert!((50..=150).contains(&throttled), "{throttled} throttled");
    assert!((140..=260).contains(&passed), "{passed} passed");
}

/// Runs the hostile injector in `mode` under `limits`: the call must be
/// stopped with `kind` within the deadline plus `MARGIN`, and the same
/// loaded plugin must then still decide a normal request.
async fn assert_hostile_stopped(
    mode: &str,
    kind: FailureKind,
    limits: Limits,
) -> (Duration, Failure) {
    let report: CallReport<Decision> = within(limits.timeout * 2 + SLACK, async {
        let plugin = load(guests::HOSTILE_INJECTOR);
        let report = plugin
            .decide(&RequestInfo::default(), &json!(mode).to_string(), &limits)
            .await;
        let next = plugin
            .decide(&RequestInfo::default(), &json!("pass").to_string(), &limits)
            .await;
        assert_eq!(
            next.outcome,
            CallOutcome::Completed(Decision::PASS),
            "after {mode}, the same plugin decides a normal request: {next:#?}"
        );
        report
    })
    .await;
    assert_eq!(report.failure_kind(), Some(kind), "{mode}: {report:#?}");
    assert!(
        report.elapsed <= limits.timeout + MARGIN,
        "{mode} ran {:?}, past its {:?} deadline + {MARGIN:?}",
        report.elapsed,
        limits.timeout
    );
    match report.outcome {
        CallOutcome::Stopped(failure) => (report.elapsed, failure),
        _ => unreachable!("kind checked above"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_injector_infinite_loop_is_a_timeout_at_its_deadline() {
    let limits = limits_with_timeout(Duration::from_millis(200));
    let (_, failure) = assert_hostile_stopped("loop", FailureKind::Timeout, limits).await;
    assert!(failure.message.contains("200 ms"), "{failure}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_injector_sixty_second_sleep_is_cut_at_its_deadline() {
    let limits = limits_with_timeout(Duration::from_millis(200));
    let (elapsed, _) = assert_hostile_stopped("sleep", FailureKind::Timeout, limits).await;
    assert!(
        elapsed >= limits.timeout,
        "stopped before its deadline: {elapsed:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_injector_unbounded_allocation_hits_the_memory_limit() {
    let limits = Limits {
        memory_bytes: 32 << 20,
        ..Limits::default()
    };
    let (_, failure) = assert_hostile_stopped("memory", FailureKind::MemoryLimit, limits).await;
    assert!(
        failure.message.contains(&(32u64 << 20).to_string()),
        "{failure}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_injector_panic_is_a_trap_with_its_message() {
    let (_, failure) = assert_hostile_stopped("trap", FailureKind::Trap, Limits::default()).await;
    assert!(
        failure
            .message
            .contains("hostile-injector panicked on purpose"),
        "{failure}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_injector_status_1000_is_invalid_output() {
    let (_, failure) = assert_hostile_stopped(
        "invalid-status",
        FailureKind::InvalidOutput,
        Limits::default(),
    )
    .await;
    assert!(failure.message.contains("1000"), "{failure}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_injector_header_value_with_crlf_is_invalid_output() {
    let (_, failure) =
        assert_hostile_stopped("bad-header", FailureKind::InvalidOutput, Limits::default()).await;
    assert!(failure.message.contains("control characters"), "{failure}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn passthrough_injector_forwards_every_request_untouched() {
    let decisions = decide_all(guests::PASSTHROUGH_INJECTOR, &json!({}), &requests(20, 1)).await;
    assert!(decisions.iter().all(Decision::is_pass), "{decisions:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_passthrough_injector_forwards_every_request_untouched() {
    let decisions = decide_all(guests::PASSTHROUGH_PY, &json!({}), &requests(5, 1)).await;
    assert!(decisions.iter().all(Decision::is_pass), "{decisions:?}");
}
