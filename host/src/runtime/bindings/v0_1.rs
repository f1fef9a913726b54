//! Host bindings of `cairn:plugin@0.1.0` (frozen with `wit/v0.1`): the
//! imports the host provides (logging, the change view), its linkers and
//! pre-linked instances, and conversions between its types and the host's
//! own. Never edited once released, except to follow the host's types.

use wasmtime::Store;
use wasmtime::component::{HasSelf, InstancePre, Linker};

use crate::runtime::bindings::World;
use crate::runtime::call::CallState;
use crate::runtime::{change, inject, sandbox, verdict};

/// The contract version these bindings implement.
pub const VERSION: &str = "0.1.0";

/// Bindings of the `validator` world.
pub mod validator_world {
    wasmtime::component::bindgen!({
        path: "../wit/v0.1",
        world: "validator",
        exports: { default: async },
    });
}

/// Bindings of the `fault-injector` world; shares the interfaces it has in
/// common with the validator world.
pub mod fault_injector_world {
    wasmtime::component::bindgen!({
        path: "../wit/v0.1",
        world: "fault-injector",
        exports: { default: async },
        with: {
            "cairn:plugin/types": super::validator_world::cairn::plugin::types,
            "cairn:plugin/logging": super::validator_world::cairn::plugin::logging,
        },
    });
}

use fault_injector_world::exports::cairn::plugin::fault_injection as wit_fault;
use validator_world::cairn::plugin::types::{Checkpoint, PluginInfo};
use validator_world::cairn::plugin::{change as wit_change, logging, types};

/// The linkers of this version: WASI plus each world's cairn imports.
pub(crate) struct Linkers {
    validator: Linker<CallState>,
    fault_injector: Linker<CallState>,
}

impl Linkers {
    pub(crate) fn new(engine: &wasmtime::Engine) -> wasmtime::Result<Linkers> {
        let mut validator = Linker::new(engine);
        wasmtime_wasi::p2::add_to_linker_async(&mut validator)?;
        validator_world::Validator::add_to_linker::<CallState, HasSelf<CallState>>(
            &mut validator,
            |s| s,
        )?;
        let mut fault_injector = Linker::new(engine);
        wasmtime_wasi::p2::add_to_linker_async(&mut fault_injector)?;
        fault_injector_world::FaultInjector::add_to_linker::<CallState, HasSelf<CallState>>(
            &mut fault_injector,
            |s| s,
        )?;
        Ok(Linkers {
            validator,
            fault_injector,
        })
    }

    pub(crate) fn linker(&self, world: World) -> &Linker<CallState> {
        match world {
            World::Validator => &self.validator,
            World::FaultInjector => &self.fault_injector,
        }
    }
}

/// A plugin of this version, pre-linked for its world.
pub(crate) enum Pre {
    Validator(validator_world::ValidatorPre<CallState>),
    FaultInjector(fault_injector_world::FaultInjectorPre<CallState>),
}

impl Pre {
    pub(crate) fn new(pre: InstancePre<CallState>, world: World) -> wasmtime::Result<Pre> {
        Ok(match world {
            World::Validator => Pre::Validator(validator_world::ValidatorPre::new(pre)?),
            World::FaultInjector => {
                Pre::FaultInjector(fault_injector_world::FaultInjectorPre::new(pre)?)
            }
        })
    }

    pub(crate) async fn info(
        &self,
        store: &mut Store<CallState>,
    ) -> wasmtime::Result<crate::runtime::plugin::PluginInfo> {
        let info = match self {
            Pre::Validator(pre) => {
                let instance = pre.instantiate_async(&mut *store).await?;
                instance
                    .cairn_plugin_validation()
                    .call_info(&mut *store)
                    .await?
            }
            Pre::FaultInjector(pre) => {
                let instance = pre.instantiate_async(&mut *store).await?;
                instance
                    .cairn_plugin_fault_injection()
                    .call_info(&mut *store)
                    .await?
            }
        };
        Ok(info.into())
    }

    pub(crate) async fn validate(
        &self,
        store: &mut Store<CallState>,
        at: &change::Checkpoint,
        config: &str,
    ) -> Option<wasmtime::Result<Result<verdict::Verdict, String>>> {
        let Pre::Validator(pre) = self else {
            return None;
        };
        let checkpoint = Checkpoint::from(at);
        Some(
            async {
                let instance = pre.instantiate_async(&mut *store).await?;
                let answer = instance
                    .cairn_plugin_validation()
                    .call_validate(&mut *store, &checkpoint, config)
                    .await?;
                Ok(answer.map(verdict::Verdict::from))
            }
            .await,
        )
    }

    pub(crate) async fn decide(
        &self,
        store: &mut Store<CallState>,
        request: &inject::RequestInfo,
        config: &str,
    ) -> Option<wasmtime::Result<Result<inject::Decision, String>>> {
        let Pre::FaultInjector(pre) = self else {
            return None;
        };
        // 0.1.0 knows the path with its query, and nothing of scheme,
        // authority, body size, attempt or the random number.
        let request = wit_fault::RequestInfo {
            method: request.method.clone(),
            path: request.path_and_query(),
            headers: request.headers.clone(),
            sequence: request.sequence,
            elapsed_ms: request.elapsed_ms,
            active_faults: request.active_faults,
        };
        Some(
            async {
                let instance = pre.instantiate_async(&mut *store).await?;
                let answer = instance
                    .cairn_plugin_fault_injection()
                    .call_decide(&mut *store, &request, config)
                    .await?;
                Ok(answer.map(inject::Decision::from))
            }
            .await,
        )
    }
}

/// A 0.1.0 fault is one 0.2.0 decision: `delay` delays the request,
/// `error` aborts without headers, `throttle` forwards with a throttled
/// body.
impl From<wit_fault::Fault> for inject::Decision {
    fn from(fault: wit_fault::Fault) -> Self {
        use inject::{AbortResponse, Action, BodyFaults, Decision};
        match fault {
            wit_fault::Fault::None => Decision::PASS,
            wit_fault::Fault::Delay(ms) => Decision {
                delay_request_ms: ms,
                ..Decision::PASS
            },
            wit_fault::Fault::Error(response) => Decision {
                action: Action::Abort(AbortResponse {
                    status: response.status,
                    headers: Vec::new(),
                    body: response.body.map(String::into_bytes),
                }),
                ..Decision::PASS
            },
            wit_fault::Fault::Reset => Decision {
                action: Action::Reset,
                ..Decision::PASS
            },
            wit_fault::Fault::Hang(ms) => Decision {
                action: Action::Hang { millis: ms },
                ..Decision::PASS
            },
            wit_fault::Fault::Throttle(rate) => Decision {
                body: BodyFaults {
                    throttle_bytes_per_second: Some(rate),
                    ..BodyFaults::default()
                },
                ..Decision::PASS
            },
        }
    }
}

impl types::Host for CallState {}

impl logging::Host for CallState {
    fn log(&mut self, level: logging::Level, message: String) {
        let level = match level {
            logging::Level::Trace => sandbox::LogLevel::Trace,
            logging::Level::Debug => sandbox::LogLevel::Debug,
            logging::Level::Info => sandbox::LogLevel::Info,
            logging::Level::Warn => sandbox::LogLevel::Warn,
            logging::Level::Error => sandbox::LogLevel::Error,
        };
        self.log(level, &message);
    }
}

impl wit_change::Host for CallState {
    fn documents(&mut self) -> Vec<wit_change::Document> {
        self.change()
            .documents()
            .map(|doc| wit_change::Document {
                path: doc.path.clone(),
                media_type: doc.media_type.as_str().to_owned(),
                status: match doc.status() {
                    change::DocumentStatus::Added => wit_change::DocStatus::Added,
                    change::DocumentStatus::Modified => wit_change::DocStatus::Modified,
                    change::DocumentStatus::Deleted => wit_change::DocStatus::Deleted,
                    change::DocumentStatus::Unchanged => wit_change::DocStatus::Unchanged,
                },
            })
            .collect()
    }

    fn before(&mut self, path: String) -> Option<Vec<u8>> {
        self.change().document(&path)?.before.clone()
    }

    fn after(&mut self, path: String) -> Option<Vec<u8>> {
        self.change().document(&path)?.after.clone()
    }

    fn metrics(&mut self) -> Vec<wit_change::Metric> {
        self.change()
            .metrics
            .iter()
            .map(|m| wit_change::Metric {
                name: m.name.clone(),
                value: m.value,
            })
            .collect()
    }
}

impl From<&change::Checkpoint> for Checkpoint {
    fn from(at: &change::Checkpoint) -> Self {
        Checkpoint {
            name: at.name.clone(),
            index: at.index,
            environment: at.environment.clone(),
            rollout_percent: at.rollout_percent,
            change_id: at.change_id.clone(),
        }
    }
}

impl From<PluginInfo> for crate::runtime::plugin::PluginInfo {
    fn from(info: PluginInfo) -> Self {
        crate::runtime::plugin::PluginInfo {
            name: info.name,
            version: info.version,
            description: info.description,
            config_schema: info.config_schema,
        }
    }
}

impl From<types::Verdict> for verdict::Verdict {
    fn from(v: types::Verdict) -> Self {
        verdict::Verdict {
            outcome: match v.outcome {
                types::Outcome::Pass => verdict::Outcome::Pass,
                types::Outcome::Warn => verdict::Outcome::Warn,
                types::Outcome::Fail => verdict::Outcome::Fail,
                types::Outcome::Inconclusive => verdict::Outcome::Inconclusive,
            },
            findings: v.findings.into_iter().map(Into::into).collect(),
            summary: v.summary,
            findings_dropped: 0,
        }
    }
}

impl From<types::Finding> for verdict::Finding {
    fn from(f: types::Finding) -> Self {
        verdict::Finding {
            rule: f.rule,
            severity: match f.severity {
                types::Severity::Info => verdict::Severity::Info,
                types::Severity::Warning => verdict::Severity::Warning,
                types::Severity::Error => verdict::Severity::Error,
            },
            message: f.message,
            location: f.location.map(|l| verdict::Location {
                document: l.document,
                pointer: l.pointer,
                line: l.line,
                column: l.column,
            }),
            hint: f.hint,
        }
    }
}
