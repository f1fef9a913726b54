//! Rollouts run by the server: started from an uploaded change, driven in
//! the background, approved or aborted over HTTP, their state rebuilt from
//! their journals. Each tenant has its own directory under the state dir:
//! `<id>.jsonl` (the journal), `<id>.change.json` (the uploaded bundle, the
//! rollout's pinned input) and `<id>.plan` (the plan's name). Rollouts left
//! running by a server that stopped are resumed when it starts again.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use crate::check;
use crate::rollout::engine::{self, Quiet, RolloutError, RolloutInputs};
use crate::rollout::journal;
use crate::rollout::state::{Approval, Phase};
use crate::runtime::Runtime;
use crate::runtime::change::Change;
use crate::serve::catalog::{Caller, Catalog, ServedPlan};

/// Why a rollout request failed, typed for an HTTP status.
#[derive(Debug, thiserror::Error)]
pub enum RolloutServiceError {
    #[error("no rollout `{id}`")]
    Unknown { id: String },
    #[error("a rollout `{id}` exists already")]
    Exists { id: String },
    #[error("rollout `{id}` is being driven right now; try again when it pauses or ends")]
    Busy { id: String },
    #[error("rollout `{id}` names plan `{plan}`, which this server no longer serves")]
    PlanGone { id: String, plan: String },
    #[error("{0}")]
    Refused(String),
    #[error("invalid change bundle: {0}")]
    Change(String),
    #[error("rollout storage failed")]
    Storage(#[source] Box<dyn std::error::Error + Send + Sync>),
}

/// The rollouts of every tenant, kept as journals under one directory.
pub struct Rollouts {
    runtime: Arc<Runtime>,
    state_dir: PathBuf,
    /// Rollouts with a driver running in this process, as (tenant, id).
    driving: Mutex<BTreeSet<(String, String)>>,
}

/// Leaves the `driving` set when a driver ends, however it ends.
struct Driving {
    rollouts: Arc<Rollouts>,
    key: (String, String),
}

impl Drop for Driving {
    fn drop(&mut self) {
        lock(&self.rollouts.driving).remove(&self.key);
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// What a background driver does once it holds the rollout.
enum Drive {
    Start,
    Resume,
    Abort { by: String, reason: String },
}

impl Rollouts {
    pub fn new(runtime: Arc<Runtime>, state_dir: PathBuf) -> Rollouts {
        Rollouts {
            runtime,
            state_dir,
            driving: Mutex::new(BTreeSet::new()),
        }
    }

    fn dir(&self, tenant: &str) -> PathBuf {
        self.state_dir.join(tenant)
    }

    /// Records the inputs of a new rollout and starts driving it in the
    /// background. Returns its id.
    pub fn start(
        self: &Arc<Self>,
        caller: &Caller,
        served: Arc<ServedPlan>,
        bundle: &[u8],
        id: Option<String>,
        change_id: Option<String>,
    ) -> Result<String, RolloutServiceError> {
        let id = id.unwrap_or_else(engine::new_id);
        engine::check_id(&id).map_err(|e| RolloutServiceError::Refused(e.to_string()))?;
        Change::from_bundle_bytes(bundle, Path::new("request body"))
            .map_err(|e| RolloutServiceError::Change(crate::error_chain(&e)))?;
        let dir = self.dir(&caller.tenant);
        std::fs::create_dir_all(&dir).map_err(storage)?;
        let change_file = dir.join(format!("{id}.change.json"));
        let plan_file = dir.join(format!("{id}.plan"));
        if plan_file.exists() || engine::journal_path(&dir, &id).exists() {
            return Err(RolloutServiceError::Exists { id });
        }
        write_new(&change_file, bundle)?;
        let meta = serde_json::json!({
            "plan": served.name,
            "change-id": change_id.unwrap_or_else(|| id.clone()),
            "by": caller.identity,
        });
        write_new(&plan_file, meta.to_string().as_bytes())?;
        self.spawn(caller.tenant.clone(), id.clone(), served, Drive::Start);
        Ok(id)
    }

    /// The state of a rollout, as JSON (`phase: starting` until its journal
    /// has its first record).
    pub fn status(&self, tenant: &str, id: &str) -> Result<serde_json::Value, RolloutServiceError> {
        let dir = self.dir(tenant);
        self.known(&dir, id)?;
        match engine::status(&dir, id) {
            Ok(state) => Ok(with_driving(
                crate::rollout::status::status_json(&state),
                self.is_driving(tenant, id),
            )),
            Err(RolloutError::Unknown { .. }) => Ok(serde_json::json!({
                "id": id, "phase": "starting", "driving": self.is_driving(tenant, id),
            })),
            Err(err) => Err(storage(err)),
        }
    }

    /// Ids of a tenant's rollouts, with their phase.
    pub fn list(&self, tenant: &str) -> Vec<serde_json::Value> {
        let dir = self.dir(tenant);
        let mut ids: Vec<String> = std::fs::read_dir(&dir)
            .into_iter()
            .flatten()
            .flatten()
            .filter_map(|e| {
                e.file_name()
                    .to_str()
                    .and_then(|n| n.strip_suffix(".plan"))
                    .map(str::to_owned)
            })
            .collect();
        ids.sort();
        ids.into_iter()
            .map(|id| {
                let phase = engine::status(&dir, &id)
                    .map(|s| phase_name(s.phase()))
                    .unwrap_or("starting");
                let plan = read_meta(&dir, &id)
                    .ok()
                    .and_then(|m| m["plan"].as_str().map(str::to_owned));
                serde_json::json!({"id": id, "phase": phase, "plan": plan})
            })
            .collect()
    }

    /// Counts of every tenant's rollouts by phase (for `/metrics`).
    pub fn count_by_phase(&self, tenants: impl Iterator<Item = String>) -> Vec<(String, i64)> {
        let mut counts = std::collections::BTreeMap::<String, i64>::new();
        for phase in [
            "starting",
            "running",
            "paused",
            "rolling-back",
            "completed",
            "rolled-back",
            "rollback-unverified",
            "frozen",
        ] {
            counts.insert(phase.to_owned(), 0);
        }
        for tenant in tenants {
            for entry in self.list(&tenant) {
                if let Some(phase) = entry["phase"].as_str() {
                    *counts.entry(phase.to_owned()).or_default() += 1;
                }
            }
        }
        counts.into_iter().collect()
    }

    /// The journal's records and whether the chain verifies.
    pub fn journal(
        &self,
        tenant: &str,
        id: &str,
    ) -> Result<serde_json::Value, RolloutServiceError> {
        let dir = self.dir(tenant);
        self.known(&dir, id)?;
        let path = engine::journal_path(&dir, id);
        if !path.exists() {
            return Ok(serde_json::json!({"records": [], "intact": true}));
        }
        let read = journal::read(&path).map_err(storage)?;
        let verification = journal::verify(&path).map_err(storage)?;
        Ok(serde_json::json!({
            "records": read.records,
            "intact": verification.is_intact(),
            "broken": verification.broken.map(|b| b.to_string()),
            "torn-tail": read.torn_tail.is_some(),
        }))
    }

    /// Records an approval by `caller` for `role`; when it was the last
    /// one the pause waited for, drives the rollout on in the background.
    pub async fn approve(
        self: &Arc<Self>,
        catalog: &Catalog,
        caller: &Caller,
        id: &str,
        role: String,
        comment: Option<String>,
    ) -> Result<serde_json::Value, RolloutServiceError> {
        let dir = self.dir(&caller.tenant);
        self.known(&dir, id)?;
        if self.is_driving(&caller.tenant, id) {
            return Err(RolloutServiceError::Busy { id: id.to_owned() });
        }
        let served = self.served(catalog, &caller.tenant, id)?;
        let approval = Approval {
            checkpoint: String::new(),
            by: caller.identity.clone(),
            role,
            comment,
        };
        // The engine's futures are not `Send` (they borrow their inputs):
        // the approval runs on a blocking thread of its own.
        let this = Arc::clone(self);
        let handle = tokio::runtime::Handle::current();
        let (id_owned, served_for_thread) = (id.to_owned(), Arc::clone(&served));
        let state = tokio::task::spawn_blocking(move || {
            let (change_path, change, change_id) = this.inputs(&dir, &id_owned)?;
            let inputs = RolloutInputs {
                runtime: &this.runtime,
                plan: &served_for_thread.plan,
                rollout_plan: &served_for_thread.rollout_plan,
                change_path: &change_path,
                change,
                change_id,
                experiment_approval: None,
            };
            handle
                .block_on(engine::approve(
                    &inputs,
                    engine::Store::Dir(&dir),
                    &id_owned,
                    approval,
                    false,
                    &Quiet,
                ))
                .map(|(state, _)| state)
                .map_err(|e| refused(e, &id_owned))
        })
        .await
        .map_err(storage)??;
        if state.pause.is_none() {
            self.spawn(caller.tenant.clone(), id.to_owned(), served, Drive::Resume);
        }
        Ok(crate::rollout::status::status_json(&state))
    }

    /// Starts rolling a rollout back in the background.
    pub fn abort(
        self: &Arc<Self>,
        catalog: &Catalog,
        caller: &Caller,
        id: &str,
        reason: String,
    ) -> Result<(), RolloutServiceError> {
        let dir = self.dir(&caller.tenant);
        self.known(&dir, id)?;
        if self.is_driving(&caller.tenant, id) {
            return Err(RolloutServiceError::Busy { id: id.to_owned() });
        }
        if let Ok(state) = engine::status(&dir, id)
            && (state.phase().is_final() || state.rollback.is_some())
        {
            return Err(RolloutServiceError::Refused(format!(
                "rollout `{id}` is {}; there is nothing to abort",
                engine::phase_word(state.phase())
            )));
        }
        let served = self.served(catalog, &caller.tenant, id)?;
        self.spawn(
            caller.tenant.clone(),
            id.to_owned(),
            served,
            Drive::Abort {
                by: caller.identity.clone(),
                reason,
            },
        );
        Ok(())
    }

    /// Resumes, in the background, every rollout of the catalog's tenants
    /// that is neither finished nor paused (a server that stopped left it).
    /// Returns how many.
    pub fn resume_unfinished(self: &Arc<Self>, catalog: &Catalog) -> usize {
        let mut resumed = 0;
        for tenant in catalog.tenants.keys() {
            let dir = self.dir(tenant);
            for entry in self.list(tenant) {
                let Some(id) = entry["id"].as_str() else {
                    continue;
                };
                let phase = entry["phase"].as_str().unwrap_or_default();
                if !matches!(phase, "starting" | "running" | "rolling-back") {
                    continue;
                }
                match self.served(catalog, tenant, id) {
                    Ok(served) => {
                        let drive = if engine::journal_path(&dir, id).exists() {
                            Drive::Resume
                        } else {
                            Drive::Start
                        };
                        self.spawn(tenant.clone(), id.to_owned(), served, drive);
                        resumed += 1;
                    }
                    Err(err) => {
                        tracing::error!(tenant = %tenant, rollout = %id, error = %err, "cannot resume rollout")
                    }
                }
            }
        }
        resumed
    }

    fn is_driving(&self, tenant: &str, id: &str) -> bool {
        lock(&self.driving).contains(&(tenant.to_owned(), id.to_owned()))
    }

    fn known(&self, dir: &Path, id: &str) -> Result<(), RolloutServiceError> {
        if engine::check_id(id).is_err() || !dir.join(format!("{id}.plan")).exists() {
            return Err(RolloutServiceError::Unknown { id: id.to_owned() });
        }
        Ok(())
    }

    fn served(
        &self,
        catalog: &Catalog,
        tenant: &str,
        id: &str,
    ) -> Result<Arc<ServedPlan>, RolloutServiceError> {
        let meta = read_meta(&self.dir(tenant), id)?;
        let plan = meta["plan"].as_str().unwrap_or_default().to_owned();
        catalog
            .plan(tenant, &plan)
            .cloned()
            .ok_or(RolloutServiceError::PlanGone {
                id: id.to_owned(),
                plan,
            })
    }

    fn inputs(
        &self,
        dir: &Path,
        id: &str,
    ) -> Result<(PathBuf, Arc<Change>, String), RolloutServiceError> {
        let change_path = dir.join(format!("{id}.change.json"));
        let change = check::read_change(&change_path, None).map_err(storage)?;
        let meta = read_meta(dir, id)?;
        let change_id = meta["change-id"].as_str().unwrap_or(id).to_owned();
        Ok((change_path, Arc::new(change), change_id))
    }

    /// Drives a rollout on a thread of its own (the engine's future borrows
    /// its inputs), registered in `driving` until it ends.
    fn spawn(self: &Arc<Self>, tenant: String, id: String, served: Arc<ServedPlan>, drive: Drive) {
        let key = (tenant.clone(), id.clone());
        if !lock(&self.driving).insert(key.clone()) {
            return;
        }
        let guard = Driving {
            rollouts: Arc::clone(self),
            key,
        };
        let handle = tokio::runtime::Handle::current();
        let this = Arc::clone(self);
        let spawned = std::thread::Builder::new()
            .name(format!("rollout-{id}"))
            .spawn(move || {
                let _guard = guard;
                let result = handle.block_on(this.drive(&tenant, &id, &served, drive));
                match result {
                    Ok(phase) => tracing::info!(tenant = %tenant, rollout = %id, phase, "rollout driver stopped"),
                    Err(err) => tracing::error!(tenant = %tenant, rollout = %id, error = %crate::error_chain(&err), "rollout driver failed"),
                }
            });
        if let Err(err) = spawned {
            tracing::error!(error = %err, "cannot start a rollout driver thread");
        }
    }

    async fn drive(
        &self,
        tenant: &str,
        id: &str,
        served: &ServedPlan,
        drive: Drive,
    ) -> Result<&'static str, RolloutServiceError> {
        let dir = self.dir(tenant);
        let (change_path, change, change_id) = self.inputs(&dir, id)?;
        let inputs = RolloutInputs {
            runtime: &self.runtime,
            plan: &served.plan,
            rollout_plan: &served.rollout_plan,
            change_path: &change_path,
            change,
            change_id,
            experiment_approval: None,
        };
        let result = match drive {
            Drive::Start => engine::start(&inputs, engine::Store::Dir(&dir), id, &Quiet).await,
            Drive::Resume => {
                engine::resume(&inputs, engine::Store::Dir(&dir), id, false, &Quiet).await
            }
            Drive::Abort { by, reason } => {
                engine::abort(&inputs, engine::Store::Dir(&dir), id, &by, &reason, &Quiet).await
            }
        };
        let (state, _) = result.map_err(|e| refused(e, id))?;
        Ok(phase_name(state.phase()))
    }
}

fn with_driving(mut status: serde_json::Value, driving: bool) -> serde_json::Value {
    if let Some(map) = status.as_object_mut() {
        map.insert("driving".to_owned(), driving.into());
    }
    status
}

/// The phase as the API spells it.
pub fn phase_name(phase: Phase) -> &'static str {
    match phase {
        Phase::Running => "running",
        Phase::Paused => "paused",
        Phase::RollingBack => "rolling-back",
        Phase::Completed => "completed",
        Phase::RolledBack => "rolled-back",
        Phase::RollbackUnverified => "rollback-unverified",
        Phase::Frozen => "frozen",
    }
}

fn read_meta(dir: &Path, id: &str) -> Result<serde_json::Value, RolloutServiceError> {
    let text = std::fs::read(dir.join(format!("{id}.plan"))).map_err(storage)?;
    serde_json::from_slice(&text).map_err(storage)
}

/// Writes a new file whole: a temporary file, fsynced, renamed into place.
fn write_new(path: &Path, bytes: &[u8]) -> Result<(), RolloutServiceError> {
    use std::io::Write as _;
    let dir = path.parent().unwrap_or(Path::new("."));
    let mut temp = tempfile::NamedTempFile::new_in(dir).map_err(storage)?;
    temp.write_all(bytes).map_err(storage)?;
    temp.as_file().sync_all().map_err(storage)?;
    temp.persist_noclobber(path).map_err(|e| storage(e.error))?;
    Ok(())
}

fn storage(err: impl std::error::Error + Send + Sync + 'static) -> RolloutServiceError {
    RolloutServiceError::Storage(Box::new(err))
}

/// An engine error as the API shows it: refusals in their own words
/// (they name only the rollout), anything naming files as storage.
fn refused(err: RolloutError, id: &str) -> RolloutServiceError {
    match err {
        RolloutError::Journal(journal::JournalError::Locked { .. }) => {
            RolloutServiceError::Busy { id: id.to_owned() }
        }
        RolloutError::Finished { .. }
        | RolloutError::NotPaused { .. }
        | RolloutError::UnknownRole { .. }
        | RolloutError::InputsChanged { .. }
        | RolloutError::BadId { .. } => RolloutServiceError::Refused(err.to_string()),
        other => storage(other),
    }
}
