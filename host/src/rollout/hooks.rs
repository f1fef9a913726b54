//! Promote, rollback and notify hooks: commands and HTTP webhooks run with
//! a timeout per attempt, bounded retries with exponential backoff, and one
//! idempotency key for every attempt of a call.
//!
//! A hook moves a change forward at a checkpoint (promote: set a canary
//! weight, flip a feature flag), undoes it (rollback) or tells people
//! (notify). [`run_hook`] runs one and returns a [`HookOutcome`]: whether it
//! succeeded, and every attempt with its result, duration and the escaped
//! tail of its output. It never panics on what a hook does or returns.
//!
//! **Commands** run in their own process group, with the payload (JSON and a
//! newline) on stdin and `CAIRN_ROLLOUT`, `CAIRN_CHECKPOINT`, `CAIRN_HOOK`
//! (`promote`, `rollback` or `notify`), `CAIRN_IDEMPOTENCY_KEY` and
//! `CAIRN_ATTEMPT` (1-based) in the environment, on top of cairn's own
//! environment and the spec's `env`. Exit 0 succeeds. At the timeout the
//! whole group is killed (SIGKILL) and output is no longer read, so a
//! grandchild that keeps the output pipe open cannot hang cairn. When the
//! command exits, whatever it left running in its group is killed too: a
//! hook is over when cairn records its end. (A process that must outlive
//! its hook has to start its own session, e.g. with `setsid`.)
//!
//! **Webhooks** are POSTed the payload as JSON with `Content-Type`,
//! `Idempotency-Key`, `User-Agent: cairn/<version>`, `Cairn-Hook`,
//! `Cairn-Attempt`, `Cairn-Rollout` and `Cairn-Checkpoint` (the last two
//! percent-encoded where a byte is not visible ASCII), plus the spec's
//! headers. A 2xx succeeds. Redirects are not followed.
//!
//! **Retries.** A command that exits non-zero, is killed by a signal or
//! times out, and a webhook that answers 5xx, 408 or 429, cannot be reached
//! or times out, is retried up to `retries` times ([`MAX_RETRIES`] at most),
//! waiting [`Backoff::delay`] in between (exponential, ×2, capped at
//! `backoff.max`; a webhook's `Retry-After: <seconds>` lengthens the wait,
//! up to `backoff.max`). A command that cannot be spawned, any other 4xx or
//! 3xx, and an invalid spec fail at once. Every attempt of one call carries
//! the same idempotency key, so the receiving end can tell a retry from a
//! new request.
//!
//! **Time.** [`run_hook`] ends within [`HookSpec::time_bound`]: attempts ×
//! (timeout + [`KILL_GRACE`]) + retries × `backoff.max`. Dropping its
//! future kills a running command's process group. [`kill_running_hooks`]
//! kills every command hook of the process, for a process about to exit on
//! a signal.
//!
//! Output (a command's stdout and stderr, interleaved as written; a
//! webhook's response body, read up to [`MAX_RESPONSE_BODY_BYTES`]) is
//! untrusted: only its last [`OUTPUT_TAIL_BYTES`] are kept, decoded lossily
//! and escaped with [`crate::escape::terminal_safe`].

use std::collections::BTreeMap;
use std::fmt;
use std::os::fd::OwnedFd;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue, Uri};
use http_body_util::{BodyExt, Full};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use serde::{Serialize, Serializer};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::unix::pipe;
use tokio::time::Instant;

use crate::escape;

/// The timeout of one attempt when the plan gives none.
pub const DEFAULT_HOOK_TIMEOUT: Duration = Duration::from_secs(30);

/// The longest timeout a hook may have: an hour (a slow migration step).
pub const MAX_HOOK_TIMEOUT: Duration = Duration::from_secs(3600);

/// Retries after a failed first attempt when the plan gives none (three
/// attempts in all).
pub const DEFAULT_RETRIES: u32 = 2;

/// The most retries a hook may have (eleven attempts in all).
pub const MAX_RETRIES: u32 = 10;

/// The longest wait between two attempts a backoff may have.
pub const MAX_BACKOFF: Duration = Duration::from_secs(300);

/// How much of an attempt's output (or response body) is kept: its last
/// 4 KiB, before escaping.
pub const OUTPUT_TAIL_BYTES: usize = 4 * 1024;

/// How much of a webhook's response body is read; the rest is not.
pub const MAX_RESPONSE_BODY_BYTES: usize = 64 * 1024;

/// How long cairn waits for a command it killed at its timeout to be gone
/// (a process in uninterruptible sleep may take longer; it is then reaped
/// in the background).
pub const KILL_GRACE: Duration = Duration::from_secs(2);

/// How long output is still read after a command exits, for what its
/// killed leftovers had already written (never past the timeout).
const DRAIN_GRACE: Duration = Duration::from_millis(250);

/// Environment variable names a hook's `env` may not set: cairn sets them.
pub const RESERVED_ENV: [&str; 5] = [
    "CAIRN_ROLLOUT",
    "CAIRN_CHECKPOINT",
    "CAIRN_HOOK",
    "CAIRN_IDEMPOTENCY_KEY",
    "CAIRN_ATTEMPT",
];

/// Header names a webhook's `headers` may not set: cairn sets them, or
/// they describe the request body or connection.
pub const RESERVED_HEADERS: [&str; 12] = [
    "content-type",
    "content-length",
    "content-encoding",
    "transfer-encoding",
    "connection",
    "host",
    "idempotency-key",
    "user-agent",
    "cairn-hook",
    "cairn-attempt",
    "cairn-rollout",
    "cairn-checkpoint",
];

/// Waits between attempts: `initial`, then doubled each retry, never more
/// than `max`. No jitter: one rollout calls one hook at a time.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub struct Backoff {
    #[serde(rename = "initial-ms", serialize_with = "millis_u64")]
    pub initial: Duration,
    #[serde(rename = "max-ms", serialize_with = "millis_u64")]
    pub max: Duration,
}

impl Default for Backoff {
    /// 200 ms, 400 ms, 800 ms, ... up to 5 s.
    fn default() -> Backoff {
        Backoff {
            initial: Duration::from_millis(200),
            max: Duration::from_secs(5),
        }
    }
}

impl Backoff {
    /// The wait before retry `retry` (1 before the second attempt):
    /// `initial × 2^(retry-1)`, capped at `max`.
    pub fn delay(&self, retry: u32) -> Duration {
        let doublings = retry.saturating_sub(1).min(31);
        self.initial
            .checked_mul(1u32 << doublings)
            .unwrap_or(self.max)
            .min(self.max)
    }

    /// The wait before retry `retry` after an answer with `Retry-After`:
    /// at least what the server asked, at least the backoff, at most `max`.
    pub fn delay_after(&self, retry: u32, retry_after: Option<Duration>) -> Duration {
        let delay = self.delay(retry);
        match retry_after {
            Some(asked) => asked.max(delay).min(self.max),
            None => delay,
        }
    }
}

/// How a hook runs: a command or a webhook.
///
/// Its serialization (for the journal) redacts the values of `env` entries
/// and headers whose names look secret (see [`looks_secret`]), and a URL's
/// user info and query. Secrets on a command line are not recognised: pass
/// them in `env`, a header, or a file.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(
    tag = "kind",
    rename_all = "kebab-case",
    rename_all_fields = "kebab-case"
)]
pub enum HookSpec {
    /// A program (no shell: use `["sh", "-c", "..."]` for one), run in
    /// `cwd`.
    Command {
        argv: Vec<String>,
        cwd: PathBuf,
        #[serde(serialize_with = "redacted_map")]
        env: BTreeMap<String, String>,
        /// Per attempt.
        #[serde(rename = "timeout-ms", serialize_with = "millis_u64")]
        timeout: Duration,
        retries: u32,
        backoff: Backoff,
    },
    /// A POST to an http or https URL.
    Webhook {
        #[serde(serialize_with = "redacted_uri")]
        url: Uri,
        #[serde(serialize_with = "redacted_map")]
        headers: BTreeMap<String, String>,
        /// Per attempt: connecting, sending, the answer and its body.
        #[serde(rename = "timeout-ms", serialize_with = "millis_u64")]
        timeout: Duration,
        retries: u32,
        backoff: Backoff,
        /// Extra CAs (PEM) to trust for https, besides the public ones.
        ca_file: Option<PathBuf>,
    },
}

/// Why a [`HookSpec`] cannot be run.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum HookSpecError {
    #[error("a command hook needs a program: `argv` is empty")]
    EmptyArgv,
    #[error("a command hook's argv or cwd holds a NUL byte")]
    NulInCommand,
    #[error("the hook timeout must be more than 0 and at most {} s", MAX_HOOK_TIMEOUT.as_secs())]
    Timeout,
    #[error("a hook may be retried at most {MAX_RETRIES} times, not {retries}")]
    TooManyRetries { retries: u32 },
    #[error(
        "the hook backoff must have 0 < initial <= max <= {} s",
        MAX_BACKOFF.as_secs()
    )]
    Backoff,
    #[error("the webhook URL `{url}` {reason}")]
    Url { url: String, reason: &'static str },
    #[error("the webhook header `{name}` {reason}")]
    Header { name: String, reason: &'static str },
    #[error("the hook environment variable `{name}` {reason}")]
    Env { name: String, reason: &'static str },
}

impl HookSpec {
    /// A command hook with the default timeout, retries and backoff and no
    /// extra environment.
    pub fn command(argv: Vec<String>, cwd: PathBuf) -> HookSpec {
        HookSpec::Command {
            argv,
            cwd,
            env: BTreeMap::new(),
            timeout: DEFAULT_HOOK_TIMEOUT,
            retries: DEFAULT_RETRIES,
            backoff: Backoff::default(),
        }
    }

    /// A webhook with the default timeout, retries and backoff, no extra
    /// headers and no CA file.
    pub fn webhook(url: Uri) -> HookSpec {
        HookSpec::Webhook {
            url,
            headers: BTreeMap::new(),
            timeout: DEFAULT_HOOK_TIMEOUT,
            retries: DEFAULT_RETRIES,
            backoff: Backoff::default(),
            ca_file: None,
        }
    }

    /// The timeout of one attempt.
    pub fn timeout(&self) -> Duration {
        match self {
            HookSpec::Command { timeout, .. } | HookSpec::Webhook { timeout, .. } => *timeout,
        }
    }

    /// Retries after a failed first attempt, as given.
    pub fn retries(&self) -> u32 {
        match self {
            HookSpec::Command { retries, .. } | HookSpec::Webhook { retries, .. } => *retries,
        }
    }

    pub fn backoff(&self) -> Backoff {
        match self {
            HookSpec::Command { backoff, .. } | HookSpec::Webhook { backoff, .. } => *backoff,
        }
    }

    /// The most attempts [`run_hook`] makes: retries (at most
    /// [`MAX_RETRIES`]) + 1.
    pub fn max_attempts(&self) -> u32 {
        self.retries().min(MAX_RETRIES) + 1
    }

    /// The longest [`run_hook`] can take with this spec: attempts ×
    /// (timeout + [`KILL_GRACE`]) + retries × `backoff.max`, plus a little
    /// scheduling slack per attempt.
    pub fn time_bound(&self) -> Duration {
        let attempts = self.max_attempts();
        let per_attempt = self.timeout() + KILL_GRACE + Duration::from_millis(100);
        per_attempt * attempts + self.backoff().max * (attempts - 1)
    }

    /// Checks what can be checked before running: a program, sane
    /// timeout, retries and backoff, an http(s) URL with a host, valid
    /// and unreserved header and environment names.
    pub fn validate(&self) -> Result<(), HookSpecError> {
        let timeout = self.timeout();
        if timeout.is_zero() || timeout > MAX_HOOK_TIMEOUT {
            return Err(HookSpecError::Timeout);
        }
        if self.retries() > MAX_RETRIES {
            return Err(HookSpecError::TooManyRetries {
                retries: self.retries(),
            });
        }
        let backoff = self.backoff();
        if backoff.initial.is_zero() || backoff.initial > backoff.max || backoff.max > MAX_BACKOFF {
            return Err(HookSpecError::Backoff);
        }
        match self {
            HookSpec::Command { argv, cwd, env, .. } => {
                if argv.is_empty() || argv[0].is_empty() {
                    return Err(HookSpecError::EmptyArgv);
                }
                if argv.iter().any(|arg| arg.contains('\0'))
                    || cwd.as_os_str().as_encoded_bytes().contains(&0)
                {
                    return Err(HookSpecError::NulInCommand);
                }
                for (name, value) in env {
                    let bad = |reason| HookSpecError::Env {
                        name: escape::single_line(name).into_owned(),
                        reason,
                    };
                    if name.is_empty() || name.contains('=') || name.contains('\0') {
                        return Err(bad("is not a valid name"));
                    }
                    if value.contains('\0') {
                        return Err(bad("holds a NUL byte"));
                    }
                    if RESERVED_ENV.contains(&name.as_str()) {
                        return Err(bad("is set by cairn"));
                    }
                }
            }
            HookSpec::Webhook { url, headers, .. } => {
                let bad = |reason| HookSpecError::Url {
                    url: escape::single_line(&redact_uri(url)).into_owned(),
                    reason,
                };
                match url.scheme_str() {
                    Some("http" | "https") => {}
                    _ => return Err(bad("must start with http:// or https://")),
                }
                if url.host().is_none_or(str::is_empty) {
                    return Err(bad("has no host"));
                }
                for (name, value) in headers {
                    let bad = |reason| HookSpecError::Header {
                        name: escape::single_line(name).into_owned(),
                        reason,
                    };
                    let parsed = HeaderName::from_bytes(name.as_bytes())
                        .map_err(|_| bad("is not a valid name"))?;
                    if RESERVED_HEADERS.contains(&parsed.as_str()) {
                        return Err(bad("is set by cairn"));
                    }
                    HeaderValue::from_str(value)
                        .map_err(|_| bad("has a value that is not a valid header value"))?;
                }
            }
        }
        Ok(())
    }
}

/// What a hook is run for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum HookAction {
    Promote,
    Rollback,
    Notify,
}

impl HookAction {
    /// `promote`, `rollback` or `notify`: `CAIRN_HOOK` and `Cairn-Hook`.
    pub fn as_str(self) -> &'static str {
        match self {
            HookAction::Promote => "promote",
            HookAction::Rollback => "rollback",
            HookAction::Notify => "notify",
        }
    }
}

impl fmt::Display for HookAction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One call of a hook: what it is for, and the key that stays the same
/// across its attempts (and across a resume that re-runs it).
#[derive(Clone, Copy, Debug, Serialize)]
#[serde(rename_all = "kebab-case")]
pub struct HookCall<'a> {
    pub rollout: &'a str,
    pub checkpoint: &'a str,
    pub action: HookAction,
    pub idempotency_key: &'a str,
    pub payload: &'a serde_json::Value,
}

/// How one attempt ended.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", content = "value", rename_all = "kebab-case")]
pub enum AttemptResult {
    /// Exit 0 (`"exit 0"`), or a 2xx answer (`"HTTP 204"`).
    Succeeded { detail: String },
    /// The command exited with this non-zero code.
    Exited(i32),
    /// The command was killed by this signal (not by cairn).
    Signalled(i32),
    /// The attempt ran past its timeout; a command's group was killed.
    TimedOut,
    /// The command could not be started (no such program, a bad `cwd`).
    /// Not retried.
    SpawnFailed(String),
    /// The webhook answered with this non-2xx status.
    Http(u16),
    /// The webhook could not be reached, or the exchange broke before an
    /// answer (refused, reset, DNS, TLS).
    Connect(String),
    /// The hook cannot be run as given (an invalid spec, an unreadable CA
    /// file, an idempotency key that is not a valid header value). Not
    /// retried.
    Invalid(String),
}

impl AttemptResult {
    pub fn is_success(&self) -> bool {
        matches!(self, AttemptResult::Succeeded { .. })
    }

    /// Whether a failure may pass on a later attempt: a command that
    /// exited non-zero, was signalled or timed out; a webhook that
    /// answered 5xx, 408 or 429, could not be reached or timed out.
    pub fn is_retryable(&self) -> bool {
        match self {
            AttemptResult::Exited(_)
            | AttemptResult::Signalled(_)
            | AttemptResult::TimedOut
            | AttemptResult::Connect(_) => true,
            AttemptResult::Http(status) => *status >= 500 || matches!(status, 408 | 429),
            AttemptResult::Succeeded { .. }
            | AttemptResult::SpawnFailed(_)
            | AttemptResult::Invalid(_) => false,
        }
    }
}

impl fmt::Display for AttemptResult {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AttemptResult::Succeeded { detail } => f.write_str(detail),
            AttemptResult::Exited(code) => write!(f, "exit {code}"),
            AttemptResult::Signalled(signal) => write!(f, "killed by signal {signal}"),
            AttemptResult::TimedOut => f.write_str("timed out"),
            AttemptResult::SpawnFailed(reason) => write!(f, "cannot run: {reason}"),
            AttemptResult::Http(status) => write!(f, "HTTP {status}"),
            AttemptResult::Connect(reason) => write!(f, "connection failed: {reason}"),
            AttemptResult::Invalid(reason) => write!(f, "invalid hook: {reason}"),
        }
    }
}

/// One attempt of a hook.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub struct AttemptOutcome {
    /// 1-based, as in `CAIRN_ATTEMPT` / `Cairn-Attempt`.
    pub attempt: u32,
    pub result: AttemptResult,
    #[serde(rename = "duration-ms", serialize_with = "millis_f64")]
    pub duration: Duration,
    /// The last [`OUTPUT_TAIL_BYTES`] of stdout+stderr or of the response
    /// body, escaped ([`crate::escape::terminal_safe`]).
    pub output_tail: String,
    /// How many bytes of output (or body, up to
    /// [`MAX_RESPONSE_BODY_BYTES`]) were read, of which the tail is the end.
    pub output_bytes: u64,
}

/// How a hook call ended: ok when an attempt succeeded.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub struct HookOutcome {
    pub ok: bool,
    pub attempts: Vec<AttemptOutcome>,
    #[serde(rename = "duration-ms", serialize_with = "millis_f64")]
    pub duration: Duration,
}

impl HookOutcome {
    /// The last attempt (there is always one).
    pub fn last(&self) -> Option<&AttemptOutcome> {
        self.attempts.last()
    }
}

/// Runs a hook call: attempts until one succeeds, a failure is not
/// retryable, or the retries are spent. Ends within
/// [`HookSpec::time_bound`]; dropping the future kills a running command.
pub async fn run_hook(spec: &HookSpec, call: &HookCall<'_>) -> HookOutcome {
    let started = Instant::now();
    let mut attempts = Vec::new();
    let runner = match Runner::new(spec, call) {
        Ok(runner) => runner,
        Err(reason) => {
            attempts.push(AttemptOutcome {
                attempt: 1,
                result: AttemptResult::Invalid(escape::single_line(&reason).into_owned()),
                duration: started.elapsed(),
                output_tail: String::new(),
                output_bytes: 0,
            });
            return HookOutcome {
                ok: false,
                attempts,
                duration: started.elapsed(),
            };
        }
    };
    let max_attempts = spec.max_attempts();
    let backoff = spec.backoff();
    let mut ok = false;
    for attempt in 1..=max_attempts {
        let attempt_started = Instant::now();
        let (result, tail, retry_after) = runner.attempt(spec.timeout(), attempt).await;
        let retry = result.is_retryable();
        ok = result.is_success();
        tracing::debug!(
            hook = call.action.as_str(),
            checkpoint = %escape::single_line(call.checkpoint),
            attempt,
            result = %escape::single_line(&result.to_string()),
            "hook attempt"
        );
        attempts.push(AttemptOutcome {
            attempt,
            result,
            duration: attempt_started.elapsed(),
            output_bytes: tail.total,
            output_tail: tail.into_text(),
        });
        if ok || !retry || attempt == max_attempts {
            break;
        }
        tokio::time::sleep(backoff.delay_after(attempt, retry_after)).await;
    }
    HookOutcome {
        ok,
        attempts,
        duration: started.elapsed(),
    }
}

/// Process groups of the command hooks this process is running.
fn running_hooks() -> std::sync::MutexGuard<'static, Vec<i32>> {
    static RUNNING: std::sync::Mutex<Vec<i32>> = std::sync::Mutex::new(Vec::new());
    RUNNING
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Kills (SIGKILL) the process group of every command hook this process is
/// running, with everything the hooks started in them. For a process that
/// is about to exit on a signal: a hook left running would go on changing
/// the deployment with nobody recording it. The interrupted hook's end is
/// not recorded, so a resume re-runs it with the same idempotency key.
pub fn kill_running_hooks() {
    for &group in running_hooks().iter() {
        kill_group(group);
    }
}

fn kill_group(group: i32) {
    if group > 0 {
        // SAFETY: kill(2) with a negative pid signals that process group;
        // it has no memory-safety preconditions.
        unsafe {
            libc::kill(-group, libc::SIGKILL);
        }
    }
}

/// A hook, ready for attempts.
enum Runner<'a> {
    Command {
        argv: &'a [String],
        cwd: &'a Path,
        env: &'a BTreeMap<String, String>,
        call: &'a HookCall<'a>,
        stdin: Vec<u8>,
    },
    Webhook {
        // Boxed: the client is much larger than the command variant.
        client: Box<Client<HttpsConnector<HttpConnector>, Full<Bytes>>>,
        url: &'a Uri,
        headers: HeaderMap,
        body: Bytes,
    },
}

impl<'a> Runner<'a> {
    fn new(spec: &'a HookSpec, call: &'a HookCall<'a>) -> Result<Runner<'a>, String> {
        spec.validate().map_err(|err| err.to_string())?;
        let payload = serde_json::to_vec(call.payload)
            .map_err(|err| format!("the payload cannot be serialized: {err}"))?;
        match spec {
            HookSpec::Command { argv, cwd, env, .. } => {
                let mut stdin = payload;
                stdin.push(b'\n');
                Ok(Runner::Command {
                    argv,
                    cwd,
                    env,
                    call,
                    stdin,
                })
            }
            HookSpec::Webhook {
                url,
                headers: extra,
                timeout,
                ca_file,
                ..
            } => {
                let tls = crate::proxy::tls::client_config(ca_file.as_deref())
                    .map_err(|err| err.to_string())?;
                let connector = crate::proxy::upstream::connector(tls, *timeout);
                let client = Client::builder(TokioExecutor::new()).build(connector);
                Ok(Runner::Webhook {
                    client: Box::new(client),
                    url,
                    headers: webhook_headers(extra, call)?,
                    body: Bytes::from(payload),
                })
            }
        }
    }

    /// One attempt: its result, its output, and a webhook's `Retry-After`.
    async fn attempt(
        &self,
        timeout: Duration,
        attempt: u32,
    ) -> (AttemptResult, Tail, Option<Duration>) {
        let deadline = Instant::now() + timeout;
        match self {
            Runner::Command {
                argv,
                cwd,
                env,
                call,
                stdin,
            } => {
                let (result, tail) =
                    command_attempt(argv, cwd, env, call, stdin, attempt, deadline).await;
                (result, tail, None)
            }
            Runner::Webhook {
                client,
                url,
                headers,
                body,
            } => webhook_attempt(client, url, headers, body, attempt, deadline).await,
        }
    }
}

/// The last bytes of a stream, and how long it was.
struct Tail {
    bytes: Vec<u8>,
    total: u64,
}

impl Tail {
    fn new() -> Tail {
        Tail {
            bytes: Vec::new(),
            total: 0,
        }
    }

    fn push(&mut self, data: &[u8]) {
        self.total = self.total.saturating_add(data.len() as u64);
        let data = &data[data.len().saturating_sub(OUTPUT_TAIL_BYTES)..];
        self.bytes.extend_from_slice(data);
        if self.bytes.len() > 2 * OUTPUT_TAIL_BYTES {
            let excess = self.bytes.len() - OUTPUT_TAIL_BYTES;
            self.bytes.drain(..excess);
        }
    }

    /// The last [`OUTPUT_TAIL_BYTES`], decoded lossily (a character cut at
    /// the start dropped) and escaped.
    fn into_text(self) -> String {
        let mut kept = &self.bytes[self.bytes.len().saturating_sub(OUTPUT_TAIL_BYTES)..];
        if (kept.len() as u64) < self.total {
            // Cut mid-character: skip up to three UTF-8 continuation bytes.
            let continuation = kept
                .iter()
                .take(3)
                .take_while(|&&b| b & 0xC0 == 0x80)
                .count();
            kept = &kept[continuation..];
        }
        escape::terminal_safe(&String::from_utf8_lossy(kept)).into_owned()
    }
}

/// A spawned command's process group, registered for
/// [`kill_running_hooks`]. Dropped before its process was reaped (the
/// attempt's future was dropped), it kills the group and reaps in the
/// background.
struct Group {
    pid: i32,
    child: Option<Child>,
}

impl Group {
    fn register(child: Child) -> Group {
        // A pid always fits in an i32 (pid_t); 0 would make kill_group a no-op.
        let pid = i32::try_from(child.id()).unwrap_or(0);
        running_hooks().push(pid);
        Group {
            pid,
            child: Some(child),
        }
    }

    fn kill(&self) {
        kill_group(self.pid);
    }

    /// Whether the group's leader has exited, without reaping it (its
    /// zombie keeps the group id from being reused until
    /// [`Group::reap`]).
    fn has_exited(&self) -> bool {
        // SAFETY: waitid writes a siginfo_t into `info`, which is a valid,
        // zeroed one; WNOWAIT leaves the child waitable.
        let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
        let rc = unsafe {
            libc::waitid(
                libc::P_PID,
                self.pid as libc::id_t,
                &mut info,
                libc::WEXITED | libc::WNOHANG | libc::WNOWAIT,
            )
        };
        // An error (ECHILD: reaped by someone else) counts as exited; with
        // WNOHANG a child that has not exited leaves si_signo 0.
        rc != 0 || info.si_signo == libc::SIGCHLD
    }

    /// Resolves when the leader has exited (polled: a few ms of latency).
    async fn exited(&self) {
        let mut interval = Duration::from_millis(1);
        while !self.has_exited() {
            tokio::time::sleep(interval).await;
            interval = (interval * 2).min(Duration::from_millis(20));
        }
    }

    /// Kills what is left of the group, unregisters it and reaps the
    /// leader (which must have exited).
    fn reap(mut self) -> std::io::Result<ExitStatus> {
        self.kill();
        self.unregister();
        match self.child.take() {
            Some(mut child) => child.wait(),
            None => Err(std::io::Error::other("already reaped")),
        }
    }

    fn unregister(&self) {
        let mut running = running_hooks();
        if let Some(index) = running.iter().position(|&group| group == self.pid) {
            running.swap_remove(index);
        }
    }
}

impl Drop for Group {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            self.kill();
            self.unregister();
            if !matches!(child.try_wait(), Ok(Some(_))) {
                // Killed, about to be gone: reap it off the async threads.
                let _ = std::thread::Builder::new()
                    .name("cairn-hook-reaper".to_owned())
                    .spawn(move || child.wait());
            }
        }
    }
}

/// Starts a command attempt: the child in its own process group, with our
/// ends of its stdin and of its (shared) stdout/stderr pipe.
fn spawn_command(
    argv: &[String],
    cwd: &Path,
    env: &BTreeMap<String, String>,
    call: &HookCall<'_>,
    attempt: u32,
) -> Result<(Child, pipe::Sender, pipe::Receiver), String> {
    let pipe_error = |err: std::io::Error| format!("cannot create a pipe: {err}");
    let (program, args) = argv.split_first().ok_or("argv is empty")?;
    let (stdin_read, stdin_write) = std::io::pipe().map_err(pipe_error)?;
    let (output_read, output_write) = std::io::pipe().map_err(pipe_error)?;
    let error_write = output_write.try_clone().map_err(pipe_error)?;
    // Our ends, non-blocking, before the spawn: nothing can fail after it.
    let stdin = pipe::Sender::from_owned_fd(OwnedFd::from(stdin_write)).map_err(pipe_error)?;
    let output = pipe::Receiver::from_owned_fd(OwnedFd::from(output_read)).map_err(pipe_error)?;
    let mut command = Command::new(program);
    command
        .args(args)
        .current_dir(cwd)
        .envs(env)
        .env("CAIRN_ROLLOUT", call.rollout)
        .env("CAIRN_CHECKPOINT", call.checkpoint)
        .env("CAIRN_HOOK", call.action.as_str())
        .env("CAIRN_IDEMPOTENCY_KEY", call.idempotency_key)
        .env("CAIRN_ATTEMPT", attempt.to_string())
        .stdin(Stdio::from(stdin_read))
        .stdout(Stdio::from(output_write))
        .stderr(Stdio::from(error_write))
        // Its own process group, so a timeout or kill_running_hooks stops
        // the hook and everything it started.
        .process_group(0);
    let child = command.spawn().map_err(|err| {
        format!(
            "{} (in {}): {err}",
            escape::single_line(program),
            escape::single_line(&cwd.display().to_string())
        )
    })?;
    // `command` holds the child's pipe ends; dropping it closes ours, so
    // the output reaches EOF when the hook's processes are gone.
    drop(command);
    Ok((child, stdin, output))
}

async fn command_attempt(
    argv: &[String],
    cwd: &Path,
    env: &BTreeMap<String, String>,
    call: &HookCall<'_>,
    payload: &[u8],
    attempt: u32,
    deadline: Instant,
) -> (AttemptResult, Tail) {
    let mut tail = Tail::new();
    let (child, mut stdin, mut output) = match spawn_command(argv, cwd, env, call, attempt) {
        Ok(spawned) => spawned,
        Err(reason) => return (AttemptResult::SpawnFailed(reason), tail),
    };
    let group = Group::register(child);
    let timed_out = {
        let exited = group.exited();
        // The payload is written while output is read, so a hook that
        // writes before it reads its stdin cannot deadlock with us; a hook
        // that never reads it just leaves the write pending until it exits.
        let write_payload = async {
            let _ = stdin.write_all(payload).await;
            drop(stdin);
        };
        let stop = tokio::time::sleep_until(deadline);
        tokio::pin!(exited, write_payload, stop);
        let mut buffer = vec![0u8; 8192];
        let (mut has_exited, mut eof, mut written) = (false, false, false);
        loop {
            if has_exited && eof {
                break false;
            }
            tokio::select! {
                biased;
                () = &mut exited, if !has_exited => {
                    has_exited = true;
                    // Its leftovers go with it; what they already wrote is
                    // still read, for a short while.
                    group.kill();
                    let drain_until = (Instant::now() + DRAIN_GRACE).min(deadline);
                    stop.as_mut().reset(drain_until);
                }
                read = output.read(&mut buffer), if !eof => match read {
                    Ok(0) | Err(_) => eof = true,
                    Ok(n) => tail.push(&buffer[..n]),
                },
                () = &mut write_payload, if !written => written = true,
                () = &mut stop => break !has_exited,
            }
        }
    };
    drop(output);
    if timed_out {
        group.kill();
        // Give the killed leader a moment to go, then reap it; if it does
        // not, the group's Drop reaps it in the background.
        if tokio::time::timeout(KILL_GRACE, group.exited())
            .await
            .is_ok()
        {
            let _ = group.reap();
        }
        return (AttemptResult::TimedOut, tail);
    }
    let result = match group.reap() {
        Ok(status) if status.success() => AttemptResult::Succeeded {
            detail: "exit 0".to_owned(),
        },
        Ok(status) => match (status.code(), status.signal()) {
            (Some(code), _) => AttemptResult::Exited(code),
            (None, Some(signal)) => AttemptResult::Signalled(signal),
            (None, None) => AttemptResult::Exited(-1),
        },
        Err(err) => AttemptResult::SpawnFailed(format!("lost track of the process: {err}")),
    };
    (result, tail)
}

/// The headers every attempt of a webhook call sends (`Cairn-Attempt`
/// aside).
fn webhook_headers(
    extra: &BTreeMap<String, String>,
    call: &HookCall<'_>,
) -> Result<HeaderMap, String> {
    let mut headers = HeaderMap::new();
    for (name, value) in extra {
        // Checked by validate; a failure here is a bug, reported, not a panic.
        let name = HeaderName::from_bytes(name.as_bytes())
            .map_err(|_| format!("bad header name {}", escape::single_line(name)))?;
        let value =
            HeaderValue::from_str(value).map_err(|_| format!("bad value for header {name}"))?;
        headers.append(name, value);
    }
    let idempotency_key = HeaderValue::from_str(call.idempotency_key).map_err(|_| {
        format!(
            "the idempotency key {} is not a valid header value",
            escape::single_line(call.idempotency_key)
        )
    })?;
    headers.insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    headers.insert("idempotency-key", idempotency_key);
    headers.insert(
        http::header::USER_AGENT,
        HeaderValue::from_static(concat!("cairn/", env!("CARGO_PKG_VERSION"))),
    );
    headers.insert("cairn-hook", HeaderValue::from_static(call.action.as_str()));
    for (name, value) in [
        ("cairn-rollout", call.rollout),
        ("cairn-checkpoint", call.checkpoint),
    ] {
        let encoded = percent_encode(value);
        let value = HeaderValue::from_str(&encoded)
            .map_err(|_| format!("cannot encode {name} as a header"))?;
        headers.insert(name, value);
    }
    Ok(headers)
}

/// `text` with every byte that is not visible ASCII, and `%`, as `%XX`.
fn percent_encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for &byte in text.as_bytes() {
        if byte.is_ascii_graphic() && byte != b'%' {
            out.push(char::from(byte));
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

async fn webhook_attempt(
    client: &Client<HttpsConnector<HttpConnector>, Full<Bytes>>,
    url: &Uri,
    headers: &HeaderMap,
    body: &Bytes,
    attempt: u32,
    deadline: Instant,
) -> (AttemptResult, Tail, Option<Duration>) {
    let mut tail = Tail::new();
    let mut request = http::Request::new(Full::new(body.clone()));
    *request.method_mut() = http::Method::POST;
    *request.uri_mut() = url.clone();
    *request.headers_mut() = headers.clone();
    request
        .headers_mut()
        .insert("cairn-attempt", HeaderValue::from(attempt));
    let response = match tokio::time::timeout_at(deadline, client.request(request)).await {
        Err(_) => return (AttemptResult::TimedOut, tail, None),
        Ok(Err(err)) => {
            let reason = escape::single_line(&error_chain(&err)).into_owned();
            return (AttemptResult::Connect(reason), tail, None);
        }
        Ok(Ok(response)) => response,
    };
    let status = response.status();
    let retry_after = retry_after(response.headers());
    let mut body = response.into_body();
    // The status decides; the body is read for the record, up to the cap
    // and the deadline, whichever comes first.
    let mut read = 0usize;
    while read < MAX_RESPONSE_BODY_BYTES {
        match tokio::time::timeout_at(deadline, body.frame()).await {
            Ok(Some(Ok(frame))) => {
                if let Ok(data) = frame.into_data() {
                    let take = data.len().min(MAX_RESPONSE_BODY_BYTES - read);
                    tail.push(&data[..take]);
                    read += take;
                }
            }
            Err(_) | Ok(None) | Ok(Some(Err(_))) => break,
        }
    }
    let result = if status.is_success() {
        AttemptResult::Succeeded {
            detail: format!("HTTP {}", status.as_u16()),
        }
    } else {
        AttemptResult::Http(status.as_u16())
    };
    (result, tail, retry_after)
}

/// `Retry-After` in seconds (an HTTP date is not honoured: the backoff
/// applies).
fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let value = headers.get(http::header::RETRY_AFTER)?.to_str().ok()?;
    value.trim().parse::<u64>().ok().map(Duration::from_secs)
}

fn error_chain(err: &dyn std::error::Error) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        let message = cause.to_string();
        if !text.ends_with(&message) {
            text.push_str(": ");
            text.push_str(&message);
        }
        source = cause.source();
    }
    text
}

/// Whether an env or header name looks like it carries a secret: it
/// mentions auth, token, secret, password, key, cookie, credential,
/// signature or session (case-insensitive).
pub fn looks_secret(name: &str) -> bool {
    let name = name.to_ascii_lowercase();
    [
        "auth",
        "token",
        "secret",
        "passw",
        "key",
        "cookie",
        "credential",
        "signature",
        "session",
    ]
    .iter()
    .any(|word| name.contains(word))
}

fn redacted_map<S: Serializer>(
    map: &BTreeMap<String, String>,
    serializer: S,
) -> Result<S::Ok, S::Error> {
    serializer.collect_map(map.iter().map(|(name, value)| {
        let value = if looks_secret(name) {
            "<redacted>"
        } else {
            value.as_str()
        };
        (name, value)
    }))
}

/// A URL without its user info and with its query replaced by
/// `<redacted>`: both may carry credentials.
fn redact_uri(uri: &Uri) -> String {
    let mut text = String::new();
    if let Some(scheme) = uri.scheme_str() {
        text.push_str(scheme);
        text.push_str("://");
    }
    if let Some(authority) = uri.authority() {
        let authority = authority.as_str();
        text.push_str(
            authority
                .rsplit_once('@')
                .map_or(authority, |(_, host)| host),
        );
    }
    text.push_str(uri.path());
    if uri.query().is_some() {
        text.push_str("?<redacted>");
    }
    text
}

fn redacted_uri<S: Serializer>(uri: &Uri, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.serialize_str(&redact_uri(uri))
}

fn millis_u64<S: Serializer>(duration: &Duration, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.serialize_u64(u64::try_from(duration.as_millis()).unwrap_or(u64::MAX))
}

fn millis_f64<S: Serializer>(duration: &Duration, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.serialize_f64((duration.as_secs_f64() * 1e6).round() / 1e3)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn call<'a>(payload: &'a serde_json::Value) -> HookCall<'a> {
        HookCall {
            rollout: "r-1",
            checkpoint: "canary-5",
            action: HookAction::Promote,
            idempotency_key: "r-1/canary-5/promote",
            payload,
        }
    }

    fn sh(script: &str) -> HookSpec {
        HookSpec::Command {
            argv: vec!["sh".into(), "-c".into(), script.into()],
            cwd: std::env::temp_dir(),
            env: BTreeMap::new(),
            timeout: Duration::from_secs(10),
            retries: 2,
            backoff: Backoff {
                initial: Duration::from_millis(10),
                max: Duration::from_millis(40),
            },
        }
    }

    #[test]
    fn backoff_doubles_from_initial_and_is_capped_at_max() {
        let backoff = Backoff::default();
        let delays: Vec<u128> = (1..=7).map(|n| backoff.delay(n).as_millis()).collect();
        assert_eq!(delays, [200, 400, 800, 1600, 3200, 5000, 5000]);
        // No overflow for absurd retry numbers.
        assert_eq!(backoff.delay(u32::MAX), Duration::from_secs(5));
    }

    #[test]
    fn retry_after_lengthens_the_wait_but_never_past_max() {
        let backoff = Backoff::default();
        assert_eq!(
            backoff.delay_after(1, Some(Duration::from_secs(2))),
            Duration::from_secs(2)
        );
        assert_eq!(
            backoff.delay_after(1, Some(Duration::from_secs(3600))),
            Duration::from_secs(5)
        );
        // A shorter Retry-After does not shorten the backoff.
        assert_eq!(
            backoff.delay_after(3, Some(Duration::ZERO)),
            Duration::from_millis(800)
        );
        let mut headers = HeaderMap::new();
        headers.insert("retry-after", HeaderValue::from_static(" 7 "));
        assert_eq!(retry_after(&headers), Some(Duration::from_secs(7)));
        headers.insert(
            "retry-after",
            HeaderValue::from_static("Wed, 21 Oct 2015 07:28:00 GMT"),
        );
        assert_eq!(retry_after(&headers), None);
    }

    #[test]
    fn which_failures_are_retried() {
        for retried in [
            AttemptResult::Exited(1),
            AttemptResult::Signalled(9),
            AttemptResult::TimedOut,
            AttemptResult::Connect("refused".into()),
            AttemptResult::Http(500),
            AttemptResult::Http(503),
            AttemptResult::Http(408),
            AttemptResult::Http(429),
        ] {
            assert!(retried.is_retryable(), "{retried}");
        }
        for final_ in [
            AttemptResult::Http(400),
            AttemptResult::Http(404),
            AttemptResult::Http(301),
            AttemptResult::SpawnFailed("no such file".into()),
            AttemptResult::Invalid("bad".into()),
            AttemptResult::Succeeded {
                detail: "exit 0".into(),
            },
        ] {
            assert!(!final_.is_retryable(), "{final_}");
        }
    }

    #[test]
    fn invalid_specs_are_named() {
        let mut spec = sh("true");
        assert_eq!(spec.validate(), Ok(()));
        if let HookSpec::Command { argv, .. } = &mut spec {
            argv.clear();
        }
        assert_eq!(spec.validate(), Err(HookSpecError::EmptyArgv));

        let mut spec = sh("true");
        if let HookSpec::Command { retries, .. } = &mut spec {
            *retries = MAX_RETRIES + 1;
        }
        assert_eq!(
            spec.validate(),
            Err(HookSpecError::TooManyRetries { retries: 11 })
        );

        let mut spec = sh("true");
        if let HookSpec::Command { env, .. } = &mut spec {
            env.insert("CAIRN_ATTEMPT".into(), "9".into());
        }
        assert!(matches!(spec.validate(), Err(HookSpecError::Env { .. })));

        let mut spec = sh("true");
        if let HookSpec::Command { timeout, .. } = &mut spec {
            *timeout = Duration::ZERO;
        }
        assert_eq!(spec.validate(), Err(HookSpecError::Timeout));

        let ftp = HookSpec::webhook("ftp://example.com/x".parse().unwrap());
        assert!(matches!(ftp.validate(), Err(HookSpecError::Url { .. })));
        let relative = HookSpec::webhook("/hook".parse().unwrap());
        assert!(matches!(
            relative.validate(),
            Err(HookSpecError::Url { .. })
        ));

        let mut spec = HookSpec::webhook("https://example.com/hook".parse().unwrap());
        assert_eq!(spec.validate(), Ok(()));
        if let HookSpec::Webhook { headers, .. } = &mut spec {
            headers.insert("Idempotency-Key".into(), "mine".into());
        }
        let err = spec.validate().unwrap_err();
        assert!(err.to_string().contains("is set by cairn"), "{err}");
        if let HookSpec::Webhook { headers, .. } = &mut spec {
            headers.clear();
            headers.insert("X-Note".into(), "line\nbreak".into());
        }
        assert!(matches!(spec.validate(), Err(HookSpecError::Header { .. })));
    }

    #[test]
    fn the_time_bound_is_attempts_times_timeout_and_grace_plus_backoff() {
        let spec = sh("true");
        // 3 attempts × (10 s + 2 s + 0.1 s) + 2 × 40 ms.
        assert_eq!(spec.time_bound(), Duration::from_millis(3 * 12_100 + 80));
        let mut many = sh("true");
        if let HookSpec::Command { retries, .. } = &mut many {
            *retries = 1000;
        }
        assert_eq!(many.max_attempts(), MAX_RETRIES + 1);
    }

    #[test]
    fn the_tail_keeps_the_last_4_kib_and_escapes_control_characters() {
        let mut tail = Tail::new();
        for _ in 0..100 {
            tail.push(&[b'x'; 1000]);
        }
        tail.push("é\u{1b}[2J\r\n\u{7}end".as_bytes());
        let total = tail.total;
        let text = tail.into_text();
        assert_eq!(total, 100_000 + "é\u{1b}[2J\r\n\u{7}end".len() as u64);
        assert!(text.ends_with("é\\u{1b}[2J\\r\n\\u{7}end"), "{text:?}");
        assert!(!text.chars().any(|c| c.is_control() && c != '\n'));
        // A multi-byte character cut by the 4 KiB boundary is dropped, not
        // turned into U+FFFD.
        let mut cut = Tail::new();
        cut.push(&[b'a'; 10]);
        let mut bytes = "é".repeat(OUTPUT_TAIL_BYTES / 2 + 1).into_bytes();
        bytes.push(b'!');
        cut.push(&bytes);
        let text = cut.into_text();
        assert!(
            !text.contains('\u{FFFD}') && text.ends_with("é!"),
            "{text:?}"
        );
    }

    #[test]
    fn rollout_and_checkpoint_headers_are_percent_encoded() {
        assert_eq!(percent_encode("canary-5"), "canary-5");
        assert_eq!(
            percent_encode("canary 5%\r\nX: y"),
            "canary%205%25%0D%0AX:%20y"
        );
        let payload = serde_json::json!({});
        let mut call = call(&payload);
        call.checkpoint = "stage é";
        let headers = webhook_headers(&BTreeMap::new(), &call).unwrap();
        assert_eq!(headers["cairn-checkpoint"], "stage%20%C3%A9");
        assert_eq!(headers["idempotency-key"], "r-1/canary-5/promote");
        assert_eq!(headers["cairn-hook"], "promote");
        call.idempotency_key = "bad\nkey";
        assert!(webhook_headers(&BTreeMap::new(), &call).is_err());
    }

    #[test]
    fn specs_serialize_in_kebab_case_with_secrets_redacted() {
        let mut headers = BTreeMap::new();
        headers.insert("Authorization".to_owned(), "Bearer hunter2".to_owned());
        headers.insert("X-Team".to_owned(), "payments".to_owned());
        let spec = HookSpec::Webhook {
            url: "https://user:pw@hooks.example.com/flag?token=abc"
                .parse()
                .unwrap(),
            headers,
            timeout: Duration::from_secs(3),
            retries: 1,
            backoff: Backoff::default(),
            ca_file: None,
        };
        let json = serde_json::to_value(&spec).unwrap();
        assert_eq!(
            json,
            serde_json::json!({
                "kind": "webhook",
                "url": "https://hooks.example.com/flag?<redacted>",
                "headers": {"Authorization": "<redacted>", "X-Team": "payments"},
                "timeout-ms": 3000,
                "retries": 1,
                "backoff": {"initial-ms": 200, "max-ms": 5000},
                "ca-file": null,
            })
        );
        let text = json.to_string();
        assert!(!text.contains("hunter2") && !text.contains("pw@") && !text.contains("abc"));

        let outcome = HookOutcome {
            ok: false,
            attempts: vec![AttemptOutcome {
                attempt: 1,
                result: AttemptResult::Exited(3),
                duration: Duration::from_micros(1500),
                output_tail: "boom".into(),
                output_bytes: 4,
            }],
            duration: Duration::from_millis(2),
        };
        assert_eq!(
            serde_json::to_value(&outcome).unwrap(),
            serde_json::json!({
                "ok": false,
                "attempts": [{
                    "attempt": 1,
                    "result": {"kind": "exited", "value": 3},
                    "duration-ms": 1.5,
                    "output-tail": "boom",
                    "output-bytes": 4,
                }],
                "duration-ms": 2.0,
            })
        );
        assert_eq!(
            serde_json::to_value(AttemptResult::TimedOut).unwrap(),
            serde_json::json!({"kind": "timed-out"})
        );
    }

    #[tokio::test]
    async fn a_command_that_exits_0_succeeds_at_once_with_its_output() {
        let payload = serde_json::json!({"weight": 5});
        let outcome = run_hook(
            &sh("cat; echo \"to stderr $CAIRN_HOOK\" >&2"),
            &call(&payload),
        )
        .await;
        assert!(outcome.ok, "{outcome:?}");
        assert_eq!(outcome.attempts.len(), 1);
        let attempt = &outcome.attempts[0];
        assert_eq!(
            attempt.result,
            AttemptResult::Succeeded {
                detail: "exit 0".into()
            }
        );
        assert_eq!(attempt.output_tail, "{\"weight\":5}\nto stderr promote\n");
    }

    #[tokio::test]
    async fn a_program_that_cannot_be_spawned_is_not_retried() {
        let payload = serde_json::json!(null);
        let spec = HookSpec::Command {
            argv: vec!["/nonexistent/cairn-hook".into()],
            cwd: std::env::temp_dir(),
            env: BTreeMap::new(),
            timeout: Duration::from_secs(5),
            retries: 3,
            backoff: Backoff::default(),
        };
        let outcome = run_hook(&spec, &call(&payload)).await;
        assert!(!outcome.ok);
        assert_eq!(outcome.attempts.len(), 1);
        assert!(
            matches!(&outcome.attempts[0].result, AttemptResult::SpawnFailed(reason) if reason.contains("/nonexistent/cairn-hook")),
            "{outcome:?}"
        );
    }

    #[tokio::test]
    async fn an_invalid_spec_is_one_invalid_attempt() {
        let payload = serde_json::json!(null);
        let spec = HookSpec::webhook("ftp://example.com/".parse().unwrap());
        let outcome = run_hook(&spec, &call(&payload)).await;
        assert!(!outcome.ok);
        assert!(
            matches!(
                &outcome.attempts[..],
                [AttemptOutcome {
                    result: AttemptResult::Invalid(_),
                    ..
                }]
            ),
            "{outcome:?}"
        );
    }

    #[tokio::test]
    async fn a_signalled_command_is_reported_with_its_signal_and_retried() {
        let payload = serde_json::json!(null);
        let outcome = run_hook(&sh("kill -TERM $$"), &call(&payload)).await;
        assert!(!outcome.ok);
        assert_eq!(outcome.attempts.len(), 3);
        assert!(
            outcome
                .attempts
                .iter()
                .all(|a| a.result == AttemptResult::Signalled(libc::SIGTERM)),
            "{outcome:?}"
        );
    }

    #[tokio::test]
    async fn dropping_the_future_kills_the_command_group() {
        let payload = serde_json::json!(null);
        let dir = tempfile::tempdir().unwrap();
        let pid_file = dir.path().join("pid");
        let spec = sh(&format!("echo $$ > {}; exec sleep 600", pid_file.display()));
        let call = call(&payload);
        let run = run_hook(&spec, &call);
        let cut = tokio::time::timeout(Duration::from_millis(500), run).await;
        assert!(cut.is_err(), "the hook should still be running");
        let pid: i32 = std::fs::read_to_string(&pid_file)
            .unwrap()
            .trim()
            .parse()
            .unwrap();
        assert!(!running_hooks().contains(&pid));
        // Reaped in the background within a moment.
        let gone = (0..200).any(|_| {
            std::thread::sleep(Duration::from_millis(10));
            !Path::new(&format!("/proc/{pid}")).exists()
        });
        assert!(gone, "the hook's process {pid} is still there");
    }
}
