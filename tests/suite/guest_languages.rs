//! Building and debugging Python and JavaScript plugins (issue 15, items 2
//! and 7).
//!
//! Builds: building a bundled Python or JavaScript plugin twice, into two
//! directories, gives the same sha256, so `cairn lock --check` and pinned
//! digests survive a no-op rebuild. componentize-py's and componentize-js's
//! snapshots are not bit-reproducible from scratch (they hold state seeded
//! from the build machine's entropy and clocks: see host/DESIGN.md), so the
//! SDKs' build scripts are input-addressed: the second build of the same
//! inputs is the first one's component, from the build cache, and any change
//! of the sources builds afresh.
//!
//! Errors: an uncaught exception in a Python or JavaScript plugin is the
//! plugin's own error result, naming the exception's type and message and
//! the plugin's own file and line, with no Rust advice.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use cairn_host::{
    CallOutcome, CallReport, Change, Checkpoint, Document, Limits, Sha256Digest, Verdict,
};
use serde_json::json;

use crate::util::{guests, within};

/// Outer bound of one build: a cold componentize-py build takes ~10-25 s on
/// an idle machine; this leaves room for a loaded CI machine.
const BUILD_BOUND: Duration = Duration::from_secs(300);

/// Outer bound of one call of an already loaded plugin.
const CALL_BOUND: Duration = Duration::from_secs(60);

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ is inside the repo")
        .to_owned()
}

#[derive(Clone, Copy, Debug)]
enum Lang {
    Python,
    Js,
}

/// One build of `plugin` (a folder relative to the repo root) into `output`
/// with the SDK's build script, the build cache at `cache`. Returns what
/// the script printed.
fn build(lang: Lang, plugin: &Path, output: &Path, cache: &Path, extra: &[&str]) -> String {
    let mut command = match lang {
        Lang::Python => {
            let python = std::env::var_os("CAIRN_PYTHON").unwrap_or_else(|| "python3".into());
            let mut command = std::process::Command::new(python);
            command.arg(repo().join("plugin-sdk/python/build.py"));
            command
        }
        Lang::Js => {
            let mut command = std::process::Command::new("node");
            command.arg(repo().join("plugin-sdk/js/build.mjs"));
            command
        }
    };
    command
        .arg(plugin)
        .arg("-o")
        .arg(output)
        .args(extra)
        .env("CAIRN_BUILD_CACHE", cache)
        .env("PYTHONDONTWRITEBYTECODE", "1");
    let out = cairn_tests::run_bounded(&mut command, BUILD_BOUND);
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success(),
        "{lang:?} build of {}:\n{text}",
        plugin.display()
    );
    text
}

fn sha256(path: &Path) -> String {
    Sha256Digest::of(&std::fs::read(path).expect("read a built component")).to_hex()
}

/// The bundled Python and JavaScript plugins, with the build flags
/// tests/build.rs gives them.
const BUNDLED: &[(Lang, &str, &[&str])] = &[
    (Lang::Python, "plugins/secrets-scan-py", &[]),
    (
        Lang::Python,
        "plugins/flaky-upstream-py",
        &["--contract", "0.1.0"],
    ),
    (Lang::Js, "plugins/secrets-scan-js", &[]),
];

#[test]
fn every_bundled_python_and_js_plugin_builds_to_the_same_sha256_twice() {
    let cache = tempfile::tempdir().expect("temp dir");
    let (first, second) = (
        tempfile::tempdir().expect("temp dir"),
        tempfile::tempdir().expect("temp dir"),
    );
    for &(lang, plugin, extra) in BUNDLED {
        let name = Path::new(plugin).file_name().expect("a folder name");
        let a = first.path().join(name).with_extension("wasm");
        let b = second.path().join(name).with_extension("wasm");
        let started = std::time::Instant::now();
        build(lang, &repo().join(plugin), &a, cache.path(), extra);
        let cold = started.elapsed();
        let started = std::time::Instant::now();
        let again = build(lang, &repo().join(plugin), &b, cache.path(), extra);
        let warm = started.elapsed();
        eprintln!("{plugin}: first build {cold:?}, second {warm:?}");
        assert_eq!(sha256(&a), sha256(&b), "{plugin}: two builds differ");
        assert!(
            again.contains("unchanged: from the build cache"),
            "{plugin}: the second build ran the toolchain again:\n{again}"
        );
    }
}

/// The cache never hands back a stale component: a changed source builds
/// afresh (and gives another digest), in both languages.
#[test]
fn a_changed_python_or_js_source_is_built_afresh() {
    let cache = tempfile::tempdir().expect("temp dir");
    for (lang, plugin, app) in [
        (Lang::Python, "plugins/secrets-scan-py", "app.py"),
        (Lang::Js, "plugins/secrets-scan-js", "app.js"),
    ] {
        let work = tempfile::tempdir().expect("temp dir");
        let src = work.path().join("plugin");
        std::fs::create_dir(&src).expect("create the plugin copy");
        let original = std::fs::read_to_string(repo().join(plugin).join(app)).expect("read app");
        std::fs::write(src.join(app), &original).expect("copy app");
        let a = work.path().join("a.wasm");
        let b = work.path().join("b.wasm");
        build(lang, &src, &a, cache.path(), &[]);
        // A change of code (esbuild drops comments, so a JS comment would
        // leave the bundle, and so the component, as it was).
        let change = match lang {
            Lang::Python => "\nCHANGED = True\n",
            Lang::Js => "\nglobalThis.cairnTestChanged = true;\n",
        };
        std::fs::write(src.join(app), format!("{original}{change}")).expect("change app");
        let rebuilt = build(lang, &src, &b, cache.path(), &[]);
        assert!(
            !rebuilt.contains("from the build cache"),
            "{plugin}: a changed source came from the cache:\n{rebuilt}"
        );
        assert_ne!(
            sha256(&a),
            sha256(&b),
            "{plugin}: a changed source gave the same component"
        );
    }
}

/// The 1-based line of `source` (relative to the repo root) holding `needle`.
fn line_of(source: &str, needle: &str) -> usize {
    let text = std::fs::read_to_string(repo().join(source)).expect("read a guest's source");
    text.lines()
        .position(|line| line.contains(needle))
        .unwrap_or_else(|| panic!("{needle:?} is not in {source}"))
        + 1
}

async fn raise(path: &'static str) -> CallReport<Verdict> {
    let plugin = crate::util::load(path);
    let change = Arc::new(Change::new(
        [Document::new("a.json", None, Some(b"{}".to_vec()))],
        Vec::new(),
    ));
    within(
        CALL_BOUND,
        plugin.validate(
            change,
            &Checkpoint::default(),
            &json!({ "mode": "raise" }).to_string(),
            &Limits::default(),
        ),
    )
    .await
}

fn refusal(report: &CallReport<Verdict>) -> &str {
    match &report.outcome {
        CallOutcome::Refused(text) => text,
        other => panic!("expected the plugin's own error, got {other:#?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_uncaught_python_exception_is_the_plugin_s_error_with_its_type_message_and_line() {
    let report = raise(guests::HOSTILE_PY).await;
    let line = line_of("plugin-sdk/python/tests/hostile/app.py", "['steps']");
    assert_eq!(
        refusal(&report),
        format!("KeyError: 'steps' (at app.py line {line}, in validate)")
    );
    // The traceback goes to the log, under the plugin's own file names.
    let stderr = &report.output.stderr;
    assert!(
        stderr.contains(&format!("File \"app.py\", line {line}, in validate")),
        "{stderr}"
    );
    assert!(!stderr.contains("/0/"), "{stderr}");
    assert!(
        !format!("{report:?}").contains("RUST_BACKTRACE"),
        "{report:#?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_uncaught_javascript_error_is_the_plugin_s_error_with_its_type_message_and_line() {
    let report = raise(guests::HOSTILE_JS).await;
    let line = line_of("plugin-sdk/js/tests/hostile/app.js", ".steps.length");
    let text = refusal(&report);
    assert!(text.starts_with("TypeError: "), "{text}");
    assert!(text.contains("steps"), "{text}");
    assert!(
        text.ends_with(&format!("(at app.js line {line}, in validate)")),
        "{text}"
    );
    assert!(
        !format!("{report:?}").contains("RUST_BACKTRACE"),
        "{report:#?}"
    );
    assert!(
        !format!("{report:?}").contains("mozalloc_abort"),
        "{report:#?}"
    );
}

/// The same through the command line: `cairn validate` shows the error
/// itself, and no Rust advice.
#[test]
fn cairn_validate_shows_a_python_or_js_error_readably() {
    let change = tempfile::tempdir().expect("temp dir");
    std::fs::create_dir_all(change.path().join("after")).expect("create after/");
    std::fs::write(change.path().join("after/a.json"), "{}").expect("write a document");
    for (guest, file, needle) in [
        (
            guests::HOSTILE_PY,
            "plugin-sdk/python/tests/hostile/app.py",
            "['steps']",
        ),
        (
            guests::HOSTILE_JS,
            "plugin-sdk/js/tests/hostile/app.js",
            ".steps.length",
        ),
    ] {
        let out = cairn_tests::run_bounded(
            cairn_tests::cairn_command(env!("CARGO_BIN_EXE_cairn-cli"))
                .arg("validate")
                .arg(guest)
                .arg("--change")
                .arg(change.path())
                .args(["--config", r#"{"mode": "raise"}"#]),
            BUILD_BOUND,
        );
        let stdout = String::from_utf8_lossy(&out.stdout);
        let stderr = String::from_utf8_lossy(&out.stderr);
        let name = Path::new(file)
            .file_name()
            .expect("a file name")
            .to_string_lossy();
        let at = format!("(at {name} line {}, in validate)", line_of(file, needle));
        assert!(stdout.contains(&at), "{stdout}\n{stderr}");
        assert!(!stdout.contains("RUST_BACKTRACE"), "{stdout}");
        assert!(!stderr.contains("RUST_BACKTRACE"), "{stderr}");
    }
}
