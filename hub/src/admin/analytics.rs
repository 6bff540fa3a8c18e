//! `GET /tenants/{t}/analytics`: calls, emails and text messages per day, as JSON or CSV.

use std::sync::Arc;

use axum::Extension;
use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use utoipa::IntoParams;

use super::{ApiError, visible_tenant};
use crate::auth::Principal;

use crate::state::Hub;

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(super) struct AnalyticsQuery {
    /// Days back from today, today included (UTC; default 30, at most 366).
    days: Option<u32>,
    /// `json` (the default) or `csv` (one row per day, days without any as zeros).
    format: Option<String>,
}

/// `GET /api/v1/tenants/{t}/analytics?days=30[&format=csv]`: calls, emails and text messages
/// per day, from the tenant's records (the figures the console charts).
#[utoipa::path(get, path = "/tenants/{tenant}/analytics", tag = "tenants",
    params(("tenant" = String, Path), AnalyticsQuery),
    responses((status = 200, body = crate::store::Analytics), (status = 404, body = super::ErrorBody)))]
pub(super) async fn analytics(
    State(hub): State<Arc<Hub>>,
    Extension(principal): Extension<Principal>,
    Path(tenant): Path<String>,
    Query(q): Query<AnalyticsQuery>,
) -> Result<Response, ApiError> {
    let tenant = visible_tenant(&hub, &principal, &tenant)?;
    let days = q.days.unwrap_or(30).clamp(1, 366);
    let figures = hub
        .store
        .analytics(tenant, crate::store::since_day(days))
        .await?;
    match q.format.as_deref() {
        None | Some("json") => Ok(axum::Json(figures).into_response()),
        Some("csv") => Ok((
            [(axum::http::header::CONTENT_TYPE, "text/csv; charset=utf-8")],
            figures.csv(&crate::store::window(days)),
        )
            .into_response()),
        Some(other) => Err(ApiError::BadRequest(format!(
            "`format`: `{other}` is neither json nor csv"
        ))),
    }
}
