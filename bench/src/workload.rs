//! What the benchmark validates: the ~1 KiB change of the small-validator
//! rows, the 1 MB documents of the heavy rows, the example changes of the
//! throughput rows; each as the host holds it, as the rules crate takes it
//! natively, and as the JSON input Extism and regorus are handed.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context;
use cairn_host::{Change, Document};
use serde::Serialize;
use serde_json::json;

/// The repository root (the harness runs from a checkout).
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_default()
}

/// One change, held both ways.
pub struct Workload {
    pub host: Arc<Change>,
    pub native: cairn_rules::Change,
}

impl Workload {
    pub fn new(change: Change) -> Workload {
        Workload {
            native: to_rules(&change),
            host: Arc::new(change),
        }
    }
}

/// The rules crate's copy of a host change.
pub fn to_rules(change: &Change) -> cairn_rules::Change {
    cairn_rules::Change {
        documents: change
            .documents()
            .map(|doc| {
                cairn_rules::Document::new(
                    doc.path.clone(),
                    doc.media_type.as_str().to_owned(),
                    doc.before.clone(),
                    doc.after.clone(),
                )
            })
            .collect(),
        metrics: change
            .metrics
            .iter()
            .map(|metric| (metric.name.clone(), metric.value))
            .collect(),
    }
}

/// The small validator's change, ~1 KiB in all: a workflow edited, a
/// connector deleted (the finding), a table added.
pub fn small_change() -> Workload {
    let steps: Vec<String> = (0..8)
        .map(|i| {
            format!(r#"{{"id": "step-{i}", "connector": "crm", "retry": {{"max-attempts": 3}}}}"#)
        })
        .collect();
    let before = format!(
        r#"{{"name": "orders", "steps": [{}]}}"#,
        steps[..7].join(", ")
    );
    let after = format!(r#"{{"name": "orders", "steps": [{}]}}"#, steps.join(", "));
    let connector =
        br#"{"name": "legacy-crm", "base_url": "https://crm.internal", "auth": "oauth2"}"#;
    let table = br#"{"table": "orders_archive", "columns": [{"name": "id", "type": "uuid"}]}"#;
    Workload::new(Change::new(
        [
            Document::new(
                "workflows/orders.json",
                Some(before.into_bytes()),
                Some(after.into_bytes()),
            ),
            Document::new("connectors/legacy-crm.json", Some(connector.to_vec()), None),
            Document::new("tables/orders_archive.json", None, Some(table.to_vec())),
        ],
        Vec::new(),
    ))
}

/// The JSON a peer without WIT is handed: the config (JSON text, spliced
/// in as it is) and the documents, texts as strings. Built on every call, as
/// a host would.
pub fn peer_input(change: &Change, config: &str) -> String {
    #[derive(Serialize)]
    struct InputDocument<'a> {
        path: &'a str,
        media_type: &'a str,
        status: cairn_host::DocumentStatus,
        before: Option<std::borrow::Cow<'a, str>>,
        after: Option<std::borrow::Cow<'a, str>>,
    }
    let documents: Vec<InputDocument> = change
        .documents()
        .map(|doc| InputDocument {
            path: &doc.path,
            media_type: doc.media_type.as_str(),
            status: doc.status(),
            before: doc.before.as_deref().map(String::from_utf8_lossy),
            after: doc.after.as_deref().map(String::from_utf8_lossy),
        })
        .collect();
    let documents = serde_json::to_string(&documents).unwrap_or_default();
    format!(r#"{{"config":{config},"documents":{documents}}}"#)
}

/// Size of the heavy rows' document: the issue's "1 MB document".
pub const HEAVY_DOCUMENT_BYTES: usize = 1_000_000;

/// A workflow of connector steps, about `bytes` long once pretty-printed.
pub fn workflow(bytes: usize) -> serde_json::Value {
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

/// A heavy validator's input: the change and the config.
pub struct HeavyCase {
    pub name: &'static str,
    pub workload: Workload,
    pub config: String,
}

/// destructive-change on a 1 MB workflow that loses one step (2 MB parsed:
/// before and after), and schema on a 1 MB workflow that matches.
pub fn heavy_cases() -> Vec<HeavyCase> {
    let path = "workflows/bulk-sync.json";
    let before = workflow(HEAVY_DOCUMENT_BYTES);
    let mut after = before.clone();
    if let Some(steps) = after["steps"].as_array_mut() {
        steps.remove(10);
    }
    let pretty = |value: &serde_json::Value| serde_json::to_vec_pretty(value).unwrap_or_default();
    let schema_config = json!({"schemas": [{"documents": ["workflows/*"], "schema": {
        "type": "object", "required": ["name", "steps"],
        "properties": {"steps": {"type": "array", "items": {"type": "object", "required": ["id", "connector"],
            "properties": {"id": {"type": "string", "pattern": "^step-[0-9]+$"}, "timeout_ms": {"type": "integer", "maximum": 60000}}}}}}}]});
    vec![
        HeavyCase {
            name: "destructive-change",
            workload: Workload::new(Change::new(
                [Document::new(
                    path,
                    Some(pretty(&before)),
                    Some(pretty(&after)),
                )],
                Vec::new(),
            )),
            config: "{}".to_owned(),
        },
        HeavyCase {
            name: "schema",
            workload: Workload::new(Change::new(
                [Document::new(path, None, Some(pretty(&before)))],
                Vec::new(),
            )),
            config: schema_config.to_string(),
        },
    ]
}

/// Every change under `examples/changes`, in name order.
pub fn example_changes() -> anyhow::Result<Vec<Workload>> {
    let dir = repo_root().join("examples/changes");
    let mut paths: Vec<PathBuf> = std::fs::read_dir(&dir)
        .with_context(|| format!("cannot list {}", dir.display()))?
        .filter_map(|entry| entry.ok().map(|entry| entry.path()))
        .filter(|path| path.is_dir())
        .collect();
    paths.sort();
    paths
        .iter()
        .map(|path| {
            Change::load(path)
                .map(Workload::new)
                .with_context(|| format!("cannot read the example change {}", path.display()))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_small_change_is_about_one_kib() {
        let change = small_change();
        let bytes: usize = change
            .host
            .documents()
            .map(|doc| {
                doc.before.as_ref().map_or(0, Vec::len) + doc.after.as_ref().map_or(0, Vec::len)
            })
            .sum();
        assert!((700..=1500).contains(&bytes), "{bytes} bytes");
    }

    #[test]
    fn the_heavy_documents_are_about_one_megabyte() {
        for case in heavy_cases() {
            let after = case
                .workload
                .host
                .documents()
                .next()
                .and_then(|doc| doc.after.clone());
            let len = after.map_or(0, |after| after.len());
            assert!(
                (900_000..=1_100_000).contains(&len),
                "{}: {len} bytes",
                case.name
            );
        }
    }
}
