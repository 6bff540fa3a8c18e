//! `GET /api/v1/openapi.json`: the OpenAPI 3.1 document of `/api/v1`, generated from the
//! handlers' own parameter and answer types (utoipa), so it cannot drift from them.

use axum::response::{IntoResponse, Response};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

use super::{changes, log, tenants};

#[derive(OpenApi)]
#[openapi(
    info(
        title = "hub API",
        description = "The hub's API: the webhook log, jobs, replay, tenants' records, events and \
                       change feed, and their apps' endpoints. Every call carries a bearer token: \
                       the admin token, or a tenant's API token, which opens that tenant alone."
    ),
    paths(
        log::list_deliveries,
        log::one_delivery,
        log::list_jobs,
        log::replay,
        tenants::tenants,
        tenants::records,
        tenants::events,
        tenants::analytics,
        changes::changes,
        tenants::sync,
        tenants::endpoints,
        tenants::enable_endpoint,
        tenants::connectors,
        super::reload,
    ),
    modifiers(&Bearer),
    security(("bearer" = []))
)]
struct ApiDoc;

/// Declares the bearer scheme every operation uses.
struct Bearer;

impl Modify for Bearer {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
    }
}

/// The document.
pub fn spec() -> utoipa::openapi::OpenApi {
    ApiDoc::openapi()
}

/// `GET /api/v1/openapi.json`.
pub(super) async fn document() -> Response {
    axum::Json(spec()).into_response()
}
