//! `GET /tenants/{t}/endpoints` and `POST .../endpoints/{name}/enable`: a tenant's webhook
//! endpoints, their state, and re-enabling one a `410 Gone` disabled.

use std::sync::Arc;

use axum::Extension;
use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use utoipa::ToSchema;

use super::{ApiError, visible_tenant};
use crate::auth::Principal;

use crate::state::Hub;
use crate::store::Disabled;

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

/// `GET /api/v1/tenants/{t}/endpoints`: the tenant's webhook endpoints, what each subscribes
/// to, and whether it is disabled (after a `410 Gone`), never its secret.
#[utoipa::path(get, path = "/tenants/{tenant}/endpoints", tag = "tenants",
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
#[utoipa::path(post, path = "/tenants/{tenant}/endpoints/{endpoint}/enable", tag = "tenants",
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
    hub.alerts
        .clear(&crate::alerts::Cause::endpoint_disabled(&tenant, &endpoint));
    endpoints(State(hub), Extension(principal), Path(tenant.to_string())).await
}
