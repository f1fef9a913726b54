//! The on-disk compile cache: compiled components stored under a key made
//! of the wasm's sha256, the engine's compatibility hash (wasmtime version +
//! every setting that changes the generated code) and cairn's artifact
//! format, so a second load skips Cranelift (and a plugin's initialization).
//!
//! A compiled artifact is native code that wasmtime loads without
//! re-validating it, so nothing read from the cache is trusted:
//!
//! - the directory must belong to the user running cairn and be writable by
//!   nobody else ([`CompileCache::open`] refuses it otherwise, saying how to
//!   fix it);
//! - every artifact `<key>.cwasm` has a seal `<key>.seal` written after it:
//!   the wasm digest and engine it was compiled for, the artifact's size and
//!   its SHA-256. A load reads the artifact into memory (never maps a file
//!   that could change underneath), checks it against the seal and the seal
//!   against the plugin being loaded, and only then deserializes it. A
//!   damaged artifact, a seal for another plugin, or another plugin's
//!   artifact copied over this one is discarded and recompiled;
//! - temporary files a killed writer left behind are removed on open.
//!
//! Why not wasmtime's built-in cache: it cannot tell the caller whether a
//! load was a hit (which `cairn plugin inspect` and the tests need), it
//! maps artifacts without authenticating them, and it adds a background
//! worker and zstd for a job this small.

use std::fs::{self, File};
use std::hash::{Hash, Hasher};
use std::io::{Read, Write};
use std::os::unix::fs::{DirBuilderExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

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
/// (format 1 held its uninitialised compile); format 3 is format 2 with a
/// seal beside each artifact.
const ARTIFACT_FORMAT: &[u8] = b"cairn-artifact-3";

/// First line of a seal file.
const SEAL_MAGIC: &str = "cairn-seal 1";

/// Largest artifact cairn reads back (a Python plugin compiles to ~35 MB).
pub const MAX_ARTIFACT_BYTES: u64 = 1 << 30;

/// Largest seal file cairn reads (one is ~250 bytes).
const MAX_SEAL_BYTES: u64 = 4 << 10;

/// Prefix of the temporary files artifacts and seals are written to before
/// they are renamed into place.
const TEMP_PREFIX: &str = ".cairn-tmp-";

/// Temporary files older than this were left by a writer that died: a live
/// writer renames its file within seconds.
const STALE_TEMP_AGE: Duration = Duration::from_secs(10 * 60);

/// Why a cache directory cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum CacheDirError {
    #[error("cannot create or read the directory")]
    Io(#[source] std::io::Error),
    #[error("it is not a directory")]
    NotADirectory,
    #[error(
        "it belongs to user id {owner}, not to the user running cairn ({current}); \
         a compiled artifact is native code, so the cache must be yours alone: \
         point CAIRN_CACHE_DIR at a directory you own"
    )]
    NotOwned { owner: u32, current: u32 },
    #[error(
        "others can write to it (mode {mode:04o}); a compiled artifact is native \
         code, so the cache must be writable by you alone: run `chmod go-w {}`",
        path.display()
    )]
    WritableByOthers { path: PathBuf, mode: u32 },
}

/// Why a stored artifact was not used (it is then removed and recompiled).
#[derive(Debug, thiserror::Error)]
enum Rejected {
    #[error("no seal")]
    NoSeal,
    #[error("cannot read: {0}")]
    Io(#[from] std::io::Error),
    #[error("malformed seal")]
    MalformedSeal,
    #[error("sealed for another plugin or engine")]
    OtherPlugin,
    #[error("not a regular file")]
    NotAFile,
    #[error("{actual} bytes, sealed as {sealed}")]
    Size { actual: u64, sealed: u64 },
    #[error("its SHA-256 does not match its seal")]
    Digest,
    #[error("wasmtime refused it: {0}")]
    Deserialize(String),
}

/// A directory of precompiled components (`<key>.cwasm` + `<key>.seal`).
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

/// What a seal says about the artifact beside it.
#[derive(Debug, PartialEq, Eq)]
struct Seal {
    wasm: String,
    engine: String,
    size: u64,
    artifact: String,
}

impl Seal {
    fn render(&self) -> String {
        format!(
            "{SEAL_MAGIC}\nwasm {}\nengine {}\nsize {}\nartifact {}\n",
            self.wasm, self.engine, self.size, self.artifact
        )
    }

    fn parse(text: &str) -> Option<Seal> {
        let mut lines = text.lines();
        if lines.next()? != SEAL_MAGIC {
            return None;
        }
        let mut field = |name: &str| {
            lines
                .next()?
                .strip_prefix(name)?
                .strip_prefix(' ')
                .map(str::to_owned)
        };
        let wasm = field("wasm")?;
        let engine = field("engine")?;
        let size = field("size")?.parse().ok()?;
        let artifact = field("artifact")?;
        Some(Seal {
            wasm,
            engine,
            size,
            artifact,
        })
    }
}

impl CompileCache {
    /// Opens (creating it, private to the user, if needed) a cache directory
    /// for `engine`; refuses one that another user owns or others can write
    /// to, and removes temporary files a killed writer left there.
    pub fn open(dir: impl Into<PathBuf>, engine: &Engine) -> Result<Self, CacheDirError> {
        let dir = dir.into();
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&dir)
            .map_err(CacheDirError::Io)?;
        check_private(&dir)?;
        remove_stale_temp_files(&dir);
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

    /// Path of the seal of the artifact for a wasm with this sha256.
    pub fn seal_path(&self, wasm_sha256: &Sha256Digest) -> PathBuf {
        self.artifact_path(wasm_sha256).with_extension("seal")
    }

    /// Whether a compiled artifact and its seal for this wasm are on disk
    /// (not whether they verify: [`CompileCache::load`] checks that).
    pub fn contains(&self, wasm_sha256: &Sha256Digest) -> bool {
        self.artifact_path(wasm_sha256).is_file() && self.seal_path(wasm_sha256).is_file()
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

    /// The component stored for this wasm, if there is one that verifies
    /// against its seal; an entry that does not (damaged, swapped, for
    /// another engine) is removed, so the caller recompiles it.
    pub fn load(&self, engine: &Engine, wasm_sha256: &Sha256Digest) -> Option<Component> {
        let path = self.artifact_path(wasm_sha256);
        let seal_path = self.seal_path(wasm_sha256);
        if !path.exists() && !seal_path.exists() {
            return None;
        }
        match self.verified_load(engine, wasm_sha256, &path, &seal_path) {
            Ok(component) => Some(component),
            Err(reason) => {
                tracing::warn!(
                    path = %path.display(),
                    %reason,
                    "discarding compile cache entry; recompiling"
                );
                let _ = fs::remove_file(&seal_path);
                let _ = fs::remove_file(&path);
                None
            }
        }
    }

    fn verified_load(
        &self,
        engine: &Engine,
        wasm_sha256: &Sha256Digest,
        path: &Path,
        seal_path: &Path,
    ) -> Result<Component, Rejected> {
        let seal = match read_regular_file(seal_path, MAX_SEAL_BYTES) {
            Err(Rejected::Io(err)) if err.kind() == std::io::ErrorKind::NotFound => {
                return Err(Rejected::NoSeal);
            }
            other => other?,
        };
        let seal = std::str::from_utf8(&seal)
            .ok()
            .and_then(Seal::parse)
            .ok_or(Rejected::MalformedSeal)?;
        if seal.wasm != wasm_sha256.to_hex() || seal.engine != self.engine_fingerprint {
            return Err(Rejected::OtherPlugin);
        }
        let bytes = read_regular_file(path, seal.size.min(MAX_ARTIFACT_BYTES))?;
        if bytes.len() as u64 != seal.size {
            return Err(Rejected::Size {
                actual: bytes.len() as u64,
                sealed: seal.size,
            });
        }
        if hex::encode(Sha256::digest(&bytes)) != seal.artifact {
            return Err(Rejected::Digest);
        }
        // SAFETY: `bytes` is in memory (no file can change underneath), and
        // its SHA-256 matches a seal written by `store` below for exactly
        // this wasm digest and engine, right after writing
        // `Engine::precompile_component` output; the directory holding both
        // is writable by the current user alone (checked on open).
        unsafe { Component::deserialize(engine, &bytes) }
            .map_err(|err| Rejected::Deserialize(err.to_string()))
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
        let compiled = engine.precompile_component(wasm)?;
        if let Err(err) = self.store(wasm_sha256, &compiled) {
            tracing::warn!(dir = %self.dir.display(), error = %err, "could not write compile cache entry");
        }
        // SAFETY: `compiled` was produced just above by this engine.
        unsafe { Component::deserialize(engine, &compiled) }
    }

    /// Writes the artifact, then its seal, each to a temporary file renamed
    /// into place, so a reader never sees a partial file and an artifact
    /// whose seal was not written yet is not used.
    fn store(&self, wasm_sha256: &Sha256Digest, artifact: &[u8]) -> std::io::Result<()> {
        let seal = Seal {
            wasm: wasm_sha256.to_hex(),
            engine: self.engine_fingerprint.clone(),
            size: artifact.len() as u64,
            artifact: hex::encode(Sha256::digest(artifact)),
        };
        let seal_path = self.seal_path(wasm_sha256);
        // A stale seal must not vouch for the new artifact while it lands.
        match fs::remove_file(&seal_path) {
            Err(err) if err.kind() != std::io::ErrorKind::NotFound => return Err(err),
            _ => {}
        }
        self.write_atomically(&self.artifact_path(wasm_sha256), artifact)?;
        self.write_atomically(&seal_path, seal.render().as_bytes())
    }

    fn write_atomically(&self, path: &Path, bytes: &[u8]) -> std::io::Result<()> {
        let mut temp = tempfile::Builder::new()
            .prefix(TEMP_PREFIX)
            .tempfile_in(&self.dir)?;
        temp.write_all(bytes)?;
        temp.as_file().sync_all()?;
        temp.persist(path).map_err(|err| err.error)?;
        Ok(())
    }
}

/// The effective user id of this process.
fn current_uid() -> u32 {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() }
}

/// Refuses a cache directory that another user owns or others can write to
/// (sticky `1777` included: others could still plant files under new keys).
fn check_private(dir: &Path) -> Result<(), CacheDirError> {
    let meta = fs::metadata(dir).map_err(CacheDirError::Io)?;
    if !meta.is_dir() {
        return Err(CacheDirError::NotADirectory);
    }
    let current = current_uid();
    if meta.uid() != current {
        return Err(CacheDirError::NotOwned {
            owner: meta.uid(),
            current,
        });
    }
    let mode = meta.permissions().mode() & 0o7777;
    if mode & 0o022 != 0 {
        return Err(CacheDirError::WritableByOthers {
            path: dir.to_owned(),
            mode,
        });
    }
    Ok(())
}

/// Removes temporary files older than [`STALE_TEMP_AGE`]: a writer killed
/// between creating and renaming one leaves it behind.
fn remove_stale_temp_files(dir: &Path) {
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    let now = SystemTime::now();
    for entry in entries.flatten() {
        let name = entry.file_name();
        let name = name.to_string_lossy();
        // `.tmp` is what cairn before format 3 used (tempfile's default).
        if !(name.starts_with(TEMP_PREFIX) || name.starts_with(".tmp")) {
            continue;
        }
        let Ok(meta) = entry.metadata() else { continue };
        let age = meta
            .modified()
            .ok()
            .and_then(|modified| now.duration_since(modified).ok());
        if meta.is_file()
            && age.is_some_and(|age| age >= STALE_TEMP_AGE)
            && let Err(err) = fs::remove_file(entry.path())
        {
            tracing::debug!(path = %entry.path().display(), error = %err, "cannot remove stale temp file");
        }
    }
}

/// Reads a regular file of at most `limit` bytes into memory; opening does
/// not block on a FIFO and anything that is not a regular file is refused.
fn read_regular_file(path: &Path, limit: u64) -> Result<Vec<u8>, Rejected> {
    use std::os::unix::fs::OpenOptionsExt;
    let file = File::options()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_NOFOLLOW)
        .open(path)?;
    let meta = file.metadata()?;
    if !meta.is_file() {
        return Err(Rejected::NotAFile);
    }
    let mut bytes = Vec::with_capacity(meta.len().min(limit) as usize);
    file.take(limit.saturating_add(1)).read_to_end(&mut bytes)?;
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_seal_round_trips_and_rejects_anything_else() {
        let seal = Seal {
            wasm: "ab".repeat(32),
            engine: "cd".repeat(32),
            size: 1234,
            artifact: "ef".repeat(32),
        };
        assert_eq!(Seal::parse(&seal.render()), Some(seal));
        assert_eq!(Seal::parse(""), None);
        assert_eq!(
            Seal::parse("cairn-seal 2\nwasm a\nengine b\nsize 1\nartifact c\n"),
            None
        );
        assert_eq!(
            Seal::parse("cairn-seal 1\nwasm a\nengine b\nsize x\nartifact c\n"),
            None
        );
        assert_eq!(
            Seal::parse("cairn-seal 1\nengine b\nwasm a\nsize 1\nartifact c\n"),
            None
        );
    }

    #[test]
    fn a_directory_others_can_write_is_refused_with_the_fix() {
        let dir = tempfile::tempdir().unwrap();
        for mode in [0o777, 0o1777, 0o720, 0o702] {
            fs::set_permissions(dir.path(), fs::Permissions::from_mode(mode)).unwrap();
            let err = check_private(dir.path()).unwrap_err();
            assert!(
                matches!(err, CacheDirError::WritableByOthers { mode: m, .. } if m == mode),
                "mode {mode:o}: {err}"
            );
            assert!(err.to_string().contains("chmod go-w"), "{err}");
        }
        for mode in [0o700, 0o755, 0o750] {
            fs::set_permissions(dir.path(), fs::Permissions::from_mode(mode)).unwrap();
            check_private(dir.path()).unwrap();
        }
    }

    #[test]
    fn a_new_cache_directory_is_private() {
        let parent = tempfile::tempdir().unwrap();
        let dir = parent.path().join("a/b/cairn");
        let engine = Engine::default();
        CompileCache::open(&dir, &engine).unwrap();
        let mode = fs::metadata(&dir).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o700);
    }

    #[test]
    fn stale_temp_files_are_removed_and_fresh_ones_kept() {
        let dir = tempfile::tempdir().unwrap();
        let stale = dir.path().join(format!("{TEMP_PREFIX}stale"));
        let legacy = dir.path().join(".tmpAbc123");
        let fresh = dir.path().join(format!("{TEMP_PREFIX}fresh"));
        let artifact = dir.path().join("x.cwasm");
        let old = SystemTime::now() - STALE_TEMP_AGE - Duration::from_secs(1);
        for path in [&stale, &legacy, &fresh, &artifact] {
            let file = File::create(path).unwrap();
            if path != &fresh {
                file.set_modified(old).unwrap();
            }
        }
        CompileCache::open(dir.path(), &Engine::default()).unwrap();
        assert!(!stale.exists() && !legacy.exists());
        assert!(fresh.exists(), "a live writer's file is left alone");
        assert!(artifact.exists(), "only temporary files are cleaned");
    }

    #[test]
    fn reading_refuses_fifos_and_symlinks_without_blocking() {
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("fifo");
        let c_path = std::ffi::CString::new(fifo.as_os_str().as_encoded_bytes()).unwrap();
        // SAFETY: a valid NUL-terminated path.
        assert_eq!(unsafe { libc::mkfifo(c_path.as_ptr(), 0o600) }, 0);
        assert!(matches!(
            read_regular_file(&fifo, 10),
            Err(Rejected::NotAFile)
        ));
        let target = dir.path().join("target");
        fs::write(&target, b"x").unwrap();
        let link = dir.path().join("link");
        std::os::unix::fs::symlink(&target, &link).unwrap();
        assert!(matches!(read_regular_file(&link, 10), Err(Rejected::Io(_))));
    }
}
