//! The config's history (admin only): `GET /config` (the version this hub runs and the
//! newest), `GET /config/versions` and `/config/versions/{n}`, `GET /config/diff`, and
//! `POST /config/rollback`. A document holds sealed values only sealed; a diff shows none.

use std::sync::Arc;

use axum::Extension;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use serde_json::json;
use utoipa::{IntoParams, ToSchema};

use super::{ApiError, param};
use crate::auth::Principal;
use crate::config::document::{Difference, diff};
use crate::reload::{Change, Current, VersionState};
use crate::store::ConfigVersion;

/// A version number from a query: at most `i64::MAX`.
fn number(n: Option<u64>, name: &str) -> Result<Option<i64>, ApiError> {
    n.map(|n| i64::try_from(n).map_err(|_| ApiError::BadRequest(format!("`{name}`: too large"))))
        .transpose()
}

fn admin_only(principal: &Principal) -> Result<(), ApiError> {
    match principal {
        Principal::Admin => Ok(()),
        Principal::Tenant { .. } => Err(ApiError::Forbidden(
            "only the admin token may read or change the config".into(),
        )),
    }
}

/// The version this hub runs, and the newest the store holds.
#[derive(Serialize, ToSchema)]
pub(super) struct ConfigState {
    /// This hub.
    #[serde(flatten)]
    this_hub: VersionState,
    /// The newest version (on PostgreSQL, what every hub runs within seconds).
    newest: Option<ConfigVersion>,
}

/// `GET /api/v1/config`: the config version this hub runs, a newer one it could not apply (and
/// why), and the newest version.
#[utoipa::path(get, path = "/config", tag = "config",
    responses((status = 200, body = ConfigState), (status = 403, body = super::ErrorBody)),
    security(("bearer" = [])))]
pub(super) async fn state(
    State(current): State<Arc<Current>>,
    Extension(principal): Extension<Principal>,
) -> Result<Response, ApiError> {
    admin_only(&principal)?;
    let newest = current.hub().store.config_versions(None, 1).await?;
    Ok(axum::Json(ConfigState {
        this_hub: current.version(),
        newest: newest.into_iter().next(),
    })
    .into_response())
}

/// Which versions.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(super) struct VersionsQuery {
    /// Only versions older than this number (the next page).
    before: Option<String>,
    /// At most this many (default 50, at most 500).
    limit: Option<String>,
}

/// A page of versions, newest first.
#[derive(Serialize, ToSchema)]
pub(super) struct VersionsPage {
    /// Without their documents.
    versions: Vec<ConfigVersion>,
}

/// `GET /api/v1/config/versions`: every applied config, newest first: number, when, who, why.
#[utoipa::path(get, path = "/config/versions", tag = "config", params(VersionsQuery),
    responses((status = 200, body = VersionsPage), (status = 403, body = super::ErrorBody)),
    security(("bearer" = [])))]
pub(super) async fn versions(
    State(current): State<Arc<Current>>,
    Extension(principal): Extension<Principal>,
    Query(q): Query<VersionsQuery>,
) -> Result<Response, ApiError> {
    admin_only(&principal)?;
    let before = number(param::<u64>(q.before, "before")?, "before")?;
    let limit = param::<u64>(q.limit, "limit")?.unwrap_or(50).clamp(1, 500) as usize;
    let versions = current.hub().store.config_versions(before, limit).await?;
    Ok(axum::Json(VersionsPage { versions }).into_response())
}

/// `GET /api/v1/config/versions/{n}`: one version with its whole document (its credentials
/// sealed, as in the file).
#[utoipa::path(get, path = "/config/versions/{number}", tag = "config",
    params(("number" = i64, Path)),
    responses((status = 200, body = ConfigVersion), (status = 404, body = super::ErrorBody)),
    security(("bearer" = [])))]
pub(super) async fn version(
    State(current): State<Arc<Current>>,
    Extension(principal): Extension<Principal>,
    Path(number): Path<i64>,
) -> Result<Response, ApiError> {
    admin_only(&principal)?;
    let found = current.hub().store.config_version(Some(number)).await?;
    match found.filter(|v| v.number == number) {
        Some(v) => Ok(axum::Json(v).into_response()),
        None => Err(ApiError::NotFound(format!("config version {number}"))),
    }
}

/// The two versions to compare.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(super) struct DiffQuery {
    /// The version before.
    from: String,
    /// The version after (default: the newest).
    to: Option<String>,
}

/// What differs.
#[derive(Serialize, ToSchema)]
pub(super) struct DiffPage {
    from: i64,
    to: i64,
    /// Setting by setting; sealed values only say they changed.
    differences: Vec<Difference>,
}

/// `GET /api/v1/config/diff?from=N&to=M`: what differs between two versions, setting by setting
/// (`tenants.acme.routes[2].action`); a sealed value is shown as changed, never its contents.
#[utoipa::path(get, path = "/config/diff", tag = "config", params(DiffQuery),
    responses((status = 200, body = DiffPage), (status = 404, body = super::ErrorBody)),
    security(("bearer" = [])))]
pub(super) async fn difference(
    State(current): State<Arc<Current>>,
    Extension(principal): Extension<Principal>,
    Query(q): Query<DiffQuery>,
) -> Result<Response, ApiError> {
    admin_only(&principal)?;
    let store = current.hub().store.clone();
    let from = number(param::<u64>(Some(q.from), "from")?, "from")?.unwrap_or_default();
    let to = number(param::<u64>(q.to, "to")?, "to")?;
    let get = |n: Option<i64>| {
        let store = store.clone();
        async move {
            store
                .config_version(n)
                .await?
                .filter(|v| n.is_none_or(|n| v.number == n))
                .ok_or_else(|| {
                    ApiError::NotFound(
                        n.map_or("a config version".into(), |n| format!("config version {n}")),
                    )
                })
        }
    };
    let (a, b) = (get(Some(from)).await?, get(to).await?);
    let differences = diff(&a.document, &b.document).map_err(ApiError::BadRequest)?;
    Ok(axum::Json(DiffPage {
        from: a.number,
        to: b.number,
        differences,
    })
    .into_response())
}

/// A rollback.
#[derive(Deserialize, ToSchema)]
pub(super) struct RollbackRequest {
    /// The version whose document becomes the newest again.
    version: i64,
    /// Why (kept with the new version).
    #[serde(default)]
    reason: String,
}

/// `POST /api/v1/config/rollback`: makes an older version's document the newest version again
/// (a new number: history is never rewritten) and applies it; on PostgreSQL every hub follows.
/// 422 when it does not build here, 409 when a newer version came first.
#[utoipa::path(post, path = "/config/rollback", tag = "config", request_body = RollbackRequest,
    responses((status = 200, body = crate::reload::Reloaded), (status = 409, body = super::ErrorBody),
        (status = 422, body = super::ErrorBody)),
    security(("bearer" = [])))]
pub(super) async fn rollback(
    State(current): State<Arc<Current>>,
    Extension(principal): Extension<Principal>,
    axum::Json(request): axum::Json<RollbackRequest>,
) -> Result<Response, ApiError> {
    admin_only(&principal)?;
    let change = Change::new("api:admin", request.reason);
    match current.rollback(request.version, change).await {
        Ok(done) => Ok(axum::Json(done).into_response()),
        Err(refused) => {
            let text = refused.to_string();
            let status = if text.starts_with("there is no config version") {
                StatusCode::NOT_FOUND
            } else if text.starts_with("the config changed meanwhile") {
                StatusCode::CONFLICT
            } else {
                StatusCode::UNPROCESSABLE_ENTITY
            };
            Ok((status, axum::Json(json!({ "error": text }))).into_response())
        }
    }
}
