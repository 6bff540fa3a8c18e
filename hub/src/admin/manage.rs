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
use secrecy::ExposeSecret as _;
use serde::Deserialize;
use serde_json::{Map, Value, json};
use toml_edit::DocumentMut;
use utoipa::ToSchema;

use super::ApiError;
use crate::auth::Principal;
use crate::id::TenantId;
use crate::reload::{Change, Current, Refused};
use crate::secrets::{self, MasterKey, Place, SEALED_PREFIX};

/// The answer to a refused change.
fn refused(r: Refused) -> Response {
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
fn if_match(headers: &HeaderMap) -> Result<Option<i64>, ApiError> {
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
fn master_key(current: &Current) -> Result<MasterKey, Refused> {
    let env = std::env::var("HUB_MASTER_KEY").ok();
    let hub = current.hub();
    MasterKey::load(env.as_deref(), hub.config.server.master_key_file.as_deref())
        .map_err(|e| Refused::Failed(format!("the master key cannot be loaded: {e}")))
}

/// A tenant's table in `doc`, as JSON.
fn tenant_json(doc: &DocumentMut, tenant: &str) -> Option<Value> {
    let all: toml::Table = toml::from_str(&doc.to_string()).ok()?;
    serde_json::to_value(all.get("tenants")?.get(tenant)?).ok()
}

/// Puts `value` (a JSON object) as the tenant's table in `doc`.
fn put_tenant(doc: &mut DocumentMut, tenant: &str, value: &Value) -> Result<(), String> {
    let table: toml::Value = toml::Value::try_from(value).map_err(|e| {
        format!("the tenant cannot be written as TOML (a null, or mixed array?): {e}")
    })?;
    let mut outer = toml::Table::new();
    let mut tenants = toml::Table::new();
    tenants.insert(tenant.to_owned(), table);
    outer.insert("tenants".into(), toml::Value::Table(tenants));
    let text = toml::to_string(&outer).map_err(|e| e.to_string())?;
    let fresh: DocumentMut = text.parse().map_err(|e| format!("{e}"))?;
    let item = fresh["tenants"][tenant].clone();
    let tenants = doc
        .entry("tenants")
        .or_insert(toml_edit::table())
        .as_table_like_mut()
        .ok_or("`tenants` is not a table")?;
    tenants.insert(tenant, item);
    Ok(())
}

/// A sealed value the request sent where a secret goes, or an error naming where it was plain.
fn sealed_or_none(v: Option<&Value>, at: &str) -> Result<Option<String>, String> {
    match v {
        None => Ok(None),
        Some(Value::String(s)) if s.starts_with(SEALED_PREFIX) => Ok(Some(s.clone())),
        Some(_) => Err(format!(
            "{at}: a secret is never sent in a tenant's JSON; leave it out (a new one is generated \
             and returned once) or send a value sealed for this place"
        )),
    }
}

/// Fills what a tenant's new table leaves out from its old one (credentials, tokens' and
/// endpoints' secrets of names it still declares) and generates the secrets still missing.
/// The generated ones, by path, to return once.
fn secrets_of(
    tenant: &str,
    new: &mut Value,
    old: Option<&Value>,
    key: &MasterKey,
) -> Result<Vec<(String, String)>, String> {
    let obj = new.as_object_mut().ok_or("a tenant is a JSON object")?;
    let mut generated = Vec::new();
    if let Some(connectors) = obj.get_mut("connectors").and_then(Value::as_object_mut) {
        for (c, table) in connectors.iter_mut() {
            let at = format!("tenants.{tenant}.connectors.{c}.credentials");
            let table = table
                .as_object_mut()
                .ok_or(format!("tenants.{tenant}.connectors.{c}: an object"))?;
            let given = table.remove("credentials");
            let mut creds = Map::new();
            if let Some(Value::Object(given)) = &given {
                for (field, v) in given {
                    let sealed = match v {
                        Value::String(s) if s.starts_with(SEALED_PREFIX) => s.clone(),
                        Value::String(plain) if !plain.is_empty() => {
                            let place = Place::Tenant {
                                tenant: tenant.into(),
                                connector: c.clone(),
                                field: field.clone(),
                            };
                            secrets::seal(key, &place, plain.as_bytes())
                        }
                        _ => {
                            return Err(format!("{at}.{field}: a credential is a non-empty string"));
                        }
                    };
                    creds.insert(field.clone(), Value::String(sealed));
                }
            }
            if let Some(Value::Object(kept)) =
                old.and_then(|o| o.pointer(&format!("/connectors/{c}/credentials")))
            {
                for (field, v) in kept {
                    creds.entry(field.clone()).or_insert_with(|| v.clone());
                }
            }
            if !creds.is_empty() {
                table.insert("credentials".into(), Value::Object(creds));
            }
        }
    }
    for (kind, secret_field) in [("api_tokens", "token"), ("endpoints", "secret")] {
        let Some(list) = obj.get_mut(kind).and_then(Value::as_object_mut) else {
            continue;
        };
        for (name, table) in list.iter_mut() {
            let at = format!("tenants.{tenant}.{kind}.{name}.{secret_field}");
            let table = table
                .as_object_mut()
                .ok_or(format!("tenants.{tenant}.{kind}.{name}: an object"))?;
            if sealed_or_none(table.get(secret_field), &at)?.is_some() {
                continue;
            }
            let kept = old
                .and_then(|o| o.pointer(&format!("/{kind}/{name}")))
                .and_then(Value::as_object);
            if let Some(kept) = kept {
                for field in [secret_field, "previous_secret", "previous_until"] {
                    if let Some(v) = kept.get(field) {
                        table.entry(field.to_owned()).or_insert_with(|| v.clone());
                    }
                }
                if table.contains_key(secret_field) {
                    continue;
                }
            }
            let (place, plain) = if kind == "api_tokens" {
                let place = Place::ApiToken {
                    tenant: tenant.into(),
                    name: name.clone(),
                };
                (place, secrets::generate_api_token())
            } else {
                let place = Place::Endpoint {
                    tenant: tenant.into(),
                    name: name.clone(),
                    field: "secret".into(),
                };
                (place, secrets::generate_webhook_secret())
            };
            let sealed = secrets::seal(key, &place, plain.expose_secret().as_bytes());
            table.insert(secret_field.into(), Value::String(sealed));
            generated.push((at, plain.expose_secret().to_owned()));
        }
    }
    Ok(generated)
}

/// What a tenant change answers: the version now run, and the secrets generated (this once),
/// each also in the audit trail (by name, never the value).
fn applied(
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
    responses((status = 200, body = Object), (status = 201, body = Object), (status = 400, body = super::ErrorBody),
        (status = 403, body = super::ErrorBody), (status = 412, body = super::ErrorBody), (status = 422, body = super::ErrorBody)),
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

/// RFC 7386: `patch` merged into `target`.
fn merge(target: &mut Value, patch: &Value) {
    match (target, patch) {
        (Value::Object(t), Value::Object(p)) => {
            for (k, v) in p {
                if v.is_null() {
                    t.remove(k);
                } else {
                    merge(t.entry(k.clone()).or_insert(Value::Null), v);
                }
            }
        }
        (t, p) => *t = p.clone(),
    }
}

/// `PATCH /api/v1/admin/tenants/{tenant}`: a JSON merge patch on the tenant's table (`null`
/// removes a key).
#[utoipa::path(patch, path = "/admin/tenants/{tenant}", tag = "config",
    params(("tenant" = String, Path)), request_body = Object,
    responses((status = 200, body = Object), (status = 400, body = super::ErrorBody), (status = 403, body = super::ErrorBody),
        (status = 404, body = super::ErrorBody), (status = 412, body = super::ErrorBody), (status = 422, body = super::ErrorBody)),
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
    responses((status = 200, body = Object), (status = 403, body = super::ErrorBody), (status = 404, body = super::ErrorBody),
        (status = 412, body = super::ErrorBody), (status = 422, body = super::ErrorBody)),
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

/// A credential's new value.
#[derive(Deserialize, ToSchema)]
pub(super) struct CredentialValue {
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
    responses((status = 200, body = Object), (status = 400, body = super::ErrorBody), (status = 403, body = super::ErrorBody),
        (status = 404, body = super::ErrorBody), (status = 412, body = super::ErrorBody), (status = 422, body = super::ErrorBody)),
    security(("bearer" = [])))]
pub(super) async fn set_credential(
    State(current): State<Arc<Current>>,
    Extension(principal): Extension<Principal>,
    Path((tenant, connector, field)): Path<(String, String, String)>,
    headers: HeaderMap,
    axum::Json(value): axum::Json<CredentialValue>,
) -> Result<Response, ApiError> {
    let hub = current.hub();
    let tenant = super::visible_tenant(&hub, &principal, &tenant)?;
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
    responses((status = 200, body = Object), (status = 201, body = Object), (status = 400, body = super::ErrorBody),
        (status = 403, body = super::ErrorBody), (status = 404, body = super::ErrorBody),
        (status = 412, body = super::ErrorBody), (status = 422, body = super::ErrorBody)),
    security(("bearer" = [])))]
pub(super) async fn put_endpoint(
    State(current): State<Arc<Current>>,
    Extension(principal): Extension<Principal>,
    Path((tenant, endpoint)): Path<(String, String)>,
    headers: HeaderMap,
    axum::Json(mut body): axum::Json<Value>,
) -> Result<Response, ApiError> {
    let hub = current.hub();
    let tenant = super::visible_tenant(&hub, &principal, &tenant)?;
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
    responses((status = 202, body = Object), (status = 403, body = super::ErrorBody), (status = 404, body = super::ErrorBody),
        (status = 422, body = super::ErrorBody)),
    security(("bearer" = [])))]
pub(super) async fn register(
    State(current): State<Arc<Current>>,
    Extension(principal): Extension<Principal>,
    Path((tenant, connector)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    let hub = current.hub();
    let tenant = super::visible_tenant(&hub, &principal, &tenant)?;
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
