//! The SDKs as packages, used as a new user outside the checkout would:
//! `cargo package`, `pip wheel` and `npm pack` make the Rust crate, the
//! Python wheel and the npm tarball; `cairn plugin new --sdk PACKAGE`
//! writes a validator and a fault injector in each language against them
//! (by relative paths, no absolute one); each project builds from the
//! packages alone (the checkout's SDK sources are not on any path) and
//! passes its golden cases with `cairn plugin test`, and each validator runs
//! with `cairn validate`.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use cairn_tests::{SUBPROCESS_BOUND, run_bounded};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ has a parent")
        .to_owned()
}

fn cairn() -> Command {
    cairn_tests::cairn_command(env!("CARGO_BIN_EXE_cairn-cli"))
}

/// Runs `command` under the subprocess bound and returns its stdout,
/// failing the test with both streams when it fails.
fn succeed(what: &str, command: &mut Command) -> String {
    let output: Output = run_bounded(command, SUBPROCESS_BOUND);
    assert!(
        output.status.success(),
        "{what} failed ({}):\n{}\n{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// Copies `from` into `to` with links followed, leaving out `skip` names
/// (dependencies, build outputs, tests): the sources a package is made of.
fn copy_sources(from: &Path, to: &Path, skip: &[&str]) {
    fs::create_dir_all(to).expect("mkdir");
    for entry in fs::read_dir(from).expect("read dir") {
        let entry = entry.expect("dir entry");
        let name = entry.file_name();
        if skip.iter().any(|skipped| name == *skipped) {
            continue;
        }
        let path = entry.path();
        if fs::metadata(&path).expect("stat").is_dir() {
            copy_sources(&path, &to.join(&name), skip);
        } else {
            fs::copy(&path, to.join(&name)).expect("copy");
        }
    }
}

/// The three packages, made from the checkout into `dir`: (the unpacked
/// Rust crate, the Python wheel, the npm tarball).
fn make_packages(dir: &Path) -> (PathBuf, PathBuf, PathBuf) {
    let packages = dir.join("packages");
    fs::create_dir_all(&packages).expect("mkdir");

    let cargo_target = dir.join("cargo-target");
    succeed(
        "cargo package -p cairn-plugin-sdk",
        Command::new(env!("CARGO"))
            .args([
                "package",
                "-p",
                "cairn-plugin-sdk",
                "--no-verify",
                "--allow-dirty",
                "--offline",
            ])
            .arg("--manifest-path")
            .arg(repo().join("Cargo.toml"))
            .env("CARGO_TARGET_DIR", &cargo_target),
    );
    let crate_file = cargo_target.join("package/cairn-plugin-sdk-0.1.0.crate");
    succeed(
        "unpacking the crate",
        Command::new("tar")
            .arg("xzf")
            .arg(&crate_file)
            .arg("-C")
            .arg(&packages),
    );
    let rust = packages.join("cairn-plugin-sdk-0.1.0");
    assert!(
        rust.join("wit/v0.1/plugin.wit").is_file() && rust.join("wit/v0.2/plugin.wit").is_file(),
        "the crate carries the WIT of both contracts"
    );

    // The Python package, built from a copy so the checkout stays clean.
    let python_src = dir.join("src/python");
    copy_sources(
        &repo().join("plugin-sdk/python"),
        &python_src,
        &["build", "tests", "__pycache__", "cairn_plugin_sdk.egg-info"],
    );
    succeed(
        "pip wheel plugin-sdk/python",
        Command::new("python3")
            .args([
                "-m",
                "pip",
                "wheel",
                "--no-deps",
                "--no-build-isolation",
                "-q",
                "-w",
            ])
            .arg(&packages)
            .arg(&python_src),
    );
    let wheel = packages.join("cairn_plugin_sdk-0.1.0-py3-none-any.whl");
    assert!(wheel.is_file(), "pip wheel wrote {}", wheel.display());

    // The npm package, packed from a copy laid out as the repository is
    // (prepack copies ../../wit into it).
    let js_src = dir.join("src/repo/plugin-sdk/js");
    copy_sources(
        &repo().join("plugin-sdk/js"),
        &js_src,
        &["node_modules", "tests", "wit"],
    );
    copy_sources(&repo().join("wit"), &dir.join("src/repo/wit"), &[]);
    succeed(
        "npm pack plugin-sdk/js",
        Command::new("npm")
            .args(["pack", "--silent", "--pack-destination"])
            .arg(&packages)
            .current_dir(&js_src),
    );
    let tarball = packages.join("cairn-plugin-sdk-0.1.0.tgz");
    assert!(tarball.is_file(), "npm pack wrote {}", tarball.display());
    (rust, wheel, tarball)
}

/// Every file of `project` (outside build outputs and dependencies).
fn project_files(project: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    let mut dirs = vec![project.to_owned()];
    while let Some(dir) = dirs.pop() {
        for entry in fs::read_dir(&dir).expect("read dir") {
            let path = entry.expect("entry").path();
            let name = path.file_name().map(|n| n.to_string_lossy().into_owned());
            if matches!(name.as_deref(), Some("target" | "node_modules" | ".venv")) {
                continue;
            }
            if path.is_dir() {
                dirs.push(path);
            } else {
                files.push(path);
            }
        }
    }
    files
}

#[test]
fn a_new_user_scaffolds_builds_tests_and_runs_plugins_from_the_sdk_packages() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (crate_dir, wheel, tarball) = make_packages(dir.path());
    let projects = dir.path().join("projects");
    fs::create_dir_all(&projects).expect("mkdir");

    // A virtual environment that sees the machine's componentize-py (the
    // wheel's one dependency) and installs nothing from the network.
    let venv = dir.path().join("venv");
    succeed(
        "python3 -m venv",
        Command::new("python3")
            .args(["-m", "venv", "--system-site-packages"])
            .arg(&venv),
    );
    let path_with_venv = format!(
        "{}:{}",
        venv.join("bin").display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let rust_target = repo().join("target/wasm-guests");
    let secret = dir.path().to_string_lossy().into_owned();

    let langs: [(&str, &Path); 3] = [("rust", &crate_dir), ("python", &wheel), ("js", &tarball)];
    for (lang, package) in langs {
        for kind in ["validator", "fault-injector"] {
            let name = format!("pkg-{lang}-{kind}");
            let crate_name = name.replace('-', "_");
            let stdout = succeed(
                &format!("cairn plugin new {name}"),
                cairn()
                    .args([
                        "plugin", "new", &name, "--lang", lang, "--kind", kind, "--dir",
                    ])
                    .arg(&projects)
                    .arg("--sdk")
                    .arg(package),
            );
            assert!(stdout.contains("it depends on the SDK at"), "{stdout}");
            let project = projects.join(&name);
            for file in project_files(&project) {
                let text = fs::read_to_string(&file).expect("text file");
                assert!(
                    !text.contains(&secret),
                    "{}: an absolute path is written:\n{text}",
                    file.display()
                );
            }

            let wasm = match lang {
                "rust" => {
                    succeed(
                        &format!("cargo build of {name}"),
                        Command::new(env!("CARGO"))
                            .args([
                                "build",
                                "--release",
                                "--target",
                                "wasm32-wasip2",
                                "--offline",
                            ])
                            .current_dir(&project)
                            .env("CARGO_TARGET_DIR", &rust_target)
                            .env_remove("RUSTFLAGS")
                            .env_remove("CARGO_ENCODED_RUSTFLAGS"),
                    );
                    rust_target.join(format!("wasm32-wasip2/release/{crate_name}.wasm"))
                }
                "python" => {
                    succeed(
                        &format!("pip install -r requirements.txt of {name}"),
                        Command::new(venv.join("bin/python"))
                            .args([
                                "-m",
                                "pip",
                                "install",
                                "-q",
                                "--no-index",
                                "-r",
                                "requirements.txt",
                            ])
                            .current_dir(&project),
                    );
                    succeed(
                        &format!("build.sh of {name}"),
                        Command::new(project.join("build.sh"))
                            .env("PATH", &path_with_venv)
                            .env_remove("PYTHONPATH"),
                    );
                    project.join(format!("target/{crate_name}.wasm"))
                }
                _ => {
                    succeed(
                        &format!("build.sh of {name}"),
                        Command::new(project.join("build.sh"))
                            .env("npm_config_prefer_offline", "true")
                            .env("npm_config_update_notifier", "false"),
                    );
                    let installed = project.join("node_modules/cairn-plugin-sdk");
                    assert!(
                        !fs::symlink_metadata(&installed)
                            .expect("installed")
                            .is_symlink(),
                        "{name}: the SDK is installed from the tarball, not linked to the checkout"
                    );
                    project.join(format!("target/{crate_name}.wasm"))
                }
            };
            assert!(wasm.is_file(), "{name} built {}", wasm.display());

            let stdout = succeed(
                &format!("cairn plugin test of {name}"),
                cairn()
                    .args(["plugin", "test"])
                    .arg(&wasm)
                    .arg("--cases")
                    .arg(project.join("samples")),
            );
            assert!(stdout.contains(" 0 failed, 0 broken,"), "{name}:\n{stdout}");
            if kind == "validator" {
                let stdout = succeed(
                    &format!("cairn validate of {name}"),
                    cairn()
                        .arg("validate")
                        .arg(&wasm)
                        .arg("--change")
                        .arg(project.join("samples/clean/change")),
                );
                assert!(stdout.contains(&name), "the report names {name}:\n{stdout}");
            }
        }
    }
}

#[test]
fn the_python_sdk_pins_one_componentize_py_version_everywhere() {
    let sdk = repo().join("plugin-sdk/python");
    let read = |path: &str| fs::read_to_string(sdk.join(path)).expect("readable");
    let builder = read("cairn_plugin_build/__init__.py");
    let version = builder
        .lines()
        .find_map(|line| line.strip_prefix("COMPONENTIZE_PY_VERSION = \""))
        .and_then(|rest| rest.strip_suffix('"'))
        .expect("the builder names its componentize-py version");
    let pin = format!("componentize-py=={version}");
    assert!(
        read("pyproject.toml").contains(&format!("\"{pin}\"")),
        "pyproject.toml pins {pin}"
    );
    assert!(
        read("requirements.txt").lines().any(|line| line == pin),
        "requirements.txt pins {pin}"
    );
}

/// `--sdk published` writes the registry form; an `--sdk` that is not the
/// language's package is a usage error (64) that names the flag and what it
/// takes, and writes nothing.
#[test]
fn plugin_new_writes_the_published_sdk_or_refuses_a_wrong_local_one() {
    let dir = tempfile::tempdir().expect("temp dir");
    let stdout = succeed(
        "cairn plugin new --sdk published",
        cairn()
            .args([
                "plugin",
                "new",
                "pub-js",
                "--lang",
                "js",
                "--sdk",
                "published",
                "--dir",
            ])
            .arg(dir.path()),
    );
    assert!(
        stdout.contains("published cairn-plugin-sdk 0.1.0"),
        "{stdout}"
    );
    let manifest = fs::read_to_string(dir.path().join("pub-js/package.json")).expect("written");
    assert!(
        manifest.contains("\"cairn-plugin-sdk\": \"0.1.0\""),
        "{manifest}"
    );

    let wrong = dir.path().join("not-an-sdk");
    fs::create_dir(&wrong).expect("mkdir");
    let output = run_bounded(
        cairn()
            .args(["plugin", "new", "wrong", "--lang", "python", "--dir"])
            .arg(dir.path())
            .arg("--sdk")
            .arg(&wrong),
        SUBPROCESS_BOUND,
    );
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(64), "{stderr}");
    assert!(
        stderr.contains("--sdk") && stderr.contains("pyproject.toml") && stderr.contains(".whl"),
        "{stderr}"
    );
    assert!(!dir.path().join("wrong").exists(), "nothing is written");
}
