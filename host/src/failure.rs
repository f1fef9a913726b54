//! Typed reasons why the sandbox stopped a plugin call, and the per-plugin
//! policy that turns them into an outcome.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::verdict::Outcome;

/// What stopped a plugin. These are the sandbox speaking, never the plugin's
/// own answer (a plugin's `err` is reported separately).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum FailureKind {
    /// Ran past its wall-clock deadline (computing, or blocked in a host call).
    Timeout,
    /// Tried to grow linear memory (or tables) past its limit.
    MemoryLimit,
    /// Used up its fuel budget.
    FuelExhausted,
    /// Recursed past the wasm stack limit.
    StackOverflow,
    /// Trapped: panic, `unreachable`, out-of-bounds access, ...
    Trap,
    /// Returned something that breaks the contract.
    InvalidOutput,
    /// Could not be loaded: bad wasm, wrong world, digest mismatch, missing imports.
    Load,
}

impl FailureKind {
    pub fn as_str(self) -> &'static str {
        match self {
            FailureKind::Timeout => "timeout",
            FailureKind::MemoryLimit => "memory-limit",
            FailureKind::FuelExhausted => "fuel-exhausted",
            FailureKind::StackOverflow => "stack-overflow",
            FailureKind::Trap => "trap",
            FailureKind::InvalidOutput => "invalid-output",
            FailureKind::Load => "load",
        }
    }
}

impl fmt::Display for FailureKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A stopped call: the kind, a one-line message and, for traps, the wasm
/// backtrace.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Failure {
    pub kind: FailureKind,
    pub message: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub backtrace: Option<String>,
}

impl Failure {
    pub fn new(kind: FailureKind, message: impl Into<String>) -> Self {
        Self {
            kind,
            message: message.into(),
            backtrace: None,
        }
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.kind, self.message)
    }
}

/// What a plugin's failure (a sandbox stop or its own `err`) counts as.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OnError {
    /// Fail closed: the plugin's check counts as failed (the default).
    #[default]
    Fail,
    /// Count as a warning.
    Warn,
    /// Count as a pass; the failure is still reported.
    Ignore,
}

impl OnError {
    /// The outcome a failed call stands for under this policy.
    pub fn outcome(self) -> Outcome {
        match self {
            OnError::Fail => Outcome::Fail,
            OnError::Warn => Outcome::Warn,
            OnError::Ignore => Outcome::Pass,
        }
    }
}
