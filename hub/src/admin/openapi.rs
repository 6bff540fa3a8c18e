//! `GET /api/v1/openapi.json`: the OpenAPI 3.1 document of `/api/v1`, generated from the
//! handlers' own parameter and answer types (utoipa), so it cannot drift from them.

use axum::response::{IntoResponse, Response};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

/// The document's frame; `admin::api` adds each operation with its route.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "hub API",
        description = "The hub's API: the webhook log, jobs, replay, tenants' records, events and \
                       change feed, and their apps' endpoints. Every call carries a bearer token: \
                       the admin token, or a tenant's API token, which opens that tenant alone."
    ),
    modifiers(&Bearer),
    security(("bearer" = []))
)]
pub(super) struct ApiDoc;

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

/// Declares on every operation the error answers any of them can give, each an `ErrorBody`:
/// 400 (a parameter or body that does not parse), 401 (no valid token), 404 (a path naming
/// nothing the token sees), 415 and 422 (a body that is not JSON, or JSON of the wrong shape),
/// 408 (too slow) and 500. The handlers' own annotations say what each answers besides.
struct Errors;

impl Modify for Errors {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::{ContentBuilder, Ref, ResponseBuilder};
        let error = |what: &str| {
            ResponseBuilder::new()
                .description(what)
                .content(
                    "application/json",
                    ContentBuilder::new()
                        .schema(Some(Ref::from_schema_name("ErrorBody")))
                        .build(),
                )
                .build()
        };
        for item in openapi.paths.paths.values_mut() {
            let operations = [
                item.get.as_mut(),
                item.post.as_mut(),
                item.put.as_mut(),
                item.delete.as_mut(),
                item.patch.as_mut(),
            ];
            for op in operations.into_iter().flatten() {
                let has_path =
                    op.parameters.iter().flatten().any(|p| {
                        matches!(p.parameter_in, utoipa::openapi::path::ParameterIn::Path)
                    });
                let mut common = vec![
                    (
                        "400",
                        "A parameter or the body is not valid: `error` says which and why.",
                    ),
                    ("401", "No valid bearer token."),
                    ("408", "The request took longer than the API allows."),
                    ("500", "The hub failed; its log says why."),
                ];
                if has_path {
                    common.push(("404", "The path names nothing this token can see."));
                }
                if op.request_body.is_some() {
                    common.push(("415", "The body is not sent as `application/json`."));
                    common.push(("422", "The body is JSON of the wrong shape."));
                }
                for (status, what) in common {
                    if !op.responses.responses.contains_key(status) {
                        op.responses
                            .responses
                            .insert(status.to_string(), error(what).into());
                    }
                }
            }
        }
    }
}

/// The finished document: the operations under `/api/v1` (they are registered relative to
/// it), each with the common error answers; `GET /api/v1/openapi.json` serves it as made once.
pub(super) fn document(
    spec: utoipa::openapi::OpenApi,
) -> impl Fn() -> std::future::Ready<Response> + Clone {
    let body = bytes::Bytes::from(serde_json::to_vec(&finish(spec)).unwrap_or_default());
    move || {
        std::future::ready(
            (
                [(axum::http::header::CONTENT_TYPE, "application/json")],
                body.clone(),
            )
                .into_response(),
        )
    }
}

fn finish(mut spec: utoipa::openapi::OpenApi) -> utoipa::openapi::OpenApi {
    let paths = std::mem::take(&mut spec.paths.paths);
    spec.paths.paths = paths
        .into_iter()
        .map(|(path, item)| (format!("/api/v1{path}"), item))
        .collect();
    Errors.modify(&mut spec);
    spec
}
