//! `GET /audit`: the audit trail, newest first (see [`crate::store::AuditEntry`]): the admin
//! sees every entry, a tenant's token its own tenant's.

use std::sync::Arc;

use axum::Extension;
use axum::extract::{Query, State};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::{ApiError, param};
use crate::auth::Principal;
use crate::state::Hub;
use crate::store::{AuditFilter, AuditRow};

/// Which entries.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(super) struct AuditQuery {
    /// Only this tenant's (a tenant token: always its own).
    tenant: Option<String>,
    /// Only this actor's (`admin`, `acme/app`, `console:admin`, `file`, ...).
    actor: Option<String>,
    /// Only entries older than this id (the next page).
    before: Option<String>,
    /// At most this many (default 100, at most 1000).
    limit: Option<String>,
}

/// A page of the trail.
#[derive(Serialize, ToSchema)]
pub(super) struct AuditPage {
    /// Newest first.
    entries: Vec<AuditRow>,
}

/// `GET /api/v1/audit`: who did what, when, from where: config versions, credentials set (never
/// their values), tokens made, tenants changed, replays, syncs, actions, console logins and
/// failed logins.
#[utoipa::path(get, path = "/audit", tag = "operations", params(AuditQuery),
    responses((status = 200, body = AuditPage), (status = 400, body = super::ErrorBody)),
    security(("bearer" = [])))]
pub(super) async fn audit(
    State(hub): State<Arc<Hub>>,
    Extension(principal): Extension<Principal>,
    Query(q): Query<AuditQuery>,
) -> Result<Response, ApiError> {
    let before = param::<u64>(q.before, "before")?
        .map(|n| i64::try_from(n).map_err(|_| ApiError::BadRequest("`before`: too large".into())))
        .transpose()?;
    let limit = param::<u64>(q.limit, "limit")?
        .unwrap_or(100)
        .clamp(1, 1000) as usize;
    let tenant = match &principal {
        Principal::Admin => q.tenant.filter(|t| !t.is_empty()),
        Principal::Tenant { tenant, .. } => Some(tenant.to_string()),
    };
    let filter = AuditFilter {
        tenant,
        actor: q.actor.filter(|a| !a.is_empty()),
        before,
        limit,
    };
    let entries = hub.store.audit(filter).await?;
    Ok(axum::Json(AuditPage { entries }).into_response())
}
