//! The optional `initialization` export: set-up cairn runs once, when it
//! first compiles the plugin, and snapshots, so calls start from its result.
//! One macro per world, because the export must be of the world's contract
//! version (0.1.0 for validators, 0.2.0 for fault injectors): cairn ignores
//! an `initialization` of another version.

/// Exports `$init` (a `fn()`) as a validator's `initialize` (contract
/// 0.1.0), next to [`export_validator!`](crate::export_validator) in the same
/// module. A fault injector uses
/// [`export_fault_injector_initializer!`](crate::export_fault_injector_initializer)
/// instead; this macro does not compile without `export_validator!` beside
/// it.
///
/// cairn runs it once, when it first compiles the plugin: in the sandbox,
/// with an empty change, under the runtime's initialization limits (10 s by
/// default). It then snapshots the plugin's memory, so every call's fresh
/// instance starts with what `$init` built — statics, `OnceLock`s and
/// `LazyLock`s included — and `$init` never runs during a call.
///
/// Only do work that is the same for every change and config: the snapshot
/// is shared by all calls. An `$init` that panics, loops or exhausts memory
/// makes the plugin fail to load, reported with that failure kind.
///
/// ```no_run
/// use std::sync::LazyLock;
/// # use cairn_plugin_sdk::{Change, Checkpoint, PluginInfo, Validator, Verdict};
///
/// static KEYWORDS: LazyLock<Vec<String>> = LazyLock::new(|| {
///     let text = "delete drop truncate";
///     text.split_whitespace().map(String::from).collect()
/// });
///
/// fn warm_up() {
///     LazyLock::force(&KEYWORDS);
/// }
///
/// # struct Words;
/// # impl Validator for Words {
/// #     fn info() -> PluginInfo { PluginInfo::new("words", "0.1.0", "") }
/// #     fn validate(_: &Change, _: &Checkpoint, _: &str) -> Result<Verdict, String> {
/// #         Ok(Verdict::from_findings(Vec::new()))
/// #     }
/// # }
/// cairn_plugin_sdk::export_validator!(Words);
/// cairn_plugin_sdk::export_initializer!(warm_up);
/// ```
///
/// Next to a fault injector, it does not compile (cairn would ignore a
/// 0.1.0 `initialization` there):
///
/// ```compile_fail
/// # use cairn_plugin_sdk::{Decision, FaultInjector, PluginInfo, Request};
/// # struct Pass;
/// # impl FaultInjector for Pass {
/// #     fn info() -> PluginInfo { PluginInfo::new("pass", "0.1.0", "") }
/// #     fn decide(_: &Request, _: &str) -> Result<Decision, String> { Ok(Decision::pass()) }
/// # }
/// fn warm_up() {}
///
/// cairn_plugin_sdk::export_fault_injector!(Pass);
/// cairn_plugin_sdk::export_initializer!(warm_up); // error: use export_fault_injector_initializer!
/// ```
#[macro_export]
macro_rules! export_initializer {
    ($init:path) => {
        // Contract 0.1.0's `initialization` only counts next to a validator:
        // without `export_validator!` in this module, this names a type that
        // does not exist (a fault injector wants
        // `export_fault_injector_initializer!`).
        const _: ::core::marker::PhantomData<__CairnValidatorExport> = ::core::marker::PhantomData;

        #[doc(hidden)]
        pub struct __CairnInitializerExport;

        impl $crate::__bindings::initialized::exports::cairn::plugin::initialization::Guest
            for __CairnInitializerExport
        {
            fn initialize() {
                $crate::log::__set_sink($crate::log::__v0_1_sink);
                $init()
            }
        }

        $crate::__bindings::initialized::__export_initialized_world!(
            __CairnInitializerExport with_types_in $crate::__bindings::initialized
        );
    };
}

/// Exports `$init` (a `fn()`) as a fault injector's `initialize` (contract
/// 0.2.0), next to [`export_fault_injector!`](crate::export_fault_injector)
/// in the same module; it does not compile without it.
///
/// As for validators ([`export_initializer!`](crate::export_initializer)):
/// cairn runs it once, when it first compiles the plugin, in the sandbox,
/// and snapshots the plugin's memory, so every `decide` starts from what
/// `$init` built and `$init` never runs during a call. Use it for work that
/// is the same for every request and config (parsing an embedded table,
/// say).
///
/// ```no_run
/// use std::sync::LazyLock;
/// # use cairn_plugin_sdk::{Decision, FaultInjector, PluginInfo, Request};
///
/// static SLOW_ROUTES: LazyLock<Vec<&'static str>> =
///     LazyLock::new(|| "/orders /payments /search".split(' ').collect());
///
/// fn warm_up() {
///     LazyLock::force(&SLOW_ROUTES);
/// }
///
/// struct SlowRoutes;
///
/// impl FaultInjector for SlowRoutes {
///     fn info() -> PluginInfo {
///         PluginInfo::new("slow-routes", "0.1.0", "Delays known slow routes")
///     }
///
///     fn decide(request: &Request, _config: &str) -> Result<Decision, String> {
///         let slow = SLOW_ROUTES.iter().any(|route| request.path.starts_with(route));
///         Ok(if slow { Decision::pass().with_response_delay(300) } else { Decision::pass() })
///     }
/// }
///
/// cairn_plugin_sdk::export_fault_injector!(SlowRoutes);
/// cairn_plugin_sdk::export_fault_injector_initializer!(warm_up);
/// ```
#[macro_export]
macro_rules! export_fault_injector_initializer {
    ($init:path) => {
        // Contract 0.2.0's `initialization` only counts next to a fault
        // injector: without `export_fault_injector!` in this module, this
        // names a type that does not exist (a validator wants
        // `export_initializer!`).
        const _: ::core::marker::PhantomData<__CairnFaultInjectorExport> =
            ::core::marker::PhantomData;

        #[doc(hidden)]
        pub struct __CairnInitializerExport;

        impl $crate::__bindings::initialized_v0_2::exports::cairn::plugin::initialization::Guest
            for __CairnInitializerExport
        {
            fn initialize() {
                $crate::log::__set_sink($crate::log::__v0_2_sink);
                $init()
            }
        }

        $crate::__bindings::initialized_v0_2::__export_initialized_v0_2_world!(
            __CairnInitializerExport with_types_in $crate::__bindings::initialized_v0_2
        );
    };
}
