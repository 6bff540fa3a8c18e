//! `POST /tenants/{t}/sync`: queue a connector job now (e.g. Retell's `backfill_calls`).

use std::sync::Arc;

use axum::Extension;
use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use serde_json::json;
use utoipa::ToSchema;

use super::{ApiError, visible_tenant};
use crate::auth::Principal;

use crate::clock::now_ms;
use crate::state::Hub;
use crate::store::{NewJob, Task};

/// A queued sync job.
#[derive(Serialize, ToSchema)]
pub(super) struct Queued {
    /// Its id (`null`: an identical job was already queued).
    job: Option<i64>,
}

/// The body of `POST /api/v1/tenants/{t}/sync`.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct SyncRequest {
    /// A connector the tenant uses, e.g. `retell`.
    connector: String,
    /// One of its declared jobs, e.g. `backfill_calls`.
    job: String,
    /// The job's input (default `{}`).
    #[serde(default)]
    input: Option<serde_json::Value>,
}

/// `POST /api/v1/tenants/{t}/sync` `{"connector", "job", "input"?}`: queues one of the
/// connector's declared jobs for the tenant now (a manual sync) -> `{"job": id}`. A tenant token
/// needs the `replay` scope.
#[utoipa::path(post, path = "/tenants/{tenant}/sync", tag = "tenants",
    params(("tenant" = String, Path)), request_body = SyncRequest,
    responses((status = 200, body = Queued), (status = 403, body = super::ErrorBody),
              (status = 404, body = super::ErrorBody)))]
pub(super) async fn sync(
    State(hub): State<Arc<Hub>>,
    Extension(principal): Extension<Principal>,
    Path(tenant): Path<String>,
    axum::Json(body): axum::Json<SyncRequest>,
) -> Result<Response, ApiError> {
    let tenant = visible_tenant(&hub, &principal, &tenant)?;
    if !principal.may_replay() {
        return Err(ApiError::Forbidden(
            "this token's scope is `read`: sync needs `replay`".into(),
        ));
    }
    let connector = hub
        .directory
        .tenant(tenant.as_str())
        .and_then(|(_, t)| t.connectors.get_key_value(body.connector.as_str()))
        .map(|(id, _)| id.clone())
        .ok_or_else(|| {
            ApiError::NotFound(format!("connector {} of this tenant", body.connector))
        })?;
    let declared = hub
        .runtime
        .connector(connector.as_str())
        .is_some_and(|c| c.manifest.jobs.iter().any(|j| j.name == body.job));
    if !declared {
        return Err(ApiError::NotFound(format!(
            "job {} of connector {connector}",
            body.job
        )));
    }
    let input = body.input.unwrap_or_else(|| json!({})).to_string();
    let job = NewJob {
        tenant,
        connector,
        task: Task::Job {
            name: body.job,
            input,
        },
        run_at_ms: now_ms(),
        idempotency_key: None,
        trace: None,
    };
    let what = match &job.task {
        Task::Job { name, .. } => format!("{}.{name}", job.connector),
        _ => job.connector.to_string(),
    };
    let tenant = job.tenant.clone();
    let id = hub.store.enqueue(job).await?;
    let entry = crate::store::AuditEntry::now(format!("api:{}", principal.actor()), "sync", what)
        .tenant(tenant)
        .detail(id.map_or("already queued".into(), |id| format!("job {id}")));
    crate::audit::record(&hub.store, entry);
    Ok(axum::Json(Queued { job: id }).into_response())
}
