//! Lines from pointers: a finding that names a document and an RFC 6901
//! JSON pointer but no line gets the line and column of the value the
//! pointer names, computed by the host from the document (JSON, YAML,
//! TOML) before any report is written, so GitHub annotations and SARIF
//! results land on the line and not only on the file.
//!
//! - Where: an object member (a mapping key, a TOML key) is placed at its
//!   key (`"name": …` → the opening quote of `"name"`), the line a reader
//!   looks for; an array item and the root at the start of the value.
//!   Lines and columns are 1-based, columns counted in characters.
//! - Which side: the document's new version (`after`); when the pointer
//!   does not resolve there (the finding is about something removed), or
//!   the document was deleted, its previous version (`before`). A finding
//!   cannot say which side it means, so a pointer that resolves in both
//!   (an array index whose item was replaced) is placed in `after`.
//! - Never fatal: a document that is not UTF-8 or does not parse, a YAML
//!   stream of several documents, a pointer through a YAML alias or a
//!   non-string key, or one that does not resolve, leaves the finding as
//!   the plugin wrote it.
//! - Bounded: each document side is read at most once per checkpoint, for
//!   all the findings that point into it at once, recording only the
//!   positions that are asked for (memory grows with the findings, not the
//!   document).

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

use crate::runtime::change::{Change, Document, MediaType};
use crate::runtime::verdict::{Location, Verdict};

/// A 1-based line and column (in characters).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Position {
    pub line: u32,
    pub column: u32,
}

/// Fills the line and column of every finding in `verdicts` that has a
/// document path and a pointer but no line, from `change`'s documents.
/// Findings that already have a line, or whose pointer cannot be placed,
/// are left as they are.
pub fn fill_positions<'a>(change: &Change, verdicts: impl IntoIterator<Item = &'a mut Verdict>) {
    let mut wanted: Vec<&mut Location> = verdicts
        .into_iter()
        .flat_map(|verdict| verdict.findings.iter_mut())
        .filter_map(|finding| finding.location.as_mut())
        .filter(|location| location.line.is_none() && location.pointer.is_some())
        .collect();
    if wanted.is_empty() {
        return;
    }
    // Every pointer asked of each document, so each is read once.
    let mut by_document: BTreeMap<&str, BTreeSet<&str>> = BTreeMap::new();
    for location in &wanted {
        if let Some(pointer) = location.pointer.as_deref() {
            by_document
                .entry(location.document.as_str())
                .or_default()
                .insert(pointer);
        }
    }
    let mut found: HashMap<(String, String), Position> = HashMap::new();
    for (path, pointers) in by_document {
        let Some(document) = change.document(path) else {
            continue;
        };
        for (pointer, position) in locate_in_document(document, &pointers) {
            found.insert((path.to_owned(), pointer), position);
        }
    }
    for location in &mut wanted {
        let Some(pointer) = location.pointer.clone() else {
            continue;
        };
        if let Some(position) = found.get(&(location.document.clone(), pointer)) {
            location.line = Some(position.line);
            location.column = Some(position.column);
        }
    }
}

/// The positions of `pointers` in `document`: looked up in its new
/// version, and those not found there in its previous version.
fn locate_in_document(document: &Document, pointers: &BTreeSet<&str>) -> HashMap<String, Position> {
    let mut found = HashMap::new();
    let sides = [document.after.as_deref(), document.before.as_deref()];
    for bytes in sides.into_iter().flatten() {
        let missing: Vec<&str> = pointers
            .iter()
            .copied()
            .filter(|pointer| !found.contains_key(*pointer))
            .collect();
        if missing.is_empty() {
            break;
        }
        found.extend(locate(&document.media_type, bytes, &missing));
    }
    found
}

/// The positions of `pointers` in `bytes`, a document of `media_type`.
/// Pointers that do not resolve (and all of them, when the document is not
/// UTF-8, does not parse or is of another type) are absent from the result.
pub fn locate(
    media_type: &MediaType,
    bytes: &[u8],
    pointers: &[&str],
) -> HashMap<String, Position> {
    let Ok(text) = std::str::from_utf8(bytes) else {
        return HashMap::new();
    };
    let wanted = Wanted::new(pointers);
    let offsets = match media_type {
        MediaType::Json => json::locate(text, &wanted),
        MediaType::Yaml => return yaml::locate(text, &wanted).unwrap_or_default(),
        MediaType::Toml => toml::locate(text, &wanted),
        _ => None,
    };
    offsets
        .map(|offsets| positions_of_offsets(text, offsets))
        .unwrap_or_default()
}

/// The pointers asked for, and every prefix of them (the paths worth
/// descending into).
struct Wanted {
    targets: HashSet<String>,
    prefixes: HashSet<String>,
}

impl Wanted {
    fn new(pointers: &[&str]) -> Wanted {
        let mut prefixes = HashSet::new();
        for pointer in pointers {
            // Only RFC 6901 pointers: empty, or `/`-separated tokens.
            if !pointer.is_empty() && !pointer.starts_with('/') {
                continue;
            }
            prefixes.insert(String::new());
            for (at, _) in pointer.match_indices('/').skip(1) {
                prefixes.insert(pointer[..at].to_owned());
            }
            prefixes.insert((*pointer).to_owned());
        }
        Wanted {
            targets: pointers.iter().map(|p| (*p).to_owned()).collect(),
            prefixes,
        }
    }

    /// The pointer of `parent`'s child `token` (unescaped), when it is on
    /// the way to a wanted pointer.
    fn child(&self, parent: Option<&str>, token: &str) -> Option<String> {
        let parent = parent?;
        let mut child = String::with_capacity(parent.len() + token.len() + 1);
        child.push_str(parent);
        child.push('/');
        for c in token.chars() {
            match c {
                '~' => child.push_str("~0"),
                '/' => child.push_str("~1"),
                c => child.push(c),
            }
        }
        self.prefixes.contains(&child).then_some(child)
    }

    /// The root's pointer, when anything at all is wanted.
    fn root(&self) -> Option<String> {
        self.prefixes.contains("").then(String::new)
    }

    fn is_target(&self, pointer: Option<&str>) -> bool {
        pointer.is_some_and(|pointer| self.targets.contains(pointer))
    }
}

/// Byte offsets into `text` turned into positions in one pass over it.
fn positions_of_offsets(text: &str, offsets: Vec<(String, usize)>) -> HashMap<String, Position> {
    let mut order: Vec<(usize, String)> = offsets
        .into_iter()
        .map(|(pointer, offset)| (offset, pointer))
        .collect();
    order.sort();
    let mut result = HashMap::with_capacity(order.len());
    let (mut line, mut column, mut at) = (1u64, 1u64, 0usize);
    let bytes = text.as_bytes();
    for (offset, pointer) in order {
        let offset = offset.min(bytes.len());
        for &byte in &bytes[at.min(offset)..offset] {
            if byte == b'\n' {
                line += 1;
                column = 1;
            } else if byte & 0xC0 != 0x80 {
                column += 1;
            }
        }
        at = at.max(offset);
        if let (Ok(line), Ok(column)) = (u32::try_from(line), u32::try_from(column)) {
            result.insert(pointer, Position { line, column });
        }
    }
    result
}

mod json {
    //! A position scan of a JSON text that serde_json has already accepted
    //! (so the scan may trust its syntax and its nesting is within
    //! serde_json's recursion limit).

    use super::Wanted;

    /// Byte offsets of the wanted pointers, or `None` if `text` is not JSON.
    pub(super) fn locate(text: &str, wanted: &Wanted) -> Option<Vec<(String, usize)>> {
        serde_json::from_str::<serde::de::IgnoredAny>(text).ok()?;
        let mut scan = Scan {
            bytes: text.as_bytes(),
            at: 0,
            wanted,
            found: Vec::new(),
        };
        scan.whitespace();
        let root = wanted.root();
        if wanted.is_target(root.as_deref()) {
            scan.found.push((String::new(), scan.at));
        }
        scan.value(root.as_deref())?;
        Some(scan.found)
    }

    struct Scan<'a> {
        bytes: &'a [u8],
        at: usize,
        wanted: &'a Wanted,
        found: Vec<(String, usize)>,
    }

    impl Scan<'_> {
        fn peek(&self) -> Option<u8> {
            self.bytes.get(self.at).copied()
        }

        fn whitespace(&mut self) {
            while matches!(self.peek(), Some(b' ' | b'\t' | b'\n' | b'\r')) {
                self.at += 1;
            }
        }

        /// Skips the string starting at the current `"`; its raw bytes,
        /// quotes included.
        fn string(&mut self) -> Option<&[u8]> {
            let start = self.at;
            self.at += 1;
            loop {
                match self.peek()? {
                    b'\\' => self.at += 2,
                    b'"' => {
                        self.at += 1;
                        return self.bytes.get(start..self.at);
                    }
                    _ => self.at += 1,
                }
            }
        }

        /// Scans the value at the current offset (whitespace skipped),
        /// whose pointer is `pointer` (`None`: nothing wanted inside).
        fn value(&mut self, pointer: Option<&str>) -> Option<()> {
            match self.peek()? {
                b'{' => {
                    self.at += 1;
                    self.whitespace();
                    if self.peek()? == b'}' {
                        self.at += 1;
                        return Some(());
                    }
                    loop {
                        self.whitespace();
                        let key_at = self.at;
                        let raw = self.string()?;
                        let child = match pointer {
                            Some(_) => {
                                let key: String = serde_json::from_slice(raw).ok()?;
                                self.wanted.child(pointer, &key)
                            }
                            None => None,
                        };
                        if self.wanted.is_target(child.as_deref())
                            && let Some(child) = &child
                        {
                            self.found.push((child.clone(), key_at));
                        }
                        self.whitespace();
                        if self.peek()? != b':' {
                            return None;
                        }
                        self.at += 1;
                        self.whitespace();
                        self.value(child.as_deref())?;
                        self.whitespace();
                        match self.peek()? {
                            b',' => self.at += 1,
                            b'}' => {
                                self.at += 1;
                                return Some(());
                            }
                            _ => return None,
                        }
                    }
                }
                b'[' => {
                    self.at += 1;
                    self.whitespace();
                    if self.peek()? == b']' {
                        self.at += 1;
                        return Some(());
                    }
                    let mut index = 0usize;
                    loop {
                        self.whitespace();
                        let child = self.wanted.child(pointer, &index.to_string());
                        if self.wanted.is_target(child.as_deref())
                            && let Some(child) = &child
                        {
                            self.found.push((child.clone(), self.at));
                        }
                        self.value(child.as_deref())?;
                        index += 1;
                        self.whitespace();
                        match self.peek()? {
                            b',' => self.at += 1,
                            b']' => {
                                self.at += 1;
                                return Some(());
                            }
                            _ => return None,
                        }
                    }
                }
                b'"' => self.string().map(|_| ()),
                _ => {
                    // A number, `true`, `false` or `null`.
                    while !matches!(
                        self.peek(),
                        None | Some(b',' | b']' | b'}' | b' ' | b'\t' | b'\n' | b'\r')
                    ) {
                        self.at += 1;
                    }
                    Some(())
                }
            }
        }
    }
}

mod yaml {
    //! Positions from yaml-rust2's event stream (its markers carry line
    //! and column), following the wanted paths with a stack.

    use std::collections::HashMap;

    use yaml_rust2::parser::{Event, MarkedEventReceiver, Parser};
    use yaml_rust2::scanner::Marker;

    use super::{Position, Wanted};

    enum Frame {
        Map {
            pointer: Option<String>,
            /// The mapping's own start marker, while its position came from
            /// it and no key was read: a block mapping's marker is past its
            /// first key (at the `:`), so that key's marker, when earlier,
            /// places the mapping instead.
            start: Option<Marker>,
            /// The key just read, waiting for its value (`None` between
            /// members); `Some(None)`: a key that no pointer can name.
            key: Option<Option<(String, Marker)>>,
        },
        Seq {
            pointer: Option<String>,
            index: usize,
        },
    }

    /// What a node is to its parent.
    enum Role {
        /// A mapping key (it has no pointer of its own).
        Key,
        /// A value, with its pointer when it is on a wanted path.
        Value(Option<String>),
    }

    struct Receiver<'a> {
        wanted: &'a Wanted,
        stack: Vec<Frame>,
        found: HashMap<String, Position>,
        documents: usize,
        /// Nesting of a complex (non-scalar) mapping key being skipped.
        in_complex_key: usize,
    }

    fn position(mark: &Marker) -> Option<Position> {
        Some(Position {
            line: u32::try_from(mark.line()).ok()?,
            // yaml-rust2's columns are 0-based.
            column: u32::try_from(mark.col() + 1).ok()?,
        })
    }

    impl Receiver<'_> {
        fn record(&mut self, pointer: &str, mark: &Marker) {
            if self.wanted.targets.contains(pointer)
                && let Some(position) = position(mark)
            {
                self.found.insert(pointer.to_owned(), position);
            }
        }

        /// A node starts (`scalar`: its text when it is a scalar): a
        /// mapping key, or a value with its pointer (recorded if wanted).
        fn node(&mut self, scalar: Option<&str>, mark: &Marker) -> Role {
            let wanted = self.wanted;
            match self.stack.last_mut() {
                None => {
                    let root = wanted.root();
                    if let Some(root) = &root {
                        self.record(root, mark);
                    }
                    Role::Value(root)
                }
                Some(Frame::Seq { pointer, index }) => {
                    let child = wanted.child(pointer.as_deref(), &index.to_string());
                    *index += 1;
                    if let Some(child) = &child {
                        self.record(child, mark);
                    }
                    Role::Value(child)
                }
                Some(Frame::Map {
                    pointer,
                    start,
                    key,
                }) => match key.take() {
                    None => {
                        // This node is a key.
                        *key = Some(scalar.map(|text| (text.to_owned(), *mark)));
                        if let (Some(start), Some(pointer)) = (start.take(), pointer.clone())
                            && (mark.line(), mark.col()) < (start.line(), start.col())
                        {
                            self.record(&pointer, mark);
                        }
                        Role::Key
                    }
                    Some(None) => Role::Value(None),
                    Some(Some((text, key_mark))) => {
                        let child = wanted.child(pointer.as_deref(), &text);
                        if let Some(child) = &child {
                            self.record(child, &key_mark);
                        }
                        Role::Value(child)
                    }
                },
            }
        }
    }

    impl MarkedEventReceiver for Receiver<'_> {
        fn on_event(&mut self, event: Event, mark: Marker) {
            if self.in_complex_key > 0 {
                match event {
                    Event::MappingStart(..) | Event::SequenceStart(..) => self.in_complex_key += 1,
                    Event::MappingEnd | Event::SequenceEnd => self.in_complex_key -= 1,
                    _ => {}
                }
                return;
            }
            match event {
                Event::DocumentStart => self.documents += 1,
                Event::Scalar(text, ..) => {
                    let _ = self.node(Some(&text), &mark);
                }
                Event::Alias(_) => {
                    let _ = self.node(None, &mark);
                }
                Event::MappingStart(..) | Event::SequenceStart(..) => {
                    let is_map = matches!(event, Event::MappingStart(..));
                    match self.node(None, &mark) {
                        Role::Key => self.in_complex_key = 1,
                        Role::Value(pointer) => self.stack.push(if is_map {
                            // A member's position is its key's: only a root
                            // or an item is placed by its own marker.
                            let own = matches!(self.stack.last(), None | Some(Frame::Seq { .. }));
                            Frame::Map {
                                pointer,
                                start: own.then_some(mark),
                                key: None,
                            }
                        } else {
                            Frame::Seq { pointer, index: 0 }
                        }),
                    }
                }
                Event::MappingEnd | Event::SequenceEnd => {
                    self.stack.pop();
                }
                _ => {}
            }
        }
    }

    /// Positions of the wanted pointers in a YAML text holding one
    /// document; `None` if it does not parse or holds several.
    pub(super) fn locate(text: &str, wanted: &Wanted) -> Option<HashMap<String, Position>> {
        let mut receiver = Receiver {
            wanted,
            stack: Vec::new(),
            found: HashMap::new(),
            documents: 0,
            in_complex_key: 0,
        };
        Parser::new_from_str(text).load(&mut receiver, true).ok()?;
        (receiver.documents <= 1).then_some(receiver.found)
    }
}

mod toml {
    //! Positions from toml_edit's spans (a key's span for a member, a
    //! value's span for an array item).

    use toml_edit::{Item, Table, Value};

    use super::Wanted;

    /// Nesting past which the walk stops descending.
    const MAX_DEPTH: usize = 128;

    /// Byte offsets of the wanted pointers, or `None` if `text` is not TOML.
    pub(super) fn locate(text: &str, wanted: &Wanted) -> Option<Vec<(String, usize)>> {
        let document = toml_edit::Document::parse(text).ok()?;
        let mut found = Vec::new();
        let root = wanted.root();
        if wanted.is_target(root.as_deref()) {
            found.push((String::new(), 0));
        }
        if root.is_some() {
            table(document.as_table(), root.as_deref(), wanted, &mut found, 0);
        }
        Some(found)
    }

    fn push(
        found: &mut Vec<(String, usize)>,
        wanted: &Wanted,
        pointer: &Option<String>,
        span: Option<std::ops::Range<usize>>,
    ) {
        if let (Some(pointer), Some(span)) = (pointer, span)
            && wanted.targets.contains(pointer)
        {
            found.push((pointer.clone(), span.start));
        }
    }

    fn table(
        table: &Table,
        pointer: Option<&str>,
        wanted: &Wanted,
        found: &mut Vec<(String, usize)>,
        depth: usize,
    ) {
        if depth > MAX_DEPTH {
            return;
        }
        for (key, item) in table.iter() {
            let child = wanted.child(pointer, key);
            if child.is_none() {
                continue;
            }
            let span = table
                .key(key)
                .and_then(|key| key.span())
                .or_else(|| item.span());
            push(found, wanted, &child, span);
            self::item(item, child.as_deref(), wanted, found, depth + 1);
        }
    }

    fn item(
        item: &Item,
        pointer: Option<&str>,
        wanted: &Wanted,
        found: &mut Vec<(String, usize)>,
        depth: usize,
    ) {
        match item {
            Item::Table(t) => table(t, pointer, wanted, found, depth),
            Item::ArrayOfTables(array) => {
                for (index, t) in array.iter().enumerate() {
                    let child = wanted.child(pointer, &index.to_string());
                    if child.is_none() {
                        continue;
                    }
                    push(found, wanted, &child, t.span());
                    table(t, child.as_deref(), wanted, found, depth + 1);
                }
            }
            Item::Value(v) => value(v, pointer, wanted, found, depth),
            Item::None => {}
        }
    }

    fn value(
        v: &Value,
        pointer: Option<&str>,
        wanted: &Wanted,
        found: &mut Vec<(String, usize)>,
        depth: usize,
    ) {
        if depth > MAX_DEPTH {
            return;
        }
        match v {
            Value::Array(array) => {
                for (index, v) in array.iter().enumerate() {
                    let child = wanted.child(pointer, &index.to_string());
                    if child.is_none() {
                        continue;
                    }
                    push(found, wanted, &child, v.span());
                    value(v, child.as_deref(), wanted, found, depth + 1);
                }
            }
            Value::InlineTable(t) => {
                for (key, v) in t.iter() {
                    let child = wanted.child(pointer, key);
                    if child.is_none() {
                        continue;
                    }
                    let span = t.key(key).and_then(|key| key.span()).or_else(|| v.span());
                    push(found, wanted, &child, span);
                    value(v, child.as_deref(), wanted, found, depth + 1);
                }
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runtime::verdict::{Finding, Outcome, Severity};

    fn at(media_type: MediaType, text: &str, pointer: &str) -> Option<(u32, u32)> {
        locate(&media_type, text.as_bytes(), &[pointer])
            .get(pointer)
            .map(|p| (p.line, p.column))
    }

    const JSON: &str = r#"{
  "name": "shop",
  "a/b": {"x~y": 1},
  "steps": [
    {"id": "one"},
    {"id": "two", "tags": ["ä", "b"]}
  ],
  "ünï": {"deep": true}
}"#;

    #[test]
    fn json_members_are_placed_at_their_key_and_items_at_their_start() {
        assert_eq!(at(MediaType::Json, JSON, ""), Some((1, 1)));
        assert_eq!(at(MediaType::Json, JSON, "/name"), Some((2, 3)));
        assert_eq!(at(MediaType::Json, JSON, "/steps"), Some((4, 3)));
        assert_eq!(at(MediaType::Json, JSON, "/steps/0"), Some((5, 5)));
        assert_eq!(at(MediaType::Json, JSON, "/steps/1/id"), Some((6, 6)));
        assert_eq!(at(MediaType::Json, JSON, "/steps/1/tags/1"), Some((6, 33)));
    }

    #[test]
    fn json_escaped_tokens_and_unicode_columns() {
        assert_eq!(at(MediaType::Json, JSON, "/a~1b/x~0y"), Some((3, 11)));
        // `"ünï": {` is 8 characters but 10 bytes: the column counts characters.
        assert_eq!(at(MediaType::Json, JSON, "/ünï/deep"), Some((8, 11)));
        // A key written with an escape is named by what it decodes to.
        assert_eq!(
            at(MediaType::Json, r#"{"\u00e9t\u00e9": 1}"#, "/été"),
            Some((1, 2))
        );
    }

    #[test]
    fn json_unresolved_or_malformed_gives_nothing() {
        assert_eq!(at(MediaType::Json, JSON, "/steps/2"), None);
        assert_eq!(at(MediaType::Json, JSON, "/steps/01"), None);
        assert_eq!(at(MediaType::Json, JSON, "/name/x"), None);
        assert_eq!(at(MediaType::Json, JSON, "/a/b"), None);
        assert_eq!(at(MediaType::Json, JSON, "name"), None);
        assert_eq!(at(MediaType::Json, "{\"name\": ", "/name"), None);
        assert_eq!(at(MediaType::Json, "{\"a\": 1} {", "/a"), None);
        assert_eq!(at(MediaType::Text, JSON, "/name"), None);
        assert!(locate(&MediaType::Json, b"{\"a\": \"\xff\"}", &["/a"]).is_empty());
    }

    const YAML: &str = "name: shop\n\
a/b:\n  x~y: 1\n\
steps:\n  - id: one\n  - {id: two, tags: [ä, b]}\n\
ünï:\n  deep: true\n\
list:\n  - - nested\n";

    #[test]
    fn yaml_members_items_escapes_and_unicode() {
        assert_eq!(at(MediaType::Yaml, YAML, ""), Some((1, 1)));
        assert_eq!(at(MediaType::Yaml, YAML, "/name"), Some((1, 1)));
        assert_eq!(at(MediaType::Yaml, YAML, "/a~1b/x~0y"), Some((3, 3)));
        assert_eq!(at(MediaType::Yaml, YAML, "/steps/0"), Some((5, 5)));
        assert_eq!(at(MediaType::Yaml, YAML, "/steps/0/id"), Some((5, 5)));
        assert_eq!(at(MediaType::Yaml, YAML, "/steps/1/id"), Some((6, 6)));
        assert_eq!(at(MediaType::Yaml, YAML, "/steps/1"), Some((6, 5)));
        assert_eq!(at(MediaType::Yaml, YAML, "/steps/1/tags/1"), Some((6, 25)));
        assert_eq!(at(MediaType::Yaml, YAML, "/list/0"), Some((10, 5)));
        assert_eq!(
            at(MediaType::Yaml, "- a: 1\n  b: 2\n- x\n", "/0"),
            Some((1, 3))
        );
        assert_eq!(at(MediaType::Yaml, "\n  a: 1\n", ""), Some((2, 3)));
        assert_eq!(at(MediaType::Yaml, YAML, "/ünï/deep"), Some((8, 3)));
        assert_eq!(at(MediaType::Yaml, YAML, "/list/0/0"), Some((10, 7)));
        assert_eq!(
            at(MediaType::Yaml, "k: [é, \"x\"]\n", "/k/1"),
            Some((1, 8)),
            "columns count characters"
        );
    }

    #[test]
    fn yaml_unresolved_malformed_or_several_documents_gives_nothing() {
        assert_eq!(at(MediaType::Yaml, YAML, "/steps/2"), None);
        assert_eq!(at(MediaType::Yaml, YAML, "/nope"), None);
        assert_eq!(at(MediaType::Yaml, "a: [1, 2\nb: {", "/a"), None);
        assert_eq!(at(MediaType::Yaml, "a: 1\n---\na: 2\n", "/a"), None);
        // A complex key is skipped; the members after it still resolve.
        assert_eq!(
            at(MediaType::Yaml, "? [x, y]\n: 1\nz: 2\n", "/z"),
            Some((3, 1))
        );
        // Nothing is followed through an alias.
        assert_eq!(at(MediaType::Yaml, "a: &x {b: 1}\nc: *x\n", "/c/b"), None);
        assert_eq!(
            at(MediaType::Yaml, "a: &x {b: 1}\nc: *x\n", "/c"),
            Some((2, 1))
        );
    }

    const TOML: &str = "title = \"shop\"\n\
\"a/b\" = { \"x~y\" = 1 }\n\
\n\
[server]\n\
ports = [80, 443]\n\
\"ünï\" = { deep = true }\n\
\n\
[[steps]]\n\
id = \"one\"\n\
\n\
[[steps]]\n\
id = \"two\"\n\
";

    #[test]
    fn toml_keys_items_tables_escapes_and_unicode() {
        assert_eq!(at(MediaType::Toml, TOML, "/title"), Some((1, 1)));
        assert_eq!(at(MediaType::Toml, TOML, "/a~1b/x~0y"), Some((2, 11)));
        assert_eq!(at(MediaType::Toml, TOML, "/server/ports"), Some((5, 1)));
        assert_eq!(at(MediaType::Toml, TOML, "/server/ports/1"), Some((5, 14)));
        assert_eq!(at(MediaType::Toml, TOML, "/server/ünï/deep"), Some((6, 11)));
        assert_eq!(at(MediaType::Toml, TOML, "/steps/1/id"), Some((12, 1)));
        assert_eq!(at(MediaType::Toml, TOML, "/steps/1").map(|p| p.0), Some(11));
        assert_eq!(at(MediaType::Toml, TOML, "/server").map(|p| p.0), Some(4));
        let dotted = "# é\nsite.server.port = 80\n";
        assert_eq!(
            at(MediaType::Toml, dotted, "/site/server/port"),
            Some((2, 13))
        );
        assert_eq!(at(MediaType::Toml, dotted, "/site").map(|p| p.0), Some(2));
    }

    #[test]
    fn toml_unresolved_or_malformed_gives_nothing() {
        assert_eq!(at(MediaType::Toml, TOML, "/steps/2"), None);
        assert_eq!(at(MediaType::Toml, TOML, "/server/host"), None);
        assert_eq!(at(MediaType::Toml, "a = [1, 2\n", "/a"), None);
        assert_eq!(at(MediaType::Toml, "a = 1\na = 2\n", "/a"), None);
    }

    fn finding(document: &str, pointer: &str, line: Option<u32>) -> Finding {
        Finding {
            rule: "t/r".into(),
            severity: Severity::Error,
            message: "m".into(),
            location: Some(Location {
                document: document.into(),
                pointer: Some(pointer.into()),
                line,
                column: line,
            }),
            hint: None,
        }
    }

    #[test]
    fn fill_uses_after_then_before_and_keeps_what_it_cannot_place() {
        let change = Change::new(
            [
                Document::new(
                    "app.json",
                    Some(b"{\n  \"old\": 1,\n  \"keep\": 2\n}".to_vec()),
                    Some(b"{\n\n  \"keep\": 2\n}".to_vec()),
                ),
                Document::new("gone.yaml", Some(b"a:\n  b: 1\n".to_vec()), None),
                Document::new("bad.toml", None, Some(b"a = [".to_vec())),
            ],
            Vec::new(),
        );
        let mut verdict = Verdict {
            outcome: Outcome::Fail,
            findings: vec![
                finding("app.json", "/keep", None),
                finding("app.json", "/old", None),
                finding("app.json", "/missing", None),
                finding("app.json", "/keep", Some(9)),
                finding("gone.yaml", "/a/b", None),
                finding("bad.toml", "/a", None),
                finding("absent.json", "/a", None),
            ],
            summary: None,
            findings_dropped: 0,
        };
        fill_positions(&change, [&mut verdict]);
        let lines: Vec<(Option<u32>, Option<u32>)> = verdict
            .findings
            .iter()
            .map(|f| {
                let l = f.location.as_ref().expect("location");
                (l.line, l.column)
            })
            .collect();
        assert_eq!(
            lines,
            vec![
                (Some(3), Some(3)),
                (Some(2), Some(3)),
                (None, None),
                (Some(9), Some(9)),
                (Some(2), Some(3)),
                (None, None),
                (None, None),
            ]
        );
    }
}
