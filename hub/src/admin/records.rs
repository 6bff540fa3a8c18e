//! `GET /tenants/{t}/records`: what connectors keep for a tenant, newest first, found by kind
//! or by a lookup (`phone:+1 415 555 0100`, `email:ann@example.com`).

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
use crate::store::{RecordFilter, RecordRow};

/// A page of records.
#[derive(Serialize, ToSchema)]
pub(super) struct RecordsPage {
    /// Last changed first.
    records: Vec<RecordRow>,
    /// The next page's link; `null` on the last page.
    next: Option<String>,
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(super) struct RecordQuery {
    /// Only this kind, e.g. `call`.
    kind: Option<String>,
    /// Only records of `kind` found by this lookup: `phone:+14155550100`, `email:ann@x.io`.
    lookup: Option<String>,
    /// At most this many (default 100, at most 500).
    limit: Option<usize>,
    /// From a `next` link.
    cursor: Option<String>,
}

/// `GET /api/v1/tenants/{t}/records?kind=&lookup=&limit=&cursor=`: last changed first.
#[utoipa::path(get, path = "/tenants/{tenant}/records", tag = "tenants",
    params(("tenant" = String, Path), RecordQuery),
    responses((status = 200, body = RecordsPage), (status = 400, body = super::ErrorBody),
              (status = 404, body = super::ErrorBody)))]
pub(super) async fn records(
    State(hub): State<Arc<Hub>>,
    Extension(principal): Extension<Principal>,
    Path(tenant): Path<String>,
    Query(q): Query<RecordQuery>,
) -> Result<Response, ApiError> {
    let tenant = visible_tenant(&hub, &principal, &tenant)?;
    if q.lookup.is_some() && q.kind.is_none() {
        return Err(ApiError::BadRequest(
            "`lookup` needs `kind`: records are found by a lookup within one kind".into(),
        ));
    }
    let lookup = q.lookup.as_deref().map(written_as_stored);
    let scope = CursorScope::of(
        "records",
        &[Some(tenant.as_str()), q.kind.as_deref(), lookup.as_deref()],
    );
    let limit = page_size(q.limit, 100);
    let filter = RecordFilter {
        kind: q.kind.clone(),
        lookup,
        before: scope.after(q.cursor.as_deref())?,
        limit: limit + 1,
    };
    let path = format!("/tenants/{tenant}/records");
    let mut rows = hub.store.records(tenant, filter).await?;
    let next = cut(&mut rows, limit, |r| r.seq).map(|last| {
        let params = [
            ("kind", q.kind),
            ("lookup", q.lookup),
            ("limit", q.limit.map(|l| l.to_string())),
        ];
        next_link(&path, &params, &scope.cursor(last))
    });
    Ok(axum::Json(RecordsPage {
        records: rows,
        next,
    })
    .into_response())
}

/// A lookup as a person types it into a URL, written as connectors store it: the number of a
/// `phone:` in E.164 (a `+` that query decoding turned into a space is put back, so
/// `?lookup=phone:+1 415 555 0100` works), an `email:` trimmed and lower-cased; anything else,
/// or what does not parse, as it is.
fn written_as_stored(lookup: &str) -> String {
    let normalized = if let Some(number) = lookup.strip_prefix("phone:") {
        let number = number.trim();
        if number.starts_with('+') || number.starts_with("00") {
            plugin_sdk::lookup::phone(number)
        } else {
            plugin_sdk::lookup::phone(&format!("+{number}"))
        }
    } else if let Some(email) = lookup.strip_prefix("email:") {
        plugin_sdk::lookup::email(email)
    } else {
        None
    };
    normalized.unwrap_or_else(|| lookup.to_string())
}

#[cfg(test)]
mod tests {
    use super::written_as_stored;

    #[test]
    fn a_lookup_typed_into_a_url_finds_what_connectors_stored() {
        for typed in [
            "phone:+14155550100",
            "phone: 14155550100",
            "phone: 1 (415) 555-0100",
            "phone:0014155550100",
        ] {
            assert_eq!(written_as_stored(typed), "phone:+14155550100", "{typed}");
        }
        assert_eq!(written_as_stored("email: Ann@X.io"), "email:ann@x.io");
        assert_eq!(written_as_stored("phone:abc"), "phone:abc");
        assert_eq!(written_as_stored("sku:A-1"), "sku:A-1");
    }
}
