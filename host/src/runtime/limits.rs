//! Per-plugin resource limits: their one spelling for plans and the command
//! line ([`LimitSettings`], one parser with range checks), the values the
//! runtime enforces ([`Limits`]), and the store limiter that enforces the
//! memory and table caps while recording peak usage. The deadline is
//! installed with the store in `call`; fuel and output caps there too.

use std::ops::RangeInclusive;
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
/// interpreter starts at ~10-15 MiB, so those plugins fit too.
pub const DEFAULT_MEMORY_BYTES: u64 = 64 << 20;

/// Default cap on bytes a plugin may write to stdout, stderr and the log in
/// one call. Enough for a page of diagnostics, small enough that a flood
/// cannot fill the host's memory or the CI log.
pub const DEFAULT_OUTPUT_BYTES: usize = 64 << 10;

/// Default cap on findings per verdict; the rest is dropped and counted. A
/// report with more than a thousand findings is not read by anyone.
pub const DEFAULT_MAX_FINDINGS: usize = 1_000;

/// Cap on the elements of one table, enforced by the store limiter (a growth
/// past it traps and is reported as `memory-limit`) and used as the size of
/// every table slot of the pooling allocator, so the two can never disagree.
/// Interpreters compiled to wasm keep function pointers in one table
/// (componentize-py output has ~30k entries); 100 000 leaves room for them
/// and rules out table-growth bombs (8 bytes per element: 800 KB a table).
pub const MAX_TABLE_ELEMENTS: usize = 100_000;

/// Resource limits applied to every call of one plugin, in the units the
/// runtime enforces. Plans and the command line spell them one way
/// ([`LimitSettings`]) and go through one parser with range checks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Wall-clock budget of one call, instantiation included. Also cuts a
    /// plugin blocked in a host call (a WASI sleep or poll).
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

/// Accepted `timeout-ms`: a deadline over ten minutes is a stuck pipeline,
/// not a validator.
pub const TIMEOUT_MS_RANGE: RangeInclusive<u64> = 1..=600_000;
/// Accepted `memory-mb`: a wasm32 memory cannot pass 4 GiB.
pub const MEMORY_MB_RANGE: RangeInclusive<u64> = 1..=4_096;
/// Accepted `fuel`: any budget; 0 would stop the plugin before it starts.
pub const FUEL_RANGE: RangeInclusive<u64> = 1..=u64::MAX;
/// Accepted `output-kb`: 0 silences a plugin; more than 16 MiB of plugin
/// output is not read by anyone and would sit in the host's memory.
pub const OUTPUT_KB_RANGE: RangeInclusive<u64> = 0..=16_384;
/// Accepted `max-findings`: a verdict keeps at least one finding.
pub const MAX_FINDINGS_RANGE: RangeInclusive<u64> = 1..=100_000;

/// Limits as a user writes them, in a plan (`limits = { timeout-ms = 500 }`)
/// or on the command line (`--timeout-ms 500`): the same names, the same
/// units, every setting optional. [`LimitSettings::apply`] checks ranges and
/// fills in the rest from a base.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct LimitSettings {
    /// Wall-clock budget per call, in milliseconds.
    pub timeout_ms: Option<u64>,
    /// Linear memory cap per call, in MiB.
    pub memory_mb: Option<u64>,
    /// CPU budget per call, in fuel units.
    pub fuel: Option<u64>,
    /// Cap on stdout + stderr + log per call, in KiB.
    pub output_kb: Option<u64>,
    /// Cap on findings per verdict.
    pub max_findings: Option<u64>,
}

/// A limit setting outside its range.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{name} = {value} is out of range (allowed: {min}..={max})")]
pub struct LimitOutOfRange {
    /// The setting's name (`timeout-ms`, ...).
    pub name: &'static str,
    pub value: u64,
    pub min: u64,
    pub max: u64,
}

impl LimitSettings {
    /// `base` with every setting given here applied, each checked against
    /// its range.
    pub fn apply(&self, base: Limits) -> Result<Limits, LimitOutOfRange> {
        fn checked(
            name: &'static str,
            value: Option<u64>,
            range: RangeInclusive<u64>,
        ) -> Result<Option<u64>, LimitOutOfRange> {
            match value {
                Some(value) if !range.contains(&value) => Err(LimitOutOfRange {
                    name,
                    value,
                    min: *range.start(),
                    max: *range.end(),
                }),
                other => Ok(other),
            }
        }
        let saturating_usize = |value: u64| usize::try_from(value).unwrap_or(usize::MAX);
        Ok(Limits {
            timeout: checked("timeout-ms", self.timeout_ms, TIMEOUT_MS_RANGE)?
                .map_or(base.timeout, Duration::from_millis),
            memory_bytes: checked("memory-mb", self.memory_mb, MEMORY_MB_RANGE)?
                .map_or(base.memory_bytes, |mb| mb << 20),
            fuel: checked("fuel", self.fuel, FUEL_RANGE)?.or(base.fuel),
            output_bytes: checked("output-kb", self.output_kb, OUTPUT_KB_RANGE)?
                .map_or(base.output_bytes, |kb| saturating_usize(kb << 10)),
            max_findings: checked("max-findings", self.max_findings, MAX_FINDINGS_RANGE)?
                .map_or(base.max_findings, saturating_usize),
        })
    }

    /// These settings with the ones given in `over` in their place (the
    /// command line over a plan).
    pub fn overridden_by(&self, over: &LimitSettings) -> LimitSettings {
        LimitSettings {
            timeout_ms: over.timeout_ms.or(self.timeout_ms),
            memory_mb: over.memory_mb.or(self.memory_mb),
            fuel: over.fuel.or(self.fuel),
            output_kb: over.output_kb.or(self.output_kb),
            max_findings: over.max_findings.or(self.max_findings),
        }
    }

    /// Whether any setting is given.
    pub fn is_empty(&self) -> bool {
        *self == LimitSettings::default()
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
    fn limiter_refuses_a_table_past_the_cap_the_pool_is_sized_for() {
        let mut limiter = StoreLimiter::new(100);
        assert!(limiter.table_growing(0, MAX_TABLE_ELEMENTS, None).unwrap());
        let err = limiter
            .table_growing(0, MAX_TABLE_ELEMENTS + 1, None)
            .unwrap_err();
        assert!(err.downcast_ref::<TableLimitExceeded>().is_some());
    }

    #[test]
    fn settings_parse_from_kebab_case_toml_and_fill_in_defaults() {
        let settings: LimitSettings =
            toml::from_str("timeout-ms = 250\nfuel = 1000\noutput-kb = 8").unwrap();
        let limits = settings.apply(Limits::default()).unwrap();
        assert_eq!(limits.timeout, Duration::from_millis(250));
        assert_eq!(limits.fuel, Some(1000));
        assert_eq!(limits.output_bytes, 8 << 10);
        assert_eq!(limits.memory_bytes, DEFAULT_MEMORY_BYTES);
        assert!(toml::from_str::<LimitSettings>("timeout = 3").is_err());
        assert!(toml::from_str::<LimitSettings>("memory-bytes = 3").is_err());
    }

    #[test]
    fn settings_out_of_range_name_the_setting_and_its_range() {
        let none = LimitSettings::default();
        let cases = [
            (
                LimitSettings {
                    timeout_ms: Some(0),
                    ..none
                },
                "timeout-ms",
            ),
            (
                LimitSettings {
                    memory_mb: Some(4_097),
                    ..none
                },
                "memory-mb",
            ),
            (
                LimitSettings {
                    fuel: Some(0),
                    ..none
                },
                "fuel",
            ),
            (
                LimitSettings {
                    output_kb: Some(16_385),
                    ..none
                },
                "output-kb",
            ),
            (
                LimitSettings {
                    max_findings: Some(0),
                    ..none
                },
                "max-findings",
            ),
        ];
        for (settings, name) in cases {
            let err = settings.apply(Limits::default()).unwrap_err();
            assert_eq!(err.name, name);
            assert!(err.to_string().starts_with(name), "{err}");
        }
    }

    #[test]
    fn command_line_settings_override_plan_settings_one_by_one() {
        let none = LimitSettings::default();
        let plan = LimitSettings {
            timeout_ms: Some(100),
            memory_mb: Some(8),
            ..none
        };
        let cli = LimitSettings {
            memory_mb: Some(16),
            ..none
        };
        let limits = plan.overridden_by(&cli).apply(Limits::default()).unwrap();
        assert_eq!(limits.timeout, Duration::from_millis(100));
        assert_eq!(limits.memory_bytes, 16 << 20);
    }
}
