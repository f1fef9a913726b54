//! Experiments from the command line: the example plan's resilience
//! checkpoint (its validators judge the experiment's metrics), the
//! production approval rule, start-up errors with their exit codes and
//! nothing left running, a guardrail breach failing the gate, `cairn proxy`
//! by hand and `cairn experiment replay` of its decision log.

use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::Duration;

use cairn_host::check::experiment::EchoUpstream;
use cairn_host::proxy::{RequestTemplate, RetryPolicy, Workload, run_workload};
use serde_json::Value;

use crate::util::guests;

fn cairn(args: &[&str]) -> Output {
    cairn_tests::run_bounded(
        cairn_tests::cairn_command(env!("CARGO_BIN_EXE_cairn-cli")).args(args),
        cairn_tests::SUBPROCESS_BOUND,
    )
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// A plan with one checkpoint holding `experiment` (a TOML table body) and
/// an slo-gate validator judging `objectives`.
fn plan_with_experiment(
    dir: &Path,
    environment: &str,
    experiment: &str,
    objectives: &str,
) -> PathBuf {
    let plan = format!(
        r#"
[plugins.flaky]
path = "{flaky}"

[plugins.slo-gate]
path = "{slo_gate}"

[[checkpoint]]
name = "resilience"
environment = "{environment}"
validators = [{{ plugin = "slo-gate", config = {{ objectives = [{objectives}] }} }}]

[[checkpoint.experiment]]
name = "exp"
injector = "flaky"
{experiment}
"#,
        flaky = guests::FLAKY,
        slo_gate = guests::SLO_GATE,
    );
    let path = dir.join("cairn.toml");
    std::fs::write(&path, plan).expect("write plan");
    path
}

fn empty_change(dir: &Path) -> PathBuf {
    let change = dir.join("change");
    std::fs::create_dir_all(change.join("after")).expect("change dir");
    change
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

const WORKLOAD: &str = r#"workload = { rate = 60, concurrency = 4, requests = [{ path = "/orders/1" }], retry = { max-attempts = 3, backoff-initial-ms = 5, retry-on = [503, 429] } }"#;

#[test]
fn example_resilience_checkpoint_runs_its_experiment_and_judges_its_metrics() {
    let output = cairn(&[
        "check",
        "--plan",
        &repo().join("examples/cairn.toml").display().to_string(),
        "--change",
        &repo()
            .join("examples/changes/table-widen-columns")
            .display()
            .to_string(),
        "--checkpoint",
        "resilience",
        "--format",
        "json",
    ]);
    let stdout = text(&output.stdout);
    let report: Value = serde_json::from_str(&stdout)
        .unwrap_or_else(|err| panic!("{err}: {stdout}\nstderr: {}", text(&output.stderr)));
    let checkpoint = &report["checkpoints"][0];
    let experiment = &checkpoint["experiments"][0];
    assert_eq!(experiment["name"], "erp-flaky");
    assert_eq!(experiment["seed"], 42);
    let metrics = &experiment["metrics"];
    let requests = metrics["experiment.erp-flaky.requests"]
        .as_f64()
        .expect("requests metric");
    assert!(requests >= 20.0, "{metrics}");
    assert!(
        metrics["experiment.erp-flaky.faults.abort"].as_f64() > Some(0.0),
        "the flaky injector aborted some requests: {metrics}"
    );
    // The protected health path was requested and never faulted.
    assert!(
        metrics["experiment.erp-flaky.skipped.protected"].as_f64() > Some(0.0),
        "{metrics}"
    );
    // The validator judged the experiment's metrics: its findings name them.
    let findings = checkpoint["validators"][0]["findings"]
        .as_array()
        .expect("findings");
    assert!(
        findings.iter().any(|f| f["message"]
            .as_str()
            .is_some_and(|m| m.contains("experiment.erp-flaky.workload.failed-rate"))),
        "{findings:?}"
    );
    assert_eq!(
        output.status.code(),
        Some(0),
        "the retrying client survives the flaky upstream: {stdout}"
    );
}

#[test]
fn an_experiment_at_a_production_checkpoint_needs_a_recorded_approval() {
    let dir = tempfile::tempdir().expect("temp dir");
    let plan = plan_with_experiment(
        dir.path(),
        "production",
        &format!(
            "upstream = \"builtin:echo\"\nduration-ms = 800\nconfig = {{ percent = 0 }}\n{WORKLOAD}"
        ),
        r#"{ metric = "experiment.exp.requests", pass = 0, warn = 0, direction = "above" }"#,
    );
    let change = empty_change(dir.path());
    let plan = plan.display().to_string();
    let change = change.display().to_string();
    let refused = cairn(&["check", "--plan", &plan, "--change", &change]);
    assert_eq!(refused.status.code(), Some(77), "{}", text(&refused.stderr));
    assert!(
        text(&refused.stderr).contains("needs a recorded approval"),
        "{}",
        text(&refused.stderr)
    );
    assert!(
        refused.stdout.is_empty(),
        "nothing ran: {}",
        text(&refused.stdout)
    );

    let approved = cairn(&[
        "check",
        "--plan",
        &plan,
        "--change",
        &change,
        "--approve-experiments",
        "dana (data steward)",
        "--format",
        "json",
    ]);
    let report: Value = serde_json::from_slice(&approved.stdout).expect("json report");
    let approval = &report["checkpoints"][0]["experiments"][0]["approval"];
    assert_eq!(approval["by"], "dana (data steward)", "{report}");
    assert!(approval["at-unix-ms"].as_u64() > Some(1_600_000_000_000));
    assert_eq!(
        approved.status.code(),
        Some(0),
        "{}",
        text(&approved.stderr)
    );
}

#[test]
fn an_upstream_that_is_down_is_a_clear_error_with_its_own_exit_code() {
    let dir = tempfile::tempdir().expect("temp dir");
    let port = free_port();
    let plan = plan_with_experiment(
        dir.path(),
        "staging",
        &format!("upstream = \"http://127.0.0.1:{port}\"\nduration-ms = 500\n"),
        r#"{ metric = "experiment.exp.requests", pass = 0, warn = 0, direction = "above" }"#,
    );
    let change = empty_change(dir.path());
    let output = cairn(&[
        "check",
        "--plan",
        &plan.display().to_string(),
        "--change",
        &change.display().to_string(),
    ]);
    let stderr = text(&output.stderr);
    assert_eq!(output.status.code(), Some(69), "{stderr}");
    assert!(stderr.contains("experiment `exp`"), "{stderr}");
    assert!(stderr.contains(&format!("127.0.0.1:{port}")), "{stderr}");
}

#[test]
fn a_listen_port_in_use_is_a_clear_error_with_its_own_exit_code() {
    let dir = tempfile::tempdir().expect("temp dir");
    let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = taken.local_addr().expect("addr").port();
    let plan = plan_with_experiment(
        dir.path(),
        "staging",
        &format!("upstream = \"builtin:echo\"\nlisten = \"127.0.0.1:{port}\"\nduration-ms = 500\n"),
        r#"{ metric = "experiment.exp.requests", pass = 0, warn = 0, direction = "above" }"#,
    );
    let change = empty_change(dir.path());
    let output = cairn(&[
        "check",
        "--plan",
        &plan.display().to_string(),
        "--change",
        &change.display().to_string(),
    ]);
    let stderr = text(&output.stderr);
    assert_eq!(output.status.code(), Some(69), "{stderr}");
    assert!(stderr.contains(&format!("127.0.0.1:{port}")), "{stderr}");
    drop(taken);
}

#[test]
fn plan_mistakes_in_experiments_are_located_and_nothing_runs() {
    let dir = tempfile::tempdir().expect("temp dir");
    let plan = plan_with_experiment(
        dir.path(),
        "staging",
        "upstream = \"builtin:echo\"\nduration-ms = 500\nblast-radius = 150\n",
        r#"{ metric = "x", pass = 0, warn = 0 }"#,
    );
    let change = empty_change(dir.path());
    let output = cairn(&[
        "check",
        "--plan",
        &plan.display().to_string(),
        "--change",
        &change.display().to_string(),
    ]);
    let stderr = text(&output.stderr);
    assert_eq!(output.status.code(), Some(65), "{stderr}");
    assert!(stderr.contains("cairn.toml:"), "{stderr}");
    assert!(stderr.contains("blast-radius is a percentage"), "{stderr}");

    let plan = plan_with_experiment(
        dir.path(),
        "staging",
        "upstream = \"builtin:echo\"\nduration-ms = 0\n",
        r#"{ metric = "x", pass = 0, warn = 0 }"#,
    );
    let output = cairn(&[
        "check",
        "--plan",
        &plan.display().to_string(),
        "--change",
        &change.display().to_string(),
    ]);
    assert_eq!(output.status.code(), Some(65), "{}", text(&output.stderr));
    assert!(text(&output.stderr).contains("duration-ms must be 1..="));
}

#[test]
fn an_injector_that_is_a_validator_is_refused_before_anything_runs() {
    let dir = tempfile::tempdir().expect("temp dir");
    let plan = format!(
        r#"
[plugins.not-an-injector]
path = "{no_deletes}"

[[checkpoint]]
name = "resilience"

[[checkpoint.experiment]]
injector = "not-an-injector"
upstream = "builtin:echo"
duration-ms = 500
"#,
        no_deletes = guests::NO_DELETES,
    );
    std::fs::write(dir.path().join("cairn.toml"), plan).expect("write plan");
    let change = empty_change(dir.path());
    let output = cairn(&[
        "check",
        "--plan",
        &dir.path().join("cairn.toml").display().to_string(),
        "--change",
        &change.display().to_string(),
    ]);
    let stderr = text(&output.stderr);
    assert_eq!(output.status.code(), Some(67), "{stderr}");
    assert!(
        stderr.contains("is a validator, but the plan uses it as a fault-injector"),
        "{stderr}"
    );
}

#[test]
fn a_guardrail_breach_ends_the_experiment_and_fails_the_checkpoint() {
    let dir = tempfile::tempdir().expect("temp dir");
    // Every request fails, so the error-rate guardrail trips once the
    // window holds its minimum; the validator alone would pass.
    let plan = plan_with_experiment(
        dir.path(),
        "staging",
        &format!(
            "upstream = \"builtin:echo\"\nduration-ms = 5000\nconfig = {{ percent = 100, statuses = [503] }}\n\
             guardrails = {{ max-error-rate = 0.5, min-requests = 10, window-ms = 5000 }}\n{WORKLOAD}"
        ),
        r#"{ metric = "experiment.exp.requests", pass = 0, warn = 0, direction = "above" }"#,
    );
    let change = empty_change(dir.path());
    let started = std::time::Instant::now();
    let output = cairn(&[
        "check",
        "--plan",
        &plan.display().to_string(),
        "--change",
        &change.display().to_string(),
        "--format",
        "json",
    ]);
    let report: Value = serde_json::from_slice(&output.stdout)
        .unwrap_or_else(|err| panic!("{err}: {}\n{}", text(&output.stdout), text(&output.stderr)));
    let experiment = &report["checkpoints"][0]["experiments"][0];
    assert_eq!(experiment["outcome"], "fail", "{experiment}");
    assert_eq!(
        experiment["report"]["stop-reason"]["kind"], "guardrail-breach",
        "{experiment}"
    );
    assert_eq!(
        experiment["report"]["breaches"][0]["guardrail"], "error-rate",
        "{experiment}"
    );
    assert_eq!(report["checkpoints"][0]["validators"][0]["outcome"], "pass");
    assert_eq!(output.status.code(), Some(1));
    assert!(
        started.elapsed() < Duration::from_secs(60),
        "the breach ended the 5 s experiment early enough"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn proxy_by_hand_logs_decisions_that_replay_identically_and_a_changed_config_differs() {
    cairn_tests::within(Duration::from_secs(300), async {
        let echo = EchoUpstream::start().await.expect("echo upstream");
        let dir = tempfile::tempdir().expect("temp dir");
        let log = dir.path().join("decisions.jsonl");
        let port = free_port();
        let mut command = cairn_tests::cairn_command(env!("CARGO_BIN_EXE_cairn-cli"));
        command.args([
            "proxy",
            "--injector",
            guests::FLAKY,
            "--upstream",
            &format!("http://{}", echo.addr),
            "--listen",
            &format!("127.0.0.1:{port}"),
            "--config",
            r#"{"percent": 50, "statuses": [503]}"#,
            "--seed",
            "7",
            "--duration-ms",
            "2500",
            "--decision-log",
            &log.display().to_string(),
            "--format",
            "json",
        ]);
        let proxy = tokio::task::spawn_blocking(move || {
            cairn_tests::run_bounded(&mut command, cairn_tests::SUBPROCESS_BOUND)
        });
        // Wait for the proxy to listen (it loads and compiles the plugin first).
        let target: std::net::SocketAddr = format!("127.0.0.1:{port}").parse().expect("addr");
        let mut ready = false;
        for _ in 0..200 {
            if tokio::net::TcpStream::connect(target).await.is_ok() {
                ready = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert!(ready, "cairn proxy listens on {target}");
        let workload = Workload {
            rate_per_second: 100.0,
            duration: Duration::from_millis(800),
            concurrency: 4,
            requests: vec![RequestTemplate::get("/orders/1")],
            retry: RetryPolicy {
                max_attempts: 1,
                ..RetryPolicy::default()
            },
            idempotency_header: "idempotency-key".to_owned(),
        };
        let seen = run_workload(target, &workload, None).await;
        let output = proxy.await.expect("proxy task");
        let stdout = text(&output.stdout);
        assert_eq!(
            output.status.code(),
            Some(0),
            "{stdout}\n{}",
            text(&output.stderr)
        );
        let report: Value = serde_json::from_str(&stdout).expect("json summary");
        let faulted = report["stats"]["faults"]["abort"].as_u64().expect("aborts");
        assert_eq!(
            seen.statuses.get(&503).copied().unwrap_or(0),
            faulted,
            "every abort the proxy counted reached the client as a 503"
        );
        assert!(faulted > 0 && seen.logical_requests > 20, "{report}");

        let same = cairn(&["experiment", "replay", &log.display().to_string()]);
        let summary = text(&same.stdout);
        assert_eq!(
            same.status.code(),
            Some(0),
            "{summary}{}",
            text(&same.stderr)
        );
        assert!(summary.contains(" 0 different"), "{summary}");

        let changed = cairn(&[
            "experiment",
            "replay",
            &log.display().to_string(),
            "--config",
            r#"{"percent": 0}"#,
        ]);
        let summary = text(&changed.stdout);
        assert_eq!(changed.status.code(), Some(1), "{summary}");
        assert!(
            summary.contains(&format!(" {faulted} different")),
            "every abort now forwards: {summary}"
        );
        echo.stop().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_stops_a_running_proxy_at_once_and_it_drains_and_reports() {
    cairn_tests::within(Duration::from_secs(300), async {
        let echo = EchoUpstream::start().await.expect("echo upstream");
        let port = free_port();
        let mut command = cairn_tests::cairn_command(env!("CARGO_BIN_EXE_cairn-cli"));
        command
            .args([
                "proxy",
                "--injector",
                guests::FLAKY,
                "--upstream",
                &format!("http://{}", echo.addr),
                "--listen",
                &format!("127.0.0.1:{port}"),
                "--duration-ms",
                "600000",
                "--format",
                "json",
            ])
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped());
        let child = command.spawn().expect("start cairn proxy");
        let pid = child.id();
        let target: std::net::SocketAddr = format!("127.0.0.1:{port}").parse().expect("addr");
        let mut ready = false;
        for _ in 0..500 {
            if tokio::net::TcpStream::connect(target).await.is_ok() {
                ready = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert!(ready, "cairn proxy listens on {target}");
        let signalled = std::time::Instant::now();
        let kill = std::process::Command::new("kill")
            .args(["-TERM", &pid.to_string()])
            .status()
            .expect("kill");
        assert!(kill.success());
        let output = tokio::task::spawn_blocking(move || child.wait_with_output())
            .await
            .expect("join")
            .expect("wait");
        let took = signalled.elapsed();
        assert!(
            took < Duration::from_secs(10),
            "a 10-minute experiment ended {took:?} after SIGTERM"
        );
        assert_eq!(output.status.code(), Some(0), "{}", text(&output.stderr));
        let report: Value = serde_json::from_slice(&output.stdout).expect("json summary");
        assert_eq!(report["stop-reason"]["kind"], "stopped", "{report}");
        assert_eq!(report["stop-reason"]["by"], "signal", "{report}");
        echo.stop().await;
    })
    .await;
}
