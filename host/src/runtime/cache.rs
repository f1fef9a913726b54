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
//! Each successful load sets its seal's modification time, so the seal
//! records the entry's last use: [`CompileCache::entries`] lists entries
//! with it (for `cairn cache ls`) and [`CompileCache::prune`] evicts by it
//! (`cairn cache prune`), also removing entries that can never be loaded
//! (no seal, no artifact, a bad seal) but never a write in progress.
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
    /// Fingerprints of other engines of this cairn whose entries
    /// [`CompileCache::entries`] lists as current (see
    /// [`CompileCache::also_current`]).
    also_current: Vec<String>,
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
        Ok(Self {
            dir,
            engine_fingerprint: engine_fingerprint(engine),
            also_current: Vec::new(),
        })
    }

    /// Entries compiled by `engine` (e.g. the same runtime with fuel
    /// metering on) also count as current in [`CompileCache::entries`]
    /// and [`CompileCache::prune`]; loads still use only the engine the
    /// cache was opened with.
    pub fn also_current(mut self, engine: &Engine) -> Self {
        let fingerprint = engine_fingerprint(engine);
        if fingerprint != self.engine_fingerprint && !self.also_current.contains(&fingerprint) {
            self.also_current.push(fingerprint);
        }
        self
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
            Ok(component) => {
                touch(&seal_path);
                Some(component)
            }
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

/// The fingerprint of `engine`'s artifacts: its compatibility hash
/// (wasmtime version and code-generation settings) and cairn's artifact
/// format.
fn engine_fingerprint(engine: &Engine) -> String {
    let mut hasher = Sha256Hasher(Sha256::new());
    engine.precompile_compatibility_hash().hash(&mut hasher);
    hasher.write(ARTIFACT_FORMAT);
    hex::encode(hasher.0.finalize())
}

/// Records a use of an entry: sets its seal's modification time to now
/// (read back as the entry's last use). Best effort: a failure only makes
/// the entry look older to `cairn cache prune`.
fn touch(seal_path: &Path) {
    use std::os::unix::fs::OpenOptionsExt;
    let touched = File::options()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_NOFOLLOW)
        .open(seal_path)
        .and_then(|file| file.set_modified(SystemTime::now()));
    if let Err(err) = touched {
        tracing::debug!(path = %seal_path.display(), error = %err, "cannot record the use of a compile cache entry");
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

/// What an entry of the cache is (`cairn cache ls` shows it).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum EntryStatus {
    /// Sealed for this cairn's engine: loads use it.
    Ok,
    /// Sealed for another engine (another cairn or wasmtime version, or
    /// other code-generation settings): this cairn never loads it.
    OtherEngine,
    /// An artifact without a seal: left by a cairn from before seals (an
    /// older artifact format) or by a writer that died, or being written
    /// right now (then younger than the stale age, and kept).
    NoSeal,
    /// A seal without its artifact.
    NoArtifact,
    /// A seal that cannot be read or is not one.
    BadSeal,
    /// An artifact that is not a regular file, or whose size is not the one
    /// its seal records.
    Damaged,
}

impl EntryStatus {
    /// Whether the entry can never be loaded as it is: `prune` always
    /// removes it (a load would discard it anyway).
    pub fn is_orphan(self) -> bool {
        !matches!(self, EntryStatus::Ok | EntryStatus::OtherEngine)
    }

    /// A few words for a table.
    pub fn describe(self) -> &'static str {
        match self {
            EntryStatus::Ok => "ok",
            EntryStatus::OtherEngine => "other engine",
            EntryStatus::NoSeal => "no seal",
            EntryStatus::NoArtifact => "no artifact",
            EntryStatus::BadSeal => "bad seal",
            EntryStatus::Damaged => "damaged",
        }
    }
}

/// One key of the cache: an artifact and its seal, or what is left of them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CacheEntry {
    /// The file name without `.cwasm`/`.seal`.
    pub key: String,
    /// The sha256 (hex) of the wasm it was compiled for, from its seal.
    pub wasm_sha256: Option<String>,
    pub status: EntryStatus,
    /// Bytes of the artifact on disk (0 without one).
    pub artifact_bytes: u64,
    /// Bytes of the seal on disk (0 without one).
    pub seal_bytes: u64,
    /// When a load last used it (its seal's modification time; without a
    /// seal, when the artifact was written).
    pub last_use: Option<SystemTime>,
}

impl CacheEntry {
    /// Bytes on disk: artifact and seal.
    pub fn bytes(&self) -> u64 {
        self.artifact_bytes + self.seal_bytes
    }

    /// Whether this cairn loads it (sealed for its engine).
    pub fn this_engine(&self) -> bool {
        self.status == EntryStatus::Ok
    }

    /// A seal-less artifact younger than the stale age: another process
    /// may be writing its seal.
    fn in_progress(&self, now: SystemTime) -> bool {
        self.status == EntryStatus::NoSeal && is_young(self.last_use, now)
    }
}

/// A temporary file a writer renames into place (`.cairn-tmp-*`, or `.tmp*`
/// from cairn before format 3).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TempFile {
    pub name: String,
    pub bytes: u64,
    pub modified: Option<SystemTime>,
}

/// What `prune` removes besides orphans and stale temporary files (always
/// removed). Entries another process may be writing are always kept.
#[derive(Debug, Clone, Default)]
pub struct PrunePolicy {
    /// Remove entries not used for at least this long.
    pub older_than: Option<Duration>,
    /// Then remove the least recently used entries until the cache holds
    /// at most this many bytes.
    pub max_bytes: Option<u64>,
    /// Remove every entry.
    pub all: bool,
    /// Remove nothing; report what would go.
    pub dry_run: bool,
}

/// Why `prune` removed something.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum PruneReason {
    /// An entry that can never be loaded (see [`EntryStatus::is_orphan`]).
    Orphan,
    /// A temporary file a writer that died left behind.
    StaleTemp,
    /// Not used for longer than `older_than`.
    Unused,
    /// Least recently used, over `max_bytes`.
    OverSize,
    /// `all` was asked for.
    All,
}

impl PruneReason {
    pub fn describe(self) -> &'static str {
        match self {
            PruneReason::Orphan => "orphan",
            PruneReason::StaleTemp => "stale temp file",
            PruneReason::Unused => "unused",
            PruneReason::OverSize => "over max size",
            PruneReason::All => "all",
        }
    }
}

/// One thing `prune` removed (or would remove, in a dry run).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pruned {
    /// The entry's key, or the temporary file's name.
    pub name: String,
    /// The entry's status (`None` for a temporary file).
    pub status: Option<EntryStatus>,
    pub reason: PruneReason,
    pub bytes: u64,
    pub last_use: Option<SystemTime>,
}

/// What `prune` did.
#[derive(Debug, Clone, Default)]
pub struct PruneReport {
    pub removed: Vec<Pruned>,
    /// Bytes removed (or that would be, in a dry run).
    pub freed_bytes: u64,
    /// Entries left, and their bytes (seal-less artifacts being written
    /// included; temporary files not).
    pub kept_entries: usize,
    pub kept_bytes: u64,
    /// Temporary files and seal-less artifacts younger than the stale age,
    /// left for the process that may be writing them.
    pub in_progress: usize,
    pub dry_run: bool,
}

/// Whether `time` is less than [`STALE_TEMP_AGE`] before `now` (or after
/// it: a clock moved back).
fn is_young(time: Option<SystemTime>, now: SystemTime) -> bool {
    match time {
        Some(time) => now
            .duration_since(time)
            .map_or(true, |age| age < STALE_TEMP_AGE),
        None => false,
    }
}

/// The files of one key found in the directory.
#[derive(Default)]
struct Parts {
    artifact: Option<fs::Metadata>,
    seal: Option<fs::Metadata>,
}

impl CompileCache {
    /// Every entry of the cache, sorted by key: each artifact and seal,
    /// with what its seal says (read, never the artifact: listing a cache
    /// of large plugins stays fast). Files that are neither are ignored.
    pub fn entries(&self) -> std::io::Result<Vec<CacheEntry>> {
        Ok(self.scan()?.0)
    }

    /// The temporary files in the cache directory.
    pub fn temp_files(&self) -> std::io::Result<Vec<TempFile>> {
        Ok(self.scan()?.1)
    }

    fn is_current_engine(&self, fingerprint: &str) -> bool {
        fingerprint == self.engine_fingerprint || self.also_current.iter().any(|f| f == fingerprint)
    }

    fn scan(&self) -> std::io::Result<(Vec<CacheEntry>, Vec<TempFile>)> {
        let mut keys: std::collections::BTreeMap<String, Parts> = Default::default();
        let mut temps = Vec::new();
        for entry in fs::read_dir(&self.dir)? {
            let entry = entry?;
            // Names cairn writes are ASCII; anything else is not ours.
            let Ok(name) = entry.file_name().into_string() else {
                continue;
            };
            let meta = match entry.metadata() {
                Ok(meta) => meta,
                Err(err) if err.kind() == std::io::ErrorKind::NotFound => continue,
                Err(err) => return Err(err),
            };
            if meta.is_dir() {
                continue;
            }
            if name.starts_with(TEMP_PREFIX) || name.starts_with(".tmp") {
                temps.push(TempFile {
                    bytes: meta.len(),
                    modified: meta.modified().ok(),
                    name,
                });
            } else if let Some(key) = name.strip_suffix(".cwasm").filter(|k| !k.is_empty()) {
                keys.entry(key.to_owned()).or_default().artifact = Some(meta);
            } else if let Some(key) = name.strip_suffix(".seal").filter(|k| !k.is_empty()) {
                keys.entry(key.to_owned()).or_default().seal = Some(meta);
            }
        }
        temps.sort_by(|a, b| a.name.cmp(&b.name));
        let entries = keys
            .into_iter()
            .map(|(key, parts)| self.entry(key, parts))
            .collect();
        Ok((entries, temps))
    }

    fn entry(&self, key: String, parts: Parts) -> CacheEntry {
        let seal = parts.seal.as_ref().map(|_| {
            read_regular_file(&self.dir.join(format!("{key}.seal")), MAX_SEAL_BYTES)
                .ok()
                .and_then(|bytes| String::from_utf8(bytes).ok())
                .and_then(|text| Seal::parse(&text))
        });
        let status = match (&parts.artifact, &seal) {
            (None, _) => EntryStatus::NoArtifact,
            (Some(_), None) => EntryStatus::NoSeal,
            (Some(_), Some(None)) => EntryStatus::BadSeal,
            (Some(artifact), Some(Some(seal))) => {
                if !artifact.is_file() || artifact.len() != seal.size {
                    EntryStatus::Damaged
                } else if self.is_current_engine(&seal.engine) {
                    EntryStatus::Ok
                } else {
                    EntryStatus::OtherEngine
                }
            }
        };
        let size = |meta: &Option<fs::Metadata>| meta.as_ref().map_or(0, fs::Metadata::len);
        CacheEntry {
            wasm_sha256: seal.flatten().map(|seal| seal.wasm),
            status,
            artifact_bytes: size(&parts.artifact),
            seal_bytes: size(&parts.seal),
            last_use: parts
                .seal
                .as_ref()
                .or(parts.artifact.as_ref())
                .and_then(|meta| meta.modified().ok()),
            key,
        }
    }

    /// Removes orphans (entries that can never be loaded) and stale
    /// temporary files, then what `policy` asks for: entries unused for
    /// `older_than`, then the least recently used ones until at most
    /// `max_bytes` are left, or every entry with `all`. Never removes what
    /// another process may be writing (temporary files and seal-less
    /// artifacts younger than the stale age). A dry run removes nothing.
    pub fn prune(&self, policy: &PrunePolicy) -> std::io::Result<PruneReport> {
        let now = SystemTime::now();
        let (entries, temps) = self.scan()?;
        let mut report = PruneReport {
            dry_run: policy.dry_run,
            ..PruneReport::default()
        };
        let mut removed = Vec::new();
        for temp in temps {
            if is_young(temp.modified, now) {
                report.in_progress += 1;
                continue;
            }
            removed.push(Pruned {
                name: temp.name,
                status: None,
                reason: PruneReason::StaleTemp,
                bytes: temp.bytes,
                last_use: temp.modified,
            });
        }
        let unused = |entry: &CacheEntry| {
            policy.older_than.is_some_and(|limit| {
                let last_use = entry.last_use.unwrap_or(SystemTime::UNIX_EPOCH);
                now.duration_since(last_use).is_ok_and(|age| age >= limit)
            })
        };
        let mut kept = Vec::new();
        let mut in_progress_bytes = 0;
        let mut in_progress_entries = 0;
        for entry in entries {
            let reason = if entry.in_progress(now) {
                report.in_progress += 1;
                in_progress_entries += 1;
                in_progress_bytes += entry.bytes();
                continue;
            } else if entry.status.is_orphan() {
                PruneReason::Orphan
            } else if policy.all {
                PruneReason::All
            } else if unused(&entry) {
                PruneReason::Unused
            } else {
                kept.push(entry);
                continue;
            };
            removed.push(pruned(entry, reason));
        }
        if let Some(max) = policy.max_bytes {
            // Least recently used first; no time at all counts as oldest.
            kept.sort_by_key(|entry| (entry.last_use, entry.key.clone()));
            let mut total = in_progress_bytes + kept.iter().map(CacheEntry::bytes).sum::<u64>();
            let mut still_kept = Vec::new();
            for entry in kept {
                if total > max {
                    total -= entry.bytes();
                    removed.push(pruned(entry, PruneReason::OverSize));
                } else {
                    still_kept.push(entry);
                }
            }
            kept = still_kept;
        }
        if !policy.dry_run {
            for item in &removed {
                self.remove(item)?;
            }
        }
        report.freed_bytes = removed.iter().map(|item| item.bytes).sum();
        report.kept_entries = kept.len() + in_progress_entries;
        report.kept_bytes = in_progress_bytes + kept.iter().map(CacheEntry::bytes).sum::<u64>();
        report.removed = removed;
        Ok(report)
    }

    /// Removes an entry (seal first, so no load can verify a half-removed
    /// one) or a temporary file; one already gone is not an error.
    fn remove(&self, item: &Pruned) -> std::io::Result<()> {
        let paths = match item.status {
            None => vec![self.dir.join(&item.name)],
            Some(_) => vec![
                self.dir.join(format!("{}.seal", item.name)),
                self.dir.join(format!("{}.cwasm", item.name)),
            ],
        };
        for path in paths {
            match fs::remove_file(&path) {
                Err(err) if err.kind() != std::io::ErrorKind::NotFound => {
                    return Err(std::io::Error::new(
                        err.kind(),
                        format!("cannot remove {}: {err}", path.display()),
                    ));
                }
                _ => {}
            }
        }
        Ok(())
    }
}

fn pruned(entry: CacheEntry, reason: PruneReason) -> Pruned {
    Pruned {
        bytes: entry.bytes(),
        status: Some(entry.status),
        reason,
        last_use: entry.last_use,
        name: entry.key,
    }
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

    /// A cache on a fresh private directory with an entry of `size` bytes
    /// for each wasm named in `names`, each last used `hours_ago` ago.
    fn cache_with(entries: &[(&str, usize, u64)]) -> (tempfile::TempDir, CompileCache) {
        let dir = tempfile::tempdir().unwrap();
        let cache = CompileCache::open(dir.path(), &Engine::default()).unwrap();
        for &(name, size, hours_ago) in entries {
            let digest = Sha256Digest::of(name.as_bytes());
            cache.store(&digest, &vec![7; size]).unwrap();
            set_last_use(&cache, name, hours_ago);
        }
        (dir, cache)
    }

    fn set_last_use(cache: &CompileCache, name: &str, hours_ago: u64) {
        let seal = cache.seal_path(&Sha256Digest::of(name.as_bytes()));
        File::options()
            .write(true)
            .open(seal)
            .unwrap()
            .set_modified(SystemTime::now() - Duration::from_secs(hours_ago * 3600))
            .unwrap();
    }

    fn key_of(cache: &CompileCache, name: &str) -> String {
        let path = cache.artifact_path(&Sha256Digest::of(name.as_bytes()));
        path.file_stem().unwrap().to_str().unwrap().to_owned()
    }

    #[test]
    fn entries_list_what_each_seal_says_and_a_load_records_its_use() {
        let dir = tempfile::tempdir().unwrap();
        let engine = Engine::default();
        let cache = CompileCache::open(dir.path(), &engine).unwrap();
        let wasm = wat::parse_str("(component (core module (func (export \"f\"))))").unwrap();
        let digest = Sha256Digest::of(&wasm);
        cache.compile_and_store(&engine, &wasm, &digest).unwrap();

        let entries = cache.entries().unwrap();
        assert_eq!(entries.len(), 1, "{entries:?}");
        let entry = &entries[0];
        assert_eq!(entry.status, EntryStatus::Ok);
        assert!(entry.this_engine());
        assert_eq!(entry.wasm_sha256.as_deref(), Some(digest.to_hex().as_str()));
        let artifact = fs::metadata(cache.artifact_path(&digest)).unwrap().len();
        let seal = fs::metadata(cache.seal_path(&digest)).unwrap().len();
        assert_eq!(entry.bytes(), artifact + seal);
        assert_eq!(
            format!("{}.cwasm", entry.key),
            cache
                .artifact_path(&digest)
                .file_name()
                .unwrap()
                .to_str()
                .unwrap()
        );

        // A load moves the last use forward.
        let old = SystemTime::now() - Duration::from_secs(3 * 86400);
        File::options()
            .write(true)
            .open(cache.seal_path(&digest))
            .unwrap()
            .set_modified(old)
            .unwrap();
        assert_eq!(cache.entries().unwrap()[0].last_use, Some(old));
        assert!(cache.load(&engine, &digest).is_some());
        let last_use = cache.entries().unwrap()[0].last_use.unwrap();
        assert!(last_use > old + Duration::from_secs(86400), "{last_use:?}");

        // Another engine (fuel metering changes the code) sees it as
        // another engine's, unless told that engine is current too.
        let mut config = wasmtime::Config::new();
        config.consume_fuel(true);
        let metered = Engine::new(&config).unwrap();
        let other = CompileCache::open(dir.path(), &metered).unwrap();
        assert_eq!(other.entries().unwrap()[0].status, EntryStatus::OtherEngine);
        let both = other.also_current(&engine);
        assert_eq!(both.entries().unwrap()[0].status, EntryStatus::Ok);
    }

    #[test]
    fn max_size_evicts_the_least_recently_used_first() {
        let (_dir, cache) = cache_with(&[("new", 1000, 1), ("old", 1000, 5), ("mid", 1000, 3)]);
        let entries = cache.entries().unwrap();
        let each = entries[0].bytes();
        let report = cache
            .prune(&PrunePolicy {
                max_bytes: Some(2 * each + each / 2),
                ..PrunePolicy::default()
            })
            .unwrap();
        let removed: Vec<_> = report.removed.iter().map(|r| r.name.clone()).collect();
        assert_eq!(removed, [key_of(&cache, "old")]);
        assert_eq!(report.removed[0].reason, PruneReason::OverSize);
        assert_eq!(report.freed_bytes, each);
        assert_eq!((report.kept_entries, report.kept_bytes), (2, 2 * each));
        let left: Vec<_> = cache
            .entries()
            .unwrap()
            .into_iter()
            .map(|e| e.key)
            .collect();
        let mut expected = vec![key_of(&cache, "new"), key_of(&cache, "mid")];
        expected.sort();
        assert_eq!(left, expected);

        // Using "mid" less recently than "new" makes it the next to go.
        let report = cache
            .prune(&PrunePolicy {
                max_bytes: Some(each),
                ..PrunePolicy::default()
            })
            .unwrap();
        assert_eq!(report.removed.len(), 1);
        assert_eq!(report.removed[0].name, key_of(&cache, "mid"));
        assert!(cache.contains(&Sha256Digest::of(b"new")));
    }

    #[test]
    fn older_than_removes_entries_unused_that_long_and_all_removes_every_entry() {
        let (_dir, cache) = cache_with(&[("a", 10, 1), ("b", 10, 48), ("c", 10, 24 * 40)]);
        let report = cache
            .prune(&PrunePolicy {
                older_than: Some(Duration::from_secs(24 * 3600)),
                ..PrunePolicy::default()
            })
            .unwrap();
        let mut removed: Vec<_> = report.removed.iter().map(|r| r.name.clone()).collect();
        removed.sort();
        let mut expected = vec![key_of(&cache, "b"), key_of(&cache, "c")];
        expected.sort();
        assert_eq!(removed, expected);
        assert!(
            report
                .removed
                .iter()
                .all(|r| r.reason == PruneReason::Unused)
        );
        assert!(cache.contains(&Sha256Digest::of(b"a")));

        let report = cache
            .prune(&PrunePolicy {
                all: true,
                ..PrunePolicy::default()
            })
            .unwrap();
        assert_eq!(report.removed.len(), 1);
        assert!(cache.entries().unwrap().is_empty());
    }

    #[test]
    fn orphans_and_stale_temp_files_go_and_writes_in_progress_stay() {
        let (dir, cache) = cache_with(&[("good", 100, 1)]);
        let old = SystemTime::now() - STALE_TEMP_AGE - Duration::from_secs(60);
        let create = |name: &str, bytes: &[u8], modified: Option<SystemTime>| {
            let path = dir.path().join(name);
            fs::write(&path, bytes).unwrap();
            if let Some(modified) = modified {
                File::options()
                    .write(true)
                    .open(&path)
                    .unwrap()
                    .set_modified(modified)
                    .unwrap();
            }
            path
        };
        // An artifact from before seals, a seal without its artifact, a
        // seal that is not one, a stale temp file: orphans.
        let legacy = create("legacy.cwasm", b"old format", Some(old));
        let lone_seal = create("lone.seal", b"cairn-seal 1\n", None);
        let bad = create("bad.cwasm", b"x", Some(old));
        let bad_seal = create("bad.seal", b"not a seal", None);
        let stale = create(&format!("{TEMP_PREFIX}dead"), b"tmp", Some(old));
        // An artifact whose seal is being written, a fresh temp file, and a
        // file that is not the cache's: kept.
        let landing = create("landing.cwasm", b"new", None);
        let fresh = create(&format!("{TEMP_PREFIX}live"), b"tmp", None);
        let other = create("notes.txt", b"mine", Some(old));

        let entries = cache.entries().unwrap();
        let status = |key: &str| entries.iter().find(|e| e.key == key).unwrap().status;
        assert_eq!(status("legacy"), EntryStatus::NoSeal);
        assert_eq!(status("lone"), EntryStatus::NoArtifact);
        assert_eq!(status("bad"), EntryStatus::BadSeal);
        assert_eq!(status("landing"), EntryStatus::NoSeal);
        assert_eq!(entries.len(), 5, "{entries:?}");
        assert_eq!(cache.temp_files().unwrap().len(), 2);

        let report = cache.prune(&PrunePolicy::default()).unwrap();
        let mut removed: Vec<_> = report
            .removed
            .iter()
            .map(|r| (r.name.as_str(), r.reason))
            .collect();
        removed.sort();
        let stale_name = format!("{TEMP_PREFIX}dead");
        let mut expected = vec![
            (stale_name.as_str(), PruneReason::StaleTemp),
            ("bad", PruneReason::Orphan),
            ("legacy", PruneReason::Orphan),
            ("lone", PruneReason::Orphan),
        ];
        expected.sort();
        assert_eq!(removed, expected);
        assert_eq!(report.in_progress, 2);
        assert_eq!(report.kept_entries, 2, "good and landing");
        for gone in [&legacy, &lone_seal, &bad, &bad_seal, &stale] {
            assert!(!gone.exists(), "{} removed", gone.display());
        }
        for kept in [&landing, &fresh, &other] {
            assert!(kept.exists(), "{} kept", kept.display());
        }
        assert!(cache.contains(&Sha256Digest::of(b"good")));

        // `all` still leaves what may be being written.
        cache
            .prune(&PrunePolicy {
                all: true,
                ..PrunePolicy::default()
            })
            .unwrap();
        assert!(landing.exists() && fresh.exists());
        assert!(!cache.contains(&Sha256Digest::of(b"good")));
    }

    #[test]
    fn a_dry_run_removes_nothing_and_reports_what_would_go() {
        let (dir, cache) = cache_with(&[("a", 100, 1), ("b", 100, 2)]);
        fs::write(dir.path().join("orphan.cwasm"), b"x").unwrap();
        File::options()
            .write(true)
            .open(dir.path().join("orphan.cwasm"))
            .unwrap()
            .set_modified(SystemTime::now() - STALE_TEMP_AGE - Duration::from_secs(1))
            .unwrap();
        let listed = |dir: &Path| {
            let mut names: Vec<_> = fs::read_dir(dir)
                .unwrap()
                .map(|e| e.unwrap().file_name())
                .collect();
            names.sort();
            names
        };
        let before = listed(dir.path());
        let report = cache
            .prune(&PrunePolicy {
                all: true,
                dry_run: true,
                ..PrunePolicy::default()
            })
            .unwrap();
        assert!(report.dry_run);
        assert_eq!(report.removed.len(), 3);
        assert!(report.freed_bytes > 200);
        assert_eq!(listed(dir.path()), before);
    }
}
