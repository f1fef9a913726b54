//! `cairn serve` over real HTTP, as a client sees it: every endpoint answers
//! as host/openapi.json says; checks give the report `cairn check` gives;
//! auth failures are 401/404 that name nothing of another tenant; malformed
//! and oversized bodies get JSON 4xx and the server serves the next call;
//! over capacity is 503 with Retry-After; a reload with a bad plan keeps
//! the old plans serving and says why; SIGTERM drains calls in flight;
//! rollouts start, pause, are approved by token identity and journal.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::util::{copy_rollout_example, guests};

const TOKEN_A: &str = "token-of-tenant-a";
const TOKEN_A_DATA: &str = "token-of-tenant-a-data-steward";
const TOKEN_B: &str = "token-of-tenant-b";

fn sha256_hex(text: &str) -> String {
    use sha2::Digest as _;
    hex::encode(sha2::Sha256::digest(text.as_bytes()))
}

/// A `cairn serve` process on a free loopback port, killed on drop.
pub(crate) struct Served {
    pub(crate) child: Child,
    pub(crate) addr: SocketAddr,
    dir: tempfile::TempDir,
    stderr: Arc<Mutex<String>>,
}

/// An HTTP answer.
#[derive(Debug)]
pub(crate) struct Answer {
    pub(crate) status: u16,
    headers: Vec<(String, String)>,
    pub(crate) body: Vec<u8>,
}

impl Answer {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub(crate) fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|err| {
            panic!(
                "status {}: body is not JSON ({err}): {}",
                self.status,
                String::from_utf8_lossy(&self.body)
            )
        })
    }

    fn error_code(&self) -> String {
        self.json()["error"]["code"]
            .as_str()
            .unwrap_or_default()
            .to_owned()
    }
}

/// The plans every test server serves: `gate` (no-deletes: fails a change
/// that deletes a document) and `slow` (a validator that sleeps until its
/// 1.5 s deadline).
fn write_plans(dir: &Path) {
    std::fs::write(
        dir.join("gate.toml"),
        format!(
            "[plugins.no-deletes]\npath = {:?}\n\n[[checkpoint]]\nname = \"preflight\"\n\
             validators = [{{ plugin = \"no-deletes\" }}]\n",
            guests::NO_DELETES
        ),
    )
    .unwrap();
    std::fs::write(
        dir.join("slow.toml"),
        format!(
            "[plugins.fixture]\npath = {:?}\nlimits = {{ timeout-ms = 1500 }}\n\
             on-error = \"warn\"\n\n[[checkpoint]]\nname = \"preflight\"\n\
             validators = [{{ plugin = \"fixture\", config = {{ mode = \"sleep\" }} }}]\n",
            guests::FIXTURE
        ),
    )
    .unwrap();
}

fn config_text(server: &str, extra_plans_a: &str) -> String {
    format!(
        "[server]\n{server}\nstate-dir = \"state\"\n\n\
         [[tenant]]\nname = \"tenant-a\"\n\
         plans = {{ gate = \"gate.toml\", slow = \"slow.toml\"{extra_plans_a} }}\n\
         [[tenant.token]]\nidentity = \"alice\"\nsha256 = \"{}\"\nroles = [\"security\"]\n\
         [[tenant.token]]\nidentity = \"dana\"\nsha256 = \"{}\"\nroles = [\"data-steward\"]\n\n\
         [[tenant]]\nname = \"tenant-b\"\nplans = {{ b-only = \"gate.toml\" }}\n\
         [[tenant.token]]\nidentity = \"bob\"\nsha256 = \"{}\"\n",
        sha256_hex(TOKEN_A),
        sha256_hex(TOKEN_A_DATA),
        sha256_hex(TOKEN_B)
    )
}

impl Served {
    fn start(server: &str) -> Served {
        Served::start_with(server, "", |_| {})
    }

    /// Starts a server over the standard plans plus what `prepare` writes.
    fn start_with(server: &str, extra_plans_a: &str, prepare: impl FnOnce(&Path)) -> Served {
        let dir = tempfile::tempdir().expect("temp dir");
        write_plans(dir.path());
        prepare(dir.path());
        std::fs::write(
            dir.path().join("serve.toml"),
            config_text(server, extra_plans_a),
        )
        .unwrap();
        let config = dir.path().join("serve.toml");
        Served::spawn(dir, &config, &[])
    }

    /// Runs `cairn serve --config config` (with `env`) on a free loopback
    /// port and waits for it to listen; `dir` lives as long as it.
    pub(crate) fn spawn(dir: tempfile::TempDir, config: &Path, env: &[(&str, String)]) -> Served {
        let mut command = cairn_tests::cairn_command(env!("CARGO_BIN_EXE_cairn-cli"));
        for (key, value) in env {
            command.env(key, value);
        }
        let mut child = command
            .args(["serve", "--listen", "127.0.0.1:0", "--config"])
            .arg(config)
            .env("CAIRN_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("cairn serve starts");
        let stderr = Arc::new(Mutex::new(String::new()));
        let (addr_tx, addr_rx) = std::sync::mpsc::channel();
        {
            let mut pipe = child.stderr.take().expect("stderr");
            let stderr = Arc::clone(&stderr);
            std::thread::spawn(move || {
                let mut buf = [0u8; 4096];
                let mut sent = false;
                while let Ok(n) = pipe.read(&mut buf) {
                    if n == 0 {
                        break;
                    }
                    let mut text = stderr.lock().unwrap();
                    text.push_str(&String::from_utf8_lossy(&buf[..n]));
                    if !sent && let Some(at) = text.find("serving on http://") {
                        let rest = &text[at + "serving on http://".len()..];
                        if let Some(end) = rest.find(' ')
                            && let Ok(addr) = rest[..end].parse::<SocketAddr>()
                        {
                            let _ = addr_tx.send(addr);
                            sent = true;
                        }
                    }
                }
            });
        }
        let addr = match addr_rx.recv_timeout(Duration::from_secs(180)) {
            Ok(addr) => addr,
            Err(_) => {
                let _ = child.kill();
                panic!("cairn serve did not start: {}", stderr.lock().unwrap());
            }
        };
        Served {
            child,
            addr,
            dir,
            stderr,
        }
    }

    pub(crate) fn request(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Option<&[u8]>,
    ) -> Answer {
        request(self.addr, method, path, token, body)
    }

    fn signal(&self, signal: libc::c_int) {
        // SAFETY: kill(2) on our own child's pid.
        unsafe { libc::kill(self.child.id() as libc::pid_t, signal) };
    }

    pub(crate) fn logs(&self) -> String {
        self.stderr.lock().unwrap().clone()
    }

    pub(crate) fn wait_for(
        &self,
        what: &str,
        bound: Duration,
        mut ready: impl FnMut(&Served) -> bool,
    ) {
        let started = Instant::now();
        while !ready(self) {
            assert!(
                started.elapsed() < bound,
                "{what}: not within {bound:?}; server log:\n{}",
                self.logs()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One HTTP/1.1 request on a fresh connection (`Connection: close`), with
/// socket timeouts so a server that stops answering fails the test.
pub(crate) fn request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: Option<&[u8]>,
) -> Answer {
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(10)).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(60)))
        .unwrap();
    stream
        .set_write_timeout(Some(Duration::from_secs(60)))
        .unwrap();
    let mut head = format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
    if let Some(token) = token {
        head.push_str(&format!("Authorization: Bearer {token}\r\n"));
    }
    let body = body.unwrap_or_default();
    if !body.is_empty() || method == "POST" {
        head.push_str(&format!(
            "Content-Type: application/json\r\nContent-Length: {}\r\n",
            body.len()
        ));
    }
    head.push_str("\r\n");
    stream.write_all(head.as_bytes()).expect("write head");
    // A server may answer (413) before reading a large body and close.
    let _ = stream.write_all(body);
    let mut raw = Vec::new();
    let _ = stream.read_to_end(&mut raw);
    parse_answer(&raw)
}

fn parse_answer(raw: &[u8]) -> Answer {
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap_or_else(|| panic!("no HTTP head in {:?}", String::from_utf8_lossy(raw)));
    let head = String::from_utf8_lossy(&raw[..split]).into_owned();
    let mut lines = head.lines();
    let status: u16 = lines
        .next()
        .and_then(|l| l.split(' ').nth(1))
        .and_then(|s| s.parse().ok())
        .expect("status line");
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_owned(), v.trim().to_owned()))
        .collect();
    let mut body = raw[split + 4..].to_vec();
    let chunked = headers
        .iter()
        .any(|(n, v)| n.eq_ignore_ascii_case("transfer-encoding") && v.contains("chunked"));
    if chunked {
        body = dechunk(&body);
    }
    Answer {
        status,
        headers,
        body,
    }
}

fn dechunk(mut data: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let Some(line_end) = data.windows(2).position(|w| w == b"\r\n") else {
            return out;
        };
        let size = usize::from_str_radix(String::from_utf8_lossy(&data[..line_end]).trim(), 16)
            .unwrap_or(0);
        if size == 0 {
            return out;
        }
        let start = line_end + 2;
        out.extend_from_slice(&data[start..start + size]);
        data = &data[start + size + 2..];
    }
}

/// A change bundle with one document modified (or deleted when `delete`).
fn bundle(delete: bool) -> Vec<u8> {
    let document = if delete {
        serde_json::json!({"path": "connectors/legacy.json", "before": "{}"})
    } else {
        serde_json::json!({"path": "workflows/orders.json", "before": "{}", "after": "{\"a\": 1}"})
    };
    serde_json::to_vec(&serde_json::json!({"documents": [document]})).unwrap()
}

/// A bundle of an example change directory (before/, after/, metrics.json).
pub(crate) fn bundle_of_dir(dir: &Path) -> Vec<u8> {
    fn walk(root: &Path, dir: &Path, out: &mut Vec<String>) {
        for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
            let path = entry.path();
            if path.is_dir() {
                walk(root, &path, out);
            } else {
                out.push(
                    path.strip_prefix(root)
                        .unwrap()
                        .to_string_lossy()
                        .into_owned(),
                );
            }
        }
    }
    let mut paths = Vec::new();
    for side in ["before", "after"] {
        let root = dir.join(side);
        walk(&root, &root, &mut paths);
    }
    paths.sort();
    paths.dedup();
    let documents: Vec<Value> = paths
        .iter()
        .map(|p| {
            let read = |side: &str| std::fs::read_to_string(dir.join(side).join(p)).ok();
            serde_json::json!({"path": p, "before": read("before"), "after": read("after")})
                .as_object()
                .unwrap()
                .iter()
                .filter(|(_, v)| !v.is_null())
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect::<serde_json::Map<_, _>>()
                .into()
        })
        .collect();
    let mut bundle = serde_json::json!({"documents": documents});
    if let Ok(metrics) = std::fs::read(dir.join("metrics.json")) {
        bundle["metrics"] = serde_json::from_slice(&metrics).unwrap();
    }
    serde_json::to_vec(&bundle).unwrap()
}

pub(crate) fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn openapi() -> Value {
    serde_json::from_str(cairn_host::serve::api::OPENAPI).expect("openapi.json parses")
}

/// Checks `value` against the OpenAPI response schema of `path`/`method`/
/// `status` (its `$ref`s resolved inside the document).
fn assert_matches_openapi(value: &Value, path: &str, method: &str, status: u16) {
    let spec = openapi();
    let response = &spec["paths"][path][method]["responses"][status.to_string()];
    assert!(
        !response.is_null(),
        "{method} {path} documents no {status} answer"
    );
    let response = match response["$ref"].as_str() {
        Some(reference) => spec
            .pointer(reference.trim_start_matches('#'))
            .unwrap()
            .clone(),
        None => response.clone(),
    };
    let Some(schema) = response["content"]["application/json"]["schema"].as_object() else {
        return;
    };
    let mut root = serde_json::Map::new();
    root.insert("components".to_owned(), spec["components"].clone());
    for (key, value) in schema {
        root.insert(key.clone(), value.clone());
    }
    let validator = jsonschema::validator_for(&Value::Object(root)).expect("schema compiles");
    if let Err(error) = validator.validate(value) {
        panic!("{method} {path} {status}: {error}\n{value:#}");
    }
}

#[test]
fn the_routes_the_server_has_are_exactly_the_ones_openapi_json_describes() {
    let spec = openapi();
    let mut documented: Vec<(String, String)> = spec["paths"]
        .as_object()
        .unwrap()
        .iter()
        .flat_map(|(path, item)| {
            item.as_object()
                .unwrap()
                .keys()
                .map(move |method| (method.clone(), path.clone()))
        })
        .collect();
    documented.sort();
    let mut served: Vec<(String, String)> = cairn_host::serve::api::ROUTES
        .iter()
        .map(|(m, p)| ((*m).to_owned(), (*p).to_owned()))
        .collect();
    served.sort();
    assert_eq!(documented, served);
}

#[test]
fn every_endpoint_answers_as_openapi_describes_and_checks_report_like_cairn_check() {
    let _watchdog = cairn_tests::Watchdog::start(Duration::from_secs(400), "serve endpoints");
    let server = Served::start("max-concurrent = 4");
    let a = Some(TOKEN_A);

    let health = server.request("GET", "/healthz", None, None);
    assert_eq!(health.status, 200);
    assert_matches_openapi(&health.json(), "/healthz", "get", 200);
    let ready = server.request("GET", "/readyz", None, None);
    assert_eq!(ready.status, 200);
    assert_matches_openapi(&ready.json(), "/readyz", "get", 200);
    assert_eq!(ready.json()["generation"], 1);
    let spec = server.request("GET", "/v1/openapi.json", None, None);
    assert_eq!(spec.json(), openapi());

    let plans = server.request("GET", "/v1/plans", a, None);
    assert_eq!(plans.status, 200);
    assert_matches_openapi(&plans.json(), "/v1/plans", "get", 200);
    let names: Vec<&str> = plans.json()["plans"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap().to_owned().leak() as &str)
        .collect();
    assert_eq!(names, ["gate", "slow"]);

    let plugins = server.request("GET", "/v1/plugins", a, None);
    assert_matches_openapi(&plugins.json(), "/v1/plugins", "get", 200);
    let no_deletes = plugins.json()["plugins"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == "no-deletes")
        .cloned()
        .expect("no-deletes listed");
    assert_eq!(no_deletes["world"], "validator");
    let expected_digest = {
        use sha2::Digest as _;
        hex::encode(sha2::Sha256::digest(
            std::fs::read(guests::NO_DELETES).unwrap(),
        ))
    };
    assert_eq!(no_deletes["sha256"], expected_digest);

    // A passing and a failing change: the report is `cairn check`'s JSON.
    let pass = server.request("POST", "/v1/checks?plan=gate", a, Some(&bundle(false)));
    assert_eq!(pass.status, 200, "{}", String::from_utf8_lossy(&pass.body));
    assert_eq!(pass.header("cairn-outcome"), Some("pass"));
    assert_matches_openapi(&pass.json(), "/v1/checks", "post", 200);
    let fail = server.request("POST", "/v1/checks?plan=gate", a, Some(&bundle(true)));
    assert_eq!(fail.status, 200);
    assert_eq!(fail.header("cairn-outcome"), Some("fail"));
    let bundle_file = server.dir.path().join("delete.json");
    std::fs::write(&bundle_file, bundle(true)).unwrap();
    let cli = cairn_tests::run_bounded(
        cairn_tests::cairn_command(env!("CARGO_BIN_EXE_cairn-cli"))
            .args(["check", "--format", "json", "--plan"])
            .arg(server.dir.path().join("gate.toml"))
            .arg("--change")
            .arg(&bundle_file),
        cairn_tests::SUBPROCESS_BOUND,
    );
    assert_eq!(cli.status.code(), Some(1));
    let cli: Value = serde_json::from_slice(&cli.stdout).expect("check JSON");
    let served = fail.json();
    assert_eq!(served["outcome"], cli["outcome"]);
    let findings = |report: &Value| report["checkpoints"][0]["validators"][0]["findings"].clone();
    assert_eq!(findings(&served), findings(&cli));
    assert!(findings(&served).as_array().is_some_and(|f| !f.is_empty()));

    let experiments = server.request("GET", "/v1/experiments", a, None);
    assert_matches_openapi(&experiments.json(), "/v1/experiments", "get", 200);
    let stop = server.request("POST", "/v1/experiments/x-99/stop", a, None);
    assert_eq!(stop.status, 404);
    assert_matches_openapi(&stop.json(), "/v1/experiments/{id}/stop", "post", 404);

    let rollouts = server.request("GET", "/v1/rollouts", a, None);
    assert_matches_openapi(&rollouts.json(), "/v1/rollouts", "get", 200);
    for path in ["/v1/rollouts/nope", "/v1/rollouts/nope/journal"] {
        let missing = server.request("GET", path, a, None);
        assert_eq!(missing.status, 404);
        assert_eq!(missing.error_code(), "unknown-rollout");
    }

    let metrics = server.request("GET", "/metrics", None, None);
    assert_eq!(metrics.status, 200);
    let text = String::from_utf8_lossy(&metrics.body);
    for line in [
        "cairn_plugin_calls_total{plugin=\"no-deletes\",kind=\"pass\"} 1",
        "cairn_plugin_calls_total{plugin=\"no-deletes\",kind=\"fail\"} 1",
        "cairn_plugin_call_duration_seconds_count{plugin=\"no-deletes\"} 2",
        "cairn_queue_depth 0",
        "cairn_http_requests_total{route=\"/v1/checks\",status=\"200\"} 2",
    ] {
        assert!(text.contains(line), "{line:?} in:\n{text}");
    }
    assert!(text.contains("cairn_plugin_loads_total{source="), "{text}");
}

#[test]
fn auth_failures_are_401_and_another_tenants_things_are_indistinguishable_from_missing_ones() {
    let _watchdog = cairn_tests::Watchdog::start(Duration::from_secs(300), "serve auth");
    let server = Served::start("");
    let none = server.request("GET", "/v1/plans", None, None);
    let wrong = server.request("GET", "/v1/plans", Some("not-a-token"), None);
    for answer in [&none, &wrong] {
        assert_eq!(answer.status, 401);
        assert_eq!(answer.error_code(), "unauthorized");
        assert_eq!(
            answer.header("www-authenticate"),
            Some("Bearer realm=\"cairn\"")
        );
    }
    assert_eq!(
        none.body, wrong.body,
        "a wrong token and none look the same"
    );
    let check = server.request("POST", "/v1/checks?plan=gate", None, Some(&bundle(false)));
    assert_eq!(check.status, 401);

    // Tenant B does not see tenant A's plans; A's plan is "unknown" to B
    // exactly as a plan nobody has.
    let b_plans = server.request("GET", "/v1/plans", Some(TOKEN_B), None);
    assert_eq!(b_plans.json()["plans"][0]["name"], "b-only");
    assert_eq!(b_plans.json()["plans"].as_array().unwrap().len(), 1);
    let a_plan = server.request(
        "POST",
        "/v1/checks?plan=slow",
        Some(TOKEN_B),
        Some(&bundle(false)),
    );
    let no_plan = server.request(
        "POST",
        "/v1/checks?plan=zzzz",
        Some(TOKEN_B),
        Some(&bundle(false)),
    );
    assert_eq!((a_plan.status, no_plan.status), (404, 404));
    assert_eq!(
        a_plan.json()["error"]["message"]
            .as_str()
            .unwrap()
            .replace("slow", "X"),
        no_plan.json()["error"]["message"]
            .as_str()
            .unwrap()
            .replace("zzzz", "X")
    );
    let b_body = String::from_utf8_lossy(&a_plan.body).into_owned();
    assert!(
        !b_body.contains("tenant-a") && !b_body.contains("gate"),
        "{b_body}"
    );
    let b_plugins = server.request("GET", "/v1/plugins", Some(TOKEN_B), None);
    assert!(
        b_plugins.json()["plugins"]
            .as_array()
            .unwrap()
            .iter()
            .all(|p| p["plan"] == "b-only")
    );
}

#[test]
fn malformed_and_oversized_requests_get_json_4xx_and_the_next_call_is_served() {
    let _watchdog = cairn_tests::Watchdog::start(Duration::from_secs(300), "serve bad input");
    let server = Served::start("max-body-bytes = 4096");
    let a = Some(TOKEN_A);
    /// Method, path, body, expected status and error code.
    type Case = (&'static str, String, Option<Vec<u8>>, u16, &'static str);
    let cases: Vec<Case> = vec![
        (
            "POST",
            "/v1/checks?plan=gate".into(),
            Some(b"{not json".to_vec()),
            400,
            "invalid-change",
        ),
        (
            "POST",
            "/v1/checks?plan=gate".into(),
            Some(br#"{"documents":[{"path":"../x","after":"1"}]}"#.to_vec()),
            400,
            "invalid-change",
        ),
        (
            "POST",
            "/v1/checks?plan=gate".into(),
            Some(vec![b' '; 8192]),
            413,
            "too-large",
        ),
        (
            "POST",
            "/v1/checks".into(),
            Some(bundle(false)),
            400,
            "bad-query",
        ),
        (
            "POST",
            "/v1/checks?plan=gate&bogus=1".into(),
            Some(bundle(false)),
            400,
            "bad-query",
        ),
        (
            "POST",
            "/v1/checks?plan=gate&checkpoints=nowhere".into(),
            Some(bundle(false)),
            400,
            "unknown-checkpoint",
        ),
        ("GET", "/v1/checks".into(), None, 405, "method-not-allowed"),
        ("GET", "/v2/anything".into(), None, 404, "not-found"),
        (
            "POST",
            "/v1/rollouts/x/approve".into(),
            Some(b"[]".to_vec()),
            422,
            "bad-body",
        ),
    ];
    for (method, path, body, status, code) in cases {
        let answer = server.request(method, &path, a, body.as_deref());
        assert_eq!(
            answer.status,
            status,
            "{method} {path}: {}",
            String::from_utf8_lossy(&answer.body)
        );
        assert_eq!(answer.error_code(), code, "{method} {path}");
        assert!(
            answer
                .header("content-type")
                .is_some_and(|t| t.starts_with("application/json"))
        );
        let next = server.request("POST", "/v1/checks?plan=gate", a, Some(&bundle(false)));
        assert_eq!(next.status, 200, "served after {method} {path}");
    }
    let metrics =
        String::from_utf8_lossy(&server.request("GET", "/metrics", None, None).body).into_owned();
    assert!(
        metrics.contains("cairn_requests_rejected_total{reason=\"too-large\"} 1"),
        "{metrics}"
    );
}

#[test]
fn over_capacity_requests_get_503_with_retry_after_and_capacity_comes_back() {
    let _watchdog = cairn_tests::Watchdog::start(Duration::from_secs(300), "serve overload");
    let server = Served::start("max-concurrent = 1\nmax-queue = 1");
    let addr = server.addr;
    // Each slow check holds the one slot for about 1.5 s.
    let clients: Vec<_> = (0..4)
        .map(|i| {
            std::thread::spawn(move || {
                std::thread::sleep(Duration::from_millis(100 * i));
                request(
                    addr,
                    "POST",
                    "/v1/checks?plan=slow",
                    Some(TOKEN_A),
                    Some(&bundle(false)),
                )
            })
        })
        .collect();
    let answers: Vec<Answer> = clients.into_iter().map(|c| c.join().unwrap()).collect();
    let ok = answers.iter().filter(|a| a.status == 200).count();
    let refused: Vec<&Answer> = answers.iter().filter(|a| a.status == 503).collect();
    assert_eq!(ok + refused.len(), 4, "{answers:?}");
    assert!(
        ok >= 2 && !refused.is_empty(),
        "one runs, one waits, the rest are refused: {answers:?}"
    );
    for answer in refused {
        assert_eq!(answer.error_code(), "overloaded");
        assert_eq!(answer.header("retry-after"), Some("1"));
    }
    let after = server.request(
        "POST",
        "/v1/checks?plan=gate",
        Some(TOKEN_A),
        Some(&bundle(false)),
    );
    assert_eq!(after.status, 200, "capacity comes back");
    let metrics =
        String::from_utf8_lossy(&server.request("GET", "/metrics", None, None).body).into_owned();
    assert!(
        metrics.contains("cairn_requests_rejected_total{reason=\"overloaded\"}"),
        "{metrics}"
    );
    assert!(
        metrics.contains("cairn_plugin_call_failures_total{plugin=\"fixture\",kind=\"timeout\"}"),
        "{metrics}"
    );
}

#[test]
fn a_reload_with_a_bad_plan_keeps_the_old_plans_serving_and_a_good_one_takes_effect() {
    let _watchdog = cairn_tests::Watchdog::start(Duration::from_secs(400), "serve reload");
    let server = Served::start("");
    let config = server.dir.path().join("serve.toml");
    // A new plan with a mistake on line 2.
    std::fs::write(
        server.dir.path().join("extra.toml"),
        "[plugins.x]\npath = 42\n",
    )
    .unwrap();
    std::fs::write(&config, config_text("", ", extra = \"extra.toml\"")).unwrap();
    server.signal(libc::SIGHUP);
    server.wait_for(
        "the failed reload on /readyz",
        Duration::from_secs(60),
        |s| !s.request("GET", "/readyz", None, None).json()["reload-error"].is_null(),
    );
    let ready = server.request("GET", "/readyz", None, None).json();
    let error = ready["reload-error"].as_str().unwrap();
    assert!(
        error.contains("plan `extra`") && error.contains("extra.toml:2:8"),
        "{error}"
    );
    assert_eq!(ready["generation"], 1, "the old plans still serve");
    assert!(server.logs().contains("reload failed"), "{}", server.logs());
    let old = server.request(
        "POST",
        "/v1/checks?plan=gate",
        Some(TOKEN_A),
        Some(&bundle(false)),
    );
    assert_eq!(old.status, 200);
    let missing = server.request(
        "POST",
        "/v1/checks?plan=extra",
        Some(TOKEN_A),
        Some(&bundle(false)),
    );
    assert_eq!(missing.status, 404);

    // Fixed: the next reload swaps the new catalog in.
    std::fs::write(
        server.dir.path().join("extra.toml"),
        std::fs::read_to_string(server.dir.path().join("gate.toml")).unwrap(),
    )
    .unwrap();
    server.signal(libc::SIGHUP);
    server.wait_for("generation 2", Duration::from_secs(60), |s| {
        s.request("GET", "/readyz", None, None).json()["generation"] == 2
    });
    assert!(server.request("GET", "/readyz", None, None).json()["reload-error"].is_null());
    let new = server.request(
        "POST",
        "/v1/checks?plan=extra",
        Some(TOKEN_A),
        Some(&bundle(true)),
    );
    assert_eq!(new.status, 200);
    assert_eq!(new.header("cairn-outcome"), Some("fail"));
}

#[test]
fn sigterm_drains_calls_in_flight_and_then_exits_cleanly() {
    let _watchdog = cairn_tests::Watchdog::start(Duration::from_secs(300), "serve shutdown");
    let mut server = Served::start("shutdown-grace-ms = 20000");
    let addr = server.addr;
    let in_flight = std::thread::spawn(move || {
        request(
            addr,
            "POST",
            "/v1/checks?plan=slow",
            Some(TOKEN_A),
            Some(&bundle(false)),
        )
    });
    std::thread::sleep(Duration::from_millis(500));
    server.signal(libc::SIGTERM);
    let answer = in_flight.join().unwrap();
    assert_eq!(
        answer.status, 200,
        "the call in flight finished: {answer:?}"
    );
    // The fixture slept to its deadline: it counts as a warning by plan.
    assert_eq!(answer.header("cairn-outcome"), Some("warn"));
    let started = Instant::now();
    let status = loop {
        if let Some(status) = server.child.try_wait().unwrap() {
            break status;
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "did not exit: {}",
            server.logs()
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(status.code(), Some(0), "{}", server.logs());
    assert!(
        TcpStream::connect_timeout(&addr, Duration::from_secs(2)).is_err(),
        "no longer listening"
    );
    assert!(
        server.logs().contains("shutting down: draining"),
        "{}",
        server.logs()
    );
}

#[test]
fn a_rollout_over_http_pauses_is_approved_by_token_identities_and_journals_it() {
    let _watchdog = cairn_tests::Watchdog::start(Duration::from_secs(400), "serve rollout");
    let server = serve_rollout_example();
    let change = bundle_of_dir(&repo().join("examples/changes/canary-healthy"));
    let started = server.request(
        "POST",
        "/v1/rollouts?plan=rollout&id=web-1",
        Some(TOKEN_A),
        Some(&change),
    );
    assert_eq!(
        started.status,
        202,
        "{}",
        String::from_utf8_lossy(&started.body)
    );
    assert_eq!(started.header("location"), Some("/v1/rollouts/web-1"));
    assert_matches_openapi(&started.json(), "/v1/rollouts", "post", 202);
    let again = server.request(
        "POST",
        "/v1/rollouts?plan=rollout&id=web-1",
        Some(TOKEN_A),
        Some(&change),
    );
    assert_eq!(
        (again.status, again.error_code().as_str()),
        (409, "rollout-exists")
    );

    server.wait_for("the pause at canary", Duration::from_secs(120), |s| {
        s.request("GET", "/v1/rollouts/web-1", Some(TOKEN_A), None)
            .json()["phase"]
            == "paused"
    });
    let status = server.request("GET", "/v1/rollouts/web-1", Some(TOKEN_A), None);
    assert_matches_openapi(&status.json(), "/v1/rollouts/{id}", "get", 200);
    assert_eq!(
        status.json()["pause"]["missing-roles"],
        serde_json::json!(["security", "data-steward"])
    );

    // Tenant B cannot see it; alice may approve only as security.
    let hidden = server.request("GET", "/v1/rollouts/web-1", Some(TOKEN_B), None);
    assert_eq!(
        (hidden.status, hidden.error_code().as_str()),
        (404, "unknown-rollout")
    );
    let not_hers = server.request(
        "POST",
        "/v1/rollouts/web-1/approve",
        Some(TOKEN_A),
        Some(br#"{"role":"data-steward"}"#),
    );
    assert_eq!(
        (not_hers.status, not_hers.error_code().as_str()),
        (403, "role-not-allowed")
    );
    let first = server.request(
        "POST",
        "/v1/rollouts/web-1/approve",
        Some(TOKEN_A),
        Some(br#"{"role":"security","comment":"ok"}"#),
    );
    assert_eq!(
        first.status,
        200,
        "{}",
        String::from_utf8_lossy(&first.body)
    );
    assert_eq!(
        first.json()["pause"]["missing-roles"],
        serde_json::json!(["data-steward"])
    );
    let second = server.request(
        "POST",
        "/v1/rollouts/web-1/approve",
        Some(TOKEN_A_DATA),
        Some(br#"{"role":"data-steward"}"#),
    );
    assert_eq!(
        second.status,
        200,
        "{}",
        String::from_utf8_lossy(&second.body)
    );
    server.wait_for("the rollout to finish", Duration::from_secs(120), |s| {
        let status = s
            .request("GET", "/v1/rollouts/web-1", Some(TOKEN_A), None)
            .json();
        status["driving"] == false && status["phase"] != "paused" && status["phase"] != "running"
    });
    assert_eq!(
        server
            .request("GET", "/v1/rollouts/web-1", Some(TOKEN_A), None)
            .json()["phase"],
        "completed"
    );

    let journal = server.request("GET", "/v1/rollouts/web-1/journal", Some(TOKEN_A), None);
    assert_matches_openapi(&journal.json(), "/v1/rollouts/{id}/journal", "get", 200);
    let journal = journal.json();
    assert_eq!(journal["intact"], true);
    let approvals: Vec<(String, String)> = journal["records"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["kind"] == "approved")
        .map(|r| {
            (
                r["body"]["by"].as_str().unwrap().to_owned(),
                r["body"]["role"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert_eq!(
        approvals,
        [
            ("alice".to_owned(), "security".to_owned()),
            ("dana".to_owned(), "data-steward".to_owned())
        ]
    );
    let listed = server
        .request("GET", "/v1/rollouts", Some(TOKEN_A), None)
        .json();
    assert_eq!(listed["rollouts"][0]["id"], "web-1");
    let metrics =
        String::from_utf8_lossy(&server.request("GET", "/metrics", None, None).body).into_owned();
    assert!(
        metrics.contains("cairn_rollouts{state=\"completed\"} 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains("cairn_rollouts{state=\"paused\"} 0"),
        "{metrics}"
    );
    assert_eq!(
        server
            .request("GET", "/v1/rollouts", Some(TOKEN_B), None)
            .json()["rollouts"],
        serde_json::json!([])
    );
}

#[test]
fn a_running_experiment_is_listed_to_its_tenant_only_and_stops_when_asked() {
    let _watchdog = cairn_tests::Watchdog::start(Duration::from_secs(300), "serve experiments");
    let server = Served::start_with("", ", chaos = \"chaos.toml\"", |dir| {
        std::fs::write(
            dir.join("chaos.toml"),
            format!(
                "[plugins.flaky]\npath = {:?}\n[plugins.no-deletes]\npath = {:?}\n\n\
                 [[checkpoint]]\nname = \"resilience\"\nenvironment = \"staging\"\n\
                 validators = [{{ plugin = \"no-deletes\" }}]\n\n\
                 [[checkpoint.experiment]]\nname = \"erp-flaky\"\ninjector = \"flaky\"\n\
                 upstream = \"builtin:echo\"\nlisten = \"127.0.0.1:0\"\nseed = 42\n\
                 duration-ms = 60000\nblast-radius = 50\n\
                 config = {{ percent = 34, statuses = [503], retry-after-s = 0, max-attempt = 2 }}\n\
                 workload = {{ rate = 20, concurrency = 2, requests = [{{ path = \"/erp/orders/1\" }}] }}\n",
                guests::FLAKY,
                guests::NO_DELETES
            ),
        )
        .unwrap();
    });
    let addr = server.addr;
    let started = Instant::now();
    let check = std::thread::spawn(move || {
        request(
            addr,
            "POST",
            "/v1/checks?plan=chaos",
            Some(TOKEN_A),
            Some(&bundle(false)),
        )
    });
    server.wait_for("the experiment listed", Duration::from_secs(30), |s| {
        s.request("GET", "/v1/experiments", Some(TOKEN_A), None)
            .json()["experiments"]
            .as_array()
            .is_some_and(|e| e.len() == 1)
    });
    let listed = server
        .request("GET", "/v1/experiments", Some(TOKEN_A), None)
        .json();
    assert_matches_openapi(&listed, "/v1/experiments", "get", 200);
    let experiment = &listed["experiments"][0];
    assert_eq!(
        (experiment["plan"].as_str(), experiment["by"].as_str()),
        (Some("chaos"), Some("alice"))
    );
    let id = experiment["id"].as_str().unwrap().to_owned();

    let other = server
        .request("GET", "/v1/experiments", Some(TOKEN_B), None)
        .json();
    assert_eq!(other["experiments"], serde_json::json!([]));
    let not_theirs = server.request(
        "POST",
        &format!("/v1/experiments/{id}/stop"),
        Some(TOKEN_B),
        None,
    );
    assert_eq!(
        (not_theirs.status, not_theirs.error_code().as_str()),
        (404, "unknown-experiment")
    );

    let stop = server.request(
        "POST",
        &format!("/v1/experiments/{id}/stop"),
        Some(TOKEN_A),
        None,
    );
    assert_eq!(stop.status, 202);
    assert_matches_openapi(&stop.json(), "/v1/experiments/{id}/stop", "post", 202);
    let answer = check.join().unwrap();
    assert_eq!(
        answer.status,
        200,
        "{}",
        String::from_utf8_lossy(&answer.body)
    );
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "the 60 s experiment stopped when asked ({:?})",
        started.elapsed()
    );
    assert_eq!(
        server
            .request("GET", "/v1/experiments", Some(TOKEN_A), None)
            .json()["experiments"],
        serde_json::json!([])
    );
}

#[test]
fn a_check_past_the_request_deadline_is_a_504_and_the_server_serves_on() {
    let _watchdog = cairn_tests::Watchdog::start(Duration::from_secs(300), "serve deadline");
    let server = Served::start("request-timeout-ms = 300");
    let started = Instant::now();
    let late = server.request(
        "POST",
        "/v1/checks?plan=slow",
        Some(TOKEN_A),
        Some(&bundle(false)),
    );
    assert_eq!((late.status, late.error_code().as_str()), (504, "deadline"));
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    let next = server.request(
        "POST",
        "/v1/checks?plan=gate",
        Some(TOKEN_A),
        Some(&bundle(false)),
    );
    assert_eq!(next.status, 200);
}

/// A server whose tenant A has plan `rollout`: examples/rollout with the
/// suite's guests, its canary asking security and the data steward before
/// it promotes.
fn serve_rollout_example() -> Served {
    serve_rollout_plan(true)
}

/// [`serve_rollout_example`], with or without the canary's approval.
fn serve_rollout_plan(approve_before: bool) -> Served {
    Served::start_with("", ", rollout = \"rollout/plan.toml\"", |dir| {
        copy_rollout_example(&dir.join("rollout"), |plan| {
            if approve_before {
                plan.replace(
                    "observe-ms = 300",
                    "observe-ms = 300\napprove-before = true",
                )
            } else {
                plan
            }
        });
    })
}

#[test]
fn a_degraded_canary_started_over_http_rolls_back_and_the_rollback_verifies() {
    let _watchdog = cairn_tests::Watchdog::start(Duration::from_secs(300), "serve rollback");
    let server = serve_rollout_plan(false);
    let change = bundle_of_dir(&repo().join("examples/changes/canary-degraded"));
    let started = server.request(
        "POST",
        "/v1/rollouts?plan=rollout&id=bad-1",
        Some(TOKEN_A),
        Some(&change),
    );
    assert_eq!(started.status, 202);
    server.wait_for("the rollout to end", Duration::from_secs(120), |s| {
        let status = s
            .request("GET", "/v1/rollouts/bad-1", Some(TOKEN_A), None)
            .json();
        status["driving"] == false
            && !matches!(
                status["phase"].as_str(),
                Some("starting" | "running" | "rolling-back")
            )
    });
    let status = server
        .request("GET", "/v1/rollouts/bad-1", Some(TOKEN_A), None)
        .json();
    assert_eq!(status["phase"], "rolled-back", "{status:#}");
    assert_eq!(status["rollback"]["verified"], true, "{status:#}");
}

#[test]
fn a_rollout_aborted_over_http_rolls_back_verifies_and_records_who() {
    let _watchdog = cairn_tests::Watchdog::start(Duration::from_secs(300), "serve abort");
    let server = serve_rollout_example();
    let change = bundle_of_dir(&repo().join("examples/changes/canary-healthy"));
    let started = server.request(
        "POST",
        "/v1/rollouts?plan=rollout&id=ab-1",
        Some(TOKEN_A),
        Some(&change),
    );
    assert_eq!(started.status, 202);
    server.wait_for("the pause before canary", Duration::from_secs(120), |s| {
        s.request("GET", "/v1/rollouts/ab-1", Some(TOKEN_A), None)
            .json()["phase"]
            == "paused"
    });
    let hidden = server.request(
        "POST",
        "/v1/rollouts/ab-1/abort",
        Some(TOKEN_B),
        Some(br#"{"reason":"x"}"#),
    );
    assert_eq!(
        (hidden.status, hidden.error_code().as_str()),
        (404, "unknown-rollout")
    );
    let abort = server.request(
        "POST",
        "/v1/rollouts/ab-1/abort",
        Some(TOKEN_A),
        Some(br#"{"reason":"customer escalation"}"#),
    );
    assert_eq!(
        abort.status,
        202,
        "{}",
        String::from_utf8_lossy(&abort.body)
    );
    assert_matches_openapi(&abort.json(), "/v1/rollouts/{id}/abort", "post", 202);
    server.wait_for("the rollback to end", Duration::from_secs(120), |s| {
        let status = s
            .request("GET", "/v1/rollouts/ab-1", Some(TOKEN_A), None)
            .json();
        status["driving"] == false && status["phase"] == "rolled-back"
    });
    let again = server.request(
        "POST",
        "/v1/rollouts/ab-1/abort",
        Some(TOKEN_A),
        Some(br#"{"reason":"twice"}"#),
    );
    assert_eq!(
        (again.status, again.error_code().as_str()),
        (409, "refused")
    );
    let journal = server
        .request("GET", "/v1/rollouts/ab-1/journal", Some(TOKEN_A), None)
        .json();
    assert_eq!(journal["intact"], true);
    let abort_record = journal["records"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["kind"] == "abort-requested")
        .cloned()
        .expect("the abort is journaled");
    assert_eq!(abort_record["body"]["by"], "alice");
    assert_eq!(abort_record["body"]["reason"], "customer escalation");
    assert!(
        journal["records"]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r["kind"] == "rollback-verified")
    );
}
