//! `GET /tenants` and `GET /connectors`: the tenants and connectors a token sees, each with its
//! health (job counts by state; unhealthy while anything is dead-lettered).

use std::sync::Arc;

use axum::Extension;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use utoipa::ToSchema;

use super::ApiError;
use crate::auth::Principal;

use crate::id::ConnectorId;
use crate::state::Hub;
use crate::store::JobCount;

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
    /// What the app can ask it to do (`POST /tenants/{t}/actions`).
    actions: Vec<ActionView>,
    jobs: Vec<String>,
    outbound_hosts: Vec<String>,
    health: Health,
}

/// One action a connector offers: its inputs and its outputs.
#[derive(Serialize, ToSchema)]
pub(super) struct ActionView {
    name: String,
    description: String,
    /// The capability operation it performs (`email:send`), if any.
    implements: Option<String>,
    inputs: Vec<FieldView>,
    outputs: Vec<FieldView>,
}

/// One input or output field.
#[derive(Serialize, ToSchema)]
pub(super) struct FieldView {
    name: String,
    required: bool,
    description: String,
}

impl ActionView {
    fn of(a: &crate::runtime::ActionDecl) -> ActionView {
        let fields = |f: &[crate::runtime::FieldDecl]| {
            f.iter()
                .map(|f| FieldView {
                    name: f.name.clone(),
                    required: f.required,
                    description: f.description.clone(),
                })
                .collect()
        };
        ActionView {
            name: a.name.clone(),
            description: a.description.clone(),
            implements: a.implements.clone(),
            inputs: fields(&a.inputs),
            outputs: fields(&a.outputs),
        }
    }
}

/// The connectors.
#[derive(Serialize, ToSchema)]
pub(super) struct ConnectorsList {
    connectors: Vec<ConnectorView>,
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
#[utoipa::path(get, path = "/tenants", tag = "tenants",
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

/// `GET /api/v1/connectors`: the connectors, what each declares, and its jobs' health: every
/// tenant's for the admin, the caller's own (and only the connectors it uses) for a tenant.
#[utoipa::path(get, path = "/connectors", tag = "tenants",
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
            actions: c.manifest.actions.iter().map(ActionView::of).collect(),
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
