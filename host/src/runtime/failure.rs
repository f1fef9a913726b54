//! Typed reasons why a plugin call did not give an answer: the sandbox
//! stopped it, or the host could not run it (`overloaded`). What they count
//! as at a gate is the caller's policy (`check::gate`).

use std::fmt;

use serde::{Deserialize, Serialize};

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
    /// The host had no capacity for the call within its admission wait. A
    /// host condition: it says nothing about the plugin.
    Overloaded,
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
            FailureKind::Overloaded => "overloaded",
        }
    }

    /// Whether the host, not the plugin, is the reason (never counted
    /// against the plugin through `on-error`).
    pub fn is_host_condition(self) -> bool {
        matches!(self, FailureKind::Overloaded)
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

impl std::error::Error for Failure {}
