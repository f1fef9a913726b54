//! Golden test cases for fault injectors: loading cases made of a request
//! and the decision expected for it, running the plugin's `decide` on each
//! through [`Plugin::decide`], and comparing field by field.
//!
//! A case is a directory `cases/<name>/` holding `request.json` (a
//! [`RequestInfo`] as JSON: kebab-case, every field optional, see
//! [`RequestInfo::default`]), an optional `config.json` (the plugin config,
//! `{}` when absent) and `expected.json`, either the decision:
//!
//! ```json
//! {"decision": {"delay-response-ms": 100,
//!               "action": {"kind": "abort", "status": 503,
//!                          "headers": [["retry-after", "1"]], "body": "try later"}}}
//! ```
//!
//! (a [`Decision`] as JSON: a missing `delay-request-ms` or
//! `delay-response-ms` is 0, a missing `body` no body faults; `action` is
//! `{"kind": "forward"}`, `{"kind": "reset"}`, `{"kind": "hang", "ms": N}`
//! or an abort as above), compared for equality, or a refusal:
//!
//! ```json
//! {"refused": {"contains": "invalid config"}}
//! ```
//!
//! which passes when the plugin returns its own `err`: as in validator
//! cases, `true` for any refusal, a string for exactly that text, or
//! `{"contains": ...}` for a text containing a part.
//!
//! With `--bless` ([`super::bless_cases`]) the plugin's current answer is
//! written as `expected.json`: the decision in full, or the whole refusal.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::{
    CaseError, CaseResult, EXPECTED_FILE, ExpectedRefusal, Mismatch, case_dirs, case_name,
    output_lines, quoted, read_config, read_json, refusal_file, to_file, write_expected,
};
use crate::runtime::call::CallOutcome;
use crate::runtime::inject::{Action, Decision, RequestInfo};
use crate::runtime::limits::Limits;
use crate::runtime::plugin::Plugin;

/// Name of the file with the request of a fault-injector case.
pub const REQUEST_FILE: &str = "request.json";

/// What a fault-injector case's `expected.json` says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FaultExpected {
    /// The plugin must decide exactly this.
    Decision(Decision),
    /// The plugin must refuse: any refusal, its exact text, or a text
    /// containing a part (as a validator case's `refused`).
    Refused(ExpectedRefusal),
}

/// `expected.json` as written: exactly one of the two keys.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ExpectedFile {
    decision: Option<Decision>,
    #[serde(default, deserialize_with = "super::refusal")]
    refused: Option<ExpectedRefusal>,
}

/// One loaded fault-injector case.
#[derive(Debug, Clone)]
pub struct FaultCase {
    /// The case directory's name.
    pub name: String,
    /// The case directory.
    pub dir: PathBuf,
    /// What the plugin is asked about.
    pub request: RequestInfo,
    /// The plugin config, as JSON text.
    pub config: String,
    /// What the plugin must answer.
    pub expected: FaultExpected,
}

impl FaultCase {
    /// Loads the case in `dir`.
    pub fn load(dir: &Path) -> Result<FaultCase, CaseError> {
        let (request, config) = load_input(dir)?;
        let expected_path = dir.join(EXPECTED_FILE);
        if !expected_path.exists() {
            return Err(CaseError::NoExpected {
                path: dir.to_owned(),
            });
        }
        let file: ExpectedFile = read_json(&expected_path)?;
        let expected = match (file.decision, file.refused) {
            (Some(decision), None) => FaultExpected::Decision(decision),
            (None, Some(refusal)) => FaultExpected::Refused(refusal),
            (Some(_), Some(_)) => {
                return Err(CaseError::Invalid {
                    path: expected_path,
                    reason: "`decision` and `refused` exclude each other".into(),
                });
            }
            (None, None) => {
                return Err(CaseError::Invalid {
                    path: expected_path,
                    reason: "needs `decision` (or `refused`: true, the refusal's text, or {\"contains\": \"<part>\"})".into(),
                });
            }
        };
        Ok(FaultCase {
            name: case_name(dir),
            dir: dir.to_owned(),
            request,
            config,
            expected,
        })
    }

    /// Runs `plugin`'s `decide` on this case and compares.
    pub async fn run(&self, plugin: &Plugin, limits: &Limits) -> CaseResult {
        let report = plugin.decide(&self.request, &self.config, limits).await;
        CaseResult {
            output: output_lines(&report.output),
            mismatches: compare_decision(&self.expected, &report.outcome),
            ..CaseResult::new(&self.name)
        }
    }
}

/// The request and the plugin config of the case in `dir`.
fn load_input(dir: &Path) -> Result<(RequestInfo, String), CaseError> {
    let request_path = dir.join(REQUEST_FILE);
    if !request_path.is_file() {
        let reason = if dir.join(super::CHANGE_DIR).is_dir() {
            format!(
                "has no {REQUEST_FILE} but a {}/: a validator case, but the plugin is a fault injector",
                super::CHANGE_DIR
            )
        } else {
            format!("has no {REQUEST_FILE} (the request to decide, `{{}}` for the defaults)")
        };
        return Err(CaseError::Invalid {
            path: dir.to_owned(),
            reason,
        });
    }
    let request: RequestInfo = read_json(&request_path)?;
    Ok((request, read_config(dir)?))
}

/// Runs `plugin`'s `decide` on the case in `dir` and writes its answer as
/// the case's `expected.json`: `{"decision": ...}`, or `{"refused":
/// "<the whole refusal>"}`.
pub(super) async fn bless_fault_case(dir: &Path, plugin: &Plugin, limits: &Limits) -> CaseResult {
    #[derive(Serialize)]
    struct File<'a> {
        decision: &'a Decision,
    }
    let name = case_name(dir);
    let (request, config) = match load_input(dir) {
        Ok(input) => input,
        Err(err) => return CaseResult::broken(&name, &err),
    };
    let report = plugin.decide(&request, &config, limits).await;
    let output = output_lines(&report.output);
    let text = match &report.outcome {
        CallOutcome::Completed(decision) => to_file(&File { decision }),
        CallOutcome::Refused(reason) => refusal_file(reason),
        CallOutcome::Stopped(failure) => {
            return CaseResult {
                output,
                mismatches: vec![Mismatch::Stopped {
                    failure: format!("{}: {}", failure.kind, failure.message),
                }],
                ..CaseResult::new(&name)
            };
        }
    };
    let mut result = write_expected(dir, &name, &text);
    result.output = output;
    result
}

/// Loads every fault-injector case under `cases_dir` (one subdirectory per
/// case), sorted by name.
pub fn load_fault_cases(cases_dir: &Path) -> Result<Vec<FaultCase>, CaseError> {
    case_dirs(cases_dir)?
        .iter()
        .map(|dir| FaultCase::load(dir))
        .collect()
}

/// Compares what a `decide` call ended with against the expectation: for a
/// different decision, one [`Mismatch::DecisionField`] per differing field,
/// then both decisions in full.
pub fn compare_decision(expected: &FaultExpected, actual: &CallOutcome<Decision>) -> Vec<Mismatch> {
    match (expected, actual) {
        (_, CallOutcome::Stopped(failure)) => vec![Mismatch::Stopped {
            failure: format!("{}: {}", failure.kind, failure.message),
        }],
        (FaultExpected::Refused(ExpectedRefusal::Any), CallOutcome::Refused(_)) => Vec::new(),
        (FaultExpected::Refused(ExpectedRefusal::Text(text)), CallOutcome::Refused(reason)) => {
            if text.matches(reason) {
                Vec::new()
            } else {
                vec![Mismatch::Field {
                    field: "refusal".into(),
                    expected: text.to_string(),
                    actual: quoted(reason),
                }]
            }
        }
        (FaultExpected::Decision(_), CallOutcome::Refused(reason)) => vec![Mismatch::Refused {
            reason: reason.clone(),
        }],
        (FaultExpected::Refused(_), CallOutcome::Completed(decision)) => vec![Mismatch::Decided {
            decision: Box::new(decision.clone()),
        }],
        (FaultExpected::Decision(wanted), CallOutcome::Completed(decision)) => {
            if wanted == decision {
                return Vec::new();
            }
            let mut mismatches = field_differences(wanted, decision);
            mismatches.push(Mismatch::Decision {
                expected: Box::new(wanted.clone()),
                actual: Box::new(decision.clone()),
            });
            mismatches
        }
    }
}

/// A decision as compact JSON, in the case format.
pub(crate) fn decision_json(decision: &Decision) -> String {
    serde_json::to_string(decision).unwrap_or_else(|err| format!("<unprintable decision: {err}>"))
}

/// The fields of a decision by their names in the case format, with their
/// values as JSON text (`none` for an absent optional value). The fields of
/// an action are given only for the kind of action it is.
fn fields(decision: &Decision) -> Vec<(&'static str, String)> {
    let optional = |value: Option<String>| value.unwrap_or_else(|| "none".to_owned());
    let mut fields = vec![
        ("delay-request-ms", decision.delay_request_ms.to_string()),
        ("delay-response-ms", decision.delay_response_ms.to_string()),
        ("action.kind", action_kind(&decision.action).to_owned()),
    ];
    match &decision.action {
        Action::Forward | Action::Reset => {}
        Action::Abort(abort) => {
            fields.push(("action.status", abort.status.to_string()));
            fields.push((
                "action.headers",
                serde_json::to_string(&abort.headers)
                    .unwrap_or_else(|err| format!("<unprintable headers: {err}>")),
            ));
            fields.push((
                "action.body",
                optional(abort.body.as_deref().map(body_json)),
            ));
        }
        Action::Hang { millis } => fields.push(("action.ms", millis.to_string())),
    }
    let body = &decision.body;
    fields.push((
        "body.throttle-bytes-per-second",
        optional(body.throttle_bytes_per_second.map(|n| n.to_string())),
    ));
    fields.push((
        "body.truncate-after-bytes",
        optional(body.truncate_after_bytes.map(|n| n.to_string())),
    ));
    fields.push((
        "body.corrupt-bytes",
        optional(body.corrupt_bytes.map(|n| n.to_string())),
    ));
    fields
}

fn action_kind(action: &Action) -> &'static str {
    match action {
        Action::Forward => "forward",
        Action::Abort(_) => "abort",
        Action::Reset => "reset",
        Action::Hang { .. } => "hang",
    }
}

/// An abort body as the case format writes it: a JSON string when it is
/// UTF-8, else its bytes.
fn body_json(body: &[u8]) -> String {
    match std::str::from_utf8(body) {
        Ok(text) => serde_json::Value::from(text).to_string(),
        Err(_) => format!("{} bytes, not UTF-8", body.len()),
    }
}

/// One mismatch per field whose value differs. When the action's kind
/// differs, its other fields are not compared (the full decisions follow).
fn field_differences(expected: &Decision, actual: &Decision) -> Vec<Mismatch> {
    let kinds_differ = action_kind(&expected.action) != action_kind(&actual.action);
    let actual_fields = fields(actual);
    let mut mismatches = Vec::new();
    for (field, wanted) in fields(expected) {
        if kinds_differ && field.starts_with("action.") && field != "action.kind" {
            continue;
        }
        let got = actual_fields
            .iter()
            .find(|(name, _)| *name == field)
            .map(|(_, value)| value.clone())
            .unwrap_or_else(|| "none".to_owned());
        if got != wanted {
            mismatches.push(Mismatch::DecisionField {
                field: field.to_owned(),
                expected: wanted,
                actual: got,
            });
        }
    }
    mismatches
}

#[cfg(test)]
mod tests {
    use std::fs;

    use super::*;
    use crate::authoring::golden::{CONFIG_FILE, TextMatch};
    use crate::runtime::failure::{Failure, FailureKind};
    use crate::runtime::inject::{AbortResponse, BodyFaults};

    fn abort(status: u16) -> Decision {
        Decision {
            action: Action::Abort(AbortResponse {
                status,
                headers: vec![("retry-after".into(), "1".into())],
                body: Some(b"try later".to_vec()),
            }),
            ..Decision::PASS
        }
    }

    fn delayed(ms: u32) -> Decision {
        Decision {
            delay_response_ms: ms,
            ..Decision::PASS
        }
    }

    /// Writes a case directory with the given files.
    fn write_case(files: &[(&str, &str)]) -> tempfile::TempDir {
        let dir = tempfile::tempdir().expect("temp dir");
        for (name, text) in files {
            fs::write(dir.path().join(name), text).expect("write case file");
        }
        dir
    }

    #[test]
    fn a_case_loads_its_request_config_and_decision_with_serde_defaults() {
        let dir = write_case(&[
            (
                REQUEST_FILE,
                r#"{"path": "/orders/1", "random": 18446744073709551615, "headers": [["x-tenant", "acme"]]}"#,
            ),
            (CONFIG_FILE, r#"{"percent": 5}"#),
            (
                EXPECTED_FILE,
                r#"{"decision": {"action": {"kind": "abort", "status": 503, "headers": [["retry-after", "1"]], "body": "try later"}}}"#,
            ),
        ]);
        let case = FaultCase::load(dir.path()).expect("loads");
        assert_eq!(case.request.path, "/orders/1");
        assert_eq!(case.request.random, u64::MAX);
        assert_eq!(
            case.request.headers,
            vec![("x-tenant".to_owned(), "acme".to_owned())]
        );
        // Every field not given keeps its default.
        assert_eq!(case.request.method, "GET");
        assert_eq!(case.request.attempt, 1);
        assert_eq!(case.config, r#"{"percent":5}"#);
        assert_eq!(case.expected, FaultExpected::Decision(abort(503)));
    }

    #[test]
    fn an_empty_request_and_no_config_mean_the_defaults() {
        let dir = write_case(&[
            (REQUEST_FILE, "{}"),
            (
                EXPECTED_FILE,
                r#"{"decision": {"action": {"kind": "forward"}}}"#,
            ),
        ]);
        let case = FaultCase::load(dir.path()).expect("loads");
        assert_eq!(case.request, RequestInfo::default());
        assert_eq!(case.config, "{}");
        assert_eq!(case.expected, FaultExpected::Decision(Decision::PASS));
    }

    #[test]
    fn a_refusal_expectation_keeps_its_text() {
        let dir = write_case(&[
            (REQUEST_FILE, "{}"),
            (EXPECTED_FILE, r#"{"refused": "invalid config"}"#),
        ]);
        let case = FaultCase::load(dir.path()).expect("loads");
        assert_eq!(
            case.expected,
            FaultExpected::Refused(ExpectedRefusal::Text(TextMatch::Exact(
                "invalid config".into()
            )))
        );
    }

    #[test]
    fn malformed_cases_are_errors_naming_the_file_at_fault() {
        let cases: [(&[(&str, &str)], &str); 6] = [
            (
                &[(EXPECTED_FILE, r#"{"refused": ""}"#)],
                "has no request.json",
            ),
            (
                &[
                    (REQUEST_FILE, r#"{"pth": "/"}"#),
                    (EXPECTED_FILE, r#"{"refused": ""}"#),
                ],
                REQUEST_FILE,
            ),
            (
                &[(REQUEST_FILE, "{}"), (EXPECTED_FILE, "{}")],
                "needs `decision`",
            ),
            (
                &[
                    (REQUEST_FILE, "{}"),
                    (
                        EXPECTED_FILE,
                        r#"{"decision": {"action": {"kind": "forward"}}, "refused": "x"}"#,
                    ),
                ],
                "exclude each other",
            ),
            (
                &[
                    (REQUEST_FILE, "{}"),
                    (
                        EXPECTED_FILE,
                        r#"{"decision": {"action": {"kind": "explode"}}}"#,
                    ),
                ],
                EXPECTED_FILE,
            ),
            (
                &[(REQUEST_FILE, "{}"), (EXPECTED_FILE, r#"{"refused": 7}"#)],
                EXPECTED_FILE,
            ),
        ];
        for (files, named) in cases {
            let dir = write_case(files);
            let err = FaultCase::load(dir.path()).expect_err("does not load");
            assert!(err.to_string().contains(named), "{files:?}: {err}");
        }
    }

    #[test]
    fn a_validator_case_given_to_a_fault_injector_says_so() {
        let dir = write_case(&[(EXPECTED_FILE, r#"{"outcome": "pass"}"#)]);
        fs::create_dir(dir.path().join("change")).expect("mkdir");
        let err = FaultCase::load(dir.path()).expect_err("not a fault case");
        assert!(
            err.to_string()
                .contains("a validator case, but the plugin is a fault injector"),
            "{err}"
        );
    }

    #[test]
    fn an_equal_decision_passes_and_a_refusal_passes_on_its_text() {
        let expected = FaultExpected::Decision(abort(503));
        assert_eq!(
            compare_decision(&expected, &CallOutcome::Completed(abort(503))),
            Vec::new()
        );
        let reason = CallOutcome::Refused("invalid config: percent must be 0..=100".into());
        let text = |json: &str| {
            let file: ExpectedFile = serde_json::from_str(json).expect("parses");
            FaultExpected::Refused(file.refused.expect("a refusal"))
        };
        for passing in [
            r#"{"refused": true}"#,
            r#"{"refused": "invalid config: percent must be 0..=100"}"#,
            r#"{"refused": {"contains": "percent"}}"#,
        ] {
            assert_eq!(
                compare_decision(&text(passing), &reason),
                Vec::new(),
                "{passing}"
            );
        }
        // A plain string is the whole refusal, as in validator cases.
        assert_eq!(
            compare_decision(&text(r#"{"refused": "percent"}"#), &reason),
            vec![Mismatch::Field {
                field: "refusal".into(),
                expected: "\"percent\"".into(),
                actual: "\"invalid config: percent must be 0..=100\"".into(),
            }]
        );
    }

    #[test]
    fn a_different_decision_lists_each_differing_field_then_both_in_full() {
        let expected = FaultExpected::Decision(Decision {
            delay_request_ms: 20,
            ..abort(503)
        });
        let actual = abort(502);
        let mismatches = compare_decision(&expected, &CallOutcome::Completed(actual));
        let lines: Vec<String> = mismatches.iter().map(ToString::to_string).collect();
        assert_eq!(
            lines,
            vec![
                "delay-request-ms: expected 20, got 0".to_owned(),
                "action.status: expected 503, got 502".to_owned(),
                concat!(
                    r#"- expected decision: {"delay-request-ms":20,"delay-response-ms":0,"action":{"kind":"abort","status":503,"headers":[["retry-after","1"]],"body":"try later"}}"#,
                    "\n",
                    r#"+ actual decision:   {"delay-request-ms":0,"delay-response-ms":0,"action":{"kind":"abort","status":502,"headers":[["retry-after","1"]],"body":"try later"}}"#
                )
                .to_owned(),
            ]
        );
    }

    #[test]
    fn a_different_action_kind_is_one_field_not_one_per_abort_detail() {
        let expected = FaultExpected::Decision(abort(503));
        let mismatches = compare_decision(&expected, &CallOutcome::Completed(delayed(100)));
        let fields: Vec<&str> = mismatches
            .iter()
            .filter_map(|m| match m {
                Mismatch::DecisionField { field, .. } => Some(field.as_str()),
                _ => None,
            })
            .collect();
        assert_eq!(fields, vec!["delay-response-ms", "action.kind"]);
        assert!(matches!(mismatches.last(), Some(Mismatch::Decision { .. })));
    }

    #[test]
    fn body_faults_are_compared_one_by_one() {
        let wanted = Decision {
            body: BodyFaults {
                throttle_bytes_per_second: Some(1024),
                truncate_after_bytes: Some(10),
                corrupt_bytes: None,
            },
            ..Decision::PASS
        };
        let got = Decision {
            body: BodyFaults {
                throttle_bytes_per_second: Some(1024),
                truncate_after_bytes: None,
                corrupt_bytes: Some(2),
            },
            ..Decision::PASS
        };
        let mismatches = compare_decision(
            &FaultExpected::Decision(wanted),
            &CallOutcome::Completed(got),
        );
        assert_eq!(
            mismatches[..2],
            [
                Mismatch::DecisionField {
                    field: "body.truncate-after-bytes".into(),
                    expected: "10".into(),
                    actual: "none".into(),
                },
                Mismatch::DecisionField {
                    field: "body.corrupt-bytes".into(),
                    expected: "none".into(),
                    actual: "2".into(),
                },
            ]
        );
    }

    #[test]
    fn refusals_decisions_and_stops_in_the_wrong_place_are_reported() {
        let decision = FaultExpected::Decision(Decision::PASS);
        let refusal =
            FaultExpected::Refused(ExpectedRefusal::Text(TextMatch::Contains("percent".into())));
        assert_eq!(
            compare_decision(&decision, &CallOutcome::Refused("bad config".into())),
            vec![Mismatch::Refused {
                reason: "bad config".into()
            }]
        );
        let decided = compare_decision(&refusal, &CallOutcome::Completed(delayed(5)));
        assert_eq!(
            decided[0].to_string(),
            r#"expected a refusal, got decision {"delay-request-ms":0,"delay-response-ms":5,"action":{"kind":"forward"}}"#
        );
        assert_eq!(
            compare_decision(&refusal, &CallOutcome::Refused("invalid status".into())),
            vec![Mismatch::Field {
                field: "refusal".into(),
                expected: "text containing \"percent\"".into(),
                actual: "\"invalid status\"".into(),
            }]
        );
        let stopped = CallOutcome::Stopped(Failure::new(FailureKind::Timeout, "late"));
        assert!(matches!(
            compare_decision(&decision, &stopped)[..],
            [Mismatch::Stopped { .. }]
        ));
    }

    #[test]
    fn a_failed_case_prints_every_line_of_its_mismatches_indented() {
        let result = CaseResult {
            mismatches: compare_decision(
                &FaultExpected::Decision(Decision::PASS),
                &CallOutcome::Completed(delayed(7)),
            ),
            ..CaseResult::new("aborts")
        };
        assert_eq!(
            result.to_string(),
            concat!(
                "FAIL aborts\n",
                "     delay-response-ms: expected 0, got 7\n",
                r#"     - expected decision: {"delay-request-ms":0,"delay-response-ms":0,"action":{"kind":"forward"}}"#,
                "\n",
                r#"     + actual decision:   {"delay-request-ms":0,"delay-response-ms":7,"action":{"kind":"forward"}}"#
            )
        );
    }

    #[test]
    fn fault_cases_load_sorted_by_directory_name() {
        let root = tempfile::tempdir().expect("temp dir");
        for name in ["b-second", "a-first"] {
            let dir = root.path().join(name);
            fs::create_dir(&dir).expect("mkdir");
            fs::write(dir.join(REQUEST_FILE), "{}").expect("write");
            fs::write(dir.join(EXPECTED_FILE), r#"{"refused": ""}"#).expect("write");
        }
        // A stray file next to the cases is not a case.
        fs::write(root.path().join("README.md"), "cases").expect("write");
        let names: Vec<String> = load_fault_cases(root.path())
            .expect("loads")
            .into_iter()
            .map(|case| case.name)
            .collect();
        assert_eq!(names, vec!["a-first", "b-second"]);
    }
}
