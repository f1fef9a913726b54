//! Unit tests of `api-contract`: each rule on a minimal spec pair.

use std::collections::BTreeSet;

use super::*;
use serde_json::json;

fn spec(paths: Value) -> String {
    json!({"openapi": "3.1.0", "info": {"title": "t", "version": "1"}, "paths": paths}).to_string()
}

fn run_with(before: Value, after: Value, config: &str) -> Vec<String> {
    let change = Change {
        documents: vec![Document::new(
            "api.json",
            "application/json",
            Some(spec(before).into()),
            Some(spec(after).into()),
        )],
        metrics: Default::default(),
    };
    check(&change, config)
        .expect("check runs")
        .findings
        .into_iter()
        .map(|f| f.rule)
        .collect()
}

fn run(before: Value, after: Value) -> Vec<String> {
    run_with(before, after, "{}")
}

#[test]
fn renamed_path_parameter_is_the_same_route() {
    let op = |name: &str| json!({"get": {"parameters": [{"in": "path", "name": name, "required": true, "schema": {"type": "string"}}], "responses": {"200": {"description": "ok"}}}});
    assert!(
        run(
            json!({"/o/{id}": op("id")}),
            json!({"/o/{orderId}": op("orderId")})
        )
        .is_empty()
    );
}

#[test]
fn removed_operation_and_new_required_query_parameter_are_breaking() {
    let before = json!({"/o": {"get": {"responses": {}}, "delete": {"responses": {}}}});
    let after = json!({"/o": {"get": {"parameters": [{"in": "query", "name": "tenant", "required": true}], "responses": {}}}});
    let rules = run(before, after);
    assert!(
        rules.contains(&"api/removed-operation".to_owned()),
        "{rules:?}"
    );
    assert!(
        rules.contains(&"api/new-required-parameter".to_owned()),
        "{rules:?}"
    );
}

fn response(schema: Value) -> Value {
    json!({"/o": {"get": {"responses": {"200": {"description": "ok", "content": {"application/json": {"schema": schema}}}}}}})
}

fn request(schema: Value) -> Value {
    json!({"/o": {"post": {"requestBody": {"content": {"application/json": {"schema": schema}}}, "responses": {"200": {"description": "ok"}}}}})
}

#[test]
fn retyped_and_removed_response_fields_are_reported() {
    let rules = run(
        response(
            json!({"type": "object", "required": ["id", "total"], "properties": {"id": {"type": "string"}, "total": {"type": "number"}, "note": {"type": "string"}}}),
        ),
        response(
            json!({"type": "object", "required": ["id"], "properties": {"id": {"type": "integer"}}}),
        ),
    );
    assert_eq!(
        rules,
        [
            "api/removed-response-field",
            "api/removed-response-field",
            "api/retyped-response-field"
        ]
    );
}

#[test]
fn recursive_schemas_end() {
    let doc = |extra: Value| {
        let mut node = json!({"type": "object", "properties": {"children": {"type": "array", "items": {"$ref": "#/components/schemas/Node"}}, "name": {"type": "string"}}});
        if let (Some(node), Some(extra)) = (node.as_object_mut(), extra.as_object()) {
            node.extend(extra.clone());
        }
        json!({"openapi": "3.0.3", "info": {"title": "t", "version": "1"},
            "paths": {"/n": {"post": {"requestBody": {"content": {"application/json": {"schema": {"$ref": "#/components/schemas/Node"}}}}, "responses": {"200": {"description": "ok"}}}}},
            "components": {"schemas": {"Node": node}}})
    };
    let change = Change {
        documents: vec![Document::new(
            "api.json",
            "application/json",
            Some(doc(json!({})).to_string().into()),
            Some(doc(json!({"required": ["name"]})).to_string().into()),
        )],
        metrics: Default::default(),
    };
    let report = check(&change, "{}").expect("runs");
    let rules: Vec<&str> = report.findings.iter().map(|f| f.rule.as_str()).collect();
    assert_eq!(rules, ["api/new-required-request-field"]);
}

#[test]
fn response_wrapped_in_one_of_keeps_its_properties() {
    let item =
        json!({"type": "object", "required": ["id"], "properties": {"id": {"type": "string"}}});
    let rules = run(
        response(item.clone()),
        response(
            json!({"oneOf": [item, {"type": "object", "properties": {"code": {"type": "integer"}}}]}),
        ),
    );
    assert_eq!(rules, ["api/response-composition-widened"]);
}

#[test]
fn added_media_type_is_info_only() {
    let before = json!({"/o": {"post": {"requestBody": {"content": {"application/json": {"schema": {"type": "object"}}}}, "responses": {}}}});
    let after = json!({"/o": {"post": {"requestBody": {"content": {"application/json": {"schema": {"type": "object"}}, "application/xml": {"schema": {"type": "object"}}}}, "responses": {}}}});
    assert_eq!(run(before, after), ["api/added-media-type"]);
}

#[test]
fn request_narrowing_under_if_then_all_of_and_additional_properties() {
    let rules = run(
        request(
            json!({"type": "object", "allOf": [{"properties": {"a": {"type": "string"}}}],
            "additionalProperties": {"type": "object", "properties": {"x": {"type": "string", "maxLength": 10}}},
            "if": {"properties": {"a": {"const": "x"}}}, "then": {"properties": {"b": {"type": "string"}}}}),
        ),
        request(
            json!({"type": "object", "allOf": [{"required": ["a"], "properties": {"a": {"type": "string", "pattern": "^[a-z]+$"}}}],
            "additionalProperties": {"type": "object", "properties": {"x": {"type": "string", "maxLength": 5}}},
            "if": {"properties": {"a": {"const": "x"}}}, "then": {"required": ["b"], "properties": {"b": {"type": "string"}}}}),
        ),
    );
    for rule in [
        "api/new-required-request-field",
        "api/new-pattern",
        "api/narrowed-constraint",
    ] {
        assert!(rules.contains(&rule.to_owned()), "{rule} in {rules:?}");
    }
    assert_eq!(
        rules
            .iter()
            .filter(|r| *r == "api/new-required-request-field")
            .count(),
        2,
        "{rules:?}"
    );
}

#[test]
fn rules_can_be_silenced_or_releveled_and_unknown_ids_are_refused() {
    let before = request(json!({"type": "string"}));
    let after = request(json!({"type": "string", "pattern": "^a"}));
    assert_eq!(run(before.clone(), after.clone()), ["api/new-pattern"]);
    assert!(
        run_with(
            before.clone(),
            after.clone(),
            r#"{"rules": {"api/new-pattern": "off"}}"#
        )
        .is_empty()
    );
    let change = Change {
        documents: vec![Document::new(
            "api.json",
            "application/json",
            Some(spec(before).into()),
            Some(spec(after).into()),
        )],
        metrics: Default::default(),
    };
    let report = check(&change, r#"{"rules": {"api/new-pattern": "warning"}}"#).expect("runs");
    assert_eq!(report.findings[0].severity, Severity::Warning);
    assert!(check(&change, r#"{"rules": {"api/nope": "off"}}"#).is_err());
}

#[test]
fn the_config_schema_lists_every_rule_and_nothing_else() {
    let schema: Value = serde_json::from_str(CONFIG_SCHEMA).expect("schema is JSON");
    let listed: BTreeSet<&str> = schema["properties"]["rules"]["properties"]
        .as_object()
        .expect("rules are listed")
        .keys()
        .map(String::as_str)
        .collect();
    let known: BTreeSet<&str> = RULES.iter().map(|(id, _, _)| *id).collect();
    assert_eq!(listed, known);
}

#[test]
fn the_readme_documents_every_rule() {
    let readme = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../api-contract/README.md"),
    )
    .expect("plugins/api-contract/README.md is readable");
    for (id, _, _) in RULES {
        assert!(
            readme.contains(&format!("| `{id}` |")),
            "{id} has no row in the README"
        );
    }
}

#[test]
fn a_changed_shared_schema_is_reported_for_each_operation_and_an_unchanged_one_for_none() {
    let doc = |status_enum: Value| {
        let op = |schema: &str| json!({"get": {"responses": {"200": {"description": "ok", "content": {"application/json": {"schema": {"$ref": format!("#/components/schemas/{schema}")}}}}}}});
        json!({"openapi": "3.0.3", "info": {"title": "t", "version": "1"},
            "paths": {"/a": op("Kept"), "/b": op("Kept"), "/c": op("Changed"), "/d": op("Changed")},
            "components": {"schemas": {
                "Kept": {"type": "object", "properties": {"self": {"$ref": "#/components/schemas/Kept"}, "id": {"type": "string"}}},
                "Changed": {"type": "object", "properties": {"status": {"type": "string", "enum": status_enum}}}}}})
    };
    let change = Change {
        documents: vec![Document::new(
            "api.json",
            "application/json",
            Some(doc(json!(["open"])).to_string().into()),
            Some(doc(json!(["open", "paid"])).to_string().into()),
        )],
        metrics: Default::default(),
    };
    let report = check(&change, "{}").expect("runs");
    let messages: Vec<&str> = report.findings.iter().map(|f| f.message.as_str()).collect();
    assert_eq!(messages.len(), 2, "{messages:?}");
    assert!(
        messages
            .iter()
            .all(|m| m.contains("may now return \"paid\"")),
        "{messages:?}"
    );
    assert!(
        messages[0].starts_with("GET /c") && messages[1].starts_with("GET /d"),
        "{messages:?}"
    );
}
