//! `references`: references across the documents of a change (lineage). The
//! config declares where documents name each other (a workflow step's
//! connector, a connector's table, a mapping's column in that table); a
//! reference the change leaves dangling fails at the referring value, one
//! that already dangled before warns, every changed document lists what
//! refers to it directly or transitively (the impact list), and documents
//! that refer to each other in a cycle are reported once, as information.

use std::cell::OnceCell;
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet, VecDeque};

use serde::Deserialize;
use serde_json::Value;

use crate::glob;
use crate::model::{Change, Document, Finding, Report, Severity, Status, parse_config};
use crate::parse::Parsed;
use crate::pointer;

pub const CONFIG_SCHEMA: &str = r##"{
  "type": "object",
  "properties": {
    "references": {
      "type": "array",
      "maxItems": 64,
      "description": "where documents refer to each other; replaces the defaults when given",
      "items": {
        "type": "object",
        "properties": {
          "name": {"type": "string", "minLength": 1, "maxLength": 64,
                   "description": "a label for findings; defaults to `from` and `at`"},
          "from": {"type": "string", "minLength": 1,
                   "description": "path pattern of the referring documents; `*` matches any run of characters"},
          "at": {"type": "string", "pattern": "^(/[^/]*)+$",
                 "description": "JSON pointer to the referring values; a `*` token matches every member or item"},
          "to": {"type": "string", "pattern": "^[^{}]*\\{\\}[^{}]*$",
                 "description": "path pattern of the referred document; `{}` stands for the referring value"},
          "to-value": {
            "type": "object",
            "description": "the referring value must be one of the values at `at` in `document`",
            "properties": {
              "document": {"type": "string", "pattern": "^[^{}]*(\\{(/[^/{}]*)+\\}[^{}]*)?$",
                           "description": "path pattern of the document holding the values; `{/pointer}` stands for the value at that pointer of the referring document (its `*` tokens are those of `at`)"},
              "at": {"type": "string", "pattern": "^(/[^/]*)+$",
                     "description": "JSON pointer to the values; a `*` token matches every member or item"}
            },
            "required": ["document", "at"],
            "additionalProperties": false
          }
        },
        "required": ["from", "at"],
        "oneOf": [{"required": ["to"]}, {"required": ["to-value"]}],
        "additionalProperties": false
      }
    },
    "report-impact": {"type": "boolean", "default": true,
                      "description": "list, as info findings, the documents each changed document reaches"},
    "complete": {"type": "boolean", "default": false,
                 "description": "the change holds every document of the project: a reference to a document on neither side is dangling (otherwise it is outside the change and not judged)"}
  },
  "additionalProperties": false
}"##;

/// Findings of one kind (dangling, already dangling, impact) past which the
/// rest is counted in one closing finding: the host caps a verdict's size.
const MAX_FINDINGS_PER_KIND: usize = 200;

/// Referring values longer than this are shown cut in messages.
const MAX_SHOWN_VALUE_CHARS: usize = 80;

/// Documents named in one impact or cycle message, at most.
const MAX_SHOWN_PATH_DOCUMENTS: usize = 8;

/// Tokens of a pointer pattern, at most (a config limit).
const MAX_POINTER_TOKENS: usize = 32;

/// Ways one document path can be split around the placeholder before it is
/// looked up value by value instead of through the index.
const MAX_CAPTURES_PER_PATH: usize = 16;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct Config {
    #[serde(default = "default_references")]
    references: Vec<ReferenceConfig>,
    #[serde(default = "default_true")]
    report_impact: bool,
    #[serde(default)]
    complete: bool,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct ReferenceConfig {
    #[serde(default)]
    name: Option<String>,
    from: String,
    at: String,
    #[serde(default)]
    to: Option<String>,
    #[serde(default)]
    to_value: Option<ValueTargetConfig>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct ValueTargetConfig {
    document: String,
    at: String,
}

fn default_true() -> bool {
    true
}

/// The defaults, for the example layout: `workflows/*.json`,
/// `connectors/*.{toml,yaml}`, `tables/<schema>/<table>.json`.
fn default_references() -> Vec<ReferenceConfig> {
    let document = |name: &str, from: &str, at: &str, to: &str| ReferenceConfig {
        name: Some(name.into()),
        from: from.into(),
        at: at.into(),
        to: Some(to.into()),
        to_value: None,
    };
    vec![
        document(
            "step-connector",
            "workflows/*",
            "/steps/*/connector",
            "connectors/{}.*",
        ),
        document(
            "step-workflow",
            "workflows/*",
            "/steps/*/workflow",
            "workflows/{}.*",
        ),
        document(
            "connector-table",
            "connectors/*",
            "/table",
            "tables/{}.json",
        ),
        ReferenceConfig {
            name: Some("mapped-column".into()),
            from: "connectors/*".into(),
            at: "/mappings/*/column".into(),
            to: None,
            to_value: Some(ValueTargetConfig {
                document: "tables/{/table}.json".into(),
                at: "/columns/*/name".into(),
            }),
        },
    ]
}

/// One token of a pointer pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Token {
    /// `*`: every member of an object, every item of an array.
    Any,
    Key(String),
}

/// A JSON pointer whose `*` tokens match every member or item.
#[derive(Debug, Clone)]
struct PointerPattern {
    text: String,
    tokens: Vec<Token>,
}

impl PointerPattern {
    fn parse(text: &str, what: &str) -> Result<PointerPattern, String> {
        let Some(rest) = text.strip_prefix('/') else {
            return Err(format!(
                "invalid config: {what} {text:?} is not a JSON pointer (starts with `/`)"
            ));
        };
        let tokens: Vec<Token> = rest
            .split('/')
            .map(|token| match token {
                "*" => Token::Any,
                _ => Token::Key(token.replace("~1", "/").replace("~0", "~")),
            })
            .collect();
        if tokens.len() > MAX_POINTER_TOKENS {
            return Err(format!(
                "invalid config: {what} {text:?} has more than {MAX_POINTER_TOKENS} tokens"
            ));
        }
        Ok(PointerPattern {
            text: text.to_owned(),
            tokens,
        })
    }

    fn wildcards(&self) -> usize {
        self.tokens.iter().filter(|t| **t == Token::Any).count()
    }

    /// Visits every value the pattern matches in `root`, with where it is
    /// in `trail`. Iterative: no recursion on document data; nothing is
    /// allocated per value but one trail entry.
    fn walk<'v>(&self, root: &'v Value, mut visit: impl FnMut(&'v Value, &[TrailStep<'v>], usize)) {
        let mut trail: Vec<TrailStep<'v>> = vec![(0, Step::Index(0))];
        let mut stack = vec![(root, 0usize, 0usize)];
        while let Some((value, depth, at)) = stack.pop() {
            let Some(token) = self.tokens.get(depth) else {
                visit(value, &trail, at);
                continue;
            };
            match (token, value) {
                (Token::Key(key), Value::Object(map)) => {
                    if let Some((key, child)) = map.get_key_value(key) {
                        trail.push((at, Step::Key(key)));
                        stack.push((child, depth + 1, trail.len() - 1));
                    }
                }
                (Token::Key(key), Value::Array(items)) => {
                    if let Some((index, child)) = key
                        .parse::<usize>()
                        .ok()
                        .and_then(|i| Some((i, items.get(i)?)))
                    {
                        trail.push((at, Step::Index(index)));
                        stack.push((child, depth + 1, trail.len() - 1));
                    }
                }
                (Token::Any, Value::Object(map)) => {
                    // Reversed: the stack then yields members in order.
                    for (key, child) in map.iter().rev() {
                        trail.push((at, Step::Key(key)));
                        stack.push((child, depth + 1, trail.len() - 1));
                    }
                }
                (Token::Any, Value::Array(items)) => {
                    for (index, child) in items.iter().enumerate().rev() {
                        trail.push((at, Step::Index(index)));
                        stack.push((child, depth + 1, trail.len() - 1));
                    }
                }
                _ => {}
            }
        }
    }

    /// Every value the pattern matches in `root` that names something: its
    /// pointer, and what each `*` token stood for.
    fn matches(&self, root: &Value) -> Vec<PointerMatch> {
        let mut found = Vec::new();
        self.walk(root, |value, trail, at| {
            let Some(name) = name_of(value) else {
                return;
            };
            let mut steps = Vec::with_capacity(self.tokens.len());
            let mut node = at;
            while node != 0 {
                let Some((parent, step)) = trail.get(node) else {
                    break;
                };
                steps.push(step);
                node = *parent;
            }
            steps.reverse();
            let mut pointer = String::new();
            let mut bindings = Vec::new();
            for (token, step) in self.tokens.iter().zip(steps) {
                let text = match step {
                    Step::Key(key) => (*key).to_owned(),
                    Step::Index(index) => index.to_string(),
                };
                pointer.push('/');
                pointer.push_str(&pointer::escape(&text));
                if *token == Token::Any {
                    bindings.push(text);
                }
            }
            found.push(PointerMatch {
                pointer,
                name,
                bindings,
            });
        });
        found
    }

    /// The names among the values the pattern matches in `root`.
    fn names(&self, root: &Value) -> HashSet<String> {
        let mut names = HashSet::new();
        self.walk(root, |value, _, _| {
            if let Some(name) = name_of(value) {
                names.insert(name);
            }
        });
        names
    }

    /// The concrete pointer with the `*` tokens replaced by `bindings`, in
    /// order; `None` when there are too few.
    fn bind(&self, bindings: &[String]) -> Option<String> {
        let mut bound = bindings.iter();
        let mut at = String::new();
        for token in &self.tokens {
            match token {
                Token::Any => at = pointer::join(&at, bound.next()?),
                Token::Key(key) => at = pointer::join(&at, key),
            }
        }
        Some(at)
    }
}

/// One step of a walk: a member's key or an item's index.
enum Step<'v> {
    Key(&'v str),
    Index(usize),
}

/// A walk's trail entry: (index of the parent entry, the step from it).
type TrailStep<'v> = (usize, Step<'v>);

/// A value that names something, found by a pointer pattern.
struct PointerMatch {
    pointer: String,
    name: String,
    bindings: Vec<String>,
}

/// The text a value stands for as a name: strings as they are, integers in
/// decimal; nothing else names a document or a value.
fn name_of(value: &Value) -> Option<String> {
    match value {
        Value::String(text) if !text.is_empty() => Some(text.clone()),
        Value::Number(number) if number.is_i64() || number.is_u64() => Some(number.to_string()),
        _ => None,
    }
}

/// A document path pattern with at most one placeholder: `prefix{}suffix`,
/// where prefix and suffix are path patterns (`*` any run of characters)
/// and the placeholder is filled literally.
#[derive(Debug, Clone)]
struct PathTemplate {
    prefix: String,
    /// `None`: no placeholder, `prefix` is the whole pattern.
    suffix: Option<String>,
}

impl PathTemplate {
    /// Splits `text` at its placeholder; returns the template and what was
    /// between the braces.
    fn parse(text: &str, what: &str) -> Result<(PathTemplate, Option<String>), String> {
        let invalid = |why: &str| Err(format!("invalid config: {what} {text:?} {why}"));
        let Some(open) = text.find('{') else {
            if text.contains('}') {
                return invalid("has a `}` without `{`");
            }
            return Ok((
                PathTemplate {
                    prefix: text.to_owned(),
                    suffix: None,
                },
                None,
            ));
        };
        let Some(close) = text[open..].find('}').map(|at| at + open) else {
            return invalid("has a `{` without `}`");
        };
        let suffix = &text[close + 1..];
        if suffix.contains(['{', '}']) || text[..open].contains('}') {
            return invalid("has more than one placeholder");
        }
        Ok((
            PathTemplate {
                prefix: text[..open].to_owned(),
                suffix: Some(suffix.to_owned()),
            },
            Some(text[open + 1..close].to_owned()),
        ))
    }

    /// The path with the placeholder filled, for messages.
    fn filled(&self, value: &str) -> String {
        match &self.suffix {
            Some(suffix) => format!("{}{value}{suffix}", self.prefix),
            None => self.prefix.clone(),
        }
    }
}

/// Every `end` such that `text[..end]` matches `pattern` (`*` any run).
fn prefix_ends(pattern: &str, text: &str) -> Vec<usize> {
    let parts: Vec<&str> = pattern.split('*').collect();
    let Some((last, rest)) = parts.split_last() else {
        return Vec::new();
    };
    let Some((first, middle)) = rest.split_first() else {
        // No `*`: only the literal itself.
        return if text.starts_with(last) {
            vec![last.len()]
        } else {
            Vec::new()
        };
    };
    let Some(mut at) = text.strip_prefix(first).map(|_| first.len()) else {
        return Vec::new();
    };
    // Leftmost matches of the middle parts leave the most room: a `*` glob
    // matches if and only if the greedy leftmost placement does.
    for part in middle {
        match text[at..].find(part) {
            Some(found) => at += found + part.len(),
            None => return Vec::new(),
        }
    }
    (at + last.len()..=text.len())
        .filter(|&end| text.is_char_boundary(end) && text[..end].ends_with(last))
        .collect()
}

/// Every `start` such that `text[start..]` matches `pattern` (`*` any run).
fn suffix_starts(pattern: &str, text: &str) -> Vec<usize> {
    let parts: Vec<&str> = pattern.split('*').collect();
    let Some((first, rest)) = parts.split_first() else {
        return Vec::new();
    };
    let Some((last, middle)) = rest.split_last() else {
        return if text.ends_with(first) {
            vec![text.len() - first.len()]
        } else {
            Vec::new()
        };
    };
    if !text.ends_with(last) {
        return Vec::new();
    }
    let mut at = text.len() - last.len();
    for part in middle.iter().rev() {
        match text[..at].rfind(part) {
            Some(found) => at = found,
            None => return Vec::new(),
        }
    }
    (0..=at.saturating_sub(first.len()))
        .filter(|&start| {
            start + first.len() <= at
                && text.is_char_boundary(start)
                && text[start..].starts_with(first)
        })
        .collect()
}

/// The documents a template names, by the value filling its placeholder:
/// every way a path splits around the placeholder is computed once, so a
/// lookup costs a hash, whatever the number of references.
struct TemplateIndex {
    by_value: HashMap<String, Vec<usize>>,
    /// Paths with too many splits: matched value by value.
    fallback: Vec<Splits>,
    /// A template without a placeholder: the documents it matches.
    fixed: Vec<usize>,
}

impl TemplateIndex {
    fn new(template: &PathTemplate, paths: &[&str]) -> TemplateIndex {
        let mut index = TemplateIndex {
            by_value: HashMap::new(),
            fallback: Vec::new(),
            fixed: Vec::new(),
        };
        let Some(suffix) = &template.suffix else {
            index.fixed = (0..paths.len())
                .filter(|&i| glob::matches(&template.prefix, paths[i]))
                .collect();
            return index;
        };
        for (doc, path) in paths.iter().enumerate() {
            let starts = prefix_ends(&template.prefix, path);
            if starts.is_empty() {
                continue;
            }
            let ends = suffix_starts(suffix, path);
            let splits = starts
                .iter()
                .flat_map(|&s| ends.iter().filter(move |&&e| e > s).map(move |&e| (s, e)));
            let splits: Vec<(usize, usize)> = splits.take(MAX_CAPTURES_PER_PATH + 1).collect();
            if splits.len() > MAX_CAPTURES_PER_PATH {
                index.fallback.push(Splits {
                    doc,
                    starts,
                    ends: ends.into_iter().collect(),
                });
                continue;
            }
            for (start, end) in splits {
                let entry = index
                    .by_value
                    .entry(path[start..end].to_owned())
                    .or_default();
                if entry.last() != Some(&doc) {
                    entry.push(doc);
                }
            }
        }
        index
    }

    /// The documents `template` filled with `value` names.
    fn lookup(&self, template: &PathTemplate, value: &str, paths: &[&str]) -> Vec<usize> {
        if template.suffix.is_none() {
            return self.fixed.clone();
        }
        let mut found = self.by_value.get(value).cloned().unwrap_or_default();
        found.extend(
            self.fallback
                .iter()
                .filter(|splits| {
                    let path = paths[splits.doc];
                    splits.starts.iter().any(|&start| {
                        path.get(start..)
                            .is_some_and(|rest| rest.starts_with(value))
                            && splits.ends.contains(&(start + value.len()))
                    })
                })
                .map(|splits| splits.doc),
        );
        found
    }
}

/// Where a path may split around a placeholder: where its value may
/// start (after the prefix) and end (before the suffix).
struct Splits {
    doc: usize,
    starts: Vec<usize>,
    ends: HashSet<usize>,
}

/// What a reference must resolve to.
enum Target {
    /// A document: the template filled with the referring value.
    Document { template: PathTemplate },
    /// A value inside another document.
    Value {
        document: PathTemplate,
        /// Where in the referring document the value filling `document` is;
        /// `None` when `document` has no placeholder.
        filled_from: Option<PointerPattern>,
        at: PointerPattern,
    },
}

/// One declared reference, checked.
struct Reference {
    name: String,
    from: String,
    at: PointerPattern,
    target: Target,
}

impl Reference {
    fn new(config: ReferenceConfig) -> Result<Reference, String> {
        let at = PointerPattern::parse(&config.at, "at")?;
        let name = config
            .name
            .unwrap_or_else(|| format!("{}#{}", config.from, config.at));
        let target = match (config.to, config.to_value) {
            (Some(to), None) => {
                let (template, inside) = PathTemplate::parse(&to, "to")?;
                if inside.as_deref() != Some("") {
                    return Err(format!(
                        "invalid config: to {to:?} needs exactly one `{{}}` for the referring value"
                    ));
                }
                Target::Document { template }
            }
            (None, Some(value)) => {
                let (document, inside) = PathTemplate::parse(&value.document, "to-value.document")?;
                let filled_from = match inside {
                    None => None,
                    Some(inside) => {
                        let pattern =
                            PointerPattern::parse(&inside, "the placeholder of to-value.document")?;
                        if pattern.wildcards() > at.wildcards() {
                            return Err(format!(
                                "invalid config: the placeholder {inside:?} has more `*` tokens than at {:?}",
                                config.at
                            ));
                        }
                        Some(pattern)
                    }
                };
                Target::Value {
                    document,
                    filled_from,
                    at: PointerPattern::parse(&value.at, "to-value.at")?,
                }
            }
            _ => {
                return Err(format!(
                    "invalid config: reference {name:?} needs exactly one of `to` and `to-value`"
                ));
            }
        };
        Ok(Reference {
            name,
            from: config.from,
            at,
            target,
        })
    }

    fn template(&self) -> &PathTemplate {
        match &self.target {
            Target::Document { template } => template,
            Target::Value { document, .. } => document,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
enum Side {
    Before,
    After,
}

/// A document of the change, parsed on demand, each side at most once.
struct Entry<'c> {
    document: &'c Document,
    /// Before and after are the same bytes: parsed once, walked once.
    same_sides: bool,
    before: OnceCell<Option<Parsed>>,
    after: OnceCell<Option<Parsed>>,
}

impl Entry<'_> {
    fn exists(&self, side: Side) -> bool {
        match side {
            Side::Before => self.document.before.is_some(),
            Side::After => self.document.after.is_some(),
        }
    }

    /// The parsed side; `None` when absent, unstructured or unparsable (a
    /// syntax error is `well-formed`'s finding, not this validator's).
    fn parsed(&self, side: Side) -> Option<&Parsed> {
        // An unchanged document is parsed once for both sides.
        if side == Side::Before && self.same_sides {
            return self.parsed(Side::After);
        }
        let (cell, parse): (_, fn(&Document) -> _) = match side {
            Side::Before => (&self.before, Document::parse_before),
            Side::After => (&self.after, Document::parse_after),
        };
        cell.get_or_init(|| parse(self.document).and_then(Result::ok))
            .as_ref()
    }
}

/// How one reference fares on one side of the change.
enum Resolution {
    Resolved,
    /// Cannot be judged: its target is outside the change, or the document
    /// that would hold the value does not parse.
    Unknown,
    Dangling(String),
}

/// One reference found in a referring document.
struct Found {
    reference: usize,
    pointer: String,
    value: String,
    /// The documents it refers to (the value's document, for a value
    /// reference), on either side of the change.
    targets: Vec<usize>,
    /// For a value reference: the path its document template was filled to.
    target_path: String,
    resolution: Resolution,
}

/// Everything the checks share: the documents, the declared references and
/// their indexes, and caches of the values found in target documents.
struct Lineage<'c> {
    entries: Vec<Entry<'c>>,
    paths: Vec<&'c str>,
    references: Vec<Reference>,
    indexes: Vec<TemplateIndex>,
    /// (reference, document, side) → the values at the target pointer.
    values: HashMap<(usize, usize, Side), HashSet<String>>,
    /// (reference, value filling its template) → the documents it names.
    lookups: HashMap<(usize, String), Vec<usize>>,
    complete: bool,
}

impl<'c> Lineage<'c> {
    fn new(change: &'c Change, references: Vec<Reference>, complete: bool) -> Lineage<'c> {
        let paths: Vec<&str> = change.documents.iter().map(|d| d.path.as_str()).collect();
        let indexes = references
            .iter()
            .map(|reference| TemplateIndex::new(reference.template(), &paths))
            .collect();
        Lineage {
            entries: change
                .documents
                .iter()
                .map(|document| Entry {
                    document,
                    same_sides: document.before == document.after,
                    before: OnceCell::new(),
                    after: OnceCell::new(),
                })
                .collect(),
            paths,
            references,
            indexes,
            values: HashMap::new(),
            lookups: HashMap::new(),
            complete,
        }
    }

    /// Every reference `doc` makes on `side`, each resolved on that side
    /// when `resolve` is true (else left `Unknown`: for a caller that only
    /// needs to know which references there are).
    fn references_of(&mut self, doc: usize, side: Side, resolve: bool) -> Vec<Found> {
        let mut found = Vec::new();
        for reference in 0..self.references.len() {
            if !glob::matches(&self.references[reference].from, self.paths[doc]) {
                continue;
            }
            let Some(parsed) = self.entries[doc].parsed(side) else {
                continue;
            };
            let mut pending = Vec::new();
            for matched in self.references[reference].at.matches(&parsed.value) {
                let value = matched.name;
                let (template_value, target_path) = match &self.references[reference].target {
                    Target::Document { template } => (Some(value.clone()), template.filled(&value)),
                    Target::Value {
                        document,
                        filled_from,
                        ..
                    } => match filled_from {
                        None => (None, document.filled("")),
                        Some(from) => {
                            let filled = from
                                .bind(&matched.bindings)
                                .and_then(|at| parsed.get(&at))
                                .and_then(name_of);
                            let Some(filled) = filled else {
                                // The document naming the values is not
                                // named: nothing to check against.
                                continue;
                            };
                            let path = document.filled(&filled);
                            (Some(filled), path)
                        }
                    },
                };
                let template_value = template_value.unwrap_or_default();
                let targets = match self.lookups.get(&(reference, template_value.clone())) {
                    Some(targets) => targets.clone(),
                    None => {
                        let targets = self.indexes[reference].lookup(
                            self.references[reference].template(),
                            &template_value,
                            &self.paths,
                        );
                        self.lookups
                            .insert((reference, template_value), targets.clone());
                        targets
                    }
                };
                pending.push((matched.pointer, value, targets, target_path));
            }
            for (pointer, value, targets, target_path) in pending {
                let resolution = if resolve {
                    self.resolve(reference, &value, &targets, &target_path, side)
                } else {
                    Resolution::Unknown
                };
                found.push(Found {
                    reference,
                    pointer,
                    value,
                    targets,
                    target_path,
                    resolution,
                });
            }
        }
        found
    }

    fn resolve(
        &mut self,
        reference: usize,
        value: &str,
        targets: &[usize],
        target_path: &str,
        side: Side,
    ) -> Resolution {
        let state = match side {
            Side::Before => "did not exist before the change",
            Side::After => "does not exist after the change",
        };
        if targets.is_empty() {
            return if self.complete {
                Resolution::Dangling(format!("{} {state}", bounded(target_path)))
            } else {
                Resolution::Unknown
            };
        }
        let present: Vec<usize> = targets
            .iter()
            .copied()
            .filter(|&t| self.entries[t].exists(side))
            .collect();
        if present.is_empty() {
            let target = self.paths[targets[0]];
            let why = match (side, self.entries[targets[0]].document.status) {
                (Side::After, Status::Deleted) => "is deleted by the change".to_owned(),
                (Side::Before, Status::Added) => "is added only by the change".to_owned(),
                _ => state.to_owned(),
            };
            return Resolution::Dangling(format!("{} {why}", bounded(target)));
        }
        let Target::Value { at, .. } = &self.references[reference].target else {
            return Resolution::Resolved;
        };
        let at = at.clone();
        let mut judged = false;
        for &target in &present {
            let key = (reference, target, side);
            if !self.values.contains_key(&key) {
                let Some(parsed) = self.entries[target].parsed(side) else {
                    continue;
                };
                let values = at.names(&parsed.value);
                self.values.insert(key, values);
            }
            judged = true;
            if self
                .values
                .get(&key)
                .is_some_and(|values| values.contains(value))
            {
                return Resolution::Resolved;
            }
        }
        if !judged {
            return Resolution::Unknown;
        }
        Resolution::Dangling(format!(
            "no {} in {} is {}",
            bounded(&at.text),
            self.paths[present[0]],
            shown(value)
        ))
    }
}

/// `value` quoted for a message: escaped to one line and cut to a bound.
fn shown(value: &str) -> String {
    let mut cut: String = value.chars().take(MAX_SHOWN_VALUE_CHARS).collect();
    if cut.len() < value.len() {
        cut.push('…');
    }
    format!("{cut:?}")
}

/// Text from a document or the config, cut to a bound, on one line.
fn bounded(text: &str) -> String {
    let mut cut: String = text
        .chars()
        .take(2 * MAX_SHOWN_VALUE_CHARS)
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    if cut.len() < text.len() {
        cut.push('…');
    }
    cut
}

/// Documents joined by arrows, the middle left out past a bound.
fn chain(paths: &[&str]) -> String {
    if paths.len() <= MAX_SHOWN_PATH_DOCUMENTS {
        return paths
            .iter()
            .map(|p| bounded(p))
            .collect::<Vec<_>>()
            .join(" → ");
    }
    let head = MAX_SHOWN_PATH_DOCUMENTS / 2;
    let tail = MAX_SHOWN_PATH_DOCUMENTS - head;
    let mut shown: Vec<String> = paths[..head].iter().map(|p| bounded(p)).collect();
    shown.push(format!("({} more)", paths.len() - head - tail));
    shown.extend(paths[paths.len() - tail..].iter().map(|p| bounded(p)));
    shown.join(" → ")
}

fn status_word(status: Status) -> &'static str {
    match status {
        Status::Added => "added",
        Status::Modified => "modified",
        Status::Deleted => "deleted",
        Status::Unchanged => "unchanged",
    }
}

/// Findings of one kind, capped: past the cap they are counted in one
/// closing finding of the same rule and severity.
struct Capped {
    rule: &'static str,
    severity: Severity,
    findings: Vec<Finding>,
    dropped: usize,
}

impl Capped {
    fn new(rule: &'static str, severity: Severity) -> Capped {
        Capped {
            rule,
            severity,
            findings: Vec::new(),
            dropped: 0,
        }
    }

    fn is_full(&self) -> bool {
        self.findings.len() >= MAX_FINDINGS_PER_KIND
    }

    fn push(&mut self, make: impl FnOnce(Finding) -> Finding, message: String) {
        if self.is_full() {
            self.dropped += 1;
        } else {
            self.findings
                .push(make(Finding::new(self.rule, self.severity, message)));
        }
    }

    fn count(&self) -> usize {
        self.findings.len() + self.dropped
    }

    fn into_findings(mut self) -> Vec<Finding> {
        if self.dropped > 0 {
            self.findings.push(Finding::new(
                self.rule,
                self.severity,
                format!("{} more not listed", self.dropped),
            ));
        }
        self.findings
    }
}

/// Checks the references of every document the change holds after it, and
/// lists what the change reaches.
pub fn check(change: &Change, config: &str) -> Result<Report, String> {
    let config: Config = parse_config(config)?;
    let references = config
        .references
        .into_iter()
        .map(Reference::new)
        .collect::<Result<Vec<_>, _>>()?;
    let mut lineage = Lineage::new(change, references, config.complete);

    let mut dangling = Capped::new("references/dangling", Severity::Error);
    let mut already = Capped::new("references/already-dangling", Severity::Warning);
    // Document-level edges of the after state: referrer → referred, with
    // the first referring pointer.
    let mut edges: BTreeMap<(usize, usize), String> = BTreeMap::new();
    let mut found_count = 0usize;
    let mut outside = 0usize;
    for doc in 0..lineage.entries.len() {
        if !lineage.entries[doc].exists(Side::After) {
            continue;
        }
        let found = lineage.references_of(doc, Side::After, true);
        found_count += found.len();
        outside += found
            .iter()
            .filter(|f| matches!(f.resolution, Resolution::Unknown))
            .count();
        for reference in &found {
            for &target in &reference.targets {
                edges
                    .entry((doc, target))
                    .or_insert_with(|| reference.pointer.clone());
            }
        }
        let dangles: Vec<&Found> = found
            .iter()
            .filter(|f| matches!(f.resolution, Resolution::Dangling(_)))
            .collect();
        if dangles.is_empty() {
            continue;
        }
        // The references the document made before the change, by
        // (reference, value, target); `None`: the same as after.
        let before: Option<HashSet<(usize, String, String)>> =
            if !lineage.entries[doc].exists(Side::Before) {
                Some(HashSet::new())
            } else if lineage.entries[doc].same_sides {
                None
            } else {
                Some(
                    lineage
                        .references_of(doc, Side::Before, false)
                        .into_iter()
                        .map(|f| (f.reference, f.value, f.target_path))
                        .collect(),
                )
            };
        // A dangling reference that was there before and dangled then too.
        let dangled_before: Vec<bool> = dangles
            .iter()
            .map(|f| {
                let key = (f.reference, f.value.clone(), f.target_path.clone());
                before.as_ref().is_none_or(|keys| keys.contains(&key))
                    && matches!(
                        lineage.resolve(
                            f.reference,
                            &f.value,
                            &f.targets,
                            &f.target_path,
                            Side::Before
                        ),
                        Resolution::Dangling(_)
                    )
            })
            .collect();
        let path = lineage.paths[doc];
        let parsed = lineage.entries[doc].parsed(Side::After);
        for (found, dangled_before) in dangles.into_iter().zip(dangled_before) {
            let Resolution::Dangling(why) = &found.resolution else {
                continue;
            };
            let name = bounded(&lineage.references[found.reference].name);
            let locate = |f: Finding| f.at_value(path, &found.pointer, parsed);
            if dangled_before {
                already.push(
                    |f| {
                        locate(f).hint(
                            "this reference was dangling before the change too; fix it separately",
                        )
                    },
                    format!(
                        "{name}: {} does not resolve, as before the change: {why}",
                        shown(&found.value)
                    ),
                );
            } else {
                dangling.push(
                    |f| {
                        locate(f).hint(
                            "restore what it names, or change this reference in the same change",
                        )
                    },
                    format!("{name}: {} does not resolve: {why}", shown(&found.value)),
                );
            }
        }
    }

    let mut impact = Capped::new("references/impact", Severity::Info);
    if config.report_impact {
        report_impact(&lineage, &edges, &mut impact);
    }
    let cycles = report_cycles(&lineage, &edges);

    let summary = format!(
        "{found_count} reference(s), {outside} not judged (outside the change), {} dangling, {} already dangling, {} impacted, {} cycle(s)",
        dangling.count(),
        already.count(),
        impact.count(),
        cycles.len()
    );
    let mut findings = dangling.into_findings();
    findings.extend(already.into_findings());
    findings.extend(impact.into_findings());
    findings.extend(cycles);
    Ok(Report::from_findings(findings, summary))
}

/// For each changed document, every document that refers to it directly or
/// transitively (after the change), once, with the shortest path of
/// references. A breadth-first walk with a visited set: cycles end it.
fn report_impact(lineage: &Lineage, edges: &BTreeMap<(usize, usize), String>, impact: &mut Capped) {
    let mut referrers: Vec<Vec<usize>> = vec![Vec::new(); lineage.entries.len()];
    for &(from, to) in edges.keys() {
        if from != to {
            referrers[to].push(from);
        }
    }
    for (changed, entry) in lineage.entries.iter().enumerate() {
        let status = entry.document.status;
        if status == Status::Unchanged || referrers[changed].is_empty() {
            continue;
        }
        // The next document towards `changed`, for each reached one.
        let mut next: HashMap<usize, usize> = HashMap::new();
        let mut queue = VecDeque::from([changed]);
        while let Some(at) = queue.pop_front() {
            for &referrer in &referrers[at] {
                if referrer == changed || next.contains_key(&referrer) {
                    continue;
                }
                next.insert(referrer, at);
                queue.push_back(referrer);
                if impact.is_full() {
                    impact.dropped += 1;
                    continue;
                }
                let mut path = vec![lineage.paths[referrer]];
                let mut step = referrer;
                while let Some(&toward) = next.get(&step) {
                    path.push(lineage.paths[toward]);
                    step = toward;
                    if toward == changed {
                        break;
                    }
                }
                let pointer = edges.get(&(referrer, at)).cloned().unwrap_or_default();
                let parsed = lineage.entries[referrer].parsed(Side::After);
                let depth = path.len() - 1;
                impact.push(
                    |f| f.at_value(lineage.paths[referrer], &pointer, parsed),
                    format!(
                        "reaches {} ({}){}: {}",
                        bounded(lineage.paths[changed]),
                        status_word(status),
                        if depth > 1 { " transitively" } else { "" },
                        chain(&path)
                    ),
                );
            }
        }
    }
}

/// One info finding per cycle of documents that refer to each other (after
/// the change), at its first document by path, with one loop through it.
/// Strongly connected components by Tarjan's algorithm, iteratively.
fn report_cycles(lineage: &Lineage, edges: &BTreeMap<(usize, usize), String>) -> Vec<Finding> {
    let count = lineage.entries.len();
    let mut out: Vec<Vec<usize>> = vec![Vec::new(); count];
    for &(from, to) in edges.keys() {
        out[from].push(to);
    }
    let mut findings = Vec::new();
    for component in strongly_connected(&out) {
        let is_cycle = component.len() > 1 || edges.contains_key(&(component[0], component[0]));
        if !is_cycle {
            continue;
        }
        if findings.len() >= MAX_FINDINGS_PER_KIND {
            break;
        }
        let members: BTreeSet<usize> = component.iter().copied().collect();
        let Some(&start) = members.iter().min_by_key(|&&doc| lineage.paths[doc]) else {
            continue;
        };
        // The shortest loop from `start` back to it, inside the component.
        let mut previous: HashMap<usize, usize> = HashMap::new();
        let mut queue = VecDeque::from([start]);
        let mut closing = None;
        'walk: while let Some(at) = queue.pop_front() {
            for &to in &out[at] {
                if to == start {
                    closing = Some(at);
                    break 'walk;
                }
                if members.contains(&to) && !previous.contains_key(&to) {
                    previous.insert(to, at);
                    queue.push_back(to);
                }
            }
        }
        let mut loop_docs = vec![start];
        let mut at = closing.unwrap_or(start);
        while at != start {
            loop_docs.push(at);
            at = previous.get(&at).copied().unwrap_or(start);
        }
        loop_docs[1..].reverse();
        loop_docs.push(start);
        let path: Vec<&str> = loop_docs.iter().map(|&d| lineage.paths[d]).collect();
        let pointer = edges
            .get(&(start, loop_docs.get(1).copied().unwrap_or(start)))
            .cloned()
            .unwrap_or_default();
        findings.push(
            Finding::new(
                "references/cycle",
                Severity::Info,
                format!(
                    "{} document(s) refer to each other in a cycle: {}",
                    members.len(),
                    chain(&path)
                ),
            )
            .at_value(
                lineage.paths[start],
                &pointer,
                lineage.entries[start].parsed(Side::After),
            )
            .hint("a cycle is allowed; the impact walk visits each document once"),
        );
    }
    findings
}

/// Tarjan's strongly connected components, with an explicit stack.
fn strongly_connected(out: &[Vec<usize>]) -> Vec<Vec<usize>> {
    let count = out.len();
    let mut index = vec![usize::MAX; count];
    let mut low = vec![0usize; count];
    let mut on_stack = vec![false; count];
    let mut stack = Vec::new();
    let mut components = Vec::new();
    let mut next_index = 0;
    for root in 0..count {
        if index[root] != usize::MAX {
            continue;
        }
        // (node, next edge to look at)
        let mut work = vec![(root, 0usize)];
        index[root] = next_index;
        low[root] = next_index;
        next_index += 1;
        stack.push(root);
        on_stack[root] = true;
        while let Some(&mut (node, ref mut edge)) = work.last_mut() {
            if let Some(&to) = out[node].get(*edge) {
                *edge += 1;
                if index[to] == usize::MAX {
                    index[to] = next_index;
                    low[to] = next_index;
                    next_index += 1;
                    stack.push(to);
                    on_stack[to] = true;
                    work.push((to, 0));
                } else if on_stack[to] {
                    low[node] = low[node].min(index[to]);
                }
                continue;
            }
            work.pop();
            if let Some(&(parent, _)) = work.last() {
                low[parent] = low[parent].min(low[node]);
            }
            if low[node] == index[node] {
                let mut component = Vec::new();
                while let Some(member) = stack.pop() {
                    on_stack[member] = false;
                    component.push(member);
                    if member == node {
                        break;
                    }
                }
                components.push(component);
            }
        }
    }
    components
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Outcome;

    fn doc(path: &str, before: Option<&str>, after: Option<&str>) -> Document {
        let media_type = match path.rsplit('.').next() {
            Some("yaml") => "application/yaml",
            Some("toml") => "application/toml",
            _ => "application/json",
        };
        Document::new(
            path,
            media_type,
            before.map(|t| t.as_bytes().to_vec()),
            after.map(|t| t.as_bytes().to_vec()),
        )
    }

    fn change(mut documents: Vec<Document>) -> Change {
        documents.sort_by(|a, b| a.path.cmp(&b.path));
        Change {
            documents,
            metrics: Default::default(),
        }
    }

    /// (rule, document, pointer) of each finding.
    fn located(report: &Report) -> Vec<(&str, &str, &str)> {
        report
            .findings
            .iter()
            .map(|f| {
                let location = f.location.as_ref();
                (
                    f.rule.as_str(),
                    location.map_or("", |l| l.document.as_str()),
                    location.and_then(|l| l.pointer.as_deref()).unwrap_or(""),
                )
            })
            .collect()
    }

    const WORKFLOW: &str = r#"{"name": "sync", "steps": [
  {"id": "a", "connector": "crm"},
  {"id": "b", "connector": "erp"}
]}"#;
    const CRM: &str = "name = \"crm\"\n";
    const ERP: &str = "name = \"erp\"\n";

    #[test]
    fn a_deleted_connector_still_used_fails_at_the_referring_step() {
        let change = change(vec![
            doc("workflows/sync.json", Some(WORKFLOW), Some(WORKFLOW)),
            doc("connectors/crm.toml", Some(CRM), Some(CRM)),
            doc("connectors/erp.toml", Some(ERP), None),
        ]);
        let report = check(&change, "{}").unwrap();
        assert_eq!(report.outcome, Outcome::Fail);
        let found = located(&report);
        assert!(found.contains(&(
            "references/dangling",
            "workflows/sync.json",
            "/steps/1/connector"
        )));
        let dangling = &report.findings[0];
        assert_eq!(dangling.location.as_ref().and_then(|l| l.line), Some(3));
        assert!(
            dangling.message.contains("connectors/erp.toml is deleted"),
            "{}",
            dangling.message
        );
        assert_eq!(
            found
                .iter()
                .filter(|f| f.0 == "references/dangling")
                .count(),
            1,
            "{found:?}"
        );
    }

    #[test]
    fn a_target_outside_the_change_is_not_judged_unless_the_change_is_complete() {
        let change = change(vec![doc("workflows/sync.json", None, Some(WORKFLOW))]);
        assert_eq!(check(&change, "{}").unwrap().outcome, Outcome::Pass);
        let report = check(&change, r#"{"complete": true}"#).unwrap();
        assert_eq!(report.outcome, Outcome::Fail);
        assert_eq!(
            located(&report),
            [
                (
                    "references/dangling",
                    "workflows/sync.json",
                    "/steps/0/connector"
                ),
                (
                    "references/dangling",
                    "workflows/sync.json",
                    "/steps/1/connector"
                ),
            ]
        );
    }

    #[test]
    fn a_reference_dangling_before_the_change_only_warns() {
        let before = r#"{"steps": [{"connector": "gone"}]}"#;
        let after = r#"{"steps": [{"connector": "gone", "x": 1}]}"#;
        let change = change(vec![doc("workflows/w.json", Some(before), Some(after))]);
        let report = check(&change, r#"{"complete": true}"#).unwrap();
        assert_eq!(report.outcome, Outcome::Warn);
        assert_eq!(
            located(&report),
            [(
                "references/already-dangling",
                "workflows/w.json",
                "/steps/0/connector"
            )]
        );
    }

    const TABLE_BEFORE: &str =
        r#"{"columns": [{"name": "id"}, {"name": "email"}, {"name": "phone"}]}"#;
    const TABLE_AFTER: &str = r#"{"columns": [{"name": "id"}, {"name": "email"}]}"#;
    const CONNECTOR: &str = "name: crm\ntable: crm/customers\nmappings:\n  - field: mail\n    column: email\n  - field: tel\n    column: phone\n";

    #[test]
    fn a_dropped_column_still_mapped_fails_at_the_mapping_in_yaml() {
        let change = change(vec![
            doc("connectors/crm.yaml", Some(CONNECTOR), Some(CONNECTOR)),
            doc(
                "tables/crm/customers.json",
                Some(TABLE_BEFORE),
                Some(TABLE_AFTER),
            ),
        ]);
        let report = check(&change, r#"{"report-impact": false}"#).unwrap();
        assert_eq!(report.outcome, Outcome::Fail);
        assert_eq!(
            located(&report),
            [(
                "references/dangling",
                "connectors/crm.yaml",
                "/mappings/1/column"
            )]
        );
        let finding = &report.findings[0];
        assert_eq!(finding.location.as_ref().and_then(|l| l.line), Some(7));
        assert!(finding.message.contains("\"phone\""), "{}", finding.message);
    }

    #[test]
    fn a_change_that_fixes_a_reference_passes() {
        let before = r#"{"steps": [{"connector": "crm-v1"}]}"#;
        let after = r#"{"steps": [{"connector": "crm"}]}"#;
        let change = change(vec![
            doc("workflows/w.json", Some(before), Some(after)),
            doc("connectors/crm.toml", None, Some(CRM)),
        ]);
        let report = check(&change, r#"{"complete": true, "report-impact": false}"#).unwrap();
        assert_eq!(report.outcome, Outcome::Pass, "{:?}", report.findings);
        assert!(report.findings.is_empty());
    }

    #[test]
    fn impact_lists_direct_and_transitive_referrers_once_each() {
        let workflow = r#"{"steps": [{"connector": "crm"}, {"connector": "crm"}]}"#;
        let connector = "name = \"crm\"\ntable = \"crm/customers\"\n";
        let change = change(vec![
            doc("workflows/w.json", Some(workflow), Some(workflow)),
            doc("connectors/crm.toml", Some(connector), Some(connector)),
            doc(
                "tables/crm/customers.json",
                Some(TABLE_BEFORE),
                Some(TABLE_AFTER),
            ),
        ]);
        let report = check(&change, "{}").unwrap();
        assert_eq!(report.outcome, Outcome::Pass);
        assert_eq!(
            located(&report),
            [
                ("references/impact", "connectors/crm.toml", "/table"),
                (
                    "references/impact",
                    "workflows/w.json",
                    "/steps/0/connector"
                ),
            ]
        );
        assert!(
            report.findings[1]
                .message
                .contains("workflows/w.json → connectors/crm.toml → tables/crm/customers.json"),
            "{}",
            report.findings[1].message
        );
    }

    #[test]
    fn documents_in_a_cycle_are_reported_once_and_the_walk_ends() {
        let a = r#"{"steps": [{"workflow": "b"}]}"#;
        let b = r#"{"steps": [{"workflow": "c"}]}"#;
        let c = r#"{"steps": [{"workflow": "a"}], "v": 2}"#;
        let change = change(vec![
            doc("workflows/a.json", Some(a), Some(a)),
            doc("workflows/b.json", Some(b), Some(b)),
            doc("workflows/c.json", Some(a), Some(c)),
        ]);
        let report = check(&change, "{}").unwrap();
        assert_eq!(report.outcome, Outcome::Pass);
        let cycles: Vec<&Finding> = report
            .findings
            .iter()
            .filter(|f| f.rule == "references/cycle")
            .collect();
        assert_eq!(cycles.len(), 1);
        assert!(
            cycles[0].message.contains(
                "workflows/a.json → workflows/b.json → workflows/c.json → workflows/a.json"
            ),
            "{}",
            cycles[0].message
        );
        let impacted: Vec<&str> = located(&report)
            .into_iter()
            .filter(|f| f.0 == "references/impact")
            .map(|f| f.1)
            .collect();
        // Nearest first: b names c, a reaches c through b.
        assert_eq!(impacted, ["workflows/b.json", "workflows/a.json"]);
    }

    #[test]
    fn a_placeholder_with_stars_reads_each_item_of_the_referring_value() {
        let connector = r#"{"mappings": [
  {"table": "crm/customers", "column": "email"},
  {"table": "crm/orders", "column": "email"}
]}"#;
        let orders = r#"{"columns": [{"name": "id"}]}"#;
        let change = change(vec![
            doc("connectors/crm.json", Some(connector), Some(connector)),
            doc(
                "tables/crm/customers.json",
                Some(TABLE_BEFORE),
                Some(TABLE_AFTER),
            ),
            doc("tables/crm/orders.json", Some(orders), Some(orders)),
        ]);
        let config = r#"{"references": [{"from": "connectors/*", "at": "/mappings/*/column",
            "to-value": {"document": "tables/{/mappings/*/table}.json", "at": "/columns/*/name"}}],
            "report-impact": false, "complete": true}"#;
        let report = check(&change, config).unwrap();
        // The orders table never had `email`: already dangling; customers
        // still has it.
        assert_eq!(
            located(&report),
            [(
                "references/already-dangling",
                "connectors/crm.json",
                "/mappings/1/column"
            )]
        );
    }

    #[test]
    fn a_reference_moved_within_a_changed_document_keeps_its_history() {
        let before = r#"{"steps": [{"connector": "gone"}]}"#;
        let after = r#"{"steps": [{"connector": "crm"}, {"connector": "gone"}]}"#;
        let change = change(vec![
            doc("workflows/w.json", Some(before), Some(after)),
            doc("connectors/crm.toml", Some(CRM), Some(CRM)),
        ]);
        let report = check(&change, r#"{"complete": true, "report-impact": false}"#).unwrap();
        assert_eq!(
            located(&report),
            [(
                "references/already-dangling",
                "workflows/w.json",
                "/steps/1/connector"
            )]
        );
    }

    #[test]
    fn unknown_keys_and_malformed_patterns_are_refused() {
        let change = change(Vec::new());
        for config in [
            r#"{"refs": []}"#,
            r#"{"references": [{"from": "a/*", "at": "x", "to": "b/{}"}]}"#,
            r#"{"references": [{"from": "a/*", "at": "/x", "to": "b/c"}]}"#,
            r#"{"references": [{"from": "a/*", "at": "/x", "to": "b/{}/{}"}]}"#,
            r#"{"references": [{"from": "a/*", "at": "/x"}]}"#,
            r#"{"references": [{"from": "a/*", "at": "/x", "to": "b/{}", "to-value": {"document": "t", "at": "/c"}}]}"#,
            r#"{"references": [{"from": "a/*", "at": "/x", "to-value": {"document": "t/{/m/*/t}", "at": "/c"}}]}"#,
        ] {
            assert!(check(&change, config).is_err(), "{config}");
        }
    }

    #[test]
    fn globs_split_paths_around_the_placeholder_every_way() {
        assert_eq!(prefix_ends("tables/", "tables/crm/a.json"), [7]);
        assert_eq!(prefix_ends("t*/", "tables/crm/a.json"), [7, 11]);
        assert_eq!(suffix_starts(".*", "connectors/crm.v2.toml"), [14, 17]);
        assert_eq!(suffix_starts(".json", "tables/a.json"), [8]);
        let (template, _) = PathTemplate::parse("connectors/{}.*", "to").unwrap();
        let paths = [
            "connectors/crm.v2.toml",
            "connectors/erp.yaml",
            "workflows/x.json",
        ];
        let index = TemplateIndex::new(&template, &paths);
        assert_eq!(index.lookup(&template, "crm", &paths), [0]);
        assert_eq!(index.lookup(&template, "crm.v2", &paths), [0]);
        assert_eq!(index.lookup(&template, "erp", &paths), [1]);
        assert!(index.lookup(&template, "x", &paths).is_empty());
        // A path that splits more ways than the index holds is matched
        // value by value, with the same answers.
        let dotted = "connectors/a.b.c.d.e.f.g.h.i.j.k.l.m.n.o.p.q.r.toml";
        let paths = [dotted];
        let index = TemplateIndex::new(&template, &paths);
        assert_eq!(index.fallback.len(), 1);
        assert_eq!(index.lookup(&template, "a", &paths), [0]);
        assert_eq!(index.lookup(&template, "a.b.c", &paths), [0]);
        assert!(index.lookup(&template, "b", &paths).is_empty());
    }

    #[test]
    fn thousands_of_references_in_a_big_document_stay_linear() {
        let steps: Vec<String> = (0..20_000)
            .map(|i| format!(r#"{{"id": "s{i}", "connector": "c{}"}}"#, i % 50))
            .collect();
        let workflow = format!(r#"{{"steps": [{}]}}"#, steps.join(","));
        assert!(workflow.len() > 500_000);
        let mut documents = vec![doc("workflows/big.json", Some(&workflow), Some(&workflow))];
        for i in 0..50 {
            let text = format!("name = \"c{i}\"\n");
            let after = (i != 7).then_some(text.as_str());
            documents.push(doc(&format!("connectors/c{i}.toml"), Some(&text), after));
        }
        let report = check(&change(documents), "{}").unwrap();
        assert_eq!(report.outcome, Outcome::Fail);
        // 400 steps name c7: 200 listed, the rest counted in one finding.
        let dangling: Vec<&Finding> = report
            .findings
            .iter()
            .filter(|f| f.rule == "references/dangling")
            .collect();
        assert_eq!(dangling.len(), MAX_FINDINGS_PER_KIND + 1);
        assert_eq!(
            dangling.last().map(|f| f.message.as_str()),
            Some("200 more not listed")
        );
    }

    #[test]
    fn hostile_values_stay_on_one_bounded_line() {
        let value = format!("evil\n{}", "x".repeat(10_000));
        let workflow = serde_json::json!({"steps": [{"connector": value}]}).to_string();
        let change = change(vec![doc("workflows/w.json", None, Some(&workflow))]);
        let report = check(&change, r#"{"complete": true}"#).unwrap();
        let message = &report.findings[0].message;
        assert!(!message.contains('\n'), "{message}");
        assert!(message.len() < 800, "{}", message.len());
    }
}
