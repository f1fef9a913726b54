//! Rollout hooks against real processes (`sh -c`) and a real loopback HTTP
//! server: what a command gets, retries with one idempotency key, timeouts
//! that kill the whole process group (grandchildren holding the pipe
//! included), webhook retries by status, `Retry-After`, unreachable and
//! silent servers, TLS with a private CA, and output that is capped and
//! escaped.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use cairn_host::rollout::hooks::{
    AttemptResult, Backoff, HookAction, HookCall, HookOutcome, HookSpec, KILL_GRACE,
    MAX_RESPONSE_BODY_BYTES, kill_running_hooks, run_hook,
};
use cairn_tests::upstream::TestUpstream;
use cairn_tests::within;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

/// The outer bound of every test here: far more than any hook below may
/// take, far less than a hang.
const BOUND: Duration = Duration::from_secs(30);

fn call<'a>(payload: &'a serde_json::Value, key: &'a str) -> HookCall<'a> {
    HookCall {
        rollout: "rollout-7",
        checkpoint: "canary-5",
        action: HookAction::Promote,
        idempotency_key: key,
        payload,
    }
}

fn fast_backoff() -> Backoff {
    Backoff {
        initial: Duration::from_millis(20),
        max: Duration::from_millis(50),
    }
}

fn sh(script: &str, cwd: &Path, timeout: Duration, retries: u32) -> HookSpec {
    HookSpec::Command {
        argv: vec!["sh".into(), "-c".into(), script.into()],
        cwd: cwd.to_owned(),
        env: BTreeMap::new(),
        timeout,
        retries,
        backoff: fast_backoff(),
    }
}

fn webhook(url: &str, timeout: Duration, retries: u32, backoff: Backoff) -> HookSpec {
    HookSpec::Webhook {
        url: url.parse().expect("test URL parses"),
        headers: BTreeMap::from([("X-Team".to_owned(), "payments".to_owned())]),
        timeout,
        retries,
        backoff,
        ca_file: None,
    }
}

fn results(outcome: &HookOutcome) -> Vec<AttemptResult> {
    outcome.attempts.iter().map(|a| a.result.clone()).collect()
}

fn read_pid(path: &Path) -> i32 {
    std::fs::read_to_string(path)
        .expect("the hook wrote its pid")
        .trim()
        .parse()
        .expect("a pid")
}

/// Processes of process group `group` that are alive (not zombies), from
/// /proc: the fields after `(comm)` are state, ppid, pgrp.
fn live_members(group: i32) -> Vec<i32> {
    let mut members = Vec::new();
    for entry in std::fs::read_dir("/proc").expect("/proc lists").flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else {
            continue;
        };
        let Some((_, rest)) = stat.rsplit_once(')') else {
            continue;
        };
        let fields: Vec<&str> = rest.split_whitespace().collect();
        if fields.len() > 2 && fields[2] == group.to_string() && fields[0] != "Z" {
            members.push(pid);
        }
    }
    members
}

/// Whether `pid` is a live process (not gone, not a zombie).
fn is_alive(pid: i32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|stat| {
            stat.rsplit_once(')')
                .map(|(_, rest)| rest.trim_start().to_owned())
        })
        .is_some_and(|rest| !rest.starts_with('Z'))
}

/// Waits (bounded) for a killed process group to be gone: SIGKILL is
/// asynchronous.
fn assert_group_dies(group: i32) {
    let deadline = Instant::now() + Duration::from_secs(5);
    while !live_members(group).is_empty() {
        assert!(
            Instant::now() < deadline,
            "process group {group} still has live members {:?}",
            live_members(group)
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Waits (bounded) for a killed process to be gone.
fn assert_dies(pid: i32) {
    let deadline = Instant::now() + Duration::from_secs(5);
    while is_alive(pid) {
        assert!(Instant::now() < deadline, "process {pid} survived");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[tokio::test]
async fn a_command_hook_gets_the_payload_on_stdin_the_env_vars_and_its_cwd() {
    let dir = tempfile::tempdir().unwrap();
    let payload = serde_json::json!({"canary-weight": 5, "note": "ünïcode"});
    let mut spec = sh(
        "cat > stdin.json; env | grep -E '^(CAIRN_|EXTRA=)' | sort > env.txt; pwd > cwd.txt",
        dir.path(),
        Duration::from_secs(10),
        0,
    );
    if let HookSpec::Command { env, .. } = &mut spec {
        env.insert("EXTRA".into(), "from the spec".into());
    }
    let outcome = within(BOUND, run_hook(&spec, &call(&payload, "key-abc"))).await;
    assert!(outcome.ok, "{outcome:?}");
    let stdin = std::fs::read_to_string(dir.path().join("stdin.json")).unwrap();
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&stdin).unwrap(),
        payload
    );
    assert!(stdin.ends_with('\n'));
    let env = std::fs::read_to_string(dir.path().join("env.txt")).unwrap();
    assert_eq!(
        env,
        "CAIRN_ATTEMPT=1\nCAIRN_CHECKPOINT=canary-5\nCAIRN_HOOK=promote\n\
         CAIRN_IDEMPOTENCY_KEY=key-abc\nCAIRN_ROLLOUT=rollout-7\nEXTRA=from the spec\n"
    );
    let cwd = std::fs::read_to_string(dir.path().join("cwd.txt")).unwrap();
    assert_eq!(
        PathBuf::from(cwd.trim()).canonicalize().unwrap(),
        dir.path().canonicalize().unwrap()
    );
}

#[tokio::test]
async fn a_failing_command_is_retried_with_the_same_key_and_attempts_1_to_n() {
    let dir = tempfile::tempdir().unwrap();
    let payload = serde_json::json!({});
    let spec = sh(
        "echo \"$CAIRN_ATTEMPT $CAIRN_IDEMPOTENCY_KEY\" >> attempts.txt; exit 3",
        dir.path(),
        Duration::from_secs(10),
        3,
    );
    let outcome = within(BOUND, run_hook(&spec, &call(&payload, "r7-canary-promote"))).await;
    assert!(!outcome.ok);
    assert_eq!(results(&outcome), vec![AttemptResult::Exited(3); 4]);
    assert_eq!(
        outcome
            .attempts
            .iter()
            .map(|a| a.attempt)
            .collect::<Vec<_>>(),
        [1, 2, 3, 4]
    );
    let lines = std::fs::read_to_string(dir.path().join("attempts.txt")).unwrap();
    assert_eq!(
        lines,
        "1 r7-canary-promote\n2 r7-canary-promote\n3 r7-canary-promote\n4 r7-canary-promote\n"
    );

    // One that fails once then succeeds stops retrying at the success.
    let spec = sh(
        "echo $CAIRN_ATTEMPT >> flaky.txt; [ \"$CAIRN_ATTEMPT\" -ge 2 ]",
        dir.path(),
        Duration::from_secs(10),
        3,
    );
    let outcome = within(BOUND, run_hook(&spec, &call(&payload, "k"))).await;
    assert!(outcome.ok, "{outcome:?}");
    assert_eq!(outcome.attempts.len(), 2);
    assert_eq!(
        std::fs::read_to_string(dir.path().join("flaky.txt")).unwrap(),
        "1\n2\n"
    );
}

#[tokio::test]
async fn a_hanging_command_is_killed_at_its_timeout_with_its_process_group() {
    let dir = tempfile::tempdir().unwrap();
    let payload = serde_json::json!({});
    let timeout = Duration::from_millis(500);
    let spec = sh("echo $$ > pid; sleep 600", dir.path(), timeout, 1);
    let started = Instant::now();
    let outcome = within(BOUND, run_hook(&spec, &call(&payload, "k"))).await;
    let elapsed = started.elapsed();
    assert_eq!(results(&outcome), vec![AttemptResult::TimedOut; 2]);
    for attempt in &outcome.attempts {
        assert!(
            attempt.duration >= timeout && attempt.duration < timeout + KILL_GRACE,
            "{attempt:?}"
        );
    }
    assert!(elapsed < spec.time_bound(), "{elapsed:?}");
    // The pid file holds the last attempt's shell, its group's leader.
    assert_group_dies(read_pid(&dir.path().join("pid")));
}

#[tokio::test]
async fn a_grandchild_holding_the_output_pipe_does_not_stretch_the_timeout() {
    let dir = tempfile::tempdir().unwrap();
    let payload = serde_json::json!({});
    let timeout = Duration::from_millis(500);
    // The background subshell keeps stdout and stderr open for 600 s.
    let spec = sh(
        "echo $$ > pid; (sleep 600; echo late) & echo $! > grandchild; echo started; sleep 600",
        dir.path(),
        timeout,
        0,
    );
    let outcome = within(BOUND, run_hook(&spec, &call(&payload, "k"))).await;
    assert_eq!(results(&outcome), [AttemptResult::TimedOut]);
    assert!(
        outcome.duration < timeout + KILL_GRACE,
        "{:?}",
        outcome.duration
    );
    assert_eq!(outcome.attempts[0].output_tail, "started\n");
    assert_group_dies(read_pid(&dir.path().join("pid")));
    assert_dies(read_pid(&dir.path().join("grandchild")));
}

#[tokio::test]
async fn a_command_that_exits_leaving_a_grandchild_on_the_pipe_ends_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let payload = serde_json::json!({});
    let spec = sh(
        "sleep 600 & echo $! > grandchild; echo done",
        dir.path(),
        Duration::from_secs(20),
        0,
    );
    let outcome = within(BOUND, run_hook(&spec, &call(&payload, "k"))).await;
    assert!(outcome.ok, "{outcome:?}");
    assert!(
        outcome.duration < Duration::from_secs(3),
        "waited for the grandchild: {:?}",
        outcome.duration
    );
    assert_eq!(outcome.attempts[0].output_tail, "done\n");
    // What a hook leaves in its group ends with it.
    assert_dies(read_pid(&dir.path().join("grandchild")));
}

#[tokio::test]
async fn command_output_is_capped_to_its_tail_and_escaped() {
    let dir = tempfile::tempdir().unwrap();
    let payload = serde_json::json!({});
    // 200 000 bytes of filler, then 19 bytes of terminal escapes (clear
    // screen, set title), a bell and a carriage return.
    let spec = sh(
        "head -c 200000 /dev/zero | tr '\\0' x; printf '\\033[2J\\033]0;owned\\007\\rred\\n' >&2",
        dir.path(),
        Duration::from_secs(10),
        0,
    );
    let outcome = within(BOUND, run_hook(&spec, &call(&payload, "k"))).await;
    assert!(outcome.ok, "{outcome:?}");
    let attempt = &outcome.attempts[0];
    assert_eq!(attempt.output_bytes, 200_000 + 19);
    let tail = &attempt.output_tail;
    assert!(
        tail.ends_with("x\\u{1b}[2J\\u{1b}]0;owned\\u{7}\\rred\n"),
        "{:?}",
        &tail[tail.len().saturating_sub(60)..]
    );
    assert!(
        !tail.chars().any(|c| c.is_control() && c != '\n'),
        "a raw control character got through"
    );
    // The last 4 KiB of raw output: the 19 bytes above, the rest filler.
    assert_eq!(tail.chars().filter(|&c| c == 'x').count(), 4096 - 19);
}

/// `kill_running_hooks` in a process of its own (it kills every hook of
/// the process, so it cannot run beside the other tests): started by
/// `kill_running_hooks_kills_a_running_command_group`.
#[tokio::test]
#[ignore = "run in a child process by kill_running_hooks_kills_a_running_command_group"]
async fn kill_running_hooks_child() {
    let dir = PathBuf::from(std::env::var("CAIRN_HOOKS_TEST_DIR").expect("dir given"));
    let payload = serde_json::json!({});
    let spec = sh("echo $$ > pid; sleep 600", &dir, Duration::from_secs(60), 0);
    let call = call(&payload, "k");
    let pid_file = dir.join("pid");
    let kill = async {
        while std::fs::read_to_string(&pid_file)
            .unwrap_or_default()
            .trim()
            .is_empty()
        {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        kill_running_hooks();
    };
    let (outcome, ()) = within(BOUND, async { tokio::join!(run_hook(&spec, &call), kill) }).await;
    assert_eq!(results(&outcome), [AttemptResult::Signalled(9)]);
    assert!(outcome.duration < Duration::from_secs(10));
    assert_group_dies(read_pid(&pid_file));
}

#[test]
fn kill_running_hooks_kills_a_running_command_group() {
    let dir = tempfile::tempdir().unwrap();
    let _watchdog = cairn_tests::Watchdog::start(BOUND, "the kill_running_hooks child");
    let output = std::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "hooks::kill_running_hooks_child",
            "--exact",
            "--ignored",
            "--nocapture",
        ])
        .env("CAIRN_HOOKS_TEST_DIR", dir.path())
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success() && text.contains("1 passed"),
        "{text}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
}

/// What the webhook server does with one request.
#[derive(Clone)]
enum Reply {
    Status(u16),
    WithHeader(u16, &'static str, &'static str),
    Body(u16, Bytes),
    /// Never answers.
    Hang,
}

/// A request the webhook server received.
struct Seen {
    at: Instant,
    headers: hyper::HeaderMap,
    body: Bytes,
}

/// A loopback HTTP server answering its requests with `replies` in turn
/// (the last one again once they run out), recording each.
struct HookServer {
    addr: SocketAddr,
    seen: Arc<Mutex<Vec<Seen>>>,
    task: tokio::task::JoinHandle<()>,
}

impl HookServer {
    async fn start(replies: Vec<Reply>) -> HookServer {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        Self::serve(listener, replies)
    }

    fn serve(listener: TcpListener, replies: Vec<Reply>) -> HookServer {
        let addr = listener.local_addr().unwrap();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let replies = Arc::new(replies);
        let record = Arc::clone(&seen);
        let task = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let record = Arc::clone(&record);
                let replies = Arc::clone(&replies);
                tokio::spawn(async move {
                    let service = service_fn(move |request: Request<Incoming>| {
                        respond(request, Arc::clone(&record), Arc::clone(&replies))
                    });
                    let _ = http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        HookServer { addr, seen, task }
    }

    fn url(&self) -> String {
        format!("http://{}/hooks/promote", self.addr)
    }

    fn seen(&self) -> std::sync::MutexGuard<'_, Vec<Seen>> {
        self.seen.lock().unwrap()
    }
}

impl Drop for HookServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn respond(
    request: Request<Incoming>,
    record: Arc<Mutex<Vec<Seen>>>,
    replies: Arc<Vec<Reply>>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let at = Instant::now();
    let (parts, body) = request.into_parts();
    let body = body
        .collect()
        .await
        .map(|body| body.to_bytes())
        .unwrap_or_default();
    let index = {
        let mut seen = record.lock().unwrap();
        seen.push(Seen {
            at,
            headers: parts.headers,
            body,
        });
        seen.len() - 1
    };
    let response = match replies[index.min(replies.len() - 1)].clone() {
        Reply::Status(status) => status_response(status, Bytes::new()),
        Reply::Body(status, body) => status_response(status, body),
        Reply::WithHeader(status, name, value) => {
            let mut response = status_response(status, Bytes::new());
            response
                .headers_mut()
                .insert(name, hyper::header::HeaderValue::from_static(value));
            response
        }
        Reply::Hang => std::future::pending().await,
    };
    Ok(response)
}

fn status_response(status: u16, body: Bytes) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(body));
    *response.status_mut() = hyper::StatusCode::from_u16(status).unwrap();
    response
}

fn header<'a>(seen: &'a Seen, name: &str) -> &'a str {
    seen.headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
}

#[tokio::test]
async fn a_webhook_answering_500_twice_then_200_succeeds_on_the_third_attempt_with_one_key() {
    let server = HookServer::start(vec![
        Reply::Status(500),
        Reply::Status(500),
        Reply::Status(200),
    ])
    .await;
    let payload = serde_json::json!({"flag": "new-checkout", "on": true});
    let spec = webhook(&server.url(), Duration::from_secs(5), 3, fast_backoff());
    let outcome = within(
        BOUND,
        run_hook(&spec, &call(&payload, "r7-canary-5-promote")),
    )
    .await;
    assert!(outcome.ok, "{outcome:?}");
    assert_eq!(
        results(&outcome),
        [
            AttemptResult::Http(500),
            AttemptResult::Http(500),
            AttemptResult::Succeeded {
                detail: "HTTP 200".into()
            }
        ]
    );
    let seen = server.seen();
    assert_eq!(seen.len(), 3);
    for (index, request) in seen.iter().enumerate() {
        assert_eq!(header(request, "idempotency-key"), "r7-canary-5-promote");
        assert_eq!(header(request, "cairn-attempt"), (index + 1).to_string());
        assert_eq!(header(request, "content-type"), "application/json");
        assert!(header(request, "user-agent").starts_with("cairn/"));
        assert_eq!(header(request, "cairn-hook"), "promote");
        assert_eq!(header(request, "cairn-rollout"), "rollout-7");
        assert_eq!(header(request, "cairn-checkpoint"), "canary-5");
        assert_eq!(header(request, "x-team"), "payments");
        assert_eq!(
            serde_json::from_slice::<serde_json::Value>(&request.body).unwrap(),
            payload
        );
    }
}

#[tokio::test]
async fn a_webhook_always_answering_500_fails_after_retries_plus_one_attempts() {
    let server = HookServer::start(vec![Reply::Status(500)]).await;
    let payload = serde_json::json!({});
    let spec = webhook(&server.url(), Duration::from_secs(5), 2, fast_backoff());
    let outcome = within(BOUND, run_hook(&spec, &call(&payload, "k"))).await;
    assert!(!outcome.ok);
    assert_eq!(results(&outcome), vec![AttemptResult::Http(500); 3]);
    assert_eq!(server.seen().len(), 3);
}

#[tokio::test]
async fn a_webhook_answering_404_is_not_retried() {
    let server = HookServer::start(vec![Reply::Status(404), Reply::Status(200)]).await;
    let payload = serde_json::json!({});
    let spec = webhook(&server.url(), Duration::from_secs(5), 5, fast_backoff());
    let outcome = within(BOUND, run_hook(&spec, &call(&payload, "k"))).await;
    assert!(!outcome.ok);
    assert_eq!(results(&outcome), [AttemptResult::Http(404)]);
    assert_eq!(server.seen().len(), 1);
}

#[tokio::test]
async fn a_webhook_that_never_answers_times_out_on_every_attempt() {
    let server = HookServer::start(vec![Reply::Hang]).await;
    let payload = serde_json::json!({});
    let timeout = Duration::from_millis(300);
    let spec = webhook(&server.url(), timeout, 2, fast_backoff());
    let started = Instant::now();
    let outcome = within(BOUND, run_hook(&spec, &call(&payload, "k"))).await;
    assert_eq!(results(&outcome), vec![AttemptResult::TimedOut; 3]);
    for attempt in &outcome.attempts {
        assert!(
            attempt.duration >= timeout && attempt.duration < timeout + Duration::from_secs(1),
            "{attempt:?}"
        );
    }
    assert!(started.elapsed() < spec.time_bound());
    assert_eq!(server.seen().len(), 3);
}

/// A loopback port nobody listens on (at the time of asking).
fn closed_port() -> u16 {
    let probe = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    probe.local_addr().unwrap().port()
}

#[tokio::test]
async fn a_refused_connection_is_retried_and_succeeds_once_the_server_is_up() {
    let port = closed_port();
    let payload = serde_json::json!({});
    let backoff = Backoff {
        initial: Duration::from_millis(600),
        max: Duration::from_millis(600),
    };
    let url = format!("http://127.0.0.1:{port}/hooks/promote");
    let spec = webhook(&url, Duration::from_secs(5), 2, backoff);
    let call = call(&payload, "k");
    // The server comes up while the hook backs off after the refusal.
    let start_server = async {
        tokio::time::sleep(Duration::from_millis(250)).await;
        let listener = TcpListener::bind(("127.0.0.1", port)).await.unwrap();
        HookServer::serve(listener, vec![Reply::Status(204)])
    };
    let (outcome, server) = within(BOUND, async {
        tokio::join!(run_hook(&spec, &call), start_server)
    })
    .await;
    assert!(outcome.ok, "{outcome:?}");
    assert_eq!(outcome.attempts.len(), 2);
    assert!(
        matches!(&outcome.attempts[0].result, AttemptResult::Connect(reason) if reason.contains("refused")),
        "{outcome:?}"
    );
    assert_eq!(server.seen().len(), 1);
    assert_eq!(header(&server.seen()[0], "cairn-attempt"), "2");

    // Nobody ever listening: every attempt is a Connect failure.
    let spec = webhook(
        &format!("http://127.0.0.1:{}/", closed_port()),
        Duration::from_secs(5),
        2,
        fast_backoff(),
    );
    let outcome = within(BOUND, run_hook(&spec, &call)).await;
    assert!(!outcome.ok);
    assert_eq!(outcome.attempts.len(), 3);
    assert!(
        outcome
            .attempts
            .iter()
            .all(|a| matches!(a.result, AttemptResult::Connect(_))),
        "{outcome:?}"
    );
}

#[tokio::test]
async fn retry_after_is_honoured_but_capped_by_the_backoff_max() {
    let payload = serde_json::json!({});
    // 429 with Retry-After: 1 and a 20 ms backoff: the retry waits ~1 s.
    let server = HookServer::start(vec![
        Reply::WithHeader(429, "retry-after", "1"),
        Reply::Status(200),
    ])
    .await;
    let backoff = Backoff {
        initial: Duration::from_millis(20),
        max: Duration::from_secs(5),
    };
    let spec = webhook(&server.url(), Duration::from_secs(5), 2, backoff);
    let outcome = within(BOUND, run_hook(&spec, &call(&payload, "k"))).await;
    assert!(outcome.ok, "{outcome:?}");
    let gap = {
        let seen = server.seen();
        seen[1].at - seen[0].at
    };
    assert!(
        gap >= Duration::from_millis(950) && gap < Duration::from_secs(3),
        "{gap:?}"
    );

    // 503 with Retry-After: 3600 and a 300 ms max: the retry waits 300 ms.
    let server = HookServer::start(vec![
        Reply::WithHeader(503, "retry-after", "3600"),
        Reply::Status(200),
    ])
    .await;
    let backoff = Backoff {
        initial: Duration::from_millis(20),
        max: Duration::from_millis(300),
    };
    let spec = webhook(&server.url(), Duration::from_secs(5), 2, backoff);
    let outcome = within(BOUND, run_hook(&spec, &call(&payload, "k"))).await;
    assert!(outcome.ok, "{outcome:?}");
    let gap = {
        let seen = server.seen();
        seen[1].at - seen[0].at
    };
    assert!(
        gap >= Duration::from_millis(280) && gap < Duration::from_secs(2),
        "{gap:?}"
    );
}

#[tokio::test]
async fn a_webhook_body_is_read_up_to_its_cap_and_its_tail_escaped() {
    // 1 MiB, with a terminal escape, a bell and a CR ending at the cap.
    let mut body = vec![b'y'; 1024 * 1024];
    let marker = b"\x1b[31mred\x07\r\n";
    let end = MAX_RESPONSE_BODY_BYTES;
    body[end - marker.len()..end].copy_from_slice(marker);
    let server = HookServer::start(vec![Reply::Body(400, Bytes::from(body))]).await;
    let payload = serde_json::json!({});
    let spec = webhook(&server.url(), Duration::from_secs(5), 2, fast_backoff());
    let outcome = within(BOUND, run_hook(&spec, &call(&payload, "k"))).await;
    assert_eq!(results(&outcome), [AttemptResult::Http(400)]);
    let attempt = &outcome.attempts[0];
    assert_eq!(attempt.output_bytes, MAX_RESPONSE_BODY_BYTES as u64);
    let tail = &attempt.output_tail;
    assert!(
        tail.ends_with("y\\u{1b}[31mred\\u{7}\\r\n"),
        "{:?}",
        &tail[tail.len().saturating_sub(40)..]
    );
    assert_eq!(
        tail.chars().filter(|&c| c == 'y').count(),
        4096 - marker.len()
    );
}

#[tokio::test]
async fn an_https_webhook_trusts_its_ca_file_and_nothing_else() {
    let upstream = TestUpstream::tls().await;
    let dir = tempfile::tempdir().unwrap();
    let ca_file = dir.path().join("ca.pem");
    std::fs::write(&ca_file, upstream.ca_pem().unwrap()).unwrap();
    let url = format!("{}/echo", upstream.url());
    let payload = serde_json::json!({});

    let mut spec = webhook(&url, Duration::from_secs(5), 1, fast_backoff());
    let outcome = within(BOUND, run_hook(&spec, &call(&payload, "k"))).await;
    assert!(!outcome.ok);
    assert_eq!(outcome.attempts.len(), 2, "a TLS failure is retried");
    assert!(
        matches!(&outcome.attempts[0].result, AttemptResult::Connect(reason) if reason.to_lowercase().contains("certificate")),
        "{outcome:?}"
    );

    if let HookSpec::Webhook { ca_file: file, .. } = &mut spec {
        *file = Some(ca_file);
    }
    let outcome = within(BOUND, run_hook(&spec, &call(&payload, "tls-key"))).await;
    assert!(outcome.ok, "{outcome:?}");
    let echoed = &outcome.attempts[0].output_tail;
    assert!(
        echoed.starts_with("POST ") && echoed.contains("idempotency-key: tls-key"),
        "{echoed}"
    );
}
