//! The command line: argument parsing, running the library, printing
//! reports, and mapping every result to a documented exit code.

use std::collections::BTreeMap;
use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, anyhow};
use clap::{Args, Parser, Subcommand, ValueEnum};
use sha2::{Digest, Sha256};

use crate::check::{CheckpointResult, run_checkpoint};
use crate::plan::{CheckpointEntry, GateRules, Plan, PluginEntry, ValidatorEntry};
use crate::report::{self, CheckReport, RenderOptions};
use crate::{
    CallOutcome, Change, CompileCache, Limits, OnError, Outcome, Plugin, Runtime, RuntimeConfig,
};

/// Exit codes of `cairn`, stable for pipelines.
pub mod exit {
    /// Every gate passed (warnings allowed unless `fail-on-warn`).
    pub const PASS: u8 = 0;
    /// A gate failed.
    pub const FAIL: u8 = 1;
    /// A gate warned and `fail-on-warn` is set.
    pub const WARN: u8 = 2;
    /// A gate was inconclusive (and nothing failed).
    pub const INCONCLUSIVE: u8 = 3;
    /// The command line was wrong.
    pub const USAGE: u8 = 64;
    /// The plan is invalid (the message names file, line and column).
    pub const INVALID_PLAN: u8 = 65;
    /// The change, a metrics file or a config could not be read.
    pub const INVALID_INPUT: u8 = 66;
    /// A plugin could not be built or loaded (bad wasm, wrong world, digest
    /// mismatch).
    pub const PLUGIN_LOAD: u8 = 67;
    /// cairn itself failed (engine, cache, runtime, writing the report).
    pub const INTERNAL: u8 = 70;
}

const EXIT_CODES: &str = "\
Exit codes:
  0   every gate passed (warnings allowed unless fail-on-warn)
  1   a gate failed
  2   a gate warned and fail-on-warn is set
  3   a gate was inconclusive (and nothing failed)
  64  wrong command line
  65  invalid plan (the message names file:line:column)
  66  the change, metrics or a config could not be read
  67  a plugin could not be built or loaded (bad wasm, wrong world, sha256 mismatch)
  70  internal error";

const LONG_ABOUT: &str = "\
cairn gates risky no-code changes at the checkpoints of a rollout. At each
checkpoint it runs WebAssembly validator plugins (built against the
cairn:plugin WIT contract, in any language), each in a fresh sandbox with a
deadline, a memory cap and no access to files, env, network or clocks, and
decides the gate from their verdicts.

A change is a directory with `before/` and `after/` trees (either may be
missing) and an optional `metrics.json`, or a JSON bundle file.

Start with `cairn check --help`; `cairn validate` runs plugins without a plan.";

#[derive(Debug, Parser)]
#[command(name = "cairn", version, about = "Gate no-code changes with sandboxed WebAssembly validators.", long_about = LONG_ABOUT, after_help = EXIT_CODES)]
struct Cli {
    /// More log output on stderr (-v: info, -vv: debug, -vvv: trace).
    /// CAIRN_LOG=<filter> overrides.
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    verbose: u8,

    /// Log format on stderr.
    #[arg(long, value_enum, default_value_t = LogFormat::Text, global = true)]
    log_format: LogFormat,

    /// Do not read or write the on-disk compile cache
    /// ($CAIRN_CACHE_DIR, else $XDG_CACHE_HOME/cairn, else ~/.cache/cairn).
    #[arg(long, global = true)]
    no_cache: bool,

    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run a plan's checkpoints on a change and decide their gates.
    #[command(long_about = CHECK_ABOUT, after_help = EXIT_CODES)]
    Check(CheckArgs),
    /// Run plugins on a change without a plan (one ad-hoc checkpoint).
    #[command(after_help = EXIT_CODES)]
    Validate(ValidateArgs),
    /// Pin the sha256 of every plugin in the plan, so CI runs exactly the
    /// reviewed binaries.
    #[command(long_about = LOCK_ABOUT)]
    Lock(LockArgs),
    /// Inspect, test and create plugins.
    #[command(subcommand)]
    Plugin(PluginCommand),
}

const CHECK_ABOUT: &str = "\
Run a plan's checkpoints on a change and decide their gates.

Without --checkpoint, every checkpoint runs in plan order and the run stops
at the first gate that does not pass, as a rollout would. With --checkpoint,
only the named checkpoints run. The validators of a checkpoint run
concurrently.

Examples:
  cairn check --plan cairn.toml --change changes/orders
  cairn check --plan cairn.toml --checkpoint canary --change changes/orders \\
      --metrics observed.json --change-id CHG-1042
  cairn check --plan cairn.toml --change DIR --format sarif --output cairn.sarif
  cairn check --plan cairn.toml --change DIR --format github   # in GitHub Actions";

const LOCK_ABOUT: &str = "\
Pin the sha256 of every plugin in the plan.

Writes `sha256 = \"...\"` into each [plugins.NAME] table (keeping the rest of
the file as it is). Plugins given as Cargo projects are built first and their
component is pinned. With --check, nothing is written: the command fails
(exit 1) if a pin is missing or stale, for use in CI.";

#[derive(Debug, Args)]
struct CheckArgs {
    /// The plan file (TOML).
    #[arg(long, value_name = "FILE")]
    plan: PathBuf,

    /// The change: a directory with before/ and/or after/, or a JSON bundle.
    #[arg(long, value_name = "PATH")]
    change: PathBuf,

    /// Run only this checkpoint (repeat for several; default: all, in order,
    /// stopping at the first gate that does not pass).
    #[arg(long = "checkpoint", value_name = "NAME")]
    checkpoints: Vec<String>,

    /// Run every selected checkpoint even after a gate stops the rollout.
    #[arg(long)]
    keep_going: bool,

    /// Observed metrics (JSON object of name to number); replaces the
    /// change's own metrics.json.
    #[arg(long, value_name = "FILE")]
    metrics: Option<PathBuf>,

    /// Identifier of the change, passed to the validators.
    #[arg(long, default_value = "local")]
    change_id: String,

    /// Warnings fail the gate (exit code 2), whatever the plan says.
    #[arg(long)]
    fail_on_warn: bool,

    #[command(flatten)]
    output: OutputArgs,
}

#[derive(Debug, Args)]
struct OutputArgs {
    /// Report format. Default: human; with --output, taken from the file
    /// extension (.json, .xml → junit, .sarif).
    #[arg(long, value_enum)]
    format: Option<FormatArg>,

    /// Write the report to FILE; the human summary still goes to stdout.
    #[arg(long, value_name = "FILE")]
    output: Option<PathBuf>,

    /// Prefix for document paths in sarif and github reports, so they point
    /// at files in your repository (e.g. changes/orders/after/).
    #[arg(long, value_name = "PREFIX")]
    path_prefix: Option<String>,

    /// Colour in the human report.
    #[arg(long, value_enum, default_value_t = ColorArg::Auto)]
    color: ColorArg,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum FormatArg {
    Human,
    Json,
    Junit,
    Sarif,
    Github,
}

impl From<FormatArg> for report::Format {
    fn from(format: FormatArg) -> Self {
        match format {
            FormatArg::Human => report::Format::Human,
            FormatArg::Json => report::Format::Json,
            FormatArg::Junit => report::Format::Junit,
            FormatArg::Sarif => report::Format::Sarif,
            FormatArg::Github => report::Format::Github,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum ColorArg {
    /// When stdout is a terminal and NO_COLOR is not set.
    Auto,
    Always,
    Never,
}

#[derive(Debug, Args)]
struct ValidateArgs {
    /// Validators to run, concurrently: component files (.wasm), or Cargo
    /// projects of Rust plugins, which are built first (a workspace
    /// directory runs all its plugins).
    #[arg(required = true, value_name = "PLUGIN")]
    plugins: Vec<PathBuf>,

    /// The change: a directory with before/ and/or after/, or a JSON bundle.
    #[arg(long, value_name = "PATH")]
    change: PathBuf,

    /// Config handed to every plugin: JSON text, or @FILE to read it.
    #[arg(long, default_value = "{}")]
    config: String,

    /// Refuse to load a plugin whose sha256 differs (one per plugin, in order).
    #[arg(long = "sha256", value_name = "HEX")]
    sha256: Vec<String>,

    /// Checkpoint name passed to the validators.
    #[arg(long, default_value = "preflight")]
    checkpoint: String,

    /// Environment of the checkpoint.
    #[arg(long, default_value = "preflight")]
    environment: String,

    /// Share of traffic on the new version at this checkpoint (0-100).
    #[arg(long, default_value_t = 0, value_parser = clap::value_parser!(u8).range(0..=100))]
    rollout_percent: u8,

    /// Identifier of the change.
    #[arg(long, default_value = "local")]
    change_id: String,

    /// Observed metrics (JSON object of name to number).
    #[arg(long, value_name = "FILE")]
    metrics: Option<PathBuf>,

    #[command(flatten)]
    limits: LimitArgs,

    /// What a stopped or refusing plugin counts as.
    #[arg(long, value_enum, default_value_t = OnErrorArg::Fail)]
    on_error: OnErrorArg,

    /// Warnings fail the gate (exit code 2).
    #[arg(long)]
    fail_on_warn: bool,

    #[command(flatten)]
    output: OutputArgs,
}

#[derive(Debug, Args)]
struct LimitArgs {
    /// Wall-clock budget per call, in milliseconds.
    #[arg(long, default_value_t = 1000)]
    timeout_ms: u64,

    /// Linear memory cap per call, in MiB.
    #[arg(long, default_value_t = 64)]
    memory_mb: u64,

    /// CPU budget per call in fuel units (turns fuel metering on).
    #[arg(long)]
    fuel: Option<u64>,

    /// Cap on stdout + stderr + log bytes per call.
    #[arg(long, default_value_t = crate::limits::DEFAULT_OUTPUT_BYTES)]
    output_bytes: usize,

    /// Cap on findings per verdict.
    #[arg(long, default_value_t = crate::limits::DEFAULT_MAX_FINDINGS)]
    max_findings: usize,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum OnErrorArg {
    Fail,
    Warn,
    Ignore,
}

impl From<OnErrorArg> for OnError {
    fn from(arg: OnErrorArg) -> Self {
        match arg {
            OnErrorArg::Fail => OnError::Fail,
            OnErrorArg::Warn => OnError::Warn,
            OnErrorArg::Ignore => OnError::Ignore,
        }
    }
}

#[derive(Debug, Args)]
struct LockArgs {
    /// The plan file (TOML) to pin.
    #[arg(long, value_name = "FILE")]
    plan: PathBuf,

    /// Only verify that every pin is present and current; write nothing.
    #[arg(long)]
    check: bool,
}

#[derive(Debug, Subcommand)]
enum PluginCommand {
    /// Show a plugin's world, contract version, info(), imports, size,
    /// sha256 and whether it is in the compile cache.
    #[command(visible_alias = "info")]
    Inspect {
        /// The plugin: a component (.wasm) or a Rust plugin's Cargo project.
        plugin: PathBuf,
    },
    /// Run a validator over golden cases and report each with a diff.
    #[command(long_about = TEST_ABOUT)]
    Test {
        /// The validator: a component (.wasm) or a Rust plugin's Cargo project.
        plugin: PathBuf,
        /// Directory of cases, one sub-directory per case.
        #[arg(long, value_name = "DIR")]
        cases: PathBuf,
        #[command(flatten)]
        limits: LimitArgs,
    },
    /// Create a plugin project that builds and passes its own sample case.
    New {
        /// Plugin name: lowercase letters, digits and dashes.
        name: String,
        #[arg(long, value_enum, default_value_t = LangArg::Rust)]
        lang: LangArg,
        #[arg(long, value_enum, default_value_t = KindArg::Validator)]
        kind: KindArg,
        /// Directory to create the project in.
        #[arg(long, value_name = "DIR", default_value = ".")]
        dir: PathBuf,
    },
}

const TEST_ABOUT: &str = "\
Run a validator over golden cases and report each with a diff.

Each case is a directory:
  change/          the change (before/, after/, optional metrics.json)
  config.json      optional plugin config (default {})
  expected.json    {\"outcome\": \"fail\", \"findings\": [{\"rule\": \"...\",
                   \"severity\": \"error\", \"document\": \"...\", \"pointer\": \"/a\",
                   \"line\": 3}]}  -- or {\"refused\": true}

Expected findings must match the actual ones one to one (order does not
matter; each key given must be equal). Exit code 0 when every case passes,
1 otherwise.

Example:
  cairn plugin test plugins/no-deletes --cases plugins/no-deletes/cases";

#[derive(Debug, Clone, Copy, ValueEnum)]
enum LangArg {
    Rust,
    Python,
    Js,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum KindArg {
    Validator,
    FaultInjector,
}

/// An error with the exit code it maps to.
#[derive(Debug)]
struct Exit {
    code: u8,
    error: anyhow::Error,
}

impl Exit {
    fn new(code: u8, error: impl Into<anyhow::Error>) -> Self {
        Exit {
            code,
            error: error.into(),
        }
    }
}

/// Entry point of the binary.
pub fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(err) => {
            let _ = err.print();
            return ExitCode::from(if err.use_stderr() {
                exit::USAGE
            } else {
                exit::PASS
            });
        }
    };
    init_logging(cli.verbose, cli.log_format);
    match run(cli) {
        Ok(code) => ExitCode::from(code),
        Err(Exit { code, error }) => {
            eprintln!("error: {error}");
            for cause in error.chain().skip(1) {
                eprintln!("  caused by: {cause}");
            }
            ExitCode::from(code)
        }
    }
}

fn init_logging(verbose: u8, format: LogFormat) {
    let level = match verbose {
        0 => "warn",
        1 => "info",
        2 => "debug",
        _ => "trace",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_env("CAIRN_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(level));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal());
    let _ = match format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().try_init(),
    };
}

fn run(cli: Cli) -> Result<u8, Exit> {
    let tokio = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")
        .map_err(|err| Exit::new(exit::INTERNAL, err))?;
    let runtime = |fuel_metering: bool| {
        Runtime::new(RuntimeConfig {
            cache_dir: if cli.no_cache {
                None
            } else {
                CompileCache::default_dir()
            },
            fuel_metering,
            ..RuntimeConfig::default()
        })
        .context("cannot start the plugin runtime")
        .map_err(|err| Exit::new(exit::INTERNAL, err))
    };
    match cli.command {
        Command::Check(args) => {
            let plan = Plan::load(&args.plan).map_err(|err| Exit::new(exit::INVALID_PLAN, err))?;
            let runtime = runtime(plan.needs_fuel())?;
            tokio.block_on(check(&runtime, plan, args))
        }
        Command::Validate(args) => {
            let runtime = runtime(args.limits.fuel.is_some())?;
            let plan = ad_hoc_plan(&args)?;
            let check_args = CheckArgs {
                plan: PathBuf::from("(command line)"),
                change: args.change,
                checkpoints: Vec::new(),
                keep_going: false,
                metrics: args.metrics,
                change_id: args.change_id,
                fail_on_warn: args.fail_on_warn,
                output: args.output,
            };
            tokio.block_on(check(&runtime, plan, check_args))
        }
        Command::Lock(args) => {
            let plan = Plan::load(&args.plan).map_err(|err| Exit::new(exit::INVALID_PLAN, err))?;
            let runtime = runtime(false)?;
            lock(&runtime, &plan, &args)
        }
        Command::Plugin(PluginCommand::Inspect { plugin }) => {
            let runtime = runtime(false)?;
            tokio.block_on(inspect(&runtime, &plugin))
        }
        Command::Plugin(PluginCommand::Test {
            plugin,
            cases,
            limits,
        }) => {
            let runtime = runtime(limits.fuel.is_some())?;
            tokio.block_on(test_cases(&runtime, &plugin, &cases, &limits.limits()))
        }
        Command::Plugin(PluginCommand::New {
            name,
            lang,
            kind,
            dir,
        }) => new_plugin(&name, lang, kind, &dir),
    }
}

impl LimitArgs {
    fn limits(&self) -> Limits {
        Limits {
            timeout: Duration::from_millis(self.timeout_ms),
            memory_bytes: self.memory_mb.saturating_mul(1 << 20),
            fuel: self.fuel,
            output_bytes: self.output_bytes,
            max_findings: self.max_findings,
        }
    }
}

fn single_component(path: &Path) -> Result<PathBuf, Exit> {
    let files = component_files(&[path.to_owned()])?;
    match files.as_slice() {
        [file] => Ok(file.clone()),
        _ => Err(Exit::new(
            exit::USAGE,
            anyhow!("{} holds {} plugins; name one", path.display(), files.len()),
        )),
    }
}

async fn test_cases(
    runtime: &Runtime,
    plugin: &Path,
    cases: &Path,
    limits: &Limits,
) -> Result<u8, Exit> {
    let file = single_component(plugin)?;
    let plugin = runtime
        .load_file(&file, None)
        .with_context(|| format!("cannot load {}", file.display()))
        .map_err(|err| Exit::new(exit::PLUGIN_LOAD, err))?;
    let results = crate::golden::run_cases(&plugin, cases, limits)
        .await
        .map_err(|err| Exit::new(exit::INVALID_INPUT, err))?;
    if results.is_empty() {
        return Err(Exit::new(
            exit::INVALID_INPUT,
            anyhow!("no cases under {}", cases.display()),
        ));
    }
    for result in &results {
        println!("{result}");
    }
    let failed = results.iter().filter(|r| !r.passed()).count();
    println!(
        "\n{}: {} cases, {failed} failed",
        plugin.name(),
        results.len()
    );
    Ok(if failed == 0 { exit::PASS } else { exit::FAIL })
}

fn new_plugin(name: &str, lang: LangArg, kind: KindArg, dir: &Path) -> Result<u8, Exit> {
    use crate::scaffold::{Kind, Lang};
    let lang = match lang {
        LangArg::Rust => Lang::Rust,
        LangArg::Python => Lang::Python,
        LangArg::Js => Lang::Js,
    };
    let kind = match kind {
        KindArg::Validator => Kind::Validator,
        KindArg::FaultInjector => Kind::FaultInjector,
    };
    let project = crate::scaffold::scaffold(name, lang, kind, dir).map_err(|err| {
        let code = match err {
            crate::scaffold::ScaffoldError::Io { .. } => exit::INTERNAL,
            _ => exit::USAGE,
        };
        Exit::new(code, err)
    })?;
    println!("created {} ({lang} {kind}) in {}", name, project.display());
    println!(
        "see {} for how to build and test it",
        project.join("README.md").display()
    );
    Ok(exit::PASS)
}

/// The plan `cairn validate` runs: one checkpoint with every plugin given.
fn ad_hoc_plan(args: &ValidateArgs) -> Result<Plan, Exit> {
    if !args.sha256.is_empty() && args.sha256.len() != args.plugins.len() {
        return Err(Exit::new(
            exit::USAGE,
            anyhow!(
                "--sha256 was given {} times for {} plugins; give one per plugin, in order",
                args.sha256.len(),
                args.plugins.len()
            ),
        ));
    }
    let config = read_config(&args.config).map_err(|err| Exit::new(exit::INVALID_INPUT, err))?;
    let limits = args.limits.limits();
    let files = component_files(&args.plugins)?;
    if !args.sha256.is_empty() && files.len() != args.plugins.len() {
        return Err(Exit::new(
            exit::USAGE,
            anyhow!("--sha256 pins need one .wasm file per pin, not a workspace directory"),
        ));
    }
    let mut plugins = BTreeMap::new();
    let mut validators = Vec::new();
    for (index, file) in files.iter().enumerate() {
        let stem = file.file_stem().map_or_else(
            || file.display().to_string(),
            |s| s.to_string_lossy().into_owned(),
        );
        let mut name = stem.clone();
        let mut n = 2;
        while plugins.contains_key(&name) {
            name = format!("{stem}-{n}");
            n += 1;
        }
        plugins.insert(
            name.clone(),
            PluginEntry {
                name: name.clone(),
                path: file.clone(),
                sha256: args.sha256.get(index).cloned(),
                limits,
                on_error: args.on_error.into(),
            },
        );
        validators.push(ValidatorEntry {
            name: name.clone(),
            plugin: name,
            advisory: false,
            config: config.clone(),
        });
    }
    Ok(Plan {
        path: PathBuf::from("(command line)"),
        plugins,
        checkpoints: vec![CheckpointEntry {
            name: args.checkpoint.clone(),
            index: 0,
            environment: args.environment.clone(),
            rollout_percent: args.rollout_percent,
            rules: GateRules::default(),
            validators,
        }],
    })
}

fn read_config(config: &str) -> anyhow::Result<String> {
    let text = match config.strip_prefix('@') {
        Some(path) => std::fs::read_to_string(path)
            .with_context(|| format!("cannot read config file {path}"))?,
        None => config.to_owned(),
    };
    serde_json::from_str::<serde_json::Value>(&text).context("--config is not valid JSON")?;
    Ok(text)
}

/// Component files: `.wasm` paths as given, Cargo projects built first.
fn component_files(paths: &[PathBuf]) -> Result<Vec<PathBuf>, Exit> {
    let mut files = Vec::new();
    for path in paths {
        if crate::source::is_cargo_project(path) {
            let built = crate::source::build_cargo_project(path)
                .map_err(|err| Exit::new(exit::PLUGIN_LOAD, err))?;
            files.extend(built);
        } else {
            files.push(path.clone());
        }
    }
    Ok(files)
}

/// The component file of a plan plugin (building a Cargo project).
fn plugin_file(entry: &PluginEntry) -> Result<PathBuf, Exit> {
    let files = component_files(std::slice::from_ref(&entry.path))?;
    match files.as_slice() {
        [file] => Ok(file.clone()),
        _ => Err(Exit::new(
            exit::PLUGIN_LOAD,
            anyhow!(
                "plugin `{}`: {} builds {} components; point `path` at one plugin crate",
                entry.name,
                entry.path.display(),
                files.len()
            ),
        )),
    }
}

/// Loads the named plugins, with a spinner while one compiles cold.
fn load_plugins<'a>(
    runtime: &Runtime,
    plan: &Plan,
    names: impl IntoIterator<Item = &'a String>,
) -> Result<BTreeMap<String, Plugin>, Exit> {
    let mut loaded = BTreeMap::new();
    for name in names {
        if loaded.contains_key(name) {
            continue;
        }
        let entry = &plan.plugins[name];
        let file = plugin_file(entry)?;
        let bytes = std::fs::read(&file)
            .with_context(|| format!("plugin `{name}`: cannot read {}", file.display()))
            .map_err(|err| Exit::new(exit::PLUGIN_LOAD, err))?;
        let sha256 = hex::encode(Sha256::digest(&bytes));
        let spinner = (!runtime.is_compiled(&sha256)).then(|| {
            let spinner = indicatif::ProgressBar::new_spinner();
            spinner.set_message(format!(
                "compiling plugin {name} ({:.1} MB, first use; cached afterwards)",
                bytes.len() as f64 / 1e6
            ));
            spinner.enable_steady_tick(Duration::from_millis(100));
            spinner
        });
        let plugin = runtime.load_bytes(name, &bytes, entry.sha256.as_deref());
        if let Some(spinner) = spinner {
            spinner.finish_and_clear();
        }
        let plugin = plugin
            .with_context(|| format!("cannot load plugin `{name}` from {}", file.display()))
            .map_err(|err| Exit::new(exit::PLUGIN_LOAD, err))?;
        if plugin.world() != crate::World::Validator {
            return Err(Exit::new(
                exit::PLUGIN_LOAD,
                anyhow!(
                    "plugin `{name}` ({}) is a {}, not a validator",
                    file.display(),
                    plugin.world()
                ),
            ));
        }
        loaded.insert(name.clone(), plugin);
    }
    Ok(loaded)
}

async fn check(runtime: &Runtime, plan: Plan, args: CheckArgs) -> Result<u8, Exit> {
    let selected: Vec<&CheckpointEntry> = if args.checkpoints.is_empty() {
        plan.checkpoints.iter().collect()
    } else {
        let mut selected = Vec::new();
        for name in &args.checkpoints {
            let entry = plan.checkpoint(name).ok_or_else(|| {
                let known: Vec<&str> = plan.checkpoints.iter().map(|c| c.name.as_str()).collect();
                Exit::new(
                    exit::USAGE,
                    anyhow!(
                        "the plan has no checkpoint `{name}` (it has: {})",
                        known.join(", ")
                    ),
                )
            })?;
            selected.push(entry);
        }
        selected
    };
    let (format, output) = output_format(&args.output)?;
    let mut change = Change::load(&args.change)
        .with_context(|| format!("cannot read the change {}", args.change.display()))
        .map_err(|err| Exit::new(exit::INVALID_INPUT, err))?;
    if let Some(metrics) = &args.metrics {
        change = change
            .with_metrics_file(metrics)
            .map_err(|err| Exit::new(exit::INVALID_INPUT, err))?;
    }
    let change = Arc::new(change);
    let plugins = load_plugins(
        runtime,
        &plan,
        selected
            .iter()
            .flat_map(|c| c.validators.iter().map(|v| &v.plugin)),
    )?;

    let mut results: Vec<CheckpointResult> = Vec::new();
    let mut skipped = Vec::new();
    for entry in selected {
        if results.last().is_some_and(|r| !r.decision.passed()) && !args.keep_going {
            skipped.push(entry.name.clone());
            continue;
        }
        let mut entry = entry.clone();
        entry.rules.fail_on_warn |= args.fail_on_warn;
        results.push(
            run_checkpoint(
                &plan,
                &entry,
                &plugins,
                Arc::clone(&change),
                &args.change_id,
            )
            .await,
        );
    }
    let report = CheckReport {
        plan: args.plan.clone(),
        change: args.change.clone(),
        checkpoints: results,
        skipped,
    };
    let color = match args.output.color {
        ColorArg::Always => true,
        ColorArg::Never => false,
        ColorArg::Auto => std::io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none(),
    };
    let options = RenderOptions {
        color,
        path_prefix: args.output.path_prefix.clone(),
    };
    match &output {
        Some(path) => {
            std::fs::write(path, report::render(&report, format, &options))
                .with_context(|| format!("cannot write the report to {}", path.display()))
                .map_err(|err| Exit::new(exit::INTERNAL, err))?;
            print!(
                "{}",
                report::render(&report, report::Format::Human, &options)
            );
        }
        None => print!("{}", report::render(&report, format, &options)),
    }
    Ok(exit_code(&report))
}

/// The exit code for a report: the first gate that stopped the rollout.
fn exit_code(report: &CheckReport) -> u8 {
    match report.stopped_at().map(|c| c.decision.outcome) {
        None | Some(Outcome::Pass) => exit::PASS,
        Some(Outcome::Fail) => exit::FAIL,
        Some(Outcome::Warn) => exit::WARN,
        Some(Outcome::Inconclusive) => exit::INCONCLUSIVE,
    }
}

/// The report format and where it goes (`None`: stdout).
fn output_format(args: &OutputArgs) -> Result<(report::Format, Option<PathBuf>), Exit> {
    let format = match (args.format, &args.output) {
        (Some(format), _) => format.into(),
        (None, None) => report::Format::Human,
        (None, Some(path)) => match path.extension().and_then(|e| e.to_str()) {
            Some("json") => report::Format::Json,
            Some("xml") => report::Format::Junit,
            Some("sarif") => report::Format::Sarif,
            _ => {
                return Err(Exit::new(
                    exit::USAGE,
                    anyhow!(
                        "cannot tell the report format from {}; add --format json|junit|sarif|github|human",
                        path.display()
                    ),
                ));
            }
        },
    };
    Ok((format, args.output.clone()))
}

fn lock(runtime: &Runtime, plan: &Plan, args: &LockArgs) -> Result<u8, Exit> {
    let text = std::fs::read_to_string(&args.plan)
        .with_context(|| format!("cannot read {}", args.plan.display()))
        .map_err(|err| Exit::new(exit::INVALID_PLAN, err))?;
    let mut document: toml_edit::DocumentMut = text
        .parse()
        .with_context(|| format!("cannot parse {}", args.plan.display()))
        .map_err(|err| Exit::new(exit::INVALID_PLAN, err))?;
    let mut stale = Vec::new();
    for (name, entry) in &plan.plugins {
        let file = plugin_file(entry)?;
        // Loading proves the component is a usable plugin before pinning it.
        let plugin = runtime
            .load_file(&file, None)
            .with_context(|| format!("cannot load plugin `{name}` from {}", file.display()))
            .map_err(|err| Exit::new(exit::PLUGIN_LOAD, err))?;
        let digest = plugin.sha256().to_owned();
        if entry.sha256.as_deref() == Some(digest.as_str()) {
            println!("{name}: {digest} (unchanged)");
            continue;
        }
        println!(
            "{name}: {digest} ({})",
            if entry.sha256.is_some() {
                "was different"
            } else {
                "new pin"
            }
        );
        stale.push(name.clone());
        let table = document
            .get_mut("plugins")
            .and_then(|plugins| plugins.get_mut(name.as_str()))
            .and_then(|plugin| plugin.as_table_like_mut())
            .ok_or_else(|| {
                Exit::new(
                    exit::INVALID_PLAN,
                    anyhow!("cannot find [plugins.{name}] in {}", args.plan.display()),
                )
            })?;
        table.insert("sha256", toml_edit::value(digest));
    }
    if args.check {
        if stale.is_empty() {
            println!("every pin is current");
            return Ok(exit::PASS);
        }
        eprintln!(
            "{} pin(s) missing or stale: {}; run `cairn lock --plan {}`",
            stale.len(),
            stale.join(", "),
            args.plan.display()
        );
        return Ok(exit::FAIL);
    }
    if !stale.is_empty() {
        std::fs::write(&args.plan, document.to_string())
            .with_context(|| format!("cannot write {}", args.plan.display()))
            .map_err(|err| Exit::new(exit::INTERNAL, err))?;
        println!(
            "pinned {} plugin(s) in {}",
            stale.len(),
            args.plan.display()
        );
    }
    Ok(exit::PASS)
}

async fn inspect(runtime: &Runtime, path: &Path) -> Result<u8, Exit> {
    let file = &single_component(path)?;
    let bytes = std::fs::read(file)
        .with_context(|| format!("cannot read {}", file.display()))
        .map_err(|err| Exit::new(exit::PLUGIN_LOAD, err))?;
    let sha256 = hex::encode(Sha256::digest(&bytes));
    let cached = runtime.is_compiled(&sha256);
    let name = file
        .file_stem()
        .map_or_else(|| "plugin".to_owned(), |s| s.to_string_lossy().into_owned());
    let plugin = runtime
        .load_bytes(&name, &bytes, None)
        .with_context(|| format!("cannot load {}", file.display()))
        .map_err(|err| Exit::new(exit::PLUGIN_LOAD, err))?;
    let report = plugin.info(&Limits::default()).await;
    println!("file:        {}", file.display());
    println!(
        "world:       {} (cairn:plugin@{})",
        plugin.world(),
        plugin.wit_version()
    );
    println!("sha256:      {}", plugin.sha256());
    println!("size:        {} bytes", plugin.size());
    println!(
        "cache:       {}",
        match (cached, runtime.compile_cache()) {
            (true, _) => "compiled (in the compile cache)".to_owned(),
            (false, Some(cache)) => format!(
                "not cached before this run (now in {})",
                cache.dir().display()
            ),
            (false, None) => "compile cache disabled".to_owned(),
        }
    );
    println!(
        "initialized: {}",
        if plugin.pre_initialized() {
            "yes (calls start from the snapshot taken after its `initialize`)"
        } else {
            "no (exports no `initialization`)"
        }
    );
    println!("imports:");
    for import in plugin.imports() {
        println!("  {import}");
    }
    match report.outcome {
        CallOutcome::Completed(info) => {
            println!("name:        {}", info.name);
            println!("version:     {}", info.version);
            println!("description: {}", info.description);
            if let Some(schema) = info.config_schema {
                println!("config schema:\n{schema}");
            }
            Ok(exit::PASS)
        }
        CallOutcome::Refused(reason) => Err(Exit::new(
            exit::PLUGIN_LOAD,
            anyhow!("info() refused: {reason}"),
        )),
        CallOutcome::Stopped(failure) => Err(Exit::new(
            exit::PLUGIN_LOAD,
            anyhow!("info() was stopped: {failure}"),
        )),
    }
}
