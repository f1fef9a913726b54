//! Calling fault injectors: the host's model of a request and of the fault
//! a plugin picks for it, and the sandboxed `decide` call. The fault proxy
//! builds on this; a decision outside the contract is `invalid-output`.

use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;

use wasmtime::Store;

use crate::runtime::bindings::{Pre, World};
use crate::runtime::call::{CallReport, CallState};
use crate::runtime::failure::{Failure, FailureKind};
use crate::runtime::limits::Limits;
use crate::runtime::plugin::Plugin;

/// What the proxy tells a fault injector about one request.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct RequestInfo {
    pub method: String,
    /// Path and query.
    pub path: String,
    pub headers: Vec<(String, String)>,
    /// 0-based number of the request within the experiment.
    pub sequence: u64,
    /// Time since the experiment started.
    pub elapsed: Duration,
    /// Faults the proxy is applying right now.
    pub active_faults: u32,
}

/// The fault a plugin chose for a request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case", tag = "fault")]
pub enum Fault {
    None,
    Delay { duration: Duration },
    Error { status: u16, body: Option<String> },
    Reset,
    Hang { duration: Duration },
    Throttle { bytes_per_second: u32 },
}

/// HTTP statuses a plugin may answer with (non-standard ones included).
const STATUS_RANGE: std::ops::RangeInclusive<u16> = 100..=999;

impl Fault {
    /// Checks a decision against the contract, whatever version it came
    /// from.
    fn checked(self) -> Result<Fault, Failure> {
        match self {
            Fault::Error { status, .. } if !STATUS_RANGE.contains(&status) => Err(Failure::new(
                FailureKind::InvalidOutput,
                format!("error status {status} is outside 100..=999"),
            )),
            Fault::Throttle {
                bytes_per_second: 0,
            } => Err(Failure::new(
                FailureKind::InvalidOutput,
                "throttle to 0 bytes per second never completes; use hang",
            )),
            fault => Ok(fault),
        }
    }
}

impl Plugin {
    /// Asks a fault injector which fault to apply to `request`.
    pub async fn decide(
        &self,
        request: &RequestInfo,
        config: &str,
        limits: &Limits,
    ) -> CallReport<Fault> {
        if self.world() != World::FaultInjector {
            return crate::runtime::call::wrong_world(self, World::FaultInjector);
        }
        self.call(
            Arc::default(),
            limits,
            async |pre: &Pre, store: &mut Store<CallState>| {
                pre.decide(store, request, config)
                    .await
                    .unwrap_or_else(|| Err(wasmtime::format_err!("not a fault injector")))
            },
            Fault::checked,
        )
        .await
    }
}
