//! Validator benchmarks: the destructive-change and schema rule logic on a
//! ~1 MB workflow document, compiled natively (`cairn-rules` linked into the
//! benchmark) and as the wasm plugin called through cairn
//! (`Plugin::validate`: fresh instance, the change copied into the guest,
//! parsing, the rules, the verdict checked). Prints the peak linear memory
//! of each wasm call. Run: `cargo bench -p cairn-tests --bench validators`.

use std::hint::black_box;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use cairn_host::{CallOutcome, Change, Checkpoint, Document, Limits, Plugin};
use cairn_tests::guests;
use criterion::{Criterion, criterion_group, criterion_main};
use serde_json::json;

/// Size of the document under test: the "1 MB document".
const DOCUMENT_BYTES: usize = 1_000_000;

/// A workflow of connector steps, about `bytes` long once pretty-printed.
fn workflow(bytes: usize) -> serde_json::Value {
    let step = |i: usize| {
        json!({"id": format!("step-{i}"), "connector": "crm", "operation": "updateContact",
               "method": "PUT", "timeout_ms": 5000,
               "retry": {"max_attempts": 3, "backoff": {"type": "exponential", "initial_delay_ms": 200, "max_delay_ms": 10000}},
               "input": {"contact": format!("{{{{ trigger.contact_{i} }}}}")}})
    };
    let sample = json!({"steps": [step(0), step(1)]});
    let per_step = serde_json::to_vec_pretty(&sample).map_or(600, |s| s.len() / 2);
    json!({"name": "bulk-sync", "trigger": {"type": "schedule"},
           "steps": (0..bytes / per_step).map(step).collect::<Vec<_>>()})
}

/// The same documents as a host change and as the rules' own change.
struct Input {
    host: Arc<Change>,
    native: cairn_rules::Change,
}

fn input(before: Option<Vec<u8>>, after: Vec<u8>) -> Input {
    let path = "workflows/bulk-sync.json";
    let native = cairn_rules::Change {
        documents: vec![cairn_rules::Document::new(
            path,
            "application/json",
            before.clone(),
            Some(after.clone()),
        )],
        metrics: Default::default(),
    };
    let host = Arc::new(Change::new(
        [Document::new(path, before, Some(after))],
        Vec::new(),
    ));
    Input { host, native }
}

fn tokio() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime")
}

fn bench_pair(
    c: &mut Criterion,
    name: &str,
    guest: &str,
    input: &Input,
    config: &str,
    native: fn(&cairn_rules::Change, &str) -> Result<cairn_rules::Report, String>,
) {
    let plugin: Plugin = cairn_tests::runtime()
        .load_file(Path::new(guest), None)
        .expect("loads");
    let rt = tokio();
    let at = Checkpoint::default();
    let limits = Limits::default();
    let first = rt.block_on(plugin.validate(Arc::clone(&input.host), &at, config, &limits));
    let CallOutcome::Completed(verdict) = &first.outcome else {
        panic!("{name} did not complete: {:?}", first.outcome);
    };
    let native_report = native(&input.native, config).expect("native check");
    assert_eq!(
        verdict.findings.len(),
        native_report.findings.len(),
        "wasm and native disagree"
    );
    eprintln!(
        "{name}: wasm peak linear memory {:.1} MiB, {} finding(s), one call {:?}",
        first.peak_memory_bytes as f64 / (1 << 20) as f64,
        verdict.findings.len(),
        first.elapsed
    );

    let mut group = c.benchmark_group(format!("validators/{name}/1MB"));
    group
        .sample_size(20)
        .measurement_time(Duration::from_secs(8));
    group.bench_function("native", |b| {
        b.iter(|| black_box(native(&input.native, config).expect("native check")))
    });
    group.bench_function("wasm", |b| {
        b.iter(|| {
            black_box(rt.block_on(plugin.validate(Arc::clone(&input.host), &at, config, &limits)))
        })
    });
    group.finish();
}

fn destructive_change(c: &mut Criterion) {
    let before = workflow(DOCUMENT_BYTES);
    let mut after = before.clone();
    if let Some(steps) = after["steps"].as_array_mut() {
        steps.remove(10);
    }
    let input = input(
        Some(serde_json::to_vec_pretty(&before).expect("json")),
        serde_json::to_vec_pretty(&after).expect("json"),
    );
    bench_pair(
        c,
        "destructive-change",
        guests::DESTRUCTIVE_CHANGE,
        &input,
        "{}",
        cairn_rules::destructive::check,
    );
}

fn schema(c: &mut Criterion) {
    let after = workflow(DOCUMENT_BYTES);
    let input = input(None, serde_json::to_vec_pretty(&after).expect("json"));
    let config = json!({"schemas": [{"documents": ["workflows/*"], "schema": {
        "type": "object", "required": ["name", "steps"],
        "properties": {"steps": {"type": "array", "items": {"type": "object", "required": ["id", "connector"],
            "properties": {"id": {"type": "string", "pattern": "^step-[0-9]+$"}, "timeout_ms": {"type": "integer", "maximum": 60000}}}}}}}]})
    .to_string();
    bench_pair(
        c,
        "schema",
        guests::SCHEMA,
        &input,
        &config,
        cairn_rules::schema::check,
    );
}

criterion_group!(benches, destructive_change, schema);
criterion_main!(benches);
