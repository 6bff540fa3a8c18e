//! `POST /hooks/{tenant}/{connector}[/{route}[/{token}]]`: verify, store, acknowledge.
//!
//! A request goes through stages, in an order that is the contract with providers, each a small
//! function that answers `Result<_, Rejection>` ([`Rejection`] owns every status):
//! 1. [`find_target`]: the tenant, connector and route (404, the same body for any unknown);
//! 2. [`rate_limit`]: per tenant (429 + `Retry-After`);
//! 3. [`verify::verify`]: the signature, natively on the raw bytes (401; no connector code runs);
//! 4. [`select::deliveries`]: identity, event type and tenant of each delivery (400);
//! 5. [`store`]: durably and deduplicated (503 if the store cannot commit);
//! 6. [`answer`]: only then 2xx, or on a `sync-reply` route the connector's answer ([`reply`]),
//!    or on a tool-call route the tenant's tool's outcome (`tool_call`).
//!
//! Every refusal is also kept, without body or headers, in a bounded ring ([`rejected`]) that
//! the console shows.
//!
//! A route with a tenant lookup has no tenant in its URL (`/hooks/_/{connector}/{route}`): one
//! provider URL serves every tenant (HubSpot's app webhooks). Its body may be an array whose items
//! are stored as separate deliveries, each routed to the tenant whose connector config holds the
//! item's value (e.g. `portalId`).

pub mod pointer;
pub mod rejected;
mod rejection;
mod reply;
mod select;
mod tool_call;
pub(crate) mod verify;

use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Path, RawQuery, State};
use axum::http::{HeaderMap, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use serde_json::json;
use tower_http::limit::RequestBodyLimitLayer;

pub use rejection::Rejection;

use crate::clock::now_ms;
use crate::id::{ANY_TENANT, TenantId};
use crate::reload::Shared;
use crate::runtime::{Delivery, Loaded, Route, SignatureScheme, TokenLocation};
use crate::state::Hub;
use crate::store::{Ingested, NewDelivery};
use crate::telemetry;
use rejected::Refusals;
use tracing::Instrument as _;
use verify::SignedRequest;

/// Headers never stored in the log: they carry credentials.
const SECRET_HEADERS: &[&str] = &[
    "authorization",
    "cookie",
    "proxy-authorization",
    "x-api-key",
];

/// The webhook routes, with their body limit: a declared Content-Length over it is refused
/// before the handler runs; a body without one is cut off at the limit while it is read.
/// POST for webhooks; GET and DELETE reach routes that declare them (REST hooks), others 405.
/// `refusals` outlives reloads (`server::router_of` makes it): the console lists it.
pub fn router(shared: Shared, body_limit: usize, refusals: Arc<Refusals>) -> Router<Shared> {
    let hook = post(hook).get(hook).delete(hook);
    Router::new()
        .route("/hooks/{tenant}/{connector}", hook.clone())
        .route("/hooks/{tenant}/{connector}/{route}", hook.clone())
        .route("/hooks/{tenant}/{connector}/{route}/{token}", hook)
        .layer(RequestBodyLimitLayer::new(body_limit))
        .layer(DefaultBodyLimit::max(body_limit))
        .layer(axum::middleware::from_fn_with_state(
            (body_limit, refusals.clone()),
            rejection::refuse_oversized,
        ))
        .with_state(Ingress { shared, refusals })
}

/// The webhook routes' state: the hub current at each request, and where refusals are kept.
#[derive(Clone)]
struct Ingress {
    shared: Shared,
    refusals: Arc<Refusals>,
}

/// A webhook's path: `/hooks/{tenant}/{connector}[/{route}[/{token}]]`.
#[derive(serde::Deserialize)]
struct HookPath {
    tenant: String,
    connector: String,
    /// Empty: the connector's bare URL.
    #[serde(default)]
    route: String,
    /// A shared token in the path.
    token: Option<String>,
}

/// One webhook request, as received.
struct Incoming {
    tenant: String,
    connector: String,
    route: String,
    path_token: Option<String>,
    method: Method,
    query: Option<String>,
    headers: HeaderMap,
    body: Bytes,
}

/// Every webhook route, whichever of the three paths it came by.
async fn hook(
    State(ingress): State<Ingress>,
    Path(path): Path<HookPath>,
    method: Method,
    query: RawQuery,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let incoming = Incoming {
        tenant: path.tenant,
        connector: path.connector,
        route: path.route,
        path_token: path.token,
        method,
        query: query.0,
        headers,
        body,
    };
    receive(ingress.shared.0.hub(), &ingress.refusals, incoming).await
}

// No log span per request: at 20,000 requests a second, creating, formatting and entering one
// cost several µs of CPU each. The few events below name tenant, connector and route themselves.
// The trace span is a disabled callsite unless traces are exported.
async fn receive(hub: Arc<Hub>, refusals: &Refusals, req: Incoming) -> Response {
    hub.metrics.received.inc();
    let (tenant, connector, route) = (req.tenant.clone(), req.connector.clone(), req.route.clone());
    let parent = telemetry::header(&req.headers);
    let span = if telemetry::sampled(parent) {
        let span = tracing::info_span!(target: telemetry::TARGET, "webhook",
            otel.kind = "server", tenant = %tenant, connector = %connector, route = %route,
            http.response.status_code = tracing::field::Empty, outcome = tracing::field::Empty,
            delivery.id = tracing::field::Empty);
        telemetry::continue_from(&span, parent);
        span
    } else {
        tracing::Span::none()
    };
    let _in_flight = hub.metrics.webhooks_in_flight.enter();
    let started = std::time::Instant::now();
    let response = match accept(&hub, req, &span).instrument(span.clone()).await {
        Ok(response) => {
            hub.metrics
                .ack_seconds
                .record(started.elapsed().as_secs_f64());
            span.record("outcome", "accepted");
            response
        }
        Err(rejection) => {
            if let Some(counter) = rejection.counter(&hub.metrics) {
                counter.inc();
            }
            refusals.push((&tenant, &connector, &route), &rejection);
            let response = rejection.into_response();
            telemetry::failed(&span, &format!("refused: {}", response.status()));
            span.record("outcome", "refused");
            response
        }
    };
    span.record(
        "http.response.status_code",
        i64::from(response.status().as_u16()),
    );
    response
}

/// The stages, in order.
async fn accept(hub: &Hub, req: Incoming, span: &tracing::Span) -> Result<Response, Rejection> {
    let received_at_ms = now_ms();
    let target = find_target(hub, &req)?;
    rate_limit(hub, &req, &target)?;
    let stored = Stored::of(hub, &req, &target);
    let signed = SignedRequest {
        method: req.method.as_str(),
        url: &stored.signed_url,
        headers: &stored.all_headers,
        body: &req.body,
        path_token: req.path_token.as_deref(),
    };
    let child = |name: &'static str| {
        if !telemetry::within() {
            return tracing::Span::none();
        }
        match name {
            "verify" => tracing::info_span!(target: telemetry::TARGET, "verify"),
            _ => tracing::info_span!(target: telemetry::TARGET, "store"),
        }
    };
    verify::verify(hub, &target, &signed)
        .instrument(child("verify"))
        .await?;
    let (mut deliveries, skipped) =
        select::deliveries(hub, &req, &target, &stored, received_at_ms)?;
    let tenant = deliveries.first().map(|d| d.tenant.clone());
    if let Some(trace) = telemetry::stored(span) {
        for d in &mut deliveries {
            d.trace = Some(trace.clone());
        }
    }
    let ingested = store(hub, &req, deliveries)
        .instrument(child("store"))
        .await?;
    if let Some(first) = ingested.first() {
        span.record("delivery.id", first.id());
    }
    if let (Some(shape), Some(tenant)) = (&target.route().tool_calls, &tenant) {
        let connector = &target.loaded.id;
        return Ok(tool_call::answer(hub, (tenant, connector), shape, &req.body).await);
    }
    if target.route().sync_reply
        && let (Some(first), Some(tenant)) = (ingested.first(), tenant)
    {
        let delivery = Delivery {
            id: first.id().to_string(),
            route: req.route.clone(),
            method: req.method.as_str().to_string(),
            url: stored.url,
            headers: stored.headers,
            body: req.body.to_vec(),
            received_at_ms: received_at_ms as u64,
        };
        return reply::respond(hub, &tenant, &target.loaded.id, first.id(), delivery).await;
    }
    Ok(answer(&ingested, &skipped))
}

/// Where a request goes: the connector, its route, and the tenant ([`TenantId::any`] on a
/// tenant-less route, until each delivery's tenant is found).
struct Target {
    loaded: Arc<Loaded>,
    route_index: usize,
    tenant: TenantId,
}

impl Target {
    fn route(&self) -> &Route {
        &self.loaded.manifest.routes[self.route_index]
    }
}

/// Stage 1: the route the request is for. Unknown tenant, connector or route, a tenant on a
/// tenant-less route (or none on another), and a path token where the route takes none (or
/// none where it takes one) are all the same 404; a method the route does not take is 405.
fn find_target(hub: &Hub, req: &Incoming) -> Result<Target, Rejection> {
    let loaded = hub
        .runtime
        .connector(&req.connector)
        .cloned()
        .ok_or(Rejection::NotFound)?;
    let route_index = loaded
        .manifest
        .routes
        .iter()
        .position(|r| r.name == req.route)
        .ok_or(Rejection::NotFound)?;
    let route = &loaded.manifest.routes[route_index];
    // A tenant-less route is reached only without a tenant, and the other routes only with one.
    let tenant = if req.tenant == ANY_TENANT {
        route.tenant_lookup.as_ref().map(|_| TenantId::any())
    } else if route.tenant_lookup.is_none() {
        hub.directory
            .tenant(&req.tenant)
            .filter(|(_, t)| t.connectors.contains_key(&loaded.id))
            .map(|(id, _)| id.clone())
    } else {
        None
    };
    let token_in_path = matches!(token_location(&route.signature), Some(TokenLocation::Path));
    let Some(tenant) = tenant.filter(|_| req.path_token.is_some() == token_in_path) else {
        return Err(Rejection::NotFound);
    };
    if req.method != Method::POST
        && !route
            .extra_methods
            .iter()
            .any(|m| m.eq_ignore_ascii_case(req.method.as_str()))
    {
        return Err(Rejection::MethodNotAllowed(req.method.clone()));
    }
    Ok(Target {
        loaded,
        route_index,
        tenant,
    })
}

/// Stage 2: the tenant's rate (a tenant-less route's: its connector's, shared by every tenant).
fn rate_limit(hub: &Hub, req: &Incoming, target: &Target) -> Result<(), Rejection> {
    let key = if target.tenant.is_any() {
        format!("{ANY_TENANT}/{}", req.connector)
    } else {
        req.tenant.clone()
    };
    hub.limiter
        .check(&key)
        .map_err(|retry_after| Rejection::RateLimited { retry_after })
}

/// The request as signed and as stored: every header, the URL the provider called, and what
/// the log keeps of them (no credential headers, no token in the URL).
struct Stored {
    all_headers: Vec<(String, String)>,
    signed_url: String,
    headers: Vec<(String, String)>,
    url: String,
}

impl Stored {
    fn of(hub: &Hub, req: &Incoming, target: &Target) -> Stored {
        let all_headers: Vec<(String, String)> = req
            .headers
            .iter()
            .map(|(k, v)| {
                (
                    k.as_str().to_string(),
                    String::from_utf8_lossy(v.as_bytes()).into_owned(),
                )
            })
            .collect();
        let path = match (&req.path_token, req.route.is_empty()) {
            (Some(_), _) => format!("/hooks/{}/{}/{}/", req.tenant, req.connector, req.route),
            (None, true) => format!("/hooks/{}/{}", req.tenant, req.connector),
            (None, false) => format!("/hooks/{}/{}/{}", req.tenant, req.connector, req.route),
        };
        let signed_url = {
            let tail = req.path_token.as_deref().unwrap_or("");
            match &req.query {
                Some(q) => format!("{}{path}{tail}?{q}", hub.public_base),
                None => format!("{}{path}{tail}", hub.public_base),
            }
        };
        let route = target.route();
        let headers = all_headers
            .iter()
            .filter(|(k, _)| !SECRET_HEADERS.contains(&k.as_str()) && !is_token_header(route, k))
            .cloned()
            .collect();
        let url = redacted_url(&hub.public_base, &path, req, route, &signed_url);
        Stored {
            all_headers,
            signed_url,
            headers,
            url,
        }
    }
}

/// Stage 5: the deliveries, durably and deduplicated; nothing to store (every item unrouted)
/// stores nothing.
async fn store(
    hub: &Hub,
    req: &Incoming,
    deliveries: Vec<NewDelivery>,
) -> Result<Vec<Ingested>, Rejection> {
    if deliveries.is_empty() {
        return Ok(Vec::new());
    }
    let ingested = hub.store.ingest(deliveries).await.map_err(|e| {
        tracing::error!(tenant = %req.tenant, connector = %req.connector, route = %req.route, "could not store delivery: {e}");
        Rejection::StoreUnavailable
    })?;
    let stored = ingested
        .iter()
        .filter(|i| matches!(i, Ingested::Stored(_)))
        .count();
    hub.metrics.stored.add(stored as u64);
    hub.metrics.duplicates.add((ingested.len() - stored) as u64);
    Ok(ingested)
}

/// Stage 6: the acknowledgement. One delivery: `stored` or `duplicate` with its id; a split
/// array: how many of each, how many items found no tenant, and the invalid items skipped
/// (`invalid`: `{count, items: [{index, error}]}`, when there are any).
fn answer(ingested: &[Ingested], skipped: &select::Skipped) -> Response {
    let stored = ingested
        .iter()
        .filter(|i| matches!(i, Ingested::Stored(_)))
        .count();
    let body = match ingested {
        [one] if skipped.invalid == 0 => {
            let label = if matches!(one, Ingested::Stored(_)) {
                "stored"
            } else {
                "duplicate"
            };
            json!({ "status": label, "id": one.id() })
        }
        many => {
            let mut body = json!({ "stored": stored, "duplicates": many.len() - stored, "unrouted": skipped.unrouted });
            if skipped.invalid > 0 {
                let items: Vec<serde_json::Value> = skipped
                    .reported
                    .iter()
                    .map(|(index, error)| json!({ "index": index, "error": error }))
                    .collect();
                body["invalid"] = json!({ "count": skipped.invalid, "items": items });
            }
            body
        }
    };
    (StatusCode::OK, axum::Json(body)).into_response()
}

/// The URL as stored: a path token or query token replaced by `***`.
fn redacted_url(base: &str, path: &str, req: &Incoming, route: &Route, signed_url: &str) -> String {
    match (&req.path_token, &req.query, &route.signature) {
        (Some(_), _, _) => format!("{base}{path}***"),
        (None, Some(q), scheme)
            if let Some(TokenLocation::Query(name)) = token_location(scheme) =>
        {
            let redacted: Vec<String> = form_urlencoded::parse(q.as_bytes())
                .map(|(k, v)| {
                    if k == name.as_str() {
                        format!("{k}=***")
                    } else {
                        format!("{k}={v}")
                    }
                })
                .collect();
            format!("{base}{path}?{}", redacted.join("&"))
        }
        _ => signed_url.to_string(),
    }
}

fn is_token_header(route: &Route, name: &str) -> bool {
    match (&route.signature, token_location(&route.signature)) {
        (_, Some(TokenLocation::Header(h))) => h.eq_ignore_ascii_case(name),
        (SignatureScheme::Channel(c), _) => c.token.eq_ignore_ascii_case(name),
        _ => false,
    }
}

/// Where a route's secret token is, for the schemes that carry one.
fn token_location(scheme: &SignatureScheme) -> Option<&TokenLocation> {
    match scheme {
        SignatureScheme::SharedToken(loc) => Some(loc),
        SignatureScheme::XmlToken(x) => Some(&x.token),
        _ => None,
    }
}

#[cfg(test)]
mod tests;
