//! Per-plugin resource limits and the store limiter that enforces the memory
//! and table caps while recording peak usage.

use std::time::Duration;

use serde::{Deserialize, Serialize};

/// Default wall-clock budget of one plugin call.
///
/// One second is ample for a validator reading a few MB of JSON (the bundled
/// validators take milliseconds) and short enough that a looping plugin does
/// not stall a pipeline.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(1);

/// Default cap on a plugin's linear memory, summed over all its memories.
///
/// 64 MiB holds a 1 MB document parsed several times over; a Python or JS
/// interpreter starts at ~20-40 MiB, so those plugins may need more.
pub const DEFAULT_MEMORY_BYTES: u64 = 64 << 20;

/// Default cap on bytes a plugin may write to stdout, stderr and the log in
/// one call. Enough for a page of diagnostics, small enough that a flood
/// cannot fill the host's memory or the CI log.
pub const DEFAULT_OUTPUT_BYTES: usize = 64 << 10;

/// Default cap on findings per verdict; the rest is dropped and counted. A
/// report with more than a thousand findings is not read by anyone.
pub const DEFAULT_MAX_FINDINGS: usize = 1_000;

/// Cap on the elements of all tables of one instance. Interpreters compiled
/// to wasm keep function pointers in tables (tens of thousands of entries);
/// a million rules out table-growth bombs (8 bytes per element).
pub const MAX_TABLE_ELEMENTS: usize = 1_000_000;

/// Resource limits applied to every call of one plugin.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields, default)]
pub struct Limits {
    /// Wall-clock budget of one call, instantiation included. Also cuts a
    /// plugin blocked in a host call (a WASI sleep or poll).
    #[serde(with = "duration_ms", rename = "timeout-ms")]
    pub timeout: Duration,
    /// Cap on linear memory in bytes, over all memories of the plugin.
    /// Growing past it traps with `memory-limit`.
    pub memory_bytes: u64,
    /// Optional CPU budget in wasm fuel units (roughly one per instruction);
    /// `None` means unmetered. Needs a runtime built with fuel metering.
    pub fuel: Option<u64>,
    /// Cap on bytes of stdout + stderr + log per call; the rest is dropped
    /// and counted, never an error for the plugin.
    pub output_bytes: usize,
    /// Cap on findings per verdict; the rest is dropped and counted.
    pub max_findings: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            timeout: DEFAULT_TIMEOUT,
            memory_bytes: DEFAULT_MEMORY_BYTES,
            fuel: None,
            output_bytes: DEFAULT_OUTPUT_BYTES,
            max_findings: DEFAULT_MAX_FINDINGS,
        }
    }
}

mod duration_ms {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(value: &Duration, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_u64(u64::try_from(value.as_millis()).unwrap_or(u64::MAX))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Duration, D::Error> {
        u64::deserialize(deserializer).map(Duration::from_millis)
    }
}

/// Raised (as a trap) when a plugin grows its memory past its limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("linear memory would grow to {requested} bytes, over the limit of {limit} bytes")]
pub struct MemoryLimitExceeded {
    pub requested: u64,
    pub limit: u64,
}

/// Raised (as a trap) when a plugin grows a table past [`MAX_TABLE_ELEMENTS`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("table would grow to {requested} elements, over the limit of {limit}")]
pub struct TableLimitExceeded {
    pub requested: usize,
    pub limit: usize,
}

/// Enforces the memory cap over the sum of all linear memories of a store
/// (a component may have several) and remembers the peak.
#[derive(Debug)]
pub(crate) struct StoreLimiter {
    memory_limit: u64,
    memory_in_use: u64,
    peak_memory: u64,
}

impl StoreLimiter {
    pub(crate) fn new(memory_limit: u64) -> Self {
        Self {
            memory_limit,
            memory_in_use: 0,
            peak_memory: 0,
        }
    }

    /// Highest total linear memory the store reached, in bytes.
    pub(crate) fn peak_memory(&self) -> u64 {
        self.peak_memory
    }
}

impl wasmtime::ResourceLimiter for StoreLimiter {
    fn memory_growing(
        &mut self,
        current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        let growth = desired.saturating_sub(current) as u64;
        let requested = self.memory_in_use.saturating_add(growth);
        if requested > self.memory_limit {
            return Err(wasmtime::Error::new(MemoryLimitExceeded {
                requested,
                limit: self.memory_limit,
            }));
        }
        self.memory_in_use = requested;
        self.peak_memory = self.peak_memory.max(requested);
        Ok(true)
    }

    fn memory_grow_failed(&mut self, _error: wasmtime::Error) -> wasmtime::Result<()> {
        // The growth we accounted for did not happen (e.g. past the memory's
        // own maximum); the guest sees -1 from `memory.grow`. Our count stays
        // conservative, which can only make the limit stricter.
        Ok(())
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        if desired > MAX_TABLE_ELEMENTS {
            return Err(wasmtime::Error::new(TableLimitExceeded {
                requested: desired,
                limit: MAX_TABLE_ELEMENTS,
            }));
        }
        Ok(true)
    }
}

#[cfg(test)]
mod tests {
    use wasmtime::ResourceLimiter;

    use super::*;

    #[test]
    fn limiter_counts_all_memories_against_one_cap() {
        let mut limiter = StoreLimiter::new(100);
        assert!(limiter.memory_growing(0, 60, None).unwrap());
        let err = limiter.memory_growing(0, 60, None).unwrap_err();
        let exceeded = err.downcast_ref::<MemoryLimitExceeded>().unwrap();
        assert_eq!(exceeded.requested, 120);
        assert_eq!(exceeded.limit, 100);
        assert!(limiter.memory_growing(0, 40, None).unwrap());
        assert_eq!(limiter.peak_memory(), 100);
    }

    #[test]
    fn limits_parse_from_kebab_case_toml_with_defaults() {
        let limits: Limits = toml::from_str("timeout-ms = 250\nfuel = 1000").unwrap();
        assert_eq!(limits.timeout, Duration::from_millis(250));
        assert_eq!(limits.fuel, Some(1000));
        assert_eq!(limits.memory_bytes, DEFAULT_MEMORY_BYTES);
        assert!(toml::from_str::<Limits>("timeout = 3").is_err());
    }
}
