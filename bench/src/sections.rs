//! The measurements, one function per section of the table: the small
//! validator six ways, heavy validators vs native, checkpoint throughput,
//! plugin load per language, deadline overshoot and the cost of deadline
//! checks (the fault proxy's section is `crate::proxy`). Each returns its
//! section and the targets it judged.

use std::hint::black_box;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context as _, ensure};
use cairn_host::check::plan::{AdHocCheckpoint, AdHocPlugin, Plan};
use cairn_host::check::{self, LoadedPlugins, NoProgress};
use cairn_host::{CallOutcome, FailureKind, InstanceAllocation, Limits, Runtime, RuntimeConfig};
use cairn_tests::guests;
use wasmtime::component::Component;

use crate::peers::{CairnPeer, ExtismPeer, RegoPeer, native};
use crate::report::{Section, Target, mib, ratio, show};
use crate::stats::{Budget, Samples, collect, time_each, time_interleaved};
use crate::workload::{
    NativeCheck, Workload, example_changes, heavy_cases, peer_input, small_change,
};

/// How long to measure: `Full` for the published table, `Quick` to see that
/// everything runs (a few samples each, figures not worth quoting).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Full,
    Quick,
}

impl Mode {
    fn pick(self, full: Budget, quick: Budget) -> Budget {
        match self {
            Mode::Full => full,
            Mode::Quick => quick,
        }
    }
}

/// What every section needs.
pub struct Bench {
    pub mode: Mode,
    /// cairn's runtime as `cairn check` builds it (pooling, epoch deadline),
    /// with the shared compile cache.
    pub runtime: Arc<Runtime>,
    pub cores: usize,
}

/// A section's table and the targets judged on its figures.
pub type Outcome = (Section, Vec<Target>);

fn runtime_with(config: RuntimeConfig) -> anyhow::Result<Runtime> {
    Runtime::new(RuntimeConfig {
        cache_dir: Some(cairn_tests::shared_cache_dir()),
        ..config
    })
    .context("cannot start a cairn runtime")
}

/// Section 1: the per-validation cost of the small validator, six ways.
pub fn small_validator(bench: &Bench) -> anyhow::Result<Outcome> {
    let workload = small_change();
    let config = "{}";
    let input = || peer_input(&workload.host, config);

    let pooled = CairnPeer::load(&bench.runtime, Path::new(guests::NO_DELETES))?;
    let on_demand_runtime = runtime_with(RuntimeConfig {
        instance_allocation: InstanceAllocation::OnDemand,
        ..RuntimeConfig::default()
    })?;
    let on_demand = CairnPeer::load(&on_demand_runtime, Path::new(guests::NO_DELETES))?;
    let extism_wasm = std::fs::read(crate::facts::EXTISM_NO_DELETES)
        .with_context(|| format!("cannot read {}", crate::facts::EXTISM_NO_DELETES))?;
    let mut extism = ExtismPeer::new(&extism_wasm)?;
    let rego = RegoPeer::new()?;

    // Same answer everywhere, or the comparison means nothing.
    let expected = native(&workload.native, config)?;
    ensure!(
        !expected.findings.is_empty(),
        "the small change should produce a finding"
    );
    for (name, answer) in [
        ("cairn (pooling)", pooled.answer(&workload.host, config)?),
        (
            "cairn (on-demand)",
            on_demand.answer(&workload.host, config)?,
        ),
        ("Extism (kept instance)", extism.call_kept(&input())?),
        ("Extism (new plugin)", extism.call_fresh(&input())?),
        ("regorus", rego.eval(&input())?),
    ] {
        ensure!(
            answer == expected,
            "{name} answers {answer:?}, native answers {expected:?}"
        );
    }

    let budget = bench.mode.pick(
        Budget::new(Duration::from_secs(3), 1_000, 200_000),
        Budget::new(Duration::from_millis(50), 20, 2_000),
    );
    let native_samples = time_each(budget, || native(&workload.native, config))?;
    let pooled_samples = time_each(budget, || pooled.answer(&workload.host, config))?;
    let on_demand_samples = time_each(budget, || on_demand.answer(&workload.host, config))?;
    let extism_kept = time_each(budget, || extism.call_kept(&input()))?;
    let extism_fresh = time_each(budget, || extism.call_fresh(&input()))?;
    let rego_samples = time_each(budget, || rego.eval(&input()))?;

    let mut section = Section::new(
        "1. Per-validation cost: small validator, ~1 KiB change",
        "The `no-deletes` rule (`cairn_rules::no_deletes`) on a change of three documents \
         (~1 KiB: a workflow edited, a connector deleted, a table added; one finding), \
         run six ways. Every way returns the same verdict, checked before timing. Each call \
         is timed on its own, one at a time on one thread; the Extism and regorus calls \
         include serialising the change to the JSON they take, and every call ends with the \
         verdict in host structures.",
        &[
            "way",
            "between calls",
            "median",
            "p99",
            "× native",
            "samples",
        ],
    );
    let mut add = |way: &str, isolation: &str, samples: &Samples| {
        section.row(vec![
            way.to_owned(),
            isolation.to_owned(),
            show(samples.median()),
            show(samples.p99()),
            ratio(samples.median(), native_samples.median()),
            samples.len().to_string(),
        ]);
    };
    add(
        "native: the rule compiled into the host",
        "nothing isolated",
        &native_samples,
    );
    add(
        "**cairn**: fresh store + instance per call, pooling allocator",
        "nothing survives",
        &pooled_samples,
    );
    add(
        "cairn, on-demand allocator",
        "nothing survives",
        &on_demand_samples,
    );
    add(
        "Extism 1.30: call on a kept plugin instance",
        "memory and globals persist",
        &extism_kept,
    );
    add(
        "Extism 1.30: new plugin from the compiled module per call",
        "nothing survives",
        &extism_fresh,
    );
    add(
        "regorus: Rego policy, compiled once, evaluated per input",
        "not sandboxed (interpreter in the host)",
        &rego_samples,
    );
    section.notes = format!(
        "cairn's fresh-instance call costs {} the median of an Extism call on a kept \
         instance, and {} that of a new Extism plugin per call (the same isolation).",
        ratio(pooled_samples.median(), extism_kept.median()),
        ratio(pooled_samples.median(), extism_fresh.median()),
    );
    let targets = vec![
        Target {
            goal: "fresh-instance cairn call ≤ Extism call on a kept instance (median)".into(),
            measured: format!(
                "{} vs {}",
                show(pooled_samples.median()),
                show(extism_kept.median())
            ),
            met: pooled_samples.median() <= extism_kept.median(),
        },
        Target {
            goal: "small-validator fresh-instance cairn call ≤ 25 µs (median)".into(),
            measured: show(pooled_samples.median()),
            met: pooled_samples.median() <= Duration::from_micros(25),
        },
    ];
    Ok((section, targets))
}

/// Section 2: heavy validators on a 1 MB document: wasm through cairn vs native.
pub fn heavy_validators(bench: &Bench) -> anyhow::Result<Outcome> {
    let budget = bench.mode.pick(
        Budget::new(Duration::from_secs(4), 10, 500),
        Budget::new(Duration::ZERO, 2, 2),
    );
    let mut section = Section::new(
        "2. Heavy validators: 1 MB document, wasm vs native",
        "The same rule code (`cairn-rules`) compiled into the host and run as the plugin \
         through cairn with the default limits (fresh instance, the change copied in, \
         parsing, the rule, the verdict checked). destructive-change parses a 1 MB workflow \
         before and after (one step removed: one finding); schema validates a 1 MB workflow \
         against a schema with a `pattern` on every step id (no finding); api-contract \
         compares two 1 MB OpenAPI 3.1 documents (one path removed, one shared enum \
         narrowed: its findings at every operation that reaches it); references reads a 1 MB \
         workflow whose steps name 50 connectors, one of them deleted (a dangling reference \
         at every step naming it, 200 listed, and the impact list).",
        &[
            "validator",
            "native",
            "cairn",
            "cairn / native",
            "peak linear memory",
        ],
    );
    let mut targets = Vec::new();
    for case in heavy_cases() {
        let check = case.check;
        let plugin = CairnPeer::load(&bench.runtime, Path::new(case.guest))?;
        let first = plugin.validate(&case.workload.host, &case.config);
        let CallOutcome::Completed(verdict) = &first.outcome else {
            anyhow::bail!("{} did not complete: {:?}", case.name, first.outcome);
        };
        let native_report =
            check(&case.workload.native, &case.config).map_err(anyhow::Error::msg)?;
        ensure!(
            verdict.findings.len() == native_report.findings.len(),
            "{}: wasm finds {}, native {}",
            case.name,
            verdict.findings.len(),
            native_report.findings.len()
        );
        let mut native = || {
            black_box(check(&case.workload.native, &case.config).map_err(anyhow::Error::msg)?);
            Ok(())
        };
        let mut wasm = || {
            black_box(completed(
                plugin.validate(&case.workload.host, &case.config),
            )?);
            Ok(())
        };
        let operations: &mut [&mut dyn FnMut() -> anyhow::Result<()>] =
            &mut [&mut native, &mut wasm];
        let samples = time_interleaved(budget, operations)?;
        let (native_samples, wasm_samples) = (&samples[0], &samples[1]);
        let r = wasm_samples.median().as_secs_f64() / native_samples.median().as_secs_f64();
        section.row(vec![
            case.name.to_owned(),
            show(native_samples.median()),
            show(wasm_samples.median()),
            ratio(wasm_samples.median(), native_samples.median()),
            mib(first.peak_memory_bytes),
        ]);
        targets.push(Target {
            goal: format!("heavy validator ({}) ≤ 1.5× native", case.name),
            measured: format!("{r:.2}×"),
            met: r <= 1.5,
        });
    }
    Ok((section, targets))
}

fn completed<T: std::fmt::Debug>(
    report: cairn_host::CallReport<T>,
) -> anyhow::Result<cairn_host::CallReport<T>> {
    ensure!(
        matches!(report.outcome, CallOutcome::Completed(_)),
        "{} did not complete: {:?}",
        report.plugin,
        report.outcome
    );
    Ok(report)
}

/// The checkpoint of the throughput rows: five validators and their configs
/// (those of `examples/cairn.toml`), with each one's native rule.
const CHECKPOINT: [(&str, &str, NativeCheck); 5] = [
    (guests::NO_DELETES, "{}", cairn_rules::no_deletes::check),
    (
        guests::SCHEMA,
        r#"{"follow-dollar-schema": true, "default-draft": "2020-12"}"#,
        cairn_rules::schema::check,
    ),
    (
        guests::RETRY_POLICY,
        r#"{"documents": ["workflows/*"], "max-attempts": 5}"#,
        cairn_rules::retry_policy::check,
    ),
    (
        guests::DESTRUCTIVE_CHANGE,
        r#"{"allow": ["connectors/legacy-*"]}"#,
        cairn_rules::destructive::check,
    ),
    (
        guests::API_CONTRACT,
        r#"{"report-additions": false}"#,
        cairn_rules::api_contract::check,
    ),
];

/// Section 3: validations per second on all cores, a checkpoint of five
/// validators over every example change, again and again.
pub fn throughput(bench: &Bench) -> anyhow::Result<Outcome> {
    let changes = example_changes()?;
    let (passes, rounds) = match bench.mode {
        Mode::Full => (40, 5),
        Mode::Quick => (1, 1),
    };
    // The checkpoint `cairn check` would run: an ad-hoc plan of the five
    // validators, each with its config, through the library's one runner.
    let plan = Arc::new(Plan::ad_hoc(
        AdHocCheckpoint::default(),
        CHECKPOINT
            .iter()
            .map(|(guest, config, _)| AdHocPlugin {
                config: Some((*config).to_owned()),
                ..AdHocPlugin::new(*guest)
            })
            .collect(),
    ));
    let plugins = Arc::new(
        check::load_plugins(
            &bench.runtime,
            &plan,
            plan.plugins.keys().map(String::as_str),
            &NoProgress,
        )
        .context("cannot load the checkpoint's plugins")?,
    );
    let validations = passes * changes.len() * CHECKPOINT.len();
    let tokio = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(bench.cores)
        .enable_all()
        .build()
        .context("cannot start a tokio runtime")?;

    let cairn_rates = collect(Budget::new(Duration::ZERO, rounds, rounds), || {
        let start = Instant::now();
        let completed = tokio.block_on(run_checkpoints(&plan, &plugins, &changes, passes))?;
        ensure!(
            completed == validations,
            "{} of {validations} validations completed",
            completed
        );
        Ok(start.elapsed())
    })?;
    let native_rates = collect(Budget::new(Duration::ZERO, rounds, rounds), || {
        native_checkpoints(&changes, passes, bench.cores)
    })?;
    let per_second = |elapsed: Duration| validations as f64 / elapsed.as_secs_f64();
    let cairn = per_second(cairn_rates.median());
    let native = per_second(native_rates.median());
    let mut section = Section::new(
        &format!(
            "3. Throughput: a checkpoint of 5 validators on {} cores",
            bench.cores
        ),
        &format!(
            "no-deletes, schema, retry-policy, destructive-change and api-contract, with the \
             configs of `examples/cairn.toml`, on each of the {} example changes \
             (`examples/changes`), {passes} times over: {validations} validations per round, \
             median of {rounds} rounds. cairn runs each change's checkpoint with \
             `check::run_checkpoint` (every validator its own task and fresh instance, the \
             gate decided) on a tokio \
             runtime with one worker per core, 8 changes in flight; native runs the same \
             rules on one thread per core.",
            changes.len()
        ),
        &[
            "way",
            "validations / s",
            "per validation (wall / validations)",
            "native / cairn",
        ],
    );
    section.row(vec![
        "**cairn**".to_owned(),
        format!("{cairn:.0}"),
        show(cairn_rates.median() / validations as u32),
        format!("{:.2}×", native / cairn),
    ]);
    section.row(vec![
        "native".to_owned(),
        format!("{native:.0}"),
        show(native_rates.median() / validations as u32),
        "1×".to_owned(),
    ]);
    Ok((section, Vec::new()))
}

/// Runs the checkpoint on every change `passes` times; returns how many
/// validations completed.
async fn run_checkpoints(
    plan: &Arc<Plan>,
    plugins: &Arc<LoadedPlugins>,
    changes: &[Workload],
    passes: usize,
) -> anyhow::Result<usize> {
    // 8 changes in flight, as before admission control existed, so figures
    // stay comparable; admission would hold any excess back anyway.
    let in_flight = Arc::new(tokio::sync::Semaphore::new(8));
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..passes {
        for change in changes {
            let permit = Arc::clone(&in_flight).acquire_owned().await?;
            let plan = Arc::clone(plan);
            let plugins = Arc::clone(plugins);
            let change = Arc::clone(&change.host);
            tasks.spawn(async move {
                let result =
                    check::run_checkpoint(&plan, &plan.checkpoints[0], &plugins, change, "bench")
                        .await;
                drop(permit);
                result
                    .validators
                    .iter()
                    .filter(|v| matches!(v.report.outcome, CallOutcome::Completed(_)))
                    .count()
            });
        }
    }
    let mut completed = 0;
    while let Some(done) = tasks.join_next().await {
        completed += done?;
    }
    Ok(completed)
}

/// The same work natively, on `threads` threads.
fn native_checkpoints(
    changes: &[Workload],
    passes: usize,
    threads: usize,
) -> anyhow::Result<Duration> {
    let next = AtomicUsize::new(0);
    let jobs = passes * changes.len();
    let start = Instant::now();
    std::thread::scope(|scope| {
        let workers: Vec<_> = (0..threads)
            .map(|_| {
                scope.spawn(|| -> anyhow::Result<()> {
                    loop {
                        let job = next.fetch_add(1, Ordering::Relaxed);
                        if job >= jobs {
                            return Ok(());
                        }
                        let change = &changes[job % changes.len()].native;
                        for (_, config, check) in CHECKPOINT {
                            black_box(check(change, config).map_err(anyhow::Error::msg)?);
                        }
                    }
                })
            })
            .collect();
        workers.into_iter().try_for_each(|worker| {
            worker
                .join()
                .map_err(|_| anyhow::anyhow!("a native worker panicked"))?
        })
    })?;
    Ok(start.elapsed())
}

/// Section 4: loading a plugin: cold compile vs the compile cache, per language.
pub fn load(bench: &Bench) -> anyhow::Result<Outcome> {
    let cold_runs = match bench.mode {
        Mode::Full => 3,
        Mode::Quick => 1,
    };
    let budget = bench.mode.pick(
        Budget::new(Duration::from_secs(2), 20, 10_000),
        Budget::new(Duration::ZERO, 3, 3),
    );
    let cache_dir = tempfile::tempdir().context("cannot create a temporary cache")?;
    let fresh = Runtime::new(RuntimeConfig {
        cache_dir: Some(cache_dir.path().to_owned()),
        ..RuntimeConfig::default()
    })?;
    let cache = fresh
        .compile_cache()
        .context("the runtime has no compile cache")?;
    let change = Arc::new(
        cairn_host::Change::from_dir(
            &crate::workload::repo_root()
                .join("tests/conformance/secrets-scan/text-formats/change"),
        )
        .context("cannot read the secrets-scan corpus change")?,
    );
    let mut section = Section::new(
        "4. Load: cold compile vs compile cache, per language",
        "The secrets-in-config scanner written three times (`plugins/secrets-scan`, \
         `plugins/secrets-scan-py` with componentize-py, `plugins/secrets-scan-js` with \
         componentize-js). Cold compile is `Component::from_binary` (Cranelift, all cores); \
         cached load is cairn's on-disk cache (`.cwasm` deserialised). The call is one \
         fresh-instance validation of the corpus case `text-formats` (3 documents, 5 findings).",
        &[
            "language",
            "component",
            "cold compile",
            "cached load",
            "cold / cached",
            "fresh-instance call",
            "peak linear memory",
        ],
    );
    let mut targets = Vec::new();
    for (language, guest) in [
        ("Rust", guests::SECRETS_SCAN),
        ("Python", guests::SECRETS_SCAN_PY),
        ("JavaScript", guests::SECRETS_SCAN_JS),
    ] {
        let wasm = std::fs::read(guest).with_context(|| format!("cannot read {guest}"))?;
        let cold = collect(Budget::new(Duration::ZERO, cold_runs, cold_runs), || {
            let start = Instant::now();
            black_box(
                Component::from_binary(fresh.engine(), &wasm)
                    .map_err(|err| anyhow::anyhow!("{err:?}"))?,
            );
            Ok(start.elapsed())
        })?;
        // Compiles once more and fills the cache.
        let sha256 = fresh.load_bytes(language, &wasm, None)?.digest();
        let cached = time_each(budget, || {
            cache
                .load_or_compile(fresh.engine(), &wasm, &sha256)
                .map_err(|err| anyhow::anyhow!("{err:?}"))
        })?;
        let plugin = CairnPeer::load(&bench.runtime, Path::new(guest))?;
        let first = completed(plugin.validate(&change, "{}"))?;
        let calls = time_each(budget, || completed(plugin.validate(&change, "{}")))?;
        let speedup = cold.median().as_secs_f64() / cached.median().as_secs_f64();
        section.row(vec![
            language.to_owned(),
            format!("{:.1} MB", wasm.len() as f64 / 1e6),
            show(cold.median()),
            show(cached.median()),
            format!("{speedup:.0}×"),
            show(calls.median()),
            mib(first.peak_memory_bytes),
        ]);
        targets.push(Target {
            goal: format!("cached load ≥ 50× faster than cold compile ({language})"),
            measured: format!("{speedup:.0}×"),
            met: speedup >= 50.0,
        });
    }
    section.notes = format!(
        "Cold compiles: median of {cold_runs}; the other columns: medians of at least {} runs.",
        budget.min
    );
    Ok((section, targets))
}

/// The deadline of the overshoot rows.
const OVERSHOOT_DEADLINE: Duration = Duration::from_millis(25);

/// Section 5a: how far past its deadline a looping or sleeping plugin runs, idle
/// and with every core busy.
pub fn overshoot(bench: &Bench) -> anyhow::Result<Outcome> {
    let runs = match bench.mode {
        Mode::Full => 200,
        Mode::Quick => 5,
    };
    let fixture =
        CairnPeer::load(&bench.runtime, Path::new(guests::FIXTURE))?.with_limits(Limits {
            timeout: OVERSHOOT_DEADLINE,
            ..Limits::default()
        });
    let change = small_change();
    let mut section = Section::new(
        "5a. Limits: overshoot past the deadline",
        &format!(
            "The fixture plugin (`tests/guests/fixture`) with a {} ms deadline, {runs} runs \
             per row: `loop` spins in pure wasm (stopped by the epoch check, which compares \
             the wall clock with the deadline every 1 ms tick); `sleep` blocks in a WASI sleep \
             of 10 s (cut by the tokio timeout). Overshoot = when the report arrives − the \
             deadline. \"Busy\": one thread per core spinning meanwhile.",
            OVERSHOOT_DEADLINE.as_millis()
        ),
        &["plugin", "machine", "p50", "p99", "max"],
    );
    let mut idle_p99 = Duration::ZERO;
    for busy in [false, true] {
        let spinners = Spinners::start(if busy { bench.cores } else { 0 });
        for mode in ["loop", "sleep"] {
            let config = format!(r#"{{"mode": "{mode}"}}"#);
            let samples = collect(Budget::new(Duration::ZERO, runs, runs), || {
                let report = fixture.validate(&change.host, &config);
                ensure!(
                    report.failure_kind() == Some(FailureKind::Timeout),
                    "the {mode} plugin was not stopped by its deadline: {:?}",
                    report.outcome
                );
                Ok(report.elapsed.saturating_sub(OVERSHOOT_DEADLINE))
            })?;
            if !busy {
                idle_p99 = idle_p99.max(samples.p99());
            }
            section.row(vec![
                format!("`{mode}`"),
                if busy { "all cores busy" } else { "idle" }.to_owned(),
                show(samples.median()),
                show(samples.p99()),
                show(samples.max()),
            ]);
        }
        spinners.stop();
    }
    let targets = vec![Target {
        goal: "deadline overshoot ≤ 10 ms at p99, idle".into(),
        measured: show(idle_p99),
        met: idle_p99 <= Duration::from_millis(10),
    }];
    Ok((section, targets))
}

/// Threads that keep the cores busy until stopped.
struct Spinners {
    stop: Arc<AtomicBool>,
    threads: Vec<std::thread::JoinHandle<()>>,
}

impl Spinners {
    fn start(count: usize) -> Spinners {
        let stop = Arc::new(AtomicBool::new(false));
        let threads = (0..count)
            .map(|_| {
                let stop = Arc::clone(&stop);
                std::thread::spawn(move || {
                    let mut x = 0u64;
                    while !stop.load(Ordering::Relaxed) {
                        x = black_box(x.wrapping_mul(6364136223846793005).wrapping_add(1));
                    }
                })
            })
            .collect();
        Spinners { stop, threads }
    }

    fn stop(self) {
        self.stop.store(true, Ordering::Relaxed);
        for thread in self.threads {
            let _ = thread.join();
        }
    }
}

/// Section 5b: what deadline checks cost: the same validators on engines without
/// interruption, with epoch checks (cairn's default), and with fuel.
pub fn interruption_cost(bench: &Bench) -> anyhow::Result<Outcome> {
    let budget = bench.mode.pick(
        Budget::new(Duration::from_secs(3), 10, 200),
        Budget::new(Duration::ZERO, 2, 2),
    );
    let engines = [
        (
            "none",
            RuntimeConfig {
                epoch_interruption: false,
                ..RuntimeConfig::default()
            },
        ),
        ("epoch", RuntimeConfig::default()),
        (
            "fuel",
            RuntimeConfig {
                epoch_interruption: false,
                fuel_metering: true,
                ..RuntimeConfig::default()
            },
        ),
    ];
    let runtimes = engines
        .into_iter()
        .map(|(name, config)| Ok((name, runtime_with(config)?)))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let limits = Limits {
        timeout: Duration::from_secs(30),
        ..Limits::default()
    };
    let heavy = heavy_cases()
        .into_iter()
        .find(|case| case.name == "destructive-change")
        .context("no destructive-change case")?;
    let small = small_change();
    let workloads: [(&str, &str, &Workload, String); 2] = [
        (
            "tight loop (fixture `compute`, 30 M rounds)",
            guests::FIXTURE,
            &small,
            r#"{"mode": "compute", "rounds": 30000000}"#.to_owned(),
        ),
        (
            "destructive-change, 1 MB",
            guests::DESTRUCTIVE_CHANGE,
            &heavy.workload,
            heavy.config.clone(),
        ),
    ];
    let mut section = Section::new(
        "5b. Limits: cost of deadline checks",
        "The same plugin on three engines that differ only in what the compiled code checks: \
         nothing (no deadline can stop pure computation), epoch checks (cairn's default: a \
         load and compare at every loop head and function entry), or fuel (a counter \
         updated per basic block). Fresh-instance calls, medians.",
        &[
            "validator",
            "none",
            "epoch",
            "epoch cost",
            "fuel",
            "fuel cost",
        ],
    );
    let mut targets = Vec::new();
    for (name, guest, workload, config) in workloads {
        let peers = runtimes
            .iter()
            .map(|(_, runtime)| Ok(CairnPeer::load(runtime, Path::new(guest))?.with_limits(limits)))
            .collect::<anyhow::Result<Vec<_>>>()?;
        let config = &config;
        let mut calls: Vec<_> = peers
            .iter()
            .map(|peer| {
                move || {
                    black_box(completed(peer.validate(&workload.host, config))?);
                    anyhow::Ok(())
                }
            })
            .collect();
        let medians: Vec<Duration> = time_interleaved(budget, &mut calls)?
            .iter()
            .map(Samples::median)
            .collect();
        let cost = |with: Duration| {
            let base = medians[0].as_secs_f64();
            (with.as_secs_f64() - base) / base * 100.0
        };
        section.row(vec![
            name.to_owned(),
            show(medians[0]),
            show(medians[1]),
            format!("{:+.1} %", cost(medians[1])),
            show(medians[2]),
            format!("{:+.1} %", cost(medians[2])),
        ]);
        targets.push(Target {
            goal: format!("epoch checks cost ≤ 15 % vs none ({name})"),
            measured: format!("{:+.1} %", cost(medians[1])),
            met: cost(medians[1]) <= 15.0,
        });
    }
    Ok((section, targets))
}
