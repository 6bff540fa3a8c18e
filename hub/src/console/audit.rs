//! `GET /console/audit`: the audit trail (see [`crate::store::AuditEntry`]), newest first,
//! filtered by tenant and actor: the admin sees every entry, a tenant's token its own tenant's.

use std::sync::Arc;

use axum::extract::{Query, State};
use serde::{Deserialize, Serialize};

use super::{Page, Viewer, choices, render, renders};
use crate::state::Hub;
use crate::store::{AuditFilter, AuditRow};

/// How many entries a page shows.
const SHOWN: usize = 200;

/// The filters, from the URL.
#[derive(Deserialize)]
pub(super) struct AuditQuery {
    tenant: Option<String>,
    actor: Option<String>,
    before: Option<i64>,
}

#[derive(Serialize)]
struct AuditPage {
    rows: Vec<AuditRow>,
    tenants: Vec<String>,
    tenant: Option<String>,
    actor: Option<String>,
    /// The next page's `before`, when this one is full.
    next: Option<i64>,
}
renders!(AuditPage = "audit.html");

/// `GET /console/audit`.
pub(super) async fn page(
    State(hub): State<Arc<Hub>>,
    viewer: Viewer,
    Query(q): Query<AuditQuery>,
) -> Page {
    let tenant = match viewer.own_tenant() {
        Some(own) => Some(own.to_string()),
        None => q.tenant.filter(|t| !t.is_empty()),
    };
    let actor = q.actor.filter(|a| !a.is_empty());
    let filter = AuditFilter {
        tenant: tenant.clone(),
        actor: actor.clone(),
        before: q.before,
        limit: SHOWN,
    };
    let rows = hub.store.audit(filter).await?;
    let next = (rows.len() == SHOWN)
        .then(|| rows.last().map(|r| r.id))
        .flatten();
    let (tenants, _) = choices(&hub, &viewer);
    render(
        &viewer,
        &AuditPage {
            rows,
            tenants,
            tenant,
            actor,
            next,
        },
    )
}
