//! A loaded plugin: digest pin check, component header check, detection of
//! its world and contract version from its exports, and the pre-linked
//! instance (`InstancePre`) every call instantiates from.

use std::path::PathBuf;
use std::sync::Arc;

use serde::Serialize;
use wasmtime::component::Component;

use crate::bindings::{self, latest};
use crate::cache::CacheStatus;
use crate::failure::{Failure, FailureKind};
use crate::runtime::Runtime;

/// Which world a plugin implements.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum World {
    Validator,
    FaultInjector,
}

impl World {
    /// The interface a plugin of this world exports.
    pub fn export_interface(self) -> &'static str {
        match self {
            World::Validator => "validation",
            World::FaultInjector => "fault-injection",
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            World::Validator => "validator",
            World::FaultInjector => "fault-injector",
        }
    }
}

impl std::fmt::Display for World {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What a plugin says about itself (`info()`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PluginInfo {
    pub name: String,
    pub version: String,
    pub description: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub config_schema: Option<String>,
}

/// Why a plugin could not be loaded (reported with kind `load`).
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("cannot read plugin {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("plugin {plugin}: sha256 pin {pin:?} is not 64 hex digits")]
    InvalidPin { plugin: String, pin: String },
    #[error("plugin {plugin}: sha256 mismatch: the plan pins {expected} but the file is {actual}")]
    DigestMismatch {
        plugin: String,
        expected: String,
        actual: String,
    },
    #[error("plugin {plugin}: not a WebAssembly file ({reason})")]
    NotWasm {
        plugin: String,
        reason: &'static str,
    },
    #[error(
        "plugin {plugin}: is a core WebAssembly module, not a component; build it for \
         `wasm32-wasip2` (or wrap it with `wasm-tools component new`)"
    )]
    CoreModule { plugin: String },
    #[error("plugin {plugin}: invalid component: {message}")]
    Compile { plugin: String, message: String },
    #[error(
        "plugin {plugin}: exports no cairn interface (expected `{package}/validation@{version}` \
         or `{package}/fault-injection@{version}`); it exports: {exports}",
        package = bindings::PACKAGE,
        version = latest::VERSION
    )]
    NotAPlugin { plugin: String, exports: String },
    #[error(
        "plugin {plugin}: built against {export}, which this cairn does not support \
         (supported: {package}@{supported})",
        package = bindings::PACKAGE,
        supported = latest::VERSION
    )]
    UnsupportedVersion { plugin: String, export: String },
    #[error("plugin {plugin}: needs imports cairn does not provide: {message}")]
    Imports { plugin: String, message: String },
    #[error("plugin {plugin}: initialization failed: {source}")]
    Initialization {
        plugin: String,
        #[source]
        source: crate::preinit::InitializationError,
    },
}

impl LoadError {
    /// The failure a call reports when its plugin could not be loaded.
    pub fn failure(&self) -> Failure {
        match self {
            // A hostile `initialize` is reported as what stopped it
            // (timeout, memory-limit, trap…), like a hostile call.
            LoadError::Initialization { source, .. } => source.failure(self.to_string()),
            _ => Failure::new(FailureKind::Load, self.to_string()),
        }
    }
}

/// Checks a user-supplied sha256 pin (`hex` or `sha256:hex`) against the
/// actual digest.
pub(crate) fn check_pin(plugin: &str, pin: &str, actual: &str) -> Result<(), LoadError> {
    let expected = pin
        .strip_prefix("sha256:")
        .unwrap_or(pin)
        .to_ascii_lowercase();
    if expected.len() != 64 || !expected.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(LoadError::InvalidPin {
            plugin: plugin.to_owned(),
            pin: pin.to_owned(),
        });
    }
    if expected != actual {
        return Err(LoadError::DigestMismatch {
            plugin: plugin.to_owned(),
            expected,
            actual: actual.to_owned(),
        });
    }
    Ok(())
}

/// Tells a component from a core module (or from garbage) by the 8-byte
/// preamble: `\0asm`, then version 1 / layer 0 for core modules and
/// version 0xd / layer 1 for components.
pub(crate) fn check_header(plugin: &str, wasm: &[u8]) -> Result<(), LoadError> {
    let not_wasm = |reason| LoadError::NotWasm {
        plugin: plugin.to_owned(),
        reason,
    };
    let Some(preamble) = wasm.get(..8) else {
        return Err(not_wasm("shorter than the 8-byte preamble"));
    };
    if &preamble[..4] != b"\0asm" {
        return Err(not_wasm("no `\\0asm` magic number"));
    }
    match preamble[6..8] {
        [0, 0] => Err(LoadError::CoreModule {
            plugin: plugin.to_owned(),
        }),
        [1, 0] => Ok(()),
        _ => Err(not_wasm("unknown layer in the preamble")),
    }
}

pub(crate) enum Pre {
    Validator(latest::validator_world::ValidatorPre<crate::call::CallState>),
    FaultInjector(latest::fault_injector_world::FaultInjectorPre<crate::call::CallState>),
}

pub(crate) struct PluginInner {
    pub(crate) name: String,
    pub(crate) sha256: String,
    pub(crate) size: usize,
    pub(crate) world: World,
    pub(crate) wit_version: String,
    pub(crate) cache: CacheStatus,
    pub(crate) imports: Vec<String>,
    pub(crate) engine: wasmtime::Engine,
    pub(crate) fuel_metering: bool,
    pub(crate) pre_initialized: bool,
    pub(crate) pre: Pre,
}

/// A plugin ready to be called. Cloning is cheap; every call gets a fresh
/// store and instance, so no state survives between calls.
#[derive(Clone)]
pub struct Plugin {
    pub(crate) inner: Arc<PluginInner>,
}

impl std::fmt::Debug for Plugin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Plugin")
            .field("name", &self.inner.name)
            .field("world", &self.inner.world)
            .field("wit_version", &self.inner.wit_version)
            .field("sha256", &self.inner.sha256)
            .finish_non_exhaustive()
    }
}

impl Plugin {
    pub(crate) fn new(
        runtime: &Runtime,
        name: &str,
        component: Component,
        sha256: String,
        size: usize,
        cache: CacheStatus,
    ) -> Result<Plugin, LoadError> {
        let engine = runtime.engine();
        let component_type = component.component_type();
        let exports: Vec<String> = component_type
            .exports(engine)
            .map(|(name, _)| name.to_owned())
            .collect();
        let imports: Vec<String> = component_type
            .imports(engine)
            .map(|(name, _)| name.to_owned())
            .collect();
        let (world, wit_version) = detect_world(name, &exports)?;
        let pre_initialized = exports.contains(&crate::preinit::initialization_export());
        let imports_error = |err: wasmtime::Error| LoadError::Imports {
            plugin: name.to_owned(),
            message: crate::error_chain(&err),
        };
        let pre = match world {
            World::Validator => {
                let pre = runtime
                    .validator_linker
                    .instantiate_pre(&component)
                    .map_err(imports_error)?;
                Pre::Validator(
                    latest::validator_world::ValidatorPre::new(pre).map_err(imports_error)?,
                )
            }
            World::FaultInjector => {
                let pre = runtime
                    .fault_injector_linker
                    .instantiate_pre(&component)
                    .map_err(imports_error)?;
                Pre::FaultInjector(
                    latest::fault_injector_world::FaultInjectorPre::new(pre)
                        .map_err(imports_error)?,
                )
            }
        };
        Ok(Plugin {
            inner: Arc::new(PluginInner {
                name: name.to_owned(),
                sha256,
                size,
                world,
                wit_version,
                cache,
                imports,
                engine: engine.clone(),
                fuel_metering: runtime.config().fuel_metering,
                pre_initialized,
                pre,
            }),
        })
    }

    pub fn name(&self) -> &str {
        &self.inner.name
    }

    /// Lowercase hex sha256 of the component bytes.
    pub fn sha256(&self) -> &str {
        &self.inner.sha256
    }

    /// Size of the component in bytes.
    pub fn size(&self) -> usize {
        self.inner.size
    }

    pub fn world(&self) -> World {
        self.inner.world
    }

    /// The contract version the plugin was built against (`0.1.0`).
    pub fn wit_version(&self) -> &str {
        &self.inner.wit_version
    }

    /// How the compiled code was obtained on load.
    pub fn cache_status(&self) -> CacheStatus {
        self.inner.cache
    }

    /// Whether the plugin exports `initialization`, so its calls start from
    /// the snapshot taken after its `initialize` ran (at first compile).
    pub fn pre_initialized(&self) -> bool {
        self.inner.pre_initialized
    }

    /// Names of everything the component imports (WASI and cairn interfaces).
    pub fn imports(&self) -> &[String] {
        &self.inner.imports
    }
}

/// Finds the cairn interface among the exports: `cairn:plugin/<iface>@<ver>`
/// (the optional `initialization` interface says nothing about the world).
fn detect_world(plugin: &str, exports: &[String]) -> Result<(World, String), LoadError> {
    let prefix = format!("{}/", bindings::PACKAGE);
    let initialization = format!("{prefix}initialization@");
    let Some(export) = exports
        .iter()
        .find(|name| name.starts_with(&prefix) && !name.starts_with(&initialization))
    else {
        return Err(LoadError::NotAPlugin {
            plugin: plugin.to_owned(),
            exports: if exports.is_empty() {
                "nothing".to_owned()
            } else {
                exports.join(", ")
            },
        });
    };
    let unsupported = || LoadError::UnsupportedVersion {
        plugin: plugin.to_owned(),
        export: export.clone(),
    };
    let (interface, version) = export[prefix.len()..]
        .split_once('@')
        .ok_or_else(unsupported)?;
    let world = [World::Validator, World::FaultInjector]
        .into_iter()
        .find(|world| world.export_interface() == interface)
        .ok_or_else(unsupported)?;
    if version != latest::VERSION {
        return Err(unsupported());
    }
    Ok((world, version.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pins_accept_prefix_and_case_and_name_both_digests_on_mismatch() {
        let actual = "ab".repeat(32);
        assert!(check_pin("p", &format!("sha256:{}", "AB".repeat(32)), &actual).is_ok());
        let err = check_pin("p", &"cd".repeat(32), &actual).unwrap_err();
        let text = err.to_string();
        assert!(
            text.contains(&"cd".repeat(32)) && text.contains(&actual),
            "{text}"
        );
        assert!(matches!(
            check_pin("p", "abc", &actual),
            Err(LoadError::InvalidPin { .. })
        ));
    }

    #[test]
    fn header_tells_core_modules_and_garbage_from_components() {
        let core = b"\0asm\x01\0\0\0";
        let component = b"\0asm\x0d\0\x01\0";
        assert!(matches!(
            check_header("p", core),
            Err(LoadError::CoreModule { .. })
        ));
        assert!(check_header("p", component).is_ok());
        assert!(matches!(
            check_header("p", b"\0asm"),
            Err(LoadError::NotWasm { .. })
        ));
        assert!(matches!(
            check_header("p", b"MZ\0\0\0\0\0\0"),
            Err(LoadError::NotWasm { .. })
        ));
    }

    #[test]
    fn world_and_version_come_from_the_exported_interface() {
        let exports = |names: &[&str]| names.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(
            detect_world("p", &exports(&["cairn:plugin/validation@0.1.0"])).unwrap(),
            (World::Validator, "0.1.0".to_owned())
        );
        assert_eq!(
            detect_world("p", &exports(&["cairn:plugin/fault-injection@0.1.0"]))
                .unwrap()
                .0,
            World::FaultInjector
        );
        assert_eq!(
            detect_world(
                "p",
                &exports(&[
                    "cairn:plugin/initialization@0.1.0",
                    "cairn:plugin/validation@0.1.0"
                ])
            )
            .unwrap()
            .0,
            World::Validator,
            "initialization is not a world"
        );
        assert!(matches!(
            detect_world("p", &exports(&["cairn:plugin/initialization@0.1.0"])),
            Err(LoadError::NotAPlugin { .. })
        ));
        assert!(matches!(
            detect_world("p", &exports(&["wasi:cli/run@0.2.0"])),
            Err(LoadError::NotAPlugin { .. })
        ));
        assert!(matches!(
            detect_world("p", &exports(&["cairn:plugin/validation@9.0.0"])),
            Err(LoadError::UnsupportedVersion { .. })
        ));
    }
}
