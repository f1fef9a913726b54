//! Runtime benchmarks: the cost of one fresh-instance validator call, cold
//! compile vs cached load, and how far past a 100 ms deadline a looping and
//! a sleeping plugin run. Run: `cargo bench -p cairn-tests --bench runtime`.

use std::hint::black_box;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use cairn_host::{Change, Checkpoint, Document, Limits, Runtime, RuntimeConfig};
use cairn_tests::guests;
use criterion::{Criterion, criterion_group, criterion_main};
use wasmtime::component::Component;

/// A ~1 KiB change: one modified workflow document.
fn small_change() -> Arc<Change> {
    let steps: Vec<String> = (0..12)
        .map(|i| {
            format!(r#"{{"id": "step-{i}", "connector": "crm", "retry": {{"max-attempts": 3}}}}"#)
        })
        .collect();
    let after = format!(r#"{{"name": "orders", "steps": [{}]}}"#, steps.join(", "));
    Arc::new(Change::new(
        [Document::new(
            "workflows/orders.json",
            Some(b"{}".to_vec()),
            Some(after.into_bytes()),
        )],
        Vec::new(),
    ))
}

fn tokio() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime")
}

fn fresh_instance_call(c: &mut Criterion) {
    let runtime = cairn_tests::runtime();
    let plugin = runtime
        .load_file(Path::new(guests::NO_DELETES), None)
        .expect("loads");
    let change = small_change();
    let at = Checkpoint::default();
    let limits = Limits::default();
    let rt = tokio();
    c.bench_function("call/fresh-instance/no-deletes", |b| {
        b.iter(|| {
            let report = rt.block_on(plugin.validate(Arc::clone(&change), &at, "{}", &limits));
            black_box(report)
        })
    });
}

fn load(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("temp dir");
    let runtime = Runtime::new(RuntimeConfig {
        cache_dir: Some(dir.path().to_owned()),
        ..RuntimeConfig::default()
    })
    .expect("runtime");
    let engine = runtime.engine();
    let cache = runtime.compile_cache().expect("cache on");
    let mut group = c.benchmark_group("load/no-deletes");
    group.sample_size(10);
    let wasm = std::fs::read(guests::NO_DELETES).expect("read");
    let sha = runtime
        .load_bytes("p", &wasm, None)
        .expect("loads")
        .sha256()
        .to_owned();
    group.bench_function("cold-compile", |b| {
        b.iter(|| black_box(Component::from_binary(engine, &wasm).expect("compiles")))
    });
    group.bench_function("cached", |b| {
        b.iter(|| black_box(cache.load_or_compile(engine, &wasm, &sha).expect("loads")))
    });
    group.finish();
}

/// Reports the time a plugin ran past its deadline (not the call time).
fn deadline_overshoot(c: &mut Criterion) {
    let runtime = cairn_tests::runtime();
    let fixture = runtime
        .load_file(Path::new(guests::FIXTURE), None)
        .expect("loads");
    let limits = Limits {
        timeout: Duration::from_millis(100),
        ..Limits::default()
    };
    let change = small_change();
    let at = Checkpoint::default();
    let rt = tokio();
    let mut group = c.benchmark_group("deadline-overshoot-100ms");
    group
        .sample_size(10)
        .measurement_time(Duration::from_secs(4));
    for mode in ["loop", "sleep"] {
        let config = format!(r#"{{"mode": "{mode}"}}"#);
        group.bench_function(mode, |b| {
            b.iter_custom(|iters| {
                let mut overshoot = Duration::ZERO;
                for _ in 0..iters {
                    let report =
                        rt.block_on(fixture.validate(Arc::clone(&change), &at, &config, &limits));
                    assert_eq!(
                        report.failure_kind(),
                        Some(cairn_host::FailureKind::Timeout)
                    );
                    overshoot += report.elapsed.saturating_sub(limits.timeout);
                }
                overshoot
            })
        });
    }
    group.finish();
}

criterion_group!(benches, fresh_instance_call, load, deadline_overshoot);
criterion_main!(benches);
