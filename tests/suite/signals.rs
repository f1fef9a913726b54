//! SIGINT and SIGTERM stop `cairn` with a documented exit code (130, 143)
//! and a message, remove the report it was writing and the stale one at
//! `--output`, and kill the plugin build it started with every process
//! under it.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::util::guests;

/// How long a signalled cairn may take to exit.
const EXIT_BOUND: Duration = Duration::from_secs(30);

fn safe_edit() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/changes/safe-edit")
}

fn send(signal: &str, pid: u32) {
    let status = Command::new("kill")
        .args([&format!("-{signal}"), &pid.to_string()])
        .status()
        .expect("kill runs");
    assert!(status.success(), "kill -{signal} {pid}");
}

fn alive(pid: u32) -> bool {
    Command::new("kill")
        .args(["-0", &pid.to_string()])
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|status| status.success())
}

/// Polls `ready` every 20 ms until it holds, failing the test past `bound`.
fn wait_until(bound: Duration, what: &str, mut ready: impl FnMut() -> bool) {
    let started = Instant::now();
    while !ready() {
        assert!(
            started.elapsed() < bound,
            "{what} did not happen within {bound:?}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Waits for `child` to exit within [`EXIT_BOUND`] (killing it and failing
/// otherwise); returns its exit code and stderr.
fn exit_of(mut child: Child) -> (Option<i32>, String) {
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait") {
            break status;
        }
        if started.elapsed() > EXIT_BOUND {
            let _ = child.kill();
            let _ = child.wait();
            panic!("cairn did not exit within {EXIT_BOUND:?} of the signal");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let mut stderr = String::new();
    if let Some(mut pipe) = child.stderr.take() {
        use std::io::Read;
        let _ = pipe.read_to_string(&mut stderr);
    }
    (status.code(), stderr)
}

fn temp_reports(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .expect("out dir")
        .filter_map(|entry| entry.ok())
        .map(|entry| entry.file_name().to_string_lossy().into_owned())
        .filter(|name| name.starts_with(".cairn-report-"))
        .collect()
}

#[test]
fn a_signal_mid_run_exits_with_its_code_and_leaves_no_report() {
    for (signal, code) in [("TERM", 143), ("INT", 130)] {
        let out = tempfile::tempdir().expect("temp dir");
        let report = out.path().join("report.json");
        std::fs::write(&report, "stale PASS report of an earlier run").unwrap();
        let child = cairn_tests::cairn_command(env!("CARGO_BIN_EXE_cairn-cli"))
            .args([
                "validate",
                guests::FIXTURE,
                "--config",
                r#"{"mode":"loop"}"#,
            ])
            .args(["--timeout-ms", "120000", "--format", "json", "--output"])
            .arg(&report)
            .arg("--change")
            .arg(safe_edit())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("cairn starts");
        // The temp report appears once the signal listener is installed and
        // the run has started.
        wait_until(Duration::from_secs(120), "the run starting", || {
            !temp_reports(out.path()).is_empty()
        });
        send(signal, child.id());
        let (status, stderr) = exit_of(child);
        assert_eq!(status, Some(code), "SIG{signal}: {stderr}");
        assert!(
            stderr.contains(&format!("stopped by SIG{signal}; no verdict (exit {code})")),
            "{stderr}"
        );
        assert!(
            !report.exists(),
            "SIG{signal}: the stale report was removed"
        );
        assert!(
            temp_reports(out.path()).is_empty(),
            "SIG{signal}: no temp report left"
        );
    }
}

#[test]
fn a_signal_during_a_plugin_build_kills_the_build() {
    let project = tempfile::tempdir().expect("temp dir");
    let pid_file = project.path().join("build-script.pid");
    std::fs::write(
        project.path().join("Cargo.toml"),
        "[package]\nname = \"slow-build\"\nversion = \"0.1.0\"\nedition = \"2021\"\n\
         [lib]\ncrate-type = [\"cdylib\"]\n[workspace]\n",
    )
    .unwrap();
    std::fs::create_dir(project.path().join("src")).unwrap();
    std::fs::write(project.path().join("src/lib.rs"), "").unwrap();
    // A build script that records its pid and then takes its time.
    std::fs::write(
        project.path().join("build.rs"),
        r#"fn main() {
    let path = std::env::var("SLOW_BUILD_PID_FILE").unwrap();
    std::fs::write(path, std::process::id().to_string()).unwrap();
    std::thread::sleep(std::time::Duration::from_secs(600));
}
"#,
    )
    .unwrap();
    let target = tempfile::tempdir().expect("temp dir");
    let child = cairn_tests::cairn_command(env!("CARGO_BIN_EXE_cairn-cli"))
        .env("CARGO_TARGET_DIR", target.path())
        .env("SLOW_BUILD_PID_FILE", &pid_file)
        .arg("validate")
        .arg(project.path())
        .arg("--change")
        .arg(safe_edit())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("cairn starts");
    wait_until(
        Duration::from_secs(300),
        "the build script starting",
        || std::fs::read_to_string(&pid_file).is_ok_and(|pid| !pid.is_empty()),
    );
    let build_script: u32 = std::fs::read_to_string(&pid_file)
        .unwrap()
        .trim()
        .parse()
        .expect("a pid");
    assert!(alive(build_script));
    send("TERM", child.id());
    let (status, stderr) = exit_of(child);
    assert_eq!(status, Some(143), "{stderr}");
    wait_until(Duration::from_secs(10), "the build script ending", || {
        !alive(build_script)
    });
}
