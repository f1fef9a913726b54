//! Schema comparison for `api-contract`: one before/after schema pair of a
//! request body, parameter, response body or header, compared at every
//! depth in the direction that matters — a request schema breaks clients
//! when it accepts less, a response schema when it may produce more.
//! Local `$ref`s are followed; each (before, after) schema pair is compared
//! once per walk, so recursive schemas end and shared ones cost one visit.

use std::collections::{BTreeMap, BTreeSet, HashSet};

use serde_json::Value;

use super::{Findings, Side};
use crate::model::Severity;
use crate::pointer;

/// `$ref` hops followed before giving up (a chain of refs to refs).
const MAX_REF_HOPS: usize = 32;

/// Nesting followed before a walk stops (a guard on top of the cycle check).
const MAX_DEPTH: usize = 64;

/// Nesting (through values and `$ref`s) followed when deciding whether two
/// schemas are the same; past it they count as different (and are walked).
const MAX_SAME_DEPTH: usize = 1024;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Direction {
    /// Sent by clients: narrowing breaks them.
    Request,
    /// Received by clients: widening breaks them.
    Response,
}

/// What the compared schema belongs to (picks the rule for type changes).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Root {
    Body,
    Parameter,
    Header,
}

/// Follows local `$ref`s from `value` (at `at`), returning the schema and
/// the pointer it lives at. Non-local or dangling refs stay as they are.
pub(super) fn resolve<'v>(doc: &'v Value, value: &'v Value, at: &str) -> (&'v Value, String) {
    let mut value = value;
    let mut at = at.to_owned();
    for _ in 0..MAX_REF_HOPS {
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
    (value, at)
}

/// A schema with where it is.
#[derive(Clone, Copy)]
struct At<'v, 'p> {
    schema: &'v Value,
    at: &'p str,
}

/// An alternative of a oneOf/anyOf/allOf list, with its pointer.
struct Alt<'v> {
    schema: &'v Value,
    at: String,
}

/// One walk over a before/after schema pair.
pub(super) struct SchemaDiff<'o, 'f> {
    out: &'o mut Findings<'f>,
    direction: Direction,
    root: Root,
    label: String,
    what: String,
    visited: HashSet<(String, String)>,
}

/// Property names and schemas of an object schema, its `allOf` parts merged in.
struct ObjectView<'v> {
    properties: BTreeMap<String, (&'v Value, String)>,
    required: BTreeSet<String>,
}

impl<'o, 'f> SchemaDiff<'o, 'f> {
    pub(super) fn new(
        out: &'o mut Findings<'f>,
        direction: Direction,
        root: Root,
        label: &str,
        what: &str,
    ) -> SchemaDiff<'o, 'f> {
        SchemaDiff {
            out,
            direction,
            root,
            label: label.to_owned(),
            what: what.to_owned(),
            visited: HashSet::new(),
        }
    }

    /// Compares the schema `before` (at `before_at` in the before document)
    /// with `after` (at `after_at` in the after document).
    pub(super) fn compare(
        &mut self,
        before: &Value,
        before_at: &str,
        after: &Value,
        after_at: &str,
    ) {
        self.schema(before, before_at, after, after_at, "", false, 0);
    }

    fn before_doc(&self) -> &'f Value {
        &self.out.before.value
    }

    fn after_doc(&self) -> &'f Value {
        &self.out.after.value
    }

    fn name(&self, field: &str) -> String {
        if field.is_empty() {
            self.what.clone()
        } else {
            format!("{} field `{field}`", self.what)
        }
    }

    fn report(&mut self, rule: &str, side: Side, at: &str, message: String) {
        let message = format!("{}: {message}", self.label);
        self.out.report(rule, side, at, message);
    }

    fn retyped_rule(&self) -> &'static str {
        match (self.direction, self.root) {
            (Direction::Request, Root::Parameter) => "api/retyped-parameter",
            (Direction::Request, _) => "api/retyped-request-field",
            (Direction::Response, _) => "api/retyped-response-field",
        }
    }

    /// `quiet`: the field is readOnly in a request or writeOnly in a
    /// response, so its narrowing or widening breaks no client.
    #[allow(clippy::too_many_arguments)]
    fn schema(
        &mut self,
        before: &Value,
        before_at: &str,
        after: &Value,
        after_at: &str,
        field: &str,
        quiet: bool,
        depth: usize,
    ) {
        if depth > MAX_DEPTH {
            return;
        }
        let (before, before_at) = resolve(self.before_doc(), before, before_at);
        let (after, after_at) = resolve(self.after_doc(), after, after_at);
        if !self.visited.insert((before_at.clone(), after_at.clone())) {
            return;
        }
        if self.unchanged(before, &before_at, after, &after_at) {
            return;
        }
        let b = At {
            schema: before,
            at: &before_at,
        };
        let a = At {
            schema: after,
            at: &after_at,
        };
        // Wrapped into (or unwrapped from) a oneOf/anyOf: compare with the
        // alternative that stands for the old (new) schema, not the wrapper.
        for keyword in ["oneOf", "anyOf"] {
            let (b_alts, a_alts) = (alternatives(b, keyword), alternatives(a, keyword));
            match (b_alts.is_empty(), a_alts.is_empty()) {
                (true, false)
                    if !has_structure(b.schema) || !has_structure_beyond(a.schema, keyword) =>
                {
                    self.wrapped(b, &a_alts, keyword, field, quiet, depth);
                    return;
                }
                (false, true)
                    if !has_structure(a.schema) || !has_structure_beyond(b.schema, keyword) =>
                {
                    self.unwrapped(&b_alts, a, keyword, field, quiet, depth);
                    return;
                }
                _ => {}
            }
        }
        self.keywords(b, a, field, quiet);
        self.properties(b, a, field, quiet, depth);
        self.compositions(b, a, field, quiet, depth);
        for keyword in ["items", "additionalProperties"] {
            if let (Some(b_sub), Some(a_sub)) = (b.schema.get(keyword), a.schema.get(keyword))
                && b_sub.is_object()
                && a_sub.is_object()
            {
                let sub_field = match keyword {
                    "items" => format!("{field}[]"),
                    _ => join_field(field, "*"),
                };
                self.schema(
                    b_sub,
                    &pointer::join(b.at, keyword),
                    a_sub,
                    &pointer::join(a.at, keyword),
                    &sub_field,
                    quiet,
                    depth + 1,
                );
            }
        }
    }

    /// Values that are the same once their `$ref`s are followed need no walk.
    fn unchanged(
        &mut self,
        before: &Value,
        before_at: &str,
        after: &Value,
        after_at: &str,
    ) -> bool {
        if before == after && (self.out.refs_stable || !contains_ref(before)) {
            return true;
        }
        same(self.out, (before, before_at), (after, after_at))
    }

    /// Type, format, nullability, enum, bounds, pattern, default.
    fn keywords(&mut self, b: At, a: At, field: &str, quiet: bool) {
        let name = self.name(field);
        let request = self.direction == Direction::Request;
        // Type.
        let (b_types, a_types) = (types(b.schema), types(a.schema));
        let mut retyped = false;
        if let (Some(bt), Some(at)) = (&b_types, &a_types) {
            let broken = if request {
                lost_types(bt, at)
            } else {
                lost_types(at, bt)
            };
            if !broken.is_empty() && !quiet {
                retyped = true;
                let rule = self.retyped_rule();
                self.report(
                    rule,
                    Side::After,
                    a.at,
                    format!(
                        "{name} changes type from {} to {}",
                        show_types(bt),
                        show_types(at)
                    ),
                );
            }
        }
        // Format, when the type stayed.
        let (b_format, a_format) = (
            b.schema.get("format").and_then(Value::as_str),
            a.schema.get("format").and_then(Value::as_str),
        );
        if !retyped && !quiet && b_format != a_format {
            let breaks = if request {
                a_format.is_some() && !format_widens(b_format, a_format)
            } else {
                b_format.is_some() && !format_widens(a_format, b_format)
            };
            if breaks {
                let rule = self.retyped_rule();
                self.report(
                    rule,
                    Side::After,
                    a.at,
                    format!(
                        "{name} changes format from {} to {}",
                        b_format.unwrap_or("none"),
                        a_format.unwrap_or("none")
                    ),
                );
            }
        }
        // Null.
        let (b_null, a_null) = (nullable(b.schema), nullable(a.schema));
        if request && b_null && !a_null && !quiet {
            self.report(
                "api/request-became-not-nullable",
                Side::After,
                a.at,
                format!("{name} no longer accepts null"),
            );
        }
        if !request && !b_null && a_null && !quiet {
            self.report(
                "api/response-became-nullable",
                Side::After,
                a.at,
                format!("{name} may now be null"),
            );
        }
        // Enum and const.
        self.enumeration(b, a, &name, quiet);
        // Bounds.
        if !quiet {
            self.bounds(b, a, &name);
        }
        // Default.
        let (b_default, a_default) = (b.schema.get("default"), a.schema.get("default"));
        if b_default != a_default {
            let (side, at) = if a_default.is_some() {
                (Side::After, pointer::join(a.at, "default"))
            } else {
                (Side::Before, pointer::join(b.at, "default"))
            };
            let show = |v: Option<&Value>| v.map_or_else(|| "none".to_owned(), Value::to_string);
            self.report(
                "api/changed-default",
                side,
                &at,
                format!(
                    "{name} default changes from {} to {}",
                    show(b_default),
                    show(a_default)
                ),
            );
        }
    }

    fn enumeration(&mut self, b: At, a: At, name: &str, quiet: bool) {
        if quiet {
            return;
        }
        let (b_values, a_values) = (enum_values(b.schema), enum_values(a.schema));
        let at_of = |s: At| {
            if s.schema.get("enum").is_some() {
                pointer::join(s.at, "enum")
            } else if s.schema.get("const").is_some() {
                pointer::join(s.at, "const")
            } else {
                s.at.to_owned()
            }
        };
        match self.direction {
            Direction::Request => match (b_values, a_values) {
                (None, Some(_)) => self.report(
                    "api/narrowed-enum",
                    Side::After,
                    &at_of(a),
                    format!("{name} is restricted to an enum"),
                ),
                (Some(old), Some(new)) => {
                    let dropped = missing(&old, &new);
                    if !dropped.is_empty() {
                        self.report(
                            "api/narrowed-enum",
                            Side::After,
                            &at_of(a),
                            format!("{name} no longer accepts {}", dropped.join(", ")),
                        );
                    }
                }
                _ => {}
            },
            Direction::Response => match (b_values, a_values) {
                (Some(_), None) => self.report(
                    "api/widened-response-enum",
                    Side::Before,
                    &at_of(b),
                    format!("{name} is no longer restricted to an enum"),
                ),
                (Some(old), Some(new)) => {
                    let added = missing(&new, &old);
                    if !added.is_empty() {
                        self.report(
                            "api/widened-response-enum",
                            Side::After,
                            &at_of(a),
                            format!("{name} may now return {}", added.join(", ")),
                        );
                    }
                }
                _ => {}
            },
        }
    }

    fn bounds(&mut self, b: At, a: At, name: &str) {
        let request = self.direction == Direction::Request;
        // (keyword, an upper bound?, the value an absent bound stands for)
        const BOUNDS: &[(&str, bool, Option<f64>)] = &[
            ("maxLength", true, None),
            ("maxItems", true, None),
            ("maxProperties", true, None),
            ("maximum", true, None),
            ("exclusiveMaximum", true, None),
            ("minLength", false, Some(0.0)),
            ("minItems", false, Some(0.0)),
            ("minProperties", false, Some(0.0)),
            ("minimum", false, None),
            ("exclusiveMinimum", false, None),
        ];
        for (keyword, upper, absent) in BOUNDS {
            let (b_value, a_value) = (b.schema.get(*keyword), a.schema.get(*keyword));
            // OpenAPI 3.0: exclusiveMaximum/Minimum are booleans.
            if let (Some(Value::Bool(_)), _) | (_, Some(Value::Bool(_))) = (b_value, a_value) {
                let (was, is) = (
                    b_value.and_then(Value::as_bool).unwrap_or(false),
                    a_value.and_then(Value::as_bool).unwrap_or(false),
                );
                if request && is && !was {
                    self.report(
                        "api/narrowed-constraint",
                        Side::After,
                        &pointer::join(a.at, keyword),
                        format!("{name}: {keyword} is set"),
                    );
                } else if !request && was && !is {
                    self.report(
                        "api/widened-response-constraint",
                        Side::After,
                        a.at,
                        format!("{name}: {keyword} is unset"),
                    );
                }
                continue;
            }
            let old = b_value.and_then(Value::as_f64).or(*absent);
            let new = a_value.and_then(Value::as_f64).or(*absent);
            if old == new {
                continue;
            }
            // Tighter: a bound appears, or moves inwards.
            let tighter = |from: Option<f64>, to: Option<f64>| match (from, to) {
                (_, None) => false,
                (None, Some(_)) => true,
                (Some(from), Some(to)) => {
                    if *upper {
                        to < from
                    } else {
                        to > from
                    }
                }
            };
            let show = |v: Option<f64>| v.map_or_else(|| "none".to_owned(), |v| v.to_string());
            if request && tighter(old, new) {
                self.report(
                    "api/narrowed-constraint",
                    Side::After,
                    &pointer::join(a.at, keyword),
                    format!(
                        "{name}: {keyword} changes from {} to {}",
                        show(old),
                        show(new)
                    ),
                );
            } else if !request && tighter(new, old) {
                let at = if a_value.is_some() {
                    pointer::join(a.at, keyword)
                } else {
                    a.at.to_owned()
                };
                self.report(
                    "api/widened-response-constraint",
                    Side::After,
                    &at,
                    format!(
                        "{name}: {keyword} changes from {} to {}",
                        show(old),
                        show(new)
                    ),
                );
            }
        }
        // uniqueItems, multipleOf.
        let unique = |s: &Value| {
            s.get("uniqueItems")
                .and_then(Value::as_bool)
                .unwrap_or(false)
        };
        if request && unique(a.schema) && !unique(b.schema) {
            self.report(
                "api/narrowed-constraint",
                Side::After,
                &pointer::join(a.at, "uniqueItems"),
                format!("{name}: uniqueItems is set"),
            );
        }
        if !request && unique(b.schema) && !unique(a.schema) {
            self.report(
                "api/widened-response-constraint",
                Side::After,
                a.at,
                format!("{name}: uniqueItems is unset"),
            );
        }
        let (b_multiple, a_multiple) = (
            b.schema.get("multipleOf").and_then(Value::as_f64),
            a.schema.get("multipleOf").and_then(Value::as_f64),
        );
        if b_multiple != a_multiple {
            // A new multiple narrows when it is not a divisor of the old one.
            let divides = |small: f64, big: f64| small != 0.0 && (big / small).fract() == 0.0;
            let narrows = |from: Option<f64>, to: Option<f64>| match (from, to) {
                (_, None) => false,
                (None, Some(_)) => true,
                (Some(from), Some(to)) => !divides(to, from),
            };
            let show = |v: Option<f64>| v.map_or_else(|| "none".to_owned(), |v| v.to_string());
            if request && narrows(b_multiple, a_multiple) {
                self.report(
                    "api/narrowed-constraint",
                    Side::After,
                    &pointer::join(a.at, "multipleOf"),
                    format!(
                        "{name}: multipleOf changes from {} to {}",
                        show(b_multiple),
                        show(a_multiple)
                    ),
                );
            } else if !request && narrows(a_multiple, b_multiple) {
                self.report(
                    "api/widened-response-constraint",
                    Side::After,
                    a.at,
                    format!(
                        "{name}: multipleOf changes from {} to {}",
                        show(b_multiple),
                        show(a_multiple)
                    ),
                );
            }
        }
        // Pattern.
        let (b_pattern, a_pattern) = (
            b.schema.get("pattern").and_then(Value::as_str),
            a.schema.get("pattern").and_then(Value::as_str),
        );
        match (b_pattern, a_pattern) {
            (None, Some(p)) if request => self.report(
                "api/new-pattern",
                Side::After,
                &pointer::join(a.at, "pattern"),
                format!("{name} must now match `{p}`"),
            ),
            (Some(p), None) if !request => self.report(
                "api/widened-response-constraint",
                Side::After,
                a.at,
                format!("{name} no longer matches `{p}` for sure (pattern removed)"),
            ),
            (Some(old), Some(new)) if old != new => self.report(
                "api/changed-pattern",
                Side::After,
                &pointer::join(a.at, "pattern"),
                format!("{name} pattern changes from `{old}` to `{new}`"),
            ),
            _ => {}
        }
        // additionalProperties: false in a request refuses what it took.
        let closed = |s: &Value| s.get("additionalProperties") == Some(&Value::Bool(false));
        if request && closed(a.schema) && !closed(b.schema) && b.schema.get("properties").is_some()
        {
            self.report(
                "api/narrowed-constraint",
                Side::After,
                &pointer::join(a.at, "additionalProperties"),
                format!("{name}: additional properties are no longer accepted"),
            );
        }
    }

    fn properties(&mut self, b: At, a: At, field: &str, quiet: bool, depth: usize) {
        let mut old = ObjectView {
            properties: BTreeMap::new(),
            required: BTreeSet::new(),
        };
        let mut new = ObjectView {
            properties: BTreeMap::new(),
            required: BTreeSet::new(),
        };
        object_view(self.before_doc(), b.schema, b.at, &mut old, 0);
        object_view(self.after_doc(), a.schema, a.at, &mut new, 0);
        let before_doc = self.before_doc();
        let after_doc = self.after_doc();
        let flag = |doc: &Value, schema: &Value, key: &str| {
            resolve(doc, schema, "")
                .0
                .get(key)
                .and_then(Value::as_bool)
                .unwrap_or(false)
        };
        let request = self.direction == Direction::Request;
        let mut work = Vec::new();
        for (property, (new_schema, new_at)) in &new.properties {
            let path = join_field(field, property);
            let read_only = flag(after_doc, new_schema, "readOnly");
            let write_only = flag(after_doc, new_schema, "writeOnly");
            let required = new.required.contains(property);
            match old.properties.get(property) {
                None => {
                    if request && required && !read_only && !quiet {
                        work.push(Report::new(
                            "api/new-required-request-field",
                            Side::After,
                            new_at,
                            format!("{} is new and required", self.name(&path)),
                        ));
                    } else if request {
                        work.push(Report::new(
                            "api/added-request-field",
                            Side::After,
                            new_at,
                            format!("{} is new (optional)", self.name(&path)),
                        ));
                    } else {
                        work.push(Report::new(
                            "api/added-response-field",
                            Side::After,
                            new_at,
                            format!("{} is new", self.name(&path)),
                        ));
                    }
                }
                Some((old_schema, _)) => {
                    let was_required = old.required.contains(property);
                    let was_write_only = flag(before_doc, old_schema, "writeOnly");
                    if request && required && !was_required && !read_only && !quiet {
                        work.push(Report::new(
                            "api/new-required-request-field",
                            Side::After,
                            new_at,
                            format!("{} becomes required", self.name(&path)),
                        ));
                    }
                    if !request && was_required && !required && !was_write_only && !quiet {
                        work.push(Report::new(
                            "api/response-field-became-optional",
                            Side::After,
                            new_at,
                            format!("{} becomes optional", self.name(&path)),
                        ));
                    }
                    if !request && was_required && required && was_write_only && !write_only {
                        work.push(Report::new(
                            "api/response-field-no-longer-write-only",
                            Side::After,
                            new_at,
                            format!("{} is required and no longer writeOnly", self.name(&path)),
                        ));
                    }
                }
            }
        }
        for (property, (old_schema, old_at)) in &old.properties {
            if new.properties.contains_key(property) {
                continue;
            }
            let path = join_field(field, property);
            if request {
                work.push(Report::new(
                    "api/removed-request-field",
                    Side::Before,
                    old_at,
                    format!("{} is removed", self.name(&path)),
                ));
            } else {
                let write_only = flag(before_doc, old_schema, "writeOnly");
                let (severity, what) = if old.required.contains(property) && !write_only && !quiet {
                    (Severity::Error, "required")
                } else if write_only || quiet {
                    (Severity::Info, "writeOnly")
                } else {
                    (Severity::Warning, "optional")
                };
                let mut report = Report::new(
                    "api/removed-response-field",
                    Side::Before,
                    old_at,
                    format!("{} ({what}) is removed", self.name(&path)),
                );
                report.severity = Some(severity);
                work.push(report);
            }
        }
        let pairs: Vec<(String, &Value, String, &Value, String, bool)> = new
            .properties
            .iter()
            .filter_map(|(property, (new_schema, new_at))| {
                let (old_schema, old_at) = old.properties.get(property)?;
                let guard = if request { "readOnly" } else { "writeOnly" };
                let quiet_here = quiet
                    || flag(after_doc, new_schema, guard)
                    || flag(before_doc, old_schema, guard);
                Some((
                    property.clone(),
                    *old_schema,
                    old_at.clone(),
                    *new_schema,
                    new_at.clone(),
                    quiet_here,
                ))
            })
            .collect();
        for report in work {
            let message = format!("{}: {}", self.label, report.message);
            match report.severity {
                Some(severity) => {
                    self.out
                        .report_at(report.rule, severity, report.side, &report.at, message)
                }
                None => self
                    .out
                    .report(report.rule, report.side, &report.at, message),
            }
        }
        for (property, old_schema, old_at, new_schema, new_at, quiet_here) in pairs {
            self.schema(
                old_schema,
                &old_at,
                new_schema,
                &new_at,
                &join_field(field, &property),
                quiet_here,
                depth + 1,
            );
        }
    }

    /// oneOf/anyOf alternatives, allOf parts (their keywords; properties
    /// are merged by [`object_view`]), if/then/else.
    fn compositions(&mut self, b: At, a: At, field: &str, quiet: bool, depth: usize) {
        let name = self.name(field);
        let request = self.direction == Direction::Request;
        for keyword in ["oneOf", "anyOf", "allOf"] {
            let (b_alts, a_alts) = (alternatives(b, keyword), alternatives(a, keyword));
            if b_alts.is_empty() && a_alts.is_empty() {
                continue;
            }
            let (pairs, removed, added) = self.match_alternatives(&b_alts, &a_alts);
            let all_of = keyword == "allOf";
            let narrowing_removed = !all_of; // removing a oneOf/anyOf alternative narrows
            for (i, at) in &removed {
                if !quiet
                    && ((request && narrowing_removed)
                        || (!request && !narrowing_removed && has_structure(b_alts[*i].schema)))
                {
                    let rule = if request {
                        "api/request-composition-narrowed"
                    } else {
                        "api/response-composition-widened"
                    };
                    self.report(
                        rule,
                        Side::Before,
                        at,
                        format!("{name}: {} {keyword} part is removed", article(keyword)),
                    );
                }
            }
            for (j, at) in &added {
                if !quiet
                    && ((!request && narrowing_removed)
                        || (request && !narrowing_removed && has_structure(a_alts[*j].schema)))
                {
                    let rule = if request {
                        "api/request-composition-narrowed"
                    } else {
                        "api/response-composition-widened"
                    };
                    self.report(
                        rule,
                        Side::After,
                        at,
                        format!("{name}: {} {keyword} part is added", article(keyword)),
                    );
                }
            }
            for (i, j) in pairs {
                let (b_alt, a_alt) = (&b_alts[i], &a_alts[j]);
                if all_of {
                    // Properties of allOf parts were compared merged.
                    let (bs, bat) = resolve(self.before_doc(), b_alt.schema, &b_alt.at);
                    let (as_, aat) = resolve(self.after_doc(), a_alt.schema, &a_alt.at);
                    self.keywords(
                        At {
                            schema: bs,
                            at: &bat,
                        },
                        At {
                            schema: as_,
                            at: &aat,
                        },
                        field,
                        quiet,
                    );
                    self.compositions(
                        At {
                            schema: bs,
                            at: &bat,
                        },
                        At {
                            schema: as_,
                            at: &aat,
                        },
                        field,
                        quiet,
                        depth + 1,
                    );
                    for sub in ["items", "additionalProperties"] {
                        if let (Some(b_sub), Some(a_sub)) = (bs.get(sub), as_.get(sub))
                            && b_sub.is_object()
                            && a_sub.is_object()
                        {
                            let sub_field = if sub == "items" {
                                format!("{field}[]")
                            } else {
                                join_field(field, "*")
                            };
                            self.schema(
                                b_sub,
                                &pointer::join(&bat, sub),
                                a_sub,
                                &pointer::join(&aat, sub),
                                &sub_field,
                                quiet,
                                depth + 1,
                            );
                        }
                    }
                } else {
                    self.schema(
                        b_alt.schema,
                        &b_alt.at,
                        a_alt.schema,
                        &a_alt.at,
                        field,
                        quiet,
                        depth + 1,
                    );
                }
            }
        }
        for keyword in ["if", "then", "else"] {
            match (b.schema.get(keyword), a.schema.get(keyword)) {
                (Some(b_sub), Some(a_sub)) => self.schema(
                    b_sub,
                    &pointer::join(b.at, keyword),
                    a_sub,
                    &pointer::join(a.at, keyword),
                    field,
                    quiet,
                    depth + 1,
                ),
                (None, Some(_)) if request && !quiet => self.report(
                    "api/request-composition-narrowed",
                    Side::After,
                    &pointer::join(a.at, keyword),
                    format!("{name}: `{keyword}` is added"),
                ),
                (Some(_), None) if !request && !quiet => self.report(
                    "api/response-composition-widened",
                    Side::Before,
                    &pointer::join(b.at, keyword),
                    format!("{name}: `{keyword}` is removed"),
                ),
                _ => {}
            }
        }
    }

    /// Pairs before and after alternatives: same `$ref` target, then equal
    /// schemas, then the most shared property names, then by position.
    /// Returns (pairs, removed (index, pointer), added (index, pointer)).
    #[allow(clippy::type_complexity)]
    fn match_alternatives(
        &self,
        b_alts: &[Alt],
        a_alts: &[Alt],
    ) -> (
        Vec<(usize, usize)>,
        Vec<(usize, String)>,
        Vec<(usize, String)>,
    ) {
        let before_doc = self.before_doc();
        let after_doc = self.after_doc();
        let b_resolved: Vec<(&Value, String)> = b_alts
            .iter()
            .map(|alt| resolve(before_doc, alt.schema, &alt.at))
            .collect();
        let a_resolved: Vec<(&Value, String)> = a_alts
            .iter()
            .map(|alt| resolve(after_doc, alt.schema, &alt.at))
            .collect();
        let mut pairs = Vec::new();
        let mut b_free: Vec<bool> = vec![true; b_alts.len()];
        let mut a_free: Vec<bool> = vec![true; a_alts.len()];
        let same_ref = |i: usize, j: usize| {
            let (bi, aj) = (&b_resolved[i].1, &a_resolved[j].1);
            bi == aj && bi.starts_with("/components/")
        };
        let equal = |i: usize, j: usize| b_resolved[i].0 == a_resolved[j].0;
        for test in [&same_ref as &dyn Fn(usize, usize) -> bool, &equal] {
            for (i, free) in b_free.iter_mut().enumerate() {
                if !*free {
                    continue;
                }
                if let Some(j) = (0..a_alts.len()).find(|&j| a_free[j] && test(i, j)) {
                    *free = false;
                    a_free[j] = false;
                    pairs.push((i, j));
                }
            }
        }
        // Shared property names.
        let names = |s: &Value| -> BTreeSet<String> {
            s.get("properties")
                .and_then(Value::as_object)
                .map(|p| p.keys().cloned().collect())
                .unwrap_or_default()
        };
        for i in 0..b_alts.len() {
            if !b_free[i] {
                continue;
            }
            let b_names = names(b_resolved[i].0);
            if b_names.is_empty() {
                continue;
            }
            let best = (0..a_alts.len())
                .filter(|&j| a_free[j])
                .map(|j| (b_names.intersection(&names(a_resolved[j].0)).count(), j))
                .filter(|(shared, _)| *shared > 0)
                .max_by_key(|(shared, j)| (*shared, std::cmp::Reverse(*j)));
            if let Some((_, j)) = best {
                b_free[i] = false;
                a_free[j] = false;
                pairs.push((i, j));
            }
        }
        // By position, when both sides keep the same number left over and
        // the schemas are of one type.
        let b_left: Vec<usize> = (0..b_alts.len()).filter(|&i| b_free[i]).collect();
        let a_left: Vec<usize> = (0..a_alts.len()).filter(|&j| a_free[j]).collect();
        if b_left.len() == a_left.len() {
            for (&i, &j) in b_left.iter().zip(&a_left) {
                if types(b_resolved[i].0) == types(a_resolved[j].0) {
                    b_free[i] = false;
                    a_free[j] = false;
                    pairs.push((i, j));
                }
            }
        }
        let removed = (0..b_alts.len())
            .filter(|&i| b_free[i])
            .map(|i| (i, b_alts[i].at.clone()))
            .collect();
        let added = (0..a_alts.len())
            .filter(|&j| a_free[j])
            .map(|j| (j, a_alts[j].at.clone()))
            .collect();
        (pairs, removed, added)
    }

    /// The before schema became one alternative of an after oneOf/anyOf.
    fn wrapped(
        &mut self,
        b: At,
        a_alts: &[Alt],
        keyword: &str,
        field: &str,
        quiet: bool,
        depth: usize,
    ) {
        let name = self.name(field);
        let own = [Alt {
            schema: b.schema,
            at: b.at.to_owned(),
        }];
        let (pairs, _, added) = self.match_alternatives(&own, a_alts);
        for (_, j) in &pairs {
            let alt = &a_alts[*j];
            self.schema(b.schema, b.at, alt.schema, &alt.at, field, quiet, depth + 1);
        }
        if quiet {
            return;
        }
        let others = added.len();
        let request = self.direction == Direction::Request;
        if others == 0 && !pairs.is_empty() {
            return;
        }
        let at = a_alts.first().map_or(b.at, |alt| alt.at.as_str());
        let at = at
            .rsplit_once('/')
            .map(|(p, _)| p.to_owned())
            .unwrap_or_default();
        if !request {
            self.report(
                "api/response-composition-widened",
                Side::After,
                &at,
                format!("{name} is wrapped in a {keyword} with {others} more alternative(s)"),
            );
        } else if keyword == "oneOf" {
            self.report(
                "api/request-composition-narrowed",
                Side::After,
                &at,
                format!(
                    "{name} is wrapped in a oneOf: a value matching more than one alternative is refused"
                ),
            );
        }
    }

    /// A before oneOf/anyOf collapsed to the after schema.
    fn unwrapped(
        &mut self,
        b_alts: &[Alt],
        a: At,
        keyword: &str,
        field: &str,
        quiet: bool,
        depth: usize,
    ) {
        let name = self.name(field);
        let own = [Alt {
            schema: a.schema,
            at: a.at.to_owned(),
        }];
        let (pairs, removed, _) = self.match_alternatives(b_alts, &own);
        for (i, _) in &pairs {
            let alt = &b_alts[*i];
            self.schema(alt.schema, &alt.at, a.schema, a.at, field, quiet, depth + 1);
        }
        if quiet || self.direction == Direction::Response || removed.is_empty() {
            return;
        }
        for (_, at) in removed {
            self.report(
                "api/request-composition-narrowed",
                Side::Before,
                &at,
                format!(
                    "{name}: {} {keyword} alternative is removed",
                    article(keyword)
                ),
            );
        }
    }
}

/// Whether `before` (at its pointer in the before document) and `after`
/// are the same once local `$ref`s are followed on both sides. Each pointer
/// pair is decided once per document and remembered, so schemas shared by
/// many operations cost one comparison; a pair met again while it is being
/// decided (a cycle) counts as the same until a difference shows, and
/// what leant on that is forgotten if one does.
pub(super) fn same(out: &mut Findings, before: (&Value, &str), after: (&Value, &str)) -> bool {
    let (before_doc, after_doc) = (&out.before.value, &out.after.value);
    let mut assumed = Vec::new();
    let result = same_at(
        before_doc,
        after_doc,
        &mut out.same,
        &mut assumed,
        before,
        after,
        0,
    );
    if !result {
        // A "same" met on the way may have leant on an assumption that
        // turned out false: forget those ("different" never leans on one).
        for key in assumed {
            out.same.remove(&key);
        }
    }
    result
}

fn same_at(
    before_doc: &Value,
    after_doc: &Value,
    memo: &mut std::collections::HashMap<(String, String), bool>,
    assumed: &mut Vec<(String, String)>,
    (before, before_at): (&Value, &str),
    (after, after_at): (&Value, &str),
    depth: usize,
) -> bool {
    if depth > MAX_SAME_DEPTH {
        return false;
    }
    let key = (before_at.to_owned(), after_at.to_owned());
    if let Some(known) = memo.get(&key) {
        return *known;
    }
    let local_ref = |v: &Value| {
        v.get("$ref")
            .and_then(Value::as_str)
            .filter(|r| r.starts_with('#'))
            .is_some()
    };
    let (before, before_at) = if local_ref(before) {
        resolve(before_doc, before, before_at)
    } else {
        (before, before_at.to_owned())
    };
    let (after, after_at) = if local_ref(after) {
        resolve(after_doc, after, after_at)
    } else {
        (after, after_at.to_owned())
    };
    let key = (before_at.clone(), after_at.clone());
    if let Some(known) = memo.get(&key) {
        return *known;
    }
    // Assume the same while deciding (a cycle back here then agrees).
    memo.insert(key.clone(), true);
    let result = match (before, after) {
        (Value::Object(b), Value::Object(a)) => {
            b.len() == a.len()
                && b.iter().all(|(name, b_value)| {
                    a.get(name).is_some_and(|a_value| {
                        if !(b_value.is_object() || b_value.is_array()) {
                            return b_value == a_value;
                        }
                        same_at(
                            before_doc,
                            after_doc,
                            memo,
                            assumed,
                            (b_value, &pointer::join(&before_at, name)),
                            (a_value, &pointer::join(&after_at, name)),
                            depth + 1,
                        )
                    })
                })
        }
        (Value::Array(b), Value::Array(a)) => {
            b.len() == a.len()
                && b.iter().zip(a).enumerate().all(|(i, (b_value, a_value))| {
                    if !(b_value.is_object() || b_value.is_array()) {
                        return b_value == a_value;
                    }
                    same_at(
                        before_doc,
                        after_doc,
                        memo,
                        assumed,
                        (b_value, &pointer::join_index(&before_at, i)),
                        (a_value, &pointer::join_index(&after_at, i)),
                        depth + 1,
                    )
                })
        }
        (b, a) => b == a,
    };
    if result {
        // Kept, but provisional until the outermost comparison is decided.
        assumed.push(key);
    } else {
        memo.insert(key, false);
    }
    result
}

/// A finding collected before it is reported (the borrow of the views ends first).
struct Report {
    rule: &'static str,
    /// The level without config, when it is not the rule's default.
    severity: Option<Severity>,
    side: Side,
    at: String,
    message: String,
}

impl Report {
    fn new(rule: &'static str, side: Side, at: &str, message: String) -> Report {
        Report {
            rule,
            severity: None,
            side,
            at: at.to_owned(),
            message,
        }
    }
}

/// "a oneOf", "an anyOf", "an allOf".
fn article(keyword: &str) -> &'static str {
    if keyword.starts_with('a') { "an" } else { "a" }
}

fn join_field(field: &str, name: &str) -> String {
    if field.is_empty() {
        name.to_owned()
    } else {
        format!("{field}.{name}")
    }
}

fn contains_ref(value: &Value) -> bool {
    match value {
        Value::Object(map) => map.contains_key("$ref") || map.values().any(contains_ref),
        Value::Array(items) => items.iter().any(contains_ref),
        _ => false,
    }
}

fn alternatives<'v>(s: At<'v, '_>, keyword: &str) -> Vec<Alt<'v>> {
    s.schema
        .get(keyword)
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .enumerate()
        .map(|(i, alt)| Alt {
            schema: alt,
            at: pointer::join_index(&pointer::join(s.at, keyword), i),
        })
        .collect()
}

/// Schema keywords that say something about values (not annotations).
const STRUCTURE: &[&str] = &[
    "type",
    "properties",
    "required",
    "enum",
    "const",
    "pattern",
    "items",
    "allOf",
    "oneOf",
    "anyOf",
    "not",
    "$ref",
    "format",
    "additionalProperties",
    "minimum",
    "maximum",
    "exclusiveMinimum",
    "exclusiveMaximum",
    "minLength",
    "maxLength",
    "minItems",
    "maxItems",
    "if",
    "then",
    "else",
    "nullable",
    "multipleOf",
    "uniqueItems",
];

fn has_structure(schema: &Value) -> bool {
    schema
        .as_object()
        .is_some_and(|map| STRUCTURE.iter().any(|k| map.contains_key(*k)))
}

/// Whether the schema says something besides its `keyword` list.
fn has_structure_beyond(schema: &Value, keyword: &str) -> bool {
    schema.as_object().is_some_and(|map| {
        STRUCTURE
            .iter()
            .any(|k| *k != keyword && *k != "nullable" && map.contains_key(*k))
    })
}

/// Properties and required names of an object schema and its allOf parts.
fn object_view<'v>(
    doc: &'v Value,
    schema: &'v Value,
    at: &str,
    out: &mut ObjectView<'v>,
    depth: usize,
) {
    if depth > MAX_DEPTH {
        return;
    }
    let (schema, at) = resolve(doc, schema, at);
    if let Some(properties) = schema.get("properties").and_then(Value::as_object) {
        for (name, property) in properties {
            out.properties.entry(name.clone()).or_insert_with(|| {
                (
                    property,
                    pointer::join(&pointer::join(&at, "properties"), name),
                )
            });
        }
    }
    if let Some(required) = schema.get("required").and_then(Value::as_array) {
        out.required
            .extend(required.iter().filter_map(Value::as_str).map(String::from));
    }
    if let Some(parts) = schema.get("allOf").and_then(Value::as_array) {
        for (i, part) in parts.iter().enumerate() {
            let part_at = pointer::join_index(&pointer::join(&at, "allOf"), i);
            object_view(doc, part, &part_at, out, depth + 1);
        }
    }
}

/// The declared types, `null` apart; an untyped schema with properties is
/// an object, with items an array.
fn types(schema: &Value) -> Option<BTreeSet<String>> {
    let declared: BTreeSet<String> = match schema.get("type") {
        Some(Value::String(t)) => BTreeSet::from([t.clone()]),
        Some(Value::Array(items)) => items
            .iter()
            .filter_map(Value::as_str)
            .map(String::from)
            .collect(),
        _ => {
            if schema.get("properties").is_some() {
                BTreeSet::from(["object".to_owned()])
            } else if schema.get("items").is_some() {
                BTreeSet::from(["array".to_owned()])
            } else {
                return None;
            }
        }
    };
    let types: BTreeSet<String> = declared.into_iter().filter(|t| t != "null").collect();
    (!types.is_empty()).then_some(types)
}

fn show_types(types: &BTreeSet<String>) -> String {
    types.iter().cloned().collect::<Vec<_>>().join("|")
}

/// Types of `from` that `to` no longer covers (an integer is a number).
fn lost_types(from: &BTreeSet<String>, to: &BTreeSet<String>) -> Vec<String> {
    from.iter()
        .filter(|t| !to.contains(*t) && (t.as_str() != "integer" || !to.contains("number")))
        .cloned()
        .collect()
}

/// Whether going from format `from` to `to` only widens what is accepted.
fn format_widens(from: Option<&str>, to: Option<&str>) -> bool {
    matches!(
        (from, to),
        (_, None) | (Some("int32"), Some("int64")) | (Some("float"), Some("double"))
    )
}

fn nullable(schema: &Value) -> bool {
    schema.get("nullable").and_then(Value::as_bool) == Some(true)
        || match schema.get("type") {
            Some(Value::Array(items)) => items.iter().any(|t| t == "null"),
            Some(Value::String(t)) => t == "null",
            _ => false,
        }
}

/// The values an enum or const allows.
fn enum_values(schema: &Value) -> Option<Vec<Value>> {
    if let Some(values) = schema.get("enum").and_then(Value::as_array) {
        return Some(values.clone());
    }
    schema.get("const").map(|c| vec![c.clone()])
}

/// Values in `from` that are not in `to`, as JSON.
fn missing(from: &[Value], to: &[Value]) -> Vec<String> {
    from.iter()
        .filter(|v| !to.contains(v))
        .map(Value::to_string)
        .collect()
}
