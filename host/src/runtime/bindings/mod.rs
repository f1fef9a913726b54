//! Host bindings of the WIT contract, dispatched per contract version: one
//! frozen module per released version (`v0_1`, ...), the one detector that
//! reads a plugin's world and version from its exports, a linker per version
//! and world, and `Pre`, the enum over versions every call goes through.
//! Each version converts its types into the host's own (`verdict`,
//! `change`, `inject`), so nothing outside this module names a version.
//! A version need not define every world: 0.2.0 changed fault injection
//! only, so validators stay on 0.1.0.

use std::fmt;

use serde::Serialize;
use wasmtime::component::{Component, Linker};

use crate::runtime::call::CallState;
use crate::runtime::change::Checkpoint;
use crate::runtime::inject::{Decision, RequestInfo};
use crate::runtime::plugin::PluginInfo;
use crate::runtime::verdict::Verdict;

pub mod v0_1;
pub mod v0_2;

/// The WIT package every plugin's exports belong to.
pub const PACKAGE: &str = "cairn:plugin";

/// The interface a plugin may export next to its world's to be
/// pre-initialised (`initialize`, run once at first compile).
pub const INITIALIZATION_INTERFACE: &str = "initialization";

/// A released version of the `cairn:plugin` contract.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub enum ContractVersion {
    /// `cairn:plugin@0.1.0` (`wit/v0.1`).
    #[serde(rename = "0.1.0")]
    V0_1,
    /// `cairn:plugin@0.2.0` (`wit/v0.2`): fault injectors only.
    #[serde(rename = "0.2.0")]
    V0_2,
}

impl ContractVersion {
    /// Every version this cairn loads, oldest first.
    pub const SUPPORTED: &'static [ContractVersion] =
        &[ContractVersion::V0_1, ContractVersion::V0_2];

    /// The newest version that defines `world` (what `cairn plugin new`
    /// scaffolds against).
    pub fn latest(world: World) -> ContractVersion {
        Self::SUPPORTED
            .iter()
            .rev()
            .copied()
            .find(|version| version.defines(world))
            .unwrap_or(ContractVersion::V0_1)
    }

    /// Whether this version has a world `world`.
    pub fn defines(self, world: World) -> bool {
        match self {
            ContractVersion::V0_1 => true,
            ContractVersion::V0_2 => world == World::FaultInjector,
        }
    }

    /// The semver of the WIT package (`0.1.0`).
    pub fn as_str(self) -> &'static str {
        match self {
            ContractVersion::V0_1 => v0_1::VERSION,
            ContractVersion::V0_2 => v0_2::VERSION,
        }
    }

    fn parse(version: &str) -> Option<ContractVersion> {
        Self::SUPPORTED
            .iter()
            .copied()
            .find(|supported| supported.as_str() == version)
    }

    /// The full name of an interface of this version:
    /// `cairn:plugin/<interface>@<version>`.
    pub fn interface_name(self, interface: &str) -> String {
        format!("{PACKAGE}/{interface}@{}", self.as_str())
    }

    /// The list of supported versions, for messages: `0.1.0`.
    pub fn supported_list() -> String {
        Self::SUPPORTED
            .iter()
            .map(|v| v.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    }
}

impl fmt::Display for ContractVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

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

impl fmt::Display for World {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What a plugin's exports say about it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Contract {
    pub world: World,
    pub version: ContractVersion,
    /// Exports `initialization` of the same version (pre-initialised).
    pub initializes: bool,
}

/// Why a component's exports do not make it a cairn plugin.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DetectError {
    #[error(
        "exports no cairn interface (expected `{PACKAGE}/validation@<version>` or \
         `{PACKAGE}/fault-injection@<version>`, version one of {supported}); it exports: {exports}",
        supported = ContractVersion::supported_list()
    )]
    NotAPlugin { exports: String },
    #[error(
        "exports {export}, which this cairn does not support (supported: {PACKAGE}@{supported})",
        supported = ContractVersion::supported_list()
    )]
    UnsupportedVersion { export: String },
    #[error(
        "exports {export}, but contract {version} has no {world} world \
         (a {world} is built against {PACKAGE}@{latest})",
        latest = ContractVersion::latest(*world)
    )]
    WorldNotInVersion {
        export: String,
        world: World,
        version: ContractVersion,
    },
    #[error("exports both {first} and {second}; a plugin implements one world")]
    TwoWorlds { first: String, second: String },
}

/// The one world and version detector: finds the cairn interface among a
/// component's top-level export names (`cairn:plugin/<interface>@<ver>`).
/// `initialization` says nothing about the world; it counts only when its
/// version is the world's.
pub fn detect(exports: &[String]) -> Result<Contract, DetectError> {
    let prefix = format!("{PACKAGE}/");
    let mut found: Option<(&String, World, ContractVersion)> = None;
    let mut initialization_versions = Vec::new();
    for export in exports {
        let Some(rest) = export.strip_prefix(&prefix) else {
            continue;
        };
        let unsupported = || DetectError::UnsupportedVersion {
            export: export.clone(),
        };
        let (interface, version) = rest.split_once('@').ok_or_else(unsupported)?;
        if interface == INITIALIZATION_INTERFACE {
            initialization_versions.push(version);
            continue;
        }
        let world = [World::Validator, World::FaultInjector]
            .into_iter()
            .find(|world| world.export_interface() == interface)
            .ok_or_else(unsupported)?;
        let version = ContractVersion::parse(version).ok_or_else(unsupported)?;
        if !version.defines(world) {
            return Err(DetectError::WorldNotInVersion {
                export: export.clone(),
                world,
                version,
            });
        }
        if let Some((first, ..)) = found {
            return Err(DetectError::TwoWorlds {
                first: first.clone(),
                second: export.clone(),
            });
        }
        found = Some((export, world, version));
    }
    let Some((_, world, version)) = found else {
        return Err(DetectError::NotAPlugin {
            exports: if exports.is_empty() {
                "nothing".to_owned()
            } else {
                exports.join(", ")
            },
        });
    };
    Ok(Contract {
        world,
        version,
        initializes: initialization_versions.contains(&version.as_str()),
    })
}

/// The linkers of every contract version and world: WASI plus the cairn
/// imports of that version.
pub(crate) struct Linkers {
    v0_1: v0_1::Linkers,
    v0_2: v0_2::Linkers,
}

impl Linkers {
    pub(crate) fn new(engine: &wasmtime::Engine) -> wasmtime::Result<Linkers> {
        Ok(Linkers {
            v0_1: v0_1::Linkers::new(engine)?,
            v0_2: v0_2::Linkers::new(engine)?,
        })
    }

    /// The linker a plugin of this contract is instantiated with; `None`
    /// for a world its version does not define (which [`detect`] refuses).
    pub(crate) fn linker(&self, contract: &Contract) -> Option<&Linker<CallState>> {
        match contract.version {
            ContractVersion::V0_1 => Some(self.v0_1.linker(contract.world)),
            ContractVersion::V0_2 => self.v0_2.linker(contract.world),
        }
    }
}

/// A plugin pre-linked for its contract version and world: what every call
/// instantiates from.
pub(crate) enum Pre {
    V0_1(v0_1::Pre),
    V0_2(v0_2::Pre),
}

impl Pre {
    pub(crate) fn new(
        linkers: &Linkers,
        component: &Component,
        contract: &Contract,
    ) -> wasmtime::Result<Pre> {
        let linker = linkers.linker(contract).ok_or_else(|| {
            wasmtime::format_err!(
                "contract {} has no {} world",
                contract.version,
                contract.world
            )
        })?;
        let pre = linker.instantiate_pre(component)?;
        Ok(match contract.version {
            ContractVersion::V0_1 => Pre::V0_1(v0_1::Pre::new(pre, contract.world)?),
            ContractVersion::V0_2 => Pre::V0_2(v0_2::Pre::new(pre)?),
        })
    }

    /// Instantiates and calls `info()`.
    pub(crate) async fn info(
        &self,
        store: &mut wasmtime::Store<CallState>,
    ) -> wasmtime::Result<PluginInfo> {
        match self {
            Pre::V0_1(pre) => pre.info(store).await,
            Pre::V0_2(pre) => pre.info(store).await,
        }
    }

    /// Instantiates and calls `validate`; `None` if the plugin is not a
    /// validator.
    pub(crate) async fn validate(
        &self,
        store: &mut wasmtime::Store<CallState>,
        at: &Checkpoint,
        config: &str,
    ) -> Option<wasmtime::Result<Result<Verdict, String>>> {
        match self {
            Pre::V0_1(pre) => pre.validate(store, at, config).await,
            Pre::V0_2(_) => None,
        }
    }

    /// Instantiates and calls `decide`; `None` if the plugin is not a fault
    /// injector. The decision is converted, not yet checked.
    pub(crate) async fn decide(
        &self,
        store: &mut wasmtime::Store<CallState>,
        request: &RequestInfo,
        config: &str,
    ) -> Option<wasmtime::Result<Result<Decision, String>>> {
        match self {
            Pre::V0_1(pre) => pre.decide(store, request, config).await,
            Pre::V0_2(pre) => Some(pre.decide(store, request, config).await),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn exports(names: &[&str]) -> Vec<String> {
        names.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn world_and_version_come_from_the_exported_interface() {
        let contract = detect(&exports(&["cairn:plugin/validation@0.1.0"])).unwrap();
        assert_eq!(
            (contract.world, contract.version, contract.initializes),
            (World::Validator, ContractVersion::V0_1, false)
        );
        assert_eq!(
            detect(&exports(&["cairn:plugin/fault-injection@0.1.0"]))
                .unwrap()
                .world,
            World::FaultInjector
        );
        let v0_2 = detect(&exports(&[
            "cairn:plugin/fault-injection@0.2.0",
            "cairn:plugin/initialization@0.2.0",
        ]))
        .unwrap();
        assert_eq!(
            (v0_2.world, v0_2.version, v0_2.initializes),
            (World::FaultInjector, ContractVersion::V0_2, true)
        );
        assert_eq!(
            ContractVersion::latest(World::FaultInjector),
            ContractVersion::V0_2
        );
        assert_eq!(
            ContractVersion::latest(World::Validator),
            ContractVersion::V0_1
        );
    }

    #[test]
    fn initialization_is_not_a_world_and_counts_only_at_the_same_version() {
        let contract = detect(&exports(&[
            "cairn:plugin/initialization@0.1.0",
            "cairn:plugin/validation@0.1.0",
        ]))
        .unwrap();
        assert_eq!(contract.world, World::Validator);
        assert!(contract.initializes);
        assert!(matches!(
            detect(&exports(&["cairn:plugin/initialization@0.1.0"])),
            Err(DetectError::NotAPlugin { .. })
        ));
        assert!(
            !detect(&exports(&[
                "cairn:plugin/initialization@9.0.0",
                "cairn:plugin/validation@0.1.0",
            ]))
            .unwrap()
            .initializes
        );
    }

    #[test]
    fn foreign_unknown_and_double_exports_are_refused() {
        assert!(matches!(
            detect(&exports(&["wasi:cli/run@0.2.0"])),
            Err(DetectError::NotAPlugin { .. })
        ));
        assert!(matches!(detect(&[]), Err(DetectError::NotAPlugin { .. })));
        assert!(matches!(
            detect(&exports(&["cairn:plugin/validation@0.2.0"])),
            Err(DetectError::WorldNotInVersion { .. })
        ));
        assert!(matches!(
            detect(&exports(&["cairn:plugin/validation@9.0.0"])),
            Err(DetectError::UnsupportedVersion { .. })
        ));
        assert!(matches!(
            detect(&exports(&["cairn:plugin/validation"])),
            Err(DetectError::UnsupportedVersion { .. })
        ));
        assert!(matches!(
            detect(&exports(&[
                "cairn:plugin/validation@0.1.0",
                "cairn:plugin/fault-injection@0.1.0"
            ])),
            Err(DetectError::TwoWorlds { .. })
        ));
    }
}
