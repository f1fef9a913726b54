//! The validator side of the SDK: the [`Validator`] trait, typed access to
//! the change, logging, and builders for findings and verdicts.

use crate::__bindings::validator::cairn::plugin::change as wit_change;
pub use crate::__bindings::validator::cairn::plugin::change::{DocStatus, Metric};
pub use crate::__bindings::validator::cairn::plugin::types::{
    Checkpoint, Finding, Location, Outcome, PluginInfo, Severity, Verdict,
};

/// Implement this for your validator and export it with
/// [`export_validator!`](crate::export_validator).
pub trait Validator {
    /// Name, version and description of the plugin.
    fn info() -> PluginInfo;

    /// Judges `change` at checkpoint `at`. `config` is the plugin's config
    /// from the plan as JSON text (`{}` when none is given).
    ///
    /// Return `Err` for problems of the plugin's own (an invalid config);
    /// the host reports it apart from findings about the change.
    fn validate(change: &Change, at: &Checkpoint, config: &str) -> Result<Verdict, String>;
}

/// Exports a [`Validator`] implementation as the plugin's `validation`
/// interface. Use it once per plugin crate.
#[macro_export]
macro_rules! export_validator {
    ($validator:ty) => {
        #[doc(hidden)]
        pub struct __CairnValidatorExport;

        impl $crate::__bindings::validator::exports::cairn::plugin::validation::Guest
            for __CairnValidatorExport
        {
            fn info() -> $crate::PluginInfo {
                $crate::log::__set_sink($crate::log::__v0_1_sink);
                <$validator as $crate::Validator>::info()
            }

            fn validate(
                at: $crate::Checkpoint,
                config: ::std::string::String,
            ) -> ::std::result::Result<$crate::Verdict, ::std::string::String> {
                $crate::log::__set_sink($crate::log::__v0_1_sink);
                <$validator as $crate::Validator>::validate(&$crate::Change::current(), &at, &config)
            }
        }

        $crate::__bindings::validator::__export_validator_world!(
            __CairnValidatorExport with_types_in $crate::__bindings::validator
        );
    };
}

/// One document of the change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Document {
    /// Relative, `/`-separated path (`workflows/orders.json`).
    pub path: String,
    /// The media type exactly as the host sent it. The host assigns one of
    /// the five [`MediaType`]s from the file extension, but a change bundle
    /// may override it with any string (`image/png`). Match on
    /// [`Document::media`] instead of comparing this string.
    pub media_type: String,
    /// Whether the change added, modified, deleted or kept the document.
    pub status: DocStatus,
}

impl Document {
    /// The change adds this document.
    pub fn is_added(&self) -> bool {
        self.status == DocStatus::Added
    }

    /// The change deletes this document.
    pub fn is_deleted(&self) -> bool {
        self.status == DocStatus::Deleted
    }

    /// The change modifies this document.
    pub fn is_modified(&self) -> bool {
        self.status == DocStatus::Modified
    }

    /// The media type, parsed: see [`MediaType::parse`].
    pub fn media(&self) -> MediaType {
        MediaType::parse(&self.media_type)
    }

    /// The media type is `application/json`.
    pub fn is_json(&self) -> bool {
        MediaType::known(&self.media_type) == Some(MediaType::Json)
    }

    /// The media type is `application/yaml`.
    pub fn is_yaml(&self) -> bool {
        MediaType::known(&self.media_type) == Some(MediaType::Yaml)
    }

    /// The media type is `application/toml`.
    pub fn is_toml(&self) -> bool {
        MediaType::known(&self.media_type) == Some(MediaType::Toml)
    }
}

/// The media type of a [`Document`].
///
/// The host assigns one of the first five from the file extension; a change
/// bundle may override it with any string, which parses as
/// [`MediaType::Other`].
///
/// ```
/// use cairn_plugin_sdk::MediaType;
///
/// assert_eq!(MediaType::parse("application/json"), MediaType::Json);
/// assert_eq!(MediaType::parse("Application/JSON; charset=utf-8"), MediaType::Json);
/// assert_eq!(MediaType::parse("image/png"), MediaType::Other("image/png".into()));
/// assert_eq!(MediaType::Yaml.as_str(), "application/yaml");
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum MediaType {
    /// `application/json`: `.json` files.
    Json,
    /// `application/yaml`: `.yaml` and `.yml` files.
    Yaml,
    /// `application/toml`: `.toml` files.
    Toml,
    /// `text/plain`: `.txt`, `.md`, `.csv` and `.sql` files.
    Text,
    /// `application/octet-stream`: files with any other extension.
    OctetStream,
    /// Any other media type a change bundle set, exactly as given
    /// (parameters and case kept). [`MediaType::parse`] never puts one of
    /// the five known types here.
    Other(String),
}

impl MediaType {
    /// Parses a media type string as the host sends it.
    ///
    /// The five known types match case-insensitively (ASCII), ignoring
    /// parameters after a `;` and spaces or tabs around the type
    /// (`Application/JSON; charset=utf-8` is [`MediaType::Json`]). Anything
    /// else is [`MediaType::Other`] holding the string unchanged.
    pub fn parse(media_type: &str) -> MediaType {
        MediaType::known(media_type).unwrap_or_else(|| MediaType::Other(media_type.to_owned()))
    }

    /// The known type `media_type` names, without allocating for others.
    fn known(media_type: &str) -> Option<MediaType> {
        let essence = media_type
            .split(';')
            .next()
            .unwrap_or_default()
            .trim_matches([' ', '\t']);
        [
            MediaType::Json,
            MediaType::Yaml,
            MediaType::Toml,
            MediaType::Text,
            MediaType::OctetStream,
        ]
        .into_iter()
        .find(|known| known.as_str().eq_ignore_ascii_case(essence))
    }

    /// The media type string: the canonical lowercase form for the five
    /// known types, the string as given for [`MediaType::Other`].
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
    /// Writes [`MediaType::as_str`].
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl From<&str> for MediaType {
    /// Same as [`MediaType::parse`].
    fn from(media_type: &str) -> Self {
        MediaType::parse(media_type)
    }
}

impl AsRef<str> for MediaType {
    fn as_ref(&self) -> &str {
        self.as_str()
    }
}

/// The change under validation, read through the host (there is no
/// filesystem in the sandbox).
#[derive(Debug, Clone, Copy)]
pub struct Change {
    _private: (),
}

impl Change {
    #[doc(hidden)]
    pub fn current() -> Change {
        Change { _private: () }
    }

    /// Every document of the change, sorted by path.
    pub fn documents(&self) -> Vec<Document> {
        wit_change::documents()
            .into_iter()
            .map(|doc| Document {
                path: doc.path,
                media_type: doc.media_type,
                status: doc.status,
            })
            .collect()
    }

    /// Content before the change; `None` if added or unknown.
    pub fn before(&self, path: &str) -> Option<Vec<u8>> {
        wit_change::before(path)
    }

    /// Content after the change; `None` if deleted or unknown.
    pub fn after(&self, path: &str) -> Option<Vec<u8>> {
        wit_change::after(path)
    }

    /// Content before the change as UTF-8 text (invalid bytes replaced).
    pub fn before_text(&self, path: &str) -> Option<String> {
        self.before(path).map(lossy_text)
    }

    /// Content after the change as UTF-8 text (invalid bytes replaced).
    pub fn after_text(&self, path: &str) -> Option<String> {
        self.after(path).map(lossy_text)
    }

    /// Metrics observed for this checkpoint.
    pub fn metrics(&self) -> Vec<Metric> {
        wit_change::metrics()
    }

    /// The value of one metric, if it was observed.
    pub fn metric(&self, name: &str) -> Option<f64> {
        self.metrics()
            .into_iter()
            .find(|m| m.name == name)
            .map(|m| m.value)
    }
}

fn lossy_text(bytes: Vec<u8>) -> String {
    String::from_utf8(bytes)
        .unwrap_or_else(|err| String::from_utf8_lossy(err.as_bytes()).into_owned())
}

impl PluginInfo {
    /// What the plugin says about itself, without a config schema. The
    /// same record serves validators and fault injectors.
    pub fn new(
        name: impl Into<String>,
        version: impl Into<String>,
        description: impl Into<String>,
    ) -> Self {
        PluginInfo {
            name: name.into(),
            version: version.into(),
            description: description.into(),
            config_schema: None,
        }
    }

    /// Attaches the JSON Schema (as text) of the config the plugin accepts.
    pub fn with_config_schema(mut self, schema: impl Into<String>) -> Self {
        self.config_schema = Some(schema.into());
        self
    }
}

impl Finding {
    /// A finding of rule `rule` (`my-plugin/some-rule`: no spaces or
    /// control characters) with a one-line message, pointing nowhere yet.
    pub fn new(rule: impl Into<String>, severity: Severity, message: impl Into<String>) -> Self {
        Finding {
            rule: rule.into(),
            severity,
            message: message.into(),
            location: None,
            hint: None,
        }
    }

    /// A finding of severity `error` (the change must not go further).
    pub fn error(rule: impl Into<String>, message: impl Into<String>) -> Self {
        Self::new(rule, Severity::Error, message)
    }

    /// A finding of severity `warning` (a human should look).
    pub fn warning(rule: impl Into<String>, message: impl Into<String>) -> Self {
        Self::new(rule, Severity::Warning, message)
    }

    /// A finding of severity `info`.
    pub fn info(rule: impl Into<String>, message: impl Into<String>) -> Self {
        Self::new(rule, Severity::Info, message)
    }

    /// Points the finding at a document of the change.
    pub fn at(mut self, document: impl Into<String>) -> Self {
        self.location_mut().document = document.into();
        self
    }

    /// Points at a value inside the document (RFC 6901: `/steps/0/retry`).
    pub fn pointer(mut self, pointer: impl Into<String>) -> Self {
        self.location_mut().pointer = Some(pointer.into());
        self
    }

    /// 1-based line (and optionally column) in the document's text.
    pub fn line(mut self, line: u32, column: Option<u32>) -> Self {
        let location = self.location_mut();
        location.line = Some(line);
        location.column = column;
        self
    }

    /// How to fix the problem.
    pub fn hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }

    fn location_mut(&mut self) -> &mut Location {
        self.location.get_or_insert_with(|| Location {
            document: String::new(),
            pointer: None,
            line: None,
            column: None,
        })
    }
}

impl Verdict {
    /// Nothing to object to, no findings.
    pub fn pass() -> Self {
        Verdict {
            outcome: Outcome::Pass,
            findings: Vec::new(),
            summary: None,
        }
    }

    /// The validator could not decide (a metric it needs is missing, say);
    /// `summary` says why.
    pub fn inconclusive(summary: impl Into<String>) -> Self {
        Verdict {
            outcome: Outcome::Inconclusive,
            findings: Vec::new(),
            summary: Some(summary.into()),
        }
    }

    /// Outcome from the worst finding: any error fails, any warning warns,
    /// otherwise (info or nothing) passes.
    pub fn from_findings(findings: Vec<Finding>) -> Self {
        let outcome = if findings.iter().any(|f| f.severity == Severity::Error) {
            Outcome::Fail
        } else if findings.iter().any(|f| f.severity == Severity::Warning) {
            Outcome::Warn
        } else {
            Outcome::Pass
        };
        Verdict {
            outcome,
            findings,
            summary: None,
        }
    }

    /// Sets the one-sentence summary for the report header.
    pub fn with_summary(mut self, summary: impl Into<String>) -> Self {
        self.summary = Some(summary.into());
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outcome_follows_the_worst_finding() {
        assert_eq!(Verdict::from_findings(vec![]).outcome, Outcome::Pass);
        assert_eq!(
            Verdict::from_findings(vec![Finding::info("r", "m")]).outcome,
            Outcome::Pass
        );
        let warn = vec![Finding::info("r", "m"), Finding::warning("r", "m")];
        assert_eq!(Verdict::from_findings(warn).outcome, Outcome::Warn);
        let fail = vec![Finding::warning("r", "m"), Finding::error("r", "m")];
        assert_eq!(Verdict::from_findings(fail).outcome, Outcome::Fail);
    }

    #[test]
    fn media_types_the_host_assigns_parse_to_their_variants() {
        let known = [
            ("application/json", MediaType::Json),
            ("application/yaml", MediaType::Yaml),
            ("application/toml", MediaType::Toml),
            ("text/plain", MediaType::Text),
            ("application/octet-stream", MediaType::OctetStream),
        ];
        for (text, media_type) in known {
            assert_eq!(MediaType::parse(text), media_type);
            assert_eq!(media_type.as_str(), text);
            assert_eq!(media_type.to_string(), text);
            assert_eq!(MediaType::from(text), media_type);
        }
    }

    #[test]
    fn media_type_parsing_ignores_case_parameters_and_spaces() {
        assert_eq!(MediaType::parse("Application/JSON"), MediaType::Json);
        assert_eq!(
            MediaType::parse("application/json; charset=utf-8"),
            MediaType::Json
        );
        assert_eq!(
            MediaType::parse(" TEXT/Plain ;format=flowed"),
            MediaType::Text
        );
        assert_eq!(MediaType::parse("application/yaml;"), MediaType::Yaml);
        // The canonical form, not the string as given.
        assert_eq!(
            MediaType::parse("Application/TOML; x=y").as_str(),
            "application/toml"
        );
    }

    #[test]
    fn other_media_types_are_kept_as_given() {
        for text in [
            "image/png",
            "Image/PNG; q=1",
            "",
            "application/json5",
            "application/jsonx",
            "application/x-yaml",
            "text/plain-ish",
            "json",
            "application/json/extra",
            // Non-ASCII is never folded or trimmed.
            "application/octet-stream\u{212A}",
        ] {
            let parsed = MediaType::parse(text);
            assert_eq!(parsed, MediaType::Other(text.to_owned()), "{text:?}");
            assert_eq!(parsed.as_str(), text);
            assert_eq!(parsed.to_string(), text);
        }
    }

    #[test]
    fn document_predicates_use_the_parsed_media_type() {
        let doc = |media_type: &str| Document {
            path: "a".into(),
            media_type: media_type.into(),
            status: DocStatus::Added,
        };
        assert!(doc("application/json").is_json());
        assert!(doc("application/JSON;charset=utf-8").is_json());
        assert!(!doc("application/json5").is_json());
        assert!(!doc("application/yaml").is_json());
        assert!(doc("application/yaml").is_yaml());
        assert!(doc("application/toml").is_toml());
        assert!(!doc("text/plain").is_toml());
        assert_eq!(doc("text/plain").media(), MediaType::Text);
        assert_eq!(
            doc("image/png").media(),
            MediaType::Other("image/png".into())
        );
    }

    #[test]
    fn finding_builder_fills_the_location() {
        let finding = Finding::error("r", "m")
            .at("a.json")
            .pointer("/x")
            .line(3, Some(7))
            .hint("h");
        let location = finding.location.unwrap();
        assert_eq!(location.document, "a.json");
        assert_eq!(location.pointer.as_deref(), Some("/x"));
        assert_eq!((location.line, location.column), (Some(3), Some(7)));
        assert_eq!(finding.hint.as_deref(), Some("h"));
    }
}
