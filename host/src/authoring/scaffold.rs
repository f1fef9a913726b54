//! `cairn plugin new`: writes a new plugin project (Rust, Python or
//! JavaScript; validator or fault injector) that builds and passes its own
//! golden cases (`samples/`, run by `cairn plugin test`) as generated.
//! Validators are built against contract 0.1.0, fault injectors against
//! 0.2.0. Templates are embedded in the binary.

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

/// Where the cairn checkout (and so the SDKs) is: generated projects point
/// their SDK dependency and build script here.
pub fn default_sdk_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap_or_else(|| Path::new(".."))
        .join("plugin-sdk")
}

/// Writes a new plugin project `dest/NAME` and returns its path. The project
/// points at the SDKs of this cairn checkout ([`default_sdk_root`]).
pub fn scaffold(name: &str, lang: Lang, kind: Kind, dest: &Path) -> Result<PathBuf, ScaffoldError> {
    scaffold_with_sdk(name, lang, kind, dest, &default_sdk_root())
}

/// As [`scaffold`], with the `plugin-sdk` directory given explicitly.
pub fn scaffold_with_sdk(
    name: &str,
    lang: Lang,
    kind: Kind,
    dest: &Path,
    sdk_root: &Path,
) -> Result<PathBuf, ScaffoldError> {
    check_name(name)?;
    let project = dest.join(name);
    if project.exists() {
        return Err(ScaffoldError::Exists(project));
    }
    let vars = Vars {
        name,
        crate_name: &name.replace('-', "_"),
        sdk: &sdk_root.display().to_string(),
    };
    for (path, template) in files(lang, kind) {
        let target = project.join(path);
        if let Some(parent) = target.parent() {
            fs::create_dir_all(parent).map_err(|source| ScaffoldError::Io {
                path: parent.to_owned(),
                source,
            })?;
        }
        fs::write(&target, vars.render(template)).map_err(|source| ScaffoldError::Io {
            path: target.clone(),
            source,
        })?;
        if path.ends_with(".sh") {
            make_executable(&target)?;
        }
    }
    Ok(project)
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

struct Vars<'a> {
    name: &'a str,
    crate_name: &'a str,
    sdk: &'a str,
}

impl Vars<'_> {
    fn render(&self, template: &str) -> String {
        template
            .replace("{{name}}", self.name)
            .replace("{{crate}}", self.crate_name)
            .replace("{{sdk}}", self.sdk)
    }
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
            ("README.md", INTERPRETED_VALIDATOR_README),
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
            ("README.md", INTERPRETED_FAULT_INJECTOR_README),
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
            ("README.md", INTERPRETED_VALIDATOR_README),
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
            ("README.md", INTERPRETED_FAULT_INJECTOR_README),
        ],
    };
    files.push((".gitignore", "/target\n"));
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
        "{\"refused\": \"abort-percent must be a number from 0 to 100\"}\n",
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
cairn-plugin-sdk = { path = "{{sdk}}" }
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
  `body` means no body faults), or `{"refused": "text"}` when the plugin must
  refuse with a reason containing that text.

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

const RUST_VALIDATOR_README: &str = r#"# {{name}}

A cairn validator in Rust. Build it (needs `rustup target add wasm32-wasip2`):

```sh
cargo build --release --target wasm32-wasip2
```

Run it on its sample changes, from your cairn checkout:

```sh
cargo run --release -- validate PATH/TO/{{name}}/target/wasm32-wasip2/release/{{crate}}.wasm --change PATH/TO/{{name}}/samples/clean/change
```

`samples/clean` passes and `samples/empty-document` fails (see each
`expected.json`). The samples are golden cases: run them all, with a diff
for any that fails, with

```sh
cargo run --release -- plugin test PATH/TO/{{name}}/target/wasm32-wasip2/release/{{crate}}.wasm --cases PATH/TO/{{name}}/samples
```

The guide for plugin authors is `plugin-sdk/docs/rust.md` in the cairn
repository (the checkout this project's `cairn-plugin-sdk` dependency
points to): the config schema, findings with locations, refusals, logs,
golden cases, pre-initialisation, limits and pinning a digest.
"#;

const RUST_FAULT_INJECTOR_README: &str = concat!(
    r#"# {{name}}

A cairn fault injector in Rust, built against contract `cairn:plugin@0.2.0`.
Build it (needs `rustup target add wasm32-wasip2`):

```sh
cargo build --release --target wasm32-wasip2
```

The component is `target/wasm32-wasip2/release/{{crate}}.wasm`. Test it on
its golden cases, from your cairn checkout:

```sh
cargo run --release -- plugin test PATH/TO/{{name}}/target/wasm32-wasip2/release/{{crate}}.wasm --cases PATH/TO/{{name}}/samples
```

The guide for plugin authors is `plugin-sdk/docs/rust.md` in the cairn
repository (the checkout this project's `cairn-plugin-sdk` dependency
points to); its section 12 covers fault injectors.
"#,
    fault_cases_readme!()
);

const INTERPRETED_VALIDATOR_README: &str = r#"# {{name}}

A cairn validator. Build it (the one-time setup is in the cairn
repository's guide for your language: `plugin-sdk/docs/python.md` or
`plugin-sdk/docs/javascript.md`, which also cover the config schema,
findings with locations, refusals, logs, golden cases and limits):

```sh
./build.sh
```

Run it on its sample changes, from your cairn checkout:

```sh
cargo run --release -- validate PATH/TO/{{name}}/target/{{crate}}.wasm --change PATH/TO/{{name}}/samples/clean/change
```

`samples/clean` passes and `samples/empty-document` fails (see each
`expected.json`). The samples are golden cases: run them all, with a diff
for any that fails, with

```sh
cargo run --release -- plugin test PATH/TO/{{name}}/target/{{crate}}.wasm --cases PATH/TO/{{name}}/samples
```
"#;

const INTERPRETED_FAULT_INJECTOR_README: &str = concat!(
    r#"# {{name}}

A cairn fault injector, built against contract `cairn:plugin@0.2.0`. Build
it (the one-time setup is in the cairn repository's guide for your
language: `plugin-sdk/docs/python.md` or `plugin-sdk/docs/javascript.md`,
whose section 12 covers fault injectors):

```sh
./build.sh
```

The component is `target/{{crate}}.wasm`. Test it on its golden cases, from
your cairn checkout:

```sh
cargo run --release -- plugin test PATH/TO/{{name}}/target/{{crate}}.wasm --cases PATH/TO/{{name}}/samples
```
"#,
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

    #[test]
    fn every_language_and_kind_renders_without_leftover_placeholders() {
        let dest = tempfile::tempdir().expect("tempdir");
        for lang in Lang::ALL {
            for kind in Kind::ALL {
                let name = format!("p-{lang}-{kind}");
                let project = scaffold_with_sdk(&name, lang, kind, dest.path(), Path::new("/sdk"))
                    .expect("scaffolds");
                for (path, _) in files(lang, kind) {
                    let text = fs::read_to_string(project.join(path)).expect("written");
                    assert!(
                        !text.contains("{{"),
                        "{lang} {kind}: {path} keeps a placeholder"
                    );
                }
            }
        }
    }

    #[test]
    fn every_template_s_samples_load_as_golden_cases_of_its_kind() {
        use crate::authoring::golden;
        let dest = tempfile::tempdir().expect("tempdir");
        for lang in Lang::ALL {
            let validator = scaffold(&format!("v-{lang}"), lang, Kind::Validator, dest.path())
                .expect("scaffolds");
            let cases =
                golden::load_cases(&validator.join("samples")).expect("validator samples load");
            assert_eq!(cases.len(), 2, "{lang}");

            let injector = scaffold(&format!("f-{lang}"), lang, Kind::FaultInjector, dest.path())
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
        let err = scaffold("taken", Lang::Rust, Kind::Validator, dest.path());
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
