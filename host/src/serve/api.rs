//! The HTTP API: routes, the bearer-token extractor, request parsing with
//! JSON errors for every refusal, and the handlers over checks, plugins,
//! experiments and rollouts. `openapi.json` (beside this crate's
//! Cargo.toml) describes exactly these routes; a test holds the two
//! together.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Instant, SystemTime};

use axum::Router;
use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, JsonRejection, QueryRejection};
use axum::extract::{
    DefaultBodyLimit, FromRequestParts, MatchedPath, Path as UrlPath, Query, State,
};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header, request::Parts};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::Deserialize;
use tokio::sync::watch;

use crate::check::report::{self, Format, RenderOptions};
use crate::check::{self, CheckError, ExperimentError, RunOptions};
use crate::runtime::change::Change;
use crate::serve::AppState;
use crate::serve::catalog::Caller;
use crate::serve::rollouts::RolloutServiceError;

/// The OpenAPI description of this API (served at `/v1/openapi.json`).
pub const OPENAPI: &str = include_str!("../../openapi.json");

/// Every route, as `METHOD path` in OpenAPI spelling (a test compares it
/// with `openapi.json`).
pub const ROUTES: &[(&str, &str)] = &[
    ("get", "/healthz"),
    ("get", "/readyz"),
    ("get", "/metrics"),
    ("get", "/v1/openapi.json"),
    ("get", "/v1/plans"),
    ("get", "/v1/plugins"),
    ("post", "/v1/checks"),
    ("get", "/v1/experiments"),
    ("post", "/v1/experiments/{id}/stop"),
    ("get", "/v1/rollouts"),
    ("post", "/v1/rollouts"),
    ("get", "/v1/rollouts/{id}"),
    ("post", "/v1/rollouts/{id}/approve"),
    ("post", "/v1/rollouts/{id}/abort"),
    ("get", "/v1/rollouts/{id}/journal"),
];

/// The router over `state`.
pub fn router(state: Arc<AppState>) -> Router {
    let limit = state.settings.max_body_bytes;
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .route("/v1/openapi.json", get(openapi))
        .route("/v1/plans", get(plans))
        .route("/v1/plugins", get(plugins))
        .route("/v1/checks", post(checks))
        .route("/v1/experiments", get(experiments))
        .route("/v1/experiments/{id}/stop", post(stop_experiment))
        .route("/v1/rollouts", get(list_rollouts).post(start_rollout))
        .route("/v1/rollouts/{id}", get(rollout_status))
        .route("/v1/rollouts/{id}/approve", post(approve_rollout))
        .route("/v1/rollouts/{id}/abort", post(abort_rollout))
        .route("/v1/rollouts/{id}/journal", get(rollout_journal))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(limit))
        .layer(middleware::from_fn_with_state(
            Arc::clone(&state),
            count_requests,
        ))
        .with_state(state)
}

/// A refusal, as the API answers it: a status and
/// `{"error": {"code": "...", "message": "..."}}`.
#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
    pub retry_after: Option<u64>,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            code,
            message: message.into(),
            retry_after: None,
        }
    }

    fn unauthorized() -> ApiError {
        ApiError::new(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "a valid bearer token is required (Authorization: Bearer <token>)",
        )
    }

    fn unknown_plan(plan: &str) -> ApiError {
        ApiError::new(
            StatusCode::NOT_FOUND,
            "unknown-plan",
            format!("no plan `{plan}` here (GET /v1/plans lists yours)"),
        )
    }

    fn internal(what: &str, err: &(dyn std::error::Error + 'static)) -> ApiError {
        // The cause may name files: it goes to the log, not to the client.
        tracing::error!(error = %crate::error_chain(err), "{what}");
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            format!("{what} (the server log has the cause)"),
        )
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = serde_json::json!({"error": {"code": self.code, "message": self.message}});
        let mut response = (self.status, axum::Json(body)).into_response();
        if let Some(seconds) = self.retry_after {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(seconds));
        }
        if self.status == StatusCode::UNAUTHORIZED {
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"cairn\""),
            );
        }
        response
    }
}

impl From<BytesRejection> for ApiError {
    fn from(rejection: BytesRejection) -> ApiError {
        let status = rejection.status();
        if status == StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::new(
                status,
                "too-large",
                "the request body is larger than this server accepts ([server] max-body-bytes)",
            )
        } else {
            ApiError::new(status, "bad-body", rejection.body_text())
        }
    }
}

impl From<QueryRejection> for ApiError {
    fn from(rejection: QueryRejection) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, "bad-query", rejection.body_text())
    }
}

impl From<JsonRejection> for ApiError {
    fn from(rejection: JsonRejection) -> ApiError {
        let status = rejection.status();
        let code = if status == StatusCode::PAYLOAD_TOO_LARGE {
            "too-large"
        } else {
            "bad-body"
        };
        ApiError::new(status, code, rejection.body_text())
    }
}

impl From<RolloutServiceError> for ApiError {
    fn from(err: RolloutServiceError) -> ApiError {
        let message = err.to_string();
        match err {
            RolloutServiceError::Unknown { .. } => {
                ApiError::new(StatusCode::NOT_FOUND, "unknown-rollout", message)
            }
            RolloutServiceError::Exists { .. } => {
                ApiError::new(StatusCode::CONFLICT, "rollout-exists", message)
            }
            RolloutServiceError::Busy { .. } => {
                let mut err = ApiError::new(StatusCode::CONFLICT, "rollout-busy", message);
                err.retry_after = Some(1);
                err
            }
            RolloutServiceError::PlanGone { .. } => {
                ApiError::new(StatusCode::CONFLICT, "plan-gone", message)
            }
            RolloutServiceError::Refused(_) => {
                ApiError::new(StatusCode::CONFLICT, "refused", message)
            }
            RolloutServiceError::Change(_) => {
                ApiError::new(StatusCode::BAD_REQUEST, "invalid-change", message)
            }
            RolloutServiceError::Storage(ref cause) => {
                ApiError::internal("rollout storage failed", cause.as_ref())
            }
        }
    }
}

/// The authenticated caller of a request.
pub struct Authed(pub Caller);

impl FromRequestParts<Arc<AppState>> for Authed {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &Arc<AppState>,
    ) -> Result<Self, ApiError> {
        let token = parts
            .headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| {
                v.strip_prefix("Bearer ")
                    .or_else(|| v.strip_prefix("bearer "))
            })
            .map(str::trim);
        let caller = token.and_then(|token| state.catalog().caller(token).cloned());
        match caller {
            Some(caller) => Ok(Authed(caller)),
            None => {
                state.metrics.reject("unauthorized");
                Err(ApiError::unauthorized())
            }
        }
    }
}

async fn count_requests(
    State(state): State<Arc<AppState>>,
    request: axum::extract::Request,
    next: Next,
) -> Response {
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |p| p.as_str().to_owned());
    let response = next.run(request).await;
    state
        .metrics
        .requests
        .get_or_create(&crate::serve::metrics::RouteLabels {
            route,
            status: response.status().as_u16(),
        })
        .inc();
    response
}

async fn not_found() -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        "not-found",
        "no such endpoint (GET /v1/openapi.json lists them)",
    )
}

async fn method_not_allowed() -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method-not-allowed",
        "this endpoint does not take that method",
    )
}

/// Alive, unless the PostgreSQL connection is gone: a replica does not
/// reconnect, so its liveness probe failing is what gets it restarted.
async fn healthz(State(state): State<Arc<AppState>>) -> Response {
    match state.rollouts.unavailable() {
        None => axum::Json(serde_json::json!({"status": "ok"})).into_response(),
        Some(why) => (
            StatusCode::SERVICE_UNAVAILABLE,
            axum::Json(serde_json::json!({"status": "store-lost", "store-error": why})),
        )
            .into_response(),
    }
}

async fn readyz(State(state): State<Arc<AppState>>) -> Response {
    let catalog = state.catalog();
    let reload = state.reload_status();
    let draining = state.draining.load(Ordering::Acquire);
    let store_error = state.rollouts.unavailable();
    let ready = !draining && store_error.is_none();
    let body = serde_json::json!({
        "ready": ready,
        "draining": draining,
        "generation": catalog.generation,
        "plans": catalog.plans().count(),
        "last-reload": reload.last_at,
        "reload-error": reload.error,
        "store-error": store_error,
    });
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, axum::Json(body)).into_response()
}

async fn metrics(State(state): State<Arc<AppState>>, headers: HeaderMap) -> Response {
    if let Some(expected) = state.settings.metrics_token {
        let given = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .map(|t| crate::serve::config::token_sha256(t.trim()));
        if given != Some(expected) {
            state.metrics.reject("unauthorized");
            return ApiError::unauthorized().into_response();
        }
    }
    state.refresh_gauges().await;
    let text = state.metrics.encode(&state.runtime);
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        text,
    )
        .into_response()
}

async fn openapi() -> Response {
    ([(header::CONTENT_TYPE, "application/json")], OPENAPI).into_response()
}

async fn plans(
    State(state): State<Arc<AppState>>,
    Authed(caller): Authed,
) -> axum::Json<serde_json::Value> {
    let catalog = state.catalog();
    let plans: Vec<serde_json::Value> = catalog
        .tenants
        .get(&caller.tenant)
        .into_iter()
        .flat_map(|t| t.plans.values())
        .map(|p| {
            serde_json::json!({
                "name": p.name,
                "sha256": p.sha256,
                "checkpoints": p.plan.checkpoints.iter().map(|c| c.name.clone()).collect::<Vec<_>>(),
                "plugins": p.plugins.keys().collect::<Vec<_>>(),
            })
        })
        .collect();
    axum::Json(serde_json::json!({"plans": plans}))
}

async fn plugins(
    State(state): State<Arc<AppState>>,
    Authed(caller): Authed,
) -> axum::Json<serde_json::Value> {
    let catalog = state.catalog();
    let plugins: Vec<serde_json::Value> = catalog
        .tenants
        .get(&caller.tenant)
        .into_iter()
        .flat_map(|t| t.plans.values())
        .flat_map(|p| {
            p.plugins.iter().map(move |(name, plugin)| {
                serde_json::json!({
                    "plan": p.name,
                    "name": name,
                    "sha256": plugin.sha256(),
                    "world": plugin.world().as_str(),
                    "contract": plugin.contract_version().to_string(),
                })
            })
        })
        .collect();
    axum::Json(serde_json::json!({"plugins": plugins}))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct CheckQuery {
    plan: String,
    /// Comma-separated checkpoint names (default: all, in plan order).
    #[serde(default)]
    checkpoints: Option<String>,
    #[serde(default)]
    change_id: Option<String>,
    #[serde(default)]
    fail_on_warn: bool,
    #[serde(default)]
    keep_going: bool,
    /// Approve experiments at production checkpoints as the caller.
    #[serde(default)]
    approve_experiments: bool,
}

async fn checks(
    State(state): State<Arc<AppState>>,
    Authed(caller): Authed,
    query: Result<Query<CheckQuery>, QueryRejection>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let started = Instant::now();
    let body = body.inspect_err(|r| {
        if r.status() == StatusCode::PAYLOAD_TOO_LARGE {
            state.metrics.reject("too-large");
        }
    })?;
    let Query(query) = query?;
    if state.draining.load(Ordering::Acquire) {
        state.metrics.reject("draining");
        return Err(draining());
    }
    let catalog = state.catalog();
    let served = catalog
        .plan(&caller.tenant, &query.plan)
        .cloned()
        .ok_or_else(|| ApiError::unknown_plan(&query.plan))?;
    drop(catalog);
    let change = Change::from_bundle_bytes(&body, Path::new("request body")).map_err(|err| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid-change",
            crate::error_chain(&err),
        )
    })?;
    let names: Vec<String> = query
        .checkpoints
        .as_deref()
        .map(|list| {
            list.split(',')
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default();
    let selected = check::select_checkpoints(&served.plan, &names).map_err(|err| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "unknown-checkpoint",
            err.to_string(),
        )
    })?;
    let with_experiments = selected.iter().any(|c| !c.experiments.is_empty());
    let deadline = state.settings.request_timeout;
    let work = async {
        let slot = state.admission.enter().await.map_err(|overloaded| {
            state.metrics.reject("overloaded");
            let mut err = ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "overloaded",
                overloaded.to_string(),
            );
            err.retry_after = Some(1);
            err
        })?;
        let (stop, experiment) = if with_experiments {
            let (sender, receiver) = watch::channel(false);
            let id = state.register_experiment(&caller, &served.name, sender);
            (Some(receiver), Some(id))
        } else {
            (None, None)
        };
        let options = RunOptions {
            checkpoints: names.clone(),
            keep_going: query.keep_going,
            fail_on_warn: query.fail_on_warn,
            change_id: query.change_id.clone().unwrap_or_default(),
            approval: query
                .approve_experiments
                .then(|| check::Approval::now(caller.identity.clone())),
            stop,
        };
        let result = check::run_loaded(
            &served.plan,
            &served.plugins,
            &selected,
            Arc::new(change),
            &options,
        )
        .await;
        if let Some(id) = experiment {
            state.forget_experiment(&id);
        }
        drop(slot);
        result.map_err(check_error)
    };
    let report = match tokio::time::timeout(deadline, work).await {
        Ok(result) => result?,
        Err(_) => {
            state.metrics.reject("deadline");
            return Err(ApiError::new(
                StatusCode::GATEWAY_TIMEOUT,
                "deadline",
                format!(
                    "the check did not finish within {} ms ([server] request-timeout-ms)",
                    deadline.as_millis()
                ),
            ));
        }
    };
    state.metrics.record_check(&report);
    state
        .metrics
        .request_seconds
        .get_or_create(&crate::serve::metrics::PluginLabels {
            plugin: format!("{}/{}", caller.tenant, served.name),
        })
        .observe(started.elapsed().as_secs_f64());
    let outcome = report.outcome().to_string();
    let mut report = report;
    report.plan = std::path::PathBuf::from(&served.name);
    let body = report::render(&report, Format::Json, &RenderOptions::default());
    Ok((
        [
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            ),
            (
                header::HeaderName::from_static("cairn-outcome"),
                HeaderValue::from_str(&outcome).unwrap_or(HeaderValue::from_static("unknown")),
            ),
        ],
        body,
    )
        .into_response())
}

fn draining() -> ApiError {
    let mut err = ApiError::new(
        StatusCode::SERVICE_UNAVAILABLE,
        "draining",
        "the server is shutting down; retry on another replica",
    );
    err.retry_after = Some(1);
    err
}

/// A plan error while running: what the caller can act on, without paths.
fn check_error(err: CheckError) -> ApiError {
    match &err {
        CheckError::UnknownCheckpoint { .. } => ApiError::new(
            StatusCode::BAD_REQUEST,
            "unknown-checkpoint",
            err.to_string(),
        ),
        CheckError::Experiment(ExperimentError::NeedsApproval { .. }) => ApiError::new(
            StatusCode::FORBIDDEN,
            "needs-approval",
            format!("{err}; pass approve-experiments=true to approve it as this token's identity"),
        ),
        CheckError::Experiment(
            ExperimentError::Start { .. } | ExperimentError::EchoUpstream { .. },
        ) => {
            let mut api = ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "experiment-unavailable",
                crate::error_chain(&err),
            );
            api.retry_after = Some(5);
            api
        }
        _ => ApiError::internal("the check could not run", &err),
    }
}

async fn experiments(
    State(state): State<Arc<AppState>>,
    Authed(caller): Authed,
) -> axum::Json<serde_json::Value> {
    let running = state.experiments_of(&caller.tenant);
    axum::Json(serde_json::json!({"experiments": running}))
}

async fn stop_experiment(
    State(state): State<Arc<AppState>>,
    Authed(caller): Authed,
    UrlPath(id): UrlPath<String>,
) -> Result<Response, ApiError> {
    if state.stop_experiment(&caller.tenant, &id) {
        Ok((
            StatusCode::ACCEPTED,
            axum::Json(serde_json::json!({"id": id, "stopping": true})),
        )
            .into_response())
    } else {
        Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "unknown-experiment",
            format!("no running experiment `{id}`"),
        ))
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct StartQuery {
    plan: String,
    #[serde(default)]
    id: Option<String>,
    #[serde(default)]
    change_id: Option<String>,
}

async fn list_rollouts(
    State(state): State<Arc<AppState>>,
    Authed(caller): Authed,
) -> Result<axum::Json<serde_json::Value>, ApiError> {
    Ok(axum::Json(
        serde_json::json!({"rollouts": state.rollouts.list(&caller.tenant).await?}),
    ))
}

async fn start_rollout(
    State(state): State<Arc<AppState>>,
    Authed(caller): Authed,
    query: Result<Query<StartQuery>, QueryRejection>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let body = body?;
    let Query(query) = query?;
    if state.draining.load(Ordering::Acquire) {
        return Err(draining());
    }
    let served = state
        .catalog()
        .plan(&caller.tenant, &query.plan)
        .cloned()
        .ok_or_else(|| ApiError::unknown_plan(&query.plan))?;
    let id = state
        .rollouts
        .start(&caller, served, &body, query.id, query.change_id)
        .await?;
    let location = format!("/v1/rollouts/{id}");
    Ok((
        StatusCode::ACCEPTED,
        [(
            header::LOCATION,
            HeaderValue::from_str(&location).unwrap_or(HeaderValue::from_static("/v1/rollouts")),
        )],
        axum::Json(serde_json::json!({"id": id, "phase": "starting"})),
    )
        .into_response())
}

async fn rollout_status(
    State(state): State<Arc<AppState>>,
    Authed(caller): Authed,
    UrlPath(id): UrlPath<String>,
) -> Result<axum::Json<serde_json::Value>, ApiError> {
    Ok(axum::Json(
        state.rollouts.status(&caller.tenant, &id).await?,
    ))
}

async fn rollout_journal(
    State(state): State<Arc<AppState>>,
    Authed(caller): Authed,
    UrlPath(id): UrlPath<String>,
) -> Result<axum::Json<serde_json::Value>, ApiError> {
    Ok(axum::Json(
        state.rollouts.journal(&caller.tenant, &id).await?,
    ))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ApproveBody {
    role: String,
    #[serde(default)]
    comment: Option<String>,
}

async fn approve_rollout(
    State(state): State<Arc<AppState>>,
    Authed(caller): Authed,
    UrlPath(id): UrlPath<String>,
    body: Result<axum::Json<ApproveBody>, JsonRejection>,
) -> Result<axum::Json<serde_json::Value>, ApiError> {
    let axum::Json(body) = body?;
    if !caller.roles.is_empty() && !caller.roles.contains(&body.role) {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "role-not-allowed",
            format!("this token may not approve as `{}`", body.role),
        ));
    }
    let catalog = state.catalog();
    Ok(axum::Json(
        state
            .rollouts
            .approve(&catalog, &caller, &id, body.role, body.comment)
            .await?,
    ))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct AbortBody {
    reason: String,
}

async fn abort_rollout(
    State(state): State<Arc<AppState>>,
    Authed(caller): Authed,
    UrlPath(id): UrlPath<String>,
    body: Result<axum::Json<AbortBody>, JsonRejection>,
) -> Result<Response, ApiError> {
    let axum::Json(body) = body?;
    let catalog = state.catalog();
    state
        .rollouts
        .abort(&catalog, &caller, &id, body.reason)
        .await?;
    Ok((
        StatusCode::ACCEPTED,
        axum::Json(serde_json::json!({"id": id, "aborting": true})),
    )
        .into_response())
}

/// Milliseconds since the Unix epoch.
pub(crate) fn unix_millis() -> u64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}
