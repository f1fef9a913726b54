//! Plugins written in Python and JavaScript: the secrets-scan check gives
//! the same verdicts in Rust, Python and JavaScript on the shared corpus
//! (`tests/conformance/`), the Python 0.1.0 fault injector decides as
//! documented, and hostile Python and JavaScript plugins are stopped with
//! the exact failure kind, in time, after which the host still serves.
//! Projects made by `cairn plugin new` (validators on contract 0.1.0, fault
//! injectors on 0.2.0) build and pass their own golden cases in every
//! language, through the library and through `cairn plugin test`, and the
//! Python and JavaScript SDKs' own unit tests pass.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use std::time::Duration;

use cairn_host::authoring::golden;
use cairn_host::authoring::scaffold::{Kind, Lang, SdkSource, checkout_sdk, scaffold};
use cairn_host::{
    AbortResponse, Action, CallOutcome, CallReport, Change, Checkpoint, ContractVersion, Decision,
    Document, FailureKind, Limits, Outcome, Plugin, RequestInfo, Verdict, World,
};
use serde_json::{Value, json};

use crate::util::{guests, verdict, within};

/// Slack allowed past a deadline, as in `hostile.rs`: the deadline is
/// checked every millisecond; the margin absorbs a loaded CI machine.
const MARGIN: Duration = Duration::from_millis(250);

/// Deadline of the hostile calls: long enough for an interpreter's
/// instantiation (a few ms from the pooled copy-on-write image), short
/// enough to keep the suite fast.
const HOSTILE_TIMEOUT: Duration = Duration::from_millis(500);

/// Room an outer bound leaves past the deadline of the hostile call it
/// bounds. The plugins are loaded before the bound starts (`warm`), so it
/// covers the call alone: a call stopped by its limit ends within `MARGIN`
/// of its deadline; only a broken limit comes near this.
const SLACK: Duration = Duration::from_secs(30);

/// Outer bound of one hostile call under `limits`: its deadline plus `SLACK`.
fn bound(limits: &Limits) -> Duration {
    limits.timeout + SLACK
}

/// Outer bound of `assert_language_still_serves`: two calls under the
/// default limits (a 1 s deadline each), plus `SLACK`.
const STILL_SERVES_BOUND: Duration = Duration::from_secs(32);

/// The secrets-scan check in each language, under the same name.
const SECRETS_SCANS: [(&str, &str); 3] = [
    ("rust", guests::SECRETS_SCAN),
    ("python", guests::SECRETS_SCAN_PY),
    ("js", guests::SECRETS_SCAN_JS),
];

/// Loads each guest once per test binary: a Python or JS component takes
/// seconds to compile on a cold cache, and concurrent tests would otherwise
/// compile the same one several times.
fn loaded(path: &'static str) -> Plugin {
    static LOADED: Mutex<BTreeMap<&'static str, Arc<OnceLock<Plugin>>>> =
        Mutex::new(BTreeMap::new());
    let cell = Arc::clone(
        LOADED
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .entry(path)
            .or_default(),
    );
    cell.get_or_init(|| crate::util::load(path)).clone()
}

/// Loads a hostile plugin and its language's secrets-scan ahead of the
/// bounded calls: a cold compile of an interpreter component takes seconds
/// (more on a busy machine), and is no limit under test.
fn warm(hostile: &'static str, scan: &'static str) {
    loaded(hostile);
    loaded(scan);
}

fn corpus_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("conformance/secrets-scan")
}

/// What a call answered, as the corpus writes it in `expected.json`.
fn answer_as_json(report: &CallReport<Verdict>) -> Value {
    match &report.outcome {
        CallOutcome::Completed(verdict) => json!({
            "outcome": verdict.outcome,
            "summary": verdict.summary,
            "findings": verdict.findings,
        }),
        CallOutcome::Refused(reason) => json!({ "refused": reason }),
        CallOutcome::Stopped(failure) => json!({ "stopped": failure }),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn secrets_scan_gives_the_expected_verdict_in_rust_python_and_js_on_every_corpus_case() {
    let mut cases: Vec<PathBuf> = std::fs::read_dir(corpus_dir())
        .expect("read the conformance corpus")
        .map(|entry| entry.expect("corpus entry").path())
        .filter(|path| path.is_dir())
        .collect();
    cases.sort();
    assert!(
        cases.len() >= 5,
        "the corpus has only {} cases",
        cases.len()
    );
    let mut mismatches = Vec::new();
    for case in &cases {
        let name = case.file_name().unwrap_or_default().to_string_lossy();
        let change = Arc::new(Change::from_dir(&case.join("change")).expect("read the change"));
        let config =
            std::fs::read_to_string(case.join("config.json")).unwrap_or_else(|_| "{}".to_string());
        let expected: Value = serde_json::from_str(
            &std::fs::read_to_string(case.join("expected.json")).expect("read expected.json"),
        )
        .expect("expected.json is JSON");
        for (lang, path) in SECRETS_SCANS {
            let report = loaded(path)
                .validate(
                    Arc::clone(&change),
                    &Checkpoint::default(),
                    &config,
                    &Limits::default(),
                )
                .await;
            let got = answer_as_json(&report);
            if got != expected {
                mismatches.push(format!(
                    "{name} ({lang}):\n  expected {expected}\n  got      {got}"
                ));
            }
        }
    }
    assert!(mismatches.is_empty(), "{}", mismatches.join("\n"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn secrets_scan_describes_itself_identically_in_every_language() {
    let mut infos = Vec::new();
    for (lang, path) in SECRETS_SCANS {
        let report = loaded(path).info(&Limits::default()).await;
        match report.outcome {
            CallOutcome::Completed(info) => infos.push((lang, info)),
            other => panic!("{lang}: info() did not complete: {other:#?}"),
        }
    }
    let (_, rust) = &infos[0];
    assert_eq!(rust.name, "secrets-scan");
    assert!(rust.config_schema.is_some());
    for (lang, info) in &infos[1..] {
        assert_eq!(info, rust, "{lang} differs from rust");
    }
}

fn request(path: &str, sequence: u64, elapsed_ms: u64, active_faults: u32) -> RequestInfo {
    RequestInfo {
        path: path.into(),
        headers: vec![("x-request-id".into(), sequence.to_string())],
        sequence,
        elapsed_ms,
        active_faults,
        ..RequestInfo::default()
    }
}

async fn decide(request: &RequestInfo, config: &Value) -> CallOutcome<Decision> {
    loaded(guests::FLAKY_UPSTREAM_PY)
        .decide(request, &config.to_string(), &Limits::default())
        .await
        .outcome
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_v0_1_fault_injector_fails_every_nth_matching_request_and_delays_the_rest() {
    let config = json!({
        "paths": ["/orders"], "error_every": 3, "status": 502, "delay_ms": 40, "warmup_ms": 1000,
    });
    // A 0.1.0 `delay` is a request delay, an `error` an abort without
    // headers: the bindings convert, the caller sees 0.2.0 decisions.
    let delayed = Decision {
        delay_request_ms: 40,
        ..Decision::PASS
    };
    let failed = Decision {
        action: Action::Abort(AbortResponse {
            status: 502,
            headers: Vec::new(),
            body: Some(b"injected by cairn flaky-upstream".to_vec()),
        }),
        ..Decision::PASS
    };
    let cases = [
        (request("/orders/1", 0, 5_000, 0), delayed.clone(), "first"),
        (request("/orders/1", 1, 5_000, 0), delayed, "second"),
        (request("/orders/1", 2, 5_000, 0), failed, "third fails"),
        (
            request("/users/1", 2, 5_000, 0),
            Decision::PASS,
            "other path",
        ),
        (
            request("/orders/1", 2, 500, 0),
            Decision::PASS,
            "warming up",
        ),
        (
            request("/orders/1", 2, 5_000, 5),
            Decision::PASS,
            "blast radius",
        ),
    ];
    for (request, expected, why) in cases {
        assert_eq!(
            decide(&request, &config).await,
            CallOutcome::Completed(expected),
            "{why}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_fault_injector_refuses_an_invalid_config() {
    let outcome = decide(&request("/", 0, 0, 0), &json!({ "status": 42 })).await;
    assert_eq!(
        outcome,
        CallOutcome::Refused("invalid config: status must be within 100..=999".into())
    );
}

/// A change no secrets-scan objects to.
fn clean_change() -> Arc<Change> {
    Arc::new(Change::new(
        [Document::new(
            "deploy/app.yaml",
            None,
            Some(b"password: ${secret:db}\n".to_vec()),
        )],
        Vec::new(),
    ))
}

async fn run_hostile(path: &'static str, mode: &str, limits: &Limits) -> CallReport<Verdict> {
    loaded(path)
        .validate(
            clean_change(),
            &Checkpoint::default(),
            &json!({ "mode": mode }).to_string(),
            limits,
        )
        .await
}

/// Right after a hostile call, the same hostile plugin (in a fresh store)
/// and the same language's secrets-scan both pass.
async fn assert_language_still_serves(hostile: &'static str, scan: &'static str) {
    let again = run_hostile(hostile, "behave", &Limits::default()).await;
    assert_eq!(verdict(&again).outcome, Outcome::Pass, "{again:#?}");
    let next = loaded(scan)
        .validate(
            clean_change(),
            &Checkpoint::default(),
            "{}",
            &Limits::default(),
        )
        .await;
    assert_eq!(verdict(&next).outcome, Outcome::Pass, "{next:#?}");
}

async fn assert_stopped(
    hostile: &'static str,
    scan: &'static str,
    mode: &str,
    kind: FailureKind,
    limits: Limits,
) -> cairn_host::Failure {
    warm(hostile, scan);
    let report = within(bound(&limits), run_hostile(hostile, mode, &limits)).await;
    assert_eq!(report.failure_kind(), Some(kind), "{mode}: {report:#?}");
    assert!(
        report.elapsed <= limits.timeout + MARGIN,
        "{mode} ran {:?}, past its {:?} deadline + {MARGIN:?}",
        report.elapsed,
        limits.timeout
    );
    within(
        STILL_SERVES_BOUND,
        assert_language_still_serves(hostile, scan),
    )
    .await;
    match report.outcome {
        CallOutcome::Stopped(failure) => failure,
        _ => unreachable!("kind checked above"),
    }
}

fn with_timeout(timeout: Duration) -> Limits {
    Limits {
        timeout,
        ..Limits::default()
    }
}

const HOSTILE: [(&str, &str, &str); 2] = [
    ("python", guests::HOSTILE_PY, guests::SECRETS_SCAN_PY),
    ("js", guests::HOSTILE_JS, guests::SECRETS_SCAN_JS),
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_and_js_infinite_loops_are_stopped_at_their_deadline() {
    for (lang, hostile, scan) in HOSTILE {
        let failure = assert_stopped(
            hostile,
            scan,
            "loop",
            FailureKind::Timeout,
            with_timeout(HOSTILE_TIMEOUT),
        )
        .await;
        assert!(failure.message.contains("500 ms"), "{lang}: {failure}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_and_js_sleeps_are_cut_at_their_deadline_not_before() {
    for (lang, hostile, scan) in HOSTILE {
        let limits = with_timeout(HOSTILE_TIMEOUT);
        warm(hostile, scan);
        let report = within(bound(&limits), run_hostile(hostile, "sleep", &limits)).await;
        assert_eq!(
            report.failure_kind(),
            Some(FailureKind::Timeout),
            "{lang}: {report:#?}"
        );
        assert!(
            report.elapsed >= limits.timeout && report.elapsed <= limits.timeout + MARGIN,
            "{lang}: ran {:?}",
            report.elapsed
        );
        within(
            STILL_SERVES_BOUND,
            assert_language_still_serves(hostile, scan),
        )
        .await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_and_js_short_sleeps_really_sleep_and_complete() {
    for (lang, hostile, scan) in HOSTILE {
        let limits = Limits::default();
        warm(hostile, scan);
        let report = within(bound(&limits), run_hostile(hostile, "nap", &limits)).await;
        assert_eq!(
            verdict(&report).summary.as_deref(),
            Some("woke up"),
            "{lang}"
        );
        assert!(
            report.elapsed >= Duration::from_millis(100),
            "{lang}: a 100 ms sleep took {:?}",
            report.elapsed
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_and_js_memory_bombs_hit_the_memory_limit() {
    for (lang, hostile, scan) in HOSTILE {
        let limits = Limits {
            memory_bytes: 48 << 20,
            ..with_timeout(Duration::from_secs(5))
        };
        let failure =
            assert_stopped(hostile, scan, "alloc", FailureKind::MemoryLimit, limits).await;
        assert!(
            failure.message.contains(&(48u64 << 20).to_string()),
            "{lang}: {failure}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn trivial_python_and_js_plugins_fit_the_default_memory_limit() {
    for (lang, hostile, scan) in HOSTILE {
        let limits = Limits::default();
        warm(hostile, scan);
        let report = within(bound(&limits), run_hostile(hostile, "behave", &limits)).await;
        assert_eq!(verdict(&report).outcome, Outcome::Pass, "{lang}");
        assert!(
            report.peak_memory_bytes < limits.memory_bytes / 2,
            "{lang} peaked at {} bytes",
            report.peak_memory_bytes
        );
    }
}

/// Builds a scaffolded project the way its README says, and returns the
/// component. The Python and JS toolchains are there: the test build needs
/// them too.
fn build_scaffolded(lang: Lang, project: &Path) -> PathBuf {
    let crate_name = project
        .file_name()
        .expect("project dir has a name")
        .to_string_lossy()
        .replace('-', "_");
    match lang {
        Lang::Rust => {
            // The wasm guests' target dir already holds the SDK's compiled
            // dependencies.
            let target = Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/wasm-guests");
            let output = cairn_tests::run_bounded(
                std::process::Command::new(env!("CARGO"))
                    .args(["build", "--release", "--target", "wasm32-wasip2"])
                    .current_dir(project)
                    .env("CARGO_TARGET_DIR", &target)
                    .env_remove("RUSTFLAGS")
                    .env_remove("CARGO_ENCODED_RUSTFLAGS"),
                cairn_tests::SUBPROCESS_BOUND,
            );
            assert!(
                output.status.success(),
                "the generated Rust project builds ({}):\n{}",
                output.status,
                String::from_utf8_lossy(&output.stderr)
            );
            target.join(format!("wasm32-wasip2/release/{crate_name}.wasm"))
        }
        Lang::Python | Lang::Js => {
            // The checkout's Python SDK stands in for an installed one (the
            // packages themselves are installed by tests/suite/sdk_packages.rs);
            // the JS project links the checkout's SDK through package.json.
            let python_sdk = checkout_sdk(Lang::Python).expect("the checkout has the Python SDK");
            let output = cairn_tests::run_bounded(
                std::process::Command::new(project.join("build.sh")).env("PYTHONPATH", python_sdk),
                cairn_tests::SUBPROCESS_BOUND,
            );
            assert!(
                output.status.success(),
                "the generated {lang} project builds ({}):\n{}",
                output.status,
                String::from_utf8_lossy(&output.stderr)
            );
            project.join(format!("target/{crate_name}.wasm"))
        }
    }
}

/// The golden cases every generated project ships in `samples/`, by name.
fn sample_cases(kind: Kind) -> &'static [&'static str] {
    match kind {
        Kind::Validator => &["clean", "empty-document"],
        Kind::FaultInjector => &[
            "aborts-a-request-in-the-abort-share",
            "config-sets-share-status-and-delay",
            "delays-a-request-past-the-abort-share",
            "forwards-a-request-with-the-bypass-header",
            "refuses-an-invalid-config",
        ],
    }
}

/// Outer bound of running a generated project's golden cases: a handful of
/// calls under the default limits (a 1 s deadline each), plus `SLACK`.
const SAMPLES_BOUND: Duration = Duration::from_secs(60);

/// Runs a generated plugin over its `samples/` golden cases (validator or
/// fault-injector cases, as its world says) and checks that every one of
/// them, and no other, passes.
async fn assert_samples_pass(plugin: &Plugin, project: &Path, kind: Kind) {
    let results = within(
        SAMPLES_BOUND,
        golden::run_cases(plugin, &project.join("samples"), &Limits::default()),
    )
    .await
    .expect("the samples load as golden cases");
    let names: Vec<&str> = results.iter().map(|result| result.name.as_str()).collect();
    assert_eq!(names, sample_cases(kind), "{kind}");
    let failed: Vec<String> = results
        .iter()
        .filter(|result| !result.passed())
        .map(ToString::to_string)
        .collect();
    assert!(failed.is_empty(), "{kind}:\n{}", failed.join("\n"));
}

/// Generates a `lang` `kind` project named `name` in a temporary directory,
/// builds it the way its README says and returns (the directory, the
/// project, the component). Tests that may run at once use distinct names:
/// Rust projects share a target directory.
fn scaffold_and_build(name: &str, lang: Lang, kind: Kind) -> (tempfile::TempDir, PathBuf, PathBuf) {
    let dest = tempfile::tempdir().expect("temp dir");
    let sdk = checkout_sdk(lang).expect("the checkout has the SDK");
    let project =
        scaffold(name, lang, kind, dest.path(), &SdkSource::Local(sdk)).expect("scaffolds");
    let wasm = build_scaffolded(lang, &project);
    (dest, project, wasm)
}

async fn assert_scaffold_builds_and_passes(lang: Lang, kind: Kind) {
    let name = format!("new-{lang}-{}", kind.as_str());
    let (_dest, project, wasm) = scaffold_and_build(&name, lang, kind);
    let plugin = cairn_tests::runtime()
        .load_file(&wasm, None)
        .expect("the generated plugin loads");
    let (world, contract) = match kind {
        Kind::Validator => (World::Validator, ContractVersion::V0_1),
        Kind::FaultInjector => (World::FaultInjector, ContractVersion::V0_2),
    };
    assert_eq!(
        (plugin.world(), plugin.contract_version()),
        (world, contract),
        "{lang} {kind}"
    );
    assert_samples_pass(&plugin, &project, kind).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scaffolded_rust_plugins_build_and_pass_their_samples() {
    assert_scaffold_builds_and_passes(Lang::Rust, Kind::Validator).await;
    assert_scaffold_builds_and_passes(Lang::Rust, Kind::FaultInjector).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scaffolded_python_and_js_validators_build_and_pass_their_samples() {
    assert_scaffold_builds_and_passes(Lang::Python, Kind::Validator).await;
    assert_scaffold_builds_and_passes(Lang::Js, Kind::Validator).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scaffolded_python_and_js_fault_injectors_build_and_pass_their_samples() {
    assert_scaffold_builds_and_passes(Lang::Python, Kind::FaultInjector).await;
    assert_scaffold_builds_and_passes(Lang::Js, Kind::FaultInjector).await;
}

/// Runs `cairn plugin test` (the binary) on a component and cases directory.
fn cairn_plugin_test(wasm: &Path, cases: &Path) -> std::process::Output {
    cairn_tests::run_bounded(
        cairn_tests::cairn_command(env!("CARGO_BIN_EXE_cairn-cli"))
            .args(["plugin", "test"])
            .arg(wasm)
            .arg("--cases")
            .arg(cases),
        cairn_tests::SUBPROCESS_BOUND,
    )
}

#[test]
fn plugin_test_runs_a_scaffolded_fault_injector_s_cases_and_shows_each_differing_field() {
    let (_dest, project, wasm) =
        scaffold_and_build("cli-rust-fault-injector", Lang::Rust, Kind::FaultInjector);
    let samples = project.join("samples");
    let out = cairn_plugin_test(&wasm, &samples);
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for case in sample_cases(Kind::FaultInjector) {
        assert!(text.contains(&format!("ok   {case}\n")), "{case}: {text}");
    }
    assert!(text.contains("5 cases, 0 failed"), "{text}");

    // The plugin delays this request's response by 100 ms; expect 50 ms and
    // a request delay instead, and refuse the refusal's wording.
    std::fs::write(
        samples.join("delays-a-request-past-the-abort-share/expected.json"),
        r#"{"decision": {"delay-request-ms": 10, "delay-response-ms": 50, "action": {"kind": "forward"}}}"#,
    )
    .expect("rewrite expected.json");
    std::fs::write(
        samples.join("refuses-an-invalid-config/expected.json"),
        r#"{"refused": "status"}"#,
    )
    .expect("rewrite expected.json");
    let out = cairn_plugin_test(&wasm, &samples);
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert_eq!(out.status.code(), Some(1), "{text}");
    let expected_diff = concat!(
        "FAIL delays-a-request-past-the-abort-share\n",
        "     delay-request-ms: expected 10, got 0\n",
        "     delay-response-ms: expected 50, got 100\n",
        r#"     - expected decision: {"delay-request-ms":10,"delay-response-ms":50,"action":{"kind":"forward"}}"#,
        "\n",
        r#"     + actual decision:   {"delay-request-ms":0,"delay-response-ms":100,"action":{"kind":"forward"}}"#,
        "\n",
    );
    assert!(text.contains(expected_diff), "{text}");
    assert!(
        text.contains(concat!(
            "FAIL refuses-an-invalid-config\n",
            r#"     refusal: expected "status", got "invalid config: abort-percent must be a number from 0 to 100""#,
        )),
        "{text}"
    );
    assert!(text.contains("5 cases, 2 failed"), "{text}");
}

#[test]
fn python_and_js_sdk_unit_tests_pass() {
    let sdk = Path::new(env!("CARGO_MANIFEST_DIR")).join("../plugin-sdk");
    let python = std::env::var_os("CAIRN_PYTHON").unwrap_or_else(|| "python3".into());
    let out = cairn_tests::run_bounded(
        std::process::Command::new(python)
            .args(["-m", "unittest", "discover", "-s"])
            .arg(sdk.join("python/tests"))
            .env("PYTHONDONTWRITEBYTECODE", "1"),
        cairn_tests::SUBPROCESS_BOUND,
    );
    let report = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "python SDK tests:\n{report}");
    assert!(report.contains("\nOK"), "python SDK tests:\n{report}");

    let out = cairn_tests::run_bounded(
        std::process::Command::new("node")
            .arg("--test")
            .arg(sdk.join("js/tests/fault-injector.test.mjs")),
        cairn_tests::SUBPROCESS_BOUND,
    );
    let report = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "js SDK tests:\n{report}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(report.contains("# fail 0"), "js SDK tests:\n{report}");
}
