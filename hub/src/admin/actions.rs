//! `POST /tenants/{t}/actions` and `GET /tenants/{t}/actions/{id}`: the app asks the hub to act
//! for a tenant (send an email, a text, upsert a contact) and follows the outcome. The work is
//! `crate::actions`'; here, HTTP: the `Idempotency-Key` header, the token's scope, the answers.

use std::sync::Arc;
use std::time::Duration;

use axum::Extension;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use utoipa::{IntoParams, ToSchema};

use super::ApiError;
use crate::actions::{self, ActionState, Refused};
use crate::auth::Principal;
use crate::id::TenantId;
use crate::state::Hub;
use tracing::Instrument as _;

/// The body of `POST /api/v1/tenants/{t}/actions`.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct ActionRequest {
    /// `capability:operation` (`email:send`, `sms:send`, `crm:upsert_contact`: the tenant's
    /// connector for it), or `connector:action` (`resend:send_email`).
    action: String,
    /// The action's input (`GET /tenants/{t}/connectors` lists each action's inputs).
    #[schema(value_type = Object)]
    input: serde_json::Value,
}

/// `?wait=`.
#[derive(Deserialize, IntoParams)]
pub(super) struct WaitQuery {
    /// Seconds to wait for the action to end before answering (at most 30): 200 once it has,
    /// 202 if it has not yet.
    wait: Option<u64>,
}

/// The tenant of the path, if the caller may act for it: 404 when it does not exist or is
/// another tenant's, 403 when the token may see it but not act.
fn acting_tenant(hub: &Hub, principal: &Principal, tenant: &str) -> Result<TenantId, ApiError> {
    let id = hub
        .directory
        .tenant(tenant)
        .map(|(id, _)| id.clone())
        .filter(|id| principal.owns(id))
        .ok_or_else(|| ApiError::NotFound(format!("tenant {tenant}")))?;
    if !principal.may_act(&id) {
        return Err(ApiError::Forbidden(
            "this token may not act: actions take the `act` scope (or `manage`, or the admin token)"
                .into(),
        ));
    }
    Ok(id)
}

/// The `Idempotency-Key` header: required, 1 to 255 visible ASCII characters.
fn idempotency_key(headers: &HeaderMap) -> Result<String, ApiError> {
    let Some(value) = headers.get("idempotency-key") else {
        return Err(ApiError::BadRequest(
            "an Idempotency-Key header is required: a key of your choosing, the same when you \
             retry (the action runs once per key)"
                .into(),
        ));
    };
    let key = value.to_str().unwrap_or("");
    if key.is_empty()
        || key.len() > actions::MAX_KEY_LEN
        || !key.bytes().all(|b| b.is_ascii_graphic())
    {
        return Err(ApiError::BadRequest(format!(
            "the Idempotency-Key must be 1 to {} visible ASCII characters",
            actions::MAX_KEY_LEN
        )));
    }
    Ok(key.to_string())
}

/// The answer for an action's state: 200 once it has ended, else `pending` (202 for a new
/// action, 200 for a read).
fn answer(state: ActionState, pending: StatusCode, tenant: &TenantId) -> Response {
    let status = if state.ended() {
        StatusCode::OK
    } else {
        pending
    };
    let location = format!("/api/v1/tenants/{tenant}/actions/{}", state.id);
    (status, [(header::LOCATION, location)], axum::Json(state)).into_response()
}

/// `POST /api/v1/tenants/{t}/actions` `{"action", "input"}` with an `Idempotency-Key` header:
/// queues the action once per key -> 202 with its state (or 200 with its outcome, with
/// `?wait=N`, once it has ended). The same key with the same body answers the same action;
/// with another body, 409. A tenant token needs the `act` scope.
#[utoipa::path(post, path = "/tenants/{tenant}/actions", tag = "actions",
    params(("tenant" = String, Path),
           ("Idempotency-Key" = String, Header, description = "Your key for this action: the same on every retry"),
           WaitQuery),
    request_body = ActionRequest,
    responses((status = 202, body = ActionState, description = "Queued (or still running after `wait`)"),
              (status = 200, body = ActionState, description = "Ended within `wait`"),
              (status = 403, body = super::ErrorBody), (status = 404, body = super::ErrorBody),
              (status = 409, body = super::ErrorBody), (status = 422, body = super::ErrorBody)))]
pub(super) async fn act(
    State(hub): State<Arc<Hub>>,
    Extension(principal): Extension<Principal>,
    Path(tenant): Path<String>,
    Query(q): Query<WaitQuery>,
    headers: HeaderMap,
    axum::Json(body): axum::Json<ActionRequest>,
) -> Result<Response, ApiError> {
    let tenant = acting_tenant(&hub, &principal, &tenant)?;
    let key = idempotency_key(&headers)?;
    let refused = |r: Refused| match r {
        Refused::NoSuchAction(what) => ApiError::NotFound(what),
        Refused::Invalid(problems) => ApiError::Invalid(problems),
        Refused::Conflict(first) => ApiError::Conflict(first),
        Refused::Store(e) => ApiError::Internal(e.into()),
    };
    let target = actions::target(&hub, &tenant, &body.action, body.input).map_err(refused)?;
    let stored_key = format!("{}{tenant}:{key}", actions::API_KEYS);
    let parent = crate::telemetry::header(&headers);
    let span = if crate::telemetry::sampled(parent) {
        let span = tracing::info_span!(target: crate::telemetry::TARGET, "action",
            otel.kind = "server", otel.name = %format_args!("action {}", body.action),
            tenant = %tenant, action = %body.action);
        crate::telemetry::continue_from(&span, parent);
        span
    } else {
        tracing::Span::none()
    };
    let submitted = actions::submit(&hub.store, &tenant, stored_key, &target)
        .instrument(span)
        .await
        .map_err(refused)?;
    if submitted.new {
        let entry = crate::store::AuditEntry::now(
            format!("api:{}", principal.actor()),
            "action",
            body.action.clone(),
        )
        .tenant(&tenant)
        .detail(format!("action {} queued", submitted.id));
        crate::audit::record(&hub.store, entry);
        tracing::info!(tenant = %tenant, action = %body.action, id = submitted.id, "action queued");
    }
    let wait = Duration::from_secs(q.wait.unwrap_or(0));
    let state = actions::wait(&hub.store, &tenant, submitted.id, wait)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("action {}", submitted.id)))?;
    Ok(answer(state, StatusCode::ACCEPTED, &tenant))
}

/// `GET /api/v1/tenants/{t}/actions/{id}`: an action's state, attempts and outcome (with
/// `?wait=N`, once it has ended or after N seconds). Another tenant's id is 404.
#[utoipa::path(get, path = "/tenants/{tenant}/actions/{id}", tag = "actions",
    params(("tenant" = String, Path), ("id" = i64, Path), WaitQuery),
    responses((status = 200, body = ActionState), (status = 403, body = super::ErrorBody),
              (status = 404, body = super::ErrorBody)))]
pub(super) async fn one_action(
    State(hub): State<Arc<Hub>>,
    Extension(principal): Extension<Principal>,
    Path((tenant, id)): Path<(String, i64)>,
    Query(q): Query<WaitQuery>,
) -> Result<Response, ApiError> {
    let tenant = acting_tenant(&hub, &principal, &tenant)?;
    let wait = Duration::from_secs(q.wait.unwrap_or(0));
    let state = actions::wait(&hub.store, &tenant, id, wait)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("action {id}")))?;
    Ok(answer(state, StatusCode::OK, &tenant))
}
