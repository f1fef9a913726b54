//! Structured logging into the host's log, tagged with the plugin's name and
//! counted against the plugin's output cap (past it, lines are dropped).
//!
//! The same functions serve every world: validators log through contract
//! 0.1.0's `logging` interface, fault injectors through 0.2.0's. The export
//! macros pick the interface before any of the plugin's code runs, and a
//! component only imports the one its export macro picked. Before that (in
//! an initializer that logs, say), lines go to stderr, which the host
//! captures too.

use std::sync::OnceLock;

/// Severity of a log line.
#[doc(hidden)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Level {
    Trace,
    Debug,
    Info,
    Warn,
    Error,
}

impl Level {
    fn as_str(self) -> &'static str {
        match self {
            Level::Trace => "trace",
            Level::Debug => "debug",
            Level::Info => "info",
            Level::Warn => "warn",
            Level::Error => "error",
        }
    }
}

/// Where log lines go: the `logging` import of the plugin's world.
static SINK: OnceLock<fn(Level, &str)> = OnceLock::new();

/// Sends the log lines of this instance to `sink`. Called by the export
/// macros; the first call wins (a plugin has one world).
#[doc(hidden)]
pub fn __set_sink(sink: fn(Level, &str)) {
    let _ = SINK.set(sink);
}

/// Contract 0.1.0's `logging` (validators).
#[doc(hidden)]
pub fn __v0_1_sink(level: Level, message: &str) {
    use crate::__bindings::validator::cairn::plugin::logging::{Level as Wit, log};
    let level = match level {
        Level::Trace => Wit::Trace,
        Level::Debug => Wit::Debug,
        Level::Info => Wit::Info,
        Level::Warn => Wit::Warn,
        Level::Error => Wit::Error,
    };
    log(level, message);
}

/// Contract 0.2.0's `logging` (fault injectors).
#[doc(hidden)]
pub fn __v0_2_sink(level: Level, message: &str) {
    use crate::__bindings::fault_injector::cairn::plugin::logging::{Level as Wit, log};
    let level = match level {
        Level::Trace => Wit::Trace,
        Level::Debug => Wit::Debug,
        Level::Info => Wit::Info,
        Level::Warn => Wit::Warn,
        Level::Error => Wit::Error,
    };
    log(level, message);
}

fn emit(level: Level, message: &str) {
    match SINK.get() {
        Some(sink) => sink(level, message),
        None => eprintln!("[{}] {message}", level.as_str()),
    }
}

/// Logs `message` at level `trace`.
pub fn trace(message: &str) {
    emit(Level::Trace, message);
}

/// Logs `message` at level `debug`.
pub fn debug(message: &str) {
    emit(Level::Debug, message);
}

/// Logs `message` at level `info`.
pub fn info(message: &str) {
    emit(Level::Info, message);
}

/// Logs `message` at level `warn`.
pub fn warn(message: &str) {
    emit(Level::Warn, message);
}

/// Logs `message` at level `error`.
pub fn error(message: &str) {
    emit(Level::Error, message);
}
