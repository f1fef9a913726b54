//! Host bindings of `cairn:plugin@0.2.0` (frozen with `wit/v0.2`): the
//! fault-injector world only (validators stay on 0.1.0), its linker and
//! pre-linked instances, and conversions between its types and the host's
//! own (`inject`). Never edited once released, except to follow the host's
//! types.

use wasmtime::Store;
use wasmtime::component::{HasSelf, InstancePre, Linker};

use crate::runtime::bindings::World;
use crate::runtime::call::CallState;
use crate::runtime::{inject, sandbox};

/// The contract version these bindings implement.
pub const VERSION: &str = "0.2.0";

/// Bindings of the `fault-injector` world.
pub mod fault_injector_world {
    wasmtime::component::bindgen!({
        path: "../wit/v0.2",
        world: "fault-injector",
        exports: { default: async },
    });
}

use fault_injector_world::cairn::plugin::{logging, types};
use fault_injector_world::exports::cairn::plugin::fault_injection as wit_fault;

/// The linker of this version: WASI plus the fault-injector world's cairn
/// imports.
pub(crate) struct Linkers {
    fault_injector: Linker<CallState>,
}

impl Linkers {
    pub(crate) fn new(engine: &wasmtime::Engine) -> wasmtime::Result<Linkers> {
        let mut fault_injector = Linker::new(engine);
        wasmtime_wasi::p2::add_to_linker_async(&mut fault_injector)?;
        fault_injector_world::FaultInjector::add_to_linker::<CallState, HasSelf<CallState>>(
            &mut fault_injector,
            |s| s,
        )?;
        Ok(Linkers { fault_injector })
    }

    /// The linker for `world`; `None` for a world this version does not
    /// define (detection never lets such a plugin through).
    pub(crate) fn linker(&self, world: World) -> Option<&Linker<CallState>> {
        match world {
            World::FaultInjector => Some(&self.fault_injector),
            World::Validator => None,
        }
    }
}

/// A fault injector of this version, pre-linked.
pub(crate) struct Pre(fault_injector_world::FaultInjectorPre<CallState>);

impl Pre {
    pub(crate) fn new(pre: InstancePre<CallState>) -> wasmtime::Result<Pre> {
        Ok(Pre(fault_injector_world::FaultInjectorPre::new(pre)?))
    }

    pub(crate) async fn info(
        &self,
        store: &mut Store<CallState>,
    ) -> wasmtime::Result<crate::runtime::plugin::PluginInfo> {
        let instance = self.0.instantiate_async(&mut *store).await?;
        let info = instance
            .cairn_plugin_fault_injection()
            .call_info(&mut *store)
            .await?;
        Ok(crate::runtime::plugin::PluginInfo {
            name: info.name,
            version: info.version,
            description: info.description,
            config_schema: info.config_schema,
        })
    }

    pub(crate) async fn decide(
        &self,
        store: &mut Store<CallState>,
        request: &inject::RequestInfo,
        config: &str,
    ) -> wasmtime::Result<Result<inject::Decision, String>> {
        let request = wit_fault::Request {
            method: request.method.clone(),
            scheme: request.scheme.clone(),
            authority: request.authority.clone(),
            path: request.path.clone(),
            query: request.query.clone(),
            headers: request.headers.clone(),
            body_size: request.body_size,
            attempt: request.attempt,
            sequence: request.sequence,
            elapsed_ms: request.elapsed_ms,
            active_faults: request.active_faults,
            random: request.random,
        };
        let instance = self.0.instantiate_async(&mut *store).await?;
        let answer = instance
            .cairn_plugin_fault_injection()
            .call_decide(&mut *store, &request, config)
            .await?;
        Ok(answer.map(inject::Decision::from))
    }
}

impl From<wit_fault::Decision> for inject::Decision {
    fn from(decision: wit_fault::Decision) -> Self {
        inject::Decision {
            delay_request_ms: decision.delay_request_ms,
            delay_response_ms: decision.delay_response_ms,
            action: match decision.action {
                wit_fault::Action::Forward => inject::Action::Forward,
                wit_fault::Action::Abort(abort) => inject::Action::Abort(inject::AbortResponse {
                    status: abort.status,
                    headers: abort.headers,
                    body: abort.body,
                }),
                wit_fault::Action::Reset => inject::Action::Reset,
                wit_fault::Action::Hang(ms) => inject::Action::Hang { millis: ms },
            },
            body: inject::BodyFaults {
                throttle_bytes_per_second: decision.body.throttle_bytes_per_second,
                truncate_after_bytes: decision.body.truncate_after_bytes,
                corrupt_bytes: decision.body.corrupt_bytes,
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
