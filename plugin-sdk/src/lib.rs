//! cairn-plugin-sdk: write cairn plugins in Rust.
//!
//! A plugin is a crate with `crate-type = ["cdylib"]` under `[lib]`, built
//! with `cargo build --release --target wasm32-wasip2`; the resulting
//! `.wasm` is what cairn loads. It implements one of two worlds:
//!
//! - a **validator** ([`Validator`], exported with [`export_validator!`])
//!   judges a change at a rollout checkpoint. Validators are built against
//!   contract `cairn:plugin@0.1.0`.
//! - a **fault injector** ([`FaultInjector`], exported with
//!   [`export_fault_injector!`]) tells cairn's fault proxy, per request,
//!   which fault to apply. Fault injectors are built against contract
//!   `cairn:plugin@0.2.0`.
//!
//! A plugin crate exports exactly one world: call one of the two macros,
//! once.
//!
//! # Validators
//!
//! ```no_run
//! use cairn_plugin_sdk::{Change, Checkpoint, Finding, PluginInfo, Validator, Verdict, log};
//!
//! struct NoDeletes;
//!
//! impl Validator for NoDeletes {
//!     fn info() -> PluginInfo {
//!         PluginInfo::new("no-deletes", env!("CARGO_PKG_VERSION"), "Fails when a document is deleted")
//!     }
//!
//!     fn validate(change: &Change, at: &Checkpoint, _config: &str) -> Result<Verdict, String> {
//!         log::info(&format!("checking {} at {}", at.change_id, at.name));
//!         let findings = change
//!             .documents()
//!             .into_iter()
//!             .filter(|doc| doc.is_deleted())
//!             .map(|doc| {
//!                 Finding::error("no-deletes/deleted", format!("{} is deleted", doc.path))
//!                     .at(&doc.path)
//!                     .hint("archive the document instead of deleting it")
//!             })
//!             .collect();
//!         Ok(Verdict::from_findings(findings))
//!     }
//! }
//!
//! cairn_plugin_sdk::export_validator!(NoDeletes);
//! ```
//!
//! Hand the component to `cairn validate PLUGIN.wasm --change DIR`, or test
//! it on golden cases with `cairn plugin test PLUGIN.wasm --cases DIR`.
//!
//! # Fault injectors
//!
//! A fault injector gets a [`Request`] (method, upstream, path, headers,
//! attempt, a per-request random number, ...) and answers a [`Decision`]:
//! delays before the request and the response, then an [`Action`]
//! (forward, abort with a response, reset the connection, or hang), plus
//! [`BodyFaults`] on a forwarded response's body.
//!
//! ```no_run
//! use cairn_plugin_sdk::{Decision, FaultInjector, PluginInfo, Request};
//!
//! struct FlakyOrders;
//!
//! impl FaultInjector for FlakyOrders {
//!     fn info() -> PluginInfo {
//!         PluginInfo::new("flaky-orders", env!("CARGO_PKG_VERSION"), "Fails 5% of /orders requests")
//!     }
//!
//!     fn decide(request: &Request, _config: &str) -> Result<Decision, String> {
//!         if !request.path.starts_with("/orders") {
//!             return Ok(Decision::pass());
//!         }
//!         if request.chance(5.0) {
//!             return Ok(Decision::abort(503).with_header("retry-after", "1").with_body("try again"));
//!         }
//!         Ok(Decision::pass().with_response_delay(100))
//!     }
//! }
//!
//! cairn_plugin_sdk::export_fault_injector!(FlakyOrders);
//! ```
//!
//! A plugin has no clock and no random number generator of its own: use
//! [`Request::chance`] and [`Request::random_below`], which derive from the
//! request's `random` (itself derived from the experiment's seed), so the
//! same seed replays the same faults. Test a fault injector on golden cases
//! (a `request.json` and the `expected.json` decision per case) with
//! `cairn plugin test PLUGIN.wasm --cases DIR`; the SDK's README describes
//! the case format.
//!
//! # The sandbox
//!
//! The plugin runs in a sandbox: no files, env, network or real clock (the
//! wall clock reads 1970). Everything a validator may see comes through
//! [`Change`], everything a fault injector may see through [`Request`];
//! everything either says goes into its answer and [`log`]. `println!` and
//! `eprintln!` work and are captured (capped) by the host.
//!
//! Set-up that does not depend on the call (a built-in schema, a lookup
//! table) can run once per plugin instead of once per call: see
//! [`export_initializer!`] (validators) and
//! [`export_fault_injector_initializer!`] (fault injectors).

#![warn(missing_docs)]

extern crate self as cairn_plugin_sdk;

#[doc(hidden)]
pub mod __rt {
    pub use wit_bindgen::rt::*;
}

/// Bindings generated from `wit/v0.1` (validators) and `wit/v0.2` (fault
/// injectors). Not part of the stable API: use the re-exports and helpers
/// of this crate instead.
///
/// With `pub_export_macro`, a world's exports are only described to the
/// component linker where its export macro is used, and an import only
/// appears in a component that calls it, so one crate can carry the
/// bindings of every world and version.
#[doc(hidden)]
#[allow(missing_docs)]
pub mod __bindings {
    /// Contract 0.1.0, world `validator`.
    pub mod validator {
        wit_bindgen::generate!({
            path: "wit/v0.1",
            world: "validator",
            pub_export_macro: true,
            export_macro_name: "__export_validator_world",
            default_bindings_module: "cairn_plugin_sdk::__bindings::validator",
        });
    }

    /// Contract 0.1.0, world `initialized`: the optional `initialization`
    /// export of a validator. It has no imports, so it needs no `with`.
    pub mod initialized {
        wit_bindgen::generate!({
            path: "wit/v0.1",
            world: "initialized",
            pub_export_macro: true,
            export_macro_name: "__export_initialized_world",
            default_bindings_module: "cairn_plugin_sdk::__bindings::initialized",
        });
    }

    /// Contract 0.2.0, world `fault-injector`.
    pub mod fault_injector {
        wit_bindgen::generate!({
            path: "wit/v0.2",
            world: "fault-injector",
            pub_export_macro: true,
            export_macro_name: "__export_fault_injector_world",
            default_bindings_module: "cairn_plugin_sdk::__bindings::fault_injector",
            additional_derives: [PartialEq, Eq],
        });
    }

    /// Contract 0.2.0's `initialization`: the optional export of a fault
    /// injector. Its world is restated inline under another name, because
    /// the names of the macros wit-bindgen generates follow the world's
    /// (0.1.0 has an `initialized` world too).
    pub mod initialized_v0_2 {
        wit_bindgen::generate!({
            path: "wit/v0.2",
            inline: "
                package cairn:sdk;

                world initialized-v0-2 {
                    export cairn:plugin/initialization@0.2.0;
                }
            ",
            world: "initialized-v0-2",
            pub_export_macro: true,
            export_macro_name: "__export_initialized_v0_2_world",
            default_bindings_module: "cairn_plugin_sdk::__bindings::initialized_v0_2",
        });
    }
}

mod fault_injector;
mod initialization;
pub mod log;
mod validator;

pub use fault_injector::*;
pub use validator::*;
