//! The on-disk compile cache: compiled components stored under a key made
//! of the wasm's sha256, the engine's compatibility hash (wasmtime version +
//! every setting that changes the generated code) and cairn's artifact
//! format, so a second load skips Cranelift (and a plugin's initialization).
//!
//! Why not wasmtime's built-in cache: it cannot tell the caller whether a
//! load was a hit (which `cairn plugin inspect` and the tests need), and it
//! adds a background worker and zstd for a job this small.

use std::fs;
use std::hash::{Hash, Hasher};
use std::io::Write;
use std::path::{Path, PathBuf};

use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::runtime::digest::Sha256Digest;
use wasmtime::Engine;
use wasmtime::component::Component;

/// Where a loaded component came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum CacheStatus {
    /// Already compiled in this process.
    Memory,
    /// Read from the on-disk cache; no compilation.
    Disk,
    /// Compiled now (and stored, when a cache directory is set).
    Compiled,
}

/// What cairn puts into an artifact besides the compiled wasm; part of every
/// key. Bumped when that changes, so older artifacts are never used:
/// format 2 holds the snapshot of a plugin that exports `initialization`
/// (format 1 held its uninitialised compile).
const ARTIFACT_FORMAT: &[u8] = b"cairn-artifact-2";

/// A directory of precompiled components (`<key>.cwasm`).
///
/// The directory must only be writable by the user running cairn: a
/// compiled artifact is native code and is loaded without re-validation.
#[derive(Debug, Clone)]
pub struct CompileCache {
    dir: PathBuf,
    engine_fingerprint: String,
}

/// Feeds `Hash` output into SHA-256, so the engine fingerprint is stable
/// across runs and builds (unlike `DefaultHasher`).
struct Sha256Hasher(Sha256);

impl Hasher for Sha256Hasher {
    fn finish(&self) -> u64 {
        // Only `write` is used; the digest is taken from the inner state.
        0
    }

    fn write(&mut self, bytes: &[u8]) {
        self.0.update(bytes);
    }
}

impl CompileCache {
    /// Opens (creating if needed) a cache directory for `engine`.
    pub fn open(dir: impl Into<PathBuf>, engine: &Engine) -> std::io::Result<Self> {
        let dir = dir.into();
        fs::create_dir_all(&dir)?;
        let mut hasher = Sha256Hasher(Sha256::new());
        engine.precompile_compatibility_hash().hash(&mut hasher);
        hasher.write(ARTIFACT_FORMAT);
        Ok(Self {
            dir,
            engine_fingerprint: hex::encode(hasher.0.finalize()),
        })
    }

    /// The cache directory from the environment: `$CAIRN_CACHE_DIR`, else
    /// `$XDG_CACHE_HOME/cairn`, else `$HOME/.cache/cairn`.
    pub fn default_dir() -> Option<PathBuf> {
        let env = |name| std::env::var_os(name).filter(|v| !v.is_empty());
        env("CAIRN_CACHE_DIR")
            .map(PathBuf::from)
            .or_else(|| env("XDG_CACHE_HOME").map(|d| PathBuf::from(d).join("cairn")))
            .or_else(|| env("HOME").map(|d| PathBuf::from(d).join(".cache").join("cairn")))
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Path of the artifact for a wasm with this sha256 (hex).
    pub fn artifact_path(&self, wasm_sha256: &Sha256Digest) -> PathBuf {
        let key = Sha256::new()
            .chain_update(wasm_sha256.to_hex().as_bytes())
            .chain_update(b"\0")
            .chain_update(self.engine_fingerprint.as_bytes())
            .finalize();
        self.dir.join(format!("{}.cwasm", hex::encode(key)))
    }

    /// Whether a compiled artifact for this wasm is on disk.
    pub fn contains(&self, wasm_sha256: &Sha256Digest) -> bool {
        self.artifact_path(wasm_sha256).is_file()
    }

    /// Returns the component from disk, or compiles and stores it.
    pub fn load_or_compile(
        &self,
        engine: &Engine,
        wasm: &[u8],
        wasm_sha256: &Sha256Digest,
    ) -> wasmtime::Result<(Component, CacheStatus)> {
        if let Some(component) = self.load(engine, wasm_sha256) {
            return Ok((component, CacheStatus::Disk));
        }
        let component = self.compile_and_store(engine, wasm, wasm_sha256)?;
        Ok((component, CacheStatus::Compiled))
    }

    /// The component stored for this wasm, if there is a usable one; an
    /// unusable entry (another engine, a damaged file) is removed.
    pub fn load(&self, engine: &Engine, wasm_sha256: &Sha256Digest) -> Option<Component> {
        let path = self.artifact_path(wasm_sha256);
        if !path.is_file() {
            return None;
        }
        // SAFETY: files in the cache directory are written only by `store`
        // below from `Engine::precompile_component` output, and renamed into
        // place whole; wasmtime checks the header's engine compatibility
        // before loading.
        match unsafe { Component::deserialize_file(engine, &path) } {
            Ok(component) => Some(component),
            Err(err) => {
                tracing::warn!(path = %path.display(), error = %err, "ignoring unusable compile cache entry");
                let _ = fs::remove_file(&path);
                None
            }
        }
    }

    /// Compiles `wasm` and stores it as the artifact of the plugin whose
    /// digest is `wasm_sha256` (for a pre-initialised plugin, `wasm` is its
    /// snapshot, not the file the digest is of). A failed write is logged,
    /// not an error: the component is still returned.
    pub fn compile_and_store(
        &self,
        engine: &Engine,
        wasm: &[u8],
        wasm_sha256: &Sha256Digest,
    ) -> wasmtime::Result<Component> {
        let path = self.artifact_path(wasm_sha256);
        let compiled = engine.precompile_component(wasm)?;
        if let Err(err) = self.store(&path, &compiled) {
            tracing::warn!(path = %path.display(), error = %err, "could not write compile cache entry");
        }
        // SAFETY: `compiled` was produced just above by this engine.
        unsafe { Component::deserialize(engine, &compiled) }
    }

    /// Writes `bytes` to a temporary file and renames it over `path`, so a
    /// reader never sees a partial artifact.
    fn store(&self, path: &Path, bytes: &[u8]) -> std::io::Result<()> {
        let mut temp = tempfile::NamedTempFile::new_in(&self.dir)?;
        temp.write_all(bytes)?;
        temp.as_file().sync_all()?;
        temp.persist(path).map_err(|err| err.error)?;
        Ok(())
    }
}
