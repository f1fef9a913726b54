//! The change under validation as the host holds it: documents with their
//! before/after bytes and media type, the checkpoint, observed metrics, and
//! loading all of that from a directory or a JSON bundle file.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};

use base64::Engine as _;

use crate::runtime::input::{
    MAX_BUNDLE_BYTES, MAX_CHANGE_BYTES, MAX_DOCUMENT_BYTES, MAX_METRICS_BYTES, read_limited,
    too_large,
};
use serde::{Deserialize, Serialize};

/// How a document differs between before and after.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DocumentStatus {
    Added,
    Modified,
    Deleted,
    Unchanged,
}

/// The media type of a document: one of the five cairn assigns by
/// extension, or what a bundle says (`media-type`). Plugins receive it as
/// text (`as_str`).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum MediaType {
    /// `application/json` (`.json`).
    Json,
    /// `application/yaml` (`.yaml`, `.yml`).
    Yaml,
    /// `application/toml` (`.toml`).
    Toml,
    /// `text/plain` (`.txt`, `.md`, `.csv`, `.sql`).
    Text,
    /// `application/octet-stream` (anything else).
    OctetStream,
    /// Another type a bundle gave, checked to be `type/subtype`.
    Other(String),
}

/// Why a bundle's `media-type` is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("media type {text:?} is not of the form type/subtype (RFC 6838 characters, at most 255)")]
pub struct InvalidMediaType {
    pub text: String,
}

impl MediaType {
    /// The media type cairn assigns to a path, from its extension.
    pub fn for_path(path: &str) -> MediaType {
        let extension = path
            .rsplit_once('.')
            .map(|(_, ext)| ext.to_ascii_lowercase());
        match extension.as_deref() {
            Some("json") => MediaType::Json,
            Some("yaml" | "yml") => MediaType::Yaml,
            Some("toml") => MediaType::Toml,
            Some("txt" | "md" | "csv" | "sql") => MediaType::Text,
            _ => MediaType::OctetStream,
        }
    }

    /// Parses `type/subtype` (case-insensitive for the five known types,
    /// parameters not allowed). Anything a terminal or a report could
    /// misread (spaces, control characters, quotes) is refused.
    pub fn parse(text: &str) -> Result<MediaType, InvalidMediaType> {
        let lower = text.to_ascii_lowercase();
        let known = [
            MediaType::Json,
            MediaType::Yaml,
            MediaType::Toml,
            MediaType::Text,
            MediaType::OctetStream,
        ];
        if let Some(known) = known.into_iter().find(|m| m.as_str() == lower) {
            return Ok(known);
        }
        let restricted_name = |part: &str| {
            (1..=127).contains(&part.len())
                && part
                    .bytes()
                    .next()
                    .is_some_and(|b| b.is_ascii_alphanumeric())
                && part
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"!#$&-^_.+".contains(&b))
        };
        match lower.split_once('/') {
            Some((kind, subtype))
                if text.len() <= 255 && restricted_name(kind) && restricted_name(subtype) =>
            {
                Ok(MediaType::Other(lower))
            }
            _ => Err(InvalidMediaType {
                text: text.chars().take(100).collect(),
            }),
        }
    }

    pub fn as_str(&self) -> &str {
        match self {
            MediaType::Json => "application/json",
            MediaType::Yaml => "application/yaml",
            MediaType::Toml => "application/toml",
            MediaType::Text => "text/plain",
            MediaType::OctetStream => "application/octet-stream",
            MediaType::Other(other) => other,
        }
    }
}

impl std::fmt::Display for MediaType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One document of a change, addressed by its `/`-separated relative path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Document {
    pub path: String,
    pub media_type: MediaType,
    pub before: Option<Vec<u8>>,
    pub after: Option<Vec<u8>>,
}

impl Document {
    /// A document whose media type is guessed from its path.
    pub fn new(path: impl Into<String>, before: Option<Vec<u8>>, after: Option<Vec<u8>>) -> Self {
        let path = path.into();
        Self {
            media_type: MediaType::for_path(&path),
            path,
            before,
            after,
        }
    }

    pub fn status(&self) -> DocumentStatus {
        match (&self.before, &self.after) {
            (None, Some(_)) => DocumentStatus::Added,
            (Some(_), None) => DocumentStatus::Deleted,
            (Some(before), Some(after)) if before == after => DocumentStatus::Unchanged,
            _ => DocumentStatus::Modified,
        }
    }
}

/// An observed metric handed to validators (`error-rate`, `latency-p99-ms`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Metric {
    pub name: String,
    pub value: f64,
}

/// Where in the rollout a validator is being called.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct Checkpoint {
    pub name: String,
    pub index: u32,
    pub environment: String,
    pub rollout_percent: u8,
    pub change_id: String,
}

impl Default for Checkpoint {
    fn default() -> Self {
        Self {
            name: "preflight".into(),
            index: 0,
            environment: "preflight".into(),
            rollout_percent: 0,
            change_id: "local".into(),
        }
    }
}

/// Everything a validator may see: documents (sorted by path) and metrics.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Change {
    documents: BTreeMap<String, Document>,
    pub metrics: Vec<Metric>,
}

/// Why a change could not be read from disk.
#[derive(Debug, thiserror::Error)]
pub enum ChangeError {
    #[error("cannot read {}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{}: neither `before/` nor `after/` exists; a change directory holds one or both", path.display())]
    Empty { path: PathBuf },
    #[error("{}: not a valid UTF-8 path under the change directory", path.display())]
    NonUtf8Path { path: PathBuf },
    #[error("{}: not a change bundle (JSON with `documents` and optional `metrics`)", path.display())]
    BundleJson {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
    #[error("{}: invalid change bundle: {message}", path.display())]
    Bundle { path: PathBuf, message: String },
    #[error("{}: invalid metrics file (expected a JSON object of metric name to number, each name once)", path.display())]
    Metrics {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
    /// cairn does not follow symbolic links in a change: a link could point
    /// outside it, and a skipped one would hide a document from the
    /// validators.
    #[error(
        "{}: is a symbolic link; a change holds regular files and directories only \
         (copy the file in, or use a JSON bundle)",
        path.display()
    )]
    Symlink { path: PathBuf },
    #[error(
        "{}: is not a regular file or directory (a FIFO, socket or device); a change holds \
         regular files only",
        path.display()
    )]
    NotAFile { path: PathBuf },
}

/// Name of the optional metrics file in a change directory: a JSON object
/// of metric name to number.
pub const METRICS_FILE: &str = "metrics.json";

impl Change {
    pub fn new(documents: impl IntoIterator<Item = Document>, metrics: Vec<Metric>) -> Self {
        Self {
            documents: documents
                .into_iter()
                .map(|doc| (doc.path.clone(), doc))
                .collect(),
            metrics,
        }
    }

    /// Reads a change from a directory (see [`Change::from_dir`]) or a JSON
    /// bundle file (see [`Change::from_bundle`]).
    pub fn load(path: &Path) -> Result<Change, ChangeError> {
        if path.is_dir() {
            Change::from_dir(path)
        } else {
            Change::from_bundle(path)
        }
    }

    /// Reads a change bundle: one JSON file holding every document,
    ///
    /// ```json
    /// {"documents": [{"path": "workflows/a.json", "before": "{...}", "after": "{...}"},
    ///                {"path": "logo.png", "after-base64": "iVBORw0..."}],
    ///  "metrics": {"error-rate": 0.01}}
    /// ```
    ///
    /// `before`/`after` hold text, `before-base64`/`after-base64` bytes; a
    /// missing side means added or deleted. `media-type` overrides the one
    /// guessed from the extension.
    pub fn from_bundle(path: &Path) -> Result<Change, ChangeError> {
        let text = read_limited(path, "change bundle", MAX_BUNDLE_BYTES).map_err(|source| {
            ChangeError::Io {
                path: path.to_owned(),
                source,
            }
        })?;
        Change::from_bundle_bytes(&text, path)
    }

    /// Reads a change bundle from bytes (an upload); `path` names it in
    /// errors.
    pub fn from_bundle_bytes(text: &[u8], path: &Path) -> Result<Change, ChangeError> {
        let bundle: Bundle =
            serde_json::from_slice(text).map_err(|source| ChangeError::BundleJson {
                path: path.to_owned(),
                source,
            })?;
        let invalid = |message: String| ChangeError::Bundle {
            path: path.to_owned(),
            message,
        };
        let mut documents = Vec::new();
        let mut seen = BTreeSet::new();
        let mut total = 0u64;
        for doc in bundle.documents {
            check_document_path(&doc.path)
                .map_err(|why| invalid(format!("document path {:?} {why}", doc.path)))?;
            if !seen.insert(doc.path.clone()) {
                return Err(invalid(format!("document {:?} appears twice", doc.path)));
            }
            let side = |text: Option<String>, b64: Option<String>, which: &str| match (text, b64) {
                (Some(_), Some(_)) => Err(invalid(format!(
                    "document {:?} has both `{which}` and `{which}-base64`",
                    doc.path
                ))),
                (Some(text), None) => Ok(Some(text.into_bytes())),
                (None, Some(encoded)) => base64::engine::general_purpose::STANDARD
                    .decode(encoded.as_bytes())
                    .map(Some)
                    .map_err(|err| {
                        invalid(format!("document {:?}: `{which}-base64`: {err}", doc.path))
                    }),
                (None, None) => Ok(None),
            };
            let before = side(doc.before, doc.before_base64, "before")?;
            let after = side(doc.after, doc.after_base64, "after")?;
            for bytes in before.iter().chain(&after) {
                let size = bytes.len() as u64;
                if size > MAX_DOCUMENT_BYTES {
                    return Err(invalid(format!(
                        "document {:?} {}",
                        doc.path,
                        too_large("document", Some(size), MAX_DOCUMENT_BYTES)
                    )));
                }
                total += size;
            }
            if total > MAX_CHANGE_BYTES {
                return Err(invalid(format!(
                    "its documents {}",
                    too_large("change", Some(total), MAX_CHANGE_BYTES)
                )));
            }
            if before.is_none() && after.is_none() {
                return Err(invalid(format!(
                    "document {:?} has neither before nor after",
                    doc.path
                )));
            }
            let mut document = Document::new(doc.path, before, after);
            if let Some(media_type) = doc.media_type {
                document.media_type = MediaType::parse(&media_type)
                    .map_err(|err| invalid(format!("document {:?}: {err}", document.path)))?;
            }
            documents.push(document);
        }
        let metrics = bundle
            .metrics
            .0
            .into_iter()
            .map(|(name, value)| Metric { name, value })
            .collect();
        Ok(Change::new(documents, metrics))
    }

    /// Replaces the metrics with those of a JSON file
    /// (`{"error-rate": 0.01, ...}`).
    pub fn with_metrics_file(mut self, path: &Path) -> Result<Change, ChangeError> {
        self.metrics = read_metrics(path)?;
        Ok(self)
    }

    /// Reads a change directory: `before/` and `after/` trees (either may be
    /// absent) and an optional `metrics.json` (`{"error-rate": 0.01}`).
    pub fn from_dir(dir: &Path) -> Result<Change, ChangeError> {
        let before_dir = dir.join("before");
        let after_dir = dir.join("after");
        if !before_dir.is_dir() && !after_dir.is_dir() {
            return Err(ChangeError::Empty { path: dir.into() });
        }
        // Sizes are checked before any document is read.
        let before = list_tree(&before_dir)?;
        let after = list_tree(&after_dir)?;
        let total: u64 = before.iter().chain(&after).map(|file| file.size).sum();
        if total > MAX_CHANGE_BYTES {
            return Err(ChangeError::Io {
                path: dir.to_owned(),
                source: too_large("change", Some(total), MAX_CHANGE_BYTES),
            });
        }
        let before = read_listed(before)?;
        let mut after = read_listed(after)?;
        let mut documents: Vec<Document> = before
            .into_iter()
            .map(|(path, bytes)| {
                let after_bytes = after.remove(&path);
                Document::new(path, Some(bytes), after_bytes)
            })
            .collect();
        documents.extend(
            after
                .into_iter()
                .map(|(path, bytes)| Document::new(path, None, Some(bytes))),
        );
        let metrics_path = dir.join(METRICS_FILE);
        if fs::symlink_metadata(&metrics_path).is_ok_and(|m| m.file_type().is_symlink()) {
            return Err(ChangeError::Symlink { path: metrics_path });
        }
        let metrics = match fs::metadata(&metrics_path) {
            Err(_) => Vec::new(),
            Ok(meta) if meta.is_file() => read_metrics(&metrics_path)?,
            Ok(_) => return Err(ChangeError::NotAFile { path: metrics_path }),
        };
        Ok(Change::new(documents, metrics))
    }

    pub fn documents(&self) -> impl Iterator<Item = &Document> {
        self.documents.values()
    }

    pub fn document(&self, path: &str) -> Option<&Document> {
        self.documents.get(path)
    }

    pub fn paths(&self) -> BTreeSet<&str> {
        self.documents.keys().map(String::as_str).collect()
    }
}

/// A bundle's document path must be what a change directory would give:
/// relative, `/`-separated, in normal form (no empty, `.` or `..`
/// segment, no backslash or control character), so it cannot point outside
/// the change or name one document twice (`./a.json` beside `a.json`).
fn check_document_path(path: &str) -> Result<(), &'static str> {
    if path.is_empty() {
        return Err("is empty");
    }
    if path.starts_with('/') {
        return Err("is absolute; give it relative to the change");
    }
    if path.chars().any(|c| c.is_control()) {
        return Err("holds a control character");
    }
    if path.contains('\\') {
        return Err("holds a backslash; separate segments with `/`");
    }
    for segment in path.split('/') {
        match segment {
            "" => return Err("has an empty segment (`//` or a trailing `/`)"),
            "." | ".." => return Err("has a `.` or `..` segment; give it in normal form"),
            _ => {}
        }
    }
    Ok(())
}

/// Reads a metrics file: a JSON object of metric name to number, each name
/// once (a UTF-8 byte-order mark is allowed).
fn read_metrics(path: &Path) -> Result<Vec<Metric>, ChangeError> {
    let text = read_limited(path, "metrics file", MAX_METRICS_BYTES).map_err(|source| {
        ChangeError::Io {
            path: path.to_owned(),
            source,
        }
    })?;
    let text = text.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(&text);
    let map: UniqueMetrics =
        serde_json::from_slice(text).map_err(|source| ChangeError::Metrics {
            path: path.to_owned(),
            source,
        })?;
    Ok(map
        .0
        .into_iter()
        .map(|(name, value)| Metric { name, value })
        .collect())
}

/// Metrics by name, refusing a name given twice: with a plain map the last
/// value would win silently (a 0.9 error rate followed by 0.002 passes).
#[derive(Debug, Default)]
struct UniqueMetrics(BTreeMap<String, f64>);

impl<'de> Deserialize<'de> for UniqueMetrics {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl<'de> serde::de::Visitor<'de> for Visitor {
            type Value = UniqueMetrics;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a JSON object of metric name to number")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut map: A,
            ) -> Result<UniqueMetrics, A::Error> {
                let mut metrics = BTreeMap::new();
                while let Some((name, value)) = map.next_entry::<String, f64>()? {
                    if metrics.insert(name.clone(), value).is_some() {
                        return Err(serde::de::Error::custom(format!(
                            "metric `{name}` is given twice"
                        )));
                    }
                }
                Ok(UniqueMetrics(metrics))
            }
        }
        deserializer.deserialize_map(Visitor)
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Bundle {
    documents: Vec<BundleDocument>,
    #[serde(default)]
    metrics: UniqueMetrics,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct BundleDocument {
    path: String,
    media_type: Option<String>,
    before: Option<String>,
    after: Option<String>,
    before_base64: Option<String>,
    after_base64: Option<String>,
}

/// A regular file found under a change tree, not read yet.
struct ListedFile {
    /// `/`-separated path relative to the tree's root.
    relative: String,
    path: PathBuf,
    size: u64,
}

/// Lists every regular file under `root` with its size, refusing symlinks,
/// special files and documents over [`MAX_DOCUMENT_BYTES`] before anything
/// is read; a missing `root` is an empty tree.
fn list_tree(root: &Path) -> Result<Vec<ListedFile>, ChangeError> {
    let mut files = Vec::new();
    match fs::symlink_metadata(root) {
        Err(_) => return Ok(files),
        Ok(meta) if meta.file_type().is_symlink() => {
            return Err(ChangeError::Symlink {
                path: root.to_owned(),
            });
        }
        Ok(meta) if !meta.is_dir() => return Ok(files),
        Ok(_) => {}
    }
    let mut pending = vec![root.to_path_buf()];
    while let Some(dir) = pending.pop() {
        let io_err = |source| ChangeError::Io {
            path: dir.clone(),
            source,
        };
        for entry in fs::read_dir(&dir).map_err(io_err)? {
            let entry = entry.map_err(io_err)?;
            let path = entry.path();
            let kind = entry.file_type().map_err(io_err)?;
            if kind.is_symlink() {
                return Err(ChangeError::Symlink { path });
            } else if kind.is_dir() {
                pending.push(path);
            } else if !kind.is_file() {
                return Err(ChangeError::NotAFile { path });
            } else {
                let relative = path
                    .strip_prefix(root)
                    .ok()
                    .and_then(|rel| {
                        rel.components()
                            .map(|c| c.as_os_str().to_str())
                            .collect::<Option<Vec<_>>>()
                    })
                    .map(|parts| parts.join("/"))
                    .ok_or_else(|| ChangeError::NonUtf8Path { path: path.clone() })?;
                let size = entry.metadata().map_err(io_err)?.len();
                if size > MAX_DOCUMENT_BYTES {
                    return Err(ChangeError::Io {
                        path,
                        source: too_large("document", Some(size), MAX_DOCUMENT_BYTES),
                    });
                }
                files.push(ListedFile {
                    relative,
                    path,
                    size,
                });
            }
        }
    }
    Ok(files)
}

/// Reads listed files, keyed by relative path; a file that changed kind or
/// grew past the limit since it was listed is refused, not waited on.
fn read_listed(files: Vec<ListedFile>) -> Result<BTreeMap<String, Vec<u8>>, ChangeError> {
    files
        .into_iter()
        .map(|file| {
            let bytes =
                read_limited(&file.path, "document", MAX_DOCUMENT_BYTES).map_err(|source| {
                    ChangeError::Io {
                        path: file.path.clone(),
                        source,
                    }
                })?;
            Ok((file.relative, bytes))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_metric_given_twice_is_refused_not_last_wins() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("after")).unwrap();
        std::fs::write(
            dir.path().join(METRICS_FILE),
            r#"{"error-rate": 0.9, "error-rate": 0.002}"#,
        )
        .unwrap();
        let err = Change::from_dir(dir.path()).unwrap_err();
        assert!(matches!(err, ChangeError::Metrics { .. }), "{err}");
        let cause = std::error::Error::source(&err).unwrap().to_string();
        assert!(
            cause.contains("metric `error-rate` is given twice"),
            "{cause}"
        );
        let bundle = dir.path().join("bundle.json");
        std::fs::write(&bundle, r#"{"documents": [], "metrics": {"a": 1, "a": 2}}"#).unwrap();
        assert!(Change::load(&bundle).is_err());
    }

    #[test]
    fn bundle_paths_must_be_relative_and_normal() {
        let dir = tempfile::tempdir().unwrap();
        let bundle = dir.path().join("bundle.json");
        for (path, why) in [
            ("../../etc/x.json", "`..` segment"),
            ("/abs/x.json", "is absolute"),
            ("", "is empty"),
            ("a\0b.json", "control character"),
            ("./a.json", "`.` or `..` segment"),
            ("a//b.json", "empty segment"),
            ("a\\b.json", "backslash"),
        ] {
            let text =
                serde_json::json!({"documents": [{"path": path, "after": "{}"}]}).to_string();
            std::fs::write(&bundle, text).unwrap();
            let err = Change::load(&bundle).unwrap_err().to_string();
            assert!(err.contains(why), "{path:?}: {err}");
        }
        let text = serde_json::json!({"documents": [{"path": "dir/a.json", "after": "{}"}]});
        std::fs::write(&bundle, text.to_string()).unwrap();
        assert_eq!(
            Change::load(&bundle).unwrap().paths(),
            BTreeSet::from(["dir/a.json"])
        );
    }

    #[test]
    fn a_byte_order_mark_in_metrics_is_allowed() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("after")).unwrap();
        std::fs::write(
            dir.path().join(METRICS_FILE),
            b"\xEF\xBB\xBF{\"error-rate\": 0.01}",
        )
        .unwrap();
        let change = Change::from_dir(dir.path()).unwrap();
        assert_eq!(change.metrics[0].value, 0.01);
    }

    #[cfg(unix)]
    #[test]
    fn symlinks_in_a_change_are_refused_not_skipped_or_followed() {
        use std::os::unix::fs::symlink;
        let outside = tempfile::tempdir().unwrap();
        std::fs::write(outside.path().join("secret.json"), "{}").unwrap();
        // A symlinked document inside after/: refused, never silently skipped.
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("after")).unwrap();
        std::fs::write(dir.path().join("after/plain.json"), "{}").unwrap();
        symlink(
            outside.path().join("secret.json"),
            dir.path().join("after/risky.json"),
        )
        .unwrap();
        match Change::from_dir(dir.path()).unwrap_err() {
            ChangeError::Symlink { path } => assert!(path.ends_with("after/risky.json")),
            other => panic!("{other}"),
        }
        // after/ itself a symlink out of the change: refused, not followed.
        let dir = tempfile::tempdir().unwrap();
        symlink(outside.path(), dir.path().join("after")).unwrap();
        match Change::from_dir(dir.path()).unwrap_err() {
            ChangeError::Symlink { path } => assert!(path.ends_with("after")),
            other => panic!("{other}"),
        }
    }

    #[test]
    fn status_follows_before_and_after() {
        let doc = |b: Option<&str>, a: Option<&str>| {
            Document::new("x.json", b.map(|s| s.into()), a.map(|s| s.into())).status()
        };
        assert_eq!(doc(None, Some("1")), DocumentStatus::Added);
        assert_eq!(doc(Some("1"), None), DocumentStatus::Deleted);
        assert_eq!(doc(Some("1"), Some("1")), DocumentStatus::Unchanged);
        assert_eq!(doc(Some("1"), Some("2")), DocumentStatus::Modified);
    }

    #[test]
    fn bundle_holds_text_and_base64_documents_and_metrics() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("change.json");
        fs::write(
            &path,
            r#"{"documents": [
                {"path": "a.json", "before": "{}", "after": "{\"a\": 1}"},
                {"path": "logo.bin", "after-base64": "AAEC/w==", "media-type": "image/png"}],
               "metrics": {"error-rate": 0.25}}"#,
        )
        .unwrap();
        let change = Change::load(&path).unwrap();
        let logo = change.document("logo.bin").unwrap();
        assert_eq!(logo.after.as_deref(), Some(&[0u8, 1, 2, 255][..]));
        assert_eq!(
            (logo.media_type.as_str(), logo.status()),
            ("image/png", DocumentStatus::Added)
        );
        assert_eq!(
            change.document("a.json").unwrap().status(),
            DocumentStatus::Modified
        );
        assert_eq!(change.metrics[0].value, 0.25);

        fs::write(
            &path,
            r#"{"documents": [{"path": "x", "before": "a", "before-base64": "YQ=="}]}"#,
        )
        .unwrap();
        let err = Change::load(&path).unwrap_err().to_string();
        assert!(err.contains("both `before` and `before-base64`"), "{err}");
        fs::write(&path, r#"{"documents": [{"path": "x"}]}"#).unwrap();
        assert!(
            Change::load(&path)
                .unwrap_err()
                .to_string()
                .contains("neither before nor after")
        );
    }

    #[test]
    fn change_dir_pairs_documents_by_relative_path() {
        let dir = std::env::temp_dir().join(format!("cairn-change-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(dir.join("before/tables")).unwrap();
        fs::create_dir_all(dir.join("after/tables")).unwrap();
        fs::write(dir.join("before/tables/users.yaml"), "a: 1").unwrap();
        fs::write(dir.join("after/tables/users.yaml"), "a: 2").unwrap();
        fs::write(dir.join("before/old.json"), "{}").unwrap();
        fs::write(dir.join("after/new.toml"), "x = 1").unwrap();
        fs::write(dir.join(METRICS_FILE), r#"{"error-rate": 0.5}"#).unwrap();
        let change = Change::from_dir(&dir).unwrap();
        let summary: Vec<_> = change
            .documents()
            .map(|d| (d.path.as_str(), d.media_type.as_str(), d.status()))
            .collect();
        assert_eq!(
            summary,
            vec![
                ("new.toml", "application/toml", DocumentStatus::Added),
                ("old.json", "application/json", DocumentStatus::Deleted),
                (
                    "tables/users.yaml",
                    "application/yaml",
                    DocumentStatus::Modified
                ),
            ]
        );
        assert_eq!(
            change.metrics,
            vec![Metric {
                name: "error-rate".into(),
                value: 0.5
            }]
        );
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn media_types_are_typed_and_hostile_ones_are_refused() {
        assert_eq!(MediaType::for_path("a/B.YML"), MediaType::Yaml);
        assert_eq!(MediaType::for_path("x"), MediaType::OctetStream);
        assert_eq!(MediaType::parse("Application/JSON"), Ok(MediaType::Json));
        assert_eq!(
            MediaType::parse("image/png").map(|m| m.as_str().to_owned()),
            Ok("image/png".to_owned())
        );
        for bad in [
            "",
            "png",
            "image/",
            "/png",
            "a/b c",
            "a/b\u{1b}[31m",
            "a/b;q=1",
            "a/b/c",
        ] {
            assert!(MediaType::parse(bad).is_err(), "{bad:?}");
        }
    }
}
