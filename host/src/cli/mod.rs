//! The `cairn` command line, a thin shell over the library: parses
//! arguments (`args`), calls `check`, `authoring` and the runtime, prints,
//! and maps every error to a documented exit code in one place (`exit`).

mod args;
mod cache;
pub mod exit;
mod experiment;
mod rollout;
mod serve;
mod signals;

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use clap::Parser;

use crate::authoring::{golden, scaffold};
use crate::check::lock::{self, PinStatus};
use crate::check::plan::{AdHocCheckpoint, AdHocPlugin, GateRules, Plan};
use crate::check::report::{self, CheckReport, RenderOptions};
use crate::check::{self, CheckError, LoadProgress, RunOptions};
use crate::runtime::cache::CompileCache;
use crate::runtime::call::CallOutcome;
use crate::runtime::digest::Sha256Digest;
use crate::runtime::limits::Limits;
use crate::runtime::{PluginBytes, Runtime, RuntimeConfig};
use args::{
    CheckArgs, Cli, ColorArg, Command, KindArg, LangArg, LockArgs, LogFormat, OnErrorArg,
    OutputArgs, PluginCommand, ValidateArgs,
};
use exit::CliError;

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
    // A server's log is its output: `cairn serve` logs at info by default.
    let verbose = if matches!(cli.command, Command::Serve(_)) {
        cli.verbose.max(1)
    } else {
        cli.verbose
    };
    init_logging(verbose, cli.log_format);
    match run(cli) {
        Ok(code) => ExitCode::from(code),
        Err(err) => err.print(),
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

fn run(cli: Cli) -> Result<u8, CliError> {
    let tokio = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|err| CliError::internal("cannot start the async runtime", err))?;
    signals::install(&tokio);
    // The command line opts in to the on-disk compile cache (a library
    // user's runtime has none unless asked).
    let runtime = |fuel_metering: bool| -> Result<Runtime, CliError> {
        Ok(Runtime::new(RuntimeConfig {
            cache_dir: if cli.no_cache {
                None
            } else {
                CompileCache::default_dir()
            },
            fuel_metering,
            ..RuntimeConfig::default()
        })?)
    };
    match cli.command {
        Command::Check(args) => {
            let plan = Plan::load(&args.plan)
                .map_err(CheckError::from)?
                .with_limit_overrides(&args.limits.settings())
                .map_err(CheckError::Limits)?;
            // The rollout keys are checked too: a plan that loads is whole.
            crate::rollout::plan::RolloutPlan::load(&plan).map_err(CheckError::from)?;
            let runtime = runtime(plan.needs_fuel())?;
            tokio.block_on(check(&runtime, &plan, &args.change, &args))
        }
        Command::Validate(args) => {
            let mut plan = ad_hoc_plan(&args)?;
            let runtime = runtime(plan.needs_fuel())?;
            tokio.block_on(name_by_info(&runtime, &mut plan));
            let check_args = CheckArgs {
                plan: PathBuf::from("(command line)"),
                change: args.change.clone(),
                checkpoints: Vec::new(),
                keep_going: false,
                metrics: args.metrics.clone(),
                change_id: args.change_id.clone(),
                fail_on_warn: args.fail_on_warn,
                approve_experiments: None,
                limits: args.limits,
                output: args.output,
            };
            tokio.block_on(check(&runtime, &plan, &check_args.change, &check_args))
        }
        Command::Lock(args) => {
            let plan = Plan::load(&args.plan).map_err(CheckError::from)?;
            crate::rollout::plan::RolloutPlan::load(&plan).map_err(CheckError::from)?;
            let runtime = runtime(false)?;
            lock_plan(&runtime, &plan, &args)
        }
        Command::Plugin(PluginCommand::Inspect { plugin }) => {
            let runtime = runtime(false)?;
            tokio.block_on(inspect(&runtime, &plugin))
        }
        Command::Plugin(PluginCommand::Test {
            plugin,
            cases,
            bless,
            limits,
        }) => {
            let limits = limits
                .settings()
                .apply(Limits::default())
                .map_err(CheckError::Limits)?;
            let runtime = runtime(limits.fuel.is_some())?;
            tokio.block_on(test_cases(&runtime, &plugin, &cases, bless, &limits))
        }
        Command::Proxy(args) => {
            let limits = args
                .limits
                .settings()
                .apply(Limits::default())
                .map_err(CheckError::Limits)?;
            let runtime = runtime(limits.fuel.is_some())?;
            tokio.block_on(experiment::proxy(&runtime, &args, &limits))
        }
        Command::Experiment(command) => {
            let runtime = runtime(false)?;
            tokio.block_on(experiment::run(&runtime, command))
        }
        Command::Rollout(command) => {
            let runtime = runtime(false)?;
            tokio.block_on(rollout::run(&runtime, command))
        }
        Command::Journal(command) => rollout::journal_command(command),
        Command::Cache(command) => cache::run(command, cli.no_cache),
        Command::Serve(args) => serve::run(
            &tokio,
            args,
            if cli.no_cache {
                None
            } else {
                CompileCache::default_dir()
            },
        ),
        Command::Plugin(PluginCommand::New {
            name,
            lang,
            kind,
            dir,
            sdk,
        }) => new_plugin(&name, lang, kind, &dir, sdk.as_deref()),
    }
}

/// A spinner on the terminal while a plugin compiles for the first time.
struct Spinner {
    bar: std::sync::Mutex<Option<indicatif::ProgressBar>>,
}

impl LoadProgress for Spinner {
    fn compiling(&self, plugin: &str, bytes: usize) {
        let bar = indicatif::ProgressBar::new_spinner();
        bar.set_message(format!(
            "compiling plugin {} ({:.1} MB, first use; cached afterwards)",
            crate::escape::single_line(plugin),
            bytes as f64 / 1e6
        ));
        bar.enable_steady_tick(Duration::from_millis(100));
        *self.bar.lock().unwrap_or_else(|p| p.into_inner()) = Some(bar);
    }

    fn compiled(&self, _plugin: &str) {
        if let Some(bar) = self.bar.lock().unwrap_or_else(|p| p.into_inner()).take() {
            bar.finish_and_clear();
        }
    }
}

async fn check(
    runtime: &Runtime,
    plan: &Plan,
    change_path: &Path,
    args: &CheckArgs,
) -> Result<u8, CliError> {
    let (format, output) = output_format(&args.output)?;
    // The report file is checked, and its temp file created, before any
    // plugin runs: an unwritable --output or one that names an input is a
    // usage error up front, not a verdict lost at the end.
    let pending = match &output {
        Some(path) => Some(PendingReport::prepare(path, &[&args.plan, change_path])?),
        None => None,
    };
    let result = check_and_render(runtime, plan, change_path, args, format).await;
    match (result, pending) {
        (Ok((code, rendered, human)), Some(pending)) => {
            pending.commit(rendered.as_bytes())?;
            print!("{human}");
            Ok(code)
        }
        (Ok((code, rendered, _)), None) => {
            print!("{rendered}");
            Ok(code)
        }
        (Err(err), Some(pending)) => {
            // A report left from an earlier run would say PASS for a run
            // that failed: remove it.
            pending.discard_stale();
            Err(err)
        }
        (Err(err), None) => Err(err),
    }
}

/// A report to be written to a file: written to a temp file beside it and
/// renamed over it, so a reader (or a kill mid-write) never sees half a
/// report.
struct PendingReport {
    path: PathBuf,
    temp: tempfile::NamedTempFile,
}

impl PendingReport {
    fn prepare(path: &Path, inputs: &[&Path]) -> Result<PendingReport, CliError> {
        let same_file = |input: &Path| match (path.canonicalize(), input.canonicalize()) {
            (Ok(a), Ok(b)) => a == b || a.starts_with(&b) && b.is_dir(),
            _ => false,
        };
        if let Some(input) = inputs.iter().find(|input| same_file(input)) {
            return Err(CliError::Usage(format!(
                "--output {} would overwrite an input ({}); write the report elsewhere",
                path.display(),
                input.display()
            )));
        }
        let dir = match path.parent() {
            Some(parent) if !parent.as_os_str().is_empty() => parent.to_owned(),
            _ => PathBuf::from("."),
        };
        let temp = tempfile::Builder::new()
            .prefix(".cairn-report-")
            .tempfile_in(&dir)
            .map_err(|err| {
                CliError::Usage(format!(
                    "cannot write the report to {}: {err}",
                    path.display()
                ))
            })?;
        signals::guard_report(path.to_owned(), temp.path().to_owned());
        Ok(PendingReport {
            path: path.to_owned(),
            temp,
        })
    }

    fn commit(mut self, bytes: &[u8]) -> Result<(), CliError> {
        use std::io::Write;
        let write_error = |err: std::io::Error, path: &Path| {
            CliError::internal(
                format!("cannot write the report to {}", path.display()),
                err,
            )
        };
        signals::commit_report(|| {
            self.temp
                .write_all(bytes)
                .and_then(|()| self.temp.as_file().sync_all())
                .map_err(|err| write_error(err, &self.path))?;
            self.temp
                .persist(&self.path)
                .map_err(|err| write_error(err.error, &self.path))?;
            Ok(())
        })
    }

    fn discard_stale(self) {
        signals::release_report();
        if self.path.is_file() {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

/// Runs the plan and renders the report in `format` (and, for a report
/// written to a file, the human summary printed beside it).
async fn check_and_render(
    runtime: &Runtime,
    plan: &Plan,
    change_path: &Path,
    args: &CheckArgs,
    format: report::Format,
) -> Result<(u8, String, String), CliError> {
    let change = Arc::new(check::read_change(change_path, args.metrics.as_deref())?);
    let options = RunOptions {
        checkpoints: args.checkpoints.clone(),
        keep_going: args.keep_going,
        fail_on_warn: args.fail_on_warn,
        change_id: args.change_id.clone(),
        approval: args.approve_experiments.clone().map(check::Approval::now),
        // Only a run with experiments takes over Ctrl-C (to stop faults and
        // drain); any other run is interrupted as usual.
        stop: plan
            .checkpoints
            .iter()
            .any(|c| !c.experiments.is_empty())
            .then(signals::drain_on_first_signal),
    };
    let spinner = Spinner {
        bar: std::sync::Mutex::new(None),
    };
    let mut report: CheckReport =
        check::run_plan(runtime, plan, change, &options, &spinner).await?;
    report.plan = args.plan.clone();
    report.change = change_path.to_owned();
    let color = match args.output.color {
        ColorArg::Always => true,
        ColorArg::Never => false,
        ColorArg::Auto => std::io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none(),
    };
    let options = RenderOptions {
        color,
        path_prefix: args.output.path_prefix.clone(),
    };
    let rendered = report::render(&report, format, &options);
    let human = if args.output.output.is_some() {
        report::render(&report, report::Format::Human, &options)
    } else {
        String::new()
    };
    Ok((exit::for_report(&report), rendered, human))
}

/// The report format and where it goes (`None`: stdout).
fn output_format(args: &OutputArgs) -> Result<(report::Format, Option<PathBuf>), CliError> {
    let format = match (args.format, &args.output) {
        (Some(format), _) => format.into(),
        (None, None) => report::Format::Human,
        (None, Some(path)) => match path.extension().and_then(|e| e.to_str()) {
            Some("json") => report::Format::Json,
            Some("xml") => report::Format::Junit,
            Some("sarif") => report::Format::Sarif,
            _ => {
                return Err(CliError::Usage(format!(
                    "cannot tell the report format from {}; add --format json|junit|sarif|github|human",
                    path.display()
                )));
            }
        },
    };
    Ok((format, args.output.clone()))
}

/// The plan `cairn validate` runs: one checkpoint with every plugin given.
/// Names each plugin of an ad-hoc plan by its own `info()` name rather
/// than its file name (`secrets-scan`, not `secrets_scan_py`), so one check
/// has one name in reports whatever language it is written in. A plugin
/// that does not load or answer keeps its file name (the run reports why);
/// a name that is not a plain identifier, or is taken, is not used.
async fn name_by_info(runtime: &Runtime, plan: &mut Plan) {
    let mut renames = Vec::new();
    for (name, entry) in &plan.plugins {
        let Ok(plugin) = runtime.load_file(&entry.path, entry.sha256.as_ref()) else {
            continue;
        };
        if let CallOutcome::Completed(info) = plugin.info(&entry.limits).await.outcome {
            let usable = !info.name.is_empty()
                && info.name.len() <= 64
                && info
                    .name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
            if usable {
                renames.push((name.clone(), info.name));
            }
        }
    }
    for (old, new) in renames {
        plan.rename_plugin(&old, &new);
    }
}

fn ad_hoc_plan(args: &ValidateArgs) -> Result<Plan, CliError> {
    if !args.sha256.is_empty() && args.sha256.len() != args.plugins.len() {
        return Err(CliError::Usage(format!(
            "--sha256 was given {} times for {} plugins; give one per plugin, in order",
            args.sha256.len(),
            args.plugins.len()
        )));
    }
    let pins = args
        .sha256
        .iter()
        .map(|pin| {
            pin.parse::<Sha256Digest>()
                .map_err(|err| CliError::Usage(format!("--sha256: {err}")))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let config = read_config(&args.config)?;
    let limit_settings = args.limits.settings();
    let limits = limit_settings
        .apply(Limits::default())
        .map_err(CheckError::Limits)?;
    let mut plugins = Vec::new();
    for path in &args.plugins {
        let name = path.display().to_string();
        plugins.extend(
            check::component_files(&name, path)?
                .into_iter()
                .map(AdHocPlugin::new),
        );
    }
    if !pins.is_empty() {
        if plugins.len() != pins.len() {
            return Err(CliError::Usage(
                "--sha256 pins need one .wasm file per pin, not a workspace directory".to_owned(),
            ));
        }
        for (plugin, pin) in plugins.iter_mut().zip(pins) {
            plugin.sha256 = Some(pin);
        }
    }
    Ok(Plan::ad_hoc(
        AdHocCheckpoint {
            name: args.checkpoint.clone(),
            environment: Some(args.environment.clone()),
            rollout_percent: args.rollout_percent,
            rules: GateRules::default(),
            config,
            limit_settings,
            limits,
            on_error: match args.on_error {
                OnErrorArg::Fail => check::OnError::Fail,
                OnErrorArg::Warn => check::OnError::Warn,
                OnErrorArg::Ignore => check::OnError::Ignore,
            },
        },
        plugins,
    ))
}

/// The text of a `--config` value: inline JSON, or `@FILE` read within
/// [`MAX_CONFIG_BYTES`](crate::runtime::input::MAX_CONFIG_BYTES).
fn config_text(config: &str) -> Result<String, CliError> {
    match config.strip_prefix('@') {
        Some(path) => crate::runtime::input::read_limited_text(
            Path::new(path),
            "config file",
            crate::runtime::input::MAX_CONFIG_BYTES,
        )
        .map_err(|err| CliError::input(format!("cannot read config file {path}"), err)),
        None => Ok(config.to_owned()),
    }
}

/// The `--config` JSON, as every plugin language reads it alike (see
/// [`check::config::canonical`]).
fn read_config(config: &str) -> Result<String, CliError> {
    let text = config_text(config)?;
    let value = serde_json::from_str::<serde_json::Value>(&text)
        .map_err(|err| CliError::input("--config is not valid JSON", err))?;
    let value = check::config::canonical(value)
        .map_err(|why| CliError::Usage(format!("--config: {why}")))?;
    Ok(value.to_string())
}

fn lock_plan(runtime: &Runtime, plan: &Plan, args: &LockArgs) -> Result<u8, CliError> {
    let pins = lock::plugin_pins(runtime, plan)?;
    for pin in &pins {
        println!(
            "{}: {} ({})",
            crate::escape::single_line(&pin.plugin),
            pin.digest,
            match pin.status {
                PinStatus::Current => "unchanged",
                PinStatus::Stale => "was different",
                PinStatus::Missing => "new pin",
            }
        );
    }
    let stale: Vec<&str> = pins
        .iter()
        .filter(|pin| pin.status != PinStatus::Current)
        .map(|pin| pin.plugin.as_str())
        .collect();
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
    let written = lock::write_pins(&args.plan, &pins)?;
    if written > 0 {
        println!("pinned {written} plugin(s) in {}", args.plan.display());
    }
    Ok(exit::PASS)
}

/// The one component of a plugin argument (a `.wasm` file or a plugin
/// crate).
fn single_component(path: &Path) -> Result<PathBuf, CliError> {
    let name = path.display().to_string();
    let files = check::component_files(&name, path)?;
    match files.as_slice() {
        [file] => Ok(file.clone()),
        _ => Err(CliError::Usage(format!(
            "{} holds {} plugins; name one",
            path.display(),
            files.len()
        ))),
    }
}

/// Reads and loads the plugin at `path` (any world).
fn load_one(runtime: &Runtime, path: &Path) -> Result<(PathBuf, bool, crate::Plugin), CliError> {
    let file = single_component(path)?;
    let load_error = |source| CheckError::Load {
        plugin: path.display().to_string(),
        path: file.clone(),
        source: Box::new(source),
    };
    let bytes = PluginBytes::read(&file).map_err(load_error)?;
    let cached = runtime.is_compiled(&bytes.digest());
    let plugin = runtime.load(&bytes, None).map_err(load_error)?;
    Ok((file, cached, plugin))
}

async fn inspect(runtime: &Runtime, path: &Path) -> Result<u8, CliError> {
    let (file, cached, plugin) = load_one(runtime, path)?;
    let report = plugin.info(&Limits::default()).await;
    let footprint = plugin.footprint();
    let safe = crate::escape::terminal_safe;
    let shown = |path: &Path| crate::escape::single_line(&path.display().to_string()).into_owned();
    println!("file:        {}", shown(&file));
    println!(
        "world:       {} (cairn:plugin@{})",
        plugin.world(),
        plugin.contract_version()
    );
    println!("sha256:      {}", plugin.digest());
    println!("size:        {} bytes", plugin.size());
    println!(
        "footprint:   {} core instance(s), {} memory(ies), {} table(s) per call",
        footprint.core_instances, footprint.memories, footprint.tables
    );
    println!(
        "cache:       {}",
        match (cached, runtime.compile_cache()) {
            (true, _) => "compiled (in the compile cache)".to_owned(),
            (false, Some(cache)) =>
                format!("not cached before this run (now in {})", shown(cache.dir())),
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
        println!("  {}", safe(import));
    }
    match report.outcome {
        CallOutcome::Completed(info) => {
            println!("name:        {}", safe(&info.name));
            println!("version:     {}", safe(&info.version));
            println!("description: {}", safe(&info.description));
            if let Some(schema) = info.config_schema {
                println!(
                    "config schema:\n  {}",
                    crate::escape::indented(&schema, "  ")
                );
            }
            Ok(exit::PASS)
        }
        CallOutcome::Refused(reason) => Err(CliError::PluginInfo(format!(
            "info() refused: {}",
            safe(&reason)
        ))),
        CallOutcome::Stopped(failure) => Err(CliError::PluginInfo(format!(
            "info() was stopped: {failure}"
        ))),
    }
}

/// `cairn plugin test`: runs (or, with `bless`, records) every case, prints
/// each result and a count, and exits 1 when any case failed or is broken.
async fn test_cases(
    runtime: &Runtime,
    plugin: &Path,
    cases: &Path,
    bless: bool,
    limits: &Limits,
) -> Result<u8, CliError> {
    let (_, _, plugin) = load_one(runtime, plugin)?;
    let results = if bless {
        golden::bless_cases(&plugin, cases, limits).await?
    } else {
        golden::run_cases(&plugin, cases, limits).await?
    };
    if results.is_empty() {
        return Err(CliError::Input {
            message: format!(
                "no cases under {}",
                crate::escape::single_line(&cases.display().to_string())
            ),
            source: None,
        });
    }
    for result in &results {
        println!("{result}");
    }
    let broken = results.iter().filter(|r| r.is_broken()).count();
    let failed = results
        .iter()
        .filter(|r| !r.passed() && !r.is_broken())
        .count();
    let passed = results.len() - failed - broken;
    let name = crate::escape::single_line(plugin.name());
    if bless {
        let written = results
            .iter()
            .filter(|r| {
                r.blessed
                    .as_ref()
                    .is_some_and(|(b, _)| *b != golden::Blessed::Unchanged)
            })
            .count();
        println!(
            "\n{name}: {} cases, {written} expected.json written, {failed} failed, {broken} broken",
            results.len()
        );
    } else {
        println!(
            "\n{name}: {} cases, {failed} failed, {broken} broken, {passed} passed",
            results.len()
        );
    }
    Ok(if failed + broken == 0 {
        exit::PASS
    } else {
        exit::FAIL
    })
}

fn new_plugin(
    name: &str,
    lang: LangArg,
    kind: KindArg,
    dir: &Path,
    sdk: Option<&Path>,
) -> Result<u8, CliError> {
    use scaffold::{Kind, Lang};
    let lang = match lang {
        LangArg::Rust => Lang::Rust,
        LangArg::Python => Lang::Python,
        LangArg::Js => Lang::Js,
    };
    let kind = match kind {
        KindArg::Validator => Kind::Validator,
        KindArg::FaultInjector => Kind::FaultInjector,
    };
    let sdk = match sdk {
        Some(path) if path == Path::new("published") => scaffold::SdkSource::Published,
        Some(path) => scaffold::SdkSource::Local(path.to_owned()),
        None => scaffold::checkout_sdk(lang)
            .map_or(scaffold::SdkSource::Published, scaffold::SdkSource::Local),
    };
    let project = scaffold::scaffold(name, lang, kind, dir, &sdk)?;
    let shown = |path: &Path| crate::escape::single_line(&path.display().to_string()).into_owned();
    println!(
        "created {} ({lang} {kind}) in {}",
        crate::escape::single_line(name),
        shown(&project)
    );
    match &sdk {
        scaffold::SdkSource::Published => println!(
            "it depends on the published cairn-plugin-sdk {}",
            scaffold::SDK_VERSION
        ),
        scaffold::SdkSource::Local(path) => println!(
            "it depends on the SDK at {} (by a relative path; --sdk published for the published package)",
            shown(path)
        ),
    }
    println!(
        "see {} for how to build and test it",
        shown(&project.join("README.md"))
    );
    Ok(exit::PASS)
}
