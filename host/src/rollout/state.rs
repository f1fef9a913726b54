//! What a rollout's journal records (one [`Event`] per record) and where a
//! rollout stands: a fold over its records, the only place its state comes
//! from, so the journal and the state can never disagree.

use std::collections::BTreeMap;
use std::time::SystemTime;

use serde::{Deserialize, Serialize};

use crate::rollout::journal::{self, Record};
use crate::rollout::plan::Owners;
use crate::runtime::verdict::Outcome;

/// One step of a rollout, as recorded. Serialized as the record's `kind`
/// (kebab-case) and `body`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(
    tag = "kind",
    content = "body",
    rename_all = "kebab-case",
    rename_all_fields = "kebab-case"
)]
pub enum Event {
    RolloutStarted(Started),
    /// A later run took the rollout up again.
    Resumed(Resumed),
    CheckpointStarted {
        checkpoint: String,
    },
    /// Waiting for approvals; nothing moves until they are in.
    Paused(Pause),
    Approved(Approval),
    /// A hook is about to run; its idempotency key is the record's key.
    HookStarted(HookStart),
    HookFinished(HookEnd),
    ObserveStarted {
        checkpoint: String,
        window_ms: u64,
    },
    /// The observation window ended; the metrics read then.
    Observed {
        checkpoint: String,
        metrics: BTreeMap<String, f64>,
    },
    /// The checkpoint's experiments and validators ran; `report` is the
    /// JSON report of `cairn check` for this checkpoint.
    CheckpointJudged {
        checkpoint: String,
        outcome: Outcome,
        report: serde_json::Value,
    },
    CheckpointPassed {
        checkpoint: String,
        outcome: Outcome,
    },
    AbortRequested {
        by: String,
        reason: String,
    },
    RollbackStarted(RollbackStart),
    /// The verification validators passed: the baseline is back.
    RollbackVerified {
        report: serde_json::Value,
    },
    /// A rollback hook failed, or the verification validators did not pass.
    RollbackUnverified {
        reason: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        report: Option<serde_json::Value>,
    },
    /// A failure past an irreversible checkpoint: rolled back down to it,
    /// not past it.
    Frozen {
        checkpoint: String,
        reason: String,
    },
    Completed,
    /// The notification hook ran for the event of record `for_seq`.
    Notified {
        for_seq: u64,
        event: String,
        ok: bool,
        detail: String,
    },
}

impl Event {
    /// `(kind, body)` for the journal.
    pub fn to_record_parts(&self) -> (String, serde_json::Value) {
        let value = serde_json::to_value(self).unwrap_or(serde_json::Value::Null);
        let kind = value
            .get("kind")
            .and_then(|k| k.as_str())
            .unwrap_or_default()
            .to_owned();
        let body = value
            .get("body")
            .cloned()
            .unwrap_or(serde_json::Value::Object(Default::default()));
        (kind, body)
    }

    /// The event a record holds; `None` for records the journal writes
    /// itself (`journal-created`, `journal-repaired`).
    pub fn from_record(record: &Record) -> Result<Option<Event>, String> {
        if record.kind == journal::REPAIRED_KIND || record.kind == journal::CREATED_KIND {
            return Ok(None);
        }
        let with_body = serde_json::json!({ "kind": record.kind, "body": record.body });
        let empty = record.body.is_null() || record.body.as_object().is_some_and(|b| b.is_empty());
        match serde_json::from_value::<Event>(with_body) {
            Ok(event) => Ok(Some(event)),
            // A unit variant (`completed`) is written with an empty body.
            Err(_) if empty => {
                serde_json::from_value::<Event>(serde_json::json!({ "kind": record.kind }))
                    .map(Some)
                    .map_err(|err| format!("record {} ({}): {err}", record.seq, record.kind))
            }
            Err(err) => Err(format!("record {} ({}): {err}", record.seq, record.kind)),
        }
    }

    /// Whether people are told about this event (the notify hook).
    pub fn is_notable(&self) -> bool {
        matches!(
            self,
            Event::Paused(_)
                | Event::RollbackStarted(_)
                | Event::RollbackVerified { .. }
                | Event::RollbackUnverified { .. }
                | Event::Frozen { .. }
                | Event::Completed
        )
    }
}

/// What a rollout started from: enough to refuse a resume over other
/// inputs and to audit the run later.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct Started {
    pub plan: String,
    pub plan_sha256: String,
    pub change: String,
    pub change_sha256: String,
    pub checkpoints: Vec<String>,
    /// Plugin name → digest and limits.
    pub plugins: BTreeMap<String, PluginRecord>,
    #[serde(default)]
    pub change_id: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct PluginRecord {
    pub sha256: String,
    pub limits: serde_json::Value,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct Resumed {
    /// Inputs whose digest differs from the start, taken anyway
    /// (`--allow-changed`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub changed: Vec<String>,
}

/// Why a rollout waits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum PauseReason {
    /// The checkpoint asks for approval before it promotes.
    ApproveBefore,
    /// The gate warned and the plan says to pause on warnings.
    Warn,
    /// The gate was inconclusive.
    Inconclusive,
    /// A rollback would undo a promotion older than its rollback window.
    RollbackWindow,
}

impl PauseReason {
    pub fn describe(self) -> &'static str {
        match self {
            PauseReason::ApproveBefore => "the checkpoint asks for approval before it promotes",
            PauseReason::Warn => "the gate warned and the plan pauses on warnings",
            PauseReason::Inconclusive => "the gate was inconclusive",
            PauseReason::RollbackWindow => {
                "a rollback would undo a promotion older than its rollback window"
            }
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct Pause {
    pub checkpoint: String,
    pub reason: PauseReason,
    /// Roles that must each approve (empty: one approval by anyone).
    pub roles: Vec<String>,
    pub owners: Owners,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub runbook: Option<String>,
    /// Why, in words (the gate's findings summary, the window passed).
    pub detail: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct Approval {
    pub checkpoint: String,
    pub by: String,
    pub role: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub comment: Option<String>,
}

/// Which hook of a checkpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum HookKind {
    Promote,
    Rollback,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct HookStart {
    pub checkpoint: String,
    pub hook: HookKind,
    /// 1 the first time, 2 when a crash interrupted the first run, ...
    pub run: u32,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct HookEnd {
    pub checkpoint: String,
    pub hook: HookKind,
    pub ok: bool,
    /// The hook's outcome: attempts, results, output tails.
    pub outcome: serde_json::Value,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct RollbackStart {
    /// The checkpoint that failed (or where an abort found the rollout).
    pub checkpoint: String,
    pub reason: String,
    /// Checkpoints whose rollback hooks run, in that order (newest first).
    pub undo: Vec<String>,
    /// The irreversible checkpoint the rollback stops at, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub frozen_at: Option<String>,
}

/// Where one hook of one checkpoint stands.
#[derive(Debug, Clone, PartialEq, Default)]
pub enum HookState {
    #[default]
    NotStarted,
    /// Started (run `run`), end not recorded: a crash interrupted it.
    Started {
        run: u32,
    },
    Finished {
        ok: bool,
        at: Option<SystemTime>,
    },
}

/// One checkpoint's progress.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct CheckpointState {
    pub name: String,
    pub started: bool,
    pub hooks: BTreeMap<HookKind, HookState>,
    pub observe_started: Option<SystemTime>,
    pub observed: Option<BTreeMap<String, f64>>,
    pub judged: Option<(Outcome, serde_json::Value)>,
    pub passed: Option<Outcome>,
}

impl CheckpointState {
    pub fn hook(&self, kind: HookKind) -> &HookState {
        self.hooks.get(&kind).unwrap_or(&HookState::NotStarted)
    }

    /// Whether its promote ran or may have run (so a rollback undoes it).
    pub fn promote_touched(&self) -> bool {
        !matches!(self.hook(HookKind::Promote), HookState::NotStarted)
    }
}

/// A pause and the approvals given since it began.
#[derive(Debug, Clone, PartialEq)]
pub struct PauseState {
    pub pause: Pause,
    pub seq: u64,
    pub at: Option<SystemTime>,
    pub approvals: Vec<(Approval, String)>,
}

impl PauseState {
    /// Roles still to approve (for a pause needing any one approval: one
    /// entry, `any`, until someone approves).
    pub fn missing_roles(&self) -> Vec<String> {
        if self.pause.roles.is_empty() {
            return if self.approvals.is_empty() {
                vec!["any".to_owned()]
            } else {
                Vec::new()
            };
        }
        self.pause
            .roles
            .iter()
            .filter(|role| !self.approvals.iter().any(|(a, _)| &a.role == *role))
            .cloned()
            .collect()
    }

    pub fn satisfied(&self) -> bool {
        self.missing_roles().is_empty()
    }
}

/// The rollback, once one began.
#[derive(Debug, Clone, PartialEq)]
pub struct RollbackState {
    pub start: RollbackStart,
    pub verified: Option<bool>,
    pub unverified_reason: Option<String>,
}

/// Where a rollout stands, in one word.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Phase {
    /// Going forward (or interrupted while going forward).
    Running,
    /// Waiting for approvals.
    Paused,
    /// Rolling back (or interrupted while rolling back).
    RollingBack,
    /// Every checkpoint passed.
    Completed,
    /// Rolled back, and the verification validators passed.
    RolledBack,
    /// Rolled back, but the baseline is not proven back.
    RollbackUnverified,
    /// Stopped at an irreversible checkpoint.
    Frozen,
}

impl Phase {
    pub fn is_final(self) -> bool {
        matches!(
            self,
            Phase::Completed | Phase::RolledBack | Phase::RollbackUnverified | Phase::Frozen
        )
    }
}

/// A rollout as its journal tells it.
#[derive(Debug, Clone, PartialEq)]
pub struct RolloutState {
    pub id: String,
    pub started: Option<Started>,
    pub started_at: Option<String>,
    pub checkpoints: Vec<CheckpointState>,
    /// The pause in force, if any (cleared when the rollout moves on).
    pub pause: Option<PauseState>,
    /// Pauses already satisfied, by checkpoint and reason.
    pub cleared: Vec<(String, PauseReason)>,
    pub abort: Option<(String, String)>,
    pub rollback: Option<RollbackState>,
    pub frozen: Option<(String, String)>,
    pub completed: bool,
    /// Notable events (their seq) whose notification is not recorded yet.
    pub unnotified: Vec<(u64, String)>,
    pub records: u64,
    pub last_at: Option<String>,
    pub repairs: u64,
}

impl RolloutState {
    pub fn new(id: &str) -> RolloutState {
        RolloutState {
            id: id.to_owned(),
            started: None,
            started_at: None,
            checkpoints: Vec::new(),
            pause: None,
            cleared: Vec::new(),
            abort: None,
            rollback: None,
            frozen: None,
            completed: false,
            unnotified: Vec::new(),
            records: 0,
            last_at: None,
            repairs: 0,
        }
    }

    /// Folds every record, in order.
    pub fn replay(id: &str, records: &[Record]) -> Result<RolloutState, String> {
        let mut state = RolloutState::new(id);
        for record in records {
            state.apply(record)?;
        }
        Ok(state)
    }

    pub fn phase(&self) -> Phase {
        if self.completed {
            return Phase::Completed;
        }
        if self.frozen.is_some() {
            return Phase::Frozen;
        }
        if let Some(rollback) = &self.rollback {
            return match rollback.verified {
                Some(true) => Phase::RolledBack,
                Some(false) => Phase::RollbackUnverified,
                None if self.pause.is_some() => Phase::Paused,
                None => Phase::RollingBack,
            };
        }
        if self.pause.is_some() {
            return Phase::Paused;
        }
        Phase::Running
    }

    pub fn checkpoint(&self, name: &str) -> Option<&CheckpointState> {
        self.checkpoints.iter().find(|c| c.name == name)
    }

    fn checkpoint_mut(&mut self, name: &str) -> Result<&mut CheckpointState, String> {
        self.checkpoints
            .iter_mut()
            .find(|c| c.name == name)
            .ok_or_else(|| format!("names checkpoint `{name}`, which the rollout does not have"))
    }

    /// Whether a pause for (checkpoint, reason) was already approved.
    pub fn was_cleared(&self, checkpoint: &str, reason: PauseReason) -> bool {
        self.cleared
            .iter()
            .any(|(c, r)| c == checkpoint && *r == reason)
    }

    /// Applies one record.
    pub fn apply(&mut self, record: &Record) -> Result<(), String> {
        self.records += 1;
        self.last_at = Some(record.at.clone());
        let at = humantime::parse_rfc3339(&record.at).ok();
        let event = match Event::from_record(record)? {
            Some(event) => event,
            None => {
                if record.kind == journal::REPAIRED_KIND {
                    self.repairs += 1;
                }
                return Ok(());
            }
        };
        let bad = |message: String| format!("record {} ({}): {message}", record.seq, record.kind);
        if self.started.is_none() && !matches!(event, Event::RolloutStarted(_)) {
            return Err(bad("comes before rollout-started".to_owned()));
        }
        if event.is_notable() {
            self.unnotified.push((record.seq, record.kind.clone()));
        }
        match event {
            Event::RolloutStarted(started) => {
                if self.started.is_some() {
                    return Err(bad("a second rollout-started".to_owned()));
                }
                self.checkpoints = started
                    .checkpoints
                    .iter()
                    .map(|name| CheckpointState {
                        name: name.clone(),
                        ..CheckpointState::default()
                    })
                    .collect();
                self.started_at = Some(record.at.clone());
                self.started = Some(started);
            }
            Event::Resumed(_) => {}
            Event::CheckpointStarted { checkpoint } => {
                self.checkpoint_mut(&checkpoint).map_err(bad)?.started = true;
            }
            Event::Paused(pause) => {
                self.pause = Some(PauseState {
                    pause,
                    seq: record.seq,
                    at,
                    approvals: Vec::new(),
                });
            }
            Event::Approved(approval) => {
                let Some(pause) = self.pause.as_mut() else {
                    return Err(bad("an approval while nothing is paused".to_owned()));
                };
                pause.approvals.push((approval, record.at.clone()));
                if pause.satisfied() {
                    let cleared = (pause.pause.checkpoint.clone(), pause.pause.reason);
                    self.cleared.push(cleared);
                    self.pause = None;
                }
            }
            Event::HookStarted(start) => {
                *self
                    .checkpoint_mut(&start.checkpoint)
                    .map_err(bad)?
                    .hooks
                    .entry(start.hook)
                    .or_default() = HookState::Started { run: start.run };
            }
            Event::HookFinished(end) => {
                *self
                    .checkpoint_mut(&end.checkpoint)
                    .map_err(bad)?
                    .hooks
                    .entry(end.hook)
                    .or_default() = HookState::Finished { ok: end.ok, at };
            }
            Event::ObserveStarted { checkpoint, .. } => {
                self.checkpoint_mut(&checkpoint)
                    .map_err(bad)?
                    .observe_started = Some(at.unwrap_or(SystemTime::UNIX_EPOCH));
            }
            Event::Observed {
                checkpoint,
                metrics,
            } => {
                self.checkpoint_mut(&checkpoint).map_err(bad)?.observed = Some(metrics);
            }
            Event::CheckpointJudged {
                checkpoint,
                outcome,
                report,
            } => {
                self.checkpoint_mut(&checkpoint).map_err(bad)?.judged = Some((outcome, report));
            }
            Event::CheckpointPassed {
                checkpoint,
                outcome,
            } => {
                self.checkpoint_mut(&checkpoint).map_err(bad)?.passed = Some(outcome);
            }
            Event::AbortRequested { by, reason } => {
                self.pause = None;
                self.abort = Some((by, reason));
            }
            Event::RollbackStarted(start) => {
                self.pause = None;
                self.rollback = Some(RollbackState {
                    start,
                    verified: None,
                    unverified_reason: None,
                });
            }
            Event::RollbackVerified { .. } => {
                let Some(rollback) = self.rollback.as_mut() else {
                    return Err(bad("a verification without a rollback".to_owned()));
                };
                rollback.verified = Some(true);
            }
            Event::RollbackUnverified { reason, .. } => {
                let Some(rollback) = self.rollback.as_mut() else {
                    return Err(bad("a verification without a rollback".to_owned()));
                };
                rollback.verified = Some(false);
                rollback.unverified_reason = Some(reason);
            }
            Event::Frozen { checkpoint, reason } => {
                self.frozen = Some((checkpoint, reason));
            }
            Event::Completed => {
                self.completed = true;
            }
            Event::Notified { for_seq, .. } => {
                self.unnotified.retain(|(seq, _)| *seq != for_seq);
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(seq: u64, event: &Event) -> Record {
        let (kind, body) = event.to_record_parts();
        Record {
            seq,
            prev: String::new(),
            at: "2026-12-01T10:00:00.000Z".to_owned(),
            rollout: "r".to_owned(),
            kind,
            key: None,
            body,
        }
    }

    fn started() -> Event {
        Event::RolloutStarted(Started {
            plan: "p".into(),
            plan_sha256: "a".into(),
            change: "c".into(),
            change_sha256: "b".into(),
            checkpoints: vec!["staging".into(), "canary".into()],
            plugins: BTreeMap::new(),
            change_id: String::new(),
        })
    }

    #[test]
    fn every_event_round_trips_through_a_record() {
        let events = [
            started(),
            Event::CheckpointStarted {
                checkpoint: "staging".into(),
            },
            Event::Completed,
            Event::RollbackUnverified {
                reason: "x".into(),
                report: None,
            },
        ];
        for (i, event) in events.iter().enumerate() {
            let record = record(i as u64 + 1, event);
            assert_eq!(Event::from_record(&record).unwrap().as_ref(), Some(event));
        }
    }

    #[test]
    fn a_pause_with_two_roles_clears_only_when_both_approve() {
        let pause = Event::Paused(Pause {
            checkpoint: "canary".into(),
            reason: PauseReason::Inconclusive,
            roles: vec!["security".into(), "data-steward".into()],
            owners: Owners::default(),
            runbook: None,
            detail: String::new(),
        });
        let approve = |role: &str| {
            Event::Approved(Approval {
                checkpoint: "canary".into(),
                by: "alice".into(),
                role: role.into(),
                comment: None,
            })
        };
        let mut state = RolloutState::new("r");
        state.apply(&record(1, &started())).unwrap();
        state.apply(&record(2, &pause)).unwrap();
        assert_eq!(state.phase(), Phase::Paused);
        state.apply(&record(3, &approve("security"))).unwrap();
        assert_eq!(state.phase(), Phase::Paused);
        assert_eq!(
            state.pause.as_ref().unwrap().missing_roles(),
            vec!["data-steward"]
        );
        state.apply(&record(4, &approve("data-steward"))).unwrap();
        assert_eq!(state.phase(), Phase::Running);
        assert!(state.was_cleared("canary", PauseReason::Inconclusive));
    }

    #[test]
    fn records_out_of_order_are_refused_not_guessed() {
        let mut state = RolloutState::new("r");
        let err = state
            .apply(&record(
                1,
                &Event::CheckpointStarted {
                    checkpoint: "staging".into(),
                },
            ))
            .unwrap_err();
        assert!(err.contains("before rollout-started"), "{err}");
        state.apply(&record(1, &started())).unwrap();
        let err = state
            .apply(&record(
                2,
                &Event::CheckpointStarted {
                    checkpoint: "nope".into(),
                },
            ))
            .unwrap_err();
        assert!(err.contains("`nope`"), "{err}");
    }
}
