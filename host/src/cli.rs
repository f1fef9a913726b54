//! The command line: argument parsing, running the library, printing reports
//! and mapping every result to a documented exit code.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::{
    CallOutcome, CallReport, Change, Checkpoint, Limits, OnError, Outcome, Runtime, RuntimeConfig,
    ValidatorRun, Verdict, run_validators,
};

/// Exit codes of `cairn`, stable for pipelines.
pub mod exit {
    /// Every validator passed (warnings allowed).
    pub const PASS: u8 = 0;
    /// At least one validator failed, or was stopped and its `on-error`
    /// policy is `fail`.
    pub const FAIL: u8 = 1;
    /// No failure, but at least one validator was inconclusive.
    pub const INCONCLUSIVE: u8 = 3;
    /// The command line was wrong.
    pub const USAGE: u8 = 64;
    /// An input (the change directory, a config value) could not be read.
    pub const INVALID_INPUT: u8 = 65;
    /// A plugin could not be loaded (bad wasm, wrong world, digest mismatch).
    pub const PLUGIN_LOAD: u8 = 66;
    /// cairn itself failed (engine, cache, runtime).
    pub const INTERNAL: u8 = 70;
}

const ABOUT: &str = "Run sandboxed WebAssembly validators against a change.";

const LONG_ABOUT: &str = "\
cairn runs WebAssembly plugins (validators built against the cairn:plugin WIT
contract, in any language) against a no-code change, each in a fresh sandbox
with a deadline, a memory cap and no access to files, env, network or clocks.

A change is a directory with `before/` and `after/` trees (either may be
missing) and an optional `metrics.json` ({\"error-rate\": 0.01, ...}).";

const AFTER_HELP: &str = "\
Exit codes:
  0   every validator passed (warnings allowed)
  1   a validator failed, or was stopped with on-error = fail
  3   no failure, but a validator was inconclusive
  64  wrong command line
  65  the change or a config could not be read
  66  a plugin could not be loaded
  70  internal error

Examples:
  cairn validate plugins --change examples/changes/risky-edit
  cairn validate no_deletes.wasm --change DIR --config '{\"allow\": [\"legacy/*\"]}' --format json
  cairn plugin info plugins/no-deletes";

#[derive(Debug, Parser)]
#[command(name = "cairn", version, about = ABOUT, long_about = LONG_ABOUT, after_help = AFTER_HELP)]
struct Cli {
    /// More log output on stderr (-v: info, -vv: debug, -vvv: trace).
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    verbose: u8,

    /// Log format on stderr.
    #[arg(long, value_enum, default_value_t = LogFormat::Text, global = true)]
    log_format: LogFormat,

    /// Do not read or write the on-disk compile cache.
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
    /// Run one or more validators against a change and report their verdicts.
    Validate(ValidateArgs),
    /// Work with plugin files.
    #[command(subcommand)]
    Plugin(PluginCommand),
}

#[derive(Debug, Subcommand)]
enum PluginCommand {
    /// Load a plugin and show its world, contract version, digest and info().
    Info {
        /// The plugin: a component (.wasm) or a Rust plugin's Cargo project.
        plugin: PathBuf,
    },
}

#[derive(Debug, Args)]
struct ValidateArgs {
    /// Validators to run, concurrently: component files (.wasm), or Cargo
    /// projects of Rust plugins, which are built first (a workspace
    /// directory runs all its plugins).
    #[arg(required = true, value_name = "PLUGIN")]
    plugins: Vec<PathBuf>,

    /// The change directory (with `before/` and/or `after/`).
    #[arg(long)]
    change: PathBuf,

    /// Config handed to every plugin: JSON text, or @FILE to read it.
    #[arg(long, default_value = "{}")]
    config: String,

    /// Refuse to load a plugin whose sha256 differs (one value per plugin,
    /// in order).
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

    #[command(flatten)]
    limits: LimitArgs,

    /// What a stopped or refusing plugin counts as.
    #[arg(long, value_enum, default_value_t = OnErrorArg::Fail)]
    on_error: OnErrorArg,

    /// Report format on stdout.
    #[arg(long, value_enum, default_value_t = Format::Human)]
    format: Format,
}

#[derive(Debug, Args)]
struct LimitArgs {
    /// Wall-clock budget per call, in milliseconds.
    #[arg(long, default_value_t = 1000)]
    timeout_ms: u64,

    /// Linear memory cap per call, in MiB.
    #[arg(long, default_value_t = 64)]
    memory_mb: u64,

    /// CPU budget per call in fuel units (enables fuel metering).
    #[arg(long)]
    fuel: Option<u64>,

    /// Cap on stdout + stderr + log bytes per call.
    #[arg(long, default_value_t = crate::limits::DEFAULT_OUTPUT_BYTES)]
    output_bytes: usize,

    /// Cap on findings per verdict.
    #[arg(long, default_value_t = crate::limits::DEFAULT_MAX_FINDINGS)]
    max_findings: usize,
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

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Format {
    Human,
    Json,
}

/// An error with the exit code it maps to.
#[derive(Debug)]
struct Exit {
    code: u8,
    error: anyhow::Error,
}

fn fail_with(code: u8) -> impl FnOnce(anyhow::Error) -> Exit {
    move |error| Exit { code, error }
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
    let fuel_metering =
        matches!(&cli.command, Command::Validate(args) if args.limits.fuel.is_some());
    let config = RuntimeConfig {
        cache_dir: if cli.no_cache {
            None
        } else {
            crate::CompileCache::default_dir()
        },
        fuel_metering,
        ..RuntimeConfig::default()
    };
    let runtime = Runtime::new(config)
        .context("cannot start the plugin runtime")
        .map_err(fail_with(exit::INTERNAL))?;
    let tokio = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")
        .map_err(fail_with(exit::INTERNAL))?;
    match cli.command {
        Command::Validate(args) => tokio.block_on(validate(&runtime, args)),
        Command::Plugin(PluginCommand::Info { plugin }) => {
            tokio.block_on(plugin_info(&runtime, &plugin))
        }
    }
}

fn read_config(config: &str) -> Result<String> {
    let text = match config.strip_prefix('@') {
        Some(path) => std::fs::read_to_string(path)
            .with_context(|| format!("cannot read config file {path}"))?,
        None => config.to_owned(),
    };
    serde_json::from_str::<serde_json::Value>(&text).context("--config is not valid JSON")?;
    Ok(text)
}

async fn validate(runtime: &Runtime, args: ValidateArgs) -> Result<u8, Exit> {
    if !args.sha256.is_empty() && args.sha256.len() != args.plugins.len() {
        return Err(Exit {
            code: exit::USAGE,
            error: anyhow::anyhow!(
                "--sha256 was given {} times for {} plugins; give one per plugin, in order",
                args.sha256.len(),
                args.plugins.len()
            ),
        });
    }
    let config = read_config(&args.config).map_err(fail_with(exit::INVALID_INPUT))?;
    let change = Change::from_dir(&args.change)
        .with_context(|| format!("cannot read change {}", args.change.display()))
        .map_err(fail_with(exit::INVALID_INPUT))?;
    let limits = args.limits.limits();
    let plugins = plugin_files(&args.plugins)?;
    if !args.sha256.is_empty() && plugins.len() != args.plugins.len() {
        return Err(Exit {
            code: exit::USAGE,
            error: anyhow::anyhow!(
                "--sha256 pins need one .wasm file per pin, not a workspace directory"
            ),
        });
    }
    let mut runs = Vec::new();
    for (index, path) in plugins.iter().enumerate() {
        let pin = args.sha256.get(index).map(String::as_str);
        let plugin = runtime
            .load_file(path, pin)
            .map_err(|err| fail_with(exit::PLUGIN_LOAD)(err.into()))?;
        runs.push(ValidatorRun {
            plugin,
            config: config.clone(),
            limits,
        });
    }
    let at = Checkpoint {
        name: args.checkpoint,
        index: 0,
        environment: args.environment,
        rollout_percent: args.rollout_percent,
        change_id: args.change_id,
    };
    let change = Arc::new(change);
    let reports = run_validators(runs, Arc::clone(&change), &at).await;
    let on_error = OnError::from(args.on_error);
    let outcome = combined_outcome(&reports, on_error);
    match args.format {
        Format::Human => print!(
            "{}",
            human_report(&at, &change, &reports, on_error, outcome)
        ),
        Format::Json => {
            let json = serde_json::json!({
                "checkpoint": at,
                "outcome": outcome,
                "validators": reports,
            });
            println!(
                "{}",
                serde_json::to_string_pretty(&json).unwrap_or_default()
            );
        }
    }
    Ok(match outcome {
        Outcome::Pass | Outcome::Warn => exit::PASS,
        Outcome::Fail => exit::FAIL,
        Outcome::Inconclusive => exit::INCONCLUSIVE,
    })
}

/// Plugin component files: `.wasm` paths as given, Cargo projects built.
fn plugin_files(paths: &[PathBuf]) -> Result<Vec<PathBuf>, Exit> {
    let mut files = Vec::new();
    for path in paths {
        if crate::source::is_cargo_project(path) {
            let built = crate::source::build_cargo_project(path)
                .map_err(|err| fail_with(exit::PLUGIN_LOAD)(err.into()))?;
            files.extend(built);
        } else {
            files.push(path.clone());
        }
    }
    Ok(files)
}

/// The worst outcome of all validators: fail > inconclusive > warn > pass.
fn combined_outcome(reports: &[CallReport<Verdict>], on_error: OnError) -> Outcome {
    let rank = |outcome: Outcome| match outcome {
        Outcome::Pass => 0,
        Outcome::Warn => 1,
        Outcome::Inconclusive => 2,
        Outcome::Fail => 3,
    };
    reports
        .iter()
        .map(|report| report.effective_outcome(on_error))
        .max_by_key(|outcome| rank(*outcome))
        .unwrap_or(Outcome::Pass)
}

fn human_report(
    at: &Checkpoint,
    change: &Change,
    reports: &[CallReport<Verdict>],
    on_error: OnError,
    outcome: Outcome,
) -> String {
    use std::fmt::Write;
    let mut out = String::new();
    let documents = change.documents().count();
    let _ = writeln!(
        out,
        "checkpoint {} ({} document{})",
        at.name,
        documents,
        if documents == 1 { "" } else { "s" }
    );
    let width = reports.iter().map(|r| r.plugin.len()).max().unwrap_or(0);
    for report in reports {
        let effective = report.effective_outcome(on_error);
        let ms = report.elapsed.as_secs_f64() * 1000.0;
        let detail = match &report.outcome {
            CallOutcome::Completed(verdict) => {
                let mut detail = format!("{} finding(s)", verdict.findings.len());
                if verdict.findings_dropped > 0 {
                    let _ = write!(detail, " (+{} dropped)", verdict.findings_dropped);
                }
                if let Some(summary) = &verdict.summary {
                    let _ = write!(detail, ": {summary}");
                }
                detail
            }
            CallOutcome::Refused(reason) => format!("plugin error: {reason}"),
            CallOutcome::Stopped(failure) => failure.to_string(),
        };
        let _ = writeln!(
            out,
            "  {:<12} {:<width$}  {:>8.1} ms  {}",
            effective.to_string().to_uppercase(),
            report.plugin,
            ms,
            detail
        );
    }
    let mut by_document: std::collections::BTreeMap<&str, Vec<(&str, &crate::Finding)>> =
        Default::default();
    for report in reports {
        if let CallOutcome::Completed(verdict) = &report.outcome {
            for finding in &verdict.findings {
                let document = finding
                    .location
                    .as_ref()
                    .map(|l| l.document.as_str())
                    .unwrap_or("(change)");
                by_document
                    .entry(document)
                    .or_default()
                    .push((report.plugin.as_str(), finding));
            }
        }
    }
    for (document, findings) in by_document {
        let _ = writeln!(out, "\n{document}");
        for (plugin, finding) in findings {
            let position = finding
                .location
                .as_ref()
                .map(location_text)
                .unwrap_or_default();
            let _ = writeln!(
                out,
                "  {:<7} {:<28} {}{}  [{plugin}]",
                finding.severity.to_string(),
                finding.rule,
                position,
                finding.message
            );
            if let Some(hint) = &finding.hint {
                let _ = writeln!(out, "          hint: {hint}");
            }
        }
    }
    let _ = writeln!(out, "\nresult: {}", outcome.to_string().to_uppercase());
    out
}

/// `"/steps/1 7:72  "`: the pointer and line:column a finding points at.
fn location_text(location: &crate::Location) -> String {
    let mut parts = Vec::new();
    if let Some(pointer) = &location.pointer {
        parts.push(pointer.clone());
    }
    match (location.line, location.column) {
        (Some(line), Some(column)) => parts.push(format!("{line}:{column}")),
        (Some(line), None) => parts.push(format!("line {line}")),
        _ => {}
    }
    if parts.is_empty() {
        String::new()
    } else {
        format!("{}  ", parts.join(" "))
    }
}

async fn plugin_info(runtime: &Runtime, path: &Path) -> Result<u8, Exit> {
    let files = plugin_files(&[path.to_owned()])?;
    let [file] = files.as_slice() else {
        return Err(Exit {
            code: exit::USAGE,
            error: anyhow::anyhow!("{} holds {} plugins; name one", path.display(), files.len()),
        });
    };
    let plugin = runtime
        .load_file(file, None)
        .map_err(|err| fail_with(exit::PLUGIN_LOAD)(err.into()))?;
    let report = plugin.info(&Limits::default()).await;
    println!("plugin:    {}", path.display());
    println!(
        "world:     {} (cairn:plugin@{})",
        plugin.world(),
        plugin.wit_version()
    );
    println!("sha256:    {}", plugin.sha256());
    println!("size:      {} bytes", plugin.size());
    println!("compiled:  {:?}", plugin.cache_status());
    match report.outcome {
        CallOutcome::Completed(info) => {
            println!("name:      {}", info.name);
            println!("version:   {}", info.version);
            println!("about:     {}", info.description);
            Ok(exit::PASS)
        }
        CallOutcome::Refused(reason) => Err(fail_with(exit::PLUGIN_LOAD)(anyhow::anyhow!(
            "info() refused: {reason}"
        ))),
        CallOutcome::Stopped(failure) => Err(fail_with(exit::PLUGIN_LOAD)(anyhow::anyhow!(
            "info() was stopped: {failure}"
        ))),
    }
}
