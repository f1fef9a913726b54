//! One sandboxed plugin call: a fresh store per call with its limits (memory,
//! fuel, wall-clock deadline that also cuts blocking host calls), the call
//! itself, and the classification of whatever stopped it into a typed
//! failure. Every call ends in a [`CallReport`]; none panics the host.

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::Serialize;
use wasmtime::component::ResourceTable;
use wasmtime::{Store, Trap, UpdateDeadline, WasmBacktrace};
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

use crate::runtime::admission::{Admission, Admitted, InstanceFootprint};
use crate::runtime::bindings::{Pre, World};
use crate::runtime::change::{Change, Checkpoint};
use crate::runtime::failure::{Failure, FailureKind};
use crate::runtime::limits::{Limits, MemoryLimitExceeded, StoreLimiter, TableLimitExceeded};
use crate::runtime::plugin::{Plugin, PluginInfo};
use crate::runtime::sandbox::{self, CapturedOutput, LogLevel, OutputCapture};
use crate::runtime::verdict::{MAX_REFUSAL_BYTES, Verdict, truncated};

/// Fuel given to a call without a budget on a runtime that meters fuel.
const UNLIMITED_FUEL: u64 = u64::MAX;

/// How a call ended: the plugin's answer, its own refusal (`err`), or a stop
/// by the sandbox. The last two are kept apart all the way to the report.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "kebab-case", tag = "status", content = "detail")]
pub enum CallOutcome<T> {
    /// The plugin returned an answer that honours the contract.
    Completed(T),
    /// The plugin returned `err` (for example: its config is invalid).
    Refused(String),
    /// The sandbox stopped the plugin or rejected its answer.
    Stopped(Failure),
}

/// The record of one plugin call.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CallReport<T> {
    pub plugin: String,
    pub outcome: CallOutcome<T>,
    /// Wall-clock time of the call, instantiation included.
    #[serde(serialize_with = "serialize_micros", rename = "elapsed_us")]
    pub elapsed: Duration,
    /// Fuel consumed, when the runtime meters fuel.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fuel_used: Option<u64>,
    /// Highest total linear memory the plugin reached.
    pub peak_memory_bytes: u64,
    pub output: CapturedOutput,
}

fn serialize_micros<S: serde::Serializer>(value: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_u64(u64::try_from(value.as_micros()).unwrap_or(u64::MAX))
}

impl<T> CallReport<T> {
    /// The failure kind, if the sandbox stopped the call.
    pub fn failure_kind(&self) -> Option<FailureKind> {
        match &self.outcome {
            CallOutcome::Stopped(failure) => Some(failure.kind),
            _ => None,
        }
    }

    /// A report for a call that never ran (the plugin did not load).
    pub fn not_run(plugin: impl Into<String>, failure: Failure) -> Self {
        Self {
            plugin: plugin.into(),
            outcome: CallOutcome::Stopped(failure),
            elapsed: Duration::ZERO,
            fuel_used: None,
            peak_memory_bytes: 0,
            output: CapturedOutput::default(),
        }
    }
}

/// Raised from the epoch callback, or by an output call, when a call passes
/// its deadline.
#[derive(Debug, thiserror::Error)]
#[error("deadline reached")]
pub(crate) struct DeadlineReached;

/// Store data of one call.
pub(crate) struct CallState {
    wasi: WasiCtx,
    table: ResourceTable,
    limiter: StoreLimiter,
    output: OutputCapture,
    change: Arc<Change>,
    plugin: Arc<str>,
}

impl WasiView for CallState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl CallState {
    pub(crate) fn change(&self) -> &Change {
        &self.change
    }

    /// A `logging.log` call: kept within the output budget and forwarded to
    /// `tracing` tagged with the plugin's name, as one line with its control
    /// characters escaped (a plugin cannot forge log lines or reach the
    /// terminal through its log).
    pub(crate) fn log(&mut self, level: LogLevel, message: &str) {
        if let Some(record) = self.output.log(level, message) {
            let plugin = &*self.plugin;
            let message = crate::escape::single_line(&record.message);
            match level {
                LogLevel::Trace => tracing::trace!(target: "cairn::plugin", plugin, "{message}"),
                LogLevel::Debug => tracing::debug!(target: "cairn::plugin", plugin, "{message}"),
                LogLevel::Info => tracing::info!(target: "cairn::plugin", plugin, "{message}"),
                LogLevel::Warn => tracing::warn!(target: "cairn::plugin", plugin, "{message}"),
                LogLevel::Error => tracing::error!(target: "cairn::plugin", plugin, "{message}"),
            }
        }
    }
}

/// A store set up for one call, and the deadline it runs under.
pub(crate) struct CallStore {
    // Declared before `_admitted`, so the store (and with it the instance)
    // is dropped before its pool capacity is released.
    pub(crate) store: Store<CallState>,
    _admitted: Admitted,
    started: Instant,
    pub(crate) deadline: Instant,
    limits: Limits,
    fuel_metering: bool,
}

impl CallStore {
    /// Waits for pool capacity for one instance of `plugin`, then sets up
    /// its store. The deadline starts once the call is admitted.
    pub(crate) async fn admit(
        plugin: &Plugin,
        change: Arc<Change>,
        limits: &Limits,
    ) -> Result<CallStore, Failure> {
        Self::admit_on_engine(
            &plugin.inner.engine,
            &plugin.inner.admission,
            &plugin.inner.footprint,
            plugin.inner.fuel_metering,
            plugin.name(),
            change,
            limits,
        )
        .await
    }

    /// The same for a plugin that is not loaded yet (its initialization
    /// run).
    pub(crate) async fn admit_on_engine(
        engine: &wasmtime::Engine,
        admission: &Admission,
        footprint: &InstanceFootprint,
        fuel_metering: bool,
        plugin: &str,
        change: Arc<Change>,
        limits: &Limits,
    ) -> Result<CallStore, Failure> {
        if limits.fuel.is_some() && !fuel_metering {
            return Err(Failure::new(
                FailureKind::Load,
                "a fuel budget is set but the runtime was built without fuel metering",
            ));
        }
        let admitted = admission.admit(footprint).await?;
        let started = Instant::now();
        let deadline = started + limits.timeout;
        let output = OutputCapture::new(limits.output_bytes).with_deadline(deadline);
        let state = CallState {
            wasi: sandbox::wasi_context(&output),
            table: ResourceTable::new(),
            limiter: StoreLimiter::new(limits.memory_bytes),
            output,
            change,
            plugin: Arc::from(plugin),
        };
        let mut store = Store::new(engine, state);
        store.limiter(|state| &mut state.limiter);
        if fuel_metering {
            store
                .set_fuel(limits.fuel.unwrap_or(UNLIMITED_FUEL))
                .map_err(|err| Failure::new(FailureKind::Load, crate::wasm_error_chain(&err)))?;
        }
        // On every epoch tick: stop if the wall clock is past the deadline,
        // otherwise yield to the executor (so concurrent calls and the
        // timeout below get to run) and check again on the next tick.
        store.set_epoch_deadline(1);
        store.epoch_deadline_callback(move |_| {
            if Instant::now() >= deadline {
                Err(wasmtime::Error::new(DeadlineReached))
            } else {
                Ok(UpdateDeadline::Yield(1))
            }
        });
        Ok(CallStore {
            store,
            _admitted: admitted,
            started,
            deadline,
            limits: *limits,
            fuel_metering,
        })
    }

    /// Turns the raw result of a call into its report.
    pub(crate) fn finish<T, U>(
        self,
        result: Result<wasmtime::Result<Result<T, String>>, tokio::time::error::Elapsed>,
        check: impl FnOnce(T) -> Result<U, Failure>,
    ) -> CallReport<U> {
        let elapsed = self.started.elapsed();
        let state = self.store.data();
        let output = state.output.snapshot();
        let outcome = match result {
            Ok(Ok(Ok(answer))) => match check(answer) {
                Ok(answer) => CallOutcome::Completed(answer),
                Err(failure) => CallOutcome::Stopped(failure),
            },
            Ok(Ok(Err(refusal))) => CallOutcome::Refused(truncated(refusal, MAX_REFUSAL_BYTES)),
            Ok(Err(err)) => CallOutcome::Stopped(classify(&err, &self.limits, &output)),
            Err(_elapsed) => CallOutcome::Stopped(timeout_failure(&self.limits)),
        };
        let fuel_used = if self.fuel_metering {
            let budget = self.limits.fuel.unwrap_or(UNLIMITED_FUEL);
            self.store.get_fuel().ok().map(|left| budget - left)
        } else {
            None
        };
        let report = CallReport {
            plugin: state.plugin.to_string(),
            outcome,
            elapsed,
            fuel_used,
            peak_memory_bytes: state.limiter.peak_memory(),
            output,
        };
        forward_output(&report);
        report
    }
}

fn timeout_failure(limits: &Limits) -> Failure {
    Failure::new(
        FailureKind::Timeout,
        format!("ran past its deadline of {} ms", limits.timeout.as_millis()),
    )
}

/// Maps whatever ended a call with an error to a typed failure.
fn classify(err: &wasmtime::Error, limits: &Limits, output: &CapturedOutput) -> Failure {
    if err.downcast_ref::<DeadlineReached>().is_some() {
        return timeout_failure(limits);
    }
    if let Some(exceeded) = err.downcast_ref::<MemoryLimitExceeded>() {
        return Failure::new(FailureKind::MemoryLimit, exceeded.to_string());
    }
    if let Some(exceeded) = err.downcast_ref::<TableLimitExceeded>() {
        return Failure::new(FailureKind::MemoryLimit, exceeded.to_string());
    }
    // Admission keeps calls within the pool; should the pool still run out,
    // that is the host's condition, not the plugin's.
    if let Some(full) = err.downcast_ref::<wasmtime::PoolConcurrencyLimitError>() {
        return Failure::new(
            FailureKind::Overloaded,
            format!("the host was overloaded, not the plugin: {full}"),
        );
    }
    let backtrace = err.downcast_ref::<WasmBacktrace>().map(|bt| bt.to_string());
    let (kind, message) = match err.downcast_ref::<Trap>() {
        Some(Trap::OutOfFuel) => (
            FailureKind::FuelExhausted,
            format!(
                "used up its fuel budget of {}",
                limits.fuel.unwrap_or(UNLIMITED_FUEL)
            ),
        ),
        Some(Trap::StackOverflow) => (
            FailureKind::StackOverflow,
            "overflowed the wasm call stack".to_owned(),
        ),
        Some(Trap::Interrupt) => return timeout_failure(limits),
        Some(trap) => (
            FailureKind::Trap,
            with_guest_stderr(trap.to_string(), output),
        ),
        None => (
            FailureKind::Trap,
            with_guest_stderr(crate::wasm_error_chain(err), output),
        ),
    };
    Failure {
        kind,
        message,
        backtrace,
    }
}

/// Appends the last lines the guest wrote to stderr (a Rust panic message,
/// a Python traceback's last line) to a trap message, leaving out what the
/// language runtimes add around them (see `runtime_boilerplate`).
fn with_guest_stderr(message: String, output: &CapturedOutput) -> String {
    let lines: Vec<&str> = output.stderr.lines().collect();
    let tail: Vec<&str> = lines
        .iter()
        .enumerate()
        .rev()
        .filter(|(i, line)| !line.trim().is_empty() && !runtime_boilerplate(line, lines.get(i + 1)))
        .map(|(_, line)| *line)
        .take(2)
        .collect();
    if tail.is_empty() {
        return message;
    }
    let tail: Vec<&str> = tail.into_iter().rev().collect();
    format!("{message}; guest stderr: {}", tail.join(" | "))
}

/// Lines a guest's language runtime writes on its way down that say nothing
/// about the plugin: Rust's advice to set `RUST_BACKTRACE` (a plugin gets no
/// environment, so it can never be followed; componentize-py's runtime is
/// Rust and gives it for every uncaught Python exception), componentize-py's
/// panic for an uncaught exception (the traceback above it says which), and
/// StarlingMonkey's note that it aborts.
fn runtime_boilerplate(line: &str, next: Option<&&str>) -> bool {
    const PYTHON_PANIC: &str = "Python function threw an unexpected exception";
    let line = line.trim();
    line.starts_with("note: run with `RUST_BACKTRACE=1`")
        || line == PYTHON_PANIC
        || line == "Redirecting call to abort() to mozalloc_abort"
        || (line.starts_with("thread '")
            && line.contains("panicked at")
            && next.is_some_and(|next| next.trim() == PYTHON_PANIC))
}

/// Sends the guest's stdout/stderr to `tracing`, tagged with the plugin,
/// one event per line, control characters escaped.
fn forward_output<T>(report: &CallReport<T>) {
    let plugin = report.plugin.as_str();
    for line in report.output.stdout.lines() {
        let line = crate::escape::single_line(line);
        tracing::info!(target: "cairn::plugin", plugin, stream = "stdout", "{line}");
    }
    for line in report.output.stderr.lines() {
        let line = crate::escape::single_line(line);
        tracing::warn!(target: "cairn::plugin", plugin, stream = "stderr", "{line}");
    }
    if report.output.dropped_bytes > 0 {
        tracing::warn!(
            target: "cairn::plugin",
            plugin,
            dropped_bytes = report.output.dropped_bytes,
            "output over the cap was dropped"
        );
    }
}

pub(crate) fn wrong_world<T>(plugin: &Plugin, wanted: World) -> CallReport<T> {
    CallReport::not_run(
        plugin.name(),
        Failure::new(
            FailureKind::Load,
            format!(
                "plugin {} is a {}, not a {wanted}",
                plugin.name(),
                plugin.world()
            ),
        ),
    )
}

impl Plugin {
    /// One sandboxed call: waits for pool capacity (`overloaded` past the
    /// runtime's admission wait), sets up a fresh store under `limits`,
    /// runs `call` on the pre-linked plugin within the deadline, and turns
    /// what came back (checked by `check`) into the report.
    pub(crate) async fn call<T, U>(
        &self,
        change: Arc<Change>,
        limits: &Limits,
        call: impl AsyncFnOnce(&Pre, &mut Store<CallState>) -> wasmtime::Result<Result<T, String>>,
        check: impl FnOnce(T) -> Result<U, Failure>,
    ) -> CallReport<U> {
        let mut store = match CallStore::admit(self, change, limits).await {
            Ok(store) => store,
            Err(failure) => return CallReport::not_run(self.name(), failure),
        };
        let deadline = store.deadline;
        let result =
            tokio::time::timeout_at(deadline.into(), call(&self.inner.pre, &mut store.store)).await;
        store.finish(result, check)
    }

    /// Calls the plugin's `info()` in the sandbox.
    pub async fn info(&self, limits: &Limits) -> CallReport<PluginInfo> {
        self.call(
            Arc::default(),
            limits,
            async |pre: &Pre, store: &mut Store<CallState>| pre.info(store).await.map(Ok),
            Ok,
        )
        .await
    }

    /// Runs the validator on `change` at checkpoint `at` with `config` (JSON
    /// text) under `limits`. The verdict is checked against the contract
    /// (`invalid-output` if broken) and its findings capped.
    pub async fn validate(
        &self,
        change: Arc<Change>,
        at: &Checkpoint,
        config: &str,
        limits: &Limits,
    ) -> CallReport<Verdict> {
        if self.world() != World::Validator {
            return wrong_world(self, World::Validator);
        }
        let max_findings = limits.max_findings;
        self.call(
            Arc::clone(&change),
            limits,
            async |pre: &Pre, store: &mut Store<CallState>| {
                pre.validate(store, at, config)
                    .await
                    .unwrap_or_else(|| Err(wasmtime::format_err!("not a validator")))
            },
            |verdict: Verdict| {
                verdict
                    .checked(&change.paths(), max_findings)
                    .map_err(|violation| {
                        Failure::new(FailureKind::InvalidOutput, violation.to_string())
                    })
            },
        )
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stderr(text: &str) -> CapturedOutput {
        CapturedOutput {
            stderr: text.to_owned(),
            ..CapturedOutput::default()
        }
    }

    #[test]
    fn a_python_exception_past_the_sdk_shows_its_traceback_not_rust_advice() {
        // What componentize-py's runtime writes for an uncaught exception.
        let output = stderr(
            "Traceback (most recent call last):\n  File \"/0/app.py\", line 12, in validate\n\
             KeyError: 'steps'\n\nthread '<unnamed>' (1) panicked at runtime/src/lib.rs:1293:29:\n\
             Python function threw an unexpected exception\n\
             note: run with `RUST_BACKTRACE=1` environment variable to display a backtrace\n",
        );
        assert_eq!(
            with_guest_stderr("trap".into(), &output),
            "trap; guest stderr:   File \"/0/app.py\", line 12, in validate | KeyError: 'steps'"
        );
    }

    #[test]
    fn a_javascript_abort_note_and_a_rust_panic_advice_are_left_out() {
        let js = stderr(
            "\"TypeError: x is undefined (at app.js line 5, in info)\"\nRedirecting call to abort() to mozalloc_abort\n\n",
        );
        assert_eq!(
            with_guest_stderr("trap".into(), &js),
            "trap; guest stderr: \"TypeError: x is undefined (at app.js line 5, in info)\""
        );
        let rust = stderr(
            "thread '<unnamed>' panicked at src/lib.rs:9:5:\nboom\n\
             note: run with `RUST_BACKTRACE=1` environment variable to display a backtrace\n",
        );
        assert_eq!(
            with_guest_stderr("trap".into(), &rust),
            "trap; guest stderr: thread '<unnamed>' panicked at src/lib.rs:9:5: | boom"
        );
    }
}
