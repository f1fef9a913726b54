//! The optional `initialization` export: set-up cairn runs once, when it
//! first compiles the plugin, and snapshots, so calls start from its result.

/// Exports `$init` (a `fn()`) as the plugin's `initialize`, next to the
/// validator or fault injector the crate exports.
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
#[macro_export]
macro_rules! export_initializer {
    ($init:path) => {
        #[doc(hidden)]
        pub struct __CairnInitializerExport;

        impl $crate::__bindings::initialized::exports::cairn::plugin::initialization::Guest
            for __CairnInitializerExport
        {
            fn initialize() {
                $init()
            }
        }

        $crate::__bindings::initialized::__export_initialized_world!(
            __CairnInitializerExport with_types_in $crate::__bindings::initialized
        );
    };
}
