//! Operations endpoints (`/healthz`, `/readyz`, `/metrics`) and the API under `/api/v1/`.
//!
//! Every `/api/v1` request carries a bearer token: the admin token opens every tenant, a tenant's
//! API token that tenant alone ([`crate::auth`]). To a tenant token, another tenant's path, and
//! another tenant's delivery, job, record or cursor, are exactly what does not exist: the same
//! 404. Lists are keyset-paginated with opaque cursors (`page`).
//!
//! # Layout
//! One file per resource, each with its handlers, their parameter and answer types and their
//! OpenAPI annotations; [`api`] registers each operation once.
//! - `log`: deliveries, jobs and replay.
//! - `tenants`: tenants and connectors, with their health.
//! - `records`, `events`, `analytics`: what connectors keep for a tenant.
//! - `changes`: a tenant's change feed (JSON pages, long-poll, Server-Sent Events).
//! - `sync`: a connector job queued now. `endpoints`: the tenant's webhook endpoints.
//! - `actions`: the app asks the hub to act (`crate::actions`), and follows the outcome.
//! - `openapi`: the document's frame and the errors every operation can answer.
//! - `page`: cursors and `next` links.

mod actions;
mod alerts;
mod analytics;
mod audit;
mod changes;
mod config;
pub mod connections;
mod endpoints;
mod events;
mod log;
mod manage;
mod openapi;
mod page;
mod records;
mod sync;
mod tenants;

use std::sync::Arc;

use axum::Router;
use axum::extract::{Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde_json::json;
use utoipa::OpenApi as _;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::auth::Principal;

use crate::id::TenantId;
use crate::reload::{Current, Shared};
use crate::state::Hub;

/// The body of every error answer.
#[derive(serde::Serialize, utoipa::ToSchema)]
pub struct ErrorBody {
    /// What was wrong.
    pub error: String,
    /// On a 410 from the change feed: the cursor to follow from after re-reading.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next: Option<String>,
    /// On a 422 for an action's input: each field that is wrong, and how.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub problems: Option<Vec<crate::actions::Problem>>,
    /// On a 409 for a reused idempotency key: the id of the action the key was first used for.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub action: Option<i64>,
}

/// The API's one error type: client faults are 4xx with a message, internal faults an opaque 500
/// logged once here.
pub enum ApiError {
    /// 400: the request itself is wrong.
    BadRequest(String),
    /// 404.
    NotFound(String),
    /// 401.
    Unauthorized,
    /// 403: the token may not do this.
    Forbidden(String),
    /// 410: what the request names is gone for good; `next` says where to go on from.
    Gone {
        /// What happened, and what to do.
        message: String,
        /// Where to go on from (a cursor).
        next: String,
    },
    /// 409: the idempotency key was first used for another action (its id).
    Conflict(i64),
    /// 422: the input does not fit the action, field by field.
    Invalid(Vec<crate::actions::Problem>),
    /// 500.
    Internal(anyhow::Error),
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, body) = match self {
            ApiError::BadRequest(why) => (StatusCode::BAD_REQUEST, json!({ "error": why })),
            ApiError::NotFound(what) => (
                StatusCode::NOT_FOUND,
                json!({ "error": format!("{what} not found") }),
            ),
            ApiError::Unauthorized => {
                let mut r = (
                    StatusCode::UNAUTHORIZED,
                    axum::Json(json!({ "error": "a valid bearer token is required" })),
                )
                    .into_response();
                r.headers_mut().insert(
                    header::WWW_AUTHENTICATE,
                    header::HeaderValue::from_static("Bearer"),
                );
                return r;
            }
            ApiError::Forbidden(why) => (StatusCode::FORBIDDEN, json!({ "error": why })),
            ApiError::Gone { message, next } => {
                (StatusCode::GONE, json!({ "error": message, "next": next }))
            }
            ApiError::Conflict(first) => (
                StatusCode::CONFLICT,
                json!({
                    "error": "this Idempotency-Key was used for a different action or input: use a new key for a new action",
                    "action": first,
                }),
            ),
            ApiError::Invalid(problems) => (
                StatusCode::UNPROCESSABLE_ENTITY,
                json!({
                    "error": problems.iter().map(|p| format!("{}: {}", p.field, p.message)).collect::<Vec<_>>().join("; "),
                    "problems": problems,
                }),
            ),
            ApiError::Internal(e) => {
                tracing::error!("admin API: {e:#}");
                (
                    StatusCode::INTERNAL_SERVER_ERROR,
                    json!({ "error": "internal error" }),
                )
            }
        };
        (status, axum::Json(body)).into_response()
    }
}

impl<E: Into<anyhow::Error>> From<E> for ApiError {
    fn from(e: E) -> Self {
        ApiError::Internal(e.into())
    }
}

/// `GET /healthz`: the process is up.
pub async fn healthz() -> &'static str {
    "ok\n"
}

/// `GET /readyz`: the database answers; and the config version this hub runs (several hubs on
/// one database: each says its own, so one lagging behind shows).
pub async fn readyz(State(current): State<Arc<Current>>) -> Response {
    let hub = current.hub();
    match hub.store.pending_jobs().await {
        Ok(pending) => {
            let version = current.version();
            let mut body = json!({
                "status": "ready",
                "pending_jobs": pending,
                "config_version": version.running,
            });
            if let Some((number, why)) = version.failed {
                body["config_failed"] = json!({ "version": number, "error": why });
            }
            axum::Json(body).into_response()
        }
        Err(e) => {
            // The store's own words (a host, a path) are for the log, not for a probe.
            tracing::warn!("readyz: the database does not answer: {e}");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                axum::Json(json!({ "status": "unavailable", "error": "the database does not answer; the hub's log says why" })),
            )
                .into_response()
        }
    }
}

/// `GET /metrics`.
pub async fn metrics(State(current): State<Arc<Current>>) -> Response {
    let hub = current.hub();
    let mut text = hub.metrics.render();
    let version = current.version();
    text.push_str(&format!(
        "# HELP hub_config_version The config version this hub runs\n# TYPE hub_config_version gauge\n\
         hub_config_version {}\n# HELP hub_config_failed_version A newer config version this hub could not apply (0: none)\n\
         # TYPE hub_config_failed_version gauge\nhub_config_failed_version {}\n",
        version.running.unwrap_or(0),
        version.failed.map_or(0, |(n, _)| n)
    ));
    text.push_str(&hub.alerts.render_metrics());
    text.push_str(&crate::telemetry::render_metrics());
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], text).into_response()
}

/// The `/api/v1` router: each operation registered once, with its route and its OpenAPI
/// description together (`utoipa_axum::routes!`), so the document lists exactly what answers.
pub fn api(shared: Shared) -> Router<Shared> {
    let (router, spec) = OpenApiRouter::with_openapi(openapi::ApiDoc::openapi())
        .routes(routes!(log::list_deliveries))
        .routes(routes!(log::one_delivery))
        .routes(routes!(log::list_jobs))
        .routes(routes!(log::replay))
        .routes(routes!(tenants::tenants))
        .routes(routes!(tenants::connectors))
        .routes(routes!(records::records))
        .routes(routes!(events::events))
        .routes(routes!(analytics::analytics))
        .routes(routes!(changes::changes))
        .routes(routes!(sync::sync))
        .routes(routes!(actions::act))
        .routes(routes!(actions::one_action))
        .routes(routes!(connections::list))
        .routes(routes!(connections::connect))
        .routes(routes!(connections::disconnect))
        .routes(routes!(connections::channels))
        .routes(routes!(alerts::alerts))
        .routes(routes!(endpoints::endpoints))
        .routes(routes!(endpoints::enable_endpoint))
        .routes(routes!(reload))
        .routes(routes!(config::state))
        .routes(routes!(config::versions))
        .routes(routes!(config::version))
        .routes(routes!(config::difference))
        .routes(routes!(config::rollback))
        .routes(routes!(
            manage::put_tenant_handler,
            manage::patch_tenant,
            manage::delete_tenant
        ))
        .routes(routes!(manage::parts::set_credential))
        .routes(routes!(manage::parts::put_endpoint))
        .routes(routes!(manage::parts::register))
        .routes(routes!(audit::audit))
        .layer(middleware::from_fn_with_state(shared, authenticate))
        .split_for_parts();
    router
        // What the API is: no data, so no token.
        .route("/openapi.json", get(openapi::document(spec)))
        .fallback(|| async {
            (
                StatusCode::NOT_FOUND,
                axum::Json(
                    json!({ "error": "no such operation; /api/v1/openapi.json lists them" }),
                ),
            )
        })
        .method_not_allowed_fallback(|| async {
            (
                StatusCode::METHOD_NOT_ALLOWED,
                axum::Json(json!({ "error": "this operation does not take that method" })),
            )
        })
        // The change feed long-polls for up to 60 s: the API's own, longer time limit.
        .layer(tower_http::timeout::TimeoutLayer::with_status_code(
            StatusCode::REQUEST_TIMEOUT,
            API_TIMEOUT,
        ))
        .layer(middleware::map_response(json_errors))
}

/// A whole API request, answer included, must finish within this time (`wait=60` at most).
const API_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(75);

/// Every error answer is an [`ErrorBody`]: one made by a handler passes as it is; one made by
/// an extractor or the router (a `limit` that is not a number, a malformed JSON body, a missing
/// `Content-Type`, a timeout) keeps its status and headers and says the same in JSON.
async fn json_errors(answer: Response) -> Response {
    let status = answer.status();
    let json = answer
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"application/json"));
    if json || !(status.is_client_error() || status.is_server_error()) {
        return answer;
    }
    let (parts, body) = answer.into_parts();
    let text = axum::body::to_bytes(body, 64 * 1024)
        .await
        .unwrap_or_default();
    let text = String::from_utf8_lossy(&text);
    let error = match text.trim() {
        "" => status
            .canonical_reason()
            .unwrap_or("error")
            .to_ascii_lowercase(),
        said => said.to_string(),
    };
    let mut json = (status, axum::Json(json!({ "error": error }))).into_response();
    for (name, value) in &parts.headers {
        if name != header::CONTENT_TYPE && name != header::CONTENT_LENGTH {
            json.headers_mut().append(name.clone(), value.clone());
        }
    }
    json
}

/// `POST /api/v1/reload` (admin): applies the edited `hub.toml` (see [`crate::reload`]); 422
/// with every problem, located, when it is refused and the old config keeps serving.
#[utoipa::path(post, path = "/reload", tag = "operations",
    responses((status = 200, body = crate::reload::Reloaded), (status = 422, body = ErrorBody), (status = 403, body = ErrorBody)),
    security(("bearer" = [])))]
pub(crate) async fn reload(
    State(current): State<Arc<Current>>,
    axum::Extension(principal): axum::Extension<Principal>,
) -> Response {
    if principal != Principal::Admin {
        return ApiError::Forbidden("only the admin token may reload the config".into())
            .into_response();
    }
    match current.reload().await {
        Ok(done) => axum::Json(done).into_response(),
        Err(refused) => (
            StatusCode::UNPROCESSABLE_ENTITY,
            axum::Json(json!({ "error": format!("the config was not applied; the old one keeps serving:\n{refused}") })),
        )
            .into_response(),
    }
}

/// Finds the caller from its bearer token and hands it to the handler as a [`Principal`].
async fn authenticate(
    State(hub): State<Arc<Hub>>,
    mut request: Request,
    next: Next,
) -> Result<Response, ApiError> {
    if hub.tokens.is_empty() {
        return Err(ApiError::NotFound(
            "the admin API is disabled (no server.admin_token and no API tokens); it".into(),
        ));
    }
    let principal = hub
        .tokens
        .caller(request.headers())
        .ok_or(ApiError::Unauthorized)?;
    request.extensions_mut().insert(principal);
    Ok(next.run(request).await)
}

/// A query parameter parsed into its type, or a 400 that names it.
fn param<T: std::str::FromStr>(value: Option<String>, name: &str) -> Result<Option<T>, ApiError>
where
    T::Err: std::fmt::Display,
{
    value
        .map(|v| v.parse::<T>())
        .transpose()
        .map_err(|e| ApiError::BadRequest(format!("`{name}`: {e}")))
}

/// The tenant of a `/tenants/{tenant}/...` path, if it exists and the caller may see it; else
/// the 404 of a tenant that does not exist.
fn visible_tenant(hub: &Hub, principal: &Principal, tenant: &str) -> Result<TenantId, ApiError> {
    hub.directory
        .tenant(tenant)
        .map(|(id, _)| id.clone())
        .filter(|id| principal.sees(id))
        .ok_or_else(|| ApiError::NotFound(format!("tenant {tenant}")))
}

/// The most rows one page holds.
const MAX_PAGE: usize = 500;

/// A page size: the default when none is asked, at most [`MAX_PAGE`].
fn page_size(asked: Option<usize>, default: usize) -> usize {
    asked.unwrap_or(default).clamp(1, MAX_PAGE)
}

#[cfg(test)]
pub(crate) mod tests;
