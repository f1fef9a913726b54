//! `cairn cache ls` and `cairn cache prune`: what the on-disk compile cache
//! holds (size and last use of every entry) and removing what is no longer
//! wanted, by age, by total size (least recently used first) or all of it.
//! The listing and removal themselves are [`CompileCache::entries`] and
//! [`CompileCache::prune`]; this is their command line.

use std::time::{Duration, SystemTime};

use clap::{Args, Subcommand, ValueEnum};
use serde_json::json;

use crate::cli::exit::{self, CliError};
use crate::escape::single_line;
use crate::runtime::cache::{CacheEntry, CompileCache, EntryStatus, PrunePolicy, PruneReport};
use crate::runtime::{Runtime, RuntimeConfig};

pub(crate) const CACHE_ABOUT: &str = "\
List or prune the on-disk compile cache.

Compiled plugins are cached in $CAIRN_CACHE_DIR, else $XDG_CACHE_HOME/cairn,
else ~/.cache/cairn (one ~35 MB entry for a Python plugin, one per build of
a plugin). Nothing removes entries on its own: use `cairn cache prune`.";

pub(crate) const LS_ABOUT: &str = "\
List the compile cache's entries: key, the sha256 of the plugin it was
compiled for, size on disk (artifact + seal), last use (every load from the
cache records one) and status:

  ok            compiled by this cairn: loads use it
  other engine  compiled by another cairn or wasmtime version, or with other
                code-generation settings: this cairn never loads it
  no seal       an artifact without its seal: from a cairn before seals, a
                writer that died, or being written right now
  no artifact   a seal without its artifact
  bad seal      a seal that cannot be read or is not one
  damaged       an artifact whose size is not the one its seal records

Every status but ok and other engine is an orphan, which `cairn cache prune`
removes (one younger than 10 minutes is left to the process writing it).

Examples:
  cairn cache ls
  cairn cache ls --format json | jq '.\"total-bytes\"'";

pub(crate) const PRUNE_ABOUT: &str = "\
Remove compile cache entries.

Always removes orphans (entries that can never be loaded: see `cairn cache ls
--help`) and temporary files a killed writer left behind; then entries not
used for --older-than, then the least recently used entries until the cache
holds at most --max-size, or every entry with --all. A temporary file or a
seal-less artifact younger than 10 minutes may be another cairn writing it,
and is always kept. An entry removed is compiled again on next use.

Durations: 30d, 12h, 2w, 90min. Sizes: 500MB, 2GiB, 1.5GiB, 100KiB, 4096
(bytes); KB, MB, GB are powers of 1000, KiB, MiB, GiB powers of 1024.

Examples:
  cairn cache prune                          # orphans and stale temp files only
  cairn cache prune --older-than 30d         # and entries unused for 30 days
  cairn cache prune --max-size 2GiB          # keep the most recently used 2 GiB
  cairn cache prune --older-than 30d --max-size 2GiB --dry-run
  cairn cache prune --all                    # empty the cache";

#[derive(Debug, Subcommand)]
pub(crate) enum CacheCommand {
    /// List the cache's entries with their size, last use and status.
    #[command(long_about = LS_ABOUT)]
    Ls(LsArgs),
    /// Remove orphans, and entries by age, by total size or all of them.
    #[command(long_about = PRUNE_ABOUT)]
    Prune(PruneArgs),
}

#[derive(Debug, Args)]
pub(crate) struct LsArgs {
    /// Output format.
    #[arg(long, value_enum, default_value_t = ListFormat::Human)]
    pub(crate) format: ListFormat,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum ListFormat {
    Human,
    Json,
}

#[derive(Debug, Args)]
pub(crate) struct PruneArgs {
    /// Remove entries not used for this long (e.g. 30d, 12h, 2w).
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    pub(crate) older_than: Option<Duration>,

    /// Then remove the least recently used entries until the cache holds at
    /// most this much (e.g. 2GiB, 500MB).
    #[arg(long, value_name = "SIZE", value_parser = parse_size)]
    pub(crate) max_size: Option<u64>,

    /// Remove every entry.
    #[arg(long, conflicts_with_all = ["older_than", "max_size"])]
    pub(crate) all: bool,

    /// Remove nothing; list what would be removed.
    #[arg(long)]
    pub(crate) dry_run: bool,
}

/// Runs a `cairn cache` command; `no_cache` is the global `--no-cache`.
pub(crate) fn run(command: CacheCommand, no_cache: bool) -> Result<u8, CliError> {
    let Some(cache) = open(no_cache)? else {
        return Ok(exit::PASS);
    };
    match command {
        CacheCommand::Ls(args) => list(&cache, args.format),
        CacheCommand::Prune(args) => prune(
            &cache,
            &PrunePolicy {
                older_than: args.older_than,
                max_bytes: args.max_size,
                all: args.all,
                dry_run: args.dry_run,
            },
        ),
    }
}

/// Opens the cache the other commands use, for both engines they build
/// (with and without fuel metering), through [`CompileCache::open`], which
/// refuses an unsafe directory. `None` (said on stderr) when there is none.
fn open(no_cache: bool) -> Result<Option<CompileCache>, CliError> {
    if no_cache {
        eprintln!("the compile cache is off (--no-cache): nothing to do");
        return Ok(None);
    }
    let Some(dir) = CompileCache::default_dir() else {
        eprintln!(
            "no compile cache directory: none of CAIRN_CACHE_DIR, XDG_CACHE_HOME, HOME is set"
        );
        return Ok(None);
    };
    // The engines are those of `cairn check` and friends, built one after
    // the other (each reserves its instance pool).
    let cache = {
        let runtime = Runtime::new(RuntimeConfig {
            cache_dir: Some(dir.clone()),
            ..RuntimeConfig::default()
        })?;
        runtime
            .compile_cache()
            .cloned()
            .ok_or_else(|| CliError::Internal {
                message: format!(
                    "the compile cache in {} did not open",
                    single_line(&dir.display().to_string())
                ),
                source: None,
            })?
    };
    let metered = Runtime::new(RuntimeConfig {
        fuel_metering: true,
        ..RuntimeConfig::default()
    })?;
    Ok(Some(cache.also_current(metered.engine())))
}

fn shown_dir(cache: &CompileCache) -> String {
    single_line(&cache.dir().display().to_string()).into_owned()
}

fn list(cache: &CompileCache, format: ListFormat) -> Result<u8, CliError> {
    let read_error = |err| {
        CliError::internal(
            format!("cannot list the compile cache in {}", shown_dir(cache)),
            err,
        )
    };
    let entries = cache.entries().map_err(read_error)?;
    let temps = cache.temp_files().map_err(read_error)?;
    let now = SystemTime::now();
    let total: u64 = entries.iter().map(CacheEntry::bytes).sum::<u64>()
        + temps.iter().map(|t| t.bytes).sum::<u64>();
    let orphans = entries.iter().filter(|e| e.status.is_orphan()).count();
    match format {
        ListFormat::Json => {
            let rfc3339 = |time: Option<SystemTime>| {
                time.map(|t| humantime::format_rfc3339_seconds(t).to_string())
            };
            let document = json!({
                "dir": cache.dir().display().to_string(),
                "entries": entries.iter().map(|entry| json!({
                    "key": entry.key,
                    "wasm-sha256": entry.wasm_sha256,
                    "status": entry.status,
                    "this-engine": entry.this_engine(),
                    "bytes": entry.bytes(),
                    "artifact-bytes": entry.artifact_bytes,
                    "seal-bytes": entry.seal_bytes,
                    "last-use": rfc3339(entry.last_use),
                    "last-use-ago": entry.last_use.map(|t| ago(t, now)),
                })).collect::<Vec<_>>(),
                "temp-files": temps.iter().map(|temp| json!({
                    "name": temp.name,
                    "bytes": temp.bytes,
                    "modified": rfc3339(temp.modified),
                })).collect::<Vec<_>>(),
                "orphans": orphans,
                "total-bytes": total,
            });
            println!("{document:#}");
        }
        ListFormat::Human => {
            if !entries.is_empty() {
                println!(
                    "{:<12}  {:<12}  {:>10}  {:<12}  STATUS",
                    "KEY", "WASM SHA256", "SIZE", "LAST USE"
                );
            }
            for entry in &entries {
                println!(
                    "{:<12}  {:<12}  {:>10}  {:<12}  {}",
                    single_line(prefix(&entry.key)),
                    entry
                        .wasm_sha256
                        .as_deref()
                        .map_or_else(|| "-".into(), |w| single_line(prefix(w))),
                    human_size(entry.bytes()),
                    entry
                        .last_use
                        .map_or_else(|| "-".to_owned(), |t| ago(t, now)),
                    entry.status.describe()
                );
            }
            let mut extra = Vec::new();
            if orphans > 0 {
                extra.push(plural(orphans, "orphan", "orphans"));
            }
            if !temps.is_empty() {
                extra.push(plural(temps.len(), "temp file", "temp files"));
            }
            println!(
                "{}, {} in {}{}",
                plural(entries.len(), "entry", "entries"),
                human_size(total),
                shown_dir(cache),
                if extra.is_empty() {
                    String::new()
                } else {
                    format!(" ({}; `cairn cache prune` removes them)", extra.join(", "))
                }
            );
        }
    }
    Ok(exit::PASS)
}

fn prune(cache: &CompileCache, policy: &PrunePolicy) -> Result<u8, CliError> {
    let report = cache.prune(policy).map_err(|err| {
        CliError::internal(
            format!("cannot prune the compile cache in {}", shown_dir(cache)),
            err,
        )
    })?;
    print!(
        "{}",
        render_prune(&report, &shown_dir(cache), SystemTime::now())
    );
    Ok(exit::PASS)
}

fn render_prune(report: &PruneReport, dir: &str, now: SystemTime) -> String {
    use std::fmt::Write;
    let verb = if report.dry_run {
        "would remove"
    } else {
        "removed"
    };
    let mut out = String::new();
    for item in &report.removed {
        let what = match item.status {
            Some(EntryStatus::Ok) | None => item.reason.describe().to_owned(),
            Some(status) if status.is_orphan() => format!("orphan: {}", status.describe()),
            Some(status) => format!("{}, {}", status.describe(), item.reason.describe()),
        };
        let _ = writeln!(
            out,
            "{verb} {:<12}  {:>10}  last use {}  ({what})",
            single_line(if item.status.is_some() {
                prefix(&item.name)
            } else {
                &item.name
            }),
            human_size(item.bytes),
            item.last_use
                .map_or_else(|| "-".to_owned(), |t| ago(t, now)),
        );
    }
    let entries = report.removed.iter().filter(|r| r.status.is_some()).count();
    let temps = report.removed.len() - entries;
    let _ = write!(
        out,
        "{verb} {} and {}, {} {}; {} left ({}) in {dir}",
        plural(entries, "entry", "entries"),
        plural(temps, "temp file", "temp files"),
        if report.dry_run { "freeing" } else { "freed" },
        human_size(report.freed_bytes),
        plural(report.kept_entries, "entry", "entries"),
        human_size(report.kept_bytes),
    );
    if report.in_progress > 0 {
        let _ = write!(
            out,
            "; kept {} another process may be writing",
            plural(report.in_progress, "file", "files")
        );
    }
    out.push('\n');
    out
}

/// The first 12 characters of a key or digest.
fn prefix(text: &str) -> &str {
    text.char_indices()
        .nth(12)
        .map_or(text, |(at, _)| &text[..at])
}

fn plural(count: usize, one: &str, many: &str) -> String {
    format!("{count} {}", if count == 1 { one } else { many })
}

/// Bytes in binary units with one decimal: `35.2 MiB`.
fn human_size(bytes: u64) -> String {
    const UNITS: [&str; 4] = ["KiB", "MiB", "GiB", "TiB"];
    if bytes < 1024 {
        return format!("{bytes} B");
    }
    let mut value = bytes as f64 / 1024.0;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    format!("{value:.1} {}", UNITS[unit])
}

/// How long before `now` `time` was: `just now`, `5 min ago`, `3 h ago`,
/// `12 d ago`.
fn ago(time: SystemTime, now: SystemTime) -> String {
    let Ok(age) = now.duration_since(time) else {
        return "just now".to_owned();
    };
    match age.as_secs() {
        0..60 => "just now".to_owned(),
        secs @ 60..3600 => format!("{} min ago", secs / 60),
        secs @ 3600..86400 => format!("{} h ago", secs / 3600),
        secs => format!("{} d ago", secs / 86400),
    }
}

/// A duration for `--older-than`: `30d`, `12h`, `2w`, `90min`.
fn parse_duration(text: &str) -> Result<Duration, String> {
    humantime::parse_duration(text.trim())
        .map_err(|err| format!("{err} (e.g. 30d, 12h, 2w, 90min)"))
}

/// A size for `--max-size`: a number of bytes with an optional unit, B,
/// KB/MB/GB/TB (powers of 1000) or KiB/MiB/GiB/TiB (powers of 1024), in
/// any case, decimals allowed (`1.5GiB`).
fn parse_size(text: &str) -> Result<u64, String> {
    const HINT: &str =
        "a number with an optional unit: B, KB, MB, GB, TB, KiB, MiB, GiB, TiB (e.g. 2GiB, 500MB)";
    let text = text.trim();
    let split = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let multiplier: u64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "kb" => 1_000,
        "mb" => 1_000_000,
        "gb" => 1_000_000_000,
        "tb" => 1_000_000_000_000,
        "kib" => 1 << 10,
        "mib" => 1 << 20,
        "gib" => 1 << 30,
        "tib" => 1 << 40,
        _ => return Err(format!("unknown unit {:?}: {HINT}", unit.trim())),
    };
    if number.is_empty() {
        return Err(format!("no number: {HINT}"));
    }
    if number.contains('.') {
        let value: f64 = number
            .parse()
            .map_err(|_| format!("{number:?} is not a number: {HINT}"))?;
        let bytes = value * multiplier as f64;
        if !bytes.is_finite() || bytes >= u64::MAX as f64 {
            return Err(format!("{text} is too large"));
        }
        Ok(bytes as u64)
    } else {
        number
            .parse::<u64>()
            .ok()
            .and_then(|value| value.checked_mul(multiplier))
            .ok_or_else(|| format!("{text} is too large"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_parse_in_decimal_and_binary_units() {
        assert_eq!(parse_size("4096"), Ok(4096));
        assert_eq!(parse_size("10B"), Ok(10));
        assert_eq!(parse_size("2GiB"), Ok(2 << 30));
        assert_eq!(parse_size("2 gib"), Ok(2 << 30));
        assert_eq!(parse_size("500MB"), Ok(500_000_000));
        assert_eq!(parse_size("1KB"), Ok(1000));
        assert_eq!(parse_size("1KiB"), Ok(1024));
        assert_eq!(parse_size("3MiB"), Ok(3 << 20));
        assert_eq!(parse_size("1.5GiB"), Ok(3 << 29));
        for bad in [
            "",
            "GiB",
            "12 parsecs",
            "-1GB",
            "1..2MB",
            "99999999999999999999",
            "20000000TiB",
        ] {
            assert!(parse_size(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn durations_parse_with_humantime() {
        assert_eq!(parse_duration("30d"), Ok(Duration::from_secs(30 * 86400)));
        assert_eq!(parse_duration("12h"), Ok(Duration::from_secs(12 * 3600)));
        assert!(parse_duration("soon").is_err());
    }

    #[test]
    fn sizes_and_ages_read_well() {
        assert_eq!(human_size(512), "512 B");
        assert_eq!(human_size(35 << 20), "35.0 MiB");
        assert_eq!(human_size(3 << 29), "1.5 GiB");
        let now = SystemTime::now();
        let before = |secs| now - Duration::from_secs(secs);
        assert_eq!(ago(before(5), now), "just now");
        assert_eq!(ago(now + Duration::from_secs(9), now), "just now");
        assert_eq!(ago(before(300), now), "5 min ago");
        assert_eq!(ago(before(3 * 3600 + 5), now), "3 h ago");
        assert_eq!(ago(before(40 * 86400), now), "40 d ago");
        assert_eq!(prefix("0123456789abcdef"), "0123456789ab");
        assert_eq!(prefix("short"), "short");
    }
}
