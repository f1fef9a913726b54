//! Calling fault injectors: the host's model of a request and of the fault
//! a plugin picks for it, and the sandboxed `decide` call. The fault proxy
//! builds on this; a decision outside the contract is `invalid-output`.

use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;

use crate::bindings::latest;
use crate::call::{CallReport, CallStore};
use crate::failure::{Failure, FailureKind};
use crate::limits::Limits;
use crate::plugin::{Plugin, Pre, World};

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
    fn from_wit(fault: latest::Fault) -> Result<Fault, Failure> {
        Ok(match fault {
            latest::Fault::None => Fault::None,
            latest::Fault::Delay(ms) => Fault::Delay {
                duration: Duration::from_millis(ms.into()),
            },
            latest::Fault::Error(response) => {
                if !STATUS_RANGE.contains(&response.status) {
                    return Err(Failure::new(
                        FailureKind::InvalidOutput,
                        format!("error status {} is outside 100..=999", response.status),
                    ));
                }
                Fault::Error {
                    status: response.status,
                    body: response.body,
                }
            }
            latest::Fault::Reset => Fault::Reset,
            latest::Fault::Hang(ms) => Fault::Hang {
                duration: Duration::from_millis(ms.into()),
            },
            latest::Fault::Throttle(0) => {
                return Err(Failure::new(
                    FailureKind::InvalidOutput,
                    "throttle to 0 bytes per second never completes; use hang",
                ));
            }
            latest::Fault::Throttle(rate) => Fault::Throttle {
                bytes_per_second: rate,
            },
        })
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
        let Pre::FaultInjector(pre) = &self.inner.pre else {
            return crate::call::wrong_world(self, World::FaultInjector);
        };
        let mut call = match CallStore::new(self, Arc::default(), limits) {
            Ok(call) => call,
            Err(failure) => return CallReport::not_run(self.name(), failure),
        };
        let wit_request = latest::RequestInfo {
            method: request.method.clone(),
            path: request.path.clone(),
            headers: request.headers.clone(),
            sequence: request.sequence,
            elapsed_ms: u64::try_from(request.elapsed.as_millis()).unwrap_or(u64::MAX),
            active_faults: request.active_faults,
        };
        let store = &mut call.store;
        let result = tokio::time::timeout_at(call.deadline.into(), async {
            let instance = pre.instantiate_async(&mut *store).await?;
            instance
                .cairn_plugin_fault_injection()
                .call_decide(&mut *store, &wit_request, config)
                .await
        })
        .await;
        call.finish(result, Fault::from_wit)
    }
}
