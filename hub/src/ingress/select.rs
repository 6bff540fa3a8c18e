//! The selection stage: what a verified request becomes in the log. One delivery, or one per
//! item of a splitting route's array; each with its tenant (a tenant-less route's found by the
//! item's value in the tenants' connector configs), its identity (the route's selectors, or the
//! body's SHA-256) and its event type.

use sha2::{Digest, Sha256};

use super::{Incoming, Rejection, Stored, Target, pointer};

use crate::id::TenantId;
use crate::runtime::{Route, Selector, TenantLookup};
use crate::state::Hub;
use crate::store::NewDelivery;

/// Items of a split array left out of the log: one bad item must not make the provider retry
/// the whole batch forever, so it is skipped and reported in the answer instead.
#[derive(Debug, Default)]
pub(super) struct Skipped {
    /// Items whose value names no tenant (a tenant-less route).
    pub unrouted: usize,
    /// Items that are not what the route takes (no identity): how many.
    pub invalid: usize,
    /// The first of them (at most [`REPORTED`]): the item's index and what is wrong.
    pub reported: Vec<(usize, String)>,
}

/// Most invalid items an answer names.
pub(super) const REPORTED: usize = 20;

/// The request's deliveries, and the items skipped.
pub(super) fn deliveries(
    hub: &Hub,
    req: &Incoming,
    target: &Target,
    stored: &Stored,
    received_at_ms: i64,
) -> Result<(Vec<NewDelivery>, Skipped), Rejection> {
    let route = target.route();
    let items: Vec<Vec<u8>> = if route.split_array {
        serde_json::from_slice::<Vec<&serde_json::value::RawValue>>(&req.body)
            .map_err(|e| Rejection::BadRequest(format!("the body must be a JSON array: {e}")))?
            .into_iter()
            .map(|i| i.get().as_bytes().to_vec())
            .collect()
    } else {
        vec![req.body.to_vec()]
    };
    let mut deliveries = Vec::with_capacity(items.len());
    let mut skipped = Skipped::default();
    for (index, item) in items.into_iter().enumerate() {
        let tenant = match &route.tenant_lookup {
            None => target.tenant.clone(),
            Some(lookup) => match lookup_tenant(hub, target, lookup, &item) {
                Some(t) => t,
                None => {
                    skipped.unrouted += 1;
                    continue;
                }
            },
        };
        let body = pointer::Json::new(&item);
        let identity = match identity(route, &stored.all_headers, &body, req.query.as_deref()) {
            Ok(id) => id,
            Err(message) if route.split_array => {
                hub.metrics.rejected_bad_request.inc();
                tracing::warn!(tenant = %req.tenant, connector = %req.connector, route = %req.route, index, "item skipped: {message}");
                skipped.invalid += 1;
                if skipped.reported.len() < REPORTED {
                    skipped.reported.push((index, message));
                }
                continue;
            }
            Err(message) => return Err(Rejection::BadRequest(message)),
        };
        let event = route
            .event_type
            .as_ref()
            .and_then(|s| select(s, &stored.all_headers, &body, req.query.as_deref()));
        deliveries.push(NewDelivery {
            tenant,
            connector: target.loaded.id.clone(),
            route: req.route.clone(),
            method: req.method.as_str().to_string(),
            identity,
            event,
            url: stored.url.clone(),
            headers: stored.headers.clone(),
            body: item,
            received_at_ms,
            trace: None,
        });
    }
    if skipped.unrouted > 0 {
        tracing::warn!(
            connector = %req.connector,
            route = %req.route,
            unrouted = skipped.unrouted,
            "items with no tenant for their {:?}; not stored",
            route.tenant_lookup.as_ref().map(|l| &l.item_pointer)
        );
    }
    Ok((deliveries, skipped))
}

/// The tenant whose connector config holds the item's value.
fn lookup_tenant(
    hub: &Hub,
    target: &Target,
    lookup: &TenantLookup,
    item: &[u8],
) -> Option<TenantId> {
    let value: serde_json::Value = serde_json::from_slice(item).ok()?;
    let wanted = match value.pointer(&lookup.item_pointer)? {
        serde_json::Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    let as_text = |v: &serde_json::Value| match v {
        serde_json::Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    hub.directory.tenants().find_map(|(id, tenant)| {
        let config = tenant.connectors.get(&target.loaded.id)?;
        let held = config.get(&lookup.config_key)?;
        let matches = match held {
            serde_json::Value::Array(list) => list.iter().any(|v| as_text(v) == wanted),
            v => as_text(v) == wanted,
        };
        matches.then(|| id.clone())
    })
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

/// The delivery's identity: the route name and its selectors' values, or the body's SHA-256
/// (no selectors, or one finds nothing on a route whose identity is optional).
fn identity(
    route: &Route,
    headers: &[(String, String)],
    body: &pointer::Json<'_>,
    query: Option<&str>,
) -> Result<String, String> {
    let hashed = || {
        format!(
            "{}:sha256:{}",
            route.name,
            hex::encode(Sha256::digest(body.raw()))
        )
    };
    if route.identity.is_empty() {
        return Ok(hashed());
    }
    let mut parts = vec![route.name.clone()];
    for selector in &route.identity {
        match select(selector, headers, body, query) {
            Some(v) => parts.push(v),
            None if route.identity_optional => return Ok(hashed()),
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
