//! Rollouts end to end, as a user runs them: the example plan and its
//! stand-in platform (examples/rollout) walk a change to full, roll a failing
//! canary back and verify it, report a rollback that does not verify, freeze
//! at an irreversible checkpoint, pause for two roles and go on when both
//! approve; bad input is refused whole; and killing cairn at seeded random
//! moments and resuming never runs a finished hook twice nor loses or
//! duplicates a record.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::util::copy_rollout_example;

/// A copy of examples/rollout in a temp dir, its plugins pointed at the
/// suite's prebuilt guests, with its own state directory.
struct Example {
    dir: tempfile::TempDir,
}

impl Example {
    fn new() -> Example {
        Example::with_plan(|plan| plan)
    }

    /// A copy whose plan text is rewritten by `edit`.
    fn with_plan(edit: impl FnOnce(String) -> String) -> Example {
        let dir = tempfile::tempdir().expect("temp dir");
        copy_rollout_example(dir.path(), edit);
        Example { dir }
    }

    fn plan(&self) -> PathBuf {
        self.dir.path().join("plan.toml")
    }

    fn state_dir(&self) -> PathBuf {
        self.dir.path().join("rollouts")
    }

    fn platform(&self, file: &str) -> PathBuf {
        self.dir.path().join("platform/state").join(file)
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut command = cairn_tests::cairn_command(env!("CARGO_BIN_EXE_cairn-cli"));
        command.args(args).env("CAIRN_STATE_DIR", self.state_dir());
        command
    }

    fn cairn(&self, args: &[&str]) -> Output {
        cairn_tests::run_bounded(&mut self.command(args), cairn_tests::SUBPROCESS_BOUND)
    }

    fn start(&self, id: &str, change: &str) -> Output {
        let plan = self.plan();
        let change = example_change(change);
        self.cairn(&[
            "rollout",
            "start",
            "--id",
            id,
            "--plan",
            plan.to_str().unwrap(),
            "--change",
            change.to_str().unwrap(),
        ])
    }

    fn status(&self, id: &str) -> Value {
        let output = self.cairn(&["rollout", "status", id, "--format", "json"]);
        assert_eq!(output.status.code(), Some(0), "{}", describe(&output));
        serde_json::from_slice(&output.stdout).expect("status JSON")
    }

    /// Lines of the platform's hook-runs.log: (key, attempt, action).
    fn hook_runs(&self) -> Vec<(String, u32, String)> {
        std::fs::read_to_string(self.platform("hook-runs.log"))
            .unwrap_or_default()
            .lines()
            .map(|line| {
                let mut parts = line.splitn(3, ' ');
                let key = parts.next().unwrap_or_default().to_owned();
                let attempt = parts.next().unwrap_or("0").parse().unwrap_or(0);
                (
                    key,
                    attempt,
                    parts.next().unwrap_or_default().trim().to_owned(),
                )
            })
            .collect()
    }

    /// `"<key> <action>"` of every hook run on the platform but notify.
    fn platform_actions(&self) -> Vec<String> {
        self.hook_runs()
            .into_iter()
            .filter(|(_, _, action)| !action.starts_with("notify"))
            .map(|(key, _, action)| format!("{key} {action}"))
            .collect()
    }

    fn journal(&self, id: &str) -> PathBuf {
        self.state_dir().join(format!("{id}.jsonl"))
    }

    /// Every record of a rollout's journal, parsed.
    fn records(&self, id: &str) -> Vec<Value> {
        std::fs::read_to_string(self.journal(id))
            .unwrap_or_default()
            .lines()
            .filter_map(|line| serde_json::from_str(line).ok())
            .collect()
    }
}

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn example_change(name: &str) -> PathBuf {
    repo().join("examples/changes").join(name)
}

fn describe(output: &Output) -> String {
    format!(
        "status {:?}\nstdout:\n{}\nstderr:\n{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

fn kinds(records: &[Value]) -> Vec<String> {
    records
        .iter()
        .map(|r| r["kind"].as_str().unwrap_or_default().to_owned())
        .collect()
}

fn assert_journal_verifies(example: &Example, id: &str) {
    let journal = example.journal(id);
    let output = example.cairn(&["journal", "verify", journal.to_str().unwrap()]);
    assert_eq!(output.status.code(), Some(0), "{}", describe(&output));
    assert!(
        String::from_utf8_lossy(&output.stdout).contains("hash chain and checksums verify"),
        "{}",
        describe(&output)
    );
}

#[test]
fn a_healthy_change_walks_every_checkpoint_to_full() {
    let example = Example::new();
    let output = example.start("healthy", "canary-healthy");
    assert_eq!(output.status.code(), Some(0), "{}", describe(&output));
    assert!(String::from_utf8_lossy(&output.stdout).contains("result: COMPLETED"));
    let actions = example.platform_actions();
    assert_eq!(
        actions,
        [
            "healthy/staging/promote deploy staging",
            "healthy/canary/promote weight 5",
            "healthy/full/promote weight 100",
        ],
        "each promote ran once, in order"
    );
    let notifications = std::fs::read_to_string(example.platform("notifications.log")).unwrap();
    assert!(
        notifications.contains("\"event\":\"completed\""),
        "{notifications}"
    );
    assert_eq!(
        std::fs::read_to_string(example.platform("weight"))
            .unwrap()
            .trim(),
        "100"
    );
    let status = example.status("healthy");
    assert_eq!(status["phase"], "completed");
    assert!(
        status["checkpoints"]
            .as_array()
            .unwrap()
            .iter()
            .all(|c| c["passed"] == "pass")
    );
    assert_journal_verifies(&example, "healthy");
}

#[test]
fn a_failing_canary_rolls_back_newest_first_and_verifies_the_baseline() {
    let example = Example::new();
    let output = example.start("degraded", "canary-degraded");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert_eq!(output.status.code(), Some(1), "{}", describe(&output));
    assert!(stdout.contains("canary         gate FAIL"), "{stdout}");
    assert!(
        stdout.contains("result: ROLLED BACK (verified)"),
        "{stdout}"
    );
    let actions = example.platform_actions();
    assert_eq!(
        actions,
        [
            "degraded/staging/promote deploy staging",
            "degraded/canary/promote weight 5",
            "degraded/canary/rollback weight 0",
            "degraded/staging/rollback undeploy staging",
        ],
        "promotes in order, rollbacks newest first; `full` never promoted"
    );
    assert_eq!(
        std::fs::read_to_string(example.platform("weight"))
            .unwrap()
            .trim(),
        "0"
    );
    let status = example.status("degraded");
    assert_eq!(status["phase"], "rolled-back");
    assert_eq!(status["rollback"]["verified"], true);
    let records = example.records("degraded");
    let verified = records
        .iter()
        .find(|r| r["kind"] == "rollback-verified")
        .expect("a rollback-verified record");
    assert_eq!(
        verified["body"]["report"]["checkpoints"][0]["validators"][0]["name"], "baseline-restored",
        "the verification report names the verify validator"
    );
    let notifications = std::fs::read_to_string(example.platform("notifications.log")).unwrap();
    for event in ["rollback-started", "rollback-verified"] {
        assert!(
            notifications.contains(&format!("\"event\":\"{event}\"")),
            "{notifications}"
        );
    }
    assert_journal_verifies(&example, "degraded");
}

#[test]
fn a_rollback_that_does_not_take_is_reported_unverified_with_its_own_code() {
    let example = Example::new();
    let plan = example.plan();
    let change = example_change("canary-degraded");
    let output = cairn_tests::run_bounded(
        example
            .command(&["rollout", "start", "--id", "broken", "--plan"])
            .arg(&plan)
            .arg("--change")
            .arg(&change)
            .env("CAIRN_PLATFORM_BROKEN_ROLLBACK", "1"),
        cairn_tests::SUBPROCESS_BOUND,
    );
    assert_eq!(output.status.code(), Some(5), "{}", describe(&output));
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(stdout.contains("verify         NOT VERIFIED"), "{stdout}");
    assert!(
        String::from_utf8_lossy(&output.stderr).contains("did NOT verify"),
        "{}",
        describe(&output)
    );
    let status = example.status("broken");
    assert_eq!(status["phase"], "rollback-unverified");
}

#[test]
fn a_failure_past_an_irreversible_checkpoint_freezes_there() {
    let example = Example::with_plan(|plan| {
        plan.replace(
            "rollback = { run = [\"sh\", \"platform/ctl.sh\", \"undeploy\", \"staging\"], timeout-ms = 10000 }",
            "irreversible = true",
        )
    });
    let output = example.start("frozen", "canary-degraded");
    assert_eq!(output.status.code(), Some(6), "{}", describe(&output));
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        stdout.contains("FROZEN: `staging` is irreversible"),
        "{stdout}"
    );
    let actions: Vec<String> = example.hook_runs().into_iter().map(|(_, _, a)| a).collect();
    assert!(
        actions.contains(&"weight 0".to_owned()),
        "canary rolled back: {actions:?}"
    );
    assert!(
        !actions.iter().any(|a| a.starts_with("undeploy")),
        "nothing rolled back past staging: {actions:?}"
    );
    let status = example.status("frozen");
    assert_eq!(status["phase"], "frozen");
    assert_eq!(status["frozen"]["checkpoint"], "staging");
}

#[test]
fn a_pause_for_two_roles_goes_on_only_after_both_approve() {
    let example = Example::new();
    let output = example.start("roles", "canary-missing-metrics");
    assert_eq!(output.status.code(), Some(4), "{}", describe(&output));
    let stdout = String::from_utf8_lossy(&output.stdout);
    for shown in [
        "PAUSED: the gate of `canary` was inconclusive",
        "waiting for: security, data-steward",
        "rollback captain: Ari",
        "runbook: https://runbooks.example.com/orders/canary",
        "cairn rollout approve roles --by NAME --role security",
    ] {
        assert!(stdout.contains(shown), "{shown:?} in:\n{stdout}");
    }

    let wrong = example.cairn(&[
        "rollout", "approve", "roles", "--by", "eve", "--role", "intern",
    ]);
    assert_eq!(wrong.status.code(), Some(64), "{}", describe(&wrong));
    assert!(String::from_utf8_lossy(&wrong.stderr).contains("waits for: security, data-steward"));

    let first = example.cairn(&[
        "rollout", "approve", "roles", "--by", "alice", "--role", "security",
    ]);
    assert_eq!(first.status.code(), Some(4), "{}", describe(&first));
    assert_eq!(
        example.status("roles")["pause"]["missing-roles"],
        serde_json::json!(["data-steward"])
    );
    assert!(
        !example
            .hook_runs()
            .iter()
            .any(|(key, _, _)| key == "roles/full/promote"),
        "nothing moved on one approval"
    );

    let second = example.cairn(&[
        "rollout",
        "approve",
        "roles",
        "--by",
        "lee",
        "--role",
        "data-steward",
        "--comment",
        "checked by hand",
    ]);
    assert_eq!(second.status.code(), Some(0), "{}", describe(&second));
    let records = example.records("roles");
    let approvals: Vec<(&str, &str, Option<&str>)> = records
        .iter()
        .filter(|r| r["kind"] == "approved")
        .map(|r| {
            (
                r["body"]["by"].as_str().unwrap_or_default(),
                r["body"]["role"].as_str().unwrap_or_default(),
                r["body"]["comment"].as_str(),
            )
        })
        .collect();
    assert_eq!(
        approvals,
        [
            ("alice", "security", None),
            ("lee", "data-steward", Some("checked by hand"))
        ]
    );
    assert!(
        records
            .iter()
            .filter(|r| r["kind"] == "approved")
            .all(|r| r["at"].is_string())
    );
    assert_eq!(example.status("roles")["phase"], "completed");
}

#[test]
fn bad_input_is_refused_whole() {
    let example = Example::new();
    // An unknown id names the rollouts there are.
    example.start("known", "canary-healthy");
    let unknown = example.cairn(&[
        "rollout",
        "resume",
        "nope",
        "--plan",
        example.plan().to_str().unwrap(),
        "--change",
        example_change("canary-healthy").to_str().unwrap(),
    ]);
    assert_eq!(unknown.status.code(), Some(64), "{}", describe(&unknown));
    assert!(String::from_utf8_lossy(&unknown.stderr).contains("rollouts there: known"));

    // The same id twice.
    let again = example.start("known", "canary-healthy");
    assert_eq!(again.status.code(), Some(64), "{}", describe(&again));
    assert!(String::from_utf8_lossy(&again.stderr).contains("already exists"));

    // A journal resumed over another change.
    let paused = example.start("paused", "canary-missing-metrics");
    assert_eq!(paused.status.code(), Some(4));
    let other = example.cairn(&[
        "rollout",
        "resume",
        "paused",
        "--change",
        example_change("canary-healthy").to_str().unwrap(),
    ]);
    assert_eq!(other.status.code(), Some(66), "{}", describe(&other));
    assert!(String::from_utf8_lossy(&other.stderr).contains("the change changed since"));

    // ... and over another plan.
    let other_plan = example.dir.path().join("other-plan.toml");
    std::fs::write(
        &other_plan,
        std::fs::read_to_string(example.plan())
            .unwrap()
            .replace("observe-ms = 300", "observe-ms = 10"),
    )
    .unwrap();
    let other = example.cairn(&[
        "rollout",
        "resume",
        "paused",
        "--plan",
        other_plan.to_str().unwrap(),
    ]);
    assert_eq!(other.status.code(), Some(66), "{}", describe(&other));
    assert!(String::from_utf8_lossy(&other.stderr).contains("the plan changed since"));

    // A journal edited by hand.
    let journal = example.journal("known");
    let text = std::fs::read_to_string(&journal).unwrap();
    std::fs::write(&journal, text.replacen("\"staging\"", "\"stagin9\"", 1)).unwrap();
    let verify = example.cairn(&["journal", "verify", journal.to_str().unwrap()]);
    assert_eq!(verify.status.code(), Some(74), "{}", describe(&verify));
    assert!(String::from_utf8_lossy(&verify.stdout).contains("BROKEN at record"));
}

#[test]
fn a_hook_that_hangs_is_cut_by_its_timeout_and_the_change_rolled_back() {
    let example = Example::with_plan(|plan| {
        plan.replace(
            "promote = { run = [\"sh\", \"platform/ctl.sh\", \"weight\", \"5\"] }",
            "promote = { run = [\"sh\", \"-c\", \"sleep 600\"], timeout-ms = 300, retries = 1, backoff-ms = 10 }",
        )
    });
    let started = Instant::now();
    let output = example.start("hangs", "canary-healthy");
    assert_eq!(output.status.code(), Some(1), "{}", describe(&output));
    assert!(
        started.elapsed() < Duration::from_secs(120),
        "took {:?}",
        started.elapsed()
    );
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        stdout.contains("canary         promote hook FAILED"),
        "{stdout}"
    );
    assert!(
        stdout.contains("the promote hook of `canary` failed"),
        "{stdout}"
    );
    let records = example.records("hangs");
    let finished = records
        .iter()
        .find(|r| r["kind"] == "hook-finished" && r["body"]["checkpoint"] == "canary")
        .expect("the promote's end is recorded");
    assert_eq!(finished["body"]["ok"], false);
    let attempts = finished["body"]["outcome"]["attempts"].as_array().unwrap();
    assert_eq!(attempts.len(), 2, "one retry: {finished}");
}

/// The processes with `path` open (pid and command line), for failures.
fn holders(path: &Path) -> Vec<String> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Ok(fds) = std::fs::read_dir(entry.path().join("fd")) else {
            continue;
        };
        if fds
            .flatten()
            .any(|fd| std::fs::read_link(fd.path()).is_ok_and(|target| target == path))
        {
            let cmdline = std::fs::read(entry.path().join("cmdline")).unwrap_or_default();
            let stat = std::fs::read_to_string(entry.path().join("stat")).unwrap_or_default();
            found.push(format!(
                "{} {} [stat: {}]",
                entry.file_name().to_string_lossy(),
                String::from_utf8_lossy(&cmdline).replace('\0', " "),
                stat.split(") ")
                    .nth(1)
                    .unwrap_or_default()
                    .split(' ')
                    .take(5)
                    .collect::<Vec<_>>()
                    .join(" ")
            ));
        }
    }
    found
}

/// A xorshift generator: the crash test's kill points from a printed seed.
fn next(state: &mut u64) -> u64 {
    *state ^= *state << 13;
    *state ^= *state >> 7;
    *state ^= *state << 17;
    *state
}

#[test]
fn killing_cairn_at_random_moments_and_resuming_loses_and_repeats_nothing() {
    let rounds: u64 = std::env::var("CAIRN_ROLLOUT_KILL_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(50);
    let seed: u64 = std::env::var("CAIRN_ROLLOUT_KILL_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos() as u64)
                .unwrap_or(1)
                | 1
        });
    let example = Example::with_plan(|plan| plan.replace("observe-ms = 300", "observe-ms = 50"));
    let plan = example.plan();
    let changes = ["canary-healthy", "canary-degraded"];
    // How long an uninterrupted rollout takes here, to spread kill points over.
    let timing = Instant::now();
    example.start("timing", "canary-healthy");
    let span_ms = (timing.elapsed().as_millis() as u64).max(200);
    std::fs::remove_file(example.platform("hook-runs.log")).unwrap();

    let mut state = seed;
    for round in 0..rounds {
        let id = format!("crash-{round}");
        let change = example_change(changes[(round % 2) as usize]);
        let context =
            format!("round {round} (seed {seed}; CAIRN_ROLLOUT_KILL_SEED={seed} repeats it)");
        let mut kills = 0;
        let mut first = true;
        let end = loop {
            let mut command = if first {
                example.command(&["rollout", "start", "--id", &id])
            } else {
                example.command(&["rollout", "resume", &id])
            };
            command
                .arg("--plan")
                .arg(&plan)
                .arg("--change")
                .arg(&change)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::piped());
            if kills < 3 {
                let delay = Duration::from_millis(next(&mut state) % span_ms);
                let mut child = command.spawn().expect("cairn starts");
                let started = Instant::now();
                let mut status = None;
                while started.elapsed() < delay {
                    if let Some(done) = child.try_wait().unwrap() {
                        status = Some(done);
                        break;
                    }
                    std::thread::sleep(Duration::from_millis(2));
                }
                let status = match status {
                    Some(status) => status,
                    None => {
                        let _ = child.kill();
                        child.wait().unwrap()
                    }
                };
                kills += 1;
                match status.code() {
                    Some(code @ (0 | 1)) => break code,
                    // Killed (no code), or killed before the journal existed
                    // (resume: unknown id, 64): go on.
                    None => {}
                    Some(64) if !example.journal(&id).exists() => {}
                    Some(code) => {
                        let mut stderr = String::new();
                        if let Some(mut pipe) = child.stderr.take() {
                            use std::io::Read;
                            let _ = pipe.read_to_string(&mut stderr);
                        }
                        panic!(
                            "{context}: exit {code}: {stderr}\nholding the journal: {:?}",
                            holders(&example.journal(&id))
                        );
                    }
                }
                first = !example.journal(&id).exists();
            } else {
                let output = cairn_tests::run_bounded(&mut command, cairn_tests::SUBPROCESS_BOUND);
                match output.status.code() {
                    Some(code @ (0 | 1)) => break code,
                    _ => panic!(
                        "{context}: the final resume failed: {}\nholding the journal: {:?}",
                        describe(&output),
                        holders(&example.journal(&id))
                    ),
                }
            }
        };
        let expected = if round % 2 == 0 { 0 } else { 1 };
        assert_eq!(end, expected, "{context}: the rollout's end");

        // The journal verifies, and each step is recorded once.
        assert_journal_verifies(&example, &id);
        let records = example.records(&id);
        let seqs: Vec<u64> = records.iter().map(|r| r["seq"].as_u64().unwrap()).collect();
        assert_eq!(
            seqs,
            (1..=records.len() as u64).collect::<Vec<_>>(),
            "{context}"
        );
        let kinds = kinds(&records);
        for once in [
            "rollout-started",
            "completed",
            "rollback-started",
            "rollback-verified",
        ] {
            assert!(
                kinds.iter().filter(|k| *k == once).count() <= 1,
                "{context}: {once} twice"
            );
        }
        let mut passed = std::collections::BTreeSet::new();
        for record in records.iter().filter(|r| r["kind"] == "checkpoint-passed") {
            assert!(
                passed.insert(record["body"]["checkpoint"].to_string()),
                "{context}: passed twice"
            );
        }

        // Hooks: none started again after its end was recorded; an
        // interrupted one ran again with the same key; none ran more often
        // than the journal started it.
        let mut started: BTreeMap<String, u32> = BTreeMap::new();
        let mut finished: BTreeMap<String, u32> = BTreeMap::new();
        for record in &records {
            let key = record["key"].as_str().unwrap_or_default().to_owned();
            match record["kind"].as_str() {
                Some("hook-started") => {
                    assert!(
                        !finished.contains_key(&key),
                        "{context}: {key} started after it finished"
                    );
                    *started.entry(key).or_default() += 1;
                }
                Some("hook-finished") => *finished.entry(key).or_default() += 1,
                _ => {}
            }
        }
        assert!(
            finished.values().all(|n| *n == 1),
            "{context}: {finished:?}"
        );
        let mut runs: BTreeMap<String, u32> = BTreeMap::new();
        for (key, attempt, action) in example.hook_runs() {
            if key.starts_with(&format!("{id}/")) && attempt == 1 && !action.starts_with("notify") {
                *runs.entry(key).or_default() += 1;
            }
        }
        for (key, count) in &runs {
            let starts = started.get(key).copied().unwrap_or(0);
            assert!(
                *count <= starts,
                "{context}: {key} ran {count} times, started {starts}"
            );
        }
        for key in finished.keys() {
            assert!(
                runs.get(key).copied().unwrap_or(0) >= 1,
                "{context}: {key} finished without running"
            );
        }
    }
}

#[test]
fn a_torn_last_record_is_repaired_on_resume_and_said_so() {
    let example = Example::new();
    let paused = example.start("torn", "canary-missing-metrics");
    assert_eq!(paused.status.code(), Some(4), "{}", describe(&paused));
    // A crash mid-write: half of a record at the end, no newline.
    let journal = example.journal("torn");
    let mut bytes = std::fs::read(&journal).unwrap();
    let good = bytes.len();
    bytes.extend_from_slice(br#"{"seq":99,"prev":"00","at":"2026-"#);
    std::fs::write(&journal, &bytes).unwrap();
    let verify = example.cairn(&["journal", "verify", journal.to_str().unwrap()]);
    assert_eq!(verify.status.code(), Some(0), "{}", describe(&verify));
    assert!(String::from_utf8_lossy(&verify.stdout).contains("is torn"));

    let approve = example.cairn(&[
        "rollout", "approve", "torn", "--by", "alice", "--role", "security",
    ]);
    assert_eq!(approve.status.code(), Some(4), "{}", describe(&approve));
    let stdout = String::from_utf8_lossy(&approve.stdout);
    assert!(stdout.contains("was torn by a crash mid-write"), "{stdout}");
    let records = example.records("torn");
    let repaired = records
        .iter()
        .find(|r| r["kind"] == "journal-repaired")
        .expect("the repair is recorded");
    assert_eq!(
        repaired["body"]["dropped-bytes"],
        (bytes.len() - good) as u64
    );
    assert!(
        std::fs::read(&journal).unwrap().starts_with(&bytes[..good]),
        "nothing before the tear lost"
    );
    assert_journal_verifies(&example, "torn");
}

/// A loopback HTTP server that answers every request with `status`, and
/// records each request's Idempotency-Key; stops when dropped.
struct FailingWebhook {
    port: u16,
    keys: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

impl FailingWebhook {
    fn start(status: u16) -> FailingWebhook {
        use std::io::{BufRead, BufReader, Write};
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        listener.set_nonblocking(true).unwrap();
        let port = listener.local_addr().unwrap().port();
        let keys = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let (seen, stopped) = (keys.clone(), stop.clone());
        std::thread::spawn(move || {
            let deadline = Instant::now() + Duration::from_secs(300);
            while !stopped.load(std::sync::atomic::Ordering::Relaxed) && Instant::now() < deadline {
                let Ok((stream, _)) = listener.accept() else {
                    std::thread::sleep(Duration::from_millis(5));
                    continue;
                };
                stream.set_nonblocking(false).unwrap();
                stream
                    .set_read_timeout(Some(Duration::from_secs(5)))
                    .unwrap();
                let mut reader = BufReader::new(stream);
                let mut length = 0usize;
                loop {
                    let mut line = String::new();
                    if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                        break;
                    }
                    let lower = line.to_ascii_lowercase();
                    if let Some(key) = lower.strip_prefix("idempotency-key:") {
                        seen.lock().unwrap().push(key.trim().to_owned());
                    }
                    if let Some(value) = lower.strip_prefix("content-length:") {
                        length = value.trim().parse().unwrap_or(0);
                    }
                }
                let mut body = vec![0; length];
                let _ = std::io::Read::read_exact(&mut reader, &mut body);
                let mut stream = reader.into_inner();
                let _ = write!(
                    stream,
                    "HTTP/1.1 {status} Oops\r\ncontent-length: 4\r\nconnection: close\r\n\r\noops"
                );
            }
        });
        FailingWebhook { port, keys, stop }
    }
}

impl Drop for FailingWebhook {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
    }
}

#[test]
fn a_promote_webhook_answering_500_is_retried_then_the_change_rolled_back() {
    let webhook = FailingWebhook::start(500);
    let url = format!("http://127.0.0.1:{}/canary", webhook.port);
    let example = Example::with_plan(|plan| {
        plan.replace(
            "promote = { run = [\"sh\", \"platform/ctl.sh\", \"weight\", \"5\"] }",
            &format!(
                "promote = {{ url = \"{url}\", retries = 2, backoff-ms = 10, timeout-ms = 5000 }}"
            ),
        )
    });
    let output = example.start("webhook", "canary-healthy");
    assert_eq!(output.status.code(), Some(1), "{}", describe(&output));
    let keys = webhook.keys.lock().unwrap().clone();
    assert_eq!(
        keys,
        vec!["webhook/canary/promote"; 3],
        "three attempts, one key"
    );
    assert!(
        String::from_utf8_lossy(&output.stdout).contains("the promote hook of `canary` failed")
    );
    assert_eq!(example.status("webhook")["rollback"]["verified"], true);
}

#[test]
fn a_second_cairn_on_a_running_rollout_is_refused() {
    let example = Example::with_plan(|plan| {
        plan.replace(
            "promote = { run = [\"sh\", \"platform/ctl.sh\", \"weight\", \"5\"] }",
            "promote = { run = [\"sh\", \"-c\", \"touch promoting; sleep 30\"], timeout-ms = 60000 }",
        )
    });
    let plan = example.plan();
    let change = example_change("canary-healthy");
    let mut first = example
        .command(&["rollout", "start", "--id", "busy", "--plan"])
        .arg(&plan)
        .arg("--change")
        .arg(&change)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("cairn starts");
    let marker = example.dir.path().join("promoting");
    let started = Instant::now();
    while !marker.exists() {
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "the promote hook never started"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let second = example.cairn(&["rollout", "resume", "busy"]);
    let _ = first.kill();
    let _ = first.wait();
    assert_eq!(second.status.code(), Some(75), "{}", describe(&second));
    assert!(
        String::from_utf8_lossy(&second.stderr).contains("in use"),
        "{}",
        describe(&second)
    );
}

#[test]
fn a_checkpoint_that_asks_for_approval_before_it_promotes_waits_for_it() {
    let example = Example::with_plan(|plan| {
        plan.replace(
            "rollback-window-minutes = 30",
            "rollback-window-minutes = 30\napprove-before = true",
        )
    });
    let output = example.start("gated", "canary-healthy");
    assert_eq!(output.status.code(), Some(4), "{}", describe(&output));
    assert!(
        String::from_utf8_lossy(&output.stdout).contains("asks for approval before it promotes")
    );
    assert!(
        !example
            .hook_runs()
            .iter()
            .any(|(key, _, _)| key == "gated/full/promote"),
        "full did not promote before the approval"
    );
    let approve = example.cairn(&["rollout", "approve", "gated", "--by", "sam"]);
    assert_eq!(approve.status.code(), Some(0), "{}", describe(&approve));
    assert!(
        example
            .hook_runs()
            .iter()
            .any(|(key, _, _)| key == "gated/full/promote")
    );
    assert_eq!(example.status("gated")["phase"], "completed");
}

#[test]
fn a_mistake_in_the_rollout_keys_is_located_by_check_and_by_rollout() {
    let example = Example::with_plan(|plan| {
        plan.replace("observe-ms = 300", "observe-msec = 300")
            .replace(
                "rollback-window-minutes = 30",
                "rollback-window-minutes = 0",
            )
    });
    let plan = example.plan();
    let change = example_change("canary-healthy");
    for args in [
        vec![
            "check",
            "--plan",
            plan.to_str().unwrap(),
            "--change",
            change.to_str().unwrap(),
        ],
        vec![
            "rollout",
            "start",
            "--plan",
            plan.to_str().unwrap(),
            "--change",
            change.to_str().unwrap(),
        ],
    ] {
        let output = example.cairn(&args);
        assert_eq!(output.status.code(), Some(65), "{}", describe(&output));
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(stderr.contains("plan.toml:"), "file:line:column: {stderr}");
        assert!(
            stderr.contains("observe-msec"),
            "names the unknown key: {stderr}"
        );
    }
    let fixed = Example::with_plan(|plan| {
        plan.replace(
            "rollback-window-minutes = 30",
            "rollback-window-minutes = 0",
        )
    });
    let output = fixed.start("zero", "canary-healthy");
    assert_eq!(output.status.code(), Some(65), "{}", describe(&output));
    assert!(
        String::from_utf8_lossy(&output.stderr)
            .contains("rollback-window-minutes must be at least 1")
    );
    assert!(
        !fixed.journal("zero").exists(),
        "nothing half-done: no journal"
    );
}

#[test]
fn a_rollback_past_the_window_after_promotion_asks_for_approval_first() {
    assert!(
        Command::new("faketime")
            .arg("-f")
            .arg("+0")
            .arg("true")
            .status()
            .is_ok_and(|s| s.success()),
        "this test needs faketime (Debian package `faketime`; .ci/install-toolchains installs it)"
    );
    // `full` is judged too, so the rollout pauses after full promoted.
    let example = Example::with_plan(|plan| {
        plan.replace(
            "rollout-percent = 100\n",
            "rollout-percent = 100\ninconclusive = \"inconclusive\"\nvalidators = [{ plugin = \"slo-gate\" }]\n",
        )
    });
    let paused = example.start("late", "canary-missing-metrics");
    assert_eq!(paused.status.code(), Some(4), "{}", describe(&paused));
    for (by, role) in [("alice", "security"), ("lee", "data-steward")] {
        example.cairn(&["rollout", "approve", "late", "--by", by, "--role", role]);
    }
    assert_eq!(example.status("late")["pause"]["checkpoint"], "full");

    // 31 minutes later (by the clock cairn sees), an abort: full's rollback
    // window (30 min) has passed, so cairn asks before rolling back.
    let later = |args: &[&str]| {
        let mut command = Command::new("faketime");
        command
            .args(["-f", "+31m", env!("CARGO_BIN_EXE_cairn-cli")])
            .args(args)
            .env("CAIRN_STATE_DIR", example.state_dir())
            .env("CAIRN_CACHE_DIR", cairn_tests::shared_cache_dir())
            .env("FAKETIME_DONT_FAKE_MONOTONIC", "1")
            .env("NO_COLOR", "1");
        cairn_tests::run_bounded(&mut command, cairn_tests::SUBPROCESS_BOUND)
    };
    let abort = later(&[
        "rollout",
        "abort",
        "late",
        "--by",
        "bob",
        "--reason",
        "customer escalation",
    ]);
    assert_eq!(abort.status.code(), Some(4), "{}", describe(&abort));
    let stdout = String::from_utf8_lossy(&abort.stdout);
    assert!(
        stdout.contains("past its rollback window; approve to roll back"),
        "{stdout}"
    );
    assert!(
        !example
            .hook_runs()
            .iter()
            .any(|(key, _, _)| key == "late/full/rollback"),
        "nothing rolled back before the approval"
    );
    let approve = later(&["rollout", "approve", "late", "--by", "ari", "--role", "any"]);
    assert_eq!(
        approve.status.code(),
        Some(1),
        "rolled back and verified: {}",
        describe(&approve)
    );
    let rolled_back: Vec<String> = example
        .hook_runs()
        .into_iter()
        .filter(|(_, _, action)| action.starts_with("weight 0") || action.starts_with("undeploy"))
        .map(|(key, _, _)| key)
        .collect();
    assert_eq!(
        rolled_back,
        [
            "late/full/rollback",
            "late/canary/rollback",
            "late/staging/rollback"
        ],
        "newest first"
    );
}
