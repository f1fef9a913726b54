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

/// An OpenAPI 3.1 document of about `bytes` bytes (pretty JSON): one path
/// per resource, `GET` with query parameters and `POST` with a request body,
/// each resource's schema in `components` (nested objects, arrays, enums,
/// constraints) reached through local `$ref`s.
pub fn openapi(bytes: usize) -> serde_json::Value {
    let resource = |i: usize| {
        let schema = format!("Item{i}");
        let reference = json!({"$ref": format!("#/components/schemas/{schema}")});
        let path = json!({
            "get": {"operationId": format!("list{i}"),
                    "parameters": [
                        {"name": "status", "in": "query", "schema": {"type": "string", "enum": ["open", "closed", "void"]}},
                        {"name": "limit", "in": "query", "schema": {"type": "integer", "minimum": 1, "maximum": 500}}],
                    "responses": {"200": {"description": "ok", "content": {"application/json": {"schema": {"type": "array", "items": reference}}}}}},
            "post": {"operationId": format!("create{i}"),
                     "requestBody": {"required": true, "content": {"application/json": {"schema": reference}}},
                     "responses": {"201": {"description": "created", "content": {"application/json": {"schema": reference}}}}}});
        let component = json!({
            "type": "object", "required": ["id", "name"],
            "properties": {
                "id": {"type": "string", "pattern": "^[a-z0-9-]+$"},
                "name": {"type": "string", "maxLength": 200},
                "state": {"type": "string", "enum": ["draft", "live", "retired"]},
                "amount": {"type": "number", "minimum": 0},
                "tags": {"type": "array", "items": {"type": "string"}, "maxItems": 20},
                "owner": {"type": "object", "properties": {"team": {"type": "string"}, "email": {"type": "string", "format": "email"}}}}});
        (format!("/items{i}"), path, schema, component)
    };
    let document = |count: usize| {
        let mut paths = serde_json::Map::new();
        let mut schemas = serde_json::Map::new();
        for i in 0..count {
            let (route, path, name, component) = resource(i);
            paths.insert(route, path);
            schemas.insert(name, component);
        }
        json!({"openapi": "3.1.0", "info": {"title": "bulk", "version": "1.0.0"},
               "paths": paths, "components": {"schemas": schemas}})
    };
    // Sized from the pretty-printed document itself: ten resources' worth
    // of bytes, at the depth they sit.
    let size = |count: usize| serde_json::to_vec_pretty(&document(count)).map_or(0, |s| s.len());
    let empty = size(0);
    let per_resource = (size(10).saturating_sub(empty) / 10).max(1);
    document(bytes.saturating_sub(empty) / per_resource)
}

/// A rule as the native side runs it.
pub type NativeCheck = fn(&cairn_rules::Change, &str) -> Result<cairn_rules::Report, String>;

/// A heavy validator's input: the change and the config, with the plugin
/// and the same rule compiled natively.
pub struct HeavyCase {
    pub name: &'static str,
    pub guest: &'static str,
    pub check: NativeCheck,
    pub workload: Workload,
    pub config: String,
}

/// destructive-change on a 1 MB workflow that loses one step (2 MB parsed:
/// before and after), schema on a 1 MB workflow that matches, and
/// api-contract on a 1 MB OpenAPI document that loses one path and narrows
/// one enum (2 MB parsed), and references on a 1 MB workflow whose
/// connector is deleted.
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
    let api_before = openapi(HEAVY_DOCUMENT_BYTES);
    let mut api_after = api_before.clone();
    if let Some(paths) = api_after["paths"].as_object_mut() {
        paths.remove("/items7");
    }
    if let Some(state) = api_after
        .pointer_mut("/components/schemas/Item3/properties/state/enum")
        .and_then(serde_json::Value::as_array_mut)
    {
        state.pop();
    }
    vec![
        HeavyCase {
            name: "destructive-change",
            guest: cairn_tests::guests::DESTRUCTIVE_CHANGE,
            check: cairn_rules::destructive::check,
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
            guest: cairn_tests::guests::SCHEMA,
            check: cairn_rules::schema::check,
            workload: Workload::new(Change::new(
                [Document::new(path, None, Some(pretty(&before)))],
                Vec::new(),
            )),
            config: schema_config.to_string(),
        },
        HeavyCase {
            name: "api-contract",
            guest: cairn_tests::guests::API_CONTRACT,
            check: cairn_rules::api_contract::check,
            workload: Workload::new(Change::new(
                [Document::new(
                    "api/bulk.openapi.json",
                    Some(pretty(&api_before)),
                    Some(pretty(&api_after)),
                )],
                Vec::new(),
            )),
            config: "{}".to_owned(),
        },
        HeavyCase {
            name: "references",
            guest: cairn_tests::guests::REFERENCES,
            check: cairn_rules::references::check,
            workload: Workload::new(Change::new(lineage(HEAVY_DOCUMENT_BYTES), Vec::new())),
            config: "{}".to_owned(),
        },
    ]
}

/// A 1 MB workflow (unchanged) whose steps name 50 connectors round robin,
/// and the 50 connectors, of which the change deletes `c7`: every step that
/// names it is a dangling reference (the first 200 listed), and the impact
/// list walks back from the deleted connector.
fn lineage(bytes: usize) -> Vec<Document> {
    let mut workflow = workflow(bytes);
    if let Some(steps) = workflow["steps"].as_array_mut() {
        for (i, step) in steps.iter_mut().enumerate() {
            step["connector"] = json!(format!("c{}", i % 50));
        }
    }
    let text = serde_json::to_vec_pretty(&workflow).unwrap_or_default();
    let mut documents = vec![Document::new(
        "workflows/bulk-sync.json",
        Some(text.clone()),
        Some(text),
    )];
    for i in 0..50 {
        let connector = format!("name = \"c{i}\"\ntable = \"crm/t{i}\"\n").into_bytes();
        let after = (i != 7).then(|| connector.clone());
        documents.push(Document::new(
            format!("connectors/c{i}.toml"),
            Some(connector),
            after,
        ));
    }
    documents
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
            // The largest document (references' change also holds the
            // small connectors).
            let len = case
                .workload
                .host
                .documents()
                .filter_map(|doc| doc.after.as_ref().map(Vec::len))
                .max()
                .unwrap_or(0);
            assert!(
                (900_000..=1_100_000).contains(&len),
                "{}: {len} bytes",
                case.name
            );
        }
    }
}
