//! `GET /tenants/{t}/events`: the hub events connectors published for a tenant, newest first.

use std::sync::Arc;

use axum::Extension;
use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::page::{CursorScope, cut, next_link};
use super::{ApiError, page_size, visible_tenant};
use crate::auth::Principal;

use crate::state::Hub;
use crate::store::EventRow;

/// A page of events.
#[derive(Serialize, ToSchema)]
pub(super) struct EventsPage {
    /// Newest first.
    events: Vec<EventRow>,
    /// The next page's link; `null` on the last page.
    next: Option<String>,
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
#[utoipa::path(get, path = "/tenants/{tenant}/events", tag = "tenants",
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
