//! Hostile input files: a FIFO, a device or an oversized file given as the
//! plan, the change, metrics, `@config` or a plugin is refused up front with
//! the exit code of that input and a message naming the file and the limit;
//! nothing blocks and nothing is read past its limit.

use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::Duration;

use crate::util::guests;

/// A refusal takes milliseconds; a FIFO that blocks would run into this.
const REFUSAL_BOUND: Duration = Duration::from_secs(120);

fn cairn(args: &[&str]) -> Output {
    cairn_tests::run_bounded(
        cairn_tests::cairn_command(env!("CARGO_BIN_EXE_cairn-cli")).args(args),
        REFUSAL_BOUND,
    )
}

fn example_change(name: &str) -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../examples/changes")
        .join(name)
        .display()
        .to_string()
}

fn mkfifo(path: &Path) {
    let status = std::process::Command::new("mkfifo")
        .arg(path)
        .status()
        .expect("mkfifo runs");
    assert!(status.success(), "mkfifo {}", path.display());
}

/// Asserts exit code `code` and that stderr says `expected`.
fn assert_refused(output: &Output, code: i32, expected: &str) {
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(code), "stderr:\n{stderr}");
    assert!(
        stderr.contains(expected),
        "expected {expected:?} in:\n{stderr}"
    );
}

fn fifo_in(dir: &Path, name: &str) -> PathBuf {
    let path = dir.join(name);
    mkfifo(&path);
    path
}

#[test]
fn a_fifo_as_any_input_is_refused_not_waited_on() {
    let dir = tempfile::tempdir().expect("temp dir");
    let fifo = fifo_in(dir.path(), "input");
    let fifo = fifo.to_str().expect("utf-8 temp path");
    let safe_edit = example_change("safe-edit");
    let fifo_msg = "is a FIFO (named pipe), not a regular file";

    let plan = cairn(&["check", "--plan", fifo, "--change", &safe_edit]);
    assert_refused(&plan, 65, fifo_msg);

    let change = cairn(&["validate", guests::NO_DELETES, "--change", fifo]);
    assert_refused(&change, 66, fifo_msg);

    let metrics = cairn(&[
        "validate",
        guests::NO_DELETES,
        "--change",
        &safe_edit,
        "--metrics",
        fifo,
    ]);
    assert_refused(&metrics, 66, fifo_msg);

    let config = format!("@{fifo}");
    let config = cairn(&[
        "validate",
        guests::NO_DELETES,
        "--change",
        &safe_edit,
        "--config",
        &config,
    ]);
    assert_refused(&config, 66, fifo_msg);

    let plugin = cairn(&["validate", fifo, "--change", &safe_edit]);
    assert_refused(&plugin, 67, fifo_msg);
}

#[test]
fn a_fifo_inside_a_change_directory_is_refused() {
    let dir = tempfile::tempdir().expect("temp dir");
    std::fs::create_dir(dir.path().join("after")).unwrap();
    std::fs::write(dir.path().join("after/a.json"), "{}").unwrap();
    fifo_in(dir.path(), "metrics.json");
    let change = dir.path().to_str().unwrap();
    let output = cairn(&["validate", guests::NO_DELETES, "--change", change]);
    assert_refused(&output, 66, "metrics.json");

    std::fs::remove_file(dir.path().join("metrics.json")).unwrap();
    fifo_in(&dir.path().join("after"), "b.json");
    let output = cairn(&["validate", guests::NO_DELETES, "--change", change]);
    assert_refused(&output, 66, "b.json");
}

#[test]
fn devices_and_oversized_plugins_are_refused_before_reading() {
    let safe_edit = example_change("safe-edit");
    let zero = cairn(&["validate", "/dev/zero", "--change", &safe_edit]);
    assert_refused(&zero, 67, "is a character device, not a regular file");

    let dir = tempfile::tempdir().expect("temp dir");
    let sparse = dir.path().join("huge.wasm");
    // 2 GiB of holes: reading it would allocate 2 GB; its size refuses it.
    std::fs::File::create(&sparse)
        .unwrap()
        .set_len(2 << 30)
        .unwrap();
    let huge = cairn(&["validate", sparse.to_str().unwrap(), "--change", &safe_edit]);
    assert_refused(
        &huge,
        67,
        "is 2 GiB (2147483648 bytes); a plugin may be at most 256 MiB",
    );
}

#[test]
fn an_oversized_change_is_refused_up_front() {
    let dir = tempfile::tempdir().expect("temp dir");
    let after = dir.path().join("after");
    std::fs::create_dir(&after).unwrap();
    // One document over the per-document limit (sparse: nothing is written).
    let big = after.join("big.json");
    std::fs::File::create(&big)
        .unwrap()
        .set_len(33 << 20)
        .unwrap();
    let change = dir.path().to_str().unwrap();
    let output = cairn(&["validate", guests::NO_DELETES, "--change", change]);
    assert_refused(&output, 66, "a document may be at most 32 MiB");
    assert_refused(&output, 66, "big.json");

    // Documents each under the limit, together over the change's.
    std::fs::remove_file(&big).unwrap();
    for i in 0..5 {
        std::fs::File::create(after.join(format!("part-{i}.json")))
            .unwrap()
            .set_len(30 << 20)
            .unwrap();
    }
    let output = cairn(&["validate", guests::NO_DELETES, "--change", change]);
    assert_refused(&output, 66, "a change may be at most 128 MiB");
}
