//! The document level of `api-contract`: paths and webhooks, operations,
//! parameters, request bodies, responses and their headers, media types and
//! security. Schemas are handed to [`super::schema`].

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{Map, Value};

use super::schema::{Direction, Root, SchemaDiff, resolve};
use super::{Findings, Side};
use crate::pointer;

const METHODS: &[&str] = &[
    "get", "put", "post", "delete", "options", "head", "patch", "trace",
];

/// Compares one document pair: paths, webhooks, security schemes.
pub(super) fn compare<'a>(out: &mut Findings<'a>) {
    let (before, after): (&'a Value, &'a Value) = (&out.before.value, &out.after.value);
    let empty = Map::new();
    let object =
        |doc: &'a Value, key: &str| doc.get(key).and_then(Value::as_object).unwrap_or(&empty);
    items(
        out,
        object(before, "paths"),
        object(after, "paths"),
        Items::Paths,
    );
    items(
        out,
        object(before, "webhooks"),
        object(after, "webhooks"),
        Items::Webhooks,
    );
    security_schemes(out);
}

/// Whether every top-level member other than `paths` and `webhooks` is
/// equal on both sides (see [`Findings::refs_stable`]).
pub(super) fn refs_stable(before: &Value, after: &Value) -> bool {
    let (Some(before), Some(after)) = (before.as_object(), after.as_object()) else {
        return false;
    };
    let outside = |key: &String| key != "paths" && key != "webhooks";
    before.keys().filter(|k| outside(k)).count() == after.keys().filter(|k| outside(k)).count()
        && before
            .iter()
            .filter(|(key, _)| outside(key))
            .all(|(key, value)| after.get(key) == Some(value))
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Items {
    Paths,
    Webhooks,
}

impl Items {
    fn root(self) -> &'static str {
        match self {
            Items::Paths => "/paths",
            Items::Webhooks => "/webhooks",
        }
    }

    /// A path template with its parameter names blanked: `/orders/{id}` and
    /// `/orders/{orderId}` are the same route. Webhook names match as is.
    fn key(self, name: &str) -> String {
        if self == Items::Webhooks {
            return name.to_owned();
        }
        let mut key = String::with_capacity(name.len());
        let mut in_param = false;
        for c in name.chars() {
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

    fn label(self, name: &str, method: &str) -> String {
        match self {
            Items::Paths => format!("{} {name}", method.to_uppercase()),
            Items::Webhooks => format!("webhook {name} {}", method.to_uppercase()),
        }
    }
}

fn items(out: &mut Findings, before: &Map<String, Value>, after: &Map<String, Value>, kind: Items) {
    let after_by_key: BTreeMap<String, &String> = after.keys().map(|p| (kind.key(p), p)).collect();
    let before_keys: BTreeSet<String> = before.keys().map(|p| kind.key(p)).collect();
    for (name, before_item) in before {
        let bp = pointer::join(kind.root(), name);
        let Some(after_name) = after_by_key.get(&kind.key(name)) else {
            let (rule, what) = match kind {
                Items::Paths => ("api/removed-path", "path"),
                Items::Webhooks => ("api/removed-webhook", "webhook"),
            };
            let item = resolve(&out.before.value, before_item, &bp).0;
            let operations: Vec<&Value> = METHODS.iter().filter_map(|m| item.get(m)).collect();
            if kind == Items::Paths && !operations.is_empty() {
                let sunsets: Option<Vec<Sunset>> =
                    operations.iter().map(|op| sunset(op, out)).collect();
                if let Some(sunsets) = sunsets {
                    report_deprecated_removal(out, &bp, &format!("path {name}"), &sunsets);
                    continue;
                }
            }
            out.report(rule, Side::Before, &bp, format!("{what} {name} is removed"));
            continue;
        };
        let ap = pointer::join(kind.root(), after_name);
        let Some(after_item) = after.get(*after_name) else {
            continue;
        };
        // An item the same on both sides (refs followed) has nothing to
        // report, unless the global security its operations inherit changed.
        let global_security_kept =
            out.before.value.get("security") == out.after.value.get("security");
        if global_security_kept
            && ((out.refs_stable && before_item == after_item)
                || super::schema::same(out, (before_item, &bp), (after_item, &ap)))
        {
            continue;
        }
        let before_item = resolve(&out.before.value, before_item, &bp).0;
        let after_item = resolve(&out.after.value, after_item, &ap).0;
        for method in METHODS {
            let b_op = before_item.get(method);
            let a_op = after_item.get(method);
            let label = kind.label(name, method);
            match (b_op, a_op) {
                (None, None) => {}
                (None, Some(_)) => {
                    let rule = match kind {
                        Items::Paths => "api/added-operation",
                        Items::Webhooks => "api/added-webhook",
                    };
                    out.report(
                        rule,
                        Side::After,
                        &pointer::join(&ap, method),
                        format!("operation {label} is added"),
                    );
                }
                (Some(b_op), None) => {
                    let at = pointer::join(&bp, method);
                    if kind == Items::Paths
                        && let Some(sunset) = sunset(b_op, out)
                    {
                        report_deprecated_removal(
                            out,
                            &at,
                            &format!("operation {label}"),
                            &[sunset],
                        );
                        continue;
                    }
                    let rule = match kind {
                        Items::Paths => "api/removed-operation",
                        Items::Webhooks => "api/removed-webhook",
                    };
                    out.report(
                        rule,
                        Side::Before,
                        &at,
                        format!("operation {label} is removed"),
                    );
                }
                (Some(b_op), Some(a_op)) => {
                    let op = Operation {
                        label,
                        bp: pointer::join(&bp, method),
                        ap: pointer::join(&ap, method),
                        before_route: name.clone(),
                        after_route: (*after_name).clone(),
                    };
                    operation(out, &op, before_item, b_op, after_item, a_op);
                }
            }
        }
    }
    for name in after.keys() {
        if !before_keys.contains(&kind.key(name)) {
            let (rule, what) = match kind {
                Items::Paths => ("api/added-path", "path"),
                Items::Webhooks => ("api/added-webhook", "webhook"),
            };
            out.report(
                rule,
                Side::After,
                &pointer::join(kind.root(), name),
                format!("{what} {name} is added"),
            );
        }
    }
}

/// Where a deprecated operation stands with its `x-sunset` date.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Sunset {
    /// Deprecated without a sunset date, or the date is past `today`.
    Passed,
    /// The sunset date is after `today`.
    Ahead(String),
    /// A sunset date, and no `today` to compare it with.
    Unknown(String),
}

/// How a deprecated operation stands; `None` when it is not deprecated.
fn sunset(op: &Value, out: &Findings) -> Option<Sunset> {
    if op.get("deprecated").and_then(Value::as_bool) != Some(true) {
        return None;
    }
    let Some(date) = op.get("x-sunset").and_then(Value::as_str) else {
        return Some(Sunset::Passed);
    };
    // The date part of a date or RFC 3339 date-time.
    let day = date.get(..10).unwrap_or(date).to_owned();
    Some(match &out.levels.today {
        Some(today) if day.as_str() <= today.as_str() => Sunset::Passed,
        Some(_) => Sunset::Ahead(day),
        None => Sunset::Unknown(day),
    })
}

/// A deprecated path or operation is removed: fine after its sunset, an
/// error before it, a warning when the date cannot be compared.
fn report_deprecated_removal(out: &mut Findings, at: &str, what: &str, sunsets: &[Sunset]) {
    if let Some(Sunset::Ahead(date)) = sunsets.iter().find(|s| matches!(s, Sunset::Ahead(_))) {
        out.report(
            "api/removed-before-sunset",
            Side::Before,
            at,
            format!("{what} is removed before its sunset date {date}"),
        );
    } else if let Some(Sunset::Unknown(date)) =
        sunsets.iter().find(|s| matches!(s, Sunset::Unknown(_)))
    {
        out.report_at(
            "api/removed-before-sunset",
            crate::model::Severity::Warning,
            Side::Before,
            at,
            format!(
                "{what} is removed; its sunset date {date} cannot be checked (plugins have no clock: set `today` in the config)"
            ),
        );
    } else {
        out.report(
            "api/removed-deprecated",
            Side::Before,
            at,
            format!("{what} is removed after its deprecation"),
        );
    }
}

/// One operation present on both sides.
struct Operation {
    label: String,
    bp: String,
    ap: String,
    before_route: String,
    after_route: String,
}

fn operation(
    out: &mut Findings,
    op: &Operation,
    b_item: &Value,
    b_op: &Value,
    a_item: &Value,
    a_op: &Value,
) {
    parameters(out, op, b_item, b_op, a_item, a_op);
    request_body(out, op, b_op, a_op);
    responses(out, op, b_op, a_op);
    security(out, op, b_op, a_op);
}

/// The position of `{name}` among a path template's parameters.
fn path_slot(route: &str, name: &str) -> Option<usize> {
    route
        .split('{')
        .skip(1)
        .filter_map(|part| part.split_once('}').map(|(param, _)| param))
        .position(|param| param == name)
}

/// A parameter's identity: (location, name), path parameters by their slot
/// in the template, so a renamed `{id}` stays the same parameter.
fn parameter_key(route: &str, location: &str, name: &str) -> (String, String) {
    if location == "path"
        && let Some(slot) = path_slot(route, name)
    {
        return ("path".to_owned(), format!("#{slot}"));
    }
    (location.to_owned(), name.to_owned())
}

struct Parameter<'v> {
    location: String,
    name: String,
    value: &'v Value,
    at: String,
}

impl Parameter<'_> {
    fn required(&self) -> bool {
        self.location == "path"
            || self
                .value
                .get("required")
                .and_then(Value::as_bool)
                .unwrap_or(false)
    }

    fn describe(&self) -> String {
        format!("{} parameter `{}`", self.location, self.name)
    }

    /// The parameter's schema: `schema`, or that of its single `content` entry.
    fn schema(&self) -> Option<(&Value, String)> {
        if let Some(schema) = self.value.get("schema") {
            return Some((schema, pointer::join(&self.at, "schema")));
        }
        let (media, object) = self.value.get("content")?.as_object()?.iter().next()?;
        let schema = object.get("schema")?;
        let at = pointer::join(
            &pointer::join(&pointer::join(&self.at, "content"), media),
            "schema",
        );
        Some((schema, at))
    }
}

/// Operation and path-level parameters by identity (operation ones win).
fn parameter_map<'v>(
    doc: &'v Value,
    route: &str,
    item: &'v Value,
    op: &'v Value,
    op_at: &str,
) -> BTreeMap<(String, String), Parameter<'v>> {
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
            let (param, at) = resolve(doc, param, &at);
            let (Some(location), Some(name)) = (
                param.get("in").and_then(Value::as_str),
                param.get("name").and_then(Value::as_str),
            ) else {
                continue;
            };
            out.insert(
                parameter_key(route, location, name),
                Parameter {
                    location: location.to_owned(),
                    name: name.to_owned(),
                    value: param,
                    at,
                },
            );
        }
    }
    out
}

fn parameters(
    out: &mut Findings,
    op: &Operation,
    b_item: &Value,
    b_op: &Value,
    a_item: &Value,
    a_op: &Value,
) {
    let (before_doc, after_doc) = (&out.before.value, &out.after.value);
    let old = parameter_map(before_doc, &op.before_route, b_item, b_op, &op.bp);
    let new = parameter_map(after_doc, &op.after_route, a_item, a_op, &op.ap);
    for (key, param) in &new {
        match old.get(key) {
            None if param.required() => out.report(
                "api/new-required-parameter",
                Side::After,
                &param.at,
                format!("{}: new required {}", op.label, param.describe()),
            ),
            None => out.report(
                "api/added-parameter",
                Side::After,
                &param.at,
                format!("{}: new optional {}", op.label, param.describe()),
            ),
            Some(old_param) => {
                if param.required() && !old_param.required() {
                    out.report(
                        "api/new-required-parameter",
                        Side::After,
                        &param.at,
                        format!("{}: {} becomes required", op.label, param.describe()),
                    );
                }
                if let (Some((b_schema, b_at)), Some((a_schema, a_at))) =
                    (old_param.schema(), param.schema())
                {
                    let mut diff = SchemaDiff::new(
                        out,
                        Direction::Request,
                        Root::Parameter,
                        &op.label,
                        &param.describe(),
                    );
                    diff.compare(b_schema, &b_at, a_schema, &a_at);
                }
            }
        }
    }
    for (key, param) in &old {
        if !new.contains_key(key) {
            out.report(
                "api/removed-parameter",
                Side::Before,
                &param.at,
                format!("{}: {} is removed", op.label, param.describe()),
            );
        }
    }
}

fn content(body: &Value) -> Option<&Map<String, Value>> {
    body.get("content").and_then(Value::as_object)
}

fn request_body(out: &mut Findings, op: &Operation, b_op: &Value, a_op: &Value) {
    let (before_doc, after_doc) = (&out.before.value, &out.after.value);
    let b_at = pointer::join(&op.bp, "requestBody");
    let a_at = pointer::join(&op.ap, "requestBody");
    let old = b_op
        .get("requestBody")
        .map(|b| resolve(before_doc, b, &b_at));
    let new = a_op
        .get("requestBody")
        .map(|b| resolve(after_doc, b, &a_at));
    let required = |body: &Value| {
        body.get("required")
            .and_then(Value::as_bool)
            .unwrap_or(false)
    };
    match (old, new) {
        (None, None) => {}
        (None, Some((new, at))) => {
            if required(new) {
                out.report(
                    "api/new-required-request-body",
                    Side::After,
                    &at,
                    format!("{}: a required request body is added", op.label),
                );
            }
        }
        (Some((_, at)), None) => out.report(
            "api/removed-request-body",
            Side::Before,
            &at,
            format!("{}: the request body is removed", op.label),
        ),
        (Some((old, old_at)), Some((new, new_at))) => {
            if required(new) && !required(old) {
                out.report(
                    "api/new-required-request-body",
                    Side::After,
                    &new_at,
                    format!("{}: the request body becomes required", op.label),
                );
            }
            media_types(
                out,
                &op.label,
                "request body",
                Direction::Request,
                (old, &old_at),
                (new, &new_at),
            );
        }
    }
}

/// Compares the `content` of a request body or response: media types gone
/// or added, and the schema of each media type on both sides.
fn media_types(
    out: &mut Findings,
    label: &str,
    what: &str,
    direction: Direction,
    (old, old_at): (&Value, &str),
    (new, new_at): (&Value, &str),
) {
    let empty = Map::new();
    let old_content = content(old).unwrap_or(&empty);
    let new_content = content(new).unwrap_or(&empty);
    for (media, old_media) in old_content {
        let bp = pointer::join(&pointer::join(old_at, "content"), media);
        let Some(new_media) = new_content.get(media) else {
            out.report(
                "api/removed-media-type",
                Side::Before,
                &bp,
                format!("{label}: {what} media type {media} is removed"),
            );
            continue;
        };
        let ap = pointer::join(&pointer::join(new_at, "content"), media);
        if let (Some(b_schema), Some(a_schema)) = (old_media.get("schema"), new_media.get("schema"))
        {
            let what = if old_content.len() > 1 {
                format!("{what} ({media})")
            } else {
                what.to_owned()
            };
            let mut diff = SchemaDiff::new(out, direction, Root::Body, label, &what);
            diff.compare(
                b_schema,
                &pointer::join(&bp, "schema"),
                a_schema,
                &pointer::join(&ap, "schema"),
            );
        }
    }
    for media in new_content.keys() {
        if !old_content.contains_key(media) {
            out.report(
                "api/added-media-type",
                Side::After,
                &pointer::join(&pointer::join(new_at, "content"), media),
                format!("{label}: {what} media type {media} is added"),
            );
        }
    }
}

fn responses(out: &mut Findings, op: &Operation, b_op: &Value, a_op: &Value) {
    let empty = Map::new();
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
        let Some(new_response) = new.get(status) else {
            if status.starts_with('2') {
                out.report(
                    "api/removed-response",
                    Side::Before,
                    &bp,
                    format!("{}: response {status} is removed", op.label),
                );
            }
            continue;
        };
        let ap = pointer::join(&pointer::join(&op.ap, "responses"), status);
        let (old_response, bp) = resolve(&out.before.value, old_response, &bp);
        let (new_response, ap) = resolve(&out.after.value, new_response, &ap);
        headers(out, op, status, (old_response, &bp), (new_response, &ap));
        media_types(
            out,
            &op.label,
            &format!("response {status}"),
            Direction::Response,
            (old_response, &bp),
            (new_response, &ap),
        );
    }
    for status in new.keys() {
        if !old.contains_key(status) {
            out.report(
                "api/added-response",
                Side::After,
                &pointer::join(&pointer::join(&op.ap, "responses"), status),
                format!("{}: response {status} is added", op.label),
            );
        }
    }
}

fn headers(
    out: &mut Findings,
    op: &Operation,
    status: &str,
    (old, old_at): (&Value, &str),
    (new, new_at): (&Value, &str),
) {
    let empty = Map::new();
    let old_headers = old
        .get("headers")
        .and_then(Value::as_object)
        .unwrap_or(&empty);
    let new_headers = new
        .get("headers")
        .and_then(Value::as_object)
        .unwrap_or(&empty);
    let required = |h: &Value| h.get("required").and_then(Value::as_bool).unwrap_or(false);
    // Header names are case-insensitive.
    let new_by_name: BTreeMap<String, (&String, &Value)> = new_headers
        .iter()
        .map(|(name, header)| (name.to_ascii_lowercase(), (name, header)))
        .collect();
    for (name, old_header) in old_headers {
        let bp = pointer::join(&pointer::join(old_at, "headers"), name);
        let (old_header, bp) = resolve(&out.before.value, old_header, &bp);
        let Some((new_name, new_header)) = new_by_name.get(&name.to_ascii_lowercase()) else {
            let rule = if required(old_header) {
                "api/removed-response-header"
            } else {
                "api/removed-optional-response-header"
            };
            out.report(
                rule,
                Side::Before,
                &bp,
                format!("{}: response {status} header `{name}` is removed", op.label),
            );
            continue;
        };
        let ap = pointer::join(&pointer::join(new_at, "headers"), new_name);
        let (new_header, ap) = resolve(&out.after.value, new_header, &ap);
        if required(old_header) && !required(new_header) {
            out.report(
                "api/response-header-became-optional",
                Side::After,
                &ap,
                format!(
                    "{}: response {status} header `{name}` becomes optional",
                    op.label
                ),
            );
        }
        if let (Some(b_schema), Some(a_schema)) =
            (old_header.get("schema"), new_header.get("schema"))
        {
            let what = format!("response {status} header `{name}`");
            let mut diff =
                SchemaDiff::new(out, Direction::Response, Root::Header, &op.label, &what);
            diff.compare(
                b_schema,
                &pointer::join(&bp, "schema"),
                a_schema,
                &pointer::join(&ap, "schema"),
            );
        }
    }
}

/// One way to authenticate: scheme name → required scopes.
type Alternative = BTreeMap<String, BTreeSet<String>>;

/// The security requirements of an operation (its own, else the global
/// ones); `None` when there are none at all.
fn security_of(doc: &Value, op: &Value) -> Option<Vec<Alternative>> {
    let list = op
        .get("security")
        .or_else(|| doc.get("security"))?
        .as_array()?;
    if list.is_empty() {
        return None;
    }
    Some(
        list.iter()
            .filter_map(Value::as_object)
            .map(|requirement| {
                requirement
                    .iter()
                    .map(|(scheme, scopes)| {
                        let scopes = scopes
                            .as_array()
                            .map(|s| {
                                s.iter()
                                    .filter_map(Value::as_str)
                                    .map(String::from)
                                    .collect()
                            })
                            .unwrap_or_default();
                        (scheme.clone(), scopes)
                    })
                    .collect()
            })
            .collect(),
    )
}

fn describe_alternative(alternative: &Alternative) -> String {
    if alternative.is_empty() {
        return "anonymous access".to_owned();
    }
    alternative
        .iter()
        .map(|(scheme, scopes)| {
            if scopes.is_empty() {
                scheme.clone()
            } else {
                format!(
                    "{scheme}[{}]",
                    scopes.iter().cloned().collect::<Vec<_>>().join(",")
                )
            }
        })
        .collect::<Vec<_>>()
        .join("+")
}

fn security(out: &mut Findings, op: &Operation, b_op: &Value, a_op: &Value) {
    let old = security_of(&out.before.value, b_op);
    let new = security_of(&out.after.value, a_op);
    let at = if a_op.get("security").is_some() {
        pointer::join(&op.ap, "security")
    } else {
        "/security".to_owned()
    };
    let at = if out.after.get(&at).is_some() {
        at
    } else {
        op.ap.clone()
    };
    match (old, new) {
        (None, None) => {}
        (Some(old), None) => {
            let was = old.iter().map(describe_alternative).collect::<Vec<_>>();
            out.report(
                "api/removed-auth",
                Side::After,
                &at,
                format!(
                    "{}: authentication is removed (was {})",
                    op.label,
                    was.join(" or ")
                ),
            );
        }
        (None, Some(new)) => {
            if !new.iter().any(Alternative::is_empty) {
                let now = new.iter().map(describe_alternative).collect::<Vec<_>>();
                out.report(
                    "api/changed-auth",
                    Side::After,
                    &at,
                    format!(
                        "{}: authentication becomes required ({})",
                        op.label,
                        now.join(" or ")
                    ),
                );
            }
        }
        (Some(old), Some(new)) => {
            // An old way in still works when some new alternative asks for
            // no scheme and no scope the old one did not.
            let still_accepted = |old_alt: &Alternative| {
                new.iter().any(|new_alt| {
                    new_alt.iter().all(|(scheme, scopes)| {
                        old_alt
                            .get(scheme)
                            .is_some_and(|old_scopes| scopes.is_subset(old_scopes))
                    })
                })
            };
            let lost: Vec<String> = old
                .iter()
                .filter(|alt| !still_accepted(alt))
                .map(describe_alternative)
                .collect();
            if !lost.is_empty() {
                let now = new.iter().map(describe_alternative).collect::<Vec<_>>();
                out.report(
                    "api/changed-auth",
                    Side::After,
                    &at,
                    format!(
                        "{}: {} no longer accepted (now {})",
                        op.label,
                        lost.join(" or "),
                        now.join(" or ")
                    ),
                );
            }
        }
    }
}

fn security_schemes(out: &mut Findings) {
    let schemes = |doc: &Value| {
        doc.pointer("/components/securitySchemes")
            .and_then(Value::as_object)
            .cloned()
            .unwrap_or_default()
    };
    let (old, new) = (schemes(&out.before.value), schemes(&out.after.value));
    for (name, old_scheme) in &old {
        let Some(new_scheme) = new.get(name) else {
            continue;
        };
        let shape =
            |s: &Value| ["type", "scheme", "in", "name", "bearerFormat"].map(|k| s.get(k).cloned());
        if shape(old_scheme) != shape(new_scheme) {
            let at = pointer::join("/components/securitySchemes", name);
            out.report(
                "api/changed-auth",
                Side::After,
                &at,
                format!("security scheme `{name}` changes how clients authenticate"),
            );
        }
    }
}
