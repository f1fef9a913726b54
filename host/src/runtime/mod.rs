//! The sandbox runtime: the one wasmtime `Engine` (pooling allocator, epoch
//! interruption, stack limit, optional fuel), the epoch ticker thread that
//! drives wall-clock deadlines, admission control over the instance pool,
//! and plugin loading (digest, scan, world and version, compile caches).
//! It knows nothing of plans, gates or reports: `check` builds on it.

pub mod admission;
pub mod bindings;
pub mod cache;
pub mod call;
pub mod change;
pub mod digest;
pub mod failure;
pub mod inject;
pub mod input;
pub mod limits;
pub mod plugin;
pub mod preinit;
pub mod sandbox;
pub mod verdict;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use wasmtime::component::Component;
use wasmtime::{Config, Enabled, Engine, InstanceAllocationStrategy, PoolingAllocationConfig};

use admission::{Admission, InstanceFootprint, PoolCapacity};
use bindings::{Contract, Linkers};
use cache::{CacheStatus, CompileCache};
use digest::Sha256Digest;
use limits::{Limits, MAX_TABLE_ELEMENTS};
use plugin::{Cause, LoadError, LoadedComponent, Plugin};

/// How often the epoch ticker wakes. Each tick lets a running plugin check
/// the wall clock against its deadline, so this bounds how far past its
/// deadline a computing plugin can run (plus scheduling delay).
pub const EPOCH_TICK: Duration = Duration::from_millis(1);

/// Default cap on the wasm call stack. 512 KiB allows ~10k frames of
/// ordinary code, and a runaway recursion is stopped in microseconds.
pub const DEFAULT_MAX_WASM_STACK: usize = 512 << 10;

/// Default number of plugin instances that can be alive at once (the pooling
/// allocator reserves slots up front). A checkpoint runs a handful of
/// validators; 64 leaves room for benchmarks and fault proxies.
pub const DEFAULT_MAX_CONCURRENT_INSTANCES: u32 = 64;

/// Core instances one component may create. Rust components use 1-3; Python
/// (componentize-py) and JavaScript components link ~10-20 core modules.
const MAX_CORE_INSTANCES_PER_COMPONENT: u32 = 64;

/// Pool slots per instance of `max_concurrent_instances`, for each pooled
/// resource. Eight core instances (and two memories, eight tables) on
/// average is what a mix of Rust (1-3) and Python/JS (10-20) plugins takes;
/// admission control, not this average, decides how many calls run at once.
const CORE_INSTANCES_PER_INSTANCE: u32 = 8;
const MEMORIES_PER_INSTANCE: u32 = 2;
const TABLES_PER_INSTANCE: u32 = 8;

/// Default of [`RuntimeConfig::linear_memory_keep_resident`]: 32 MiB covers
/// the heap of a validator parsing a few MB of documents (14.7 MiB for
/// destructive-change on a 1 MB workflow, before and after). With 2 MiB, the
/// page faults of such a call were a quarter of its time (BENCHMARKS.md).
pub const DEFAULT_LINEAR_MEMORY_KEEP_RESIDENT: usize = 32 << 20;

/// The same for table slots.
const TABLE_KEEP_RESIDENT: usize = 64 << 10;

/// How the runtime is built; the defaults suit `cairn check`.
#[derive(Debug, Clone)]
pub struct RuntimeConfig {
    /// Directory of the on-disk compile cache; `None` (the default) keeps
    /// compiled plugins in memory only. A library user opts in; the `cairn`
    /// command line does, with [`CompileCache::default_dir`].
    pub cache_dir: Option<PathBuf>,
    /// Instrument compiled code with fuel counters so plugins can be given a
    /// deterministic CPU budget (`Limits::fuel`). Costs some speed; off by
    /// default.
    pub fuel_metering: bool,
    /// Cap on the wasm call stack of every plugin, in bytes.
    pub max_wasm_stack: usize,
    /// Plugin instances that can be alive at once (with
    /// [`InstanceAllocation::Pooling`], the slots reserved up front). Fewer
    /// run at once when plugins are large: admission counts each plugin's
    /// core instances, memories and tables against the pool.
    pub max_concurrent_instances: u32,
    /// How long a call waits for pool capacity before it ends as
    /// `overloaded` (a host condition, never the plugin's failure).
    pub admission_wait: Duration,
    /// Where instances get their memories, tables and stacks.
    pub instance_allocation: InstanceAllocation,
    /// Dirty bytes of a freed memory slot (pooling allocator) that are reset
    /// in place with memset, and stay resident, instead of being returned to
    /// the OS; only the pages a call dirtied are reset (found with
    /// `PAGEMAP_SCAN` on Linux 6.7+). Higher: the next call on that slot
    /// neither page-faults its heap back in nor pays for the madvise; lower:
    /// less resident memory kept per slot ever used (at most this much each).
    pub linear_memory_keep_resident: usize,
    /// Compile deadline checks into plugin code (wasmtime's epoch
    /// interruption). Only a benchmark turns this off, to measure what the
    /// checks cost: without them a plugin computing in pure wasm runs past
    /// its deadline until it returns or runs out of fuel (`Limits::fuel`).
    pub epoch_interruption: bool,
    /// Limits of a plugin's `initialize` (plugins that export
    /// `cairn:plugin/initialization`), run once when the plugin is first
    /// compiled. Default: the call defaults with a 10 s deadline.
    pub initialization_limits: Limits,
}

/// Where plugin instances get their memories, tables and stacks.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum InstanceAllocation {
    /// Slots reserved when the runtime starts and reused call after call
    /// (the dirty pages of a freed slot are reset in place): a fresh instance
    /// per call costs microseconds. Reserves address space (not memory) for
    /// `max_concurrent_instances` slots.
    #[default]
    Pooling,
    /// Fresh mappings for every instance, returned to the OS when it is
    /// dropped: nothing reserved up front, more system calls per call.
    OnDemand,
}

impl Default for RuntimeConfig {
    fn default() -> Self {
        Self {
            cache_dir: None,
            fuel_metering: false,
            max_wasm_stack: DEFAULT_MAX_WASM_STACK,
            max_concurrent_instances: DEFAULT_MAX_CONCURRENT_INSTANCES,
            admission_wait: admission::DEFAULT_ADMISSION_WAIT,
            instance_allocation: InstanceAllocation::Pooling,
            linear_memory_keep_resident: DEFAULT_LINEAR_MEMORY_KEEP_RESIDENT,
            epoch_interruption: true,
            initialization_limits: Limits {
                timeout: preinit::DEFAULT_INITIALIZATION_TIMEOUT,
                ..Limits::default()
            },
        }
    }
}

/// Why a runtime could not be built.
#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    #[error("invalid engine configuration")]
    Engine(#[source] Cause),
    #[error("cannot start the epoch ticker thread")]
    Ticker(#[source] std::io::Error),
    #[error("cannot use compile cache {}", path.display())]
    Cache {
        path: PathBuf,
        #[source]
        source: cache::CacheDirError,
    },
}

/// Counters of how plugins were loaded, for tests and `--verbose` output.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LoadStats {
    pub compiled: u64,
    pub from_disk: u64,
    pub from_memory: u64,
}

#[derive(Default)]
struct LoadCounters {
    compiled: AtomicU64,
    from_disk: AtomicU64,
    from_memory: AtomicU64,
}

/// A plugin's component bytes, read once and hashed once per load; clones
/// share the bytes.
#[derive(Clone)]
pub struct PluginBytes {
    name: String,
    bytes: Arc<[u8]>,
    digest: Sha256Digest,
}

impl std::fmt::Debug for PluginBytes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PluginBytes")
            .field("name", &self.name)
            .field("len", &self.bytes.len())
            .field("digest", &self.digest)
            .finish()
    }
}

impl PluginBytes {
    /// Names the plugin and hashes its bytes.
    pub fn new(name: impl Into<String>, bytes: Vec<u8>) -> Self {
        let digest = Sha256Digest::of(&bytes);
        Self {
            name: name.into(),
            bytes: bytes.into(),
            digest,
        }
    }

    /// Reads a component file; the plugin is named after the file stem.
    pub fn read(path: &Path) -> Result<Self, LoadError> {
        let bytes =
            input::read_limited(path, "plugin", input::MAX_PLUGIN_BYTES).map_err(|source| {
                LoadError::Read {
                    path: path.to_owned(),
                    source,
                }
            })?;
        let name = path
            .file_stem()
            .map(|stem| stem.to_string_lossy().into_owned())
            .unwrap_or_else(|| path.display().to_string());
        Ok(Self::new(name, bytes))
    }

    /// The same bytes under another name.
    pub fn named(mut self, name: impl Into<String>) -> Self {
        self.name = name.into();
        self
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn digest(&self) -> Sha256Digest {
        self.digest
    }

    pub fn bytes(&self) -> &[u8] {
        &self.bytes
    }
}

/// A compiled component and what its scan found, kept in memory by digest.
#[derive(Clone)]
struct CompiledEntry {
    component: Component,
    contract: Contract,
    footprint: InstanceFootprint,
}

/// Loads plugins and runs their calls. Cheap to share behind an `Arc`.
pub struct Runtime {
    engine: Engine,
    config: RuntimeConfig,
    linkers: Linkers,
    admission: Arc<Admission>,
    cache: Option<CompileCache>,
    compiled: Mutex<HashMap<Sha256Digest, CompiledEntry>>,
    counters: LoadCounters,
    ticker: EpochTicker,
}

impl std::fmt::Debug for Runtime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Runtime")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl Runtime {
    pub fn new(config: RuntimeConfig) -> Result<Runtime, RuntimeError> {
        let engine = Engine::new(&engine_config(&config))
            .map_err(|err| RuntimeError::Engine(err.into_boxed_dyn_error()))?;
        let cache =
            match &config.cache_dir {
                Some(dir) => Some(CompileCache::open(dir, &engine).map_err(|source| {
                    RuntimeError::Cache {
                        path: dir.clone(),
                        source,
                    }
                })?),
                None => None,
            };
        let linkers = Linkers::new(&engine)
            .map_err(|err| RuntimeError::Engine(err.into_boxed_dyn_error()))?;
        let admission = Arc::new(Admission::new(
            pool_capacity(&config),
            config.admission_wait,
        ));
        Ok(Runtime {
            ticker: EpochTicker::start(engine.clone()).map_err(RuntimeError::Ticker)?,
            engine,
            config,
            linkers,
            admission,
            cache,
            compiled: Mutex::default(),
            counters: LoadCounters::default(),
        })
    }

    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    pub fn config(&self) -> &RuntimeConfig {
        &self.config
    }

    pub fn compile_cache(&self) -> Option<&CompileCache> {
        self.cache.as_ref()
    }

    pub(crate) fn linkers(&self) -> &Linkers {
        &self.linkers
    }

    pub(crate) fn admission(&self) -> Arc<Admission> {
        Arc::clone(&self.admission)
    }

    /// What the instance pool holds.
    pub fn pool_capacity(&self) -> PoolCapacity {
        self.admission.capacity()
    }

    /// Calls waiting for pool capacity right now (a queue depth).
    pub fn calls_waiting(&self) -> usize {
        self.admission.waiting()
    }

    /// How many loads compiled, hit the disk cache, or hit memory.
    pub fn load_stats(&self) -> LoadStats {
        LoadStats {
            compiled: self.counters.compiled.load(Ordering::Relaxed),
            from_disk: self.counters.from_disk.load(Ordering::Relaxed),
            from_memory: self.counters.from_memory.load(Ordering::Relaxed),
        }
    }

    /// Whether a component with this digest loads without compiling (it is
    /// in memory or in the disk cache).
    pub fn is_compiled(&self, digest: &Sha256Digest) -> bool {
        let in_memory = self
            .compiled
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .contains_key(digest);
        in_memory || self.cache.as_ref().is_some_and(|c| c.contains(digest))
    }

    /// Loads a plugin from a `.wasm` file; its name is the file stem. `pin`,
    /// when given, must be the file's digest.
    pub fn load_file(&self, path: &Path, pin: Option<&Sha256Digest>) -> Result<Plugin, LoadError> {
        self.load(&PluginBytes::read(path)?, pin)
    }

    /// Loads a plugin from its component bytes.
    pub fn load_bytes(
        &self,
        name: &str,
        wasm: &[u8],
        pin: Option<&Sha256Digest>,
    ) -> Result<Plugin, LoadError> {
        self.load(&PluginBytes::new(name, wasm.to_vec()), pin)
    }

    /// Loads a plugin: checks the pin, the header and the exports (world
    /// and contract version) before anything is compiled, then compiles it
    /// or takes it from a cache, and pre-links it for its contract.
    pub fn load(
        &self,
        plugin: &PluginBytes,
        pin: Option<&Sha256Digest>,
    ) -> Result<Plugin, LoadError> {
        let name = plugin.name();
        if let Some(pin) = pin
            && *pin != plugin.digest
        {
            return Err(LoadError::DigestMismatch {
                plugin: name.to_owned(),
                expected: *pin,
                actual: plugin.digest,
            });
        }
        plugin::check_header(name, &plugin.bytes)?;
        let (entry, cache) = self.component(plugin)?;
        if !self.admission.fits(&entry.footprint) {
            return Err(LoadError::TooLargeForPool {
                plugin: name.to_owned(),
                footprint: entry.footprint,
                capacity: self.admission.capacity(),
            });
        }
        Plugin::new(
            self,
            name,
            LoadedComponent {
                component: entry.component,
                contract: entry.contract,
                digest: plugin.digest,
                size: plugin.bytes.len(),
                cache,
                footprint: entry.footprint,
            },
        )
    }

    fn component(&self, plugin: &PluginBytes) -> Result<(CompiledEntry, CacheStatus), LoadError> {
        let name = plugin.name();
        let compiled = self.compiled.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(entry) = compiled.get(&plugin.digest) {
            self.counters.from_memory.fetch_add(1, Ordering::Relaxed);
            return Ok((entry.clone(), CacheStatus::Memory));
        }
        drop(compiled);
        let started = std::time::Instant::now();
        let scan = plugin::scan_component(&plugin.bytes);
        let contract = match &scan.exports {
            Some(exports) => {
                Some(
                    bindings::detect(exports).map_err(|source| LoadError::Contract {
                        plugin: name.to_owned(),
                        source,
                    })?,
                )
            }
            // Does not parse: compiling says why.
            None => None,
        };
        let (component, status) = match self
            .cache
            .as_ref()
            .filter(|_| contract.is_some())
            .and_then(|cache| cache.load(&self.engine, &plugin.digest))
        {
            Some(component) => (component, CacheStatus::Disk),
            None => (
                self.compile(name, &plugin.bytes, &plugin.digest, contract.as_ref())?,
                CacheStatus::Compiled,
            ),
        };
        let contract = match contract {
            Some(contract) => contract,
            // Parsed by the compiler but not by the scan: read the exports
            // from the compiled component instead.
            None => {
                let exports: Vec<String> = component
                    .component_type()
                    .exports(&self.engine)
                    .map(|(name, _)| name.to_owned())
                    .collect();
                bindings::detect(&exports).map_err(|source| LoadError::Contract {
                    plugin: name.to_owned(),
                    source,
                })?
            }
        };
        let counter = match status {
            CacheStatus::Disk => &self.counters.from_disk,
            _ => &self.counters.compiled,
        };
        counter.fetch_add(1, Ordering::Relaxed);
        tracing::debug!(plugin = name, ?status, elapsed = ?started.elapsed(), "component ready");
        let entry = CompiledEntry {
            footprint: InstanceFootprint::new(scan.core_instantiations, &component),
            component,
            contract,
        };
        self.compiled
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(plugin.digest, entry.clone());
        Ok((entry, status))
    }

    /// Compiles a plugin (stored in the cache when there is one). A plugin
    /// that exports `initialization` is initialised first and its snapshot
    /// compiled instead.
    fn compile(
        &self,
        name: &str,
        wasm: &[u8],
        wasm_sha256: &Sha256Digest,
        contract: Option<&Contract>,
    ) -> Result<Component, LoadError> {
        let snapshot;
        let to_compile = match contract {
            Some(contract) if contract.initializes => {
                snapshot = preinit::pre_initialize(
                    self,
                    name,
                    wasm,
                    contract,
                    &self.config.initialization_limits,
                )
                .map_err(|source| LoadError::Initialization {
                    plugin: name.to_owned(),
                    source,
                })?;
                tracing::debug!(
                    plugin = name,
                    size = wasm.len(),
                    snapshot_size = snapshot.len(),
                    "pre-initialised"
                );
                snapshot.as_slice()
            }
            _ => wasm,
        };
        match &self.cache {
            Some(cache) if contract.is_some() => {
                cache.compile_and_store(&self.engine, to_compile, wasm_sha256)
            }
            _ => Component::from_binary(&self.engine, to_compile),
        }
        .map_err(|err| LoadError::Compile {
            plugin: name.to_owned(),
            source: err.into_boxed_dyn_error(),
        })
    }
}

impl Drop for Runtime {
    fn drop(&mut self) {
        self.ticker.stop();
    }
}

/// What the pool holds, derived from `max_concurrent_instances` alone; the
/// engine's pool and admission control are both built from it.
fn pool_capacity(config: &RuntimeConfig) -> PoolCapacity {
    let instances = config.max_concurrent_instances.max(1);
    PoolCapacity {
        component_instances: instances,
        core_instances: instances.saturating_mul(CORE_INSTANCES_PER_INSTANCE),
        memories: instances.saturating_mul(MEMORIES_PER_INSTANCE),
        tables: instances.saturating_mul(TABLES_PER_INSTANCE),
    }
}

fn engine_config(config: &RuntimeConfig) -> Config {
    let mut pool = PoolingAllocationConfig::new();
    let capacity = pool_capacity(config);
    pool.total_component_instances(capacity.component_instances)
        .total_core_instances(capacity.core_instances)
        .total_memories(capacity.memories)
        .total_tables(capacity.tables)
        .total_stacks(capacity.component_instances)
        .max_core_instances_per_component(MAX_CORE_INSTANCES_PER_COMPONENT)
        .max_tables_per_module(4)
        // The same cap the store limiter enforces (and reports) per table.
        .table_elements(MAX_TABLE_ELEMENTS)
        // Interpreters have large vmctx/component state; 1 MiB default is tight.
        .max_component_instance_size(4 << 20)
        .max_core_instance_size(4 << 20)
        // When a call ends, find the pages it dirtied (PAGEMAP_SCAN, Linux
        // 6.7+) and reset just those with memset, up to the keep-resident
        // size; only the rest is returned to the OS. The next call then
        // neither madvises nor page-faults its stack and heap back in, which
        // was half the cost of a small validator call. Older kernels fall
        // back to madvise.
        .pagemap_scan(Enabled::Auto)
        .linear_memory_keep_resident(config.linear_memory_keep_resident)
        .table_keep_resident(TABLE_KEEP_RESIDENT);

    let mut wasm = Config::new();
    wasm.allocation_strategy(match config.instance_allocation {
        InstanceAllocation::Pooling => InstanceAllocationStrategy::Pooling(pool),
        InstanceAllocation::OnDemand => InstanceAllocationStrategy::OnDemand,
    })
    .epoch_interruption(config.epoch_interruption)
    .consume_fuel(config.fuel_metering)
    .max_wasm_stack(config.max_wasm_stack)
    // The fiber stack must hold the wasm stack plus host frames.
    .async_stack_size(config.max_wasm_stack + (1 << 20));
    wasm
}

/// A thread that advances the engine's epoch every [`EPOCH_TICK`]; each
/// running store checks its wall-clock deadline on every tick.
struct EpochTicker {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl EpochTicker {
    fn start(engine: Engine) -> std::io::Result<Self> {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&stop);
        let thread = std::thread::Builder::new()
            .name("cairn-epoch".into())
            .spawn(move || {
                while !flag.load(Ordering::Relaxed) {
                    std::thread::sleep(EPOCH_TICK);
                    engine.increment_epoch();
                }
            })?;
        Ok(Self {
            stop,
            thread: Some(thread),
        })
    }

    fn stop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}
