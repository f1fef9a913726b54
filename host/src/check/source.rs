//! Plugins given as Rust source: building a Cargo project (a plugin crate or
//! a workspace of them) for `wasm32-wasip2` and finding the components it
//! produced, so `cairn validate plugins/no-deletes` works on a fresh clone.

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// The target plugins are built for.
pub const PLUGIN_TARGET: &str = "wasm32-wasip2";

/// Why a plugin project could not be built.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    #[error("cannot run cargo to build {project}")]
    Spawn {
        project: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "building {project} failed (see cargo's output above); is the target installed? \
         `rustup target add {PLUGIN_TARGET}`"
    )]
    Failed { project: PathBuf },
    #[error("building {project} produced no component (does it set `crate-type = [\"cdylib\"]`?)")]
    NoComponent { project: PathBuf },
}

/// Process groups of the `cargo build`s this process is running.
fn running_builds() -> std::sync::MutexGuard<'static, Vec<u32>> {
    static RUNNING: std::sync::Mutex<Vec<u32>> = std::sync::Mutex::new(Vec::new());
    RUNNING
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Kills every `cargo build` this process started, with its rustc and
/// build-script processes (each build runs in its own process group). For
/// a process that is about to exit on a signal: a build left running would
/// hold Cargo's lock and burn CPU for nothing.
pub fn kill_running_builds() {
    for &group in running_builds().iter() {
        if let Ok(group) = i32::try_from(group) {
            // SAFETY: kill(2) with a negative pid signals that process
            // group; it has no memory-safety preconditions.
            unsafe {
                libc::kill(-group, libc::SIGKILL);
            }
        }
    }
}

/// Whether `path` is a Cargo project directory rather than a `.wasm` file.
pub fn is_cargo_project(path: &Path) -> bool {
    path.is_dir() && path.join("Cargo.toml").is_file()
}

/// Builds the Cargo project at `dir` in release mode for [`PLUGIN_TARGET`]
/// and returns the components it produced: the package's own, or, for a
/// workspace root, those of every member. Cargo's errors go to stderr.
pub fn build_cargo_project(dir: &Path) -> Result<Vec<PathBuf>, BuildError> {
    let manifest = dir.join("Cargo.toml");
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let spawn_error = |source| BuildError::Spawn {
        project: dir.to_owned(),
        source,
    };
    let child = Command::new(cargo)
        .args(["build", "--quiet", "--release", "--target", PLUGIN_TARGET])
        .args(["--message-format", "json-render-diagnostics"])
        .arg("--manifest-path")
        .arg(&manifest)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        // Its own process group, so cairn can stop cargo and every rustc
        // and build script under it (see `kill_running_builds`).
        .process_group(0)
        .spawn()
        .map_err(spawn_error)?;
    let pid = child.id();
    running_builds().push(pid);
    let output = child.wait_with_output();
    running_builds().retain(|&p| p != pid);
    let output = output.map_err(spawn_error)?;
    if !output.status.success() {
        return Err(BuildError::Failed {
            project: dir.to_owned(),
        });
    }
    let manifest = manifest.canonicalize().unwrap_or(manifest);
    let artifacts: Vec<(PathBuf, PathBuf)> = String::from_utf8_lossy(&output.stdout)
        .lines()
        .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
        .filter(|message| message["reason"] == "compiler-artifact")
        .filter(|message| {
            message["target"]["kind"]
                .as_array()
                .is_some_and(|kinds| kinds.iter().any(|kind| kind == "cdylib"))
        })
        .filter_map(|message| {
            let package = PathBuf::from(message["manifest_path"].as_str()?);
            let wasm = message["filenames"]
                .as_array()?
                .iter()
                .filter_map(|name| name.as_str())
                .find(|name| name.ends_with(".wasm"))?;
            Some((package, PathBuf::from(wasm)))
        })
        .collect();
    let own: Vec<PathBuf> = artifacts
        .iter()
        .filter(|(package, _)| *package == manifest)
        .map(|(_, wasm)| wasm.clone())
        .collect();
    let components = if own.is_empty() {
        artifacts.into_iter().map(|(_, wasm)| wasm).collect()
    } else {
        own
    };
    if components.is_empty() {
        return Err(BuildError::NoComponent {
            project: dir.to_owned(),
        });
    }
    Ok(components)
}
