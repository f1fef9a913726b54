//! `api-contract`: breaking changes between the before and after versions of
//! an OpenAPI 3.x document — removed paths, operations and 2xx responses, new
//! required parameters and request fields, removed or retyped response
//! fields, narrowed enums, changed authentication. Additions are reported as
//! info. Local `$ref`s (`#/components/...`) are followed.

use std::collections::{BTreeMap, BTreeSet};

use serde::Deserialize;
use serde_json::Value;

use crate::model::{Change, Document, Finding, Report, Severity, Status, parse_config};
use crate::parse::Parsed;
use crate::pointer;

pub const CONFIG_SCHEMA: &str = r#"{
  "type": "object",
  "properties": {
    "report-additions": {"type": "boolean", "default": true,
                         "description": "report non-breaking additions as info findings"}
  },
  "additionalProperties": false
}"#;

const METHODS: &[&str] = &[
    "get", "put", "post", "delete", "options", "head", "patch", "trace",
];

/// Depth of nested schemas followed (through `$ref`, `properties`, `items`):
/// deeper structures are cut off, and recursive schemas end.
const MAX_SCHEMA_DEPTH: usize = 16;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct Config {
    #[serde(default = "yes")]
    report_additions: bool,
}

fn yes() -> bool {
    true
}

pub fn check(change: &Change, config: &str) -> Result<Report, String> {
    let config: Config = parse_config(config)?;
    let mut findings = Vec::new();
    let mut compared = 0;
    for doc in &change.documents {
        match doc.status {
            Status::Deleted => {
                if let Some(Ok(before)) = doc.parse_before()
                    && is_openapi(&before.value)
                {
                    findings.push(
                        Finding::new(
                            "api/removed-spec",
                            Severity::Error,
                            format!("the API spec {} is deleted", doc.path),
                        )
                        .at(&doc.path),
                    );
                }
            }
            Status::Modified => {
                let (Some(Ok(before)), Some(Ok(after))) = (doc.parse_before(), doc.parse_after())
                else {
                    continue;
                };
                if !(is_openapi(&before.value) && is_openapi(&after.value)) {
                    continue;
                }
                compared += 1;
                let mut spec = SpecDiff {
                    doc,
                    before: &before,
                    after: &after,
                    additions: config.report_additions,
                    findings: Vec::new(),
                };
                spec.compare();
                findings.append(&mut spec.findings);
            }
            _ => {}
        }
    }
    let breaking = findings
        .iter()
        .filter(|f| f.severity == Severity::Error)
        .count();
    Ok(Report::from_findings(
        findings,
        format!("{compared} OpenAPI document(s) compared, {breaking} breaking change(s)"),
    ))
}

fn is_openapi(value: &Value) -> bool {
    value
        .get("openapi")
        .and_then(Value::as_str)
        .is_some_and(|v| v.starts_with("3."))
}

/// A path template with its parameter names blanked: `/orders/{id}` and
/// `/orders/{orderId}` are the same route.
fn route_key(path: &str) -> String {
    let mut key = String::with_capacity(path.len());
    let mut in_param = false;
    for c in path.chars() {
        match c {
            '{' => {
                in_param = true;
                key.push('{');
            }
            '}' => {
                in_param = false;
                key.push('}');
            }
            _ if in_param => {}
            c => key.push(c),
        }
    }
    key
}

/// A field of a request or response schema, flattened (`items[].sku`).
#[derive(Debug)]
struct Field {
    types: Option<BTreeSet<String>>,
    required: bool,
    enumeration: Option<Vec<Value>>,
    /// Pointer to the field's schema in the document.
    pointer: String,
}

struct SpecDiff<'a> {
    doc: &'a Document,
    before: &'a Parsed,
    after: &'a Parsed,
    additions: bool,
    findings: Vec<Finding>,
}

impl SpecDiff<'_> {
    fn before_finding(&mut self, rule: &str, severity: Severity, pointer: &str, message: String) {
        self.findings.push(
            Finding::new(format!("api/{rule}"), severity, message).at_value(
                &self.doc.path,
                pointer,
                Some(self.before),
            ),
        );
    }

    fn after_finding(&mut self, rule: &str, severity: Severity, pointer: &str, message: String) {
        if severity == Severity::Info && !self.additions {
            return;
        }
        self.findings.push(
            Finding::new(format!("api/{rule}"), severity, message).at_value(
                &self.doc.path,
                pointer,
                Some(self.after),
            ),
        );
    }

    fn compare(&mut self) {
        let (before, after) = (&self.before.value, &self.after.value);
        let empty = serde_json::Map::new();
        let before_paths = before
            .get("paths")
            .and_then(Value::as_object)
            .unwrap_or(&empty);
        let after_paths = after
            .get("paths")
            .and_then(Value::as_object)
            .unwrap_or(&empty);
        let after_routes: BTreeMap<String, &String> =
            after_paths.keys().map(|p| (route_key(p), p)).collect();
        let before_routes: BTreeSet<String> = before_paths.keys().map(|p| route_key(p)).collect();
        for (path, before_item) in before_paths {
            let bp = pointer::join("/paths", path);
            let Some(after_path) = after_routes.get(&route_key(path)) else {
                self.before_finding(
                    "removed-path",
                    Severity::Error,
                    &bp,
                    format!("path {path} is removed"),
                );
                continue;
            };
            let ap = pointer::join("/paths", after_path);
            let after_item = &after_paths[*after_path];
            for method in METHODS {
                let (Some(b_op), a_op) = (before_item.get(method), after_item.get(method)) else {
                    if after_item.get(method).is_some() {
                        self.after_finding(
                            "added-operation",
                            Severity::Info,
                            &pointer::join(&ap, method),
                            format!("operation {} {path} is added", method.to_uppercase()),
                        );
                    }
                    continue;
                };
                let Some(a_op) = a_op else {
                    self.before_finding(
                        "removed-operation",
                        Severity::Error,
                        &pointer::join(&bp, method),
                        format!("operation {} {path} is removed", method.to_uppercase()),
                    );
                    continue;
                };
                let operation = Operation {
                    label: format!("{} {path}", method.to_uppercase()),
                    bp: pointer::join(&bp, method),
                    ap: pointer::join(&ap, method),
                };
                self.parameters(&operation, before_item, b_op, after_item, a_op);
                self.request_body(&operation, b_op, a_op);
                self.responses(&operation, b_op, a_op);
                self.security(&operation, b_op, a_op);
            }
        }
        for path in after_paths.keys() {
            if !before_routes.contains(&route_key(path)) {
                self.after_finding(
                    "added-path",
                    Severity::Info,
                    &pointer::join("/paths", path),
                    format!("path {path} is added"),
                );
            }
        }
        self.security_schemes();
    }

    fn parameters(
        &mut self,
        op: &Operation,
        b_item: &Value,
        b_op: &Value,
        a_item: &Value,
        a_op: &Value,
    ) {
        let old = parameters(&self.before.value, b_item, b_op, &op.bp);
        let new = parameters(&self.after.value, a_item, a_op, &op.ap);
        for (key, (param, at)) in &new {
            let required = param
                .get("required")
                .and_then(Value::as_bool)
                .unwrap_or(false)
                || key.0 == "path";
            let (location, name) = key;
            match old.get(key) {
                None if required => self.after_finding(
                    "new-required-parameter",
                    Severity::Error,
                    at,
                    format!("{}: new required {location} parameter `{name}`", op.label),
                ),
                None => self.after_finding(
                    "added-parameter",
                    Severity::Info,
                    at,
                    format!("{}: new optional {location} parameter `{name}`", op.label),
                ),
                Some((old_param, _)) => {
                    let was_required = old_param
                        .get("required")
                        .and_then(Value::as_bool)
                        .unwrap_or(false)
                        || location == "path";
                    if required && !was_required {
                        self.after_finding(
                            "new-required-parameter",
                            Severity::Error,
                            at,
                            format!(
                                "{}: {location} parameter `{name}` becomes required",
                                op.label
                            ),
                        );
                    }
                    let (b_schema, a_schema) = (
                        old_param
                            .get("schema")
                            .map(|v| resolve(&self.before.value, v)),
                        param.get("schema").map(|v| resolve(&self.after.value, v)),
                    );
                    if let (Some(b_schema), Some(a_schema)) = (b_schema, a_schema) {
                        let schema_at = pointer::join(at, "schema");
                        if let (Some(bt), Some(at_types)) = (types(b_schema), types(a_schema))
                            && !bt.is_subset(&at_types)
                        {
                            self.after_finding("retyped-parameter", Severity::Error, &schema_at, format!("{}: {location} parameter `{name}` changes type from {bt:?} to {at_types:?}", op.label));
                        }
                        self.enum_narrowing(
                            &op.label,
                            &format!("{location} parameter `{name}`"),
                            b_schema.get("enum"),
                            a_schema.get("enum"),
                            &pointer::join(&schema_at, "enum"),
                        );
                    }
                }
            }
        }
    }

    fn enum_narrowing(
        &mut self,
        label: &str,
        what: &str,
        old: Option<&Value>,
        new: Option<&Value>,
        at: &str,
    ) {
        let (Some(Value::Array(old)), Some(Value::Array(new))) = (old, new) else {
            if old.is_none() && new.is_some() {
                self.after_finding(
                    "narrowed-enum",
                    Severity::Error,
                    at,
                    format!("{label}: {what} is restricted to an enum"),
                );
            }
            return;
        };
        let dropped: Vec<String> = old
            .iter()
            .filter(|v| !new.contains(v))
            .map(Value::to_string)
            .collect();
        if !dropped.is_empty() {
            self.after_finding(
                "narrowed-enum",
                Severity::Error,
                at,
                format!("{label}: {what} no longer accepts {}", dropped.join(", ")),
            );
        }
    }

    fn request_body(&mut self, op: &Operation, b_op: &Value, a_op: &Value) {
        let new_body = a_op.get("requestBody");
        let old_body = b_op.get("requestBody");
        let body_required = |body: Option<&Value>, doc: &Value| {
            body.map(|b| resolve(doc, b))
                .and_then(|b| b.get("required"))
                .and_then(Value::as_bool)
                .unwrap_or(false)
        };
        let at_body = pointer::join(&op.ap, "requestBody");
        if body_required(new_body, &self.after.value)
            && !body_required(old_body, &self.before.value)
        {
            self.after_finding(
                "new-required-request-body",
                Severity::Error,
                &at_body,
                format!("{}: the request body becomes required", op.label),
            );
        }
        let old_fields = body_fields(
            &self.before.value,
            old_body,
            &pointer::join(&op.bp, "requestBody"),
        );
        let new_fields = body_fields(&self.after.value, new_body, &at_body);
        for (name, field) in &new_fields {
            match old_fields.get(name) {
                None if field.required => self.after_finding(
                    "new-required-request-field",
                    Severity::Error,
                    &field.pointer,
                    format!("{}: new required request field `{name}`", op.label),
                ),
                None => self.after_finding(
                    "added-request-field",
                    Severity::Info,
                    &field.pointer,
                    format!("{}: new optional request field `{name}`", op.label),
                ),
                Some(old) => {
                    if field.required && !old.required {
                        self.after_finding(
                            "new-required-request-field",
                            Severity::Error,
                            &field.pointer,
                            format!("{}: request field `{name}` becomes required", op.label),
                        );
                    }
                    if let (Some(bt), Some(at)) = (&old.types, &field.types)
                        && !bt.is_subset(at)
                    {
                        self.after_finding(
                            "retyped-request-field",
                            Severity::Error,
                            &field.pointer,
                            format!(
                                "{}: request field `{name}` changes type from {bt:?} to {at:?}",
                                op.label
                            ),
                        );
                    }
                    let (old_enum, new_enum) = (
                        old.enumeration.clone().map(Value::Array),
                        field.enumeration.clone().map(Value::Array),
                    );
                    self.enum_narrowing(
                        &op.label,
                        &format!("request field `{name}`"),
                        old_enum.as_ref(),
                        new_enum.as_ref(),
                        &pointer::join(&field.pointer, "enum"),
                    );
                }
            }
        }
    }

    fn responses(&mut self, op: &Operation, b_op: &Value, a_op: &Value) {
        let empty = serde_json::Map::new();
        let old = b_op
            .get("responses")
            .and_then(Value::as_object)
            .unwrap_or(&empty);
        let new = a_op
            .get("responses")
            .and_then(Value::as_object)
            .unwrap_or(&empty);
        for (status, old_response) in old {
            let bp = pointer::join(&pointer::join(&op.bp, "responses"), status);
            let ap = pointer::join(&pointer::join(&op.ap, "responses"), status);
            let Some(new_response) = new.get(status) else {
                if status.starts_with('2') {
                    self.before_finding(
                        "removed-response",
                        Severity::Error,
                        &bp,
                        format!("{}: response {status} is removed", op.label),
                    );
                }
                continue;
            };
            let old_fields = body_fields(&self.before.value, Some(old_response), &bp);
            let new_fields = body_fields(&self.after.value, Some(new_response), &ap);
            for (name, field) in &old_fields {
                match new_fields.get(name) {
                    None => self.before_finding(
                        "removed-response-field",
                        Severity::Error,
                        &field.pointer,
                        format!("{}: response {status} field `{name}` is removed", op.label),
                    ),
                    Some(new_field) => {
                        if let (Some(bt), Some(at)) = (&field.types, &new_field.types)
                            && bt != at
                        {
                            self.after_finding("retyped-response-field", Severity::Error, &new_field.pointer, format!("{}: response {status} field `{name}` changes type from {bt:?} to {at:?}", op.label));
                        }
                    }
                }
            }
            for (name, field) in &new_fields {
                if !old_fields.contains_key(name) {
                    self.after_finding(
                        "added-response-field",
                        Severity::Info,
                        &field.pointer,
                        format!("{}: response {status} gains field `{name}`", op.label),
                    );
                }
            }
        }
    }

    fn security(&mut self, op: &Operation, b_op: &Value, a_op: &Value) {
        let old = security_of(&self.before.value, b_op);
        let new = security_of(&self.after.value, a_op);
        if old == new {
            return;
        }
        let at = if a_op.get("security").is_some() {
            pointer::join(&op.ap, "security")
        } else {
            "/security".to_owned()
        };
        let at = if self.after.get(&at).is_some() {
            at
        } else {
            op.ap.clone()
        };
        let (severity, message) = if new.is_empty() {
            (
                Severity::Warning,
                format!("{}: authentication is removed (was {old:?})", op.label),
            )
        } else {
            (
                Severity::Error,
                format!(
                    "{}: authentication changes from {old:?} to {new:?}",
                    op.label
                ),
            )
        };
        self.after_finding("changed-auth", severity, &at, message);
    }

    fn security_schemes(&mut self) {
        let schemes = |doc: &Value| {
            doc.pointer("/components/securitySchemes")
                .and_then(Value::as_object)
                .cloned()
                .unwrap_or_default()
        };
        let (old, new) = (schemes(&self.before.value), schemes(&self.after.value));
        for (name, old_scheme) in &old {
            let Some(new_scheme) = new.get(name) else {
                continue;
            };
            let shape = |s: &Value| {
                ["type", "scheme", "in", "name", "bearerFormat"].map(|k| s.get(k).cloned())
            };
            if shape(old_scheme) != shape(new_scheme) {
                let at = pointer::join("/components/securitySchemes", name);
                self.after_finding(
                    "changed-auth",
                    Severity::Error,
                    &at,
                    format!("security scheme `{name}` changes how clients authenticate"),
                );
            }
        }
    }
}

struct Operation {
    label: String,
    bp: String,
    ap: String,
}

/// Follows local `$ref`s (a bounded number of hops).
fn resolve<'v>(doc: &'v Value, mut value: &'v Value) -> &'v Value {
    for _ in 0..MAX_SCHEMA_DEPTH {
        let Some(target) = value
            .get("$ref")
            .and_then(Value::as_str)
            .and_then(|r| r.strip_prefix('#'))
        else {
            break;
        };
        match doc.pointer(target) {
            Some(next) => value = next,
            None => break,
        }
    }
    value
}

/// The pointer a local `$ref` chain ends at, or `at` itself.
fn resolved_pointer(doc: &Value, value: &Value, at: &str) -> String {
    let mut at = at.to_owned();
    let mut value = value;
    for _ in 0..MAX_SCHEMA_DEPTH {
        let Some(target) = value
            .get("$ref")
            .and_then(Value::as_str)
            .and_then(|r| r.strip_prefix('#'))
        else {
            break;
        };
        match doc.pointer(target) {
            Some(next) => {
                value = next;
                at = target.to_owned();
            }
            None => break,
        }
    }
    at
}

/// Operation and path-level parameters by (in, name), with their pointers.
fn parameters<'v>(
    doc: &'v Value,
    item: &'v Value,
    op: &'v Value,
    op_at: &str,
) -> BTreeMap<(String, String), (&'v Value, String)> {
    let mut out = BTreeMap::new();
    let item_at = op_at
        .rsplit_once('/')
        .map(|(p, _)| p.to_owned())
        .unwrap_or_default();
    for (owner, at) in [(item, item_at), (op, op_at.to_owned())] {
        let Some(list) = owner.get("parameters").and_then(Value::as_array) else {
            continue;
        };
        for (i, param) in list.iter().enumerate() {
            let at = pointer::join_index(&pointer::join(&at, "parameters"), i);
            let param = resolve(doc, param);
            let (Some(location), Some(name)) = (
                param.get("in").and_then(Value::as_str),
                param.get("name").and_then(Value::as_str),
            ) else {
                continue;
            };
            out.insert((location.to_owned(), name.to_owned()), (param, at));
        }
    }
    out
}

/// The flattened fields of a request body or response's JSON content.
fn body_fields(doc: &Value, body: Option<&Value>, at: &str) -> BTreeMap<String, Field> {
    let mut fields = BTreeMap::new();
    let Some(body) = body else { return fields };
    let body_at = resolved_pointer(doc, body, at);
    let body = resolve(doc, body);
    let Some(content) = body.get("content").and_then(Value::as_object) else {
        return fields;
    };
    let Some((media, media_object)) = content
        .iter()
        .find(|(media, _)| media.contains("json"))
        .or_else(|| content.iter().next())
    else {
        return fields;
    };
    let Some(schema) = media_object.get("schema") else {
        return fields;
    };
    let schema_at = pointer::join(
        &pointer::join(&pointer::join(&body_at, "content"), media),
        "schema",
    );
    flatten(doc, schema, &schema_at, "", &mut fields, 0);
    fields
}

fn flatten(
    doc: &Value,
    schema: &Value,
    at: &str,
    prefix: &str,
    out: &mut BTreeMap<String, Field>,
    depth: usize,
) {
    if depth > MAX_SCHEMA_DEPTH {
        return;
    }
    let at = resolved_pointer(doc, schema, at);
    let schema = resolve(doc, schema);
    if let Some(all_of) = schema.get("allOf").and_then(Value::as_array) {
        for (i, part) in all_of.iter().enumerate() {
            flatten(
                doc,
                part,
                &pointer::join_index(&pointer::join(&at, "allOf"), i),
                prefix,
                out,
                depth + 1,
            );
        }
    }
    if let Some(items) = schema.get("items") {
        flatten(
            doc,
            items,
            &pointer::join(&at, "items"),
            &format!("{prefix}[]"),
            out,
            depth + 1,
        );
    }
    let required: BTreeSet<&str> = schema
        .get("required")
        .and_then(Value::as_array)
        .map(|r| r.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    let Some(properties) = schema.get("properties").and_then(Value::as_object) else {
        return;
    };
    for (name, property) in properties {
        let property_at = pointer::join(&pointer::join(&at, "properties"), name);
        let resolved = resolve(doc, property);
        let path = if prefix.is_empty() {
            name.clone()
        } else {
            format!("{prefix}.{name}")
        };
        out.insert(
            path.clone(),
            Field {
                types: types(resolved),
                required: required.contains(name.as_str()),
                enumeration: resolved.get("enum").and_then(Value::as_array).cloned(),
                pointer: property_at.clone(),
            },
        );
        flatten(doc, property, &property_at, &path, out, depth + 1);
    }
}

fn types(schema: &Value) -> Option<BTreeSet<String>> {
    match schema.get("type")? {
        Value::String(t) => Some(BTreeSet::from([t.clone()])),
        Value::Array(items) => Some(
            items
                .iter()
                .filter_map(Value::as_str)
                .map(String::from)
                .collect(),
        ),
        _ => None,
    }
}

/// The security requirements of an operation (its own, else the global
/// ones) as sorted `scheme[scope,...]` alternatives.
fn security_of(doc: &Value, op: &Value) -> BTreeSet<String> {
    let requirements = op.get("security").or_else(|| doc.get("security"));
    let Some(Value::Array(list)) = requirements else {
        return BTreeSet::new();
    };
    list.iter()
        .filter_map(Value::as_object)
        .map(|requirement| {
            requirement
                .iter()
                .map(|(scheme, scopes)| {
                    let mut scopes: Vec<String> = scopes
                        .as_array()
                        .map(|s| {
                            s.iter()
                                .filter_map(Value::as_str)
                                .map(String::from)
                                .collect()
                        })
                        .unwrap_or_default();
                    scopes.sort();
                    format!("{scheme}[{}]", scopes.join(","))
                })
                .collect::<Vec<_>>()
                .join("+")
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn spec(paths: Value) -> String {
        json!({"openapi": "3.1.0", "info": {"title": "t", "version": "1"}, "paths": paths})
            .to_string()
    }

    fn run(before: Value, after: Value) -> Vec<String> {
        let change = Change {
            documents: vec![Document::new(
                "api.json",
                "application/json",
                Some(spec(before).into()),
                Some(spec(after).into()),
            )],
            metrics: Default::default(),
        };
        check(&change, "{}")
            .unwrap()
            .findings
            .into_iter()
            .map(|f| f.rule)
            .collect()
    }

    #[test]
    fn renamed_path_parameter_is_the_same_route() {
        let op = json!({"get": {"responses": {"200": {"description": "ok"}}}});
        assert!(run(json!({"/o/{id}": op}), json!({"/o/{orderId}": op})).is_empty());
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

    #[test]
    fn response_fields_are_followed_through_refs() {
        let resp = |props: Value| json!({"/o": {"get": {"responses": {"200": {"description": "ok", "content": {"application/json": {"schema": {"type": "object", "properties": props}}}}}}}});
        let rules = run(
            resp(json!({"id": {"type": "string"}, "total": {"type": "number"}})),
            resp(json!({"id": {"type": "integer"}})),
        );
        assert_eq!(
            rules,
            ["api/retyped-response-field", "api/removed-response-field"]
        );
    }
}
