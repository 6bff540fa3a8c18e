//! Tenants through the API: each change an edit of the running config, checked as `hub check`
//! checks the file and applied as a new config version (see [`crate::reload::Refused`]).
//!
//! - `PUT /admin/tenants/{t}` (admin): creates or replaces a tenant from JSON shaped like its
//!   `hub.toml` table, with a `name`. Credentials may be given as plaintext: they are sealed
//!   here and never returned (as with the write-only credential route below); a replaced tenant
//!   keeps the credentials, API tokens and endpoint secrets of what it still declares. An API
//!   token or endpoint declared without its secret gets a new one, returned this once (a
//!   plaintext token or secret is refused: the hub makes them).
//! - `PATCH /admin/tenants/{t}` (admin): a JSON merge patch (RFC 7386) on that table.
//! - `DELETE /admin/tenants/{t}` (admin): its URLs answer 404 at once; its data stays until
//!   retention prunes it.
//! - `PUT /tenants/{t}/connectors/{c}/credentials/{field}` (admin, or the tenant's `manage`
//!   token): takes the plaintext once, seals it in the hub; the answer says "set" and its last 4
//!   characters, never more.
//! - `PUT /tenants/{t}/endpoints/{name}` (admin, or `manage`): the tenant's webhook endpoint.
//!
//! `If-Match: <version>` makes a change on that config version only (412 when it is no longer
//! the newest); without it, on the version this hub runs.

use std::sync::Arc;

use axum::Extension;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value, json};

use super::ApiError;
use crate::auth::Principal;
use crate::id::TenantId;
use crate::reload::{Change, Current, Refused};
use crate::secrets::MasterKey;
use json::{merge, put_tenant, secrets_of, tenant_json};

mod json;
pub(super) mod parts;

/// The answer to a refused change.
pub(super) fn refused(r: Refused) -> Response {
    match r {
        Refused::Stale { made_on, newest } => (
            StatusCode::PRECONDITION_FAILED,
            axum::Json(json!({ "error": format!(
                "the change was made on config version {made_on}, and version {newest} is newer: \
                 read the tenant again and make it on {newest} (If-Match: {newest})"),
                "newest": newest })),
        )
            .into_response(),
        Refused::Invalid(problems) => (
            StatusCode::UNPROCESSABLE_ENTITY,
            axum::Json(json!({
                "error": format!("the change does not check; nothing was applied: {}",
                    problems.iter().map(|p| p.message.as_str()).collect::<Vec<_>>().join("; ")),
                "problems": problems,
            })),
        )
            .into_response(),
        Refused::Bad(why) => ApiError::BadRequest(why).into_response(),
        Refused::Failed(why) => (
            StatusCode::SERVICE_UNAVAILABLE,
            axum::Json(json!({ "error": why })),
        )
            .into_response(),
    }
}

/// `If-Match: 7` (or `"7"`), if given.
pub(super) fn if_match(headers: &HeaderMap) -> Result<Option<i64>, ApiError> {
    let Some(value) = headers.get(axum::http::header::IF_MATCH) else {
        return Ok(None);
    };
    value
        .to_str()
        .ok()
        .map(|v| v.trim().trim_matches('"'))
        .and_then(|v| v.parse().ok())
        .map(Some)
        .ok_or_else(|| ApiError::BadRequest("If-Match: expected a config version number".into()))
}

fn admin(principal: &Principal) -> Result<(), ApiError> {
    match principal {
        Principal::Admin => Ok(()),
        Principal::Tenant { .. } => Err(ApiError::Forbidden(
            "only the admin token may create, change or remove tenants".into(),
        )),
    }
}

fn tenant_id(tenant: &str) -> Result<TenantId, ApiError> {
    tenant
        .parse()
        .map_err(|e| ApiError::BadRequest(format!("tenant `{tenant}`: {e}")))
}

/// The master key, to seal what the API is given or generates.
pub(super) fn master_key(current: &Current) -> Result<MasterKey, Refused> {
    let env = std::env::var("HUB_MASTER_KEY").ok();
    let hub = current.hub();
    MasterKey::load(env.as_deref(), hub.config.server.master_key_file.as_deref())
        .map_err(|e| Refused::Failed(format!("the master key cannot be loaded: {e}")))
}

/// What a tenant change answers: the version now run, and the secrets generated (this once),
/// each also in the audit trail (by name, never the value).
pub(super) fn applied(
    current: &Current,
    principal: &Principal,
    reloaded: &crate::reload::Reloaded,
    generated: Vec<(String, String)>,
    created: bool,
) -> Response {
    let store = current.hub().store.clone();
    for (path, _) in &generated {
        let tenant = path.split('.').nth(1).unwrap_or_default();
        let action = if path.contains(".api_tokens.") {
            "token.created"
        } else {
            "endpoint_secret.created"
        };
        let entry = crate::store::AuditEntry::now(
            format!("api:{}", principal.actor()),
            action,
            path.clone(),
        )
        .tenant(tenant);
        crate::audit::record(&store, entry);
    }
    let status = if created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    let generated: Map<String, Value> = generated
        .into_iter()
        .map(|(k, v)| (k, Value::String(v)))
        .collect();
    (
        status,
        axum::Json(json!({ "version": reloaded.version, "generated": generated })),
    )
        .into_response()
}

/// `PUT /api/v1/admin/tenants/{tenant}`: creates or replaces the tenant (see the module docs).
#[utoipa::path(put, path = "/admin/tenants/{tenant}", tag = "config",
    params(("tenant" = String, Path)), request_body = Object,
    responses((status = 200, body = Object), (status = 201, body = Object), (status = 400, body = crate::admin::ErrorBody),
        (status = 403, body = crate::admin::ErrorBody), (status = 412, body = crate::admin::ErrorBody), (status = 422, body = crate::admin::ErrorBody)),
    security(("bearer" = [])))]
pub(super) async fn put_tenant_handler(
    State(current): State<Arc<Current>>,
    Extension(principal): Extension<Principal>,
    Path(tenant): Path<String>,
    headers: HeaderMap,
    axum::Json(body): axum::Json<Value>,
) -> Result<Response, ApiError> {
    admin(&principal)?;
    let tenant = tenant_id(&tenant)?;
    if !body.get("name").is_some_and(Value::is_string) {
        return Ok(refused(Refused::Invalid(vec![crate::reload::Problem {
            field: format!("tenants.{tenant}.name"),
            message: "a tenant created or replaced through the API has a `name` (a string)".into(),
        }])));
    }
    let existed = current.hub().config.tenants.contains_key(&tenant);
    let change = Change::new(
        "api:admin",
        format!(
            "tenant {tenant} {}",
            if existed { "replaced" } else { "created" }
        ),
    )
    .tenant(&tenant);
    let result = current
        .change(if_match(&headers)?, change, |doc| {
            let key = master_key(&current).map_err(|e| format!("{e:?}"))?;
            let old = tenant_json(doc, tenant.as_str());
            let mut new = body;
            let generated = secrets_of(tenant.as_str(), &mut new, old.as_ref(), &key)?;
            put_tenant(doc, tenant.as_str(), &new)?;
            Ok(generated)
        })
        .await;
    Ok(match result {
        Ok((reloaded, generated)) => applied(&current, &principal, &reloaded, generated, !existed),
        Err(r) => refused(r),
    })
}

/// `PATCH /api/v1/admin/tenants/{tenant}`: a JSON merge patch on the tenant's table (`null`
/// removes a key).
#[utoipa::path(patch, path = "/admin/tenants/{tenant}", tag = "config",
    params(("tenant" = String, Path)), request_body = Object,
    responses((status = 200, body = Object), (status = 400, body = crate::admin::ErrorBody), (status = 403, body = crate::admin::ErrorBody),
        (status = 404, body = crate::admin::ErrorBody), (status = 412, body = crate::admin::ErrorBody), (status = 422, body = crate::admin::ErrorBody)),
    security(("bearer" = [])))]
pub(super) async fn patch_tenant(
    State(current): State<Arc<Current>>,
    Extension(principal): Extension<Principal>,
    Path(tenant): Path<String>,
    headers: HeaderMap,
    axum::Json(patch): axum::Json<Value>,
) -> Result<Response, ApiError> {
    admin(&principal)?;
    let tenant = tenant_id(&tenant)?;
    if !current.hub().config.tenants.contains_key(&tenant) {
        return Err(ApiError::NotFound(format!("tenant {tenant}")));
    }
    let change = Change::new("api:admin", format!("tenant {tenant} changed")).tenant(&tenant);
    let result = current
        .change(if_match(&headers)?, change, |doc| {
            let key = master_key(&current).map_err(|e| format!("{e:?}"))?;
            let old = tenant_json(doc, tenant.as_str()).ok_or("the tenant is gone")?;
            let mut new = old.clone();
            merge(&mut new, &patch);
            let generated = secrets_of(tenant.as_str(), &mut new, Some(&old), &key)?;
            put_tenant(doc, tenant.as_str(), &new)?;
            Ok(generated)
        })
        .await;
    Ok(match result {
        Ok((reloaded, generated)) => applied(&current, &principal, &reloaded, generated, false),
        Err(r) => refused(r),
    })
}

/// `DELETE /api/v1/admin/tenants/{tenant}`: removes the tenant; its URLs answer 404 at once.
#[utoipa::path(delete, path = "/admin/tenants/{tenant}", tag = "config",
    params(("tenant" = String, Path)),
    responses((status = 200, body = Object), (status = 403, body = crate::admin::ErrorBody), (status = 404, body = crate::admin::ErrorBody),
        (status = 412, body = crate::admin::ErrorBody), (status = 422, body = crate::admin::ErrorBody)),
    security(("bearer" = [])))]
pub(super) async fn delete_tenant(
    State(current): State<Arc<Current>>,
    Extension(principal): Extension<Principal>,
    Path(tenant): Path<String>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    admin(&principal)?;
    let tenant = tenant_id(&tenant)?;
    if !current.hub().config.tenants.contains_key(&tenant) {
        return Err(ApiError::NotFound(format!("tenant {tenant}")));
    }
    let change = Change::new("api:admin", format!("tenant {tenant} removed")).tenant(&tenant);
    let result = current
        .change(if_match(&headers)?, change, |doc| {
            doc.get_mut("tenants")
                .and_then(|t| t.as_table_like_mut())
                .and_then(|t| t.remove(tenant.as_str()))
                .map(|_| ())
                .ok_or_else(|| "the tenant is gone".to_owned())
        })
        .await;
    Ok(match result {
        Ok((reloaded, ())) => applied(&current, &principal, &reloaded, Vec::new(), false),
        Err(r) => refused(r),
    })
}
