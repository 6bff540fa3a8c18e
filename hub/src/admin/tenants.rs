//! Tenants and what connectors keep for them: `GET /tenants`, `/tenants/{t}/records`,
//! `/tenants/{t}/events`, `GET /connectors`, and `POST /tenants/{t}/sync` (queue a connector
//! job now, e.g. Retell's `backfill_calls`).

use std::sync::Arc;

use axum::Extension;
use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::json;

use super::page::{Scope, next_link};
use super::{ApiError, page_size, visible_tenant};
use crate::auth::Principal;
use crate::config::ConnectorId;
use crate::state::Hub;
use crate::store::{JobCount, NewJob, RecordFilter, Task, now_ms};

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

/// `GET /api/v1/tenants`: the tenants the caller may see, with each connector's health.
pub(super) async fn tenants(
    State(hub): State<Arc<Hub>>,
    Extension(principal): Extension<Principal>,
) -> Result<Response, ApiError> {
    let counts = hub.store.job_counts().await?;
    let list: Vec<_> = hub
        .directory
        .tenants()
        .filter(|(id, _)| principal.sees(id))
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
pub(super) struct RecordQuery {
    kind: Option<String>,
    lookup: Option<String>,
    limit: Option<usize>,
    cursor: Option<String>,
}

/// `GET /api/v1/tenants/{t}/records?kind=&lookup=&limit=&cursor=`: last changed first.
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
    let scope = Scope::of(
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
    let next = (rows.len() > limit).then(|| {
        rows.truncate(limit);
        let last = rows.last().map_or(0, |r| r.seq);
        let params = [
            ("kind", q.kind),
            ("lookup", q.lookup),
            ("limit", q.limit.map(|l| l.to_string())),
        ];
        next_link(&path, &params, &scope.cursor(last))
    });
    Ok(axum::Json(json!({ "records": rows, "next": next })).into_response())
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

#[derive(Deserialize)]
pub(super) struct EventQuery {
    limit: Option<usize>,
    cursor: Option<String>,
}

/// `GET /api/v1/tenants/{t}/events?limit=&cursor=`: newest first.
pub(super) async fn events(
    State(hub): State<Arc<Hub>>,
    Extension(principal): Extension<Principal>,
    Path(tenant): Path<String>,
    Query(q): Query<EventQuery>,
) -> Result<Response, ApiError> {
    let tenant = visible_tenant(&hub, &principal, &tenant)?;
    let scope = Scope::of("events", &[Some(tenant.as_str())]);
    let limit = page_size(q.limit, 100);
    let before = scope.after(q.cursor.as_deref())?;
    let path = format!("/tenants/{tenant}/events");
    let mut rows = hub.store.events(tenant, before, limit + 1).await?;
    let next = (rows.len() > limit).then(|| {
        rows.truncate(limit);
        let last = rows.last().map_or(0, |r| r.id);
        let params = [("limit", q.limit.map(|l| l.to_string()))];
        next_link(&path, &params, &scope.cursor(last))
    });
    Ok(axum::Json(json!({ "events": rows, "next": next })).into_response())
}

/// `GET /api/v1/connectors`: the connectors, what each declares, and its jobs' health: every
/// tenant's for the admin, the caller's own (and only the connectors it uses) for a tenant.
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
                "health": health(&counts, |n| n.connector == c.id && principal.sees(&n.tenant)),
            })
        })
        .collect();
    Ok(axum::Json(json!({ "connectors": list })).into_response())
}

/// The body of `POST /api/v1/tenants/{t}/sync`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct SyncRequest {
    connector: String,
    job: String,
    #[serde(default)]
    input: Option<serde_json::Value>,
}

/// `POST /api/v1/tenants/{t}/sync` `{"connector", "job", "input"?}`: queues one of the
/// connector's declared jobs for the tenant now (a manual sync) -> `{"job": id}`. A tenant token
/// needs the `replay` scope.
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
    Ok(axum::Json(json!({ "job": id })).into_response())
}

/// `GET /api/v1/tenants/{t}/endpoints`: the tenant's webhook endpoints, what each subscribes
/// to, and whether it is disabled (after a `410 Gone`), never its secret.
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
            list.push(json!({
                "name": name,
                "url": e.url.as_str(),
                "events": events,
                "disabled": disabled,
                "rotating": e.previous_secret.is_some(),
            }));
        }
    }
    Ok(axum::Json(json!({ "endpoints": list })).into_response())
}

/// `POST /api/v1/tenants/{t}/endpoints/{name}/enable`: delivers to a disabled endpoint again
/// (its dead letters can then be replayed). A tenant token needs the `replay` scope.
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
    Ok(axum::Json(json!({ "endpoint": endpoint, "disabled": null })).into_response())
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
