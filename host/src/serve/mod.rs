//! `cairn serve`: checks, experiments and rollouts behind an HTTP API, for
//! many tenants, with bounded capacity, Prometheus metrics, hot reload of
//! plans and a graceful shutdown.
//!
//! - `config`: `serve.toml` (listen address, limits, tenants, hashed tokens);
//! - `catalog`: every tenant's plans loaded whole, swapped atomically on
//!   reload;
//! - `admission`: bounded concurrency and a bounded queue (503 past it);
//! - `api`: routes and handlers, JSON errors;
//! - `metrics`: the Prometheus registry;
//! - `rollouts`: rollouts driven in the background over journals.

pub mod admission;
pub mod api;
pub mod catalog;
pub mod config;
pub mod metrics;
pub mod rollouts;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use tokio::sync::watch;

use crate::rollout::pg::PgStore;
use crate::runtime::Runtime;
use admission::Admission;
use catalog::{Caller, Catalog, CatalogError};
use config::{ConfigError, ServeConfig, ServerSettings};
use metrics::Metrics;
use rollouts::Rollouts;

/// Why the server could not start or stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("cannot load the plans")]
    Catalog(#[from] CatalogError),
    #[error("cannot listen on {addr}")]
    Listen {
        addr: std::net::SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("the HTTP server failed")]
    Http(#[source] std::io::Error),
    #[error("cannot start the plugin runtime")]
    Runtime(#[from] crate::runtime::RuntimeError),
    #[error("cannot use the PostgreSQL store")]
    Postgres(#[source] crate::rollout::pg::PgError),
}

/// How the last reload went.
#[derive(Debug, Clone, Default)]
pub struct ReloadStatus {
    /// When the last reload finished (ms since the Unix epoch).
    pub last_at: Option<u64>,
    /// Why the last reload failed (the previous plans still serve).
    pub error: Option<String>,
}

/// A check with experiments, running now (it can be stopped).
struct RunningExperiment {
    tenant: String,
    plan: String,
    by: String,
    started_ms: u64,
    stop: watch::Sender<bool>,
}

/// Everything a request handler can reach.
pub struct AppState {
    pub runtime: Arc<Runtime>,
    pub settings: Settings,
    catalog: RwLock<Arc<Catalog>>,
    reload: Mutex<ReloadStatus>,
    pub admission: Admission,
    pub metrics: Metrics,
    pub rollouts: Arc<Rollouts>,
    experiments: Mutex<BTreeMap<String, RunningExperiment>>,
    next_experiment: AtomicU64,
    pub draining: AtomicBool,
    config_path: PathBuf,
}

/// Settings fixed for the life of the process.
#[derive(Debug, Clone)]
pub struct Settings {
    pub max_body_bytes: usize,
    pub request_timeout: Duration,
    pub metrics_token: Option<[u8; 32]>,
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl AppState {
    /// The catalog serving now.
    pub fn catalog(&self) -> Arc<Catalog> {
        Arc::clone(&self.catalog.read().unwrap_or_else(|p| p.into_inner()))
    }

    pub fn reload_status(&self) -> ReloadStatus {
        lock(&self.reload).clone()
    }

    /// Reads the configuration again, loads every plan and plugin, and only
    /// then swaps the new catalog in. On any error the old one keeps
    /// serving, and the error is logged and shown on `/readyz`.
    pub async fn reload(self: &Arc<Self>) -> Result<u64, String> {
        let this = Arc::clone(self);
        let built = tokio::task::spawn_blocking(move || -> Result<Catalog, String> {
            let config =
                ServeConfig::load(&this.config_path).map_err(|e| crate::error_chain(&e))?;
            let current = this.catalog();
            if config.server != current.config.server {
                tracing::warn!("[server] settings changed; they take effect at the next restart");
            }
            Catalog::build(config, &this.runtime, current.generation + 1)
                .map_err(|e| crate::error_chain(&e))
        })
        .await
        .map_err(|e| format!("the reload task failed: {e}"))
        .and_then(|built| built);
        let now = Some(api::unix_millis());
        match built {
            Ok(catalog) => {
                let generation = catalog.generation;
                *self.catalog.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(catalog);
                *lock(&self.reload) = ReloadStatus {
                    last_at: now,
                    error: None,
                };
                self.metrics
                    .reloads
                    .get_or_create(&metrics::ResultLabels {
                        result: "ok".to_owned(),
                    })
                    .inc();
                tracing::info!(generation, "plans reloaded");
                Ok(generation)
            }
            Err(error) => {
                tracing::error!(error = %crate::escape::single_line(&error), "reload failed; the previous plans keep serving");
                *lock(&self.reload) = ReloadStatus {
                    last_at: now,
                    error: Some(error.clone()),
                };
                self.metrics
                    .reloads
                    .get_or_create(&metrics::ResultLabels {
                        result: "failed".to_owned(),
                    })
                    .inc();
                Err(error)
            }
        }
    }

    fn register_experiment(
        &self,
        caller: &Caller,
        plan: &str,
        stop: watch::Sender<bool>,
    ) -> String {
        let id = format!(
            "x-{}",
            self.next_experiment.fetch_add(1, Ordering::AcqRel) + 1
        );
        lock(&self.experiments).insert(
            id.clone(),
            RunningExperiment {
                tenant: caller.tenant.clone(),
                plan: plan.to_owned(),
                by: caller.identity.clone(),
                started_ms: api::unix_millis(),
                stop,
            },
        );
        id
    }

    fn forget_experiment(&self, id: &str) {
        lock(&self.experiments).remove(id);
    }

    fn experiments_of(&self, tenant: &str) -> Vec<serde_json::Value> {
        lock(&self.experiments)
            .iter()
            .filter(|(_, e)| e.tenant == tenant)
            .map(|(id, e)| {
                serde_json::json!({
                    "id": id, "plan": e.plan, "by": e.by, "started-ms": e.started_ms,
                    "stopping": *e.stop.borrow(),
                })
            })
            .collect()
    }

    fn stop_experiment(&self, tenant: &str, id: &str) -> bool {
        match lock(&self.experiments).get(id) {
            Some(e) if e.tenant == tenant => {
                let _ = e.stop.send(true);
                true
            }
            _ => false,
        }
    }

    fn stop_all_experiments(&self) {
        for experiment in lock(&self.experiments).values() {
            let _ = experiment.stop.send(true);
        }
    }

    async fn refresh_gauges(&self) {
        self.metrics
            .queue_depth
            .set(self.admission.waiting() as i64);
        self.metrics.in_flight.set(self.admission.running() as i64);
        let tenants = self.catalog().tenants.keys().cloned().collect::<Vec<_>>();
        for (state, count) in self.rollouts.count_by_phase(tenants).await {
            self.metrics
                .rollouts
                .get_or_create(&metrics::StateLabels { state })
                .set(count);
        }
    }
}

/// A server, loaded and bound, not yet serving.
pub struct Server {
    state: Arc<AppState>,
    listener: tokio::net::TcpListener,
    settings: ServerSettings,
    /// SIGHUP, listened for from `bind` on (so a SIGHUP right after the
    /// server says it listens reloads rather than kills it).
    hangup: Option<tokio::signal::unix::Signal>,
}

impl Server {
    /// Loads the configuration at `path` and every plan it names (compiling
    /// their plugins), and binds the listen address (`listen` overrides the
    /// file's).
    pub async fn bind(
        path: &std::path::Path,
        listen: Option<std::net::SocketAddr>,
        cache_dir: Option<PathBuf>,
    ) -> Result<Server, ServeError> {
        let mut config = ServeConfig::load(path)?;
        if let Some(listen) = listen {
            config.server.listen = listen;
        }
        let fuel_metering = Catalog::needs_fuel(&config);
        let runtime = Arc::new(Runtime::new(crate::runtime::RuntimeConfig {
            cache_dir,
            fuel_metering,
            ..crate::runtime::RuntimeConfig::default()
        })?);
        let settings = config.server.clone();
        let catalog = {
            let runtime = Arc::clone(&runtime);
            tokio::task::spawn_blocking(move || Catalog::build(config, &runtime, 1))
                .await
                .map_err(|e| ServeError::Http(std::io::Error::other(e)))??
        };
        let listener = tokio::net::TcpListener::bind(settings.listen)
            .await
            .map_err(|source| ServeError::Listen {
                addr: settings.listen,
                source,
            })?;
        let rollouts = match &settings.postgres {
            None => Rollouts::in_files(Arc::clone(&runtime), settings.state_dir.clone()),
            Some(url) => {
                let store = PgStore::connect(url).await.map_err(ServeError::Postgres)?;
                store.migrate().await.map_err(ServeError::Postgres)?;
                Rollouts::in_postgres(
                    Arc::clone(&runtime),
                    settings.state_dir.clone(),
                    store,
                    settings.replica.clone(),
                    settings.lease,
                )
            }
        };
        let state = Arc::new(AppState {
            rollouts: Arc::new(rollouts),
            runtime,
            settings: Settings {
                max_body_bytes: settings.max_body_bytes,
                request_timeout: settings.request_timeout,
                metrics_token: settings.metrics_token,
            },
            catalog: RwLock::new(Arc::new(catalog)),
            reload: Mutex::new(ReloadStatus {
                last_at: Some(api::unix_millis()),
                error: None,
            }),
            admission: Admission::new(settings.max_concurrent, settings.max_queue),
            metrics: Metrics::new(),
            experiments: Mutex::new(BTreeMap::new()),
            next_experiment: AtomicU64::new(0),
            draining: AtomicBool::new(false),
            config_path: path.to_owned(),
        });
        let hangup = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())
            .inspect_err(|err| {
                tracing::warn!(error = %err, "cannot listen for SIGHUP; plans reload only at restart");
            })
            .ok();
        Ok(Server {
            state,
            listener,
            settings,
            hangup,
        })
    }

    /// The address it listens on (the real port when the file said 0).
    pub fn local_addr(&self) -> std::io::Result<std::net::SocketAddr> {
        self.listener.local_addr()
    }

    /// Serves until `shutdown` turns true: then it stops accepting, says
    /// so on `/readyz`, stops running experiments, and waits up to the
    /// shutdown grace for requests in flight. SIGHUP reloads the plans.
    pub async fn run(self, mut shutdown: watch::Receiver<bool>) -> Result<(), ServeError> {
        let Server {
            state,
            listener,
            settings,
            hangup,
        } = self;
        let resumed = state.rollouts.take_over(&state.catalog()).await;
        if resumed > 0 {
            tracing::info!(resumed, "took up unfinished rollouts");
        }
        {
            let watched = Arc::clone(&state);
            state.rollouts.watch_for_orphans(move || watched.catalog());
        }
        let reloader = {
            let state = Arc::clone(&state);
            tokio::spawn(async move {
                let Some(mut hangup) = hangup else { return };
                while hangup.recv().await.is_some() {
                    tracing::info!("SIGHUP: reloading plans");
                    let _ = state.reload().await;
                }
            })
        };
        let app = api::router(Arc::clone(&state));
        let (drained_tx, mut drained_rx) = watch::channel(false);
        let signal_state = Arc::clone(&state);
        let graceful = async move {
            let _ = shutdown.wait_for(|stop| *stop).await;
            signal_state.draining.store(true, Ordering::Release);
            signal_state.stop_all_experiments();
            tracing::info!("shutting down: draining requests in flight");
            let _ = drained_tx.send(true);
        };
        let serve = axum::serve(listener, app).with_graceful_shutdown(graceful);
        let serve = async move { serve.await.map_err(ServeError::Http) };
        tokio::pin!(serve);
        let result = tokio::select! {
            result = &mut serve => result,
            () = async {
                let _ = drained_rx.wait_for(|d| *d).await;
                tokio::time::sleep(settings.shutdown_grace).await;
            } => {
                tracing::warn!("shutdown grace over; closing the requests still in flight");
                Ok(())
            }
        };
        reloader.abort();
        crate::rollout::hooks::kill_running_hooks();
        result
    }
}
