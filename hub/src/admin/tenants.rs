//! Tenants and what connectors keep for them: `GET /tenants`, `/tenants/{t}/records`,
//! `/tenants/{t}/events`, `GET /connectors`, and `POST /tenants/{t}/sync` (queue a connector
//! job now, e.g. Retell's `backfill_calls`).

use std::sync::Arc;

use axum::Extension;
use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use serde_json::json;
use utoipa::{IntoParams, ToSchema};

use super::page::{CursorScope, cut, next_link};
use super::{ApiError, page_size, visible_tenant};
use crate::auth::Principal;

use crate::clock::now_ms;
use crate::id::ConnectorId;
use crate::state::Hub;
use crate::store::{Disabled, EventRow, JobCount, NewJob, RecordFilter, RecordRow, Task};

/// A page of records.
#[derive(Serialize, ToSchema)]
pub(super) struct RecordsPage {
    /// Last changed first.
    records: Vec<RecordRow>,
    /// The next page's link; `null` on the last page.
    next: Option<String>,
}

/// A page of events.
#[derive(Serialize, ToSchema)]
pub(super) struct EventsPage {
    /// Newest first.
    events: Vec<EventRow>,
    /// The next page's link; `null` on the last page.
    next: Option<String>,
}

/// Jobs by state, and whether none is dead.
#[derive(Serialize, ToSchema)]
pub(super) struct Health {
    /// Nothing is dead-lettered.
    healthy: bool,
    /// Job counts by state (`queued`, `running`, `done`, `dead`).
    jobs: std::collections::BTreeMap<String, i64>,
}

/// One tenant.
#[derive(Serialize, ToSchema)]
pub(super) struct TenantView {
    id: String,
    name: String,
    /// The connectors it uses.
    connectors: Vec<String>,
    /// Each connector's health for this tenant.
    health: std::collections::BTreeMap<String, Health>,
}

/// The tenants the caller may see.
#[derive(Serialize, ToSchema)]
pub(super) struct TenantsList {
    tenants: Vec<TenantView>,
}

/// One connector: what it declares, and its jobs' health.
#[derive(Serialize, ToSchema)]
pub(super) struct ConnectorView {
    id: String,
    name: String,
    version: String,
    routes: Vec<String>,
    events: Vec<String>,
    actions: Vec<String>,
    jobs: Vec<String>,
    outbound_hosts: Vec<String>,
    health: Health,
}

/// The connectors.
#[derive(Serialize, ToSchema)]
pub(super) struct ConnectorsList {
    connectors: Vec<ConnectorView>,
}

/// One webhook endpoint of the tenant's app (never its secret).
#[derive(Serialize, ToSchema)]
pub(super) struct EndpointView {
    name: String,
    url: String,
    /// What it subscribes to.
    events: Vec<String>,
    /// Set once the app answered 410 Gone, until enabled again.
    disabled: Option<Disabled>,
    /// A previous secret still signs too.
    rotating: bool,
}

/// The tenant's endpoints.
#[derive(Serialize, ToSchema)]
pub(super) struct EndpointsList {
    endpoints: Vec<EndpointView>,
}

/// A queued sync job.
#[derive(Serialize, ToSchema)]
pub(super) struct Queued {
    /// Its id (`null`: an identical job was already queued).
    job: Option<i64>,
}

/// Job counts by state, `{"queued": n, "running": n, "dead": n, ...}`, for the rows that match.
fn health(counts: &[JobCount], keep: impl Fn(&JobCount) -> bool) -> Health {
    let mut jobs = std::collections::BTreeMap::new();
    for count in counts.iter().filter(|c| keep(c)) {
        *jobs.entry(count.state.as_str().to_string()).or_insert(0) += count.count;
    }
    let healthy = jobs.get("dead").copied().unwrap_or(0) == 0;
    Health { healthy, jobs }
}

/// `GET /api/v1/tenants`: the tenants the caller may see, with each connector's health.
#[utoipa::path(get, path = "/api/v1/tenants", tag = "tenants",
    responses((status = 200, body = TenantsList)))]
pub(super) async fn tenants(
    State(hub): State<Arc<Hub>>,
    Extension(principal): Extension<Principal>,
) -> Result<Response, ApiError> {
    let counts = hub.store.job_counts().await?;
    let list: Vec<_> = hub
        .directory
        .tenants()
        .filter(|(id, _)| principal.sees(id))
        .map(|(id, tenant)| TenantView {
            id: id.to_string(),
            name: tenant.name.clone(),
            connectors: tenant.connectors.keys().map(|c| c.to_string()).collect(),
            health: tenant
                .connectors
                .keys()
                .map(|c| {
                    let health = health(&counts, |n| n.tenant == *id && n.connector == *c);
                    (c.to_string(), health)
                })
                .collect(),
        })
        .collect();
    Ok(axum::Json(TenantsList { tenants: list }).into_response())
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(super) struct RecordQuery {
    /// Only this kind, e.g. `call`.
    kind: Option<String>,
    /// Only records of `kind` found by this lookup: `phone:+14155550100`, `email:ann@x.io`.
    lookup: Option<String>,
    /// At most this many (default 100, at most 500).
    limit: Option<usize>,
    /// From a `next` link.
    cursor: Option<String>,
}

/// `GET /api/v1/tenants/{t}/records?kind=&lookup=&limit=&cursor=`: last changed first.
#[utoipa::path(get, path = "/api/v1/tenants/{tenant}/records", tag = "tenants",
    params(("tenant" = String, Path), RecordQuery),
    responses((status = 200, body = RecordsPage), (status = 400, body = super::ErrorBody),
              (status = 404, body = super::ErrorBody)))]
pub(super) async fn records(
    State(hub): State<Arc<Hub>>,
    Extension(principal): Extension<Principal>,
    Path(tenant): Path<String>,
    Query(q): Query<RecordQuery>,
) -> Result<Response, ApiError> {
    let tenant = visible_tenant(&hub, &principal, &tenant)?;
    if q.lookup.is_some() && q.kind.is_none() {
        return Err(ApiError::BadRequest(
            "`lookup` needs `kind`: records are found by a lookup within one kind".into(),
        ));
    }
    let lookup = q.lookup.as_deref().map(written_as_stored);
    let scope = CursorScope::of(
        "records",
        &[Some(tenant.as_str()), q.kind.as_deref(), lookup.as_deref()],
    );
    let limit = page_size(q.limit, 100);
    let filter = RecordFilter {
        kind: q.kind.clone(),
        lookup,
        before: scope.after(q.cursor.as_deref())?,
        limit: limit + 1,
    };
    let path = format!("/tenants/{tenant}/records");
    let mut rows = hub.store.records(tenant, filter).await?;
    let next = cut(&mut rows, limit, |r| r.seq).map(|last| {
        let params = [
            ("kind", q.kind),
            ("lookup", q.lookup),
            ("limit", q.limit.map(|l| l.to_string())),
        ];
        next_link(&path, &params, &scope.cursor(last))
    });
    Ok(axum::Json(RecordsPage {
        records: rows,
        next,
    })
    .into_response())
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

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(super) struct EventQuery {
    /// At most this many (default 100, at most 500).
    limit: Option<usize>,
    /// From a `next` link.
    cursor: Option<String>,
}

/// `GET /api/v1/tenants/{t}/events?limit=&cursor=`: newest first.
#[utoipa::path(get, path = "/api/v1/tenants/{tenant}/events", tag = "tenants",
    params(("tenant" = String, Path), EventQuery),
    responses((status = 200, body = EventsPage), (status = 404, body = super::ErrorBody)))]
pub(super) async fn events(
    State(hub): State<Arc<Hub>>,
    Extension(principal): Extension<Principal>,
    Path(tenant): Path<String>,
    Query(q): Query<EventQuery>,
) -> Result<Response, ApiError> {
    let tenant = visible_tenant(&hub, &principal, &tenant)?;
    let scope = CursorScope::of("events", &[Some(tenant.as_str())]);
    let limit = page_size(q.limit, 100);
    let before = scope.after(q.cursor.as_deref())?;
    let path = format!("/tenants/{tenant}/events");
    let mut rows = hub.store.events(tenant, before, limit + 1).await?;
    let next = cut(&mut rows, limit, |r| r.id).map(|last| {
        let params = [("limit", q.limit.map(|l| l.to_string()))];
        next_link(&path, &params, &scope.cursor(last))
    });
    Ok(axum::Json(EventsPage { events: rows, next }).into_response())
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(super) struct AnalyticsQuery {
    /// Days back from today, today included (UTC; default 30, at most 366).
    days: Option<u32>,
    /// `json` (the default) or `csv` (one row per day, days without any as zeros).
    format: Option<String>,
}

/// `GET /api/v1/tenants/{t}/analytics?days=30[&format=csv]`: calls, emails and text messages
/// per day, from the tenant's records (the figures the console charts).
#[utoipa::path(get, path = "/api/v1/tenants/{tenant}/analytics", tag = "tenants",
    params(("tenant" = String, Path), AnalyticsQuery),
    responses((status = 200, body = crate::store::Analytics), (status = 404, body = super::ErrorBody)))]
pub(super) async fn analytics(
    State(hub): State<Arc<Hub>>,
    Extension(principal): Extension<Principal>,
    Path(tenant): Path<String>,
    Query(q): Query<AnalyticsQuery>,
) -> Result<Response, ApiError> {
    let tenant = visible_tenant(&hub, &principal, &tenant)?;
    let days = q.days.unwrap_or(30).clamp(1, 366);
    let figures = hub
        .store
        .analytics(tenant, crate::store::since_day(days))
        .await?;
    match q.format.as_deref() {
        None | Some("json") => Ok(axum::Json(figures).into_response()),
        Some("csv") => Ok((
            [(axum::http::header::CONTENT_TYPE, "text/csv; charset=utf-8")],
            figures.csv(&crate::store::window(days)),
        )
            .into_response()),
        Some(other) => Err(ApiError::BadRequest(format!(
            "`format`: `{other}` is neither json nor csv"
        ))),
    }
}

/// `GET /api/v1/connectors`: the connectors, what each declares, and its jobs' health: every
/// tenant's for the admin, the caller's own (and only the connectors it uses) for a tenant.
#[utoipa::path(get, path = "/api/v1/connectors", tag = "tenants",
    responses((status = 200, body = ConnectorsList)))]
pub(super) async fn connectors(
    State(hub): State<Arc<Hub>>,
    Extension(principal): Extension<Principal>,
) -> Result<Response, ApiError> {
    let counts = hub.store.job_counts().await?;
    let uses = |id: &ConnectorId| match &principal {
        Principal::Admin => true,
        Principal::Tenant { tenant, .. } => hub.directory.tenant_config(tenant, id).is_some(),
    };
    let list: Vec<_> = hub
        .runtime
        .connectors()
        .filter(|c| uses(&c.id))
        .map(|c| ConnectorView {
            id: c.id.to_string(),
            name: c.manifest.name.clone(),
            version: c.manifest.version.clone(),
            routes: c.manifest.routes.iter().map(|r| r.name.clone()).collect(),
            events: c.manifest.events.iter().map(|e| e.name.clone()).collect(),
            actions: c.manifest.actions.iter().map(|a| a.name.clone()).collect(),
            jobs: c.manifest.jobs.iter().map(|j| j.name.clone()).collect(),
            outbound_hosts: c
                .policy
                .allowed()
                .iter()
                .map(|o| o.as_str().to_string())
                .collect(),
            health: health(&counts, |n| {
                n.connector == c.id && principal.sees(&n.tenant)
            }),
        })
        .collect();
    Ok(axum::Json(ConnectorsList { connectors: list }).into_response())
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
#[utoipa::path(post, path = "/api/v1/tenants/{tenant}/sync", tag = "tenants",
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
    };
    let id = hub.store.enqueue(job).await?;
    Ok(axum::Json(Queued { job: id }).into_response())
}

/// `GET /api/v1/tenants/{t}/endpoints`: the tenant's webhook endpoints, what each subscribes
/// to, and whether it is disabled (after a `410 Gone`), never its secret.
#[utoipa::path(get, path = "/api/v1/tenants/{tenant}/endpoints", tag = "tenants",
    params(("tenant" = String, Path)),
    responses((status = 200, body = EndpointsList), (status = 404, body = super::ErrorBody)))]
pub(super) async fn endpoints(
    State(hub): State<Arc<Hub>>,
    Extension(principal): Extension<Principal>,
    Path(tenant): Path<String>,
) -> Result<Response, ApiError> {
    let tenant = visible_tenant(&hub, &principal, &tenant)?;
    let mut list = Vec::new();
    if let Some(config) = hub.config.tenants.get(&tenant) {
        for (name, e) in &config.endpoints {
            let disabled = hub.store.endpoint_disabled(&tenant, name.as_str()).await?;
            let events: Vec<String> = e
                .events
                .iter()
                .map(|p| match &p.connector {
                    None => "*".to_string(),
                    Some(c) => format!("{c}:{}{}", p.event, if p.prefix { "*" } else { "" }),
                })
                .collect();
            list.push(EndpointView {
                name: name.to_string(),
                url: e.url.to_string(),
                events,
                disabled,
                rotating: e.previous_secret.is_some(),
            });
        }
    }
    Ok(axum::Json(EndpointsList { endpoints: list }).into_response())
}

/// `POST /api/v1/tenants/{t}/endpoints/{name}/enable`: delivers to a disabled endpoint again
/// (its dead letters can then be replayed). A tenant token needs the `replay` scope.
#[utoipa::path(post, path = "/api/v1/tenants/{tenant}/endpoints/{endpoint}/enable", tag = "tenants",
    params(("tenant" = String, Path), ("endpoint" = String, Path)),
    responses((status = 200, body = EndpointsList), (status = 403, body = super::ErrorBody),
              (status = 404, body = super::ErrorBody)))]
pub(super) async fn enable_endpoint(
    State(hub): State<Arc<Hub>>,
    Extension(principal): Extension<Principal>,
    Path((tenant, endpoint)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    let tenant = visible_tenant(&hub, &principal, &tenant)?;
    if !principal.may_replay() {
        return Err(ApiError::Forbidden(
            "this token's scope is `read`: enabling an endpoint needs `replay`".into(),
        ));
    }
    let known = hub
        .config
        .tenants
        .get(&tenant)
        .is_some_and(|t| t.endpoints.keys().any(|n| n.as_str() == endpoint));
    if !known {
        return Err(ApiError::NotFound(format!("endpoint {endpoint}")));
    }
    hub.store
        .set_endpoint_disabled(&tenant, &endpoint, None)
        .await?;
    endpoints(State(hub), Extension(principal), Path(tenant.to_string())).await
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
