//! `/tenants/{t}/connections`: a tenant's connected accounts (the OAuth2 credentials the host
//! holds for its connectors): their state, a one-time consent link to connect one, and a
//! disconnect. The work is `crate::connections`'; here, HTTP and who may.

use std::sync::Arc;

use axum::Extension;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::{ApiError, visible_tenant};
use crate::auth::Principal;
use crate::connections::consent::{self, Link, Refused};
use crate::id::{ConnectorId, TenantId};
use crate::state::Hub;
use crate::store::ConnectionKey;

/// One OAuth2 credential of one of the tenant's connectors.
#[derive(Serialize, ToSchema)]
pub(super) struct ConnectionState {
    /// The connector.
    connector: String,
    /// The OAuth2 credential.
    credential: String,
    /// How the host obtains its token (`authorization_code`, `refresh_token`, `jwt_bearer`,
    /// `client_credentials`).
    grant: String,
    /// `connected`, `needs_reconnect` or `not_connected`.
    status: String,
    /// Why it needs reconnecting.
    failed: Option<String>,
    /// Since when (ms).
    failed_at_ms: Option<i64>,
    /// When the current access token expires (ms).
    expires_at_ms: Option<i64>,
    /// Tokens minted so far.
    refreshes: i64,
}

/// The tenant of the path, if the caller may manage it.
fn managed_tenant(hub: &Hub, principal: &Principal, tenant: &str) -> Result<TenantId, ApiError> {
    let id = visible_tenant(hub, principal, tenant)?;
    if !principal.may_manage(&id) {
        return Err(ApiError::Forbidden(
            "connecting accounts takes the admin token or a tenant token with the `manage` scope"
                .into(),
        ));
    }
    Ok(id)
}

/// `GET /tenants/{t}/connections`.
#[utoipa::path(get, path = "/tenants/{tenant}/connections", tag = "connections",
    params(("tenant" = String, Path)),
    responses((status = 200, body = Vec<ConnectionState>), (status = 404, body = super::ErrorBody)))]
pub(super) async fn list(
    State(hub): State<Arc<Hub>>,
    Extension(principal): Extension<Principal>,
    Path(tenant): Path<String>,
) -> Result<axum::Json<Vec<ConnectionState>>, ApiError> {
    let tenant = visible_tenant(&hub, &principal, &tenant)?;
    let stored = hub
        .store
        .connections(tenant.clone())
        .await
        .map_err(|e| ApiError::Internal(e.into()))?;
    Ok(axum::Json(states(&hub, &tenant, &stored)))
}

/// A push channel one of the tenant's connectors holds (Google Calendar's watch channels).
#[derive(Serialize, ToSchema)]
pub(super) struct ChannelState {
    /// The connector.
    connector: String,
    /// The channel as held (its token is never shown: the hub keeps only its digest).
    #[serde(flatten)]
    channel: crate::store::HeldChannel,
    /// Whether the provider stopped pushing on it (past its expiry).
    expired: bool,
}

/// `GET /tenants/{t}/channels`: the push channels the tenant's connectors hold, so an operator
/// sees what a provider pushes to and until when.
#[utoipa::path(get, path = "/tenants/{tenant}/channels", tag = "connections",
    params(("tenant" = String, Path)),
    responses((status = 200, body = Vec<ChannelState>), (status = 404, body = super::ErrorBody)))]
pub(super) async fn channels(
    State(hub): State<Arc<Hub>>,
    Extension(principal): Extension<Principal>,
    Path(tenant): Path<String>,
) -> Result<axum::Json<Vec<ChannelState>>, ApiError> {
    let tenant = visible_tenant(&hub, &principal, &tenant)?;
    let connectors: Vec<ConnectorId> = hub
        .config
        .tenants
        .get(&tenant)
        .map(|t| t.connectors.keys().cloned().collect())
        .unwrap_or_default();
    let now = crate::clock::now_ms();
    let mut out = Vec::new();
    for connector in connectors {
        let held = hub
            .store
            .channels(tenant.clone(), connector.clone())
            .await
            .map_err(|e| ApiError::Internal(e.into()))?;
        out.extend(held.into_iter().map(|channel| ChannelState {
            connector: connector.to_string(),
            expired: channel.expires_at_ms > 0 && channel.expires_at_ms < now,
            channel,
        }));
    }
    Ok(axum::Json(out))
}

/// Each configured OAuth2 credential of the tenant with what the store says of it.
pub fn states_of(
    hub: &Hub,
    tenant: &TenantId,
    stored: &[crate::store::ConnectionRow],
) -> Vec<serde_json::Value> {
    states(hub, tenant, stored)
        .into_iter()
        .filter_map(|s| serde_json::to_value(s).ok())
        .collect()
}

fn states(
    hub: &Hub,
    tenant: &TenantId,
    stored: &[crate::store::ConnectionRow],
) -> Vec<ConnectionState> {
    let Some(t) = hub.config.tenants.get(tenant) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for (connector, tc) in &t.connectors {
        for (name, setting) in &tc.oauth {
            let row = stored
                .iter()
                .find(|r| &r.connector == connector && &r.credential == name);
            out.push(ConnectionState {
                connector: connector.to_string(),
                credential: name.clone(),
                grant: setting.grant.as_str().to_string(),
                status: consent::status(row).to_string(),
                failed: row.and_then(|r| r.failed.clone()),
                failed_at_ms: row.and_then(|r| r.failed_at_ms),
                expires_at_ms: row.map(|r| r.expires_at_ms).filter(|e| *e > 0),
                refreshes: row.map_or(0, |r| r.refreshes),
            });
        }
    }
    out
}

/// The body of `POST /tenants/{t}/connections/{connector}` (all optional).
#[derive(Deserialize, ToSchema, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct ConnectRequest {
    /// The OAuth2 credential, when the connector has several.
    credential: Option<String>,
    /// Where to send the user when done: a URL under one of the tenant's allowed `return_to`.
    return_to: Option<String>,
}

/// `POST /tenants/{t}/connections/{connector}`: a one-time consent link.
#[utoipa::path(post, path = "/tenants/{tenant}/connections/{connector}", tag = "connections",
    params(("tenant" = String, Path), ("connector" = String, Path)),
    request_body(content = ConnectRequest, description = "Optional"),
    responses((status = 201, body = Link, description = "Open `url` in a browser, once, within 15 minutes"),
              (status = 400, body = super::ErrorBody), (status = 403, body = super::ErrorBody),
              (status = 404, body = super::ErrorBody)))]
pub(super) async fn connect(
    State(hub): State<Arc<Hub>>,
    Extension(principal): Extension<Principal>,
    Path((tenant, connector)): Path<(String, String)>,
    body: axum::body::Bytes,
) -> Result<Response, ApiError> {
    let tenant = managed_tenant(&hub, &principal, &tenant)?;
    let request: ConnectRequest = if body.iter().all(u8::is_ascii_whitespace) {
        ConnectRequest::default()
    } else {
        serde_json::from_slice(&body)
            .map_err(|e| ApiError::BadRequest(format!("the body is not a connect request: {e}")))?
    };
    let connector: ConnectorId = connector
        .parse()
        .map_err(|_| ApiError::NotFound(format!("connector {connector}")))?;
    let by = match &principal {
        Principal::Admin => "admin".to_string(),
        Principal::Tenant { name, .. } => format!("token {name}"),
    };
    let link = consent::link(
        &hub,
        &tenant,
        &connector,
        request.credential.as_deref(),
        request.return_to.as_deref(),
        &by,
    )
    .await
    .map_err(|e| match e {
        Refused::NotFound(m) => ApiError::BadRequest(m),
        Refused::Invalid(m) => ApiError::BadRequest(m),
    })?;
    Ok((StatusCode::CREATED, axum::Json(link)).into_response())
}

/// `DELETE /tenants/{t}/connections/{connector}/{credential}`: forgets the tokens the hub
/// holds (and revokes the grant at the provider where it has a revocation endpoint).
#[utoipa::path(delete, path = "/tenants/{tenant}/connections/{connector}/{credential}", tag = "connections",
    params(("tenant" = String, Path), ("connector" = String, Path), ("credential" = String, Path)),
    responses((status = 200, description = "Disconnected"), (status = 403, body = super::ErrorBody),
              (status = 404, body = super::ErrorBody)))]
pub(super) async fn disconnect(
    State(hub): State<Arc<Hub>>,
    Extension(principal): Extension<Principal>,
    Path((tenant, connector, credential)): Path<(String, String, String)>,
) -> Result<Response, ApiError> {
    let tenant = managed_tenant(&hub, &principal, &tenant)?;
    let connector: ConnectorId = connector
        .parse()
        .map_err(|_| ApiError::NotFound(format!("connector {connector}")))?;
    let key = ConnectionKey {
        tenant,
        connector,
        credential,
    };
    if hub.connections.setting(&key).is_none() {
        return Err(ApiError::NotFound(format!("connection {key}")));
    }
    let revoked = hub
        .connections
        .disconnect(&hub, &key)
        .await
        .map_err(|e| ApiError::Internal(anyhow::anyhow!(e)))?;
    // And the provider's webhooks the hub registered for it, where the connector does that.
    let registration = crate::connections::registration::UNREGISTER;
    if let Err(e) =
        crate::connections::registration::queue(&hub, &key.tenant, &key.connector, registration)
            .await
    {
        tracing::warn!(tenant = %key.tenant, connector = %key.connector, "cannot queue the webhook removal: {e}");
    }
    Ok(
        axum::Json(serde_json::json!({ "disconnected": true, "revoked_at_provider": revoked }))
            .into_response(),
    )
}
