//! Parsing documents (JSON, YAML, TOML) into `serde_json::Value`, with the
//! line and column of every value by JSON pointer. YAML and TOML positions
//! come from their parsers; JSON positions from a scan of the text, made
//! only when a finding asks for one.

use std::collections::HashMap;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicUsize, Ordering};

use serde_json::{Map, Number, Value};
use yaml_rust2::Yaml;
use yaml_rust2::parser::{Event, MarkedEventReceiver, Parser};
use yaml_rust2::scanner::{Marker, TScalarStyle};

use crate::pointer;

/// 1-based line and column (in characters).
pub type Position = (u32, u32);

/// A structured document and where its values are in the text.
#[derive(Debug)]
pub struct Parsed {
    pub value: Value,
    positions: Positions,
}

#[derive(Debug)]
enum Positions {
    /// Looked up in the text: one scan per lookup for the first few, then a
    /// map of every value built once.
    Json {
        text: String,
        lookups: AtomicUsize,
        map: OnceLock<HashMap<String, Position>>,
    },
    Known(HashMap<String, Position>),
}

/// Lookups in a JSON text answered by a targeted scan before the full map
/// is built: a scan costs a fraction of the map (which allocates one
/// pointer per value), so a handful of findings never pays for the map.
const JSON_SCANS_BEFORE_MAP: usize = 8;

/// A document that does not parse, and where.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseError {
    pub message: String,
    pub line: u32,
    pub column: u32,
}

impl Parsed {
    /// Line and column of the value at `pointer` (for an object member: of
    /// its key), when known.
    pub fn position(&self, pointer: &str) -> Option<Position> {
        match &self.positions {
            Positions::Json { text, lookups, map } => {
                if let Some(map) = map.get() {
                    return map.get(pointer).copied();
                }
                if lookups.fetch_add(1, Ordering::Relaxed) < JSON_SCANS_BEFORE_MAP {
                    let offset = json_locate(text, pointer)?;
                    return Some(position_of_offset(text, offset));
                }
                map.get_or_init(|| json_positions(text))
                    .get(pointer)
                    .copied()
            }
            Positions::Known(map) => map.get(pointer).copied(),
        }
    }

    /// The value at `pointer`.
    pub fn get(&self, pointer: &str) -> Option<&Value> {
        self.value.pointer(pointer)
    }
}

/// Parses `bytes` by media type; `Ok(None)` for types that are not
/// structured (text, binary).
pub fn parse(media_type: &str, bytes: &[u8]) -> Result<Option<Parsed>, ParseError> {
    let text = std::str::from_utf8(bytes).map_err(|err| {
        let (line, column) = position_of_offset(&String::from_utf8_lossy(bytes), err.valid_up_to());
        ParseError {
            message: "not valid UTF-8".into(),
            line,
            column,
        }
    })?;
    match media_type {
        "application/json" => parse_json(text).map(Some),
        "application/yaml" => parse_yaml(text).map(Some),
        "application/toml" => parse_toml(text).map(Some),
        _ => Ok(None),
    }
}

pub fn parse_json(text: &str) -> Result<Parsed, ParseError> {
    let value: Value = serde_json::from_str(text).map_err(|err| {
        let message = err.to_string();
        let cause = message
            .split(" at line ")
            .next()
            .unwrap_or(&message)
            .to_owned();
        ParseError {
            message: cause,
            line: clamp(err.line()),
            column: clamp(err.column()),
        }
    })?;
    Ok(Parsed {
        value,
        positions: Positions::Json {
            text: text.to_owned(),
            lookups: AtomicUsize::new(0),
            map: OnceLock::new(),
        },
    })
}

fn clamp(position: usize) -> u32 {
    u32::try_from(position.max(1)).unwrap_or(u32::MAX)
}

/// 1-based line and column of byte `offset` in `text`.
fn position_of_offset(text: &str, offset: usize) -> Position {
    let offset = offset.min(text.len());
    let mut start = offset;
    while !text.is_char_boundary(start) {
        start -= 1;
    }
    let before = &text[..start];
    let line = before.matches('\n').count() + 1;
    let column = before
        .rsplit('\n')
        .next()
        .map(|l| l.chars().count())
        .unwrap_or(0)
        + 1;
    (clamp(line), clamp(column))
}

/// Maps byte offsets to positions with one pass over the text.
struct LineIndex {
    starts: Vec<usize>,
}

impl LineIndex {
    fn new(text: &str) -> LineIndex {
        let mut starts = vec![0];
        starts.extend(text.match_indices('\n').map(|(at, _)| at + 1));
        LineIndex { starts }
    }

    fn position(&self, text: &str, offset: usize) -> Position {
        let line = self.starts.partition_point(|&start| start <= offset).max(1);
        let start = self.starts[line - 1];
        let column = text
            .get(start..offset)
            .map(|s| s.chars().count())
            .unwrap_or(offset - start);
        (clamp(line), clamp(column + 1))
    }
}

/// The byte offset of the value at `pointer` (of its key, for an object
/// member) in a JSON text that serde_json accepted, by walking only the
/// path to it and skipping everything else.
fn json_locate(text: &str, pointer: &str) -> Option<usize> {
    let mut scanner = JsonScanner {
        text,
        bytes: text.as_bytes(),
        at: 0,
        lines: LineIndex { starts: vec![0] },
        map: HashMap::new(),
    };
    scanner.skip_whitespace();
    if pointer.is_empty() {
        return Some(scanner.at);
    }
    let tokens: Vec<String> = pointer
        .strip_prefix('/')?
        .split('/')
        .map(|t| t.replace("~1", "/").replace("~0", "~"))
        .collect();
    let mut found = scanner.at;
    for token in &tokens {
        scanner.skip_whitespace();
        match scanner.bytes.get(scanner.at) {
            Some(b'{') => {
                scanner.at += 1;
                loop {
                    scanner.skip_whitespace();
                    match scanner.bytes.get(scanner.at) {
                        Some(b'"') => {
                            let key_start = scanner.at;
                            let key = scanner.string();
                            scanner.skip_whitespace();
                            scanner.at += 1; // ':'
                            if key == *token {
                                found = key_start;
                                break;
                            }
                            scanner.skip_value();
                        }
                        Some(b',') => scanner.at += 1,
                        _ => return None,
                    }
                }
            }
            Some(b'[') => {
                let wanted: usize = token.parse().ok()?;
                scanner.at += 1;
                let mut index = 0;
                loop {
                    scanner.skip_whitespace();
                    match scanner.bytes.get(scanner.at) {
                        Some(b']') | None => return None,
                        Some(b',') => scanner.at += 1,
                        Some(_) if index == wanted => {
                            found = scanner.at;
                            break;
                        }
                        Some(_) => {
                            scanner.skip_value();
                            index += 1;
                        }
                    }
                }
            }
            _ => return None,
        }
    }
    Some(found)
}

/// Positions of every value of a JSON text that serde_json accepted.
fn json_positions(text: &str) -> HashMap<String, Position> {
    let mut scanner = JsonScanner {
        text,
        bytes: text.as_bytes(),
        at: 0,
        lines: LineIndex::new(text),
        map: HashMap::new(),
    };
    let mut pointer = String::new();
    scanner.value(&mut pointer, true);
    scanner.map
}

/// A walk over valid JSON text recording the offset of each value.
struct JsonScanner<'a> {
    text: &'a str,
    bytes: &'a [u8],
    at: usize,
    lines: LineIndex,
    map: HashMap<String, Position>,
}

impl JsonScanner<'_> {
    fn skip_whitespace(&mut self) {
        while self.bytes.get(self.at).is_some_and(u8::is_ascii_whitespace) {
            self.at += 1;
        }
    }

    fn record(&mut self, pointer: &str, offset: usize) {
        let position = self.lines.position(self.text, offset);
        self.map.entry(pointer.to_owned()).or_insert(position);
    }

    /// Scans one value at the cursor; `record` is false when the caller has
    /// already recorded this pointer (at the member's key).
    fn value(&mut self, pointer: &mut String, record: bool) {
        self.skip_whitespace();
        if record {
            self.record(pointer, self.at);
        }
        match self.bytes.get(self.at) {
            Some(b'{') => {
                self.at += 1;
                loop {
                    self.skip_whitespace();
                    match self.bytes.get(self.at) {
                        Some(b'}') | None => {
                            self.at += 1;
                            return;
                        }
                        Some(b',') => self.at += 1,
                        Some(b'"') => {
                            let key_start = self.at;
                            let key = self.string();
                            let len = pointer.len();
                            pointer.push('/');
                            pointer.push_str(&pointer::escape(&key));
                            self.record(pointer, key_start);
                            self.skip_whitespace();
                            if self.bytes.get(self.at) == Some(&b':') {
                                self.at += 1;
                            }
                            self.value(pointer, false);
                            pointer.truncate(len);
                        }
                        Some(_) => self.at += 1,
                    }
                }
            }
            Some(b'[') => {
                self.at += 1;
                let mut index = 0usize;
                loop {
                    self.skip_whitespace();
                    match self.bytes.get(self.at) {
                        Some(b']') | None => {
                            self.at += 1;
                            return;
                        }
                        Some(b',') => self.at += 1,
                        Some(_) => {
                            let len = pointer.len();
                            pointer.push('/');
                            pointer.push_str(&index.to_string());
                            self.value(pointer, true);
                            pointer.truncate(len);
                            index += 1;
                        }
                    }
                }
            }
            Some(b'"') => {
                self.string();
            }
            Some(_) => {
                while self
                    .bytes
                    .get(self.at)
                    .is_some_and(|b| !matches!(b, b',' | b']' | b'}') && !b.is_ascii_whitespace())
                {
                    self.at += 1;
                }
            }
            None => {}
        }
    }

    /// Moves the cursor past one value without recording anything.
    fn skip_value(&mut self) {
        self.skip_whitespace();
        let mut depth = 0usize;
        while let Some(&byte) = self.bytes.get(self.at) {
            match byte {
                b'"' => {
                    self.at += 1;
                    while let Some(&b) = self.bytes.get(self.at) {
                        self.at += 1;
                        match b {
                            b'\\' => self.at += 1,
                            b'"' => break,
                            _ => {}
                        }
                    }
                    if depth == 0 {
                        return;
                    }
                    continue;
                }
                b'{' | b'[' => depth += 1,
                b'}' | b']' => {
                    if depth == 0 {
                        return;
                    }
                    depth -= 1;
                    if depth == 0 {
                        self.at += 1;
                        return;
                    }
                }
                b',' if depth == 0 => return,
                b if depth == 0 && b.is_ascii_whitespace() => return,
                _ => {}
            }
            self.at += 1;
        }
    }

    /// Scans a string at the cursor (on its opening quote) and returns it
    /// unescaped.
    fn string(&mut self) -> String {
        let start = self.at;
        self.at += 1;
        let mut escaped = false;
        while let Some(&byte) = self.bytes.get(self.at) {
            self.at += 1;
            match byte {
                b'\\' => {
                    escaped = true;
                    self.at += 1;
                }
                b'"' => break,
                _ => {}
            }
        }
        let raw = self.text.get(start..self.at).unwrap_or_default();
        if escaped {
            serde_json::from_str(raw).unwrap_or_default()
        } else {
            raw.get(1..raw.len().saturating_sub(1))
                .unwrap_or_default()
                .to_owned()
        }
    }
}

pub fn parse_yaml(text: &str) -> Result<Parsed, ParseError> {
    let mut builder = YamlBuilder::default();
    let mut parser = Parser::new_from_str(text);
    parser.load(&mut builder, false).map_err(|err| ParseError {
        message: err.info().to_owned(),
        line: clamp(err.marker().line()),
        column: clamp(err.marker().col() + 1),
    })?;
    if let Some(message) = builder.error {
        return Err(ParseError {
            message,
            line: 1,
            column: 1,
        });
    }
    Ok(Parsed {
        value: builder.root.unwrap_or(Value::Null),
        positions: Positions::Known(builder.positions),
    })
}

/// Deepest YAML nesting accepted, as serde_json's own limit for JSON: the
/// rules walk documents recursively, and a deeper one would exhaust the
/// wasm stack.
const MAX_YAML_DEPTH: usize = 128;

/// Builds a `serde_json::Value` and the positions map from YAML events.
#[derive(Default)]
struct YamlBuilder {
    stack: Vec<Frame>,
    root: Option<Value>,
    anchors: HashMap<usize, Value>,
    positions: HashMap<String, Position>,
    /// The pointer of the node being built.
    pointer: String,
    error: Option<String>,
}

enum Frame {
    Map {
        map: Map<String, Value>,
        key: Option<String>,
        anchor: usize,
        /// Length of `pointer` at this container.
        base: usize,
    },
    Seq {
        items: Vec<Value>,
        anchor: usize,
        base: usize,
    },
}

fn marker_position(mark: Marker) -> Position {
    (clamp(mark.line()), clamp(mark.col() + 1))
}

impl YamlBuilder {
    /// Sets `pointer` to where the next value goes and records its position
    /// (an object member's position is its key's, already recorded).
    fn enter_value(&mut self, mark: Marker) {
        match self.stack.last() {
            Some(Frame::Seq { items, base, .. }) => {
                let index = items.len();
                self.pointer.truncate(*base);
                self.pointer.push('/');
                self.pointer.push_str(&index.to_string());
                self.positions
                    .entry(self.pointer.clone())
                    .or_insert(marker_position(mark));
            }
            Some(Frame::Map { base, key, .. }) => {
                self.pointer.truncate(*base);
                if let Some(key) = key {
                    self.pointer.push('/');
                    self.pointer.push_str(&pointer::escape(key));
                }
            }
            None => {
                self.pointer.clear();
                self.positions
                    .entry(String::new())
                    .or_insert(marker_position(mark));
            }
        }
    }

    fn finish_value(&mut self, value: Value, anchor: usize) {
        if anchor > 0 {
            self.anchors.insert(anchor, value.clone());
        }
        match self.stack.last_mut() {
            Some(Frame::Seq { items, .. }) => items.push(value),
            Some(Frame::Map { map, key, .. }) => {
                if let Some(key) = key.take() {
                    map.insert(key, value);
                }
            }
            None => {
                if self.root.is_none() {
                    self.root = Some(value);
                }
            }
        }
    }

    /// Whether the next scalar in the current mapping is a key.
    fn expects_key(&self) -> bool {
        matches!(self.stack.last(), Some(Frame::Map { key: None, .. }))
    }
}

impl MarkedEventReceiver for YamlBuilder {
    fn on_event(&mut self, event: Event, mark: Marker) {
        if self.error.is_some() {
            return;
        }
        match event {
            Event::Scalar(text, style, anchor, tag) => {
                if self.expects_key() {
                    if let Some(Frame::Map { map, key, base, .. }) = self.stack.last_mut() {
                        self.pointer.truncate(*base);
                        // The parser marks a block mapping's start after its
                        // first key; the first key is where the mapping starts.
                        if map.is_empty()
                            && let Some(start) = self.positions.get_mut(&self.pointer)
                        {
                            *start = (*start).min(marker_position(mark));
                        }
                        self.pointer.push('/');
                        self.pointer.push_str(&pointer::escape(&text));
                        self.positions
                            .entry(self.pointer.clone())
                            .or_insert(marker_position(mark));
                        *key = Some(text);
                    }
                    return;
                }
                self.enter_value(mark);
                let is_str_tag = tag.is_some_and(|tag| tag.suffix == "str");
                let value = if style != TScalarStyle::Plain || is_str_tag {
                    Value::String(text)
                } else {
                    yaml_scalar(&text)
                };
                self.finish_value(value, anchor);
            }
            Event::Alias(anchor) => {
                if self.expects_key() {
                    self.error = Some("aliases as mapping keys are not supported".into());
                    return;
                }
                self.enter_value(mark);
                let value = self.anchors.get(&anchor).cloned().unwrap_or(Value::Null);
                self.finish_value(value, 0);
            }
            Event::MappingStart(anchor, _) | Event::SequenceStart(anchor, _) => {
                if self.expects_key() {
                    self.error = Some("complex mapping keys are not supported".into());
                    return;
                }
                if self.stack.len() >= MAX_YAML_DEPTH {
                    self.error = Some(format!(
                        "nested deeper than {MAX_YAML_DEPTH} levels (line {})",
                        mark.line()
                    ));
                    return;
                }
                self.enter_value(mark);
                let base = self.pointer.len();
                self.stack
                    .push(if matches!(event, Event::MappingStart(..)) {
                        Frame::Map {
                            map: Map::new(),
                            key: None,
                            anchor,
                            base,
                        }
                    } else {
                        Frame::Seq {
                            items: Vec::new(),
                            anchor,
                            base,
                        }
                    });
            }
            Event::MappingEnd | Event::SequenceEnd => {
                let (value, anchor) = match self.stack.pop() {
                    Some(Frame::Map { map, anchor, .. }) => (Value::Object(map), anchor),
                    Some(Frame::Seq { items, anchor, .. }) => (Value::Array(items), anchor),
                    None => return,
                };
                self.finish_value(value, anchor);
            }
            _ => {}
        }
    }
}

/// A plain YAML scalar resolved as YAML 1.2 core types.
fn yaml_scalar(text: &str) -> Value {
    match Yaml::from_str(text) {
        Yaml::Integer(i) => Value::Number(i.into()),
        // `.inf` and `.nan` have no JSON number: they stay strings.
        Yaml::Real(real) => real
            .parse::<f64>()
            .ok()
            .and_then(Number::from_f64)
            .map(Value::Number)
            .unwrap_or(Value::String(real)),
        Yaml::Boolean(b) => Value::Bool(b),
        Yaml::Null => Value::Null,
        _ => Value::String(text.to_owned()),
    }
}

pub fn parse_toml(text: &str) -> Result<Parsed, ParseError> {
    let table = toml::de::DeTable::parse(text).map_err(|err| {
        let offset = err.span().map(|span| span.start).unwrap_or(0);
        let (line, column) = position_of_offset(text, offset);
        ParseError {
            message: err.message().to_owned(),
            line,
            column,
        }
    })?;
    let lines = LineIndex::new(text);
    let mut positions = HashMap::new();
    positions.insert(String::new(), (1, 1));
    let value = toml_table(table.get_ref(), "", text, &lines, &mut positions);
    Ok(Parsed {
        value,
        positions: Positions::Known(positions),
    })
}

fn toml_table(
    table: &toml::de::DeTable<'_>,
    base: &str,
    text: &str,
    lines: &LineIndex,
    positions: &mut HashMap<String, Position>,
) -> Value {
    let mut map = Map::new();
    for (key, value) in table {
        let pointer = pointer::join(base, key.get_ref());
        positions
            .entry(pointer.clone())
            .or_insert(lines.position(text, key.span().start));
        let converted = toml_value(value.get_ref(), &pointer, text, lines, positions);
        map.insert(key.get_ref().to_string(), converted);
    }
    Value::Object(map)
}

fn toml_value(
    value: &toml::de::DeValue<'_>,
    pointer: &str,
    text: &str,
    lines: &LineIndex,
    positions: &mut HashMap<String, Position>,
) -> Value {
    use toml::de::DeValue;
    match value {
        DeValue::String(s) => Value::String(s.to_string()),
        DeValue::Integer(i) => i64::from_str_radix(i.as_str(), i.radix())
            .map(|i| Value::Number(i.into()))
            .unwrap_or_else(|_| Value::String(i.as_str().to_owned())),
        DeValue::Float(f) => f
            .as_str()
            .parse::<f64>()
            .ok()
            .and_then(Number::from_f64)
            .map(Value::Number)
            .unwrap_or_else(|| Value::String(f.as_str().to_owned())),
        DeValue::Boolean(b) => Value::Bool(*b),
        DeValue::Datetime(d) => Value::String(d.to_string()),
        DeValue::Array(items) => Value::Array(
            items
                .iter()
                .enumerate()
                .map(|(index, item)| {
                    let item_pointer = pointer::join_index(pointer, index);
                    positions
                        .entry(item_pointer.clone())
                        .or_insert(lines.position(text, item.span().start));
                    toml_value(item.get_ref(), &item_pointer, text, lines, positions)
                })
                .collect(),
        ),
        DeValue::Table(table) => toml_table(table, pointer, text, lines, positions),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn json_positions_point_at_keys_and_array_items() {
        let text =
            "{\n  \"steps\": [\n    {\"id\": \"a\"},\n    {\"id\": \"b\", \"x/y\": 1}\n  ]\n}\n";
        let parsed = parse_json(text).unwrap();
        assert_eq!(parsed.position(""), Some((1, 1)));
        assert_eq!(parsed.position("/steps"), Some((2, 3)));
        assert_eq!(parsed.position("/steps/1"), Some((4, 5)));
        assert_eq!(parsed.position("/steps/1/id"), Some((4, 6)));
        assert_eq!(parsed.position("/steps/1/x~1y"), Some((4, 17)));
        assert_eq!(parsed.position("/nope"), None);
    }

    #[test]
    fn targeted_json_lookup_agrees_with_the_full_map() {
        let text = "{\"a\": [1, {\"b\": \"x]}\\\"\", \"c/d\": [true, null]}], \"e\": {}}";
        let map = json_positions(text);
        assert!(map.len() > 5);
        for (pointer, position) in &map {
            let offset = json_locate(text, pointer).unwrap();
            assert_eq!(position_of_offset(text, offset), *position, "{pointer}");
        }
        assert_eq!(json_locate(text, "/a/7"), None);
        assert_eq!(json_locate(text, "/zzz"), None);
    }

    #[test]
    fn json_positions_survive_escapes_and_multibyte_text() {
        let text = "{\"é\": \"a\\\"b\", \"k\\u0041\": [1, \"x\"]}";
        let parsed = parse_json(text).unwrap();
        assert_eq!(parsed.position("/kA/1"), Some((1, 30)));
        assert_eq!(parsed.position("/é"), Some((1, 2)));
    }

    #[test]
    fn json_syntax_errors_carry_line_and_column() {
        let err = parse_json("{\n  \"a\": 1,\n}").unwrap_err();
        assert_eq!((err.line, err.column), (3, 1));
    }

    #[test]
    fn yaml_resolves_core_types_and_records_positions() {
        let text = "name: orders\nretry:\n  max: 3\n  ratio: 0.5\n  on: true\n  quoted: \"3\"\nsteps:\n  - id: a\n  - id: b\n";
        let parsed = parse_yaml(text).unwrap();
        assert_eq!(
            parsed.value,
            json!({"name": "orders", "retry": {"max": 3, "ratio": 0.5, "on": true, "quoted": "3"},
                   "steps": [{"id": "a"}, {"id": "b"}]})
        );
        assert_eq!(parsed.position("/retry/max"), Some((3, 3)));
        assert_eq!(parsed.position("/steps/1"), Some((9, 5)));
        assert_eq!(parsed.position("/steps/1/id"), Some((9, 5)));
    }

    #[test]
    fn yaml_nested_past_the_limit_is_a_parse_error() {
        let deep = format!(
            "{}1{}",
            "[".repeat(MAX_YAML_DEPTH + 1),
            "]".repeat(MAX_YAML_DEPTH + 1)
        );
        let err = parse_yaml(&deep).unwrap_err();
        assert!(err.message.contains("nested deeper"), "{}", err.message);
        let ok = format!(
            "{}1{}",
            "[".repeat(MAX_YAML_DEPTH),
            "]".repeat(MAX_YAML_DEPTH)
        );
        assert!(parse_yaml(&ok).is_ok());
    }

    #[test]
    fn yaml_aliases_copy_the_anchored_value() {
        let parsed = parse_yaml("base: &b {x: 1}\nother: *b\n").unwrap();
        assert_eq!(parsed.value, json!({"base": {"x": 1}, "other": {"x": 1}}));
    }

    #[test]
    fn yaml_syntax_errors_carry_line_and_column() {
        let err = parse_yaml("a: [1, 2\nb: 3\n").unwrap_err();
        assert!(err.line >= 1);
    }

    #[test]
    fn toml_converts_to_json_with_key_positions() {
        let text = "name = \"crm\"\n[auth]\nkind = \"oauth\"\nscopes = [\"a\", \"b\"]\n";
        let parsed = parse_toml(text).unwrap();
        assert_eq!(
            parsed.value,
            json!({"name": "crm", "auth": {"kind": "oauth", "scopes": ["a", "b"]}})
        );
        assert_eq!(parsed.position("/auth/kind"), Some((3, 1)));
        assert_eq!(parsed.position("/auth/scopes/1"), Some((4, 16)));
    }
}
