//! Language benchmarks: for the secrets-scan check in Rust, Python and
//! JavaScript, cold compile vs cached load, and the cost of one
//! fresh-instance call. Run: `cargo bench -p cairn-tests --bench languages`.
//!
//! A Python or JS component takes seconds to compile, too long for
//! criterion's ten samples, so cold compiles are timed by hand
//! (`COLD_RUNS` runs, median printed); cached loads and calls go through
//! criterion.

use std::hint::black_box;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use cairn_host::{Change, Checkpoint, Limits, Runtime, RuntimeConfig};
use cairn_tests::guests;
use criterion::{Criterion, criterion_group, criterion_main};
use wasmtime::component::Component;

/// The secrets-scan check in each language.
const PLUGINS: [(&str, &str); 3] = [
    ("rust", guests::SECRETS_SCAN),
    ("python", guests::SECRETS_SCAN_PY),
    ("js", guests::SECRETS_SCAN_JS),
];

/// Cold compiles timed per language: three gives a median without spending
/// a minute per interpreter component.
const COLD_RUNS: usize = 3;

/// The corpus case with the most findings: one JSON connector, five secrets.
fn change() -> Arc<Change> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("conformance/secrets-scan/text-formats");
    Arc::new(Change::from_dir(&dir.join("change")).expect("read the corpus change"))
}

fn tokio() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime")
}

fn cold_compile(_: &mut Criterion) {
    let runtime = Runtime::new(RuntimeConfig::default()).expect("runtime");
    for (lang, path) in PLUGINS {
        let wasm = std::fs::read(path).expect("read the component");
        let mut times: Vec<Duration> = (0..COLD_RUNS)
            .map(|_| {
                let start = Instant::now();
                black_box(Component::from_binary(runtime.engine(), &wasm).expect("compiles"));
                start.elapsed()
            })
            .collect();
        times.sort();
        println!(
            "languages/cold-compile/{lang}: median {:.2?} of {COLD_RUNS} ({} bytes)",
            times[COLD_RUNS / 2],
            wasm.len()
        );
    }
}

fn cached_load(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("temp dir");
    let runtime = Runtime::new(RuntimeConfig {
        cache_dir: Some(dir.path().to_owned()),
        ..RuntimeConfig::default()
    })
    .expect("runtime");
    let engine = runtime.engine();
    let cache = runtime.compile_cache().expect("cache on");
    let mut group = c.benchmark_group("languages/cached-load");
    group.sample_size(10);
    for (lang, path) in PLUGINS {
        let wasm = std::fs::read(path).expect("read the component");
        let sha = runtime
            .load_bytes(lang, &wasm, None)
            .expect("loads")
            .sha256()
            .to_owned();
        group.bench_function(lang, |b| {
            b.iter(|| black_box(cache.load_or_compile(engine, &wasm, &sha).expect("loads")))
        });
    }
    group.finish();
}

fn call(c: &mut Criterion) {
    let runtime = cairn_tests::runtime();
    let change = change();
    let at = Checkpoint::default();
    let limits = Limits::default();
    let rt = tokio();
    let mut group = c.benchmark_group("languages/call");
    for (lang, path) in PLUGINS {
        let plugin = runtime.load_file(Path::new(path), None).expect("loads");
        let report = rt.block_on(plugin.validate(Arc::clone(&change), &at, "{}", &limits));
        assert!(
            matches!(report.outcome, cairn_host::CallOutcome::Completed(_)),
            "{lang}: {report:#?}"
        );
        println!(
            "languages/peak-memory/{lang}: {} bytes",
            report.peak_memory_bytes
        );
        group.bench_function(lang, |b| {
            b.iter(|| {
                black_box(rt.block_on(plugin.validate(Arc::clone(&change), &at, "{}", &limits)))
            })
        });
    }
    group.finish();
}

criterion_group!(benches, cold_compile, cached_load, call);
criterion_main!(benches);
