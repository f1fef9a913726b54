//! How a rollout stands, in words and as JSON: what `cairn rollout status`
//! prints and what the server's rollout endpoints return.

use crate::rollout::state::{HookKind, HookState, RolloutState};

pub fn hook_word(hook: HookKind) -> &'static str {
    match hook {
        HookKind::Promote => "promote",
        HookKind::Rollback => "rollback",
    }
}

/// One phrase: where the rollout stands.
pub fn where_it_stands(state: &RolloutState) -> String {
    if let Some(pause) = &state.pause {
        return format!(
            "at {}: {}; waiting for {}",
            pause.pause.checkpoint,
            pause.pause.detail,
            pause.missing_roles().join(", ")
        );
    }
    if let Some(rollback) = &state.rollback {
        return match (&state.frozen, rollback.verified) {
            (Some((checkpoint, _)), _) => {
                format!("frozen at {checkpoint}: {}", rollback.start.reason)
            }
            (None, Some(true)) => format!("{}; rollback verified", rollback.start.reason),
            (None, Some(false)) => format!(
                "{}; rollback NOT verified: {}",
                rollback.start.reason,
                rollback.unverified_reason.clone().unwrap_or_default()
            ),
            (None, None) => format!("rolling back: {}", rollback.start.reason),
        };
    }
    if state.completed {
        return "every checkpoint passed".to_owned();
    }
    match state.checkpoints.iter().find(|c| c.passed.is_none()) {
        Some(checkpoint) => format!("at {}", checkpoint.name),
        None => "every checkpoint passed".to_owned(),
    }
}

pub fn hook_state_word(hook: &HookState) -> &'static str {
    match hook {
        HookState::NotStarted => "not-run",
        HookState::Started { .. } => "interrupted",
        HookState::Finished { ok: true, .. } => "ok",
        HookState::Finished { ok: false, .. } => "failed",
    }
}

/// The rollout's state as JSON (`status --format json`, the server).
pub fn status_json(state: &RolloutState) -> serde_json::Value {
    let checkpoints: Vec<serde_json::Value> = state
        .checkpoints
        .iter()
        .map(|c| {
            let hooks: serde_json::Map<String, serde_json::Value> = c
                .hooks
                .iter()
                .map(|(kind, hook)| {
                    (
                        hook_word(*kind).to_owned(),
                        serde_json::Value::from(hook_state_word(hook)),
                    )
                })
                .collect();
            serde_json::json!({
                "name": c.name,
                "started": c.started,
                "hooks": hooks,
                "observed": c.observed,
                "gate": c.judged.as_ref().map(|(outcome, _)| outcome),
                "passed": c.passed,
            })
        })
        .collect();
    serde_json::json!({
        "id": state.id,
        "phase": state.phase(),
        "why": where_it_stands(state),
        "started": state.started,
        "started-at": state.started_at,
        "checkpoints": checkpoints,
        "pause": state.pause.as_ref().map(|p| serde_json::json!({
            "checkpoint": p.pause.checkpoint,
            "reason": p.pause.reason,
            "detail": p.pause.detail,
            "roles": p.pause.roles,
            "missing-roles": p.missing_roles(),
            "approvals": p.approvals.iter().map(|(a, at)| serde_json::json!({
                "by": a.by, "role": a.role, "comment": a.comment, "at": at,
            })).collect::<Vec<_>>(),
            "owners": p.pause.owners,
            "runbook": p.pause.runbook,
        })),
        "rollback": state.rollback.as_ref().map(|r| serde_json::json!({
            "start": r.start,
            "verified": r.verified,
            "unverified-reason": r.unverified_reason,
        })),
        "frozen": state.frozen.as_ref().map(|(c, reason)| serde_json::json!({"checkpoint": c, "reason": reason})),
        "completed": state.completed,
        "records": state.records,
        "last-at": state.last_at,
        "repairs": state.repairs,
    })
}
