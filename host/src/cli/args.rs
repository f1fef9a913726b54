//! The command line's arguments: every command, flag and help text of
//! `cairn`, parsed by clap.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::check::gate::OnError;
use crate::check::report;

pub(crate) const EXIT_CODES: &str = "\
Exit codes:
  0   every gate passed (warnings allowed unless fail-on-warn)
  1   a gate failed
  2   a gate warned and fail-on-warn is set
  3   a gate was inconclusive (and nothing failed)
  64  wrong command line
  65  invalid plan (the message names file:line:column)
  66  the change, metrics or a config could not be read
  67  a plugin could not be built or loaded (bad wasm, wrong world, sha256 mismatch)
  69  an experiment could not start (upstream down, port in use, bad CA file)
  70  internal error
  77  an experiment at a production checkpoint has no recorded approval
  130 stopped by SIGINT (Ctrl-C) before a verdict; 143: by SIGTERM
      (plugin builds are killed, a report being written and the stale one
      at --output are removed; the first signal of a run with experiments
      stops faults and drains instead)";

pub(crate) const LONG_ABOUT: &str = "\
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
pub(crate) struct Cli {
    /// More log output on stderr (-v: info, -vv: debug, -vvv: trace).
    /// CAIRN_LOG=<filter> overrides.
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    pub(crate) verbose: u8,

    /// Log format on stderr.
    #[arg(long, value_enum, default_value_t = LogFormat::Text, global = true)]
    pub(crate) log_format: LogFormat,

    /// Do not read or write the on-disk compile cache
    /// ($CAIRN_CACHE_DIR, else $XDG_CACHE_HOME/cairn, else ~/.cache/cairn).
    #[arg(long, global = true)]
    pub(crate) no_cache: bool,

    #[command(subcommand)]
    pub(crate) command: Command,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub(crate) enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Subcommand)]
pub(crate) enum Command {
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
    /// Run a fault proxy by hand: one experiment with one injector in front
    /// of one upstream, until its duration ends or Ctrl-C.
    #[command(long_about = crate::cli::experiment::PROXY_ABOUT, after_help = EXIT_CODES)]
    Proxy(crate::cli::experiment::ProxyArgs),
    /// Work with recorded experiments (replay a decision log).
    #[command(subcommand)]
    Experiment(crate::cli::experiment::ExperimentCommand),
    /// Walk a change through the plan's checkpoints: promote, observe,
    /// judge, pause for approvals, roll back and verify, all journaled.
    #[command(subcommand, long_about = crate::cli::rollout::ROLLOUT_ABOUT)]
    Rollout(crate::cli::rollout::RolloutCommand),
    /// Verify or print a rollout journal.
    #[command(subcommand)]
    Journal(crate::cli::rollout::JournalCommand),
    /// List or prune the on-disk compile cache (sizes, last use, orphans).
    #[command(subcommand, long_about = crate::cli::cache::CACHE_ABOUT)]
    Cache(crate::cli::cache::CacheCommand),
    /// Serve checks, experiments and rollouts over HTTP for many tenants.
    #[command(long_about = crate::cli::serve::SERVE_ABOUT, after_help = crate::cli::serve::SERVE_EXIT_CODES)]
    Serve(crate::cli::serve::ServeArgs),
}

pub(crate) const CHECK_ABOUT: &str = "\
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

pub(crate) const LOCK_ABOUT: &str = "\
Pin the sha256 of every plugin in the plan.

Writes `sha256 = \"...\"` into each [plugins.NAME] table (keeping the rest of
the file as it is). Plugins given as Cargo projects are built first and their
component is pinned. With --check, nothing is written: the command fails
(exit 1) if a pin is missing or stale, for use in CI.";

#[derive(Debug, Args)]
pub(crate) struct CheckArgs {
    /// The plan file (TOML).
    #[arg(long, value_name = "FILE")]
    pub(crate) plan: PathBuf,

    /// The change: a directory with before/ and/or after/, or a JSON bundle.
    #[arg(long, value_name = "PATH")]
    pub(crate) change: PathBuf,

    /// Run only this checkpoint (repeat for several; default: all, in order,
    /// stopping at the first gate that does not pass).
    #[arg(long = "checkpoint", value_name = "NAME")]
    pub(crate) checkpoints: Vec<String>,

    /// Run every selected checkpoint even after a gate stops the rollout.
    #[arg(long)]
    pub(crate) keep_going: bool,

    /// Observed metrics (JSON object of name to number); replaces the
    /// change's own metrics.json.
    #[arg(long, value_name = "FILE")]
    pub(crate) metrics: Option<PathBuf>,

    /// Identifier of the change, passed to the validators.
    #[arg(long, default_value = "local")]
    pub(crate) change_id: String,

    /// Warnings fail the gate (exit code 2), whatever the plan says.
    #[arg(long)]
    pub(crate) fail_on_warn: bool,

    /// Record NAME as the person who approved this run's fault-injection
    /// experiments; required when a checkpoint with experiments targets
    /// environment "production" (exit code 77 without it).
    #[arg(long, value_name = "NAME")]
    pub(crate) approve_experiments: Option<String>,

    #[command(flatten)]
    pub(crate) limits: LimitArgs,

    #[command(flatten)]
    pub(crate) output: OutputArgs,
}

#[derive(Debug, Args)]
#[command(next_help_heading = "Report")]
pub(crate) struct OutputArgs {
    /// Report format. Default: human; with --output, taken from the file
    /// extension (.json, .xml → junit, .sarif).
    #[arg(long, value_enum)]
    pub(crate) format: Option<FormatArg>,

    /// Write the report to FILE; the human summary still goes to stdout.
    #[arg(long, value_name = "FILE")]
    pub(crate) output: Option<PathBuf>,

    /// Prefix for document paths in sarif and github reports, so they point
    /// at files in your repository (e.g. changes/orders/after/).
    #[arg(long, value_name = "PREFIX")]
    pub(crate) path_prefix: Option<String>,

    /// Colour in the human report.
    #[arg(long, value_enum, default_value_t = ColorArg::Auto)]
    pub(crate) color: ColorArg,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum FormatArg {
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
pub(crate) enum ColorArg {
    /// When stdout is a terminal and NO_COLOR is not set.
    Auto,
    Always,
    Never,
}

#[derive(Debug, Args)]
pub(crate) struct ValidateArgs {
    /// Validators to run, concurrently: component files (.wasm), or Cargo
    /// projects of Rust plugins, which are built first (a workspace
    /// directory runs all its plugins).
    #[arg(required = true, value_name = "PLUGIN")]
    pub(crate) plugins: Vec<PathBuf>,

    /// The change: a directory with before/ and/or after/, or a JSON bundle.
    #[arg(long, value_name = "PATH")]
    pub(crate) change: PathBuf,

    /// Config handed to every plugin: JSON text, or @FILE to read it.
    #[arg(long, default_value = "{}")]
    pub(crate) config: String,

    /// Refuse to load a plugin whose sha256 differs (one per plugin, in order).
    #[arg(long = "sha256", value_name = "HEX")]
    pub(crate) sha256: Vec<String>,

    /// Checkpoint name passed to the validators.
    #[arg(long, default_value = "preflight")]
    pub(crate) checkpoint: String,

    /// Environment of the checkpoint.
    #[arg(long, default_value = "preflight")]
    pub(crate) environment: String,

    /// Share of traffic on the new version at this checkpoint (0-100).
    #[arg(long, default_value_t = 0, value_parser = clap::value_parser!(u8).range(0..=100))]
    pub(crate) rollout_percent: u8,

    /// Identifier of the change.
    #[arg(long, default_value = "local")]
    pub(crate) change_id: String,

    /// Observed metrics (JSON object of name to number).
    #[arg(long, value_name = "FILE")]
    pub(crate) metrics: Option<PathBuf>,

    /// What a stopped or refusing plugin counts as.
    #[arg(long, value_enum, default_value_t = OnErrorArg::Fail)]
    pub(crate) on_error: OnErrorArg,

    /// Warnings fail the gate (exit code 2).
    #[arg(long)]
    pub(crate) fail_on_warn: bool,

    #[command(flatten)]
    pub(crate) limits: LimitArgs,

    #[command(flatten)]
    pub(crate) output: OutputArgs,
}

/// Limit flags: the names and units of a plan's `limits = { ... }`, parsed
/// and range-checked by the same code (`LimitSettings::apply`). With a plan,
/// each flag given replaces that setting for every plugin.
#[derive(Debug, Args)]
#[command(next_help_heading = "Limits (per call; same names and units as a plan's `limits`)")]
pub(crate) struct LimitArgs {
    /// Wall-clock budget per call, in milliseconds [default: the plan's, else 1000].
    #[arg(long, value_name = "MS")]
    pub(crate) timeout_ms: Option<u64>,

    /// Linear memory cap per call, in MiB [default: the plan's, else 64].
    #[arg(long, value_name = "MIB")]
    pub(crate) memory_mb: Option<u64>,

    /// CPU budget per call in fuel units (turns fuel metering on) [default: the plan's, else none].
    #[arg(long, value_name = "UNITS")]
    pub(crate) fuel: Option<u64>,

    /// Cap on stdout + stderr + log per call, in KiB [default: the plan's, else 64].
    #[arg(long, value_name = "KIB")]
    pub(crate) output_kb: Option<u64>,

    /// Cap on findings per verdict [default: the plan's, else 1000].
    #[arg(long, value_name = "N")]
    pub(crate) max_findings: Option<u64>,
}

impl LimitArgs {
    pub(crate) fn settings(&self) -> crate::runtime::limits::LimitSettings {
        crate::runtime::limits::LimitSettings {
            timeout_ms: self.timeout_ms,
            memory_mb: self.memory_mb,
            fuel: self.fuel,
            output_kb: self.output_kb,
            max_findings: self.max_findings,
        }
    }
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub(crate) enum OnErrorArg {
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
pub(crate) struct LockArgs {
    /// The plan file (TOML) to pin.
    #[arg(long, value_name = "FILE")]
    pub(crate) plan: PathBuf,

    /// Only verify that every pin is present and current; write nothing.
    #[arg(long)]
    pub(crate) check: bool,
}

#[derive(Debug, Subcommand)]
pub(crate) enum PluginCommand {
    /// Show a plugin's world, contract version, info(), imports, size,
    /// sha256 and whether it is in the compile cache.
    #[command(visible_alias = "info")]
    Inspect {
        /// The plugin: a component (.wasm) or a Rust plugin's Cargo project.
        plugin: PathBuf,
    },
    /// Run a validator or fault injector over golden cases and report each
    /// with a diff.
    #[command(long_about = TEST_ABOUT)]
    Test {
        /// The plugin: a component (.wasm) or a Rust plugin's Cargo project.
        plugin: PathBuf,
        /// Directory of cases, one sub-directory per case.
        #[arg(long, value_name = "DIR")]
        cases: PathBuf,
        /// Record the plugin's current answer as each case's expected.json
        /// (created when missing) instead of comparing with it.
        #[arg(long)]
        bless: bool,
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
        /// The SDK the project depends on: `published` for the
        /// cairn-plugin-sdk package of the language's registry (crates.io,
        /// PyPI, npm), or a local copy of it, written as a path relative to
        /// the project: the crate's directory for Rust (a checkout's
        /// plugin-sdk/), the package's directory or a wheel for Python
        /// (plugin-sdk/python), the package's directory or an `npm pack`
        /// tarball for JavaScript (plugin-sdk/js). Default: the SDK of the
        /// cairn checkout this binary was built from, if it is still there,
        /// else `published`.
        #[arg(long, value_name = "PATH|published")]
        sdk: Option<PathBuf>,
    },
}

pub(crate) const TEST_ABOUT: &str = "\
Run a validator or fault injector over golden cases and report each with a
diff. The plugin's world picks the kind of case.

Each validator case is a directory:
  change/          the change (before/, after/, optional metrics.json)
  config.json      optional plugin config (default {})
  expected.json    {\"outcome\": \"fail\", \"summary\": \"1 finding(s)\",
                   \"findings\": [{\"rule\": \"...\", \"severity\": \"error\",
                   \"document\": \"...\", \"pointer\": \"/a\", \"line\": 3,
                   \"column\": 7, \"message\": \"...\", \"hint\": \"...\"}]}
                   -- or {\"refused\": true} (any refusal)
                   -- or {\"refused\": \"the refusal's text\"}

Only `outcome` (and each finding's `rule`) is required; any other key is
checked when given. Texts (summary, message, hint, a refusal) match exactly,
or as {\"contains\": \"part\"} when they contain the part. A finding's
document, pointer, line and column may also be nested in \"location\": {..}.
Expected findings must match the actual ones one to one (order does not
matter); a finding that differs on some keys is shown key by key with the
expected and the actual value. Unknown keys are errors.

Each fault-injector case is a directory:
  request.json     the request, kebab-case, every field optional:
                   {\"method\": \"GET\", \"path\": \"/orders/1\", \"query\": \"a=1\",
                   \"headers\": [[\"x-tenant\", \"acme\"]], \"attempt\": 1,
                   \"sequence\": 0, \"random\": 9223372036854775808, ...}
  config.json      optional plugin config (default {})
  expected.json    {\"decision\": {\"delay-response-ms\": 100,
                   \"action\": {\"kind\": \"forward\"}}}
                   -- or {\"refused\": \"text the refusal contains\"}

The decision must be equal (a missing delay is 0, a missing body no body
faults); actions are {\"kind\": \"forward\"}, {\"kind\": \"reset\"},
{\"kind\": \"hang\", \"ms\": 500} and {\"kind\": \"abort\", \"status\": 503,
\"headers\": [[\"retry-after\", \"1\"]], \"body\": \"text\"}; body faults are
{\"throttle-bytes-per-second\": N, \"truncate-after-bytes\": N,
\"corrupt-bytes\": N}.

A case that cannot be read (no or invalid expected.json, invalid
config.json or request.json, unreadable change/) is BROKEN, with its reason;
the other cases still run. What the plugin logged or printed during a case
is shown under it, each line prefixed with [case name].

--bless runs every case (of either kind) and writes the plugin's current
answer as its expected.json, creating it when missing: every key the plugin
gave (findings sorted by location), or {\"refused\": \"<the refusal>\"}. It
prints which files it wrote and which were unchanged; a case the sandbox
stopped is not written and fails the run.

Exit code 0 when every case passes (or is blessed), 1 when any failed or is
broken.

Examples:
  cairn plugin test plugins/no-deletes --cases plugins/no-deletes/cases
  cairn plugin test target/my_faults.wasm --cases samples
  cairn plugin test plugins/no-deletes --cases plugins/no-deletes/cases --bless";

#[derive(Debug, Clone, Copy, ValueEnum)]
pub(crate) enum LangArg {
    Rust,
    Python,
    Js,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub(crate) enum KindArg {
    Validator,
    FaultInjector,
}
