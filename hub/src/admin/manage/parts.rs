//! The parts of a tenant its own `manage` token may change: its credentials (write-only), its
//! webhook endpoints, and the provider-side registration of the hub's webhook URLs.

use std::sync::Arc;

use axum::Extension;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{Value, json};
use utoipa::ToSchema;

use super::json::{put_tenant, secrets_of, tenant_json};
use super::{applied, if_match, master_key, refused};
use crate::admin::ApiError;
use crate::auth::Principal;
use crate::reload::{Change, Current};
use crate::secrets::{self, Place};

/// A credential's new value.
#[derive(Deserialize, ToSchema)]
pub(in crate::admin) struct CredentialValue {
    /// The plaintext, taken once and sealed in the hub.
    value: String,
}

impl Drop for CredentialValue {
    fn drop(&mut self) {
        zeroize::Zeroize::zeroize(&mut self.value);
    }
}

/// `PUT /api/v1/tenants/{tenant}/connectors/{connector}/credentials/{field}`: sets a credential
/// (admin, or the tenant's `manage` token). Write-only: the answer says it is set and its last 4
/// characters.
#[utoipa::path(put, path = "/tenants/{tenant}/connectors/{connector}/credentials/{field}", tag = "config",
    params(("tenant" = String, Path), ("connector" = String, Path), ("field" = String, Path)),
    request_body = CredentialValue,
    responses((status = 200, body = Object), (status = 400, body = crate::admin::ErrorBody), (status = 403, body = crate::admin::ErrorBody),
        (status = 404, body = crate::admin::ErrorBody), (status = 412, body = crate::admin::ErrorBody), (status = 422, body = crate::admin::ErrorBody)),
    security(("bearer" = [])))]
pub(in crate::admin) async fn set_credential(
    State(current): State<Arc<Current>>,
    Extension(principal): Extension<Principal>,
    Path((tenant, connector, field)): Path<(String, String, String)>,
    headers: HeaderMap,
    axum::Json(value): axum::Json<CredentialValue>,
) -> Result<Response, ApiError> {
    let hub = current.hub();
    let tenant = crate::admin::visible_tenant(&hub, &principal, &tenant)?;
    if !principal.may_manage(&tenant) {
        return Err(ApiError::Forbidden(
            "setting a credential takes the admin token or the tenant's `manage` token".into(),
        ));
    }
    if !hub
        .config
        .tenants
        .get(&tenant)
        .is_some_and(|t| t.connectors.keys().any(|c| c.as_str() == connector))
    {
        return Err(ApiError::NotFound(format!(
            "connector {connector} of tenant {tenant}"
        )));
    }
    let plain = value.value.trim();
    if plain.is_empty() {
        return Err(ApiError::BadRequest(
            "`value` is empty; nothing was changed".into(),
        ));
    }
    let last4: String = {
        let chars: Vec<char> = plain.chars().collect();
        if chars.len() >= 12 {
            chars[chars.len() - 4..].iter().collect()
        } else {
            String::new()
        }
    };
    let change = Change::new(
        format!("api:{}", principal.actor()),
        format!("credential {connector}.{field} of tenant {tenant} set"),
    )
    .tenant(&tenant);
    let place = Place::Tenant {
        tenant: tenant.to_string(),
        connector: connector.clone(),
        field: field.clone(),
    };
    let result = current
        .change(if_match(&headers)?, change, |doc| {
            let key = master_key(&current).map_err(|e| format!("{e:?}"))?;
            let sealed = secrets::seal(&key, &place, plain.as_bytes());
            let path = place.path();
            let mut item = doc.as_item_mut();
            for step in &path[..path.len() - 1] {
                item = item
                    .as_table_like_mut()
                    .ok_or_else(|| format!("{place}: `{step}` is not a table"))?
                    .entry(step)
                    .or_insert(toml_edit::table());
            }
            item.as_table_like_mut()
                .ok_or_else(|| format!("{place}: not a table"))?
                .insert(&field, toml_edit::value(sealed));
            Ok(())
        })
        .await;
    if result.is_ok() {
        let entry = crate::store::AuditEntry::now(
            format!("api:{}", principal.actor()),
            "credential.set",
            format!("{connector}.{field}"),
        )
        .tenant(&tenant)
        .detail("set through the API (its value is not kept here)");
        crate::audit::record(&hub.store, entry);
    }
    Ok(match result {
        Ok((reloaded, ())) => axum::Json(json!({
            "set": true, "last4": (!last4.is_empty()).then_some(last4), "version": reloaded.version,
        }))
        .into_response(),
        Err(r) => refused(r),
    })
}

/// `PUT /api/v1/tenants/{tenant}/endpoints/{endpoint}`: creates or replaces one of the tenant's
/// webhook endpoints from JSON shaped like its `hub.toml` table (`url`, `events`, ...; admin, or
/// the tenant's `manage` token, which may not set `allow_private`). Its signing secret is kept,
/// or made for a new endpoint and returned this once.
#[utoipa::path(put, path = "/tenants/{tenant}/endpoints/{endpoint}", tag = "config",
    params(("tenant" = String, Path), ("endpoint" = String, Path)), request_body = Object,
    responses((status = 200, body = Object), (status = 201, body = Object), (status = 400, body = crate::admin::ErrorBody),
        (status = 403, body = crate::admin::ErrorBody), (status = 404, body = crate::admin::ErrorBody),
        (status = 412, body = crate::admin::ErrorBody), (status = 422, body = crate::admin::ErrorBody)),
    security(("bearer" = [])))]
pub(in crate::admin) async fn put_endpoint(
    State(current): State<Arc<Current>>,
    Extension(principal): Extension<Principal>,
    Path((tenant, endpoint)): Path<(String, String)>,
    headers: HeaderMap,
    axum::Json(mut body): axum::Json<Value>,
) -> Result<Response, ApiError> {
    let hub = current.hub();
    let tenant = crate::admin::visible_tenant(&hub, &principal, &tenant)?;
    if !principal.may_manage(&tenant) {
        return Err(ApiError::Forbidden(
            "setting an endpoint takes the admin token or the tenant's `manage` token".into(),
        ));
    }
    let Some(fields) = body.as_object_mut() else {
        return Err(ApiError::BadRequest("an endpoint is a JSON object".into()));
    };
    for secret in ["secret", "previous_secret", "previous_until"] {
        if fields.contains_key(secret) {
            return Err(ApiError::BadRequest(format!(
                "`{secret}`: the hub makes an endpoint's secret (leave it out)"
            )));
        }
    }
    if principal != Principal::Admin && fields.contains_key("allow_private") {
        return Err(ApiError::Forbidden(
            "`allow_private` is the operator's: only the admin token may set it".into(),
        ));
    }
    let existed = hub
        .config
        .tenants
        .get(&tenant)
        .is_some_and(|t| t.endpoints.keys().any(|n| n.as_str() == endpoint));
    let change = Change::new(
        format!("api:{}", principal.actor()),
        format!(
            "endpoint {endpoint} of tenant {tenant} {}",
            if existed { "replaced" } else { "created" }
        ),
    )
    .tenant(&tenant);
    let result = current
        .change(if_match(&headers)?, change, |doc| {
            let key = master_key(&current).map_err(|e| format!("{e:?}"))?;
            let old = tenant_json(doc, tenant.as_str()).ok_or("the tenant is gone")?;
            let mut new = old.clone();
            let slot = new
                .as_object_mut()
                .ok_or("the tenant is not a table")?
                .entry("endpoints")
                .or_insert_with(|| json!({}));
            slot.as_object_mut()
                .ok_or("`endpoints` is not a table")?
                .insert(endpoint.clone(), body);
            let generated = secrets_of(tenant.as_str(), &mut new, Some(&old), &key)?;
            put_tenant(doc, tenant.as_str(), &new)?;
            Ok(generated)
        })
        .await;
    Ok(match result {
        Ok((reloaded, generated)) => applied(&current, &principal, &reloaded, generated, !existed),
        Err(r) => refused(r),
    })
}

/// `POST /api/v1/tenants/{tenant}/connectors/{connector}/register`: queues the connector's
/// `register_webhooks` job (admin, or the tenant's `manage` token), as `hub connect` does: the
/// hub registers its own webhook URL at the provider and keeps the signing secret it answers.
/// `202` when queued; `422` when the connector has no such job.
#[utoipa::path(post, path = "/tenants/{tenant}/connectors/{connector}/register", tag = "config",
    params(("tenant" = String, Path), ("connector" = String, Path)),
    responses((status = 202, body = Object), (status = 403, body = crate::admin::ErrorBody), (status = 404, body = crate::admin::ErrorBody),
        (status = 422, body = crate::admin::ErrorBody)),
    security(("bearer" = [])))]
pub(in crate::admin) async fn register(
    State(current): State<Arc<Current>>,
    Extension(principal): Extension<Principal>,
    Path((tenant, connector)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    let hub = current.hub();
    let tenant = crate::admin::visible_tenant(&hub, &principal, &tenant)?;
    if !principal.may_manage(&tenant) {
        return Err(ApiError::Forbidden(
            "registering webhooks takes the admin token or the tenant's `manage` token".into(),
        ));
    }
    let Some(connector) = hub
        .config
        .tenants
        .get(&tenant)
        .and_then(|t| t.connectors.keys().find(|c| c.as_str() == connector))
        .cloned()
    else {
        return Err(ApiError::NotFound(format!(
            "connector {connector} of tenant {tenant}"
        )));
    };
    let queued = crate::connections::registration::queue(
        &hub,
        &tenant,
        &connector,
        crate::connections::registration::REGISTER,
    )
    .await
    .map_err(|e| ApiError::Internal(anyhow::anyhow!(e)))?;
    if !queued {
        return Ok((
            StatusCode::UNPROCESSABLE_ENTITY,
            axum::Json(json!({ "error": format!(
                "connector {connector} registers no webhooks itself (it declares no `register_webhooks` job): \
                 set its webhook URL at the provider by hand") })),
        )
            .into_response());
    }
    Ok((StatusCode::ACCEPTED, axum::Json(json!({ "queued": true }))).into_response())
}
