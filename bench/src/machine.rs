//! What the run was measured on: CPU, cores, memory, kernel, load, date and
//! the versions of the compiler and the engines, for the table's preamble.

use std::fs;

use crate::facts;

/// Facts of this machine and build, one line each.
pub fn describe() -> Vec<String> {
    let cpuinfo = fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let cpu = cpuinfo
        .lines()
        .find_map(|line| line.strip_prefix("model name"))
        .map(|rest| rest.trim_start_matches([' ', '\t', ':']).to_owned())
        .unwrap_or_else(|| "unknown CPU".to_owned());
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let memory = fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|text| {
            let line = text.lines().find(|l| l.starts_with("MemTotal:"))?;
            let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
            Some(format!("{:.0} GiB", kib as f64 / f64::from(1 << 20)))
        })
        .unwrap_or_else(|| "unknown memory".to_owned());
    let kernel = fs::read_to_string("/proc/sys/kernel/osrelease")
        .map(|s| format!("Linux {}", s.trim()))
        .unwrap_or_else(|_| std::env::consts::OS.to_owned());
    let load = fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|s| s.split_whitespace().next().map(str::to_owned))
        .unwrap_or_else(|| "unknown".to_owned());
    let date = humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string();
    vec![
        format!(
            "Machine: {cpu}, {cores} logical cores, {memory}, {kernel}; 1-minute load average {load} when the run started."
        ),
        format!("Date: {date}."),
        format!(
            "Build: {}, release profile; wasmtime {} (cairn uses 48, Extism 43), extism {}, regorus {}.",
            facts::RUSTC_VERSION,
            facts::WASMTIME_VERSIONS,
            facts::EXTISM_VERSION,
            facts::REGORUS_VERSION
        ),
    ]
}
