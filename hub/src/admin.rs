//! Operations endpoints (`/healthz`, `/readyz`, `/metrics`) and the admin API under `/api/v1/`,
//! guarded by the bearer token sealed in `server.admin_token`. Replay (`POST /api/v1/replay`) and
//! the job list (`GET /api/v1/jobs`) are described in [`crate::store::Replay`] and
//! [`crate::store::JobFilter`].

use std::sync::Arc;

use axum::Router;
use axum::extract::{Path, Query, Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use secrecy::ExposeSecret;
use serde::Deserialize;
use serde_json::json;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::config::TenantId;
use crate::state::Hub;
use crate::store::{DeadFilter, DeliveryFilter, JobCount, JobFilter, RecordFilter, Replay};

/// The API's one error type: client faults are 4xx with a message, internal faults an opaque 500
/// logged once here.
pub enum ApiError {
    /// 400: the request itself is wrong.
    BadRequest(String),
    /// 404.
    NotFound(String),
    /// 401.
    Unauthorized,
    /// 500.
    Internal(anyhow::Error),
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        match self {
            ApiError::BadRequest(why) => {
                (StatusCode::BAD_REQUEST, axum::Json(json!({ "error": why }))).into_response()
            }
            ApiError::NotFound(what) => (
                StatusCode::NOT_FOUND,
                axum::Json(json!({ "error": format!("{what} not found") })),
            )
                .into_response(),
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
                r
            }
            ApiError::Internal(e) => {
                tracing::error!("admin API: {e:#}");
                (
                    StatusCode::INTERNAL_SERVER_ERROR,
                    axum::Json(json!({ "error": "internal error" })),
                )
                    .into_response()
            }
        }
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

/// `GET /readyz`: the database answers.
pub async fn readyz(State(hub): State<Arc<Hub>>) -> Response {
    match hub.store.pending_jobs().await {
        Ok(pending) => {
            axum::Json(json!({ "status": "ready", "pending_jobs": pending })).into_response()
        }
        Err(e) => (
            StatusCode::SERVICE_UNAVAILABLE,
            axum::Json(json!({ "status": "unavailable", "error": e.to_string() })),
        )
            .into_response(),
    }
}

/// `GET /metrics`.
pub async fn metrics(State(hub): State<Arc<Hub>>) -> Response {
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        hub.metrics.render(),
    )
        .into_response()
}

/// The `/api/v1` router.
pub fn api(hub: Arc<Hub>) -> Router<Arc<Hub>> {
    Router::new()
        .route("/deliveries", get(list_deliveries))
        .route("/deliveries/{id}", get(one_delivery))
        .route("/tenants", get(tenants))
        .route("/tenants/{tenant}/records", get(records))
        .route("/tenants/{tenant}/events", get(events))
        .route("/connectors", get(connectors))
        .route("/jobs", get(list_jobs))
        .route("/replay", post(replay))
        .layer(middleware::from_fn_with_state(hub, require_token))
}

async fn require_token(
    State(hub): State<Arc<Hub>>,
    request: Request,
    next: Next,
) -> Result<Response, ApiError> {
    let Some(expected) = hub.vault.admin_token() else {
        return Err(ApiError::NotFound(
            "the admin API is disabled (no server.admin_token); it".into(),
        ));
    };
    let given = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or("");
    // Compare digests: constant time and independent of length.
    let a = Sha256::digest(given.as_bytes());
    let b = Sha256::digest(expected.expose_secret());
    if given.is_empty() || !bool::from(a.ct_eq(&b)) {
        return Err(ApiError::Unauthorized);
    }
    Ok(next.run(request).await)
}

#[derive(Deserialize)]
struct DeliveryQuery {
    tenant: Option<String>,
    connector: Option<String>,
    state: Option<String>,
    limit: Option<usize>,
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

/// The tenant of a `/tenants/{tenant}/...` path, or a 404.
fn known_tenant(hub: &Hub, tenant: &str) -> Result<TenantId, ApiError> {
    hub.directory
        .tenant(tenant)
        .map(|(id, _)| id.clone())
        .ok_or_else(|| ApiError::NotFound(format!("tenant {tenant}")))
}

async fn list_deliveries(
    State(hub): State<Arc<Hub>>,
    Query(q): Query<DeliveryQuery>,
) -> Result<Response, ApiError> {
    let rows = hub
        .store
        .deliveries(DeliveryFilter {
            tenant: param(q.tenant, "tenant")?,
            connector: param(q.connector, "connector")?,
            state: param(q.state, "state")?,
            limit: q.limit.unwrap_or(50),
        })
        .await?;
    Ok(axum::Json(json!({ "deliveries": rows })).into_response())
}

async fn one_delivery(
    State(hub): State<Arc<Hub>>,
    Path(id): Path<i64>,
) -> Result<Response, ApiError> {
    let Some(row) = hub.store.delivery(id).await? else {
        return Err(ApiError::NotFound(format!("delivery {id}")));
    };
    let jobs = hub.store.jobs_for_delivery(id).await?;
    Ok(axum::Json(json!({ "delivery": row, "jobs": jobs })).into_response())
}

/// Job counts by state, `{"queued": n, "running": n, "dead": n, ...}`, for the rows that match.
fn health(counts: &[JobCount], keep: impl Fn(&JobCount) -> bool) -> serde_json::Value {
    let mut out = serde_json::Map::new();
    for count in counts.iter().filter(|c| keep(c)) {
        let slot = out
            .entry(count.state.as_str().to_string())
            .or_insert(json!(0));
        *slot = json!(slot.as_i64().unwrap_or(0) + count.count);
    }
    let healthy = out.get("dead").and_then(|v| v.as_i64()).unwrap_or(0) == 0;
    json!({ "healthy": healthy, "jobs": out })
}

async fn tenants(State(hub): State<Arc<Hub>>) -> Result<Response, ApiError> {
    let counts = hub.store.job_counts().await?;
    let list: Vec<_> = hub
        .directory
        .tenants()
        .map(|(id, tenant)| {
            let connectors: Vec<&str> = tenant.connectors.keys().map(|c| c.as_str()).collect();
            let per_connector: serde_json::Map<String, serde_json::Value> = tenant
                .connectors
                .keys()
                .map(|c| {
                    let health = health(&counts, |n| n.tenant == *id && n.connector == *c);
                    (c.to_string(), health)
                })
                .collect();
            json!({ "id": id, "name": tenant.name, "connectors": connectors, "health": per_connector })
        })
        .collect();
    Ok(axum::Json(json!({ "tenants": list })).into_response())
}

#[derive(Deserialize)]
struct RecordQuery {
    kind: Option<String>,
    lookup: Option<String>,
    limit: Option<usize>,
}

async fn records(
    State(hub): State<Arc<Hub>>,
    Path(tenant): Path<String>,
    Query(q): Query<RecordQuery>,
) -> Result<Response, ApiError> {
    let tenant = known_tenant(&hub, &tenant)?;
    if q.lookup.is_some() && q.kind.is_none() {
        return Err(ApiError::BadRequest(
            "`lookup` needs `kind`: records are found by a lookup within one kind".into(),
        ));
    }
    let filter = RecordFilter {
        kind: q.kind,
        lookup: q.lookup.as_deref().map(written_as_stored),
        limit: q.limit.unwrap_or(100),
    };
    let rows = hub.store.records(tenant, filter).await?;
    Ok(axum::Json(json!({ "records": rows })).into_response())
}

/// A lookup as a person types it into a URL, written as connectors store it: the number of a
/// `phone:` in E.164 (a `+` that query decoding turned into a space is put back, so
/// `?lookup=phone:+1 415 555 0100` works), an `email:` trimmed and lower-cased; anything else,
/// or what does not parse, as it is.
fn written_as_stored(lookup: &str) -> String {
    let normalized = if let Some(number) = lookup.strip_prefix("phone:") {
        let number = number.trim();
        if number.starts_with('+') || number.starts_with("00") {
            plugin_sdk::lookup::phone(number)
        } else {
            plugin_sdk::lookup::phone(&format!("+{number}"))
        }
    } else if let Some(email) = lookup.strip_prefix("email:") {
        plugin_sdk::lookup::email(email)
    } else {
        None
    };
    normalized.unwrap_or_else(|| lookup.to_string())
}

async fn events(
    State(hub): State<Arc<Hub>>,
    Path(tenant): Path<String>,
    Query(q): Query<RecordQuery>,
) -> Result<Response, ApiError> {
    let tenant = known_tenant(&hub, &tenant)?;
    let rows = hub.store.events(tenant, q.limit.unwrap_or(100)).await?;
    Ok(axum::Json(json!({ "events": rows })).into_response())
}

async fn connectors(State(hub): State<Arc<Hub>>) -> Result<Response, ApiError> {
    let counts = hub.store.job_counts().await?;
    let list: Vec<_> = hub
        .runtime
        .connectors()
        .map(|c| {
            json!({
                "id": c.id,
                "name": c.manifest.name,
                "version": c.manifest.version,
                "routes": c.manifest.routes.iter().map(|r| r.name.clone()).collect::<Vec<_>>(),
                "events": c.manifest.events.iter().map(|e| e.name.clone()).collect::<Vec<_>>(),
                "actions": c.manifest.actions.iter().map(|a| a.name.clone()).collect::<Vec<_>>(),
                "jobs": c.manifest.jobs.iter().map(|j| j.name.clone()).collect::<Vec<_>>(),
                "outbound_hosts": c.policy.allowed().iter().map(|o| o.as_str().to_string()).collect::<Vec<_>>(),
                "health": health(&counts, |n| n.connector == c.id),
            })
        })
        .collect();
    Ok(axum::Json(json!({ "connectors": list })).into_response())
}

#[derive(Deserialize)]
struct JobQuery {
    tenant: Option<String>,
    connector: Option<String>,
    state: Option<String>,
    key_prefix: Option<String>,
    limit: Option<usize>,
}

/// `GET /api/v1/jobs?tenant=&connector=&state=&key_prefix=&limit=`: jobs, newest first, with
/// their idempotency keys, timings and replay history.
async fn list_jobs(
    State(hub): State<Arc<Hub>>,
    Query(q): Query<JobQuery>,
) -> Result<Response, ApiError> {
    let rows = hub
        .store
        .jobs(JobFilter {
            tenant: param(q.tenant, "tenant")?,
            connector: param(q.connector, "connector")?,
            state: param(q.state, "state")?,
            key_prefix: q.key_prefix,
            limit: q.limit.unwrap_or(50),
        })
        .await?;
    Ok(axum::Json(json!({ "jobs": rows })).into_response())
}

/// The body of `POST /api/v1/replay`: exactly one of the three.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ReplayRequest {
    delivery: Option<i64>,
    job: Option<i64>,
    dead: Option<DeadFilter>,
}

/// `POST /api/v1/replay`: `{"delivery": id}`, `{"job": id}` or `{"dead": {"tenant", "connector",
/// "since_ms", "until_ms"}}` (each optional) -> `{"queued", "pending", "pruned"}`.
async fn replay(
    State(hub): State<Arc<Hub>>,
    axum::Json(body): axum::Json<ReplayRequest>,
) -> Result<Response, ApiError> {
    let what = match (body.delivery, body.job, body.dead) {
        (Some(id), None, None) => Replay::Delivery(id),
        (None, Some(id), None) => Replay::Job(id),
        (None, None, Some(filter)) => Replay::Dead(filter),
        _ => {
            return Err(ApiError::BadRequest(
                "give exactly one of `delivery`, `job` or `dead`".into(),
            ));
        }
    };
    let named = match &what {
        Replay::Delivery(id) => format!("delivery {id}"),
        Replay::Job(id) => format!("job {id}"),
        Replay::Dead(_) => String::new(),
    };
    let Some(done) = hub.store.replay(what).await? else {
        return Err(ApiError::NotFound(named));
    };
    if done.queued > 0 {
        tracing::info!(
            queued = done.queued,
            "replay requested through the admin API"
        );
    }
    Ok(axum::Json(json!(done)).into_response())
}

#[cfg(test)]
mod tests {
    use super::written_as_stored;

    #[test]
    fn a_lookup_typed_into_a_url_finds_what_connectors_stored() {
        for typed in [
            "phone:+14155550100",
            "phone: 14155550100",
            "phone: 1 (415) 555-0100",
            "phone:0014155550100",
        ] {
            assert_eq!(written_as_stored(typed), "phone:+14155550100", "{typed}");
        }
        assert_eq!(written_as_stored("email: Ann@X.io"), "email:ann@x.io");
        assert_eq!(written_as_stored("phone:abc"), "phone:abc");
        assert_eq!(written_as_stored("sku:A-1"), "sku:A-1");
    }
}
