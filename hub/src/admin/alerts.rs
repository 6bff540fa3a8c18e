//! `GET /alerts`: the alerts open now (what the console's banner shows): the admin sees all, a
//! tenant's token its own tenant's.

use std::sync::Arc;

use axum::Extension;
use axum::extract::State;
use serde::Serialize;
use utoipa::ToSchema;

use crate::alerts::Open;
use crate::auth::Principal;
use crate::state::Hub;

/// The open alerts.
#[derive(Serialize, ToSchema)]
pub(super) struct AlertsPage {
    /// Oldest first.
    alerts: Vec<Open>,
}

/// `GET /api/v1/alerts`: each cause raised and not yet resolved, with how often it happened.
#[utoipa::path(get, path = "/alerts", tag = "operations",
    responses((status = 200, body = AlertsPage), (status = 401, body = super::ErrorBody)))]
pub(super) async fn alerts(
    State(hub): State<Arc<Hub>>,
    Extension(principal): Extension<Principal>,
) -> axum::Json<AlertsPage> {
    let alerts = hub
        .alerts
        .open()
        .into_iter()
        .filter(|a| match (&principal, &a.cause.tenant) {
            (Principal::Admin, _) => true,
            (p, Some(t)) => hub.directory.tenant(t).is_some_and(|(id, _)| p.sees(id)),
            (_, None) => false,
        })
        .collect();
    axum::Json(AlertsPage { alerts })
}
