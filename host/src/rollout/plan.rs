//! The rollout keys of a plan: `[rollout]` (metrics source, notifications,
//! the wait before verifying a rollback) and each `[checkpoint.rollout]`
//! (promote and rollback hooks, observation window, what a warning does,
//! approvals, owners, runbook, irreversibility, rollback window). Read from
//! the same file as the [`Plan`], with `file:line:column` errors.

use std::collections::BTreeMap;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use toml::Spanned;

use crate::check::plan::{LineIndex, Plan, PlanError};
use crate::rollout::hooks::{Backoff, HookSpec};

/// Longest observation window or wait a plan may ask for.
pub const MAX_OBSERVE: Duration = Duration::from_secs(24 * 3600);

/// What a warning at a checkpoint does to a rollout.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum OnWarn {
    /// Go on to the next checkpoint (the warning is recorded).
    #[default]
    Continue,
    /// Pause until approved.
    Pause,
}

/// The people a checkpoint names, shown and recorded on a failure or pause.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Owners {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub change_sponsor: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub deployment_lead: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub data_steward: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rollback_captain: Option<String>,
}

impl Owners {
    /// `(role, who)` for each owner named.
    pub fn named(&self) -> Vec<(&'static str, &str)> {
        [
            ("change sponsor", &self.change_sponsor),
            ("deployment lead", &self.deployment_lead),
            ("data steward", &self.data_steward),
            ("rollback captain", &self.rollback_captain),
        ]
        .into_iter()
        .filter_map(|(role, who)| who.as_deref().map(|who| (role, who)))
        .collect()
    }
}

/// How a checkpoint takes part in a rollout.
#[derive(Debug, Clone, PartialEq)]
pub struct CheckpointRollout {
    pub checkpoint: String,
    /// Moves the change forward (a canary weight, a feature flag).
    pub promote: Option<HookSpec>,
    /// Undoes this checkpoint's promote.
    pub rollback: Option<HookSpec>,
    /// Wait after promoting, before experiments and validators.
    pub observe: Duration,
    pub on_warn: OnWarn,
    /// Pause for approval before promoting.
    pub approve_before: bool,
    /// Roles that must each approve to end a pause here (empty: one
    /// approval by anyone).
    pub approvals: Vec<String>,
    pub owners: Owners,
    pub runbook: Option<String>,
    /// Once promoted, cannot be undone: a failure later freezes the rollout
    /// here instead of rolling back past it.
    pub irreversible: bool,
    /// Past this time after promotion, a rollback waits for approval
    /// instead of running blindly.
    pub rollback_window: Option<Duration>,
}

/// Where observed metrics come from (read after each observation window
/// and before verifying a rollback); they replace the change's own, which
/// stand until the source exists.
#[derive(Debug, Clone, PartialEq)]
pub enum MetricsSource {
    /// A JSON file of metric name to number.
    File(PathBuf),
}

/// A plan's rollout settings.
#[derive(Debug, Clone, PartialEq)]
pub struct RolloutPlan {
    /// One per checkpoint of the plan, in order.
    pub checkpoints: Vec<CheckpointRollout>,
    pub metrics: Option<MetricsSource>,
    /// Told about pauses, failures, rollbacks and the end of a rollout.
    pub notify: Option<HookSpec>,
    /// Wait after the rollback hooks, before the verification validators.
    pub verify_after: Duration,
}

impl RolloutPlan {
    pub fn checkpoint(&self, name: &str) -> Option<&CheckpointRollout> {
        self.checkpoints.iter().find(|c| c.checkpoint == name)
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "kebab-case")]
struct File {
    rollout: Option<RolloutFile>,
    #[serde(default, rename = "checkpoint")]
    checkpoints: Vec<CheckpointFile>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct RolloutFile {
    /// Checked by [`Plan`].
    #[serde(default, rename = "verify")]
    _verify: Option<toml::Value>,
    metrics: Option<Spanned<MetricsFile>>,
    notify: Option<Spanned<HookFile>>,
    verify_after_ms: Option<Spanned<u64>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct MetricsFile {
    file: String,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "kebab-case")]
struct CheckpointFile {
    name: String,
    rollout: Option<Spanned<CheckpointRolloutFile>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct CheckpointRolloutFile {
    promote: Option<Spanned<HookFile>>,
    rollback: Option<Spanned<HookFile>>,
    observe_ms: Option<Spanned<u64>>,
    #[serde(default)]
    on_warn: OnWarn,
    #[serde(default)]
    approve_before: bool,
    #[serde(default)]
    approvals: Vec<Spanned<String>>,
    #[serde(default)]
    owners: Owners,
    runbook: Option<String>,
    #[serde(default)]
    irreversible: bool,
    rollback_window_minutes: Option<Spanned<u64>>,
}

/// A hook as a plan writes it: `run = [...]` or `url = "..."`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct HookFile {
    run: Option<Vec<String>>,
    url: Option<String>,
    #[serde(default)]
    env: BTreeMap<String, String>,
    #[serde(default)]
    headers: BTreeMap<String, String>,
    ca_file: Option<String>,
    timeout_ms: Option<u64>,
    retries: Option<u32>,
    backoff_ms: Option<u64>,
    backoff_max_ms: Option<u64>,
}

impl RolloutPlan {
    /// Reads the rollout keys of `plan` from its file.
    pub fn load(plan: &Plan) -> Result<RolloutPlan, PlanError> {
        let text = crate::runtime::input::read_limited_text(
            &plan.path,
            "plan",
            crate::runtime::input::MAX_PLAN_BYTES,
        )
        .map_err(|source| PlanError::Read {
            path: plan.path.clone(),
            source,
        })?;
        RolloutPlan::parse(plan, &text)
    }

    /// Reads the rollout keys of `plan` from `text`, the plan file's text.
    pub fn parse(plan: &Plan, text: &str) -> Result<RolloutPlan, PlanError> {
        let lines = LineIndex::new(text);
        let at = |span: Range<usize>, message: String| {
            let (line, column) = lines.line_column(span.start);
            PlanError::Invalid {
                path: plan.path.clone(),
                line,
                column,
                message,
            }
        };
        let file: File = toml::from_str(text)
            .map_err(|err| at(err.span().unwrap_or(0..0), err.message().to_owned()))?;
        let base = plan.path.parent().unwrap_or(Path::new("."));
        let mut by_name: BTreeMap<String, Option<Spanned<CheckpointRolloutFile>>> = file
            .checkpoints
            .into_iter()
            .map(|c| (c.name, c.rollout))
            .collect();
        let mut checkpoints = Vec::new();
        for entry in &plan.checkpoints {
            let context = format!("checkpoint `{}`: rollout", entry.name);
            let (span, rollout) = match by_name.remove(&entry.name).flatten() {
                Some(spanned) => {
                    let span = spanned.span();
                    (span, spanned.into_inner())
                }
                None => (0..0, CheckpointRolloutFile::default()),
            };
            let hook = |hook: Option<Spanned<HookFile>>, which: &str| {
                hook.map(|hook| {
                    let span = hook.span();
                    hook_spec(hook.into_inner(), base)
                        .map_err(|message| at(span, format!("{context}.{which}: {message}")))
                })
                .transpose()
            };
            let observe = match rollout.observe_ms {
                Some(ms) => bounded_ms(&ms, MAX_OBSERVE)
                    .map_err(|message| at(ms.span(), format!("{context}.observe-ms: {message}")))?,
                None => Duration::ZERO,
            };
            let mut approvals: Vec<String> = Vec::new();
            for role in rollout.approvals {
                let name = role.get_ref().trim();
                if name.is_empty() || approvals.iter().any(|r| r == name) {
                    return Err(at(
                        role.span(),
                        format!("{context}.approvals: roles must be non-empty and distinct"),
                    ));
                }
                approvals.push(name.to_owned());
            }
            let rollback_window = match rollout.rollback_window_minutes {
                Some(minutes) if *minutes.get_ref() == 0 => {
                    return Err(at(
                        minutes.span(),
                        format!(
                            "{context}.rollback-window-minutes must be at least 1 (leave it out for no window)"
                        ),
                    ));
                }
                Some(minutes) => Some(Duration::from_secs(minutes.get_ref().saturating_mul(60))),
                None => None,
            };
            if rollout.irreversible && rollout.rollback.is_some() {
                return Err(at(
                    span,
                    format!(
                        "{context}: an irreversible checkpoint cannot have a rollback hook; \
                         drop one or the other"
                    ),
                ));
            }
            checkpoints.push(CheckpointRollout {
                checkpoint: entry.name.clone(),
                promote: hook(rollout.promote, "promote")?,
                rollback: hook(rollout.rollback, "rollback")?,
                observe,
                on_warn: rollout.on_warn,
                approve_before: rollout.approve_before,
                approvals,
                owners: rollout.owners,
                runbook: rollout.runbook,
                irreversible: rollout.irreversible,
                rollback_window,
            });
        }
        let rollout = file.rollout.unwrap_or_default();
        let metrics = rollout
            .metrics
            .map(|metrics| {
                let path = base.join(&metrics.get_ref().file);
                if metrics.get_ref().file.trim().is_empty() {
                    return Err(at(
                        metrics.span(),
                        "[rollout] metrics.file is empty".to_owned(),
                    ));
                }
                Ok(MetricsSource::File(path))
            })
            .transpose()?;
        let notify = rollout
            .notify
            .map(|hook| {
                let span = hook.span();
                hook_spec(hook.into_inner(), base)
                    .map_err(|message| at(span, format!("[rollout] notify: {message}")))
            })
            .transpose()?;
        let verify_after = match rollout.verify_after_ms {
            Some(ms) => bounded_ms(&ms, MAX_OBSERVE).map_err(|message| {
                at(ms.span(), format!("[rollout] verify-after-ms: {message}"))
            })?,
            None => Duration::ZERO,
        };
        Ok(RolloutPlan {
            checkpoints,
            metrics,
            notify,
            verify_after,
        })
    }
}

fn bounded_ms(ms: &Spanned<u64>, max: Duration) -> Result<Duration, String> {
    let duration = Duration::from_millis(*ms.get_ref());
    if duration > max {
        return Err(format!(
            "{} ms is more than the most allowed, {} ms",
            ms.get_ref(),
            max.as_millis()
        ));
    }
    Ok(duration)
}

/// Checks a hook as written and resolves its paths against the plan's
/// directory (commands run there).
fn hook_spec(file: HookFile, base: &Path) -> Result<HookSpec, String> {
    use crate::rollout::hooks::{DEFAULT_HOOK_TIMEOUT, DEFAULT_RETRIES};
    let timeout = file
        .timeout_ms
        .map_or(DEFAULT_HOOK_TIMEOUT, Duration::from_millis);
    let retries = file.retries.unwrap_or(DEFAULT_RETRIES);
    let default_backoff = Backoff::default();
    let backoff = Backoff {
        initial: file
            .backoff_ms
            .map_or(default_backoff.initial, Duration::from_millis),
        max: file
            .backoff_max_ms
            .map_or(default_backoff.max, Duration::from_millis),
    };
    let spec = hook_shape(file, base, timeout, retries, backoff)?;
    spec.validate().map_err(|err| err.to_string())?;
    Ok(spec)
}

/// A command or a webhook, from the keys that say which.
fn hook_shape(
    file: HookFile,
    base: &Path,
    timeout: Duration,
    retries: u32,
    backoff: Backoff,
) -> Result<HookSpec, String> {
    let HookFile {
        run,
        url,
        env,
        headers,
        ca_file,
        ..
    } = file;
    match (run, url) {
        (Some(_), Some(_)) => {
            Err("give `run` (a command) or `url` (a webhook), not both".to_owned())
        }
        (None, None) => Err("give `run` (a command) or `url` (a webhook)".to_owned()),
        (Some(argv), None) => {
            if argv.first().is_none_or(|program| program.trim().is_empty()) {
                return Err("`run` needs a program: run = [\"./promote.sh\", \"arg\"]".to_owned());
            }
            if !headers.is_empty() || ca_file.is_some() {
                return Err("`headers` and `ca-file` belong to webhooks (`url`)".to_owned());
            }
            // `./promote.sh` means the one beside the plan, wherever cairn
            // runs from (a bare name is looked up on PATH).
            let mut argv = argv;
            if argv[0].contains('/') && Path::new(&argv[0]).is_relative() {
                argv[0] = base.join(&argv[0]).display().to_string();
            }
            Ok(HookSpec::Command {
                argv,
                cwd: base.to_owned(),
                env,
                timeout,
                retries,
                backoff,
            })
        }
        (None, Some(url)) => {
            if !env.is_empty() {
                return Err("`env` belongs to commands (`run`)".to_owned());
            }
            let uri: http::Uri = url
                .parse()
                .map_err(|err| format!("url {url:?} is not a URL: {err}"))?;
            match uri.scheme_str() {
                Some("http" | "https") if uri.host().is_some() => {}
                _ => {
                    return Err(format!(
                        "url {url:?} must be http:// or https:// with a host"
                    ));
                }
            }
            Ok(HookSpec::Webhook {
                url: uri,
                headers,
                timeout,
                retries,
                backoff,
                ca_file: ca_file.map(|path| base.join(path)),
            })
        }
    }
}
