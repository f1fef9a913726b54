//! cairn-bench: measures cairn side by side with the physical limit (the
//! same rule compiled natively), with Extism and with a Rego policy in
//! regorus, and its fault proxy against direct, haproxy and noxious, and
//! writes the table into BENCHMARKS.md. `bench/run` is the one
//! command; `cairn-bench --help` lists the options.

pub mod hops;
pub mod journal;
pub mod machine;
pub mod peers;
pub mod proxy;
pub mod report;
pub mod sections;
pub mod stats;
pub mod tools;
pub mod workload;
pub mod wrk;

/// Facts fixed at build time by `build.rs`: the Extism guest's path and
/// the versions of rustc and of the engines.
pub mod facts {
    include!(concat!(env!("OUT_DIR"), "/build_facts.rs"));
}

use std::sync::Arc;

use anyhow::Context;
use cairn_host::{Runtime, RuntimeConfig};

use report::Report;
use sections::{Bench, Mode};

/// The parts of the table, in order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Part {
    /// 1. the small validator six ways: native, cairn (pooling, on-demand), Extism (kept, new), regorus
    Small,
    /// 2. destructive-change and schema on a 1 MB document, wasm vs native
    Heavy,
    /// 3. validations per second for a checkpoint of 5 validators on all cores
    Throughput,
    /// 4. cold compile vs cached load for a Rust, a Python and a JS plugin
    Load,
    /// 5a. deadline overshoot of a looping and a sleeping plugin, idle and busy
    Overshoot,
    /// 5b. cost of epoch checks and of fuel vs no interruption
    Interruption,
    /// 6. the fault proxy vs direct, haproxy and noxious under wrk (needs haproxy, wrk, noxious-proxy)
    Proxy,
    /// 7. the rollout journal: fsynced appends vs a bare write+fdatasync loop, verify, open
    Journal,
}

impl Part {
    pub const ALL: [Part; 8] = [
        Part::Small,
        Part::Heavy,
        Part::Throughput,
        Part::Load,
        Part::Overshoot,
        Part::Interruption,
        Part::Proxy,
        Part::Journal,
    ];
}

/// Runs `parts` and returns the report; `progress` hears which part starts.
pub fn run(mode: Mode, parts: &[Part], mut progress: impl FnMut(Part)) -> anyhow::Result<Report> {
    let runtime = Arc::new(
        Runtime::new(RuntimeConfig {
            cache_dir: Some(cairn_tests::shared_cache_dir()),
            ..RuntimeConfig::default()
        })
        .context("cannot start cairn's runtime")?,
    );
    let bench = Bench {
        mode,
        runtime,
        cores: std::thread::available_parallelism().map_or(1, |n| n.get()),
    };
    let mut preamble = machine::describe();
    preamble.push(
        "Command: `bench/run` (installs the toolchains, then runs \
         `cargo run --release -p cairn-bench -- --write BENCHMARKS.md`); about 6 minutes \
         after the build. All figures below come from that one run."
            .to_owned(),
    );
    if mode == Mode::Quick {
        preamble.push(
            "**Quick mode**: a few samples each, to see that everything runs; do not quote."
                .to_owned(),
        );
    }
    let mut report = Report {
        preamble: preamble.join("\n"),
        ..Report::default()
    };
    for &part in parts {
        progress(part);
        let (section, targets) = match part {
            Part::Small => sections::small_validator(&bench),
            Part::Heavy => sections::heavy_validators(&bench),
            Part::Throughput => sections::throughput(&bench),
            Part::Load => sections::load(&bench),
            Part::Overshoot => sections::overshoot(&bench),
            Part::Interruption => sections::interruption_cost(&bench),
            Part::Proxy => proxy::section(&bench),
            Part::Journal => journal::section(&bench),
        }
        .with_context(|| format!("measuring {part:?}"))?;
        report.sections.push(section);
        report.targets.extend(targets);
    }
    Ok(report)
}
