//! The fault-injector side of the SDK: the [`FaultInjector`] trait and its
//! export macro.

pub use crate::__bindings::fault_injector::exports::cairn::plugin::fault_injection::{
    ErrorResponse, Fault, RequestInfo,
};
use crate::PluginInfo;

/// Implement this for your fault injector and export it with
/// [`export_fault_injector!`].
pub trait FaultInjector {
    fn info() -> PluginInfo;

    /// Decides the fault for one request. The proxy clamps the answer to the
    /// experiment's blast radius and duration.
    fn decide(request: &RequestInfo, config: &str) -> Result<Fault, String>;
}

/// Exports a [`FaultInjector`] implementation as the plugin's
/// `fault-injection` interface.
#[macro_export]
macro_rules! export_fault_injector {
    ($injector:ty) => {
        #[doc(hidden)]
        pub struct __CairnFaultInjectorExport;

        impl $crate::__bindings::fault_injector::exports::cairn::plugin::fault_injection::Guest
            for __CairnFaultInjectorExport
        {
            fn info() -> $crate::PluginInfo {
                <$injector as $crate::FaultInjector>::info()
            }

            fn decide(
                request: $crate::RequestInfo,
                config: ::std::string::String,
            ) -> ::std::result::Result<$crate::Fault, ::std::string::String> {
                <$injector as $crate::FaultInjector>::decide(&request, &config)
            }
        }

        $crate::__bindings::fault_injector::__export_fault_injector_world!(
            __CairnFaultInjectorExport with_types_in $crate::__bindings::fault_injector
        );
    };
}
