//! `cairn plugin new`: writes a new plugin project (Rust, Python or
//! JavaScript; validator or fault injector) that builds and passes its own
//! golden cases (`samples/`, run by `cairn plugin test`) as generated.
//! Validators are built against contract 0.1.0, fault injectors against
//! 0.2.0. Templates are embedded in the binary. A project depends on the SDK
//! package of its language by name and version (`cairn-plugin-sdk` on
//! crates.io, PyPI or npm), or on a local copy of it by a path relative to
//! the project ([`SdkSource`]); never by an absolute path.

use std::fmt;
use std::fs;
use std::path::{Path, PathBuf};
use std::str::FromStr;

/// The language of a new plugin.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Lang {
    Rust,
    Python,
    Js,
}

impl Lang {
    pub const ALL: [Lang; 3] = [Lang::Rust, Lang::Python, Lang::Js];

    pub fn as_str(self) -> &'static str {
        match self {
            Lang::Rust => "rust",
            Lang::Python => "python",
            Lang::Js => "js",
        }
    }
}

impl fmt::Display for Lang {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Lang {
    type Err = ScaffoldError;

    fn from_str(s: &str) -> Result<Lang, ScaffoldError> {
        match s {
            "rust" => Ok(Lang::Rust),
            "python" | "py" => Ok(Lang::Python),
            "js" | "javascript" => Ok(Lang::Js),
            other => Err(ScaffoldError::UnknownLang(other.to_owned())),
        }
    }
}

/// The world a new plugin implements.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    Validator,
    FaultInjector,
}

impl Kind {
    pub const ALL: [Kind; 2] = [Kind::Validator, Kind::FaultInjector];

    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Validator => "validator",
            Kind::FaultInjector => "fault-injector",
        }
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Kind {
    type Err = ScaffoldError;

    fn from_str(s: &str) -> Result<Kind, ScaffoldError> {
        match s {
            "validator" => Ok(Kind::Validator),
            "fault-injector" => Ok(Kind::FaultInjector),
            other => Err(ScaffoldError::UnknownKind(other.to_owned())),
        }
    }
}

/// Why a project could not be written.
#[derive(Debug, thiserror::Error)]
pub enum ScaffoldError {
    #[error(
        "invalid plugin name {0:?}: use lowercase letters, digits and single dashes, starting with a letter (at most {MAX_NAME_LEN} characters)"
    )]
    InvalidName(String),
    #[error("unknown language {0:?}: expected rust, python or js")]
    UnknownLang(String),
    #[error("unknown plugin kind {0:?}: expected validator or fault-injector")]
    UnknownKind(String),
    #[error("{0} already exists; choose another name or remove it")]
    Exists(PathBuf),
    #[error("--sdk {}: {reason}", path.display())]
    Sdk { path: PathBuf, reason: String },
    #[error("cannot write {path}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// Longest plugin name accepted. Names become crate names, file names and
/// rule-id prefixes; 64 characters keeps all of them readable.
pub const MAX_NAME_LEN: usize = 64;

/// The SDK packages' version: what a project depends on when it uses the
/// published packages, and the version a local copy is expected to carry.
pub const SDK_VERSION: &str = env!("CARGO_PKG_VERSION");

/// Where a new project's SDK dependency comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SdkSource {
    /// The published package, `cairn-plugin-sdk` [`SDK_VERSION`], from the
    /// language's registry.
    Published,
    /// A local copy: for Rust the crate's directory (a checkout's
    /// `plugin-sdk/`, or an unpacked `.crate`); for Python the package's
    /// directory (`plugin-sdk/python`) or a wheel; for JavaScript the
    /// package's directory (`plugin-sdk/js`) or an `npm pack` tarball. The
    /// project names it by a path relative to itself.
    Local(PathBuf),
}

/// The SDK package of `lang` in the cairn checkout this binary was built
/// from, when that checkout is still there (a `cargo install --path host`
/// keeps pointing at it).
pub fn checkout_sdk(lang: Lang) -> Option<PathBuf> {
    let sdk = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()?
        .join("plugin-sdk");
    let (package, manifest) = match lang {
        Lang::Rust => (sdk.clone(), "Cargo.toml"),
        Lang::Python => (sdk.join("python"), "pyproject.toml"),
        Lang::Js => (sdk.join("js"), "package.json"),
    };
    package.join(manifest).is_file().then_some(package)
}

/// Writes a new plugin project `dest/NAME` and returns its path. Its SDK
/// dependency is `sdk`: the published package, or a local copy named by a
/// path relative to the project.
pub fn scaffold(
    name: &str,
    lang: Lang,
    kind: Kind,
    dest: &Path,
    sdk: &SdkSource,
) -> Result<PathBuf, ScaffoldError> {
    check_name(name)?;
    let project = dest.join(name);
    if project.exists() {
        return Err(ScaffoldError::Exists(project));
    }
    let dependency = match sdk {
        SdkSource::Published => Dependency::Published,
        SdkSource::Local(path) => {
            check_local_sdk(lang, path)?;
            fs::create_dir_all(dest).map_err(|source| ScaffoldError::Io {
                path: dest.to_owned(),
                source,
            })?;
            let io = |path: &Path| {
                let path = path.to_owned();
                move |source| ScaffoldError::Io { path, source }
            };
            let from = fs::canonicalize(dest).map_err(io(dest))?.join(name);
            let to = fs::canonicalize(path).map_err(io(path))?;
            Dependency::Local(relative_path(&from, &to))
        }
    };
    let vars = Vars {
        name,
        crate_name: &name.replace('-', "_"),
        dependency,
    };
    for (path, template) in files(lang, kind) {
        let target = project.join(path);
        if let Some(parent) = target.parent() {
            fs::create_dir_all(parent).map_err(|source| ScaffoldError::Io {
                path: parent.to_owned(),
                source,
            })?;
        }
        fs::write(&target, vars.render(lang, template)).map_err(|source| ScaffoldError::Io {
            path: target.clone(),
            source,
        })?;
        if path.ends_with(".sh") {
            make_executable(&target)?;
        }
    }
    Ok(project)
}

/// Checks that `path` is a copy of `lang`'s SDK package a project can
/// depend on.
fn check_local_sdk(lang: Lang, path: &Path) -> Result<(), ScaffoldError> {
    let refuse = |reason: &str| {
        Err(ScaffoldError::Sdk {
            path: path.to_owned(),
            reason: reason.to_owned(),
        })
    };
    let (manifest, package_file, expected) = match lang {
        Lang::Rust => (
            "Cargo.toml",
            None,
            "a Rust SDK is the crate's directory (holding Cargo.toml), such as a cairn checkout's plugin-sdk/ or an unpacked cairn-plugin-sdk .crate",
        ),
        Lang::Python => (
            "pyproject.toml",
            Some(".whl"),
            "a Python SDK is the package's directory (holding pyproject.toml), such as a cairn checkout's plugin-sdk/python, or a cairn_plugin_sdk wheel (.whl)",
        ),
        Lang::Js => (
            "package.json",
            Some(".tgz"),
            "a JavaScript SDK is the package's directory (holding package.json), such as a cairn checkout's plugin-sdk/js, or an `npm pack` tarball (.tgz)",
        ),
    };
    let metadata = match fs::metadata(path) {
        Ok(metadata) => metadata,
        Err(err) => return refuse(&format!("cannot read it ({err})")),
    };
    let is_package_file = package_file
        .is_some_and(|suffix| metadata.is_file() && path.to_string_lossy().ends_with(suffix));
    if is_package_file || (metadata.is_dir() && path.join(manifest).is_file()) {
        Ok(())
    } else {
        refuse(expected)
    }
}

/// `to` as a path relative to `from` (both absolute, symlinks resolved),
/// with `/` separators: what the project's files name the SDK by.
fn relative_path(from: &Path, to: &Path) -> String {
    let from: Vec<_> = from.components().collect();
    let to: Vec<_> = to.components().collect();
    let common = from.iter().zip(&to).take_while(|(a, b)| a == b).count();
    let mut parts: Vec<String> = vec!["..".to_owned(); from.len() - common];
    parts.extend(
        to[common..]
            .iter()
            .map(|part| part.as_os_str().to_string_lossy().into_owned()),
    );
    if parts.is_empty() {
        ".".to_owned()
    } else {
        parts.join("/")
    }
}

fn check_name(name: &str) -> Result<(), ScaffoldError> {
    let valid = name.len() <= MAX_NAME_LEN
        && name.starts_with(|c: char| c.is_ascii_lowercase())
        && !name.ends_with('-')
        && !name.contains("--")
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
    if valid {
        Ok(())
    } else {
        Err(ScaffoldError::InvalidName(name.to_owned()))
    }
}

#[cfg(unix)]
fn make_executable(path: &Path) -> Result<(), ScaffoldError> {
    use std::os::unix::fs::PermissionsExt;
    fs::set_permissions(path, fs::Permissions::from_mode(0o755)).map_err(|source| {
        ScaffoldError::Io {
            path: path.to_owned(),
            source,
        }
    })
}

#[cfg(not(unix))]
fn make_executable(_path: &Path) -> Result<(), ScaffoldError> {
    Ok(())
}

/// The SDK dependency a project is written with.
enum Dependency {
    Published,
    /// A path relative to the project.
    Local(String),
}

struct Vars<'a> {
    name: &'a str,
    crate_name: &'a str,
    dependency: Dependency,
}

impl Vars<'_> {
    fn render(&self, lang: Lang, template: &str) -> String {
        template
            .replace("{{sdk-dependency}}", &self.sdk_dependency(lang))
            .replace("{{sdk-note}}", &self.sdk_note(lang))
            .replace("{{sdk-version}}", SDK_VERSION)
            .replace("{{name}}", self.name)
            .replace("{{crate}}", self.crate_name)
    }

    /// The dependency as the language's manifest writes it: a line of
    /// Cargo.toml, of requirements.txt, or a package.json version spec.
    fn sdk_dependency(&self, lang: Lang) -> String {
        match (&self.dependency, lang) {
            (Dependency::Published, Lang::Rust) => {
                format!("cairn-plugin-sdk = \"{SDK_VERSION}\"")
            }
            (Dependency::Local(path), Lang::Rust) => format!(
                "cairn-plugin-sdk = {{ version = \"{SDK_VERSION}\", path = {} }}",
                toml_string(path)
            ),
            (Dependency::Published, Lang::Python) => format!("cairn-plugin-sdk=={SDK_VERSION}"),
            // pip reads a relative path as one only when it starts with
            // `./` or `../`, relative to where pip runs.
            (Dependency::Local(path), Lang::Python) if path.starts_with("..") => path.clone(),
            (Dependency::Local(path), Lang::Python) => format!("./{path}"),
            (Dependency::Published, Lang::Js) => json_string(SDK_VERSION),
            (Dependency::Local(path), Lang::Js) => json_string(&format!("file:{path}")),
        }
    }

    /// The README's paragraph on where the SDK comes from and how to switch.
    fn sdk_note(&self, lang: Lang) -> String {
        let (file, published) = match lang {
            Lang::Rust => (
                "Cargo.toml",
                format!("`cairn-plugin-sdk = \"{SDK_VERSION}\"` (crates.io)"),
            ),
            Lang::Python => (
                "requirements.txt",
                format!("`cairn-plugin-sdk=={SDK_VERSION}` (PyPI)"),
            ),
            Lang::Js => (
                "package.json",
                format!("`\"cairn-plugin-sdk\": \"{SDK_VERSION}\"` (npm)"),
            ),
        };
        let local = match lang {
            Lang::Rust => {
                "`cairn-plugin-sdk = { version = \"…\", path = \"RELATIVE/PATH/TO/plugin-sdk\" }` (the crate's directory)"
            }
            Lang::Python => {
                "a path starting with `./` or `../` (the package's directory, such as a checkout's `plugin-sdk/python`, or a wheel)"
            }
            Lang::Js => {
                "`\"file:RELATIVE/PATH\"` (the package's directory, such as a checkout's `plugin-sdk/js`, or an `npm pack` tarball)"
            }
        };
        let now = match &self.dependency {
            Dependency::Published => format!("the published package, {published}"),
            Dependency::Local(path) => {
                format!("a local copy at `{path}` (relative to this project)")
            }
        };
        format!(
            "The SDK dependency in `{file}` is {now}.\n\n\
             A local copy (a cairn checkout's, or a downloaded package) is written \
             {local}; the published package {published}. `cairn plugin new --sdk \
             PATH|published` writes either form for you."
        )
    }
}

/// `text` as a TOML basic string.
fn toml_string(text: &str) -> String {
    toml::Value::String(text.to_owned()).to_string()
}

/// `text` as a JSON string.
fn json_string(text: &str) -> String {
    serde_json::Value::String(text.to_owned()).to_string()
}

/// (path in the project, template) of every file of a project.
fn files(lang: Lang, kind: Kind) -> Vec<(&'static str, &'static str)> {
    let mut files = match (lang, kind) {
        (Lang::Rust, Kind::Validator) => vec![
            ("Cargo.toml", RUST_CARGO_TOML),
            ("src/lib.rs", RUST_VALIDATOR),
            ("README.md", RUST_VALIDATOR_README),
        ],
        (Lang::Rust, Kind::FaultInjector) => vec![
            ("Cargo.toml", RUST_CARGO_TOML),
            ("src/lib.rs", RUST_FAULT_INJECTOR),
            ("README.md", RUST_FAULT_INJECTOR_README),
        ],
        (Lang::Python, Kind::Validator) => vec![
            (
                "app.py",
                include_str!("../../../plugin-sdk/python/template/validator.py"),
            ),
            (
                "build.sh",
                include_str!("../../../plugin-sdk/python/template/build.sh"),
            ),
            ("requirements.txt", PYTHON_REQUIREMENTS),
            ("README.md", PYTHON_VALIDATOR_README),
        ],
        (Lang::Python, Kind::FaultInjector) => vec![
            (
                "app.py",
                include_str!("../../../plugin-sdk/python/template/fault-injector.py"),
            ),
            (
                "build.sh",
                include_str!("../../../plugin-sdk/python/template/build.sh"),
            ),
            ("requirements.txt", PYTHON_REQUIREMENTS),
            ("README.md", PYTHON_FAULT_INJECTOR_README),
        ],
        (Lang::Js, Kind::Validator) => vec![
            (
                "app.js",
                include_str!("../../../plugin-sdk/js/template/validator.js"),
            ),
            (
                "build.sh",
                include_str!("../../../plugin-sdk/js/template/build.sh"),
            ),
            ("package.json", JS_PACKAGE_JSON),
            ("README.md", JS_VALIDATOR_README),
        ],
        (Lang::Js, Kind::FaultInjector) => vec![
            (
                "app.js",
                include_str!("../../../plugin-sdk/js/template/fault-injector.js"),
            ),
            (
                "build.sh",
                include_str!("../../../plugin-sdk/js/template/build.sh"),
            ),
            ("package.json", JS_PACKAGE_JSON),
            ("README.md", JS_FAULT_INJECTOR_README),
        ],
    };
    files.push((
        ".gitignore",
        match lang {
            Lang::Js => "/target\n/node_modules\n",
            Lang::Rust | Lang::Python => "/target\n",
        },
    ));
    match kind {
        Kind::Validator => files.extend([
            (
                "samples/clean/change/after/config.json",
                "{\"replicas\": 2}\n",
            ),
            ("samples/clean/expected.json", "{\"outcome\": \"pass\"}\n"),
            (
                "samples/empty-document/change/before/config.json",
                "{\"replicas\": 2}\n",
            ),
            ("samples/empty-document/change/after/config.json", ""),
            (
                "samples/empty-document/expected.json",
                r#"{"outcome": "fail",
 "findings": [{"rule": "{{name}}/empty-document", "severity": "error", "document": "config.json"}]}
"#,
            ),
        ]),
        Kind::FaultInjector => files.extend_from_slice(FAULT_SAMPLES),
    }
    files
}

/// The fault injector templates' golden cases (`cairn plugin test --cases
/// samples`), the same in every language. With the default config, 5% of
/// the random range is below 922337203685477632 (`chance(5)`): the first two
/// cases sit on either side of that edge, so every SDK must draw exactly
/// alike.
const FAULT_SAMPLES: &[(&str, &str)] = &[
    (
        "samples/aborts-a-request-in-the-abort-share/request.json",
        "{\"method\": \"POST\", \"path\": \"/orders\", \"random\": 922337203685477631}\n",
    ),
    (
        "samples/aborts-a-request-in-the-abort-share/expected.json",
        r#"{"decision": {"action": {"kind": "abort", "status": 503,
                         "headers": [["retry-after", "1"]],
                         "body": "injected by {{name}}"}}}
"#,
    ),
    (
        "samples/delays-a-request-past-the-abort-share/request.json",
        "{\"path\": \"/orders/42\", \"random\": 922337203685477632}\n",
    ),
    (
        "samples/delays-a-request-past-the-abort-share/expected.json",
        "{\"decision\": {\"delay-response-ms\": 100, \"action\": {\"kind\": \"forward\"}}}\n",
    ),
    (
        "samples/forwards-a-request-with-the-bypass-header/request.json",
        "{\"path\": \"/orders\", \"headers\": [[\"x-cairn-bypass\", \"1\"]], \"random\": 0}\n",
    ),
    (
        "samples/forwards-a-request-with-the-bypass-header/expected.json",
        "{\"decision\": {\"action\": {\"kind\": \"forward\"}}}\n",
    ),
    (
        "samples/config-sets-share-status-and-delay/request.json",
        "{\"random\": 9223372036854775807}\n",
    ),
    (
        "samples/config-sets-share-status-and-delay/config.json",
        "{\"abort-percent\": 50, \"status\": 429, \"delay-ms\": 0}\n",
    ),
    (
        "samples/config-sets-share-status-and-delay/expected.json",
        r#"{"decision": {"action": {"kind": "abort", "status": 429,
                         "headers": [["retry-after", "1"]],
                         "body": "injected by {{name}}"}}}
"#,
    ),
    ("samples/refuses-an-invalid-config/request.json", "{}\n"),
    (
        "samples/refuses-an-invalid-config/config.json",
        "{\"abort-percent\": 150}\n",
    ),
    (
        "samples/refuses-an-invalid-config/expected.json",
        "{\"refused\": {\"contains\": \"abort-percent must be a number from 0 to 100\"}}\n",
    ),
];

const RUST_CARGO_TOML: &str = r#"[package]
name = "{{name}}"
version = "0.1.0"
edition = "2024"
publish = false

[lib]
crate-type = ["cdylib"]

[dependencies]
{{sdk-dependency}}
serde_json = "1"

# A workspace of its own, even when created inside another one.
[workspace]
"#;

const RUST_VALIDATOR: &str = r#"//! {{name}}: a cairn validator.

use cairn_plugin_sdk::{Change, Checkpoint, Finding, PluginInfo, Validator, Verdict, log};

struct NoEmptyDocuments;

impl Validator for NoEmptyDocuments {
    fn info() -> PluginInfo {
        PluginInfo::new(
            "{{name}}",
            env!("CARGO_PKG_VERSION"),
            "Fails when an added or modified document is empty",
        )
    }

    fn validate(change: &Change, at: &Checkpoint, config: &str) -> Result<Verdict, String> {
        if !matches!(config.trim(), "" | "{}") {
            return Err("this plugin takes no config".into());
        }
        log::info(&format!("checking {} at {}", at.change_id, at.name));
        let findings: Vec<Finding> = change
            .documents()
            .into_iter()
            .filter(|doc| doc.is_added() || doc.is_modified())
            .filter(|doc| change.after(&doc.path).is_some_and(|bytes| bytes.is_empty()))
            .map(|doc| {
                Finding::error("{{name}}/empty-document", format!("{} is empty", doc.path))
                    .at(&doc.path)
                    .hint("delete the document instead of emptying it")
            })
            .collect();
        let summary = format!("{} empty document(s)", findings.len());
        Ok(Verdict::from_findings(findings).with_summary(summary))
    }
}

cairn_plugin_sdk::export_validator!(NoEmptyDocuments);
"#;

const RUST_FAULT_INJECTOR: &str = r#"//! {{name}}: a cairn fault injector (contract cairn:plugin@0.2.0).
//!
//! Answers a share of requests with an error and delays the others'
//! responses, deterministically: the request's random number decides, so
//! the same experiment seed replays the same faults. Requests with an
//! `x-cairn-bypass` header are forwarded untouched.
//!
//! Config (JSON, every key optional):
//!
//! ```json
//! {"abort-percent": 5,   share of requests answered instead of forwarded (0 to 100)
//!  "status": 503,        status of those answers (100 to 999)
//!  "delay-ms": 100}      how long the other responses are held
//! ```

use cairn_plugin_sdk::{Decision, FaultInjector, PluginInfo, Request};

struct Config {
    abort_percent: f64,
    status: u16,
    delay_ms: u32,
}

impl Config {
    fn parse(text: &str) -> Result<Config, String> {
        let value: serde_json::Value =
            serde_json::from_str(text).map_err(|err| format!("invalid config: {err}"))?;
        let object = value
            .as_object()
            .ok_or("invalid config: expected a JSON object")?;
        let mut config = Config {
            abort_percent: 5.0,
            status: 503,
            delay_ms: 100,
        };
        for (key, value) in object {
            match key.as_str() {
                "abort-percent" => {
                    config.abort_percent = value
                        .as_f64()
                        .filter(|percent| (0.0..=100.0).contains(percent))
                        .ok_or("invalid config: abort-percent must be a number from 0 to 100")?;
                }
                "status" => {
                    config.status = value
                        .as_u64()
                        .and_then(|status| u16::try_from(status).ok())
                        .filter(|status| (100..=999).contains(status))
                        .ok_or("invalid config: status must be an integer from 100 to 999")?;
                }
                "delay-ms" => {
                    config.delay_ms = value
                        .as_u64()
                        .and_then(|ms| u32::try_from(ms).ok())
                        .ok_or("invalid config: delay-ms must be an integer from 0 to 4294967295")?;
                }
                other => return Err(format!("invalid config: unknown key {other}")),
            }
        }
        Ok(config)
    }
}

struct AbortOrDelay;

impl FaultInjector for AbortOrDelay {
    fn info() -> PluginInfo {
        PluginInfo::new(
            "{{name}}",
            env!("CARGO_PKG_VERSION"),
            "Aborts a share of requests and delays the other responses",
        )
    }

    fn decide(request: &Request, config: &str) -> Result<Decision, String> {
        let config = Config::parse(config)?;
        if request.header("x-cairn-bypass").is_some() {
            return Ok(Decision::pass());
        }
        if request.chance(config.abort_percent) {
            return Ok(Decision::abort(config.status)
                .with_header("retry-after", "1")
                .with_body("injected by {{name}}"));
        }
        Ok(Decision::pass().with_response_delay(config.delay_ms))
    }
}

cairn_plugin_sdk::export_fault_injector!(AbortOrDelay);
"#;

/// What every fault injector's README ends with: the golden case format.
/// A macro, so that `concat!` can append it to each README template.
macro_rules! fault_cases_readme {
    () => {
        r#"
## Golden cases

Each directory under `samples/` is one case:

- `request.json`: the request the plugin is asked about. Every field is
  optional (kebab-case): `method` (`GET`), `scheme` (`http`), `authority`
  (`127.0.0.1`), `path` (`/`), `query`, `headers` (`[["name", "value"]]`,
  names lower-case), `body-size`, `attempt` (1), `sequence` (0),
  `elapsed-ms` (0), `active-faults` (0) and `random` (0): the request's
  random number in 0..2^64, from which `chance` and `random_below` draw.
- `config.json` (optional): the plugin's config; `{}` when absent.
- `expected.json`: the decision the plugin must return, compared for
  equality, such as
  `{"decision": {"delay-response-ms": 100, "action": {"kind": "forward"}}}`
  (a missing `delay-request-ms` or `delay-response-ms` is 0, a missing
  `body` means no body faults), or a refusal: `{"refused": {"contains":
  "text"}}` when the plugin must refuse with a reason containing that text
  (`"refused": "text"` is the whole reason, `"refused": true` any).

Actions: `{"kind": "forward"}`, `{"kind": "reset"}`,
`{"kind": "hang", "ms": 500}`, `{"kind": "abort", "status": 503,
"headers": [["retry-after", "1"]], "body": "text"}`. Body faults (for
`forward`): `"body": {"throttle-bytes-per-second": 1024,
"truncate-after-bytes": 100, "corrupt-bytes": 2}`.

With the default config, `chance(5)` is true for a `random` below
922337203685477632 (5% of 2^64): the first two samples sit on either side.
"#
    };
}

const PYTHON_REQUIREMENTS: &str =
    "# The cairn Python SDK (it brings the pinned componentize-py). Install, from
# this directory: python3 -m pip install -r requirements.txt
{{sdk-dependency}}
";

const JS_PACKAGE_JSON: &str = r#"{
  "name": "{{name}}",
  "version": "0.1.0",
  "private": true,
  "type": "module",
  "scripts": {
    "build": "cairn-js-build . -o target/{{crate}}.wasm"
  },
  "dependencies": {
    "cairn-plugin-sdk": {{sdk-dependency}}
  }
}
"#;

/// A README's part on where the SDK comes from, the guide, and `cairn`
/// itself; the same in every language.
macro_rules! sdk_readme {
    ($guide:literal) => {
        concat!(
            r#"
## The SDK

{{sdk-note}}

The guide for plugin authors is `plugin-sdk/"#,
            $guide,
            r#"` in the cairn repository: the config
schema, findings with locations, refusals, logs, golden cases,
pre-initialisation, limits and pinning a digest.

`cairn` itself: `cargo install --path host` in a cairn checkout puts it on
your PATH.
"#
        )
    };
}

const RUST_VALIDATOR_README: &str = concat!(
    r#"# {{name}}

A cairn validator in Rust. Build it (needs `rustup target add wasm32-wasip2`):

```sh
cargo build --release --target wasm32-wasip2
```

Run it on a sample change:

```sh
cairn validate target/wasm32-wasip2/release/{{crate}}.wasm --change samples/clean/change
```

`samples/clean` passes and `samples/empty-document` fails (see each
`expected.json`). The samples are golden cases: run them all, with a diff
for any that fails, with

```sh
cairn plugin test target/wasm32-wasip2/release/{{crate}}.wasm --cases samples
```
"#,
    sdk_readme!("docs/rust.md")
);

const RUST_FAULT_INJECTOR_README: &str = concat!(
    r#"# {{name}}

A cairn fault injector in Rust, built against contract `cairn:plugin@0.2.0`.
Build it (needs `rustup target add wasm32-wasip2`):

```sh
cargo build --release --target wasm32-wasip2
```

Test it on its golden cases:

```sh
cairn plugin test target/wasm32-wasip2/release/{{crate}}.wasm --cases samples
```
"#,
    sdk_readme!("docs/rust.md"),
    "(Its section 12 covers fault injectors.)\n",
    fault_cases_readme!()
);

/// How to set up and build a Python project.
macro_rules! python_setup_readme {
    () => {
        r#"Set up once, from this directory, preferably in a virtual environment
(Python 3.10+):

```sh
python3 -m venv .venv && . .venv/bin/activate
python3 -m pip install -r requirements.txt   # cairn-plugin-sdk and its componentize-py
```

Build (writes `target/{{crate}}.wasm`):

```sh
./build.sh
```
"#
    };
}

/// How to set up and build a JavaScript project.
macro_rules! js_setup_readme {
    () => {
        r#"Build (Node 20+; the first build runs `npm install`, which installs
cairn-plugin-sdk with componentize-js and esbuild; it writes
`target/{{crate}}.wasm`):

```sh
./build.sh        # or: npm install && npm run build
```
"#
    };
}

/// The validator READMEs' part after setup, the same in Python and JS.
macro_rules! interpreted_validator_readme {
    () => {
        r#"
Run it on a sample change:

```sh
cairn validate target/{{crate}}.wasm --change samples/clean/change
```

`samples/clean` passes and `samples/empty-document` fails (see each
`expected.json`). The samples are golden cases: run them all, with a diff
for any that fails, with

```sh
cairn plugin test target/{{crate}}.wasm --cases samples
```
"#
    };
}

/// The fault injector READMEs' part after setup, the same in Python and JS.
macro_rules! interpreted_fault_injector_readme {
    () => {
        r#"
Test it on its golden cases:

```sh
cairn plugin test target/{{crate}}.wasm --cases samples
```
"#
    };
}

const PYTHON_VALIDATOR_README: &str = concat!(
    "# {{name}}\n\nA cairn validator in Python.\n\n",
    python_setup_readme!(),
    interpreted_validator_readme!(),
    sdk_readme!("docs/python.md"),
);

const PYTHON_FAULT_INJECTOR_README: &str = concat!(
    "# {{name}}\n\nA cairn fault injector in Python, built against contract `cairn:plugin@0.2.0`.\n\n",
    python_setup_readme!(),
    interpreted_fault_injector_readme!(),
    sdk_readme!("docs/python.md"),
    "(Its section 12 covers fault injectors.)\n",
    fault_cases_readme!()
);

const JS_VALIDATOR_README: &str = concat!(
    "# {{name}}\n\nA cairn validator in JavaScript.\n\n",
    js_setup_readme!(),
    interpreted_validator_readme!(),
    sdk_readme!("docs/javascript.md"),
);

const JS_FAULT_INJECTOR_README: &str = concat!(
    "# {{name}}\n\nA cairn fault injector in JavaScript, built against contract `cairn:plugin@0.2.0`.\n\n",
    js_setup_readme!(),
    interpreted_fault_injector_readme!(),
    sdk_readme!("docs/javascript.md"),
    "(Its section 12 covers fault injectors.)\n",
    fault_cases_readme!()
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_must_be_lowercase_dashed_identifiers() {
        for good in ["a", "my-check", "check2", "no-empty-docs"] {
            assert!(check_name(good).is_ok(), "{good}");
        }
        let too_long = "a".repeat(MAX_NAME_LEN + 1);
        for bad in [
            "", "My", "1abc", "a_b", "a--b", "a-", "-a", "a b", "../x", &too_long,
        ] {
            assert!(
                matches!(check_name(bad), Err(ScaffoldError::InvalidName(_))),
                "{bad}"
            );
        }
    }

    /// Every file of every language and kind, written with the published
    /// SDK and with a local copy: no placeholder is left and no absolute path
    /// (nor the temporary directory's name) is written.
    #[test]
    fn every_language_and_kind_renders_without_placeholders_or_absolute_paths() {
        let root = tempfile::tempdir().expect("tempdir");
        let dest = root.path().join("projects");
        let sdk = root.path().join("vendor/sdk");
        fs::create_dir_all(&sdk).expect("mkdir");
        for manifest in ["Cargo.toml", "pyproject.toml", "package.json"] {
            fs::write(sdk.join(manifest), "").expect("write");
        }
        let root_name = root.path().to_string_lossy().into_owned();
        for source in [SdkSource::Published, SdkSource::Local(sdk.clone())] {
            for lang in Lang::ALL {
                for kind in Kind::ALL {
                    let local = matches!(source, SdkSource::Local(_));
                    let name = format!(
                        "p-{lang}-{kind}-{}",
                        if local { "local" } else { "published" }
                    );
                    let project = scaffold(&name, lang, kind, &dest, &source).expect("scaffolds");
                    for (path, _) in files(lang, kind) {
                        let text = fs::read_to_string(project.join(path)).expect("written");
                        assert!(
                            !text.contains("{{"),
                            "{lang} {kind}: {path} keeps a placeholder"
                        );
                        assert!(
                            !text.contains(&root_name),
                            "{lang} {kind}: {path} names an absolute path:\n{text}"
                        );
                    }
                    let manifest = match lang {
                        Lang::Rust => "Cargo.toml",
                        Lang::Python => "requirements.txt",
                        Lang::Js => "package.json",
                    };
                    let text = fs::read_to_string(project.join(manifest)).expect("written");
                    let expected = match (lang, local) {
                        (Lang::Rust, false) => format!("cairn-plugin-sdk = \"{SDK_VERSION}\""),
                        (Lang::Rust, true) => format!(
                            "cairn-plugin-sdk = {{ version = \"{SDK_VERSION}\", path = \"../../vendor/sdk\" }}"
                        ),
                        (Lang::Python, false) => format!("cairn-plugin-sdk=={SDK_VERSION}"),
                        (Lang::Python, true) => "../../vendor/sdk".to_owned(),
                        (Lang::Js, false) => format!("\"cairn-plugin-sdk\": \"{SDK_VERSION}\""),
                        (Lang::Js, true) => {
                            "\"cairn-plugin-sdk\": \"file:../../vendor/sdk\"".to_owned()
                        }
                    };
                    assert!(
                        text.lines().any(|line| line.trim() == expected),
                        "{lang} {kind} {manifest} lacks `{expected}`:\n{text}"
                    );
                }
            }
        }
    }

    #[test]
    fn relative_paths_climb_to_the_common_ancestor() {
        assert_eq!(
            relative_path(Path::new("/a/b/p"), Path::new("/a/sdk")),
            "../../sdk"
        );
        assert_eq!(
            relative_path(Path::new("/a/p"), Path::new("/a/p/vendor/sdk")),
            "vendor/sdk"
        );
        assert_eq!(relative_path(Path::new("/a/p"), Path::new("/a/p")), ".");
        assert_eq!(
            relative_path(Path::new("/p"), Path::new("/x/y.whl")),
            "../x/y.whl"
        );
    }

    #[test]
    fn a_local_sdk_must_be_the_language_s_package() {
        let dir = tempfile::tempdir().expect("tempdir");
        let empty = dir.path().join("empty");
        fs::create_dir(&empty).expect("mkdir");
        let wheel = dir.path().join("cairn_plugin_sdk-0.1.0-py3-none-any.whl");
        fs::write(&wheel, "").expect("write");
        let tarball = dir.path().join("cairn-plugin-sdk-0.1.0.tgz");
        fs::write(&tarball, "").expect("write");
        let dest = dir.path().join("projects");
        let attempt = |lang, sdk: &Path| {
            scaffold(
                "x",
                lang,
                Kind::Validator,
                &dest,
                &SdkSource::Local(sdk.to_owned()),
            )
            .map(|project| fs::remove_dir_all(project).expect("cleanup"))
        };
        for lang in Lang::ALL {
            let err = attempt(lang, &empty).expect_err("an empty directory is no SDK");
            assert!(matches!(err, ScaffoldError::Sdk { .. }), "{lang}: {err}");
            let err = attempt(lang, &dir.path().join("missing")).expect_err("missing");
            assert!(err.to_string().contains("cannot read it"), "{lang}: {err}");
        }
        attempt(Lang::Python, &wheel).expect("a wheel is a Python SDK");
        attempt(Lang::Js, &tarball).expect("a tarball is a JS SDK");
        assert!(
            attempt(Lang::Rust, &tarball).is_err(),
            "a tarball is no Rust SDK"
        );
        assert!(attempt(Lang::Js, &wheel).is_err(), "a wheel is no JS SDK");
        assert!(
            !dest.join("x").exists(),
            "nothing is written for a refused SDK"
        );
    }

    #[test]
    fn every_template_s_samples_load_as_golden_cases_of_its_kind() {
        use crate::authoring::golden;
        let dest = tempfile::tempdir().expect("tempdir");
        for lang in Lang::ALL {
            let validator = scaffold(
                &format!("v-{lang}"),
                lang,
                Kind::Validator,
                dest.path(),
                &SdkSource::Published,
            )
            .expect("scaffolds");
            let cases =
                golden::load_cases(&validator.join("samples")).expect("validator samples load");
            assert_eq!(cases.len(), 2, "{lang}");

            let injector = scaffold(
                &format!("f-{lang}"),
                lang,
                Kind::FaultInjector,
                dest.path(),
                &SdkSource::Published,
            )
            .expect("scaffolds");
            let cases = golden::load_fault_cases(&injector.join("samples"))
                .expect("fault-injector samples load");
            let names: Vec<&str> = cases.iter().map(|case| case.name.as_str()).collect();
            assert_eq!(
                names,
                vec![
                    "aborts-a-request-in-the-abort-share",
                    "config-sets-share-status-and-delay",
                    "delays-a-request-past-the-abort-share",
                    "forwards-a-request-with-the-bypass-header",
                    "refuses-an-invalid-config",
                ],
                "{lang}"
            );
            let body = format!("injected by f-{lang}");
            assert!(
                cases.iter().any(|case| matches!(
                    &case.expected,
                    golden::FaultExpected::Decision(decision)
                        if matches!(&decision.action, crate::runtime::inject::Action::Abort(abort)
                            if abort.body.as_deref() == Some(body.as_bytes()))
                )),
                "{lang}: the abort samples name the plugin"
            );
        }
    }

    #[test]
    fn an_existing_directory_is_never_overwritten() {
        let dest = tempfile::tempdir().expect("tempdir");
        fs::create_dir(dest.path().join("taken")).expect("mkdir");
        let err = scaffold(
            "taken",
            Lang::Rust,
            Kind::Validator,
            dest.path(),
            &SdkSource::Published,
        );
        assert!(matches!(err, Err(ScaffoldError::Exists(_))), "{err:?}");
    }

    #[test]
    fn lang_and_kind_parse_from_their_command_line_names() {
        for lang in Lang::ALL {
            assert_eq!(lang.as_str().parse::<Lang>().ok(), Some(lang));
        }
        for kind in Kind::ALL {
            assert_eq!(kind.as_str().parse::<Kind>().ok(), Some(kind));
        }
        assert!(matches!(
            "go".parse::<Lang>(),
            Err(ScaffoldError::UnknownLang(_))
        ));
    }
}
