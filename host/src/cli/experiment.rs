//! `cairn proxy` (one experiment by hand, live counts on a terminal) and
//! `cairn experiment replay` (re-deciding a decision log), and the signal
//! handling that stops experiments: the first Ctrl-C or SIGTERM stops
//! faults and drains, a second one exits at once.

use std::io::IsTerminal;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use clap::{Args, Subcommand, ValueEnum};

use crate::check::report::experiment_summary;
use crate::cli::args::LimitArgs;
use crate::cli::exit::{self, CliError};
use crate::escape::{single_line, terminal_safe};
use crate::proxy::{
    Envelope, Experiment, ExperimentConfig, FaultDecider, Guardrails, PluginDecider, RouteMatch,
    StopReason, Upstream,
};
use crate::runtime::bindings::World;
use crate::runtime::digest::Sha256Digest;
use crate::runtime::limits::Limits;
use crate::runtime::{PluginBytes, Runtime};

pub(crate) const PROXY_ABOUT: &str = "\
Run a fault proxy by hand, for local resilience testing.

cairn listens on --listen (loopback only) and forwards every request to
--upstream. For each request inside the envelope (routes, blast radius,
protected paths, concurrency cap) it asks the fault injector what to do:
delay, abort with any status 100-999, reset, hang, or throttle, truncate or
corrupt the response body. A plugin that fails, stalls or answers out of
contract never breaks traffic: the request is forwarded untouched and
counted. After --duration-ms, on Ctrl-C, SIGTERM or `POST /stop` on the
admin address, faults stop at once and the proxy drains and exits.

Live counts are shown on a terminal; off one, only the final summary.

Examples:
  cairn proxy --injector plugins/flaky --upstream http://127.0.0.1:9000 \\
      --listen 127.0.0.1:19000 --config '{\"percent\": 20}' --seed 7
  cairn proxy --injector latency.wasm --upstream https://erp.internal:8443 \\
      --ca-file private-ca.pem --route '/orders/**' --protect /health \\
      --decision-log decisions.jsonl --duration-ms 60000
  cairn experiment replay decisions.jsonl   # same decisions again?";

#[derive(Debug, Args)]
pub(crate) struct ProxyArgs {
    /// The fault injector: a component (.wasm) or a Rust plugin's Cargo
    /// project.
    #[arg(long, value_name = "PLUGIN")]
    pub(crate) injector: PathBuf,

    /// Refuse to load the injector unless its sha256 is this.
    #[arg(long, value_name = "HEX")]
    pub(crate) sha256: Option<String>,

    /// Where requests go: http://host:port or https://host:port (optionally
    /// with a base path).
    #[arg(long, value_name = "URL")]
    pub(crate) upstream: String,

    /// Loopback address to listen on (port 0: any free port, printed).
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:0")]
    pub(crate) listen: SocketAddr,

    /// Loopback admin address: `POST /stop` stops faults, `GET /status`
    /// shows counts.
    #[arg(long, value_name = "ADDR")]
    pub(crate) admin: Option<SocketAddr>,

    /// Injector config: JSON text, or @FILE to read it.
    #[arg(long, default_value = "{}")]
    pub(crate) config: String,

    /// Seed of every random choice (blast radius, the plugin's random
    /// number, corrupt positions) [default: a fresh one, printed].
    #[arg(long)]
    pub(crate) seed: Option<u64>,

    /// How long to inject, in milliseconds; then the proxy drains and exits.
    #[arg(long, value_name = "MS", default_value_t = 600_000)]
    pub(crate) duration_ms: u64,

    /// Append one JSON line per decided request to FILE (replay it with
    /// `cairn experiment replay FILE`).
    #[arg(long, value_name = "FILE")]
    pub(crate) decision_log: Option<PathBuf>,

    /// Extra CA certificate (PEM) to trust for an https upstream.
    #[arg(long, value_name = "FILE")]
    pub(crate) ca_file: Option<PathBuf>,

    /// Report format at the end.
    #[arg(long, value_enum, default_value_t = SummaryFormat::Human)]
    pub(crate) format: SummaryFormat,

    #[command(flatten)]
    pub(crate) envelope: EnvelopeArgs,

    #[command(flatten)]
    pub(crate) limits: LimitArgs,
}

/// The safety envelope, as flags.
#[derive(Debug, Args)]
#[command(next_help_heading = "Safety envelope (enforced by cairn, whatever the plugin says)")]
pub(crate) struct EnvelopeArgs {
    /// Percent of requests the injector may fault (sampled from the seed).
    #[arg(long, value_name = "PERCENT", default_value_t = 100.0)]
    pub(crate) blast_radius: f64,

    /// Most requests faulted at once; over it, requests pass untouched.
    #[arg(long, value_name = "N", default_value_t = crate::check::plan::DEFAULT_MAX_CONCURRENT_FAULTS)]
    pub(crate) max_concurrent_faults: u32,

    /// Only paths matching this glob may be faulted (repeat; `*` within a
    /// segment, `**` across segments) [default: every path].
    #[arg(long = "route", value_name = "GLOB")]
    pub(crate) routes: Vec<String>,

    /// Only these methods may be faulted (repeat) [default: every method].
    #[arg(long = "method", value_name = "METHOD")]
    pub(crate) methods: Vec<String>,

    /// Paths never faulted (repeat), e.g. /health.
    #[arg(long = "protect", value_name = "GLOB")]
    pub(crate) protected: Vec<String>,

    /// Stop injecting after this many plugin failures (traps, timeouts,
    /// refusals, out-of-contract answers).
    #[arg(long, value_name = "N", default_value_t = crate::check::plan::DEFAULT_MAX_PLUGIN_FAILURES)]
    pub(crate) max_plugin_failures: u32,

    /// Stop the experiment when the error rate clients see exceeds this
    /// ratio (0..=1) over the guardrail window.
    #[arg(long, value_name = "RATIO")]
    pub(crate) max_error_rate: Option<f64>,

    /// Stop the experiment when the p99 latency clients see exceeds this.
    #[arg(long, value_name = "MS")]
    pub(crate) max_p99_ms: Option<u64>,

    /// Sliding window of the guardrails, in milliseconds.
    #[arg(long, value_name = "MS", default_value_t = 10_000)]
    pub(crate) guardrail_window_ms: u64,

    /// Requests the window needs before a guardrail is judged.
    #[arg(long, value_name = "N", default_value_t = 20)]
    pub(crate) guardrail_min_requests: u32,

    /// Requests with the same value of this header are attempts of one
    /// logical request.
    #[arg(long, value_name = "NAME", default_value = "idempotency-key")]
    pub(crate) idempotency_header: String,

    /// Header whose value is redacted in logs, reports and what the plugin
    /// sees (repeat; credentials always are).
    #[arg(long = "sensitive-header", value_name = "NAME")]
    pub(crate) sensitive_headers: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum SummaryFormat {
    Human,
    Json,
}

#[derive(Debug, Subcommand)]
pub(crate) enum ExperimentCommand {
    /// Re-decide every request of a decision log and report each decision
    /// that differs (a changed plugin, config or cairn).
    #[command(long_about = REPLAY_ABOUT)]
    Replay(ReplayArgs),
}

const REPLAY_ABOUT: &str = "\
Re-decide every request of a decision log and report each decision that
differs.

The log (written by `cairn proxy --decision-log` or an experiment's
`decision-log`) records the injector, its sha256 and config, the seed and,
per request, exactly what the plugin was given. Replay loads the injector
(the recorded path unless --injector is given), asks it again about every
request, and compares. Exit code 0 when every decision is the same, 1 when
any differs.

Examples:
  cairn experiment replay decisions.jsonl
  cairn experiment replay decisions.jsonl --injector plugins/flaky   # a new build";

#[derive(Debug, Args)]
pub(crate) struct ReplayArgs {
    /// The decision log (JSON Lines).
    pub(crate) log: PathBuf,

    /// Replay with this injector instead of the recorded one.
    #[arg(long, value_name = "PLUGIN")]
    pub(crate) injector: Option<PathBuf>,

    /// Replay with this config instead of the recorded one (JSON or @FILE).
    #[arg(long)]
    pub(crate) config: Option<String>,

    /// Report format.
    #[arg(long, value_enum, default_value_t = SummaryFormat::Human)]
    pub(crate) format: SummaryFormat,

    #[command(flatten)]
    pub(crate) limits: LimitArgs,
}

/// Loads one fault injector for the command line.
fn load_injector(
    runtime: &Runtime,
    path: &Path,
    sha256: Option<&Sha256Digest>,
) -> Result<crate::Plugin, CliError> {
    let file = crate::check::component_file("injector", path)?;
    let bytes = PluginBytes::read(&file).map_err(|source| crate::check::CheckError::Load {
        plugin: "injector".to_owned(),
        path: file.clone(),
        source: Box::new(source),
    })?;
    let plugin = runtime
        .load(&bytes, sha256)
        .map_err(|source| crate::check::CheckError::Load {
            plugin: "injector".to_owned(),
            path: file.clone(),
            source: Box::new(source),
        })?;
    if plugin.world() != World::FaultInjector {
        return Err(crate::check::CheckError::WrongWorld {
            plugin: plugin.name().to_owned(),
            path: file,
            world: plugin.world(),
            expected: World::FaultInjector,
        }
        .into());
    }
    Ok(plugin)
}

fn read_config(config: &str) -> Result<String, CliError> {
    let text = super::config_text(config)?;
    let value: serde_json::Value = serde_json::from_str(&text)
        .map_err(|err| CliError::input("the config is not valid JSON", err))?;
    Ok(value.to_string())
}

/// `cairn proxy`.
pub(crate) async fn proxy(
    runtime: &Runtime,
    args: &ProxyArgs,
    limits: &Limits,
) -> Result<u8, CliError> {
    let sha256 = args
        .sha256
        .as_deref()
        .map(str::parse::<Sha256Digest>)
        .transpose()
        .map_err(|err| CliError::Usage(format!("--sha256: {err}")))?;
    if !(0.0..=100.0).contains(&args.envelope.blast_radius) {
        return Err(CliError::Usage(format!(
            "--blast-radius is a percentage, 0..=100, got {}",
            args.envelope.blast_radius
        )));
    }
    if args.duration_ms == 0 {
        return Err(CliError::Usage(
            "--duration-ms must be at least 1".to_owned(),
        ));
    }
    if let Some(rate) = args.envelope.max_error_rate
        && !(0.0..=1.0).contains(&rate)
    {
        return Err(CliError::Usage(format!(
            "--max-error-rate is a ratio, 0..=1, got {rate}"
        )));
    }
    let config = read_config(&args.config)?;
    let plugin = load_injector(runtime, &args.injector, sha256.as_ref())?;
    let upstream = Upstream::parse(&args.upstream)
        .map_err(|err| CliError::input(format!("--upstream {}", args.upstream), err))?;
    let seed = args.seed.unwrap_or_else(fresh_seed);
    let routes = if args.envelope.routes.is_empty() && args.envelope.methods.is_empty() {
        Vec::new()
    } else {
        let paths = if args.envelope.routes.is_empty() {
            vec!["/**".to_owned()]
        } else {
            args.envelope.routes.clone()
        };
        paths
            .into_iter()
            .map(|path| RouteMatch {
                methods: args.envelope.methods.clone(),
                path,
                header: None,
            })
            .collect()
    };
    let experiment_config = ExperimentConfig {
        name: "proxy".to_owned(),
        listen: args.listen,
        upstream,
        ca_file: args.ca_file.clone(),
        seed,
        duration: Duration::from_millis(args.duration_ms),
        envelope: Envelope {
            blast_radius_percent: args.envelope.blast_radius,
            max_concurrent_faults: args.envelope.max_concurrent_faults,
            routes,
            protected_paths: args.envelope.protected.clone(),
            max_delay: crate::check::plan::DEFAULT_MAX_DELAY,
            max_hang: crate::check::plan::DEFAULT_MAX_HANG,
            max_plugin_failures: args.envelope.max_plugin_failures,
        },
        guardrails: Guardrails {
            window: Duration::from_millis(args.envelope.guardrail_window_ms.max(1)),
            min_requests: args.envelope.guardrail_min_requests,
            max_error_rate: args.envelope.max_error_rate,
            max_p99_latency: args.envelope.max_p99_ms.map(Duration::from_millis),
        },
        idempotency_header: args.envelope.idempotency_header.to_ascii_lowercase(),
        sensitive_headers: args.envelope.sensitive_headers.clone(),
        admin_listen: args.admin,
        decision_log: args.decision_log.clone(),
    };
    let decider: Arc<dyn FaultDecider> =
        Arc::new(PluginDecider::new(plugin.clone(), config, *limits).with_path(&args.injector));
    let running = Experiment::start(experiment_config, decider)
        .await
        .map_err(|err| CliError::Unavailable {
            message: "the fault proxy could not start".to_owned(),
            source: Box::new(err),
        })?;
    let terminal = std::io::stderr().is_terminal();
    eprintln!(
        "cairn proxy: http://{} → {} (injector {} {}, seed {seed}){}",
        running.local_addr(),
        single_line(&args.upstream),
        single_line(plugin.name()),
        plugin.digest().to_hex().get(..12).unwrap_or_default(),
        running
            .admin_addr()
            .map(|a| format!(", admin http://{a}"))
            .unwrap_or_default()
    );
    let mut stop = super::signals::drain_on_first_signal();
    let handle = running.stop_handle();
    let watcher = tokio::spawn(async move {
        while stop.changed().await.is_ok() {
            if *stop.borrow() {
                handle.stop(StopReason::Stopped {
                    by: "signal".to_owned(),
                });
                break;
            }
        }
    });
    // Live counts on a terminal, refreshed twice a second until the
    // experiment stops; nothing off one.
    let live = terminal.then(|| {
        let bar = indicatif::ProgressBar::new_spinner();
        bar.enable_steady_tick(Duration::from_millis(250));
        bar
    });
    if let Some(bar) = &live {
        let stopped = running.stop_handle();
        let mut tick = tokio::time::interval(Duration::from_millis(500));
        loop {
            tokio::select! {
                _ = stopped.stopped() => break,
                _ = tick.tick() => bar.set_message(live_counts(&running.snapshot())),
            }
        }
        bar.set_message("draining in-flight requests…");
    }
    let report = running.finish().await;
    watcher.abort();
    if let Some(bar) = live {
        bar.finish_and_clear();
    }
    match args.format {
        SummaryFormat::Human => print!("{}", experiment_summary(&report)),
        SummaryFormat::Json => println!(
            "{}",
            serde_json::to_string_pretty(&report).unwrap_or_default()
        ),
    }
    Ok(
        if matches!(report.stop_reason, StopReason::GuardrailBreach(_)) {
            exit::FAIL
        } else {
            exit::PASS
        },
    )
}

/// A replay's result for people: counts, then each difference.
fn replay_summary(report: &crate::proxy::ReplayReport) -> String {
    use std::fmt::Write;
    let mut out = format!(
        "replayed {} decision(s): {} identical, {} different\n",
        report.replayed,
        report.identical,
        report.differences.len()
    );
    for difference in &report.differences {
        let show = |outcome: &crate::proxy::LoggedOutcome| {
            serde_json::to_string(outcome).unwrap_or_else(|err| format!("({err})"))
        };
        let _ = writeln!(
            out,
            "  #{} {}\n    logged:   {}\n    replayed: {}",
            difference.sequence,
            single_line(&difference.route),
            show(&difference.logged),
            show(&difference.replayed)
        );
    }
    out
}

/// One line of live counts for the terminal.
fn live_counts(stats: &crate::proxy::ExperimentStats) -> String {
    let faults: Vec<String> = stats
        .faults
        .iter()
        .filter(|(_, n)| **n > 0)
        .map(|(kind, n)| format!("{kind} {n}"))
        .collect();
    format!(
        "{:>6.1} s  requests {}  faulted {}{}  active {}  injector failures {}  client errors {}{}",
        stats.elapsed_ms as f64 / 1000.0,
        stats.requests,
        stats.faulted,
        if faults.is_empty() {
            String::new()
        } else {
            format!(" ({})", faults.join(", "))
        },
        stats.active_faults,
        stats.plugin_failures,
        stats.client_errors,
        if stats.injecting {
            ""
        } else {
            "  [not injecting]"
        },
    )
}

fn fresh_seed() -> u64 {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    (nanos as u64) ^ u64::from(std::process::id()).rotate_left(32)
}

/// `cairn experiment ...`.
pub(crate) async fn run(runtime: &Runtime, command: ExperimentCommand) -> Result<u8, CliError> {
    match command {
        ExperimentCommand::Replay(args) => replay(runtime, &args).await,
    }
}

async fn replay(runtime: &Runtime, args: &ReplayArgs) -> Result<u8, CliError> {
    let limits = args
        .limits
        .settings()
        .apply(Limits::default())
        .map_err(crate::check::CheckError::Limits)?;
    let log = crate::proxy::read_decision_log(&args.log).map_err(|err| {
        CliError::input(
            format!("cannot read decision log {}", args.log.display()),
            err,
        )
    })?;
    let injector = match &args.injector {
        Some(path) => path.clone(),
        None => log.header.plugin.path.clone().ok_or_else(|| {
            CliError::Usage(
                "the decision log does not record the injector's path; give --injector".to_owned(),
            )
        })?,
    };
    let plugin = load_injector(runtime, &injector, None)?;
    let config = match &args.config {
        Some(config) => read_config(config)?,
        None => log
            .header
            .plugin
            .config
            .clone()
            .unwrap_or_else(|| "{}".to_owned()),
    };
    let decider = PluginDecider::new(plugin.clone(), config, limits);
    let report = crate::proxy::replay(&log, &decider).await;
    match args.format {
        SummaryFormat::Human => {
            let now = plugin.digest().to_hex();
            let recorded = log.header.plugin.digest.as_deref().unwrap_or("unknown");
            if recorded.trim_start_matches("sha256:") != now {
                println!(
                    "note: the injector differs from the recorded one (recorded sha256 {}, now {now})",
                    single_line(recorded),
                );
            }
            print!("{}", terminal_safe(&replay_summary(&report)));
        }
        SummaryFormat::Json => println!(
            "{}",
            serde_json::to_string_pretty(&report).unwrap_or_default()
        ),
    }
    Ok(if report.differences.is_empty() {
        exit::PASS
    } else {
        exit::FAIL
    })
}
