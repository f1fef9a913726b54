//! The runtime: the one wasmtime `Engine` (pooling allocator, epoch
//! interruption, stack limit, optional fuel), the epoch ticker thread that
//! drives wall-clock deadlines, the linkers of each world, and plugin loading
//! through the in-memory and on-disk compile caches.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use sha2::{Digest, Sha256};
use wasmtime::component::{Component, Linker};
use wasmtime::{Config, Enabled, Engine, InstanceAllocationStrategy, PoolingAllocationConfig};

use crate::cache::{CacheStatus, CompileCache};
use crate::call::CallState;
use crate::limits::Limits;
use crate::plugin::{LoadError, Plugin};
use crate::{bindings, plugin, preinit};

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

/// Table elements per table. Interpreters keep all function pointers in one
/// table; componentize-py output has ~30k.
const POOLED_TABLE_ELEMENTS: usize = 100_000;

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
    /// Directory of the on-disk compile cache; `None` disables it.
    pub cache_dir: Option<PathBuf>,
    /// Instrument compiled code with fuel counters so plugins can be given a
    /// deterministic CPU budget (`Limits::fuel`). Costs some speed; off by
    /// default.
    pub fuel_metering: bool,
    /// Cap on the wasm call stack of every plugin, in bytes.
    pub max_wasm_stack: usize,
    /// Plugin instances that can be alive at once (with
    /// [`InstanceAllocation::Pooling`], the slots reserved up front).
    pub max_concurrent_instances: u32,
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
            cache_dir: CompileCache::default_dir(),
            fuel_metering: false,
            max_wasm_stack: DEFAULT_MAX_WASM_STACK,
            max_concurrent_instances: DEFAULT_MAX_CONCURRENT_INSTANCES,
            instance_allocation: InstanceAllocation::Pooling,
            linear_memory_keep_resident: DEFAULT_LINEAR_MEMORY_KEEP_RESIDENT,
            epoch_interruption: true,
            initialization_limits: Limits {
                timeout: crate::preinit::DEFAULT_INITIALIZATION_TIMEOUT,
                ..Limits::default()
            },
        }
    }
}

/// Why a runtime could not be built.
#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    #[error("invalid engine configuration: {0}")]
    Engine(String),
    #[error("cannot start the epoch ticker thread: {0}")]
    Ticker(#[source] std::io::Error),
    #[error("cannot open compile cache {path}: {source}")]
    Cache {
        path: PathBuf,
        #[source]
        source: std::io::Error,
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

/// Loads plugins and runs their calls. Cheap to share behind an `Arc`.
pub struct Runtime {
    engine: Engine,
    config: RuntimeConfig,
    pub(crate) validator_linker: Linker<CallState>,
    pub(crate) fault_injector_linker: Linker<CallState>,
    cache: Option<CompileCache>,
    compiled: Mutex<HashMap<String, Component>>,
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
            .map_err(|err| RuntimeError::Engine(crate::error_chain(&err)))?;
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
        let linker = |add_imports: fn(&mut Linker<CallState>) -> wasmtime::Result<()>| {
            let mut linker = Linker::new(&engine);
            wasmtime_wasi::p2::add_to_linker_async(&mut linker)
                .and_then(|()| add_imports(&mut linker))
                .map(|()| linker)
                .map_err(|err| RuntimeError::Engine(crate::error_chain(&err)))
        };
        let validator_linker = linker(bindings::latest::add_validator_imports)?;
        let fault_injector_linker = linker(bindings::latest::add_fault_injector_imports)?;
        Ok(Runtime {
            ticker: EpochTicker::start(engine.clone()).map_err(RuntimeError::Ticker)?,
            engine,
            config,
            validator_linker,
            fault_injector_linker,
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

    /// How many loads compiled, hit the disk cache, or hit memory.
    pub fn load_stats(&self) -> LoadStats {
        LoadStats {
            compiled: self.counters.compiled.load(Ordering::Relaxed),
            from_disk: self.counters.from_disk.load(Ordering::Relaxed),
            from_memory: self.counters.from_memory.load(Ordering::Relaxed),
        }
    }

    /// Whether a component with this sha256 loads without compiling (it is
    /// in memory or in the disk cache).
    pub fn is_compiled(&self, wasm_sha256: &str) -> bool {
        let in_memory = self
            .compiled
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .contains_key(wasm_sha256);
        in_memory || self.cache.as_ref().is_some_and(|c| c.contains(wasm_sha256))
    }

    /// Loads a plugin from a `.wasm` file; its name is the file stem.
    /// `sha256_pin`, when given, must match the file's digest.
    pub fn load_file(&self, path: &Path, sha256_pin: Option<&str>) -> Result<Plugin, LoadError> {
        let bytes = std::fs::read(path).map_err(|source| LoadError::Read {
            path: path.to_owned(),
            source,
        })?;
        let name = path
            .file_stem()
            .map(|stem| stem.to_string_lossy().into_owned())
            .unwrap_or_else(|| path.display().to_string());
        self.load_bytes(&name, &bytes, sha256_pin)
    }

    /// Loads a plugin from its component bytes.
    pub fn load_bytes(
        &self,
        name: &str,
        wasm: &[u8],
        sha256_pin: Option<&str>,
    ) -> Result<Plugin, LoadError> {
        let sha256 = hex::encode(Sha256::digest(wasm));
        if let Some(pin) = sha256_pin {
            plugin::check_pin(name, pin, &sha256)?;
        }
        plugin::check_header(name, wasm)?;
        let (component, cache) = self.component(name, wasm, &sha256)?;
        Plugin::new(self, name, component, sha256, wasm.len(), cache)
    }

    fn component(
        &self,
        name: &str,
        wasm: &[u8],
        sha256: &str,
    ) -> Result<(Component, CacheStatus), LoadError> {
        let compiled = self.compiled.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(component) = compiled.get(sha256) {
            self.counters.from_memory.fetch_add(1, Ordering::Relaxed);
            return Ok((component.clone(), CacheStatus::Memory));
        }
        drop(compiled);
        let started = std::time::Instant::now();
        let (component, status) = match self
            .cache
            .as_ref()
            .and_then(|cache| cache.load(&self.engine, sha256))
        {
            Some(component) => (component, CacheStatus::Disk),
            None => (self.compile(name, wasm, sha256)?, CacheStatus::Compiled),
        };
        let counter = match status {
            CacheStatus::Disk => &self.counters.from_disk,
            _ => &self.counters.compiled,
        };
        counter.fetch_add(1, Ordering::Relaxed);
        tracing::debug!(plugin = name, ?status, elapsed = ?started.elapsed(), "component ready");
        self.compiled
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(sha256.to_owned(), component.clone());
        Ok((component, status))
    }
}

impl Runtime {
    /// Compiles a plugin (stored in the cache when there is one). A plugin
    /// that exports `initialization` is initialised first and its snapshot
    /// compiled instead.
    fn compile(&self, name: &str, wasm: &[u8], sha256: &str) -> Result<Component, LoadError> {
        let scan = preinit::scan_exports(wasm);
        let snapshot;
        let to_compile = if scan.initializes {
            snapshot = preinit::pre_initialize(
                self,
                name,
                wasm,
                &scan,
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
        } else {
            wasm
        };
        match &self.cache {
            Some(cache) => cache.compile_and_store(&self.engine, to_compile, sha256),
            None => Component::from_binary(&self.engine, to_compile),
        }
        .map_err(|err| LoadError::Compile {
            plugin: name.to_owned(),
            message: crate::error_chain(&err),
        })
    }
}

impl Drop for Runtime {
    fn drop(&mut self) {
        self.ticker.stop();
    }
}

fn engine_config(config: &RuntimeConfig) -> Config {
    let mut pool = PoolingAllocationConfig::new();
    let instances = config.max_concurrent_instances.max(1);
    pool.total_component_instances(instances)
        .total_core_instances(instances * 8)
        .total_memories(instances * 2)
        .total_tables(instances * 8)
        .total_stacks(instances)
        .max_core_instances_per_component(MAX_CORE_INSTANCES_PER_COMPONENT)
        .max_tables_per_module(4)
        .table_elements(POOLED_TABLE_ELEMENTS)
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
