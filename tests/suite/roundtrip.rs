//! What a plugin sees round-trips exactly: its config, the checkpoint, every
//! document's path, media type, status and bytes, and the metrics.

use std::sync::Arc;

use cairn_host::{Change, Checkpoint, Document, Limits, Metric, Outcome};
use serde_json::{Value, json};

use crate::util::{guests, load, verdict};

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[tokio::test]
async fn config_checkpoint_change_and_metrics_round_trip_exactly() {
    let binary: Vec<u8> = (0..=255u8).collect();
    let change = Arc::new(Change::new(
        [
            Document::new(
                "a/modified.json",
                Some(b"{\"v\": 1}".to_vec()),
                Some("{\"v\": \"ünïcødé\"}".as_bytes().to_vec()),
            ),
            Document::new("b/added.yaml", None, Some(b"key: value\n".to_vec())),
            Document::new("c/deleted.toml", Some(b"x = 1".to_vec()), None),
            Document::new("d/same.txt", Some(b"same".to_vec()), Some(b"same".to_vec())),
            Document::new("e/blob.bin", Some(Vec::new()), Some(binary.clone())),
        ],
        vec![
            Metric {
                name: "error-rate".into(),
                value: 0.0125,
            },
            Metric {
                name: "latency-p99-ms".into(),
                value: 812.5,
            },
        ],
    ));
    let at = Checkpoint {
        name: "canary-5".into(),
        index: 2,
        environment: "production".into(),
        rollout_percent: 5,
        change_id: "CHG-42 ✓".into(),
    };
    let config = r#"{"mode": "echo", "nested": {"list": [1, 2.5, "três", null]}, "flag": true}"#;

    let report = load(guests::FIXTURE)
        .validate(Arc::clone(&change), &at, config, &Limits::default())
        .await;
    let verdict = verdict(&report);
    assert_eq!(verdict.outcome, Outcome::Warn);
    assert_eq!(
        verdict.summary.as_deref(),
        Some(config),
        "config arrives byte for byte"
    );

    let messages = |rule: &str| -> Vec<Value> {
        verdict
            .findings
            .iter()
            .filter(|f| f.rule == rule)
            .map(|f| serde_json::from_str(&f.message).expect("echo emits JSON"))
            .collect()
    };
    assert_eq!(
        messages("echo/checkpoint"),
        vec![
            json!({"name": "canary-5", "index": 2, "environment": "production", "rollout-percent": 5, "change-id": "CHG-42 ✓"})
        ]
    );
    let expected_documents: Vec<Value> = change
        .documents()
        .map(|doc| {
            json!({
                "path": doc.path,
                "media-type": doc.media_type.as_str(),
                "status": serde_json::to_value(doc.status()).unwrap(),
                "before": doc.before.as_deref().map(hex),
                "after": doc.after.as_deref().map(hex),
            })
        })
        .collect();
    assert_eq!(messages("echo/document"), expected_documents);
    assert_eq!(expected_documents[4]["after"], json!(hex(&binary)));
    assert_eq!(
        messages("echo/metric"),
        vec![
            json!({"name": "error-rate", "value": 0.0125}),
            json!({"name": "latency-p99-ms", "value": 812.5})
        ]
    );
    let statuses: Vec<_> = expected_documents
        .iter()
        .map(|d| d["status"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(
        statuses,
        ["modified", "added", "deleted", "unchanged", "modified"]
    );
}
