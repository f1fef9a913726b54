//! Rollouts run by the server: started from an uploaded change, driven in
//! the background, approved or aborted over HTTP, their state rebuilt from
//! their journals.
//!
//! Two backends:
//! - **files** (one server): each tenant has a directory under the state
//!   dir holding `<id>.jsonl` (the journal), `<id>.change.json` (the
//!   uploaded bundle, the rollout's pinned input) and `<id>.plan` (plan
//!   name and change id). Rollouts left running by a server that stopped
//!   are resumed when it starts again.
//! - **PostgreSQL** (any number of replicas): the rollout's inputs, its
//!   journal (one row per record, the same hash-chained lines) and a lease
//!   per rollout live in the database. A replica drives a rollout only
//!   while it holds the lease, renewing it at a third of its length; every
//!   append is fenced by the lease. Each replica polls for rollouts whose
//!   lease expired (a replica died) and takes them over with a resume: no
//!   finished hook runs again, an interrupted one runs again with its key.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::check;
use crate::rollout::engine::{self, Quiet, RolloutError, RolloutInputs, Store};
use crate::rollout::journal;
use crate::rollout::pg::{self, PgError, PgStore};
use crate::rollout::state::{Approval, Phase, RolloutState};
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

/// Where rollouts are kept.
enum Backend {
    Files,
    Pg {
        store: PgStore,
        /// This replica's name in leases.
        owner: String,
        lease: Duration,
    },
}

/// The rollouts of every tenant.
pub struct Rollouts {
    runtime: Arc<Runtime>,
    /// Journals (files backend) and local copies of uploaded changes.
    state_dir: PathBuf,
    backend: Backend,
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

/// A plan-file record: the plan's name and the change id.
struct Meta {
    plan: String,
    change_id: String,
}

impl Rollouts {
    /// Rollouts kept as journal files under `state_dir`.
    pub fn in_files(runtime: Arc<Runtime>, state_dir: PathBuf) -> Rollouts {
        Rollouts {
            runtime,
            state_dir,
            backend: Backend::Files,
            driving: Mutex::new(BTreeSet::new()),
        }
    }

    /// Rollouts kept in PostgreSQL, driven under leases held as `owner`.
    pub fn in_postgres(
        runtime: Arc<Runtime>,
        state_dir: PathBuf,
        store: PgStore,
        owner: String,
        lease: Duration,
    ) -> Rollouts {
        Rollouts {
            runtime,
            state_dir,
            backend: Backend::Pg {
                store,
                owner,
                lease,
            },
            driving: Mutex::new(BTreeSet::new()),
        }
    }

    /// Why rollouts cannot be served now, if they cannot: the PostgreSQL
    /// connection is gone.
    pub fn unavailable(&self) -> Option<&'static str> {
        match &self.backend {
            Backend::Pg { store, .. } if store.is_closed() => {
                Some("the PostgreSQL connection is closed; restart this replica")
            }
            _ => None,
        }
    }

    fn dir(&self, tenant: &str) -> PathBuf {
        self.state_dir.join(tenant)
    }

    fn store<'a>(&'a self, dir: &'a Path) -> Store<'a> {
        match &self.backend {
            Backend::Pg { store, owner, .. } => Store::Pg { store, owner },
            Backend::Files => Store::Dir(dir),
        }
    }

    /// Records the inputs of a new rollout and starts driving it in the
    /// background. Returns its id.
    pub async fn start(
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
        let change_id = change_id.unwrap_or_else(|| id.clone());
        match &self.backend {
            Backend::Files => {
                let plan_file = dir.join(format!("{id}.plan"));
                if plan_file.exists() || engine::journal_path(&dir, &id).exists() {
                    return Err(RolloutServiceError::Exists { id });
                }
                write_new(&dir.join(format!("{id}.change.json")), bundle)?;
                let meta = serde_json::json!({
                    "plan": served.name,
                    "change-id": change_id,
                    "by": caller.identity,
                });
                write_new(&plan_file, meta.to_string().as_bytes())?;
            }
            Backend::Pg { store, .. } => {
                let plan = serde_json::json!({"plan": served.name, "change-id": change_id});
                match store
                    .register_rollout(&id, &caller.tenant, &plan.to_string(), bundle)
                    .await
                {
                    Err(PgError::AlreadyExists { .. }) => {
                        return Err(RolloutServiceError::Exists { id });
                    }
                    other => other.map_err(storage)?,
                }
            }
        }
        self.spawn(caller.tenant.clone(), id.clone(), served, Drive::Start);
        Ok(id)
    }

    /// The state of a rollout, as JSON (`phase: starting` until its journal
    /// has its first record).
    pub async fn status(
        &self,
        tenant: &str,
        id: &str,
    ) -> Result<serde_json::Value, RolloutServiceError> {
        let dir = self.dir(tenant);
        self.known(tenant, id).await?;
        let driving = self.is_driving(tenant, id);
        match self.state(&dir, id).await? {
            Some(state) => Ok(with_driving(
                crate::rollout::status::status_json(&state),
                driving,
            )),
            None => Ok(serde_json::json!({
                "id": id, "phase": "starting", "driving": driving,
            })),
        }
    }

    /// The state replayed from the journal (`None`: no journal yet).
    async fn state(
        &self,
        dir: &Path,
        id: &str,
    ) -> Result<Option<RolloutState>, RolloutServiceError> {
        match engine::status_in(self.store(dir), id).await {
            Ok(state) => Ok(Some(state)),
            Err(RolloutError::Unknown { .. } | RolloutError::Pg(PgError::NoJournal { .. })) => {
                Ok(None)
            }
            Err(err) => Err(storage(err)),
        }
    }

    /// Ids of a tenant's rollouts, with their phase and plan.
    pub async fn list(&self, tenant: &str) -> Result<Vec<serde_json::Value>, RolloutServiceError> {
        let dir = self.dir(tenant);
        let ids: Vec<(String, String)> = match &self.backend {
            Backend::Files => {
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
                        let plan = read_meta_file(&dir, &id)
                            .map(|m| m.plan)
                            .unwrap_or_default();
                        (id, plan)
                    })
                    .collect()
            }
            Backend::Pg { store, .. } => store
                .list_rollouts(Some(tenant))
                .await
                .map_err(storage)?
                .into_iter()
                .map(|r| {
                    (
                        r.id,
                        parse_meta(r.plan.as_bytes())
                            .map(|m| m.plan)
                            .unwrap_or_default(),
                    )
                })
                .collect(),
        };
        let mut listed = Vec::new();
        for (id, plan) in ids {
            let phase = match self.state(&dir, &id).await {
                Ok(Some(state)) => phase_name(state.phase()),
                Ok(None) => "starting",
                Err(_) => "unreadable",
            };
            listed.push(serde_json::json!({"id": id, "phase": phase, "plan": plan}));
        }
        Ok(listed)
    }

    /// Counts of every tenant's rollouts by phase (for `/metrics`).
    pub async fn count_by_phase(&self, tenants: Vec<String>) -> Vec<(String, i64)> {
        let mut counts = BTreeMap::<String, i64>::new();
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
            for entry in self.list(&tenant).await.unwrap_or_default() {
                if let Some(phase) = entry["phase"].as_str() {
                    *counts.entry(phase.to_owned()).or_default() += 1;
                }
            }
        }
        counts.into_iter().collect()
    }

    /// The journal's records and whether the chain verifies.
    pub async fn journal(
        &self,
        tenant: &str,
        id: &str,
    ) -> Result<serde_json::Value, RolloutServiceError> {
        let dir = self.dir(tenant);
        self.known(tenant, id).await?;
        let (records, verification, torn) = match &self.backend {
            Backend::Files => {
                let path = engine::journal_path(&dir, id);
                if !path.exists() {
                    return Ok(serde_json::json!({"records": [], "intact": true}));
                }
                let read = journal::read(&path).map_err(storage)?;
                let verification = journal::verify(&path).map_err(storage)?;
                (read.records, verification, read.torn_tail.is_some())
            }
            Backend::Pg { store, .. } => {
                let verification = pg::verify(store, id).await.map_err(storage)?;
                let records = match pg::records(store, id).await {
                    Ok(records) => records,
                    Err(PgError::NoJournal { .. }) => Vec::new(),
                    Err(PgError::Broken { .. }) => Vec::new(),
                    Err(err) => return Err(storage(err)),
                };
                (records, verification, false)
            }
        };
        Ok(serde_json::json!({
            "records": records,
            "intact": verification.is_intact(),
            "broken": verification.broken.map(|b| b.to_string()),
            "torn-tail": torn,
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
        self.known(&caller.tenant, id).await?;
        self.wait_not_driving(&caller.tenant, id).await?;
        let served = self.served(catalog, &caller.tenant, id).await?;
        self.take_lease(id).await?;
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
        let (id_owned, served_for_thread, tenant) =
            (id.to_owned(), Arc::clone(&served), caller.tenant.clone());
        let result = tokio::task::spawn_blocking(move || {
            handle.block_on(async {
                let (change_path, change, change_id) = this.inputs(&tenant, &id_owned).await?;
                let inputs = RolloutInputs {
                    runtime: &this.runtime,
                    plan: &served_for_thread.plan,
                    rollout_plan: &served_for_thread.rollout_plan,
                    change_path: &change_path,
                    change,
                    change_id,
                    experiment_approval: None,
                };
                engine::approve(
                    &inputs,
                    this.store(&dir),
                    &id_owned,
                    approval,
                    false,
                    &Quiet,
                )
                .await
                .map(|(state, _)| state)
                .map_err(|e| refused(e, &id_owned))
            })
        })
        .await
        .map_err(storage)
        .and_then(|r| r);
        let state = match result {
            Ok(state) => state,
            Err(err) => {
                self.release_lease(id).await;
                return Err(err);
            }
        };
        if state.pause.is_none() {
            self.unpark(id).await;
            self.spawn(caller.tenant.clone(), id.to_owned(), served, Drive::Resume);
        } else {
            self.release_lease(id).await;
        }
        Ok(crate::rollout::status::status_json(&state))
    }

    /// Starts rolling a rollout back in the background.
    pub async fn abort(
        self: &Arc<Self>,
        catalog: &Catalog,
        caller: &Caller,
        id: &str,
        reason: String,
    ) -> Result<(), RolloutServiceError> {
        let dir = self.dir(&caller.tenant);
        self.known(&caller.tenant, id).await?;
        self.wait_not_driving(&caller.tenant, id).await?;
        if let Ok(Some(state)) = self.state(&dir, id).await
            && (state.phase().is_final() || state.rollback.is_some())
        {
            return Err(RolloutServiceError::Refused(format!(
                "rollout `{id}` is {}; there is nothing to abort",
                engine::phase_word(state.phase())
            )));
        }
        let served = self.served(catalog, &caller.tenant, id).await?;
        self.take_lease(id).await?;
        self.unpark(id).await;
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

    /// Takes up, in the background, rollouts that should be driven and are
    /// not: with files, those a stopped server left running; with
    /// PostgreSQL, those whose lease expired (their replica died). Returns
    /// how many.
    pub async fn take_over(self: &Arc<Self>, catalog: &Catalog) -> usize {
        let candidates: Vec<(String, String)> = match &self.backend {
            Backend::Files => {
                let mut found = Vec::new();
                for tenant in catalog.tenants.keys() {
                    for entry in self.list(tenant).await.unwrap_or_default() {
                        let phase = entry["phase"].as_str().unwrap_or_default();
                        if matches!(phase, "starting" | "running" | "rolling-back")
                            && let Some(id) = entry["id"].as_str()
                        {
                            found.push((tenant.clone(), id.to_owned()));
                        }
                    }
                }
                found
            }
            Backend::Pg { store, .. } => {
                let ids = match store.claimable(64).await {
                    Ok(ids) => ids,
                    Err(err) => {
                        tracing::warn!(error = %crate::error_chain(&err), "cannot list claimable rollouts");
                        return 0;
                    }
                };
                let mut found = Vec::new();
                for id in ids {
                    if let Ok(Some(row)) = store.rollout_inputs(&id).await {
                        found.push((row.tenant, id));
                    }
                }
                found
            }
        };
        let mut taken = 0;
        for (tenant, id) in candidates {
            if self.is_driving(&tenant, &id) {
                continue;
            }
            let dir = self.dir(&tenant);
            let state = self.state(&dir, &id).await.ok().flatten();
            if let (Backend::Pg { store, .. }, Some(state)) = (&self.backend, &state) {
                // Left paused or finished by a replica that died before it
                // said so.
                if state.phase().is_final() {
                    let _ = store.mark_finished(&id).await;
                    continue;
                }
                if state.phase() == Phase::Paused {
                    let _ = store.set_parked(&id, true).await;
                    continue;
                }
            }
            let served = match self.served(catalog, &tenant, &id).await {
                Ok(served) => served,
                Err(err) => {
                    tracing::error!(tenant = %tenant, rollout = %id, error = %err, "cannot take over rollout");
                    continue;
                }
            };
            if let Backend::Pg {
                store,
                owner,
                lease,
            } = &self.backend
                && !store.try_acquire(&id, owner, *lease).await.unwrap_or(false)
            {
                continue;
            }
            let drive = if state.is_some() {
                Drive::Resume
            } else {
                Drive::Start
            };
            tracing::info!(tenant = %tenant, rollout = %id, "taking the rollout over");
            self.spawn(tenant, id, served, drive);
            taken += 1;
        }
        taken
    }

    /// With PostgreSQL: polls for rollouts to take over, at a quarter of
    /// the lease, until the process ends. With files: nothing (a start
    /// resumes what a stopped server left).
    pub fn watch_for_orphans(
        self: &Arc<Self>,
        catalog: impl Fn() -> Arc<Catalog> + Send + 'static,
    ) {
        let Backend::Pg { lease, .. } = &self.backend else {
            return;
        };
        let every = (*lease / 4).max(Duration::from_millis(50));
        let this = Arc::clone(self);
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(every).await;
                this.take_over(&catalog()).await;
            }
        });
    }

    /// Waits up to two seconds for this process's driver of the rollout to
    /// end (a driver that just recorded a pause is about to), then refuses
    /// as busy.
    async fn wait_not_driving(&self, tenant: &str, id: &str) -> Result<(), RolloutServiceError> {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(2);
        while self.is_driving(tenant, id) {
            if tokio::time::Instant::now() >= deadline {
                return Err(RolloutServiceError::Busy { id: id.to_owned() });
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        Ok(())
    }

    fn is_driving(&self, tenant: &str, id: &str) -> bool {
        lock(&self.driving).contains(&(tenant.to_owned(), id.to_owned()))
    }

    /// Refuses ids that are not this tenant's rollouts, exactly as ids that
    /// do not exist.
    async fn known(&self, tenant: &str, id: &str) -> Result<(), RolloutServiceError> {
        let unknown = || RolloutServiceError::Unknown { id: id.to_owned() };
        if engine::check_id(id).is_err() {
            return Err(unknown());
        }
        match &self.backend {
            Backend::Files => {
                if !self.dir(tenant).join(format!("{id}.plan")).exists() {
                    return Err(unknown());
                }
            }
            Backend::Pg { store, .. } => match store.rollout_inputs(id).await.map_err(storage)? {
                Some(row) if row.tenant == tenant => {}
                _ => return Err(unknown()),
            },
        }
        Ok(())
    }

    async fn meta(&self, tenant: &str, id: &str) -> Result<Meta, RolloutServiceError> {
        match &self.backend {
            Backend::Files => read_meta_file(&self.dir(tenant), id),
            Backend::Pg { store, .. } => {
                let row = store
                    .rollout_inputs(id)
                    .await
                    .map_err(storage)?
                    .ok_or_else(|| RolloutServiceError::Unknown { id: id.to_owned() })?;
                parse_meta(row.plan.as_bytes())
            }
        }
    }

    async fn served(
        &self,
        catalog: &Catalog,
        tenant: &str,
        id: &str,
    ) -> Result<Arc<ServedPlan>, RolloutServiceError> {
        let plan = self.meta(tenant, id).await?.plan;
        catalog
            .plan(tenant, &plan)
            .cloned()
            .ok_or(RolloutServiceError::PlanGone {
                id: id.to_owned(),
                plan,
            })
    }

    /// The rollout's change (a local file: the upload, or with PostgreSQL
    /// a copy of the stored one) and its change id.
    async fn inputs(
        &self,
        tenant: &str,
        id: &str,
    ) -> Result<(PathBuf, Arc<Change>, String), RolloutServiceError> {
        let dir = self.dir(tenant);
        let change_path = dir.join(format!("{id}.change.json"));
        if let Backend::Pg { store, .. } = &self.backend
            && !change_path.exists()
        {
            let row = store
                .rollout_inputs(id)
                .await
                .map_err(storage)?
                .ok_or_else(|| RolloutServiceError::Unknown { id: id.to_owned() })?;
            std::fs::create_dir_all(&dir).map_err(storage)?;
            match write_new(&change_path, &row.change) {
                Ok(()) | Err(RolloutServiceError::Exists { .. }) => {}
                Err(err) => return Err(err),
            }
        }
        let change = check::read_change(&change_path, None).map_err(storage)?;
        let meta = self.meta(tenant, id).await?;
        Ok((change_path, Arc::new(change), meta.change_id))
    }

    async fn take_lease(&self, id: &str) -> Result<(), RolloutServiceError> {
        if let Backend::Pg {
            store,
            owner,
            lease,
        } = &self.backend
            && !store
                .try_acquire(id, owner, *lease)
                .await
                .map_err(storage)?
        {
            return Err(RolloutServiceError::Busy { id: id.to_owned() });
        }
        Ok(())
    }

    async fn release_lease(&self, id: &str) {
        if let Backend::Pg { store, owner, .. } = &self.backend {
            let _ = store.release(id, owner).await;
        }
    }

    async fn unpark(&self, id: &str) {
        if let Backend::Pg { store, .. } = &self.backend {
            let _ = store.set_parked(id, false).await;
        }
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
                    Ok(phase) => {
                        tracing::info!(tenant = %tenant, rollout = %id, phase, "rollout driver stopped");
                    }
                    Err(err) => tracing::error!(
                        tenant = %tenant,
                        rollout = %id,
                        error = %crate::error_chain(&err),
                        "rollout driver failed"
                    ),
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
        // With PostgreSQL: hold the lease, renewed in the background, for
        // as long as this driver runs.
        let renewer = match &self.backend {
            Backend::Files => None,
            Backend::Pg {
                store,
                owner,
                lease,
            } => {
                if !store
                    .try_acquire(id, owner, *lease)
                    .await
                    .map_err(storage)?
                {
                    return Err(RolloutServiceError::Busy { id: id.to_owned() });
                }
                let (store, owner, lease, id) =
                    (store.clone(), owner.clone(), *lease, id.to_owned());
                Some(tokio::spawn(async move {
                    loop {
                        tokio::time::sleep(lease / 3).await;
                        match store.renew(&id, &owner, lease).await {
                            Ok(true) => {}
                            Ok(false) => {
                                tracing::warn!(rollout = %id, "lost the rollout's lease");
                                return;
                            }
                            Err(err) => {
                                tracing::warn!(rollout = %id, error = %crate::error_chain(&err), "cannot renew the lease")
                            }
                        }
                    }
                }))
            }
        };
        let result = self.drive_holding(tenant, id, served, drive, &dir).await;
        if let Some(renewer) = renewer {
            renewer.abort();
        }
        if let Backend::Pg { store, owner, .. } = &self.backend {
            if let Ok(phase) = &result {
                match *phase {
                    "paused" => {
                        let _ = store.set_parked(id, true).await;
                    }
                    "running" | "rolling-back" => {}
                    _ => {
                        let _ = store.mark_finished(id).await;
                    }
                }
            }
            let _ = store.release(id, owner).await;
        }
        result
    }

    async fn drive_holding(
        &self,
        tenant: &str,
        id: &str,
        served: &ServedPlan,
        drive: Drive,
        dir: &Path,
    ) -> Result<&'static str, RolloutServiceError> {
        let (change_path, change, change_id) = self.inputs(tenant, id).await?;
        let inputs = RolloutInputs {
            runtime: &self.runtime,
            plan: &served.plan,
            rollout_plan: &served.rollout_plan,
            change_path: &change_path,
            change,
            change_id,
            experiment_approval: None,
        };
        let store = self.store(dir);
        let result = match drive {
            Drive::Start => engine::start(&inputs, store, id, &Quiet).await,
            Drive::Resume => engine::resume(&inputs, store, id, false, &Quiet).await,
            Drive::Abort { by, reason } => {
                engine::abort(&inputs, store, id, &by, &reason, &Quiet).await
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

fn read_meta_file(dir: &Path, id: &str) -> Result<Meta, RolloutServiceError> {
    let text = std::fs::read(dir.join(format!("{id}.plan"))).map_err(storage)?;
    parse_meta(&text)
}

fn parse_meta(text: &[u8]) -> Result<Meta, RolloutServiceError> {
    let meta: serde_json::Value = serde_json::from_slice(text).map_err(storage)?;
    Ok(Meta {
        plan: meta["plan"].as_str().unwrap_or_default().to_owned(),
        change_id: meta["change-id"].as_str().unwrap_or_default().to_owned(),
    })
}

/// Writes a new file whole: a temporary file, fsynced, renamed into place
/// (`Exists` when the path is taken).
fn write_new(path: &Path, bytes: &[u8]) -> Result<(), RolloutServiceError> {
    use std::io::Write as _;
    let dir = path.parent().unwrap_or(Path::new("."));
    let mut temp = tempfile::NamedTempFile::new_in(dir).map_err(storage)?;
    temp.write_all(bytes).map_err(storage)?;
    temp.as_file().sync_all().map_err(storage)?;
    temp.persist_noclobber(path).map_err(|e| {
        if e.error.kind() == std::io::ErrorKind::AlreadyExists {
            RolloutServiceError::Exists {
                id: path.display().to_string(),
            }
        } else {
            storage(e.error)
        }
    })?;
    Ok(())
}

fn storage(err: impl std::error::Error + Send + Sync + 'static) -> RolloutServiceError {
    RolloutServiceError::Storage(Box::new(err))
}

/// An engine error as the API shows it: refusals in their own words
/// (they name only the rollout), anything naming files as storage.
fn refused(err: RolloutError, id: &str) -> RolloutServiceError {
    match err {
        RolloutError::Journal(journal::JournalError::Locked { .. })
        | RolloutError::Pg(PgError::LeaseLost { .. } | PgError::Conflict { .. }) => {
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
