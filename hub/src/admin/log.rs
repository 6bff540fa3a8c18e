//! The webhook log and the queue: `GET /deliveries`, `GET /deliveries/{id}`, `GET /jobs` and
//! `POST /replay`, each limited to the caller's tenant for a tenant token.

use std::sync::Arc;

use axum::Extension;
use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use serde_json::json;
use utoipa::{IntoParams, ToSchema};

use super::page::{CursorScope, cut, next_link};
use super::{ApiError, page_size, param};
use crate::auth::Principal;
use crate::state::Hub;
use crate::store::{
    DeadFilter, DeliveryFilter, DeliveryRow, JobDetail, JobFilter, JobRow, Replay, Replayed,
};

/// A page of the webhook log.
#[derive(Serialize, ToSchema)]
pub(super) struct DeliveriesPage {
    /// Newest first.
    deliveries: Vec<DeliveryRow>,
    /// The next page's link; `null` on the last page.
    next: Option<String>,
}

/// One delivery with its payload, and its jobs.
#[derive(Serialize, ToSchema)]
pub(super) struct DeliveryWithJobs {
    delivery: DeliveryRow,
    jobs: Vec<JobRow>,
}

/// A page of jobs.
#[derive(Serialize, ToSchema)]
pub(super) struct JobsPage {
    /// Newest first.
    jobs: Vec<JobDetail>,
    /// The next page's link; `null` on the last page.
    next: Option<String>,
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(super) struct DeliveryQuery {
    /// Only this tenant (a tenant token: its own, whatever it asks).
    tenant: Option<String>,
    /// Only this connector.
    connector: Option<String>,
    /// Only this state: received, processing, done, ignored, retrying, dead.
    state: Option<String>,
    /// At most this many (default 50, at most 500).
    limit: Option<usize>,
    /// From a `next` link.
    cursor: Option<String>,
}

/// `GET /api/v1/deliveries?tenant=&connector=&state=&limit=&cursor=`: newest first.
#[utoipa::path(get, path = "/deliveries", params(DeliveryQuery), tag = "log",
    responses((status = 200, body = DeliveriesPage), (status = 400, body = super::ErrorBody),
              (status = 401, body = super::ErrorBody)))]
pub(super) async fn list_deliveries(
    State(hub): State<Arc<Hub>>,
    Extension(principal): Extension<Principal>,
    Query(q): Query<DeliveryQuery>,
) -> Result<Response, ApiError> {
    let empty = || {
        let page = DeliveriesPage {
            deliveries: Vec::new(),
            next: None,
        };
        axum::Json(page).into_response()
    };
    let Some(tenant) = principal.limit(param(q.tenant.clone(), "tenant")?) else {
        return Ok(empty());
    };
    let tenant_text = tenant.as_ref().map(|t| t.to_string());
    let scope = CursorScope::of(
        "deliveries",
        &[
            tenant_text.as_deref(),
            q.connector.as_deref(),
            q.state.as_deref(),
        ],
    );
    let limit = page_size(q.limit, 50);
    let mut rows = hub
        .store
        .deliveries(DeliveryFilter {
            tenant,
            connector: param(q.connector.clone(), "connector")?,
            state: param(q.state.clone(), "state")?,
            before: scope.after(q.cursor.as_deref())?,
            limit: limit + 1,
            ..DeliveryFilter::default()
        })
        .await?;
    let next = cut(&mut rows, limit, |r| r.id).map(|last| {
        let params = [
            ("tenant", q.tenant),
            ("connector", q.connector),
            ("state", q.state),
            ("limit", q.limit.map(|l| l.to_string())),
        ];
        next_link("/deliveries", &params, &scope.cursor(last))
    });
    let page = DeliveriesPage {
        deliveries: rows,
        next,
    };
    Ok(axum::Json(page).into_response())
}

/// `GET /api/v1/deliveries/{id}`: one delivery with its payload and jobs.
#[utoipa::path(get, path = "/deliveries/{id}", params(("id" = i64, Path)), tag = "log",
    responses((status = 200, body = DeliveryWithJobs), (status = 404, body = super::ErrorBody)))]
pub(super) async fn one_delivery(
    State(hub): State<Arc<Hub>>,
    Extension(principal): Extension<Principal>,
    Path(id): Path<i64>,
) -> Result<Response, ApiError> {
    let row = hub
        .store
        .delivery(id)
        .await?
        .filter(|row| principal.sees(&row.tenant))
        .ok_or_else(|| ApiError::NotFound(format!("delivery {id}")))?;
    let jobs = hub.store.jobs_for_delivery(id).await?;
    Ok(axum::Json(DeliveryWithJobs {
        delivery: row,
        jobs,
    })
    .into_response())
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(super) struct JobQuery {
    /// Only this tenant (a tenant token: its own, whatever it asks).
    tenant: Option<String>,
    /// Only this connector.
    connector: Option<String>,
    /// Only this state: queued, running, done, dead.
    state: Option<String>,
    /// Only idempotency keys starting with this, e.g. `schedule:abc-healthcare:nightly:`.
    key_prefix: Option<String>,
    /// At most this many (default 50, at most 500).
    limit: Option<usize>,
    /// From a `next` link.
    cursor: Option<String>,
}

/// `GET /api/v1/jobs?tenant=&connector=&state=&key_prefix=&limit=&cursor=`: jobs, newest
/// first, with their idempotency keys, timings and replay history.
#[utoipa::path(get, path = "/jobs", params(JobQuery), tag = "log",
    responses((status = 200, body = JobsPage), (status = 400, body = super::ErrorBody)))]
pub(super) async fn list_jobs(
    State(hub): State<Arc<Hub>>,
    Extension(principal): Extension<Principal>,
    Query(q): Query<JobQuery>,
) -> Result<Response, ApiError> {
    let Some(tenant) = principal.limit(param(q.tenant.clone(), "tenant")?) else {
        let page = JobsPage {
            jobs: Vec::new(),
            next: None,
        };
        return Ok(axum::Json(page).into_response());
    };
    let tenant_text = tenant.as_ref().map(|t| t.to_string());
    let scope = CursorScope::of(
        "jobs",
        &[
            tenant_text.as_deref(),
            q.connector.as_deref(),
            q.state.as_deref(),
            q.key_prefix.as_deref(),
        ],
    );
    let limit = page_size(q.limit, 50);
    let mut rows = hub
        .store
        .jobs(JobFilter {
            tenant,
            connector: param(q.connector.clone(), "connector")?,
            state: param(q.state.clone(), "state")?,
            key_prefix: q.key_prefix.clone(),
            key: None,
            before: scope.after(q.cursor.as_deref())?,
            limit: limit + 1,
        })
        .await?;
    let next = cut(&mut rows, limit, |r| r.job.id).map(|last| {
        let params = [
            ("tenant", q.tenant),
            ("connector", q.connector),
            ("state", q.state),
            ("key_prefix", q.key_prefix),
            ("limit", q.limit.map(|l| l.to_string())),
        ];
        next_link("/jobs", &params, &scope.cursor(last))
    });
    Ok(axum::Json(JobsPage { jobs: rows, next }).into_response())
}

/// The body of `POST /api/v1/replay`: exactly one of the three.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct ReplayRequest {
    /// A delivery id: its handling runs again.
    delivery: Option<i64>,
    /// A job id: it runs again.
    job: Option<i64>,
    /// The dead letters to queue again.
    dead: Option<DeadFilter>,
}

/// `POST /api/v1/replay`: `{"delivery": id}`, `{"job": id}` or `{"dead": {"tenant", "connector",
/// "since_ms", "until_ms"}}` (each optional) -> `{"queued", "pending", "pruned"}`. A tenant
/// token needs the `replay` scope, and reaches its own tenant's deliveries and jobs only.
#[utoipa::path(post, path = "/replay", request_body = ReplayRequest, tag = "log",
    responses((status = 200, body = Replayed), (status = 400, body = super::ErrorBody),
              (status = 403, body = super::ErrorBody), (status = 404, body = super::ErrorBody)))]
pub(super) async fn replay(
    State(hub): State<Arc<Hub>>,
    Extension(principal): Extension<Principal>,
    axum::Json(body): axum::Json<ReplayRequest>,
) -> Result<Response, ApiError> {
    if !principal.may_replay() {
        return Err(ApiError::Forbidden(
            "this token's scope is `read`: replay needs `replay`".into(),
        ));
    }
    let what = match (body.delivery, body.job, body.dead) {
        (Some(id), None, None) => Replay::Delivery(id),
        (None, Some(id), None) => Replay::Job(id),
        (None, None, Some(mut filter)) => match principal.limit(filter.tenant.take()) {
            Some(tenant) => Replay::Dead(DeadFilter { tenant, ..filter }),
            None => return Ok(axum::Json(json!(Replayed::default())).into_response()),
        },
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
    let dead_tenant = match &what {
        Replay::Dead(f) => f.tenant.as_ref().map(ToString::to_string),
        _ => None,
    };
    // Another tenant's delivery or job is one that does not exist.
    let owner = match &what {
        Replay::Delivery(id) => Some(hub.store.delivery(*id).await?.map(|d| d.tenant)),
        Replay::Job(id) => Some(hub.store.job(*id).await?.map(|j| j.tenant)),
        Replay::Dead(_) => None,
    };
    let owner_tenant = owner
        .clone()
        .flatten()
        .map(|t| t.to_string())
        .or(dead_tenant);
    if let Some(owner) = owner
        && !owner.is_some_and(|t| principal.sees(&t))
        && principal != Principal::Admin
    {
        return Err(ApiError::NotFound(named));
    }
    let Some(done) = hub.store.replay(what).await? else {
        return Err(ApiError::NotFound(named));
    };
    let (action, target) = if named.is_empty() {
        ("replay.dead", "dead letters".to_owned())
    } else {
        ("replay", named.clone())
    };
    let mut entry =
        crate::store::AuditEntry::now(format!("api:{}", principal.actor()), action, target)
            .detail(format!("{} queued again", done.queued));
    entry.tenant = owner_tenant;
    crate::audit::record(&hub.store, entry);
    if done.queued > 0 {
        tracing::info!(
            queued = done.queued,
            "replay requested through the admin API"
        );
    }
    Ok(axum::Json(json!(done)).into_response())
}
