//! Pre-initialisation: a plugin that exports `cairn:plugin/initialization`
//! has its `initialize` run once, in the sandbox, when cairn first compiles
//! it; wasmtime-wizer then snapshots the instance's memories and globals
//! into a new component, which is what cairn compiles and caches. Every
//! call's fresh instance starts from the initialised state.
//!
//! Why a snapshot and not an `initialize` call per instance: the point is to
//! pay for set-up work (building lookup tables, compiling a built-in schema)
//! once per plugin instead of once per call, while every call still gets a
//! fresh instance. With the pooling allocator the snapshot's data is mapped
//! copy-on-write, so a bigger initial heap costs a call nothing.

use std::sync::Arc;
use std::time::Duration;

use wasmtime::Store;
use wasmtime::component::{Component, Instance, Linker, WasmList};
use wasmtime_wizer::{ComponentInstanceState, Wizer};

use crate::runtime::Runtime;
use crate::runtime::admission::InstanceFootprint;
use crate::runtime::bindings::{Contract, INITIALIZATION_INTERFACE};
use crate::runtime::call::{CallOutcome, CallState, CallStore};
use crate::runtime::change::Change;
use crate::runtime::failure::{Failure, FailureKind};
use crate::runtime::limits::Limits;
use crate::runtime::plugin::scan_component;

/// The function cairn runs inside the `initialization` interface.
const INITIALIZE: &str = "initialize";

/// Wall-clock budget of a plugin's `initialize` by default: it runs once per
/// plugin, so it may do more than a call, but a loop must not hang a load.
pub const DEFAULT_INITIALIZATION_TIMEOUT: Duration = Duration::from_secs(10);

/// Why a plugin's initialization failed.
#[derive(Debug, thiserror::Error)]
pub enum InitializationError {
    /// The plugin's `initialize` was stopped by the sandbox (deadline,
    /// memory limit, trap…).
    #[error("its `initialize` was stopped")]
    Stopped(#[source] Failure),
    /// wasmtime-wizer could not instrument or rewrite the component (a
    /// component shape it does not support).
    #[error("it cannot be pre-initialised")]
    Unsupported(#[source] crate::runtime::plugin::Cause),
}

impl InitializationError {
    /// The failure calls of this plugin report: the sandbox's own kind
    /// (timeout, memory-limit, trap…) when `initialize` was stopped.
    pub fn failure(&self, message: String) -> Failure {
        match self {
            InitializationError::Stopped(failure) => Failure {
                kind: failure.kind,
                message,
                backtrace: failure.backtrace.clone(),
            },
            InitializationError::Unsupported(_) => Failure::new(FailureKind::Load, message),
        }
    }
}

/// Runs the plugin's `initialize` under `limits` and returns the snapshot
/// component to compile in place of `wasm`.
///
/// Blocks the calling thread; the run happens on a thread of its own with
/// a single-threaded tokio runtime, so this is safe to call from inside an
/// async context too (loading is synchronous).
pub(crate) fn pre_initialize(
    runtime: &Runtime,
    plugin: &str,
    wasm: &[u8],
    contract: &Contract,
    limits: &Limits,
) -> Result<Vec<u8>, InitializationError> {
    let wizer = Wizer::new();
    let (context, instrumented) = wizer
        .instrument_component(wasm)
        .map_err(|err| InitializationError::Unsupported(err.into_boxed_dyn_error()))?;
    let component = Component::from_binary(runtime.engine(), &instrumented)
        .map_err(|err| InitializationError::Unsupported(err.into_boxed_dyn_error()))?;
    let footprint = InstanceFootprint::new(
        scan_component(&instrumented).core_instantiations,
        &component,
    );
    let linker = runtime.linkers().linker(contract).ok_or_else(|| {
        InitializationError::Unsupported(
            format!(
                "contract {} has no {} world",
                contract.version, contract.world
            )
            .into(),
        )
    })?;
    let export = contract.version.interface_name(INITIALIZATION_INTERFACE);
    let target = InitializationTarget {
        component: &component,
        footprint: &footprint,
        linker,
        export: &export,
    };
    let run = || -> Result<Vec<u8>, InitializationError> {
        let executor = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .map_err(|err| {
                InitializationError::Stopped(Failure::new(
                    FailureKind::Load,
                    format!("cannot start the initialization thread's executor: {err}"),
                ))
            })?;
        executor.block_on(initialize_and_snapshot(
            runtime, plugin, &wizer, &context, &target, limits,
        ))
    };
    std::thread::scope(|scope| {
        std::thread::Builder::new()
            .name(format!("cairn-init-{plugin}"))
            .spawn_scoped(scope, run)
            .map_err(|err| {
                InitializationError::Stopped(Failure::new(
                    FailureKind::Load,
                    format!("cannot start the initialization thread: {err}"),
                ))
            })?
            .join()
            .unwrap_or_else(|_| {
                Err(InitializationError::Unsupported(
                    "the pre-initializer panicked".into(),
                ))
            })
    })
}

/// The instrumented component to initialise, and how.
struct InitializationTarget<'a> {
    component: &'a Component,
    footprint: &'a InstanceFootprint,
    linker: &'a Linker<CallState>,
    /// `cairn:plugin/initialization@<the plugin's version>`.
    export: &'a str,
}

async fn initialize_and_snapshot(
    runtime: &Runtime,
    plugin: &str,
    wizer: &Wizer,
    context: &wasmtime_wizer::ComponentContext<'_>,
    target: &InitializationTarget<'_>,
    limits: &Limits,
) -> Result<Vec<u8>, InitializationError> {
    let admission = runtime.admission();
    let mut call = CallStore::admit_on_engine(
        runtime.engine(),
        &admission,
        target.footprint,
        runtime.config().fuel_metering,
        plugin,
        Arc::new(Change::default()),
        limits,
    )
    .await
    .map_err(InitializationError::Stopped)?;
    let store = &mut call.store;
    let export = target.export;
    let result = tokio::time::timeout_at(call.deadline.into(), async {
        let instance = target
            .linker
            .instantiate_async(&mut *store, target.component)
            .await?;
        let interface = instance
            .get_export_index(&mut *store, None, export)
            .ok_or_else(|| wasmtime::format_err!("no `{export}` export"))?;
        let initialize = instance
            .get_export_index(&mut *store, Some(&interface), INITIALIZE)
            .ok_or_else(|| wasmtime::format_err!("`{export}` has no `{INITIALIZE}`"))?;
        instance
            .get_typed_func::<(), ()>(&mut *store, &initialize)?
            .call_async(&mut *store, ())
            .await?;
        let mut access = SnapshotAccess {
            store: &mut *store,
            instance,
            error: None,
        };
        let snapshot = wizer.snapshot_component(context, &mut access).await;
        if let Some(err) = access.error {
            return Err(err);
        }
        snapshot.map(Ok::<Vec<u8>, String>)
    })
    .await;
    let report = call.finish(result, Ok);
    match report.outcome {
        CallOutcome::Completed(snapshot) => Ok(snapshot),
        CallOutcome::Stopped(failure) => Err(InitializationError::Stopped(failure)),
        // `initialize` returns nothing, so it cannot refuse.
        CallOutcome::Refused(reason) => Err(InitializationError::Stopped(Failure::new(
            FailureKind::Trap,
            reason,
        ))),
    }
}

/// Lets wasmtime-wizer read the initialised instance's state through the
/// accessor functions its instrumentation exported. Those calls run under
/// the same deadline and limits; their first error is kept (the trait has
/// no way to return one) and the snapshot is then discarded.
struct SnapshotAccess<'a> {
    store: &'a mut Store<CallState>,
    instance: Instance,
    error: Option<wasmtime::Error>,
}

impl SnapshotAccess<'_> {
    async fn call<R>(&mut self, interface: &str, func: &str) -> Option<R>
    where
        R: wasmtime::component::Lift + Send + Sync + 'static,
    {
        if self.error.is_some() {
            return None;
        }
        let result = async {
            let interface_index = self
                .instance
                .get_export_index(&mut *self.store, None, interface)
                .ok_or_else(|| wasmtime::format_err!("no `{interface}` export"))?;
            let func_index = self
                .instance
                .get_export_index(&mut *self.store, Some(&interface_index), func)
                .ok_or_else(|| wasmtime::format_err!("`{interface}` has no `{func}`"))?;
            let typed = self
                .instance
                .get_typed_func::<(), (R,)>(&mut *self.store, &func_index)?;
            let (value,) = typed.call_async(&mut *self.store, ()).await?;
            wasmtime::Result::Ok(value)
        }
        .await;
        match result {
            Ok(value) => Some(value),
            Err(err) => {
                self.error = Some(err);
                None
            }
        }
    }
}

impl ComponentInstanceState for SnapshotAccess<'_> {
    async fn call_func_ret_list_u8(
        &mut self,
        instance: &str,
        func: &str,
        contents: impl FnOnce(&[u8]) + Send,
    ) {
        match self.call::<WasmList<u8>>(instance, func).await {
            Some(list) => contents(list.as_le_slice(&*self.store)),
            None => contents(&[]),
        }
    }

    async fn call_func_ret_s32(&mut self, instance: &str, func: &str) -> i32 {
        self.call(instance, func).await.unwrap_or_default()
    }

    async fn call_func_ret_s64(&mut self, instance: &str, func: &str) -> i64 {
        self.call(instance, func).await.unwrap_or_default()
    }

    async fn call_func_ret_f32(&mut self, instance: &str, func: &str) -> u32 {
        self.call::<f32>(instance, func)
            .await
            .map(f32::to_bits)
            .unwrap_or_default()
    }

    async fn call_func_ret_f64(&mut self, instance: &str, func: &str) -> u64 {
        self.call::<f64>(instance, func)
            .await
            .map(f64::to_bits)
            .unwrap_or_default()
    }
}
