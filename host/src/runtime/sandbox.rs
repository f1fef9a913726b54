//! The WASI environment a plugin runs in: no ambient authority (no files,
//! env, args, sockets, name lookup or stdin; a frozen wall clock) and guest
//! output captured into a shared, capped buffer. An output call made after
//! the call's deadline ends the call as a timeout: a plugin writing in a
//! tight loop spends its time in these host calls, where the epoch check
//! that stops wasm code does not run.

use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use serde::Serialize;
use tokio::io::AsyncWrite;
use wasmtime_wasi::cli::{IsTerminal, StdoutStream};
use wasmtime_wasi::p2::{OutputStream, Pollable, StreamError, StreamResult};
use wasmtime_wasi::{HostWallClock, WasiCtx, WasiCtxBuilder};

use crate::runtime::call::DeadlineReached;

/// Largest write a guest is offered at once; it may write again right after.
const WRITE_PERMIT: usize = 64 << 10;

/// Which channel a piece of guest output came through.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum OutputChannel {
    Stdout,
    Stderr,
    Log,
}

/// Level of a structured log record from a plugin.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum LogLevel {
    Trace,
    Debug,
    Info,
    Warn,
    Error,
}

/// One structured log record the plugin emitted through `logging.log`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LogRecord {
    pub level: LogLevel,
    pub message: String,
}

/// Everything a plugin printed or logged during one call, within its cap.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct CapturedOutput {
    /// Bytes written to stdout (lossily decoded as UTF-8).
    pub stdout: String,
    /// Bytes written to stderr (lossily decoded as UTF-8).
    pub stderr: String,
    pub logs: Vec<LogRecord>,
    /// Bytes over the cap that were dropped, over all channels.
    pub dropped_bytes: u64,
}

#[derive(Debug, Default)]
struct CaptureState {
    stdout: Vec<u8>,
    stderr: Vec<u8>,
    logs: Vec<LogRecord>,
    kept_bytes: usize,
    dropped_bytes: u64,
}

/// A per-call output buffer shared by stdout, stderr and the log interface,
/// with one byte budget for all three. Writes past the budget succeed for
/// the guest (so `println!` never panics) but are dropped and counted.
/// Stream calls (write, flush, check-write) past the deadline trap with
/// [`DeadlineReached`], which the call reports as a timeout.
#[derive(Debug, Clone)]
pub(crate) struct OutputCapture {
    budget: usize,
    deadline: Option<Instant>,
    state: Arc<Mutex<CaptureState>>,
}

impl OutputCapture {
    /// A capture without a deadline.
    pub(crate) fn new(budget: usize) -> Self {
        Self {
            budget,
            deadline: None,
            state: Arc::default(),
        }
    }

    /// The same, with the call's deadline for its output streams.
    pub(crate) fn with_deadline(self, deadline: Instant) -> Self {
        Self {
            deadline: Some(deadline),
            ..self
        }
    }

    /// Fails once the call's deadline has passed.
    fn check_deadline(&self) -> Result<(), DeadlineReached> {
        match self.deadline {
            Some(deadline) if Instant::now() >= deadline => Err(DeadlineReached),
            _ => Ok(()),
        }
    }

    fn lock(&self) -> MutexGuard<'_, CaptureState> {
        // A poisoned lock only means another writer panicked mid-append; the
        // bytes already there are still valid output.
        self.state
            .lock()
            .unwrap_or_else(|poison| poison.into_inner())
    }

    /// Keeps as much of `bytes` as the budget allows; returns how many bytes
    /// were kept.
    fn write(&self, channel: OutputChannel, bytes: &[u8]) -> usize {
        let mut state = self.lock();
        let room = self.budget.saturating_sub(state.kept_bytes);
        let kept = bytes.len().min(room);
        state.kept_bytes += kept;
        state.dropped_bytes += (bytes.len() - kept) as u64;
        match channel {
            OutputChannel::Stdout => state.stdout.extend_from_slice(&bytes[..kept]),
            OutputChannel::Stderr => state.stderr.extend_from_slice(&bytes[..kept]),
            OutputChannel::Log => {}
        }
        kept
    }

    /// Records a log line, cut at a character boundary to fit the budget.
    /// Returns the record kept, or `None` if nothing fit.
    pub(crate) fn log(&self, level: LogLevel, message: &str) -> Option<LogRecord> {
        let mut state = self.lock();
        let room = self.budget.saturating_sub(state.kept_bytes);
        let mut end = room.min(message.len());
        while !message.is_char_boundary(end) {
            end -= 1;
        }
        state.kept_bytes += end;
        state.dropped_bytes += (message.len() - end) as u64;
        if end == 0 && !message.is_empty() {
            return None;
        }
        let record = LogRecord {
            level,
            message: message[..end].to_owned(),
        };
        state.logs.push(record.clone());
        Some(record)
    }

    /// The output captured so far.
    pub(crate) fn snapshot(&self) -> CapturedOutput {
        let state = self.lock();
        CapturedOutput {
            stdout: String::from_utf8_lossy(&state.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&state.stderr).into_owned(),
            logs: state.logs.clone(),
            dropped_bytes: state.dropped_bytes,
        }
    }

    fn stream(&self, channel: OutputChannel) -> CapturedStream {
        CapturedStream {
            capture: self.clone(),
            channel,
        }
    }
}

/// One WASI output stream (stdout or stderr) writing into an [`OutputCapture`].
struct CapturedStream {
    capture: OutputCapture,
    channel: OutputChannel,
}

impl IsTerminal for CapturedStream {
    fn is_terminal(&self) -> bool {
        false
    }
}

impl StdoutStream for CapturedStream {
    fn p2_stream(&self) -> Box<dyn OutputStream> {
        Box::new(self.capture.stream(self.channel))
    }

    fn async_stream(&self) -> Box<dyn AsyncWrite + Send + Sync> {
        Box::new(self.capture.stream(self.channel))
    }
}

#[wasmtime_wasi::async_trait]
impl Pollable for CapturedStream {
    async fn ready(&mut self) {}
}

impl CapturedStream {
    /// A trap that ends the call as a timeout once the deadline has passed.
    fn check_deadline(&self) -> StreamResult<()> {
        self.capture
            .check_deadline()
            .map_err(|reached| StreamError::Trap(wasmtime::Error::new(reached)))
    }
}

impl OutputStream for CapturedStream {
    fn write(&mut self, bytes: bytes::Bytes) -> StreamResult<()> {
        self.check_deadline()?;
        self.capture.write(self.channel, &bytes);
        Ok(())
    }

    fn flush(&mut self) -> StreamResult<()> {
        self.check_deadline()
    }

    fn check_write(&mut self) -> StreamResult<usize> {
        self.check_deadline()?;
        Ok(WRITE_PERMIT)
    }
}

impl AsyncWrite for CapturedStream {
    fn poll_write(
        self: Pin<&mut Self>,
        _: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        if let Err(reached) = self.capture.check_deadline() {
            return Poll::Ready(Err(io::Error::new(io::ErrorKind::TimedOut, reached)));
        }
        self.capture.write(self.channel, buf);
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

/// A wall clock stopped at the Unix epoch: plugins get no real date, so a
/// verdict cannot depend on when it was computed. Elapsed time (the
/// monotonic clock) stays real so that sleeps and timeouts behave.
struct FrozenWallClock;

impl HostWallClock for FrozenWallClock {
    fn resolution(&self) -> Duration {
        Duration::from_secs(1)
    }

    fn now(&self) -> Duration {
        Duration::ZERO
    }
}

/// Builds the WASI context of one call: nothing from the host is reachable.
///
/// `WasiCtxBuilder::new()` already starts with no args, env, preopened
/// directories or stdin; this also turns off TCP, UDP and name lookup (so
/// socket creation itself is refused) and freezes the wall clock.
pub(crate) fn wasi_context(output: &OutputCapture) -> WasiCtx {
    WasiCtxBuilder::new()
        .stdout(output.stream(OutputChannel::Stdout))
        .stderr(output.stream(OutputChannel::Stderr))
        .allow_tcp(false)
        .allow_udp(false)
        .allow_ip_name_lookup(false)
        .socket_addr_check(|_, _| Box::pin(async { false }))
        .wall_clock(FrozenWallClock)
        .build()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn output_past_the_budget_is_dropped_and_counted() {
        let capture = OutputCapture::new(10);
        assert_eq!(capture.write(OutputChannel::Stdout, b"0123456"), 7);
        assert_eq!(capture.write(OutputChannel::Stderr, b"abcdef"), 3);
        let out = capture.snapshot();
        assert_eq!(out.stdout, "0123456");
        assert_eq!(out.stderr, "abc");
        assert_eq!(out.dropped_bytes, 3);
    }

    #[test]
    fn log_lines_share_the_budget_and_cut_on_char_boundaries() {
        let capture = OutputCapture::new(5);
        capture.write(OutputChannel::Stdout, b"ab");
        let record = capture.log(LogLevel::Info, "éé").unwrap();
        // 3 bytes left: "é" (2 bytes) fits, the second "é" does not.
        assert_eq!(record.message, "é");
        assert_eq!(capture.log(LogLevel::Warn, "more").unwrap().message, "m");
        assert_eq!(capture.log(LogLevel::Warn, "gone"), None);
        let out = capture.snapshot();
        assert_eq!(out.logs.len(), 2);
        assert_eq!(out.dropped_bytes, 2 + 3 + 4);
    }

    #[test]
    fn stream_calls_past_the_deadline_trap_as_a_timeout() {
        let capture =
            OutputCapture::new(10).with_deadline(Instant::now() + Duration::from_secs(60));
        let mut stream = capture.stream(OutputChannel::Stderr);
        assert_eq!(stream.check_write().ok(), Some(WRITE_PERMIT));
        assert!(stream.write(bytes::Bytes::from_static(b"ok")).is_ok());

        let past = OutputCapture::new(10).with_deadline(Instant::now());
        let mut stream = past.stream(OutputChannel::Stderr);
        for result in [
            stream.check_write().map(drop),
            stream.write(bytes::Bytes::from_static(b"late")),
            stream.flush(),
        ] {
            match result {
                Err(StreamError::Trap(err)) => {
                    assert!(err.downcast_ref::<DeadlineReached>().is_some(), "{err}")
                }
                other => panic!("expected a deadline trap, got {other:?}"),
            }
        }
        assert_eq!(
            past.snapshot().stderr,
            "",
            "nothing is written past the deadline"
        );
    }
}
