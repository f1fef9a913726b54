//! A loaded plugin: why loading fails (`LoadError`, causes kept), the
//! component header check, the one pre-compile scan of a component's exports
//! and core instantiations, and the pre-linked plugin every call
//! instantiates from.

use std::path::PathBuf;
use std::sync::Arc;

use serde::Serialize;
use wasmtime::component::Component;

use crate::runtime::Runtime;
use crate::runtime::admission::{Admission, InstanceFootprint};
use crate::runtime::bindings::{Contract, ContractVersion, DetectError, Pre, World};
use crate::runtime::cache::CacheStatus;
use crate::runtime::digest::Sha256Digest;
use crate::runtime::failure::{Failure, FailureKind};

/// What a plugin says about itself (`info()`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PluginInfo {
    pub name: String,
    pub version: String,
    pub description: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub config_schema: Option<String>,
}

/// A cause kept as it came (a wasmtime, wasmparser or I/O error), so the
/// command line can print each "caused by" line.
pub type Cause = Box<dyn std::error::Error + Send + Sync + 'static>;

/// Why a plugin could not be loaded (reported with kind `load`).
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("cannot read plugin {}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("plugin {plugin}: sha256 mismatch: the plan pins {expected} but the file is {actual}")]
    DigestMismatch {
        plugin: String,
        expected: Sha256Digest,
        actual: Sha256Digest,
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
    #[error("plugin {plugin}: invalid component")]
    Compile {
        plugin: String,
        #[source]
        source: Cause,
    },
    #[error("plugin {plugin}: not a cairn plugin")]
    Contract {
        plugin: String,
        #[source]
        source: DetectError,
    },
    #[error("plugin {plugin}: needs imports cairn does not provide")]
    Imports {
        plugin: String,
        #[source]
        source: Cause,
    },
    #[error("plugin {plugin}: initialization failed")]
    Initialization {
        plugin: String,
        #[source]
        source: crate::runtime::preinit::InitializationError,
    },
    #[error(
        "plugin {plugin}: one instance needs {} core instances, {} memories and {} tables; \
         the runtime's pool holds {} core instances, {} memories and {} tables",
        footprint.core_instances, footprint.memories, footprint.tables,
        capacity.core_instances, capacity.memories, capacity.tables
    )]
    TooLargeForPool {
        plugin: String,
        footprint: InstanceFootprint,
        capacity: crate::runtime::admission::PoolCapacity,
    },
}

impl LoadError {
    /// The failure a call reports when its plugin could not be loaded: the
    /// message carries the whole cause chain.
    pub fn failure(&self) -> Failure {
        let message = crate::error_chain(self);
        match self {
            // A hostile `initialize` is reported as what stopped it
            // (timeout, memory-limit, trap…), like a hostile call.
            LoadError::Initialization { source, .. } => source.failure(message),
            _ => Failure::new(FailureKind::Load, message),
        }
    }
}

/// What loading reads from a component's binary before compiling it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct ComponentScan {
    /// Top-level export names; `None` if the binary does not parse (the
    /// compiler then reports why).
    pub(crate) exports: Option<Vec<String>>,
    /// `(core instance (instantiate ...))` entries at every nesting level.
    pub(crate) core_instantiations: u32,
}

/// Reads a component's top-level export names and counts its core
/// instantiations in one pass, without compiling or validating it.
pub(crate) fn scan_component(wasm: &[u8]) -> ComponentScan {
    use wasmparser::{Instance, Parser, Payload};
    let mut exports = Vec::new();
    let mut core_instantiations: u32 = 0;
    // `parse_all` descends into nested modules and components; only
    // exports at depth 0 are the component's own.
    let mut depth = 0usize;
    for payload in Parser::new(0).parse_all(wasm) {
        match payload {
            Ok(Payload::ModuleSection { .. } | Payload::ComponentSection { .. }) => depth += 1,
            Ok(Payload::End(_)) => depth = depth.saturating_sub(1),
            Ok(Payload::ComponentExportSection(section)) if depth == 0 => {
                for export in section {
                    match export {
                        Ok(export) => exports.push(export.name.name.to_owned()),
                        Err(_) => return ComponentScan::default(),
                    }
                }
            }
            Ok(Payload::InstanceSection(section)) => {
                for instance in section {
                    match instance {
                        Ok(Instance::Instantiate { .. }) => {
                            core_instantiations = core_instantiations.saturating_add(1);
                        }
                        Ok(_) => {}
                        Err(_) => return ComponentScan::default(),
                    }
                }
            }
            Ok(_) => {}
            Err(_) => return ComponentScan::default(),
        }
    }
    ComponentScan {
        exports: Some(exports),
        core_instantiations: core_instantiations.max(1),
    }
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

pub(crate) struct PluginInner {
    pub(crate) name: String,
    pub(crate) digest: Sha256Digest,
    pub(crate) size: usize,
    pub(crate) contract: Contract,
    pub(crate) cache: CacheStatus,
    pub(crate) imports: Vec<String>,
    pub(crate) engine: wasmtime::Engine,
    pub(crate) fuel_metering: bool,
    pub(crate) admission: Arc<Admission>,
    pub(crate) footprint: InstanceFootprint,
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
            .field("world", &self.inner.contract.world)
            .field("version", &self.inner.contract.version)
            .field("digest", &self.inner.digest)
            .finish_non_exhaustive()
    }
}

/// Everything about a plugin that is known once it is compiled.
pub(crate) struct LoadedComponent {
    pub(crate) component: Component,
    pub(crate) contract: Contract,
    pub(crate) digest: Sha256Digest,
    pub(crate) size: usize,
    pub(crate) cache: CacheStatus,
    pub(crate) footprint: InstanceFootprint,
}

impl Plugin {
    pub(crate) fn new(
        runtime: &Runtime,
        name: &str,
        loaded: LoadedComponent,
    ) -> Result<Plugin, LoadError> {
        let engine = runtime.engine();
        let imports: Vec<String> = loaded
            .component
            .component_type()
            .imports(engine)
            .map(|(name, _)| name.to_owned())
            .collect();
        let pre =
            Pre::new(runtime.linkers(), &loaded.component, &loaded.contract).map_err(|err| {
                LoadError::Imports {
                    plugin: name.to_owned(),
                    source: err.into_boxed_dyn_error(),
                }
            })?;
        Ok(Plugin {
            inner: Arc::new(PluginInner {
                name: name.to_owned(),
                digest: loaded.digest,
                size: loaded.size,
                contract: loaded.contract,
                cache: loaded.cache,
                imports,
                engine: engine.clone(),
                fuel_metering: runtime.config().fuel_metering,
                admission: runtime.admission(),
                footprint: loaded.footprint,
                pre,
            }),
        })
    }

    pub fn name(&self) -> &str {
        &self.inner.name
    }

    /// The sha256 of the component file.
    pub fn digest(&self) -> Sha256Digest {
        self.inner.digest
    }

    /// Lowercase hex sha256 of the component file.
    pub fn sha256(&self) -> String {
        self.inner.digest.to_hex()
    }

    /// Size of the component in bytes.
    pub fn size(&self) -> usize {
        self.inner.size
    }

    pub fn world(&self) -> World {
        self.inner.contract.world
    }

    /// The contract version the plugin was built against.
    pub fn contract_version(&self) -> ContractVersion {
        self.inner.contract.version
    }

    /// How the compiled code was obtained on load.
    pub fn cache_status(&self) -> CacheStatus {
        self.inner.cache
    }

    /// Whether the plugin exports `initialization`, so its calls start from
    /// the snapshot taken after its `initialize` ran (at first compile).
    pub fn pre_initialized(&self) -> bool {
        self.inner.contract.initializes
    }

    /// Names of everything the component imports (WASI and cairn interfaces).
    pub fn imports(&self) -> &[String] {
        &self.inner.imports
    }

    /// What one instance of this plugin takes from the runtime's pool.
    pub fn footprint(&self) -> InstanceFootprint {
        self.inner.footprint
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
    fn scan_reads_top_level_exports_and_counts_core_instantiations() {
        let wasm = wat::parse_str(
            r#"(component
                 (core module $m (func (export "f")))
                 (core instance $a (instantiate $m))
                 (core instance $b (instantiate $m))
                 (component $inner
                   (core module $n)
                   (core instance (instantiate $n)))
                 (instance (instantiate $inner))
                 (export "cairn:plugin/validation@0.1.0" (core module $m)))"#,
        )
        .unwrap();
        let scan = scan_component(&wasm);
        assert_eq!(
            scan.exports,
            Some(vec!["cairn:plugin/validation@0.1.0".to_owned()])
        );
        assert_eq!(scan.core_instantiations, 3);
        assert_eq!(scan_component(b"\0asm\x0d\0\x01\0\xff").exports, None);
    }
}
