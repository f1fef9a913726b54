//! `api-contract` measured against oasdiff (issue 16): the wasm plugin runs
//! over every spec pair in `tests/corpus/oasdiff/pairs` — oasdiff's own test
//! specs, each with what oasdiff's checker tests assert about it — and must
//! find at least 90 % of the pairs oasdiff calls breaking, failing or warning
//! on at most one pair oasdiff calls non-breaking.
//!
//! "Breaking" on both sides means the same thing: oasdiff's
//! `CheckBackwardCompatibility` returns changes of level ERR or WARN (INFO is
//! not breaking); cairn's verdict is `fail` or `warn` (an error or warning
//! finding). A pair directory is named `breaking--…` or `non-breaking--…`;
//! its `oasdiff.json` names the assertion it comes from. The plugin runs
//! with `today` set (see [`CONFIG`]).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use cairn_host::{CallOutcome, Change, Checkpoint, Document, Limits, Outcome};

use crate::util::{guests, load, within};

/// Outer bound of loading the plugin and judging every pair (each call ends
/// in milliseconds under the default limits).
const CORPUS_BOUND: Duration = Duration::from_secs(120);

/// The least share of oasdiff's breaking pairs cairn must find.
const MIN_RECALL: f64 = 0.9;

/// The most pairs oasdiff calls non-breaking that cairn may fail or warn on.
const MAX_FALSE_FAILURES: usize = 1;

/// The plugin's config for every pair. oasdiff compares `x-sunset` dates
/// with the day it runs; plugins have no clock, so the date is given (any
/// day between the corpus's past sunsets, 2022, and its future ones, 9999,
/// gives the same verdicts).
const CONFIG: &str = r#"{"today": "2026-12-01"}"#;

fn pairs_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("corpus/oasdiff/pairs")
}

/// One pair: its name, whether oasdiff calls it breaking, and the document
/// before and after (path named after the file, so the media type follows).
struct Pair {
    name: String,
    oasdiff_breaking: bool,
    document: Document,
}

fn read_pairs() -> Vec<Pair> {
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(pairs_dir())
        .expect("tests/corpus/oasdiff/pairs is readable")
        .map(|entry| entry.expect("directory entry").path())
        .filter(|path| path.is_dir())
        .collect();
    dirs.sort();
    dirs.into_iter()
        .map(|dir| {
            let name = dir
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            let oasdiff_breaking = if name.starts_with("breaking--") {
                true
            } else if name.starts_with("non-breaking--") {
                false
            } else {
                panic!("{name}: a pair is named breaking--… or non-breaking--…")
            };
            let side = |stem: &str| {
                ["yaml", "json"]
                    .iter()
                    .map(|ext| dir.join(format!("{stem}.{ext}")))
                    .find(|path| path.is_file())
                    .unwrap_or_else(|| panic!("{name}: no {stem}.yaml or {stem}.json"))
            };
            let (before, after) = (side("before"), side("after"));
            let ext = before
                .extension()
                .map(|e| e.to_string_lossy().into_owned())
                .unwrap_or_default();
            let document = Document::new(
                format!("api/openapi.{ext}"),
                Some(std::fs::read(&before).expect("before is readable")),
                Some(std::fs::read(&after).expect("after is readable")),
            );
            Pair {
                name,
                oasdiff_breaking,
                document,
            }
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_contract_finds_the_breaking_changes_oasdiff_asserts_on_its_own_specs() {
    let pairs = read_pairs();
    assert!(pairs.len() >= 40, "only {} pairs", pairs.len());
    let judged: Vec<(Pair, Outcome, Vec<String>)> = within(CORPUS_BOUND, async {
        let plugin = load(guests::API_CONTRACT);
        let mut judged = Vec::new();
        for pair in pairs {
            let change = Arc::new(Change::new([pair.document.clone()], Vec::new()));
            let report = plugin
                .validate(change, &Checkpoint::default(), CONFIG, &Limits::default())
                .await;
            let CallOutcome::Completed(verdict) = report.outcome else {
                panic!(
                    "{}: the plugin did not complete: {:?}",
                    pair.name, report.outcome
                );
            };
            let rules = verdict
                .findings
                .iter()
                .filter(|f| f.severity != cairn_host::Severity::Info)
                .map(|f| f.rule.clone())
                .collect();
            judged.push((pair, verdict.outcome, rules));
        }
        judged
    })
    .await;

    let mut table = vec![format!(
        "{:<70} {:<12} {:<6} cairn findings (error/warning)",
        "pair", "oasdiff", "cairn"
    )];
    let (mut breaking, mut found, mut non_breaking, mut false_failures) = (0, 0, 0, 0);
    for (pair, outcome, rules) in &judged {
        let cairn_breaking = matches!(outcome, Outcome::Fail | Outcome::Warn);
        if pair.oasdiff_breaking {
            breaking += 1;
            found += usize::from(cairn_breaking);
        } else {
            non_breaking += 1;
            false_failures += usize::from(cairn_breaking);
        }
        let mark = if cairn_breaking == pair.oasdiff_breaking {
            ""
        } else if pair.oasdiff_breaking {
            "  <- MISSED"
        } else {
            "  <- FALSE FAILURE"
        };
        table.push(format!(
            "{:<70} {:<12} {:<6} {}{mark}",
            pair.name,
            if pair.oasdiff_breaking {
                "breaking"
            } else {
                "non-breaking"
            },
            format!("{outcome:?}").to_lowercase(),
            rules.join(", ")
        ));
    }
    let recall = found as f64 / breaking.max(1) as f64;
    table.push(format!(
        "recall {found}/{breaking} = {:.1} %; false failures {false_failures}/{non_breaking}",
        recall * 100.0
    ));
    let table = table.join("\n");
    eprintln!("{table}");
    assert!(
        recall >= MIN_RECALL,
        "recall below {:.0} %:\n{table}",
        MIN_RECALL * 100.0
    );
    assert!(
        false_failures <= MAX_FALSE_FAILURES,
        "{false_failures} false failures:\n{table}"
    );
}
