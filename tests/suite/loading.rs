//! Loading plugins: only components of a supported cairn world load, pinned
//! digests are enforced, and every refusal says what and why.

use std::path::Path;

use cairn_host::runtime::bindings::DetectError;
use cairn_host::{
    CallOutcome, Checkpoint, ContractVersion, Decision, FailureKind, Limits, LoadError,
    RequestInfo, Sha256Digest, World,
};

use crate::util::{guests, load, sample_change};

fn load_bytes(
    name: &str,
    bytes: &[u8],
    pin: Option<&Sha256Digest>,
) -> Result<cairn_host::Plugin, LoadError> {
    cairn_tests::runtime().load_bytes(name, bytes, pin)
}

/// An error and its causes, one line.
fn chain(err: &dyn std::error::Error) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

fn read(path: &str) -> Vec<u8> {
    std::fs::read(path).unwrap_or_else(|err| panic!("read {path}: {err}"))
}

#[test]
fn validator_world_and_contract_version_are_detected() {
    let plugin = load(guests::NO_DELETES);
    assert_eq!(plugin.world(), World::Validator);
    assert_eq!(plugin.contract_version(), ContractVersion::V0_1);
    assert_eq!(plugin.contract_version().as_str(), "0.1.0");
    assert_eq!(plugin.sha256().len(), 64);
    assert!(
        plugin
            .imports()
            .iter()
            .any(|i| i == "cairn:plugin/change@0.1.0"),
        "{:?}",
        plugin.imports()
    );
}

#[test]
fn core_module_is_refused_as_not_a_component() {
    let core = wat::parse_str("(module (func (export \"validate\")))").expect("valid wat");
    let err = load_bytes("core", &core, None).unwrap_err();
    assert!(matches!(err, LoadError::CoreModule { .. }), "{err}");
    assert!(err.to_string().contains("wasm32-wasip2"), "{err}");
    assert_eq!(err.failure().kind, FailureKind::Load);
}

#[test]
fn wasi_command_component_is_refused_as_not_a_plugin() {
    let err = load_bytes("cli-command", &read(guests::CLI_COMMAND), None).unwrap_err();
    assert!(
        matches!(
            err,
            LoadError::Contract {
                source: DetectError::NotAPlugin { .. },
                ..
            }
        ),
        "{err}"
    );
    assert!(
        chain(&err).contains("wasi:cli/run"),
        "names what it found: {}",
        chain(&err)
    );
}

#[tokio::test]
async fn fault_injector_loads_but_cannot_be_called_as_a_validator() {
    let plugin = load(guests::FAULT_INJECTOR);
    assert_eq!(plugin.world(), World::FaultInjector);
    let info = plugin.info(&Limits::default()).await;
    match &info.outcome {
        CallOutcome::Completed(info) => assert_eq!(info.name, "delay-orders"),
        other => panic!("{other:?}"),
    }
    let report = plugin
        .validate(
            sample_change(),
            &Checkpoint::default(),
            "{}",
            &Limits::default(),
        )
        .await;
    assert_eq!(report.failure_kind(), Some(FailureKind::Load));
    match report.outcome {
        CallOutcome::Stopped(failure) => assert!(
            failure
                .message
                .contains("is a fault-injector, not a validator"),
            "{failure}"
        ),
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn fault_injector_decides_per_request_and_bad_statuses_are_invalid_output() {
    let plugin = load(guests::FAULT_INJECTOR);
    let request = |path: &str| RequestInfo {
        path: path.into(),
        ..RequestInfo::default()
    };
    let limits = Limits::default();
    let orders = plugin.decide(&request("/orders/42"), "{}", &limits).await;
    assert_eq!(
        orders.outcome,
        CallOutcome::Completed(Decision {
            delay_request_ms: 50,
            ..Decision::PASS
        })
    );
    let health = plugin.decide(&request("/health"), "{}", &limits).await;
    assert_eq!(health.outcome, CallOutcome::Completed(Decision::PASS));
    let bad = plugin
        .decide(&request("/orders/1"), "bad-status", &limits)
        .await;
    assert_eq!(
        bad.failure_kind(),
        Some(FailureKind::InvalidOutput),
        "{bad:#?}"
    );

    let validator = load(guests::NO_DELETES)
        .decide(&request("/"), "{}", &limits)
        .await;
    assert_eq!(validator.failure_kind(), Some(FailureKind::Load));
}

#[test]
fn truncated_component_is_refused_with_the_parse_error() {
    let bytes = read(guests::NO_DELETES);
    let err = load_bytes("truncated", &bytes[..bytes.len() / 2], None).unwrap_err();
    assert!(matches!(err, LoadError::Compile { .. }), "{err}");
    // The parser's own words survive as a cause, not flattened away.
    assert!(std::error::Error::source(&err).is_some(), "{err:?}");
    assert!(chain(&err).len() > err.to_string().len(), "{}", chain(&err));
}

#[test]
fn garbage_is_refused_as_not_wasm() {
    let err = load_bytes("garbage", b"#!/bin/sh\necho hi\n", None).unwrap_err();
    assert!(matches!(err, LoadError::NotWasm { .. }), "{err}");
}

#[test]
fn digest_mismatch_refuses_to_load_and_names_both_digests() {
    let wrong: Sha256Digest = "0".repeat(64).parse().unwrap();
    let err = cairn_tests::runtime()
        .load_file(Path::new(guests::NO_DELETES), Some(&wrong))
        .unwrap_err();
    let actual = load(guests::NO_DELETES).digest();
    match &err {
        LoadError::DigestMismatch {
            expected,
            actual: found,
            ..
        } => {
            assert_eq!(expected, &wrong);
            assert_eq!(found, &actual);
        }
        other => panic!("{other}"),
    }
    let text = err.to_string();
    assert!(
        text.contains(&wrong.to_hex()) && text.contains(&actual.to_hex()),
        "{text}"
    );
}

#[test]
fn matching_pin_loads() {
    let actual = load(guests::NO_DELETES).digest();
    let pin: Sha256Digest = format!("sha256:{}", actual.to_hex().to_uppercase())
        .parse()
        .expect("a prefixed, upper-case pin parses");
    let pinned = cairn_tests::runtime()
        .load_file(Path::new(guests::NO_DELETES), Some(&pin))
        .expect("a matching pin loads");
    assert_eq!(pinned.digest(), actual);
}

#[test]
fn missing_file_is_a_read_error_naming_the_path() {
    let err = cairn_tests::runtime()
        .load_file(Path::new("/nonexistent/plugin.wasm"), None)
        .unwrap_err();
    assert!(matches!(err, LoadError::Read { .. }));
    assert!(
        err.to_string().contains("/nonexistent/plugin.wasm"),
        "{err}"
    );
}
