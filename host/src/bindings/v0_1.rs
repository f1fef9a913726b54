//! Host bindings of `cairn:plugin@0.1.0` (frozen with `wit/v0.1`): the
//! imports the host provides (logging, the change view) and conversions of
//! the plugin's answers into the host's own types.

use wasmtime::component::HasSelf;

use crate::call::CallState;
use crate::{change, sandbox, verdict};

/// The contract version these bindings implement.
pub const VERSION: &str = "0.1.0";

/// Bindings of the `validator` world.
pub mod validator_world {
    wasmtime::component::bindgen!({
        path: "../wit/v0.1",
        world: "validator",
        exports: { default: async },
    });
}

/// Bindings of the `fault-injector` world; shares the interfaces it has in
/// common with the validator world.
pub mod fault_injector_world {
    wasmtime::component::bindgen!({
        path: "../wit/v0.1",
        world: "fault-injector",
        exports: { default: async },
        with: {
            "cairn:plugin/types": super::validator_world::cairn::plugin::types,
            "cairn:plugin/logging": super::validator_world::cairn::plugin::logging,
        },
    });
}

pub use fault_injector_world::exports::cairn::plugin::fault_injection::{
    ErrorResponse, Fault, RequestInfo,
};
pub use validator_world::cairn::plugin::types::{Checkpoint, PluginInfo};
use validator_world::cairn::plugin::{change as wit_change, logging, types};

/// Adds the validator world's cairn imports to `linker`.
pub(crate) fn add_validator_imports(
    linker: &mut wasmtime::component::Linker<CallState>,
) -> wasmtime::Result<()> {
    validator_world::Validator::add_to_linker::<CallState, HasSelf<CallState>>(linker, |s| s)
}

/// Adds the fault-injector world's cairn imports to `linker`.
pub(crate) fn add_fault_injector_imports(
    linker: &mut wasmtime::component::Linker<CallState>,
) -> wasmtime::Result<()> {
    fault_injector_world::FaultInjector::add_to_linker::<CallState, HasSelf<CallState>>(
        linker,
        |s| s,
    )
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

impl wit_change::Host for CallState {
    fn documents(&mut self) -> Vec<wit_change::Document> {
        self.change()
            .documents()
            .map(|doc| wit_change::Document {
                path: doc.path.clone(),
                media_type: doc.media_type.clone(),
                status: match doc.status() {
                    change::DocumentStatus::Added => wit_change::DocStatus::Added,
                    change::DocumentStatus::Modified => wit_change::DocStatus::Modified,
                    change::DocumentStatus::Deleted => wit_change::DocStatus::Deleted,
                    change::DocumentStatus::Unchanged => wit_change::DocStatus::Unchanged,
                },
            })
            .collect()
    }

    fn before(&mut self, path: String) -> Option<Vec<u8>> {
        self.change().document(&path)?.before.clone()
    }

    fn after(&mut self, path: String) -> Option<Vec<u8>> {
        self.change().document(&path)?.after.clone()
    }

    fn metrics(&mut self) -> Vec<wit_change::Metric> {
        self.change()
            .metrics
            .iter()
            .map(|m| wit_change::Metric {
                name: m.name.clone(),
                value: m.value,
            })
            .collect()
    }
}

impl From<&change::Checkpoint> for Checkpoint {
    fn from(at: &change::Checkpoint) -> Self {
        Checkpoint {
            name: at.name.clone(),
            index: at.index,
            environment: at.environment.clone(),
            rollout_percent: at.rollout_percent,
            change_id: at.change_id.clone(),
        }
    }
}

impl From<PluginInfo> for crate::plugin::PluginInfo {
    fn from(info: PluginInfo) -> Self {
        crate::plugin::PluginInfo {
            name: info.name,
            version: info.version,
            description: info.description,
            config_schema: info.config_schema,
        }
    }
}

impl From<types::Verdict> for verdict::Verdict {
    fn from(v: types::Verdict) -> Self {
        verdict::Verdict {
            outcome: match v.outcome {
                types::Outcome::Pass => verdict::Outcome::Pass,
                types::Outcome::Warn => verdict::Outcome::Warn,
                types::Outcome::Fail => verdict::Outcome::Fail,
                types::Outcome::Inconclusive => verdict::Outcome::Inconclusive,
            },
            findings: v.findings.into_iter().map(Into::into).collect(),
            summary: v.summary,
            findings_dropped: 0,
        }
    }
}

impl From<types::Finding> for verdict::Finding {
    fn from(f: types::Finding) -> Self {
        verdict::Finding {
            rule: f.rule,
            severity: match f.severity {
                types::Severity::Info => verdict::Severity::Info,
                types::Severity::Warning => verdict::Severity::Warning,
                types::Severity::Error => verdict::Severity::Error,
            },
            message: f.message,
            location: f.location.map(|l| verdict::Location {
                document: l.document,
                pointer: l.pointer,
                line: l.line,
                column: l.column,
            }),
            hint: f.hint,
        }
    }
}
