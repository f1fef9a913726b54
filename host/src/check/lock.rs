//! Pinning a plan's plugins: the digest of every plugin's component
//! (Cargo projects built first, each loaded to prove it is a usable plugin),
//! compared with the plan's pins and written into the plan file in place,
//! the rest of the file kept as it is.

use std::path::{Path, PathBuf};

use crate::check::plan::Plan;
use crate::check::{CheckError, component_file};
use crate::runtime::digest::Sha256Digest;
use crate::runtime::{PluginBytes, Runtime};

/// Where one plugin's pin stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PinStatus {
    /// The plan pins this digest already.
    Current,
    /// The plan has no pin.
    Missing,
    /// The plan pins another digest.
    Stale,
}

/// One plugin's digest and pin.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PluginPin {
    pub plugin: String,
    pub digest: Sha256Digest,
    pub status: PinStatus,
}

/// Why the plan file could not be rewritten.
#[derive(Debug, thiserror::Error)]
pub enum LockError {
    #[error(transparent)]
    Check(#[from] CheckError),
    #[error("cannot read {}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot parse {} for editing", path.display())]
    Parse {
        path: PathBuf,
        #[source]
        source: toml_edit::TomlError,
    },
    #[error("cannot find [plugins.{plugin}] in {}", path.display())]
    NoTable { plugin: String, path: PathBuf },
    #[error("cannot write {}", path.display())]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// The digest of every plugin of `plan` and whether its pin is current.
/// Each component is loaded, so only usable plugins get pinned.
pub fn plugin_pins(runtime: &Runtime, plan: &Plan) -> Result<Vec<PluginPin>, CheckError> {
    plan.plugins
        .iter()
        .map(|(name, entry)| {
            let file = component_file(name, &entry.path)?;
            let load_error = |source| CheckError::Load {
                plugin: name.clone(),
                path: file.clone(),
                source: Box::new(source),
            };
            let bytes = PluginBytes::read(&file).map_err(load_error)?.named(name);
            let plugin = runtime.load(&bytes, None).map_err(load_error)?;
            let digest = plugin.digest();
            let status = match entry.sha256 {
                Some(pin) if pin == digest => PinStatus::Current,
                Some(_) => PinStatus::Stale,
                None => PinStatus::Missing,
            };
            Ok(PluginPin {
                plugin: name.clone(),
                digest,
                status,
            })
        })
        .collect()
}

/// Writes `sha256 = "..."` into the `[plugins.NAME]` table of every pin that
/// is not current, keeping the rest of the file (comments, order) as it is.
/// Returns how many pins were written.
pub fn write_pins(plan_file: &Path, pins: &[PluginPin]) -> Result<usize, LockError> {
    let text = crate::runtime::input::read_limited_text(
        plan_file,
        "plan",
        crate::runtime::input::MAX_PLAN_BYTES,
    )
    .map_err(|source| LockError::Read {
        path: plan_file.to_owned(),
        source,
    })?;
    let mut document: toml_edit::DocumentMut = text.parse().map_err(|source| LockError::Parse {
        path: plan_file.to_owned(),
        source,
    })?;
    let mut written = 0;
    for pin in pins.iter().filter(|pin| pin.status != PinStatus::Current) {
        let table = document
            .get_mut("plugins")
            .and_then(|plugins| plugins.get_mut(pin.plugin.as_str()))
            .and_then(|plugin| plugin.as_table_like_mut())
            .ok_or_else(|| LockError::NoTable {
                plugin: pin.plugin.clone(),
                path: plan_file.to_owned(),
            })?;
        table.insert("sha256", toml_edit::value(pin.digest.to_hex()));
        written += 1;
    }
    if written > 0 {
        std::fs::write(plan_file, document.to_string()).map_err(|source| LockError::Write {
            path: plan_file.to_owned(),
            source,
        })?;
    }
    Ok(written)
}
