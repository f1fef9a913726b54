//! Drives a rollout: from where its journal says it stands, the next step,
//! recorded before it is acted on. Each step checks the state first, so a
//! resume after a crash at any point repeats nothing whose end was recorded
//! and re-runs an interrupted hook with its idempotency key.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use sha2::{Digest, Sha256};

use crate::check::plan::{CheckpointEntry, GateRules, Plan};
use crate::check::report::{self, CheckReport, RenderOptions};
use crate::check::{self, Approval as ExperimentApproval, CheckError, LoadProgress, RunOptions};
use crate::rollout::hooks::{self, HookAction, HookCall, HookSpec};
use crate::rollout::journal::{Journal, JournalError, Record};
use crate::rollout::pg::{PgError, PgJournal, PgStore};
use crate::rollout::plan::{CheckpointRollout, MetricsSource, OnWarn, RolloutPlan};
use crate::rollout::state::{
    Approval, Event, HookEnd, HookKind, HookStart, HookState, Pause, PauseReason, Phase,
    PluginRecord, Resumed, RollbackStart, RolloutState, Started,
};
use crate::runtime::Runtime;
use crate::runtime::change::Change;
use crate::runtime::verdict::Outcome;

/// Why a rollout command could not do what it was asked.
#[derive(Debug, thiserror::Error)]
pub enum RolloutError {
    #[error(transparent)]
    Journal(#[from] JournalError),
    #[error(transparent)]
    Pg(#[from] PgError),
    #[error(transparent)]
    Check(#[from] CheckError),
    #[error("journal {} does not replay: {message}", path.display())]
    Replay { path: PathBuf, message: String },
    #[error("no rollout `{id}` in {} (rollouts there: {known})", dir.display())]
    Unknown {
        id: String,
        dir: PathBuf,
        known: String,
    },
    #[error(
        "rollout `{id}` started from other inputs: {} changed since; \
         resume with --allow-changed to go on with them anyway",
        changed.join(", ")
    )]
    InputsChanged { id: String, changed: Vec<String> },
    #[error("rollout `{id}` is {phase}; there is nothing to {action}")]
    Finished {
        id: String,
        phase: String,
        action: &'static str,
    },
    #[error("rollout `{id}` is not paused; there is nothing to approve")]
    NotPaused { id: String },
    #[error(
        "role `{role}` is not asked for at checkpoint `{checkpoint}` (it waits for: {missing})"
    )]
    UnknownRole {
        role: String,
        checkpoint: String,
        missing: String,
    },
    #[error("a rollout id may hold letters, digits, `-`, `_` and `.` (1 to 64 of them): {id:?}")]
    BadId { id: String },
    #[error("cannot create the rollout directory {}", path.display())]
    StateDir {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot read observed metrics from {}", path.display())]
    Metrics {
        path: PathBuf,
        #[source]
        source: crate::runtime::change::ChangeError,
    },
}

/// Where a run of the engine left the rollout.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RolloutEnd {
    Completed,
    Paused,
    RolledBack,
    RollbackUnverified,
    Frozen,
}

impl RolloutEnd {
    pub fn of(phase: Phase) -> Option<RolloutEnd> {
        match phase {
            Phase::Completed => Some(RolloutEnd::Completed),
            Phase::Paused => Some(RolloutEnd::Paused),
            Phase::RolledBack => Some(RolloutEnd::RolledBack),
            Phase::RollbackUnverified => Some(RolloutEnd::RollbackUnverified),
            Phase::Frozen => Some(RolloutEnd::Frozen),
            Phase::Running | Phase::RollingBack => None,
        }
    }
}

/// Told about each step as it is recorded (the command line prints them).
pub trait RolloutProgress: LoadProgress {
    fn recorded(&self, _record: &Record, _event: &Event) {}
    /// Opening the journal found a torn last record (a crash mid-write),
    /// dropped it and recorded the repair.
    fn repaired(&self, _torn: &crate::rollout::journal::TornTail) {}
}

/// Progress nobody watches.
#[derive(Debug, Clone, Copy, Default)]
pub struct Quiet;

impl LoadProgress for Quiet {}
impl RolloutProgress for Quiet {}

/// What a rollout runs over.
pub struct RolloutInputs<'a> {
    pub runtime: &'a Runtime,
    pub plan: &'a Plan,
    pub rollout_plan: &'a RolloutPlan,
    pub change_path: &'a Path,
    /// The change as read (its own metrics.json, if any).
    pub change: Arc<Change>,
    pub change_id: String,
    /// Who approved experiments at production checkpoints.
    pub experiment_approval: Option<ExperimentApproval>,
}

/// The journal of rollout `id` under `dir`.
pub fn journal_path(dir: &Path, id: &str) -> PathBuf {
    dir.join(format!("{id}.jsonl"))
}

/// Checks a rollout id (it names a file).
pub fn check_id(id: &str) -> Result<(), RolloutError> {
    let ok = !id.is_empty()
        && id.len() <= 64
        && !id.starts_with('.')
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    if ok {
        Ok(())
    } else {
        Err(RolloutError::BadId { id: id.to_owned() })
    }
}

/// A fresh rollout id: `r-<unix seconds>-<4 hex>`.
pub fn new_id() -> String {
    let now = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or_default();
    let salt = Sha256::new()
        .chain_update(now.as_nanos().to_le_bytes())
        .chain_update(std::process::id().to_le_bytes())
        .finalize();
    format!("r-{}-{}", now.as_secs(), hex::encode(&salt[..2]))
}

/// Where the rollout journals of `dir` are, by id (for "unknown id" errors).
pub fn known_ids(dir: &Path) -> Vec<String> {
    let mut ids: Vec<String> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|entry| {
            entry
                .file_name()
                .to_str()
                .and_then(|name| name.strip_suffix(".jsonl"))
                .map(str::to_owned)
        })
        .collect();
    ids.sort();
    ids
}

fn unknown(dir: &Path, id: &str) -> RolloutError {
    let known = known_ids(dir);
    RolloutError::Unknown {
        id: id.to_owned(),
        dir: dir.to_owned(),
        known: if known.is_empty() {
            "none".to_owned()
        } else {
            known.join(", ")
        },
    }
}

/// Digest of a change: every document (path, before, after) and metric.
pub fn change_digest(change: &Change) -> String {
    let mut hasher = Sha256::new();
    for document in change.documents() {
        hasher.update(document.path.as_bytes());
        hasher.update([0]);
        for side in [&document.before, &document.after] {
            match side {
                Some(bytes) => {
                    hasher.update([1]);
                    hasher.update(Sha256::digest(bytes));
                }
                None => hasher.update([0]),
            }
        }
    }
    for metric in &change.metrics {
        hasher.update(metric.name.as_bytes());
        hasher.update([0]);
        hasher.update(metric.value.to_le_bytes());
    }
    hex::encode(hasher.finalize())
}

/// What a rollout starts from: digests of plan, change and every plugin.
async fn started_record(
    inputs: &RolloutInputs<'_>,
    progress: &dyn RolloutProgress,
) -> Result<Started, RolloutError> {
    let plan_bytes = crate::runtime::input::read_limited(
        &inputs.plan.path,
        "plan",
        crate::runtime::input::MAX_PLAN_BYTES,
    )
    .map_err(|source| {
        CheckError::Plan(crate::check::plan::PlanError::Read {
            path: inputs.plan.path.clone(),
            source,
        })
    })?;
    let names: Vec<&str> = inputs.plan.plugins.keys().map(String::as_str).collect();
    let loaded = check::load_plugins(inputs.runtime, inputs.plan, names, progress)?;
    check::config::check_configs(inputs.plan, &loaded).await?;
    let plugins = loaded
        .iter()
        .map(|(name, plugin)| {
            let limits = inputs
                .plan
                .plugins
                .get(name)
                .map(|entry| serde_json::to_value(entry.limit_settings).unwrap_or_default())
                .unwrap_or_default();
            (
                name.clone(),
                PluginRecord {
                    sha256: plugin.digest().to_hex(),
                    limits,
                },
            )
        })
        .collect();
    Ok(Started {
        plan: inputs.plan.path.display().to_string(),
        plan_sha256: hex::encode(Sha256::digest(&plan_bytes)),
        change: inputs.change_path.display().to_string(),
        change_sha256: change_digest(&inputs.change),
        checkpoints: inputs
            .plan
            .checkpoints
            .iter()
            .map(|c| c.name.clone())
            .collect(),
        plugins,
        change_id: inputs.change_id.clone(),
    })
}

/// Where rollouts are kept: journal files in a directory (one process at a
/// time per rollout, by `flock`), or PostgreSQL rows shared by replicas
/// (one replica at a time per rollout, by a lease; `owner` must hold it).
#[derive(Clone, Copy)]
pub enum Store<'a> {
    Dir(&'a Path),
    Pg { store: &'a PgStore, owner: &'a str },
}

/// An open journal of either kind.
enum Sink {
    File(Journal),
    Pg(PgJournal),
}

impl Sink {
    async fn append(
        &mut self,
        kind: &str,
        key: Option<&str>,
        body: serde_json::Value,
    ) -> Result<Record, RolloutError> {
        match self {
            Sink::File(journal) => Ok(journal.append(kind, key, body)?),
            Sink::Pg(journal) => Ok(journal.append(kind, key, body).await?),
        }
    }

    /// What names the journal in errors.
    fn label(&self) -> PathBuf {
        match self {
            Sink::File(journal) => journal.path().to_owned(),
            Sink::Pg(journal) => PathBuf::from(format!("postgres:{}", journal.rollout())),
        }
    }
}

/// An open journal and the state it folds to, kept in step.
struct Session<'p> {
    journal: Sink,
    state: RolloutState,
    progress: &'p dyn RolloutProgress,
}

impl Session<'_> {
    /// Records `event` (one write, fsynced) and folds it in; only then may
    /// the step it records be acted on.
    async fn record(&mut self, key: Option<&str>, event: Event) -> Result<Record, RolloutError> {
        let (kind, body) = event.to_record_parts();
        let record = self.journal.append(&kind, key, body).await?;
        self.state
            .apply(&record)
            .map_err(|message| RolloutError::Replay {
                path: self.journal.label(),
                message,
            })?;
        self.progress.recorded(&record, &event);
        Ok(record)
    }
}

/// Starts rollout `id` (a new journal under `dir`) and drives it as far as
/// it goes.
pub async fn start(
    inputs: &RolloutInputs<'_>,
    store: Store<'_>,
    id: &str,
    progress: &dyn RolloutProgress,
) -> Result<(RolloutState, RolloutEnd), RolloutError> {
    check_id(id)?;
    let started = started_record(inputs, progress).await?;
    let journal = match store {
        Store::Dir(dir) => {
            std::fs::create_dir_all(dir).map_err(|source| RolloutError::StateDir {
                path: dir.to_owned(),
                source,
            })?;
            Sink::File(Journal::create(&journal_path(dir, id), id)?)
        }
        Store::Pg { store, owner } => Sink::Pg(PgJournal::create(store, id, owner).await?),
    };
    let mut session = Session {
        journal,
        state: RolloutState::new(id),
        progress,
    };
    session.record(None, Event::RolloutStarted(started)).await?;
    drive(inputs, &mut session).await
}

/// Opens rollout `id` for a change of state (resume, approve, abort): takes
/// its lock, repairs a torn tail, replays it, and refuses inputs that
/// changed since it started unless `allow_changed`.
async fn open_session<'p>(
    inputs: &RolloutInputs<'_>,
    store: Store<'_>,
    id: &str,
    allow_changed: bool,
    progress: &'p dyn RolloutProgress,
) -> Result<Session<'p>, RolloutError> {
    check_id(id)?;
    let (journal, records, label) = match store {
        Store::Dir(dir) => {
            let path = journal_path(dir, id);
            if !path.exists() {
                return Err(unknown(dir, id));
            }
            let opened = open_waiting(&path)?;
            if let Some(torn) = &opened.repaired {
                progress.repaired(torn);
            }
            (Sink::File(opened.journal), opened.records, path)
        }
        Store::Pg { store, owner } => {
            let (journal, records) = PgJournal::open(store, id, owner).await?;
            let label = PathBuf::from(format!("postgres:{id}"));
            (Sink::Pg(journal), records, label)
        }
    };
    let state = RolloutState::replay(id, &records).map_err(|message| RolloutError::Replay {
        path: label,
        message,
    })?;
    let mut session = Session {
        journal,
        state,
        progress,
    };
    let now = started_record(inputs, progress).await?;
    let Some(was) = session.state.started.clone() else {
        // Killed between creating the journal and recording its start:
        // nothing was acted on, so the rollout starts now.
        session.record(None, Event::RolloutStarted(now)).await?;
        return Ok(session);
    };
    let mut changed = Vec::new();
    if was.plan_sha256 != now.plan_sha256 {
        changed.push("the plan".to_owned());
    }
    if was.change_sha256 != now.change_sha256 {
        changed.push("the change".to_owned());
    }
    for (name, plugin) in &now.plugins {
        if was.plugins.get(name).map(|p| &p.sha256) != Some(&plugin.sha256) {
            changed.push(format!("plugin `{name}`"));
        }
    }
    if was.checkpoints != now.checkpoints {
        changed.push("the checkpoints".to_owned());
    }
    if !changed.is_empty() && !allow_changed {
        return Err(RolloutError::InputsChanged {
            id: id.to_owned(),
            changed,
        });
    }
    session
        .record(None, Event::Resumed(Resumed { changed }))
        .await?;
    Ok(session)
}

/// How long a locked journal is retried before it counts as in use.
const LOCK_WAIT: Duration = Duration::from_secs(2);

/// Opens a journal, retrying a lock for up to [`LOCK_WAIT`]: a hook child
/// forked by a cairn that was just killed holds the lock (it shares the
/// open file) until it execs, for a moment. A running rollout holds it far
/// longer, and is refused.
fn open_waiting(path: &Path) -> Result<crate::rollout::journal::Opened, RolloutError> {
    let started = std::time::Instant::now();
    loop {
        match Journal::open(path) {
            Err(JournalError::Locked { .. }) if started.elapsed() < LOCK_WAIT => {
                std::thread::sleep(Duration::from_millis(50));
            }
            result => return Ok(result?),
        }
    }
}

/// Takes rollout `id` up again from where its journal stops.
pub async fn resume(
    inputs: &RolloutInputs<'_>,
    store: Store<'_>,
    id: &str,
    allow_changed: bool,
    progress: &dyn RolloutProgress,
) -> Result<(RolloutState, RolloutEnd), RolloutError> {
    let mut session = open_session(inputs, store, id, allow_changed, progress).await?;
    drive(inputs, &mut session).await
}

/// Records an approval of the pause in force, then, if it was the last one
/// needed and `go_on`, drives the rollout on.
pub async fn approve(
    inputs: &RolloutInputs<'_>,
    store: Store<'_>,
    id: &str,
    approval: Approval,
    go_on: bool,
    progress: &dyn RolloutProgress,
) -> Result<(RolloutState, RolloutEnd), RolloutError> {
    let mut session = open_session(inputs, store, id, false, progress).await?;
    let Some(pause) = session.state.pause.clone() else {
        return Err(RolloutError::NotPaused { id: id.to_owned() });
    };
    let missing = pause.missing_roles();
    let role_ok = pause.pause.roles.is_empty() || missing.contains(&approval.role);
    if !role_ok {
        return Err(RolloutError::UnknownRole {
            role: approval.role,
            checkpoint: pause.pause.checkpoint,
            missing: missing.join(", "),
        });
    }
    session
        .record(
            None,
            Event::Approved(Approval {
                checkpoint: pause.pause.checkpoint.clone(),
                ..approval
            }),
        )
        .await?;
    if session.state.pause.is_some() || !go_on {
        let end = RolloutEnd::of(session.state.phase()).unwrap_or(RolloutEnd::Paused);
        return Ok((session.state, end));
    }
    drive(inputs, &mut session).await
}

/// Records an abort and rolls the rollout back.
pub async fn abort(
    inputs: &RolloutInputs<'_>,
    store: Store<'_>,
    id: &str,
    by: &str,
    reason: &str,
    progress: &dyn RolloutProgress,
) -> Result<(RolloutState, RolloutEnd), RolloutError> {
    let mut session = open_session(inputs, store, id, true, progress).await?;
    let phase = session.state.phase();
    if phase.is_final() || session.state.rollback.is_some() {
        return Err(RolloutError::Finished {
            id: id.to_owned(),
            phase: phase_word(phase).to_owned(),
            action: "abort",
        });
    }
    session
        .record(
            None,
            Event::AbortRequested {
                by: by.to_owned(),
                reason: reason.to_owned(),
            },
        )
        .await?;
    drive(inputs, &mut session).await
}

/// Reads a rollout's state without taking its lock (a running rollout can
/// be watched); a torn last record is left for the next resume to repair.
pub async fn status_in(store: Store<'_>, id: &str) -> Result<RolloutState, RolloutError> {
    match store {
        Store::Dir(dir) => status(dir, id),
        Store::Pg { store, .. } => {
            check_id(id)?;
            let records = crate::rollout::pg::records(store, id).await?;
            RolloutState::replay(id, &records).map_err(|message| RolloutError::Replay {
                path: PathBuf::from(format!("postgres:{id}")),
                message,
            })
        }
    }
}

/// [`status_in`] for a journal directory.
pub fn status(dir: &Path, id: &str) -> Result<RolloutState, RolloutError> {
    check_id(id)?;
    let path = journal_path(dir, id);
    if !path.exists() {
        return Err(unknown(dir, id));
    }
    let read = crate::rollout::journal::read(&path)?;
    RolloutState::replay(id, &read.records)
        .map_err(|message| RolloutError::Replay { path, message })
}

pub fn phase_word(phase: Phase) -> &'static str {
    match phase {
        Phase::Running => "running",
        Phase::Paused => "paused",
        Phase::RollingBack => "rolling back",
        Phase::Completed => "completed",
        Phase::RolledBack => "rolled back",
        Phase::RollbackUnverified => "rolled back, unverified",
        Phase::Frozen => "frozen",
    }
}

/// The idempotency key of a hook: the same on every run of that hook of
/// that checkpoint of that rollout.
pub fn hook_key(id: &str, checkpoint: &str, hook: HookKind) -> String {
    let hook = match hook {
        HookKind::Promote => "promote",
        HookKind::Rollback => "rollback",
    };
    format!("{id}/{checkpoint}/{hook}")
}

/// Drives the rollout from its current state until it ends or pauses.
async fn drive(
    inputs: &RolloutInputs<'_>,
    session: &mut Session<'_>,
) -> Result<(RolloutState, RolloutEnd), RolloutError> {
    flush_notifications(inputs, session).await?;
    loop {
        if let Some(end) = RolloutEnd::of(session.state.phase()) {
            return Ok((session.state.clone(), end));
        }
        step(inputs, session).await?;
        flush_notifications(inputs, session).await?;
    }
}

/// One step: whatever comes next for the state as recorded.
async fn step(inputs: &RolloutInputs<'_>, session: &mut Session<'_>) -> Result<(), RolloutError> {
    if session.state.rollback.is_some() {
        return rollback_step(inputs, session).await;
    }
    if let Some((by, reason)) = session.state.abort.clone() {
        let at = current_checkpoint(&session.state).unwrap_or_default();
        return begin_rollback(inputs, session, &at, format!("aborted by {by}: {reason}")).await;
    }
    let Some(index) = session
        .state
        .checkpoints
        .iter()
        .position(|c| c.passed.is_none())
    else {
        session.record(None, Event::Completed).await?;
        return Ok(());
    };
    let entry = &inputs.plan.checkpoints[index];
    let settings = rollout_settings(inputs.rollout_plan, &entry.name);
    let name = entry.name.clone();
    let checkpoint = session.state.checkpoints[index].clone();
    if !checkpoint.started {
        session
            .record(
                None,
                Event::CheckpointStarted {
                    checkpoint: name.clone(),
                },
            )
            .await?;
        return Ok(());
    }
    if settings.approve_before
        && !checkpoint.promote_touched()
        && !session.state.was_cleared(&name, PauseReason::ApproveBefore)
    {
        pause(
            session,
            &settings,
            PauseReason::ApproveBefore,
            format!("checkpoint `{name}` asks for approval before it promotes"),
        )
        .await?;
        return Ok(());
    }
    if let Some(hook) = &settings.promote {
        match checkpoint.hook(HookKind::Promote) {
            HookState::Finished { ok: true, .. } => {}
            HookState::Finished { ok: false, .. } => {
                return begin_rollback(
                    inputs,
                    session,
                    &name,
                    format!("the promote hook of `{name}` failed"),
                )
                .await;
            }
            state => {
                let run = match state {
                    HookState::Started { run } => run + 1,
                    _ => 1,
                };
                run_recorded_hook(inputs, session, entry, hook, HookKind::Promote, run).await?;
                return Ok(());
            }
        }
    }
    if checkpoint.observed.is_none() {
        let started = match checkpoint.observe_started {
            Some(at) => at,
            None => {
                session
                    .record(
                        None,
                        Event::ObserveStarted {
                            checkpoint: name.clone(),
                            window_ms: u64::try_from(settings.observe.as_millis())
                                .unwrap_or(u64::MAX),
                        },
                    )
                    .await?;
                SystemTime::now()
            }
        };
        let waited = SystemTime::now()
            .duration_since(started)
            .unwrap_or_default();
        if let Some(remaining) = settings.observe.checked_sub(waited) {
            tokio::time::sleep(remaining).await;
        }
        let metrics = observed_metrics(inputs)?;
        session
            .record(
                None,
                Event::Observed {
                    checkpoint: name.clone(),
                    metrics: metrics.iter().map(|m| (m.name.clone(), m.value)).collect(),
                },
            )
            .await?;
        return Ok(());
    }
    let Some((outcome, _)) = checkpoint.judged.clone() else {
        let metrics = checkpoint.observed.clone().unwrap_or_default();
        let (outcome, report) = judge(inputs, entry, &metrics).await?;
        session
            .record(
                None,
                Event::CheckpointJudged {
                    checkpoint: name.clone(),
                    outcome,
                    report,
                },
            )
            .await?;
        return Ok(());
    };
    let passed = Event::CheckpointPassed {
        checkpoint: name.clone(),
        outcome,
    };
    match outcome {
        Outcome::Pass => {
            session.record(None, passed).await?;
        }
        Outcome::Warn if settings.on_warn == OnWarn::Continue => {
            session.record(None, passed).await?;
        }
        Outcome::Warn | Outcome::Inconclusive => {
            let reason = if outcome == Outcome::Warn {
                PauseReason::Warn
            } else {
                PauseReason::Inconclusive
            };
            if session.state.was_cleared(&name, reason) {
                session.record(None, passed).await?;
            } else {
                pause(
                    session,
                    &settings,
                    reason,
                    format!("the gate of `{name}` was {outcome}"),
                )
                .await?;
            }
        }
        Outcome::Fail => {
            return begin_rollback(
                inputs,
                session,
                &name,
                format!("the gate of `{name}` failed"),
            )
            .await;
        }
    }
    Ok(())
}

/// The checkpoint a rollout is at: the first not passed, else the last.
fn current_checkpoint(state: &RolloutState) -> Option<String> {
    state
        .checkpoints
        .iter()
        .find(|c| c.passed.is_none())
        .or(state.checkpoints.last())
        .map(|c| c.name.clone())
}

fn rollout_settings(plan: &RolloutPlan, checkpoint: &str) -> CheckpointRollout {
    plan.checkpoint(checkpoint)
        .cloned()
        .unwrap_or_else(|| CheckpointRollout {
            checkpoint: checkpoint.to_owned(),
            promote: None,
            rollback: None,
            observe: Duration::ZERO,
            on_warn: OnWarn::Continue,
            approve_before: false,
            approvals: Vec::new(),
            owners: Default::default(),
            runbook: None,
            irreversible: false,
            rollback_window: None,
        })
}

async fn pause(
    session: &mut Session<'_>,
    settings: &CheckpointRollout,
    reason: PauseReason,
    detail: String,
) -> Result<(), RolloutError> {
    session
        .record(
            None,
            Event::Paused(Pause {
                checkpoint: settings.checkpoint.clone(),
                reason,
                roles: settings.approvals.clone(),
                owners: settings.owners.clone(),
                runbook: settings.runbook.clone(),
                detail,
            }),
        )
        .await?;
    Ok(())
}

/// Runs one hook with its start and end recorded around it.
async fn run_recorded_hook(
    inputs: &RolloutInputs<'_>,
    session: &mut Session<'_>,
    entry: &CheckpointEntry,
    hook: &HookSpec,
    kind: HookKind,
    run: u32,
) -> Result<bool, RolloutError> {
    let id = session.state.id.clone();
    let key = hook_key(&id, &entry.name, kind);
    session
        .record(
            Some(&key),
            Event::HookStarted(HookStart {
                checkpoint: entry.name.clone(),
                hook: kind,
                run,
            }),
        )
        .await?;
    let payload = serde_json::json!({
        "rollout": id,
        "checkpoint": entry.name,
        "environment": entry.environment,
        "rollout-percent": entry.rollout_percent,
        "hook": match kind { HookKind::Promote => "promote", HookKind::Rollback => "rollback" },
        "run": run,
        "plan": inputs.plan.path.display().to_string(),
        "change": inputs.change_path.display().to_string(),
        "change-id": inputs.change_id,
    });
    let action = match kind {
        HookKind::Promote => HookAction::Promote,
        HookKind::Rollback => HookAction::Rollback,
    };
    let outcome = hooks::run_hook(
        hook,
        &HookCall {
            rollout: &id,
            checkpoint: &entry.name,
            action,
            idempotency_key: &key,
            payload: &payload,
        },
    )
    .await;
    let ok = outcome.ok;
    session
        .record(
            Some(&key),
            Event::HookFinished(HookEnd {
                checkpoint: entry.name.clone(),
                hook: kind,
                ok,
                outcome: serde_json::to_value(&outcome).unwrap_or_default(),
            }),
        )
        .await?;
    Ok(ok)
}

/// The metrics the validators judge: read from the plan's metrics source
/// now, else (no source, or its file not written yet) the change's own.
fn observed_metrics(inputs: &RolloutInputs<'_>) -> Result<Vec<crate::Metric>, RolloutError> {
    match &inputs.rollout_plan.metrics {
        // Nothing observed yet (the platform writes it once promoted):
        // the change's own metrics stand.
        Some(MetricsSource::File(path)) if !path.exists() => Ok(inputs.change.metrics.clone()),
        Some(MetricsSource::File(path)) => {
            let change = (*inputs.change)
                .clone()
                .with_metrics_file(path)
                .map_err(|source| RolloutError::Metrics {
                    path: path.clone(),
                    source,
                })?;
            Ok(change.metrics)
        }
        None => Ok(inputs.change.metrics.clone()),
    }
}

/// Runs one checkpoint's experiments and validators over the change with
/// `metrics`; its outcome for the rollout and its JSON report.
async fn judge(
    inputs: &RolloutInputs<'_>,
    entry: &CheckpointEntry,
    metrics: &BTreeMap<String, f64>,
) -> Result<(Outcome, serde_json::Value), RolloutError> {
    let plan = Plan {
        checkpoints: vec![entry.clone()],
        ..inputs.plan.clone()
    };
    run_one(inputs, &plan, metrics).await
}

async fn run_one(
    inputs: &RolloutInputs<'_>,
    plan: &Plan,
    metrics: &BTreeMap<String, f64>,
) -> Result<(Outcome, serde_json::Value), RolloutError> {
    let mut change = (*inputs.change).clone();
    change.metrics = metrics
        .iter()
        .map(|(name, value)| crate::Metric {
            name: name.clone(),
            value: *value,
        })
        .collect();
    let options = RunOptions {
        change_id: inputs.change_id.clone(),
        approval: inputs.experiment_approval.clone(),
        ..RunOptions::default()
    };
    let mut report: CheckReport = check::run_plan(
        inputs.runtime,
        plan,
        Arc::new(change),
        &options,
        &check::NoProgress,
    )
    .await?;
    report.plan = inputs.plan.path.clone();
    report.change = inputs.change_path.to_owned();
    let outcome = match report.checkpoints.first().map(|c| c.decision) {
        Some(decision) if decision.passed() => decision.outcome,
        // A warning under fail-on-warn stops the rollout like a failure.
        Some(decision) if decision.outcome == Outcome::Warn => Outcome::Fail,
        Some(decision) => decision.outcome,
        None => Outcome::Inconclusive,
    };
    let json = report::render(&report, report::Format::Json, &RenderOptions::default());
    let json = serde_json::from_str(&json).unwrap_or(serde_json::Value::String(json));
    Ok((outcome, json))
}

/// Records the start of a rollback after a failure at `checkpoint`: what
/// is undone (each promoted checkpoint, newest first, down to an
/// irreversible one, which is not undone).
async fn begin_rollback(
    inputs: &RolloutInputs<'_>,
    session: &mut Session<'_>,
    checkpoint: &str,
    reason: String,
) -> Result<(), RolloutError> {
    let mut undo = Vec::new();
    let mut frozen_at = None;
    for state in session.state.checkpoints.iter().rev() {
        let settings = rollout_settings(inputs.rollout_plan, &state.name);
        // Reached: its promote ran (or may have), or, without a promote
        // hook, it started.
        let reached = if settings.promote.is_some() {
            state.promote_touched()
        } else {
            state.started
        };
        if !reached {
            continue;
        }
        if settings.irreversible {
            frozen_at = Some(state.name.clone());
            break;
        }
        if settings.rollback.is_some() {
            undo.push(state.name.clone());
        }
    }
    session
        .record(
            None,
            Event::RollbackStarted(RollbackStart {
                checkpoint: checkpoint.to_owned(),
                reason,
                undo,
                frozen_at,
            }),
        )
        .await?;
    Ok(())
}

/// The next step of a rollback in progress.
async fn rollback_step(
    inputs: &RolloutInputs<'_>,
    session: &mut Session<'_>,
) -> Result<(), RolloutError> {
    let Some(rollback) = session.state.rollback.clone() else {
        return Ok(());
    };
    // Past a rollback window: ask before undoing (once).
    if let Some((name, age)) = window_passed(
        inputs.rollout_plan,
        &session.state,
        &rollback.start.undo,
        SystemTime::now(),
    ) && !session
        .state
        .was_cleared(&name, PauseReason::RollbackWindow)
    {
        // The pause is the undone checkpoint's: its approvers, its owners,
        // and the name the approval clears.
        let settings = rollout_settings(inputs.rollout_plan, &name);
        pause(
            session,
            &settings,
            PauseReason::RollbackWindow,
            format!(
                "`{name}` was promoted {} min ago, past its rollback window; approve to roll back",
                age.as_secs() / 60
            ),
        )
        .await?;
        return Ok(());
    }
    for name in &rollback.start.undo {
        let settings = rollout_settings(inputs.rollout_plan, name);
        let Some(hook) = &settings.rollback else {
            continue;
        };
        let Some(state) = session.state.checkpoint(name).cloned() else {
            continue;
        };
        match state.hook(HookKind::Rollback) {
            HookState::Finished { ok: true, .. } => continue,
            HookState::Finished { ok: false, .. } => {
                session
                    .record(
                        None,
                        Event::RollbackUnverified {
                            reason: format!("the rollback hook of `{name}` failed"),
                            report: None,
                        },
                    )
                    .await?;
                return Ok(());
            }
            hook_state => {
                let run = match hook_state {
                    HookState::Started { run } => run + 1,
                    _ => 1,
                };
                let Some(entry) = inputs.plan.checkpoint(name) else {
                    continue;
                };
                run_recorded_hook(inputs, session, entry, hook, HookKind::Rollback, run).await?;
                return Ok(());
            }
        }
    }
    if let Some(frozen_at) = &rollback.start.frozen_at {
        session.record(
            None,
            Event::Frozen {
                checkpoint: frozen_at.clone(),
                reason: format!(
                    "`{frozen_at}` is irreversible: the rollout is rolled back down to it, not past it"
                ),
            },
        ).await?;
        return Ok(());
    }
    if inputs.plan.verify.is_empty() {
        session.record(
            None,
            Event::RollbackUnverified {
                reason: "the plan names no [rollout] verify validators, so nothing proves the baseline is back".to_owned(),
                report: None,
            },
        ).await?;
        return Ok(());
    }
    tokio::time::sleep(inputs.rollout_plan.verify_after).await;
    let metrics: BTreeMap<String, f64> = observed_metrics(inputs)?
        .into_iter()
        .map(|m| (m.name, m.value))
        .collect();
    let environment = inputs
        .plan
        .checkpoint(&rollback.start.checkpoint)
        .map(|c| c.environment.clone())
        .unwrap_or_else(|| "rollback".to_owned());
    let plan = Plan {
        checkpoints: vec![CheckpointEntry {
            name: "verify-rollback".to_owned(),
            index: u32::try_from(inputs.plan.checkpoints.len()).unwrap_or(u32::MAX),
            environment,
            rollout_percent: 0,
            rules: GateRules::default(),
            experiments: Vec::new(),
            validators: inputs.plan.verify.clone(),
        }],
        ..inputs.plan.clone()
    };
    let (outcome, report) = run_one(inputs, &plan, &metrics).await?;
    if matches!(outcome, Outcome::Pass | Outcome::Warn) {
        session
            .record(None, Event::RollbackVerified { report })
            .await?;
    } else {
        session
            .record(
                None,
                Event::RollbackUnverified {
                    reason: format!("the verification validators were {outcome}"),
                    report: Some(report),
                },
            )
            .await?;
    }
    Ok(())
}

/// The first checkpoint to undo whose promotion is older than its rollback
/// window, and how old it is.
fn window_passed(
    plan: &RolloutPlan,
    state: &RolloutState,
    undo: &[String],
    now: SystemTime,
) -> Option<(String, Duration)> {
    undo.iter().find_map(|name| {
        let window = rollout_settings(plan, name).rollback_window?;
        let HookState::Finished { at: Some(at), .. } =
            state.checkpoint(name)?.hook(HookKind::Promote)
        else {
            return None;
        };
        let age = now.duration_since(*at).ok()?;
        (age > window).then(|| (name.clone(), age))
    })
}

/// Sends the notifications of notable events not yet recorded as sent.
async fn flush_notifications(
    inputs: &RolloutInputs<'_>,
    session: &mut Session<'_>,
) -> Result<(), RolloutError> {
    let Some(hook) = &inputs.rollout_plan.notify else {
        return Ok(());
    };
    while let Some((seq, event)) = session.state.unnotified.first().cloned() {
        let id = session.state.id.clone();
        let key = format!("{id}/notify/{seq}");
        let checkpoint = current_checkpoint(&session.state).unwrap_or_default();
        let payload = notification(&session.state, seq, &event);
        let outcome = hooks::run_hook(
            hook,
            &HookCall {
                rollout: &id,
                checkpoint: &checkpoint,
                action: HookAction::Notify,
                idempotency_key: &key,
                payload: &payload,
            },
        )
        .await;
        let detail = outcome
            .attempts
            .last()
            .map(|attempt| format!("{:?}", attempt.result))
            .unwrap_or_default();
        session
            .record(
                Some(&key),
                Event::Notified {
                    for_seq: seq,
                    event,
                    ok: outcome.ok,
                    detail,
                },
            )
            .await?;
    }
    Ok(())
}

/// What the notify hook is told: the event, where the rollout stands, and
/// who owns the checkpoint.
fn notification(state: &RolloutState, seq: u64, event: &str) -> serde_json::Value {
    let pause = state.pause.as_ref().map(|p| &p.pause);
    serde_json::json!({
        "rollout": state.id,
        "event": event,
        "record": seq,
        "phase": phase_word(state.phase()),
        "checkpoint": current_checkpoint(state),
        "pause": pause,
        "rollback": state.rollback.as_ref().map(|r| &r.start),
        "frozen": state.frozen.as_ref().map(|(c, reason)| serde_json::json!({"checkpoint": c, "reason": reason})),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rollout::state::HookEnd;

    fn record(seq: u64, at: SystemTime, event: &Event) -> Record {
        let (kind, body) = event.to_record_parts();
        Record {
            seq,
            prev: String::new(),
            at: humantime::format_rfc3339_millis(at).to_string(),
            rollout: "r".to_owned(),
            kind,
            key: None,
            body,
        }
    }

    /// A rollout whose `full` promote finished at `promoted`.
    fn promoted_at(promoted: SystemTime) -> RolloutState {
        let started = Event::RolloutStarted(Started {
            plan: "p".into(),
            plan_sha256: String::new(),
            change: "c".into(),
            change_sha256: String::new(),
            checkpoints: vec!["full".into()],
            plugins: BTreeMap::new(),
            change_id: String::new(),
        });
        let finished = Event::HookFinished(HookEnd {
            checkpoint: "full".into(),
            hook: HookKind::Promote,
            ok: true,
            outcome: serde_json::Value::Null,
        });
        RolloutState::replay(
            "r",
            &[
                record(1, promoted, &started),
                record(2, promoted, &finished),
            ],
        )
        .unwrap()
    }

    fn plan_with_window(minutes: Option<u64>) -> RolloutPlan {
        let mut settings = rollout_settings(
            &RolloutPlan {
                checkpoints: Vec::new(),
                metrics: None,
                notify: None,
                verify_after: Duration::ZERO,
            },
            "full",
        );
        settings.rollback_window = minutes.map(|m| Duration::from_secs(m * 60));
        RolloutPlan {
            checkpoints: vec![settings],
            metrics: None,
            notify: None,
            verify_after: Duration::ZERO,
        }
    }

    #[test]
    fn a_rollback_past_the_window_after_promotion_asks_first() {
        let now = SystemTime::now();
        let undo = vec!["full".to_owned()];
        let state = promoted_at(now - Duration::from_secs(31 * 60));
        let (name, age) = window_passed(&plan_with_window(Some(30)), &state, &undo, now)
            .expect("31 minutes is past a 30-minute window");
        assert_eq!(name, "full");
        assert!(age >= Duration::from_secs(31 * 60));
        let recent = promoted_at(now - Duration::from_secs(29 * 60));
        assert_eq!(
            window_passed(&plan_with_window(Some(30)), &recent, &undo, now),
            None
        );
        assert_eq!(
            window_passed(&plan_with_window(None), &state, &undo, now),
            None,
            "no window: roll back at once"
        );
    }

    #[test]
    fn rollout_ids_name_files_and_nothing_else() {
        for good in ["r-1-ab12", "demo", "CHG_1042.v2"] {
            check_id(good).unwrap();
        }
        for bad in ["", "../x", "a/b", ".hidden", "a b", &"x".repeat(65)] {
            assert!(
                matches!(check_id(bad), Err(RolloutError::BadId { .. })),
                "{bad:?}"
            );
        }
    }
}
