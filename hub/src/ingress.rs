//! `POST /hooks/{tenant}/{connector}[/{route}[/{token}]]`: verify, store, acknowledge.
//!
//! The order is the contract with providers: find the tenant and route (404, the same body for
//! an unknown tenant or connector), rate-limit per tenant (429 + `Retry-After`), verify the
//! signature natively on the raw bytes (401; no connector code runs), find the delivery's
//! identity, store it durably and deduplicated (503 if the store cannot commit), and only then
//! answer 2xx — or, on a `sync-reply` route, the connector's answer.
//!
//! A route with a tenant lookup has no tenant in its URL (`/hooks/_/{connector}/{route}`): one
//! provider URL serves every tenant (HubSpot's app webhooks). Its body may be an array whose items
//! are stored as separate deliveries, each routed to the tenant whose connector config holds the
//! item's value (e.g. `portalId`).

pub mod pointer;

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use plugin_sdk::schemes;
use secrecy::ExposeSecret;
use serde_json::json;
use sha2::{Digest, Sha256};

use crate::runtime::{
    CallError, ConnectorError, Delivery, Loaded, Priority, Route, Selector, SignatureScheme,
    TokenLocation,
};
use crate::server::Hub;
use crate::store::{Ingested, NewDelivery, now_ms};

/// The tenant segment of tenant-less routes.
pub const ANY_TENANT: &str = "_";

/// Headers never stored in the log: they carry credentials.
const SECRET_HEADERS: &[&str] = &[
    "authorization",
    "cookie",
    "proxy-authorization",
    "x-api-key",
];

/// Answer for any unknown tenant, connector or route: the same either way, so a prober learns
/// nothing about which tenants exist.
fn not_found() -> Response {
    (
        StatusCode::NOT_FOUND,
        axum::Json(json!({ "error": "not found" })),
    )
        .into_response()
}

fn reject(status: StatusCode, message: impl Into<String>) -> Response {
    (status, axum::Json(json!({ "error": message.into() }))).into_response()
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

/// `/hooks/{tenant}/{connector}`.
pub async fn hook_bare(
    State(hub): State<Arc<Hub>>,
    Path((tenant, connector)): Path<(String, String)>,
    method: Method,
    query: RawQuery,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let incoming = Incoming {
        tenant,
        connector,
        route: String::new(),
        path_token: None,
        method,
        query: query.0,
        headers,
        body,
    };
    receive(hub, incoming).await
}

/// `/hooks/{tenant}/{connector}/{route}`.
pub async fn hook_route(
    State(hub): State<Arc<Hub>>,
    Path((tenant, connector, route)): Path<(String, String, String)>,
    method: Method,
    query: RawQuery,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let incoming = Incoming {
        tenant,
        connector,
        route,
        path_token: None,
        method,
        query: query.0,
        headers,
        body,
    };
    receive(hub, incoming).await
}

/// `/hooks/{tenant}/{connector}/{route}/{token}` (shared token in the path).
pub async fn hook_token(
    State(hub): State<Arc<Hub>>,
    Path((tenant, connector, route, token)): Path<(String, String, String, String)>,
    method: Method,
    query: RawQuery,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let incoming = Incoming {
        tenant,
        connector,
        route,
        path_token: Some(token),
        method,
        query: query.0,
        headers,
        body,
    };
    receive(hub, incoming).await
}

// No span per request: at 20,000 requests a second, creating, formatting and entering one cost
// several µs of CPU each. The few events below name tenant, connector and route themselves.
async fn receive(hub: Arc<Hub>, req: Incoming) -> Response {
    let received_at_ms = now_ms();
    hub.metrics.received.inc();
    let _in_flight = hub.metrics.webhooks_in_flight.enter();
    let any_tenant = req.tenant == ANY_TENANT;
    let Some(loaded) = hub.runtime.connector(&req.connector).cloned() else {
        hub.metrics.rejected_not_found.inc();
        return not_found();
    };
    let Some(route) = loaded.manifest.routes.iter().find(|r| r.name == req.route) else {
        hub.metrics.rejected_not_found.inc();
        return not_found();
    };
    // A tenant-less route is reached only without a tenant, and the other routes only with one.
    let tenant_ok = if any_tenant {
        route.tenant_lookup.is_some()
    } else {
        route.tenant_lookup.is_none()
            && hub
                .directory
                .tenant_config(&req.tenant, &req.connector)
                .is_some()
    };
    let token_in_path = matches!(
        route.signature,
        SignatureScheme::SharedToken(TokenLocation::Path)
    );
    if !tenant_ok || req.path_token.is_some() != token_in_path {
        hub.metrics.rejected_not_found.inc();
        return not_found();
    }
    if req.method != Method::POST
        && !route
            .extra_methods
            .iter()
            .any(|m| m.eq_ignore_ascii_case(req.method.as_str()))
    {
        return reject(
            StatusCode::METHOD_NOT_ALLOWED,
            format!("{} is not accepted here", req.method),
        );
    }
    let limit_key = if any_tenant {
        format!("{ANY_TENANT}/{}", req.connector)
    } else {
        req.tenant.clone()
    };
    if let Err(wait) = hub.limiter.check(&limit_key) {
        hub.metrics.rate_limited.inc();
        let mut resp = reject(StatusCode::TOO_MANY_REQUESTS, "rate limited");
        if let Ok(v) = HeaderValue::from_str(&wait.as_secs().max(1).to_string()) {
            resp.headers_mut().insert(header::RETRY_AFTER, v);
        }
        return resp;
    }

    let header_list: Vec<(String, String)> = req
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
    let signed = SignedRequest {
        method: req.method.as_str(),
        url: &signed_url,
        headers: &header_list,
        body: &req.body,
        path_token: req.path_token.as_deref(),
    };
    if let Err(response) = verify(&hub, &req.tenant, &loaded, route, &signed).await {
        hub.metrics.rejected_signature.inc();
        return response;
    }

    // What is stored: no credential headers, no token in the URL.
    let stored_headers: Vec<(String, String)> = header_list
        .iter()
        .filter(|(k, _)| !SECRET_HEADERS.contains(&k.as_str()) && !is_token_header(route, k))
        .cloned()
        .collect();
    let stored_url = redacted_url(&hub.public_base, &path, &req, route, &signed_url);

    // One delivery, or one per array item on a splitting route.
    let items: Vec<Vec<u8>> = if route.split_array {
        match serde_json::from_slice::<Vec<&serde_json::value::RawValue>>(&req.body) {
            Ok(items) => items
                .into_iter()
                .map(|i| i.get().as_bytes().to_vec())
                .collect(),
            Err(e) => {
                hub.metrics.rejected_bad_request.inc();
                return reject(
                    StatusCode::BAD_REQUEST,
                    format!("the body must be a JSON array: {e}"),
                );
            }
        }
    } else {
        vec![req.body.to_vec()]
    };
    let mut deliveries = Vec::with_capacity(items.len());
    let mut unrouted = 0usize;
    for item in items {
        let tenant = match &route.tenant_lookup {
            None => req.tenant.clone(),
            Some(lookup) => match lookup_tenant(&hub, &req.connector, lookup, &item) {
                Some(t) => t,
                None => {
                    unrouted += 1;
                    continue;
                }
            },
        };
        let body = pointer::Json::new(&item);
        let identity = match identity(route, &header_list, &body, req.query.as_deref()) {
            Ok(id) => id,
            // One malformed item must not make the provider retry the whole batch forever.
            Err(message) if route.split_array => {
                hub.metrics.rejected_bad_request.inc();
                tracing::warn!(tenant = %req.tenant, connector = %req.connector, route = %req.route, "item skipped: {message}");
                unrouted += 1;
                continue;
            }
            Err(message) => {
                hub.metrics.rejected_bad_request.inc();
                return reject(StatusCode::BAD_REQUEST, message);
            }
        };
        let event = route
            .event_type
            .as_ref()
            .and_then(|s| select(s, &header_list, &body, req.query.as_deref()));
        deliveries.push(NewDelivery {
            tenant,
            connector: req.connector.clone(),
            route: req.route.clone(),
            method: req.method.as_str().to_string(),
            identity,
            event,
            url: stored_url.clone(),
            headers: stored_headers.clone(),
            body: item,
            received_at_ms,
        });
    }
    if unrouted > 0 {
        tracing::warn!(
            connector = %req.connector,
            route = %req.route,
            unrouted,
            "items with no tenant for their {:?}; not stored",
            route.tenant_lookup.as_ref().map(|l| &l.item_pointer)
        );
    }
    let tenants: Vec<String> = deliveries.iter().map(|d| d.tenant.clone()).collect();
    let ingested = if deliveries.is_empty() {
        Vec::new()
    } else {
        match hub.store.ingest(deliveries).await {
            Ok(v) => v,
            Err(e) => {
                hub.metrics.store_failures.inc();
                tracing::error!(tenant = %req.tenant, connector = %req.connector, route = %req.route, "could not store delivery: {e}");
                let mut resp = reject(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "the hub cannot store this delivery now; retry later",
                );
                resp.headers_mut()
                    .insert(header::RETRY_AFTER, HeaderValue::from_static("5"));
                return resp;
            }
        }
    };
    let stored = ingested
        .iter()
        .filter(|i| matches!(i, Ingested::Stored(_)))
        .count();
    hub.metrics.stored.add(stored as u64);
    hub.metrics.duplicates.add((ingested.len() - stored) as u64);

    if route.sync_reply
        && let (Some(first), Some(tenant)) = (ingested.first(), tenants.first())
    {
        let delivery = Delivery {
            id: first.id().to_string(),
            route: req.route.clone(),
            method: req.method.as_str().to_string(),
            url: stored_url,
            headers: stored_headers,
            body: req.body.to_vec(),
            received_at_ms: received_at_ms as u64,
        };
        return respond(&hub, tenant, &req.connector, first.id(), delivery).await;
    }

    match ingested.as_slice() {
        [one] => {
            let label = if matches!(one, Ingested::Stored(_)) {
                "stored"
            } else {
                "duplicate"
            };
            (
                StatusCode::OK,
                axum::Json(json!({ "status": label, "id": one.id() })),
            )
                .into_response()
        }
        many => {
            let body = json!({ "stored": stored, "duplicates": many.len() - stored, "unrouted": unrouted });
            (StatusCode::OK, axum::Json(body)).into_response()
        }
    }
}

/// Runs the connector's `respond` for a sync route and answers with it; its writes are committed
/// before the answer goes out.
async fn respond(
    hub: &Hub,
    tenant: &str,
    connector: &str,
    id: i64,
    delivery: Delivery,
) -> Response {
    let Some(config) = hub.directory.tenant_config(tenant, connector) else {
        return not_found();
    };
    let called = hub
        .runtime
        .invoke(
            Priority::Answer,
            connector,
            tenant,
            config,
            move |store, c| c.hub_connector_handler().call_respond(store, &delivery),
        )
        .await;
    match called.result {
        Ok(reply) => {
            if let Err(e) = hub.store.apply(tenant, connector, called.effects).await {
                tracing::error!(
                    tenant,
                    connector,
                    delivery = id,
                    "could not store the reply's effects: {e}"
                );
                return reject(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "the hub cannot store this now; retry later",
                );
            }
            let mut resp = Response::new(axum::body::Body::from(reply.body));
            *resp.status_mut() = StatusCode::from_u16(reply.status).unwrap_or(StatusCode::OK);
            for (k, v) in reply.headers {
                if let (Ok(k), Ok(v)) = (
                    header::HeaderName::from_bytes(k.as_bytes()),
                    HeaderValue::from_str(&v),
                ) {
                    resp.headers_mut().insert(k, v);
                }
            }
            resp
        }
        Err(e) => {
            tracing::warn!(
                tenant,
                connector,
                delivery = id,
                "synchronous reply failed: {e}"
            );
            match e {
                CallError::Connector(ConnectorError::BadRequest(m)) => {
                    reject(StatusCode::BAD_REQUEST, m)
                }
                CallError::Connector(ConnectorError::Permanent(m)) => {
                    reject(StatusCode::UNPROCESSABLE_ENTITY, m)
                }
                _ => reject(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "the connector could not answer; the delivery is stored",
                ),
            }
        }
    }
}

/// The URL as stored: a path token or query token replaced by `***`.
fn redacted_url(base: &str, path: &str, req: &Incoming, route: &Route, signed_url: &str) -> String {
    match (&req.path_token, &req.query, &route.signature) {
        (Some(_), _, _) => format!("{base}{path}***"),
        (None, Some(q), SignatureScheme::SharedToken(TokenLocation::Query(name))) => {
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

/// The tenant whose connector config holds the item's value.
fn lookup_tenant(
    hub: &Hub,
    connector: &str,
    lookup: &crate::runtime::TenantLookup,
    item: &[u8],
) -> Option<String> {
    let value: serde_json::Value = serde_json::from_slice(item).ok()?;
    let wanted = match value.pointer(&lookup.item_pointer)? {
        serde_json::Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    let as_text = |v: &serde_json::Value| match v {
        serde_json::Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    hub.directory.tenants.iter().find_map(|(tenant, _, _)| {
        let config = hub.directory.tenant_config(tenant, connector)?;
        let held = config.get(&lookup.config_key)?;
        let matches = match held {
            serde_json::Value::Array(list) => list.iter().any(|v| as_text(v) == wanted),
            v => as_text(v) == wanted,
        };
        matches.then(|| tenant.clone())
    })
}

fn is_token_header(route: &Route, name: &str) -> bool {
    matches!(&route.signature, SignatureScheme::SharedToken(TokenLocation::Header(h)) if h.eq_ignore_ascii_case(name))
}

/// The parts of the request a signature covers.
struct SignedRequest<'a> {
    method: &'a str,
    url: &'a str,
    headers: &'a [(String, String)],
    body: &'a [u8],
    path_token: Option<&'a str>,
}

/// Verifies the route's signature; `Err` is the response to send.
async fn verify(
    hub: &Hub,
    tenant: &str,
    loaded: &Loaded,
    route: &Route,
    req: &SignedRequest<'_>,
) -> Result<(), Response> {
    let connector = loaded.id.as_str();
    let scheme = match &route.signature {
        SignatureScheme::None => return Ok(()),
        SignatureScheme::Custom => return verify_custom(hub, tenant, connector, route, req).await,
        SignatureScheme::StandardWebhooks => schemes::Scheme::StandardWebhooks,
        SignatureScheme::Retell => schemes::Scheme::Retell,
        SignatureScheme::Twilio => schemes::Scheme::Twilio,
        SignatureScheme::Hubspot => schemes::Scheme::HubSpot,
        SignatureScheme::SharedToken(loc) => schemes::Scheme::SharedToken(match loc {
            TokenLocation::Header(h) => schemes::TokenLocation::Header(h.clone()),
            TokenLocation::Query(q) => schemes::TokenLocation::Query(q.clone()),
            TokenLocation::Path => schemes::TokenLocation::Path,
        }),
    };
    // On a tenant-less route this finds the connector's global credential.
    let Some(secret) = hub.vault.get(tenant, connector, &route.credential) else {
        tracing::error!(
            tenant,
            connector,
            route = %route.name,
            "no credential `{}` for this tenant or as a global fallback: run `hub check`",
            route.credential
        );
        return Err(reject(
            StatusCode::UNAUTHORIZED,
            "signature cannot be verified",
        ));
    };
    let request = schemes::Request {
        method: req.method,
        url: req.url,
        headers: req.headers,
        body: req.body,
        path_token: req.path_token,
    };
    let policy = schemes::Policy {
        now_ms: now_ms() as u64,
        tolerance_secs: route.tolerance_secs,
    };
    match schemes::verify(&scheme, secret.expose_secret(), &request, &policy) {
        Ok(()) => Ok(()),
        Err(schemes::VerifyError::BadSecret(m)) => {
            tracing::error!(tenant, connector, route = %route.name, "credential `{}` is unusable: {m}", route.credential);
            Err(reject(
                StatusCode::UNAUTHORIZED,
                "signature cannot be verified",
            ))
        }
        Err(e) => {
            tracing::info!(tenant, connector, route = %route.name, "rejected: {e}");
            Err(reject(
                StatusCode::UNAUTHORIZED,
                format!("invalid signature: {e}"),
            ))
        }
    }
}

async fn verify_custom(
    hub: &Hub,
    tenant: &str,
    connector: &str,
    route: &Route,
    req: &SignedRequest<'_>,
) -> Result<(), Response> {
    let config = hub
        .directory
        .tenant_config(tenant, connector)
        .unwrap_or_default();
    let delivery = Delivery {
        id: String::new(),
        route: route.name.clone(),
        method: req.method.to_string(),
        url: req.url.to_string(),
        headers: req.headers.to_vec(),
        body: req.body.to_vec(),
        received_at_ms: now_ms() as u64,
    };
    let called = hub
        .runtime
        .invoke(
            Priority::Answer,
            connector,
            tenant,
            config,
            move |store, c| c.hub_connector_handler().call_verify(store, &delivery),
        )
        .await;
    match called.result {
        Ok(true) => Ok(()),
        Ok(false) => Err(reject(StatusCode::UNAUTHORIZED, "invalid signature")),
        Err(e) => {
            tracing::warn!(tenant, connector, route = %route.name, "custom verification failed: {e}");
            Err(reject(
                StatusCode::UNAUTHORIZED,
                "signature cannot be verified",
            ))
        }
    }
}

/// Reads one selector's value from a request.
fn select(
    selector: &Selector,
    headers: &[(String, String)],
    body: &pointer::Json<'_>,
    query: Option<&str>,
) -> Option<String> {
    match selector {
        Selector::Header(name) => headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.clone()),
        Selector::Json(pointer) => body.select(pointer),
        Selector::Form(name) => form_urlencoded::parse(body.raw())
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.into_owned()),
        Selector::Query(name) => form_urlencoded::parse(query.unwrap_or("").as_bytes())
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.into_owned()),
    }
}

/// The delivery's identity: the route name and its selectors' values, or the body's SHA-256.
fn identity(
    route: &Route,
    headers: &[(String, String)],
    body: &pointer::Json<'_>,
    query: Option<&str>,
) -> Result<String, String> {
    if route.identity.is_empty() {
        return Ok(format!(
            "{}:sha256:{}",
            route.name,
            hex::encode(Sha256::digest(body.raw()))
        ));
    }
    let mut parts = vec![route.name.clone()];
    for selector in &route.identity {
        match select(selector, headers, body, query) {
            Some(v) => parts.push(v),
            None => return Err(format!("the delivery has no {}", describe(selector))),
        }
    }
    Ok(parts.join(":"))
}

fn describe(selector: &Selector) -> String {
    match selector {
        Selector::Header(h) => format!("`{h}` header"),
        Selector::Json(p) => format!("JSON field `{p}`"),
        Selector::Form(f) => format!("form field `{f}`"),
        Selector::Query(q) => format!("query parameter `{q}`"),
    }
}
