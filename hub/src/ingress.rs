//! `POST /hooks/{tenant}/{connector}[/{route}[/{token}]]`: verify, store, acknowledge.
//!
//! The order is the contract with providers: find the tenant and route (404, the same body for
//! an unknown tenant or connector), rate-limit per tenant (429 + `Retry-After`), verify the
//! signature natively on the raw bytes (401; no connector code runs), find the delivery's
//! identity, store it durably and deduplicated (503 if the store cannot commit), and only then
//! answer 2xx — or, on a `sync-reply` route, the connector's answer.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use plugin_sdk::schemes;
use secrecy::ExposeSecret;
use serde_json::json;
use sha2::{Digest, Sha256};

use crate::runtime::{CallError, Delivery, Route, Selector, SignatureScheme, TokenLocation};
use crate::server::Hub;
use crate::store::{Ingested, NewDelivery, now_ms};

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

/// `POST /hooks/{tenant}/{connector}`.
pub async fn hook_bare(
    State(hub): State<Arc<Hub>>,
    Path((tenant, connector)): Path<(String, String)>,
    query: RawQuery,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    receive(
        hub,
        tenant,
        connector,
        String::new(),
        None,
        query.0,
        headers,
        body,
    )
    .await
}

/// `POST /hooks/{tenant}/{connector}/{route}`.
pub async fn hook_route(
    State(hub): State<Arc<Hub>>,
    Path((tenant, connector, route)): Path<(String, String, String)>,
    query: RawQuery,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    receive(hub, tenant, connector, route, None, query.0, headers, body).await
}

/// `POST /hooks/{tenant}/{connector}/{route}/{token}` (shared token in the path).
pub async fn hook_token(
    State(hub): State<Arc<Hub>>,
    Path((tenant, connector, route, token)): Path<(String, String, String, String)>,
    query: RawQuery,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    receive(
        hub,
        tenant,
        connector,
        route,
        Some(token),
        query.0,
        headers,
        body,
    )
    .await
}

#[allow(clippy::too_many_arguments)]
#[tracing::instrument(name = "hook", skip_all, fields(tenant = %tenant, connector = %connector, route = %route_name))]
async fn receive(
    hub: Arc<Hub>,
    tenant: String,
    connector: String,
    route_name: String,
    path_token: Option<String>,
    query: Option<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let received_at_ms = now_ms();
    hub.metrics.received.inc();
    let Some(config) = hub.directory.tenant_config(&tenant, &connector) else {
        hub.metrics.rejected_not_found.inc();
        return not_found();
    };
    let Some(loaded) = hub.runtime.connector(&connector).cloned() else {
        hub.metrics.rejected_not_found.inc();
        return not_found();
    };
    let Some(route) = loaded
        .manifest
        .routes
        .iter()
        .find(|r| r.name == route_name)
        .cloned()
    else {
        hub.metrics.rejected_not_found.inc();
        return not_found();
    };
    let token_in_path = matches!(
        route.signature,
        SignatureScheme::SharedToken(TokenLocation::Path)
    );
    if path_token.is_some() != token_in_path {
        hub.metrics.rejected_not_found.inc();
        return not_found();
    }
    if let Err(wait) = hub.limiter.check(&tenant) {
        hub.metrics.rate_limited.inc();
        let mut resp = reject(StatusCode::TOO_MANY_REQUESTS, "rate limited");
        let secs = wait.as_secs().max(1).to_string();
        if let Ok(v) = HeaderValue::from_str(&secs) {
            resp.headers_mut().insert(header::RETRY_AFTER, v);
        }
        return resp;
    }

    let header_list: Vec<(String, String)> = headers
        .iter()
        .map(|(k, v)| {
            (
                k.as_str().to_string(),
                String::from_utf8_lossy(v.as_bytes()).into_owned(),
            )
        })
        .collect();
    let path = match &path_token {
        Some(_) => format!("/hooks/{tenant}/{connector}/{route_name}/"),
        None if route_name.is_empty() => format!("/hooks/{tenant}/{connector}"),
        None => format!("/hooks/{tenant}/{connector}/{route_name}"),
    };
    let signed_url = {
        let base = hub.public_base.as_str();
        let tail = path_token.as_deref().unwrap_or("");
        match &query {
            Some(q) => format!("{base}{path}{tail}?{q}"),
            None => format!("{base}{path}{tail}"),
        }
    };

    if let Err(response) = verify(
        &hub,
        &tenant,
        &connector,
        &route,
        &signed_url,
        &header_list,
        &body,
        path_token.as_deref(),
    )
    .await
    {
        hub.metrics.rejected_signature.inc();
        return response;
    }

    let identity = match identity(&route, &header_list, &body, query.as_deref()) {
        Ok(id) => id,
        Err(message) => {
            hub.metrics.rejected_bad_request.inc();
            return reject(StatusCode::BAD_REQUEST, message);
        }
    };
    let event = route
        .event_type
        .as_ref()
        .and_then(|s| select(s, &header_list, &body, query.as_deref()));

    // What is stored: no credential headers, no token in the URL.
    let stored_headers: Vec<(String, String)> = header_list
        .iter()
        .filter(|(k, _)| !SECRET_HEADERS.contains(&k.as_str()) && !is_token_header(&route, k))
        .cloned()
        .collect();
    let stored_url = match (&path_token, &query, &route.signature) {
        (Some(_), _, _) => format!("{}{path}***", hub.public_base),
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
            format!("{}{path}?{}", hub.public_base, redacted.join("&"))
        }
        _ => signed_url.clone(),
    };

    let delivery = NewDelivery {
        tenant: tenant.clone(),
        connector: connector.clone(),
        route: route_name.clone(),
        identity,
        event,
        url: stored_url.clone(),
        headers: stored_headers.clone(),
        body: body.to_vec(),
        received_at_ms,
    };
    let ingested = match hub.store.ingest(vec![delivery]).await {
        Ok(mut v) => match v.pop() {
            Some(i) => i,
            None => return reject(StatusCode::SERVICE_UNAVAILABLE, "not stored"),
        },
        Err(e) => {
            hub.metrics.store_failures.inc();
            tracing::error!("could not store delivery: {e}");
            let mut resp = reject(
                StatusCode::SERVICE_UNAVAILABLE,
                "the hub cannot store this delivery now; retry later",
            );
            resp.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("5"));
            return resp;
        }
    };
    match ingested {
        Ingested::Stored(_) => hub.metrics.stored.inc(),
        Ingested::Duplicate(_) => hub.metrics.duplicates.inc(),
    }

    if route.sync_reply {
        let delivery = Delivery {
            id: ingested.id().to_string(),
            route: route_name,
            url: stored_url,
            headers: stored_headers,
            body: body.to_vec(),
            received_at_ms: received_at_ms as u64,
        };
        let called = hub
            .runtime
            .invoke(&connector, &tenant, config, move |store, c| {
                c.hub_connector_handler().call_respond(store, &delivery)
            })
            .await;
        return match called.result {
            Ok(reply) => {
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
                tracing::warn!(delivery = ingested.id(), "synchronous reply failed: {e}");
                let status = match e {
                    CallError::Connector(crate::runtime::ConnectorError::BadRequest(_)) => {
                        StatusCode::BAD_REQUEST
                    }
                    _ => StatusCode::INTERNAL_SERVER_ERROR,
                };
                reject(
                    status,
                    "the connector could not answer; the delivery is stored",
                )
            }
        };
    }

    let (status, label) = match ingested {
        Ingested::Stored(_) => (StatusCode::OK, "stored"),
        Ingested::Duplicate(_) => (StatusCode::OK, "duplicate"),
    };
    (
        status,
        axum::Json(json!({ "status": label, "id": ingested.id() })),
    )
        .into_response()
}

fn is_token_header(route: &Route, name: &str) -> bool {
    matches!(&route.signature, SignatureScheme::SharedToken(TokenLocation::Header(h)) if h.eq_ignore_ascii_case(name))
}

/// Verifies the route's signature; `Err` is the response to send.
#[allow(clippy::too_many_arguments)]
async fn verify(
    hub: &Hub,
    tenant: &str,
    connector: &str,
    route: &Route,
    url: &str,
    headers: &[(String, String)],
    body: &[u8],
    path_token: Option<&str>,
) -> Result<(), Response> {
    let scheme = match &route.signature {
        SignatureScheme::None => return Ok(()),
        SignatureScheme::Custom => {
            return verify_custom(hub, tenant, connector, route, url, headers, body).await;
        }
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
    let Some(secret) = hub.vault.get(tenant, connector, &route.credential) else {
        tracing::error!(
            "no credential `{}` for this tenant or as a global fallback: run `hub check`",
            route.credential
        );
        return Err(reject(
            StatusCode::UNAUTHORIZED,
            "signature cannot be verified",
        ));
    };
    let request = schemes::Request {
        method: "POST",
        url,
        headers,
        body,
        path_token,
    };
    let policy = schemes::Policy {
        now_ms: now_ms() as u64,
        tolerance_secs: route.tolerance_secs,
    };
    match schemes::verify(&scheme, secret.expose_secret(), &request, &policy) {
        Ok(()) => Ok(()),
        Err(schemes::VerifyError::BadSecret(m)) => {
            tracing::error!("credential `{}` is unusable: {m}", route.credential);
            Err(reject(
                StatusCode::UNAUTHORIZED,
                "signature cannot be verified",
            ))
        }
        Err(e) => {
            tracing::info!("rejected: {e}");
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
    url: &str,
    headers: &[(String, String)],
    body: &[u8],
) -> Result<(), Response> {
    let Some(config) = hub.directory.tenant_config(tenant, connector) else {
        return Err(not_found());
    };
    let delivery = Delivery {
        id: String::new(),
        route: route.name.clone(),
        url: url.to_string(),
        headers: headers.to_vec(),
        body: body.to_vec(),
        received_at_ms: now_ms() as u64,
    };
    let called = hub
        .runtime
        .invoke(connector, tenant, config, move |store, c| {
            c.hub_connector_handler().call_verify(store, &delivery)
        })
        .await;
    match called.result {
        Ok(true) => Ok(()),
        Ok(false) => Err(reject(StatusCode::UNAUTHORIZED, "invalid signature")),
        Err(e) => {
            tracing::warn!("custom verification failed: {e}");
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
    body: &[u8],
    query: Option<&str>,
) -> Option<String> {
    match selector {
        Selector::Header(name) => headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.clone()),
        Selector::Json(pointer) => {
            let value: serde_json::Value = serde_json::from_slice(body).ok()?;
            match value.pointer(pointer)? {
                serde_json::Value::String(s) => Some(s.clone()),
                serde_json::Value::Null => None,
                other => Some(other.to_string()),
            }
        }
        Selector::Form(name) => form_urlencoded::parse(body)
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
    body: &[u8],
    query: Option<&str>,
) -> Result<String, String> {
    if route.identity.is_empty() {
        return Ok(format!(
            "{}:sha256:{}",
            route.name,
            hex::encode(Sha256::digest(body))
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
