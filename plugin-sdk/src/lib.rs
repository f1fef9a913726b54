//! cairn-plugin-sdk: write cairn plugins in Rust.
//!
//! A validator is a type implementing [`Validator`] plus one call to
//! [`export_validator!`]. Build it with
//! `cargo build --release --target wasm32-wasip2` and hand the resulting
//! `.wasm` to `cairn validate`.
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
//! The crate's `Cargo.toml` needs `crate-type = ["cdylib"]` under `[lib]`.
//!
//! The plugin runs in a sandbox: no files, env, network or real clock (the
//! wall clock reads 1970). Everything it may see comes through [`Change`];
//! everything it says goes into the [`Verdict`] and [`log`]. `println!` and
//! `eprintln!` work and are captured (capped) by the host.
//!
//! A fault injector instead implements [`FaultInjector`] and calls
//! [`export_fault_injector!`]. A plugin crate exports exactly one world:
//! call one of the two macros, once.
//!
//! Set-up that does not depend on the change or the config (a built-in
//! schema, a lookup table) can run once per plugin instead of once per
//! call: see [`export_initializer!`].

extern crate self as cairn_plugin_sdk;

#[doc(hidden)]
pub mod __rt {
    pub use wit_bindgen::rt::*;
}

/// Bindings generated from `wit/v0.1`. Not part of the stable API: use the
/// re-exports and helpers of this crate instead.
#[doc(hidden)]
pub mod __bindings {
    pub mod validator {
        wit_bindgen::generate!({
            path: "../wit/v0.1",
            world: "validator",
            pub_export_macro: true,
            export_macro_name: "__export_validator_world",
            default_bindings_module: "cairn_plugin_sdk::__bindings::validator",
        });
    }

    // With `pub_export_macro`, a world's exports are only described to the
    // component linker where its export macro is used, so one crate can carry
    // the bindings of both worlds.
    pub mod fault_injector {
        wit_bindgen::generate!({
            path: "../wit/v0.1",
            world: "fault-injector",
            pub_export_macro: true,
            export_macro_name: "__export_fault_injector_world",
            default_bindings_module: "cairn_plugin_sdk::__bindings::fault_injector",
            with: {
                "cairn:plugin/types@0.1.0": crate::__bindings::validator::cairn::plugin::types,
                "cairn:plugin/logging@0.1.0": crate::__bindings::validator::cairn::plugin::logging,
            },
        });
    }

    // The optional `initialization` export; it has no imports, so it needs
    // no `with`. Its export macro adds it to whichever world the crate
    // exports (`export_initializer!`).
    pub mod initialized {
        wit_bindgen::generate!({
            path: "../wit/v0.1",
            world: "initialized",
            pub_export_macro: true,
            export_macro_name: "__export_initialized_world",
            default_bindings_module: "cairn_plugin_sdk::__bindings::initialized",
        });
    }
}

mod fault_injector;
mod initialization;
mod validator;

pub use fault_injector::*;
pub use validator::*;
