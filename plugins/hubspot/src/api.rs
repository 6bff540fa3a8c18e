//! The HubSpot CRM API (v3, `https://api.hubapi.com`, `Authorization: Bearer <access_token>`):
//! URLs, request bodies and answer shapes, the rate-limit rules (pure, tested), and the calls.
//!
//! Endpoints used (HubSpot's CRM v3 reference; the newest docs also offer date-versioned paths,
//! `/crm/objects/2026-03/...`, with the same bodies):
//! - `GET /crm/v3/objects/contacts/{id}?properties=email,firstname,lastname,phone[,...]`
//! - `POST /crm/v3/objects/contacts/search` `{filterGroups, sorts, properties, limit, after}`
//!   -> `{total, results, paging.next.after}`; at most 10,000 results per query.
//! - `POST /crm/v3/objects/contacts/batch/upsert` `{inputs: [{id, idProperty, properties}]}`
//!   -> `200`/`207` `{status, results: [{id, properties, createdAt, updatedAt, new}], errors}`.
//!
//! Rate limits: `429` with `Retry-After` (seconds) when given; otherwise the
//! `X-HubSpot-RateLimit-*` headers say which window is exhausted: `-Remaining: 0` waits
//! `-Interval-Milliseconds` (the burst window, 10 s), `-Secondly-Remaining: 0` one second,
//! `-Daily-Remaining: 0` an hour (the host's longest backoff).

use plugin_sdk::{Error, HttpResponse, Retryable, http};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

/// The API origin (the manifest's one outbound host).
pub const BASE: &str = "https://api.hubapi.com";
/// The credential holding the tenant's private-app (or OAuth) access token.
pub const TOKEN: &str = "access_token";
/// Contact properties always asked for.
pub const DEFAULT_PROPERTIES: [&str; 4] = ["email", "firstname", "lastname", "phone"];
/// Contacts per search page (HubSpot's maximum).
pub const PAGE_LIMIT: u32 = 100;
/// Default burst window when the headers name none.
const DEFAULT_INTERVAL_MS: u64 = 10_000;

/// A contact as the API returns it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct ApiContact {
    /// The object id.
    pub id: String,
    /// Property values (strings, or null when empty).
    pub properties: Map<String, Value>,
    /// ISO 8601 creation time.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub created_at: Option<String>,
    /// ISO 8601 time of the last change.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub updated_at: Option<String>,
    /// Whether it is archived (deleted).
    pub archived: bool,
    /// Batch upsert: whether it was created by this call.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub new: Option<bool>,
}

/// A search page.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct SearchPage {
    /// The contacts.
    pub results: Vec<ApiContact>,
    /// Where the next page starts.
    pub paging: Option<Paging>,
}

/// `paging` of a list answer.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct Paging {
    /// The next page.
    pub next: Option<NextPage>,
}

/// `paging.next`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct NextPage {
    /// The cursor to send as `after`.
    pub after: Option<String>,
}

impl SearchPage {
    /// The cursor of the next page; none (the end) when absent, empty or unchanged.
    pub fn next_after(&self, previous: Option<&str>) -> Option<String> {
        let after = self.paging.as_ref()?.next.as_ref()?.after.as_deref()?;
        (!after.is_empty() && Some(after) != previous).then(|| after.to_string())
    }
}

/// The answer of a batch call.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct BatchAnswer {
    /// The objects written.
    pub results: Vec<ApiContact>,
    /// Per-input errors (a `207` answer).
    pub errors: Vec<Value>,
}

/// Whether a property name is safe to put in a URL and a body (HubSpot internal names).
pub fn valid_property(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 100
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-'))
}

/// The properties to ask for: the defaults, then the valid extra names, without repeats.
pub fn properties(extra: &[String]) -> Vec<String> {
    let mut out: Vec<String> = DEFAULT_PROPERTIES
        .iter()
        .map(|p| (*p).to_string())
        .collect();
    for p in extra {
        if valid_property(p) && !out.contains(p) {
            out.push(p.clone());
        }
    }
    out
}

/// `GET /crm/v3/objects/contacts/{id}?properties=...`.
pub fn contact_url(id: &str, properties: &[String]) -> String {
    let id: String = id.chars().filter(char::is_ascii_digit).collect();
    format!(
        "{BASE}/crm/v3/objects/contacts/{id}?properties={}",
        properties.join(",")
    )
}

/// `POST /crm/v3/objects/contacts/search`.
pub fn search_url() -> String {
    format!("{BASE}/crm/v3/objects/contacts/search")
}

/// `POST /crm/v3/objects/contacts/batch/upsert`.
pub fn upsert_url() -> String {
    format!("{BASE}/crm/v3/objects/contacts/batch/upsert")
}

/// The search body: contacts modified at or after `since_ms`, oldest change first.
pub fn search_body(since_ms: i64, properties: &[String], after: Option<&str>) -> Value {
    let mut body = json!({
        "filterGroups": [{ "filters": [{
            "propertyName": "lastmodifieddate",
            "operator": "GTE",
            "value": since_ms.to_string(),
        }]}],
        "sorts": [{ "propertyName": "lastmodifieddate", "direction": "ASCENDING" }],
        "properties": properties,
        "limit": PAGE_LIMIT,
    });
    if let (Some(after), Some(map)) = (after, body.as_object_mut()) {
        map.insert("after".into(), json!(after));
    }
    body
}

/// The batch-upsert body for one contact by email.
pub fn upsert_body(email: &str, properties: &Map<String, Value>) -> Value {
    json!({ "inputs": [{ "id": email, "idProperty": "email", "properties": properties }] })
}

fn header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.trim())
}

fn header_u64(headers: &[(String, String)], name: &str) -> Option<u64> {
    header(headers, name).and_then(|v| v.parse().ok())
}

/// How long the rate-limit headers say to wait before the next call, if a window is spent.
pub fn exhausted_wait_ms(headers: &[(String, String)]) -> Option<u64> {
    if header_u64(headers, "x-hubspot-ratelimit-remaining") == Some(0) {
        return Some(
            header_u64(headers, "x-hubspot-ratelimit-interval-milliseconds")
                .unwrap_or(DEFAULT_INTERVAL_MS),
        );
    }
    if header_u64(headers, "x-hubspot-ratelimit-secondly-remaining") == Some(0) {
        return Some(1_000);
    }
    if header_u64(headers, "x-hubspot-ratelimit-daily-remaining") == Some(0) {
        return Some(3_600_000);
    }
    None
}

/// How long to wait after a `429`: `Retry-After`, else what the rate-limit headers say.
pub fn retry_wait_ms(headers: &[(String, String)]) -> Option<u64> {
    match header(headers, "retry-after") {
        Some(v) => Some(v.parse::<u64>().map_or(60_000, |s| s.saturating_mul(1000))),
        None => exhausted_wait_ms(headers),
    }
}

/// HubSpot's error message from an error body (`{"message": ...}`), else the body's start.
pub fn error_message(body: &[u8]) -> String {
    serde_json::from_slice::<Value>(body)
        .ok()
        .and_then(|v| v.get("message").and_then(Value::as_str).map(str::to_string))
        .unwrap_or_else(|| String::from_utf8_lossy(body).chars().take(300).collect())
}

/// The error an answer means, if it is not a success: 408, 429 and 5xx are retryable (with the
/// wait the headers ask for), everything else permanent.
pub fn failure(status: u16, headers: &[(String, String)], body: &[u8]) -> Option<Error> {
    if (200..300).contains(&status) {
        return None;
    }
    let message = format!("HubSpot answered {status}: {}", error_message(body));
    Some(match status {
        429 => Error::Retryable(Retryable {
            message,
            retry_after_ms: retry_wait_ms(headers).or(Some(DEFAULT_INTERVAL_MS)),
        }),
        408 | 500..=599 => Error::Retryable(Retryable {
            message,
            retry_after_ms: header(headers, "retry-after").and_then(|_| retry_wait_ms(headers)),
        }),
        401 => Error::permanent(format!("{message} (is the `{TOKEN}` credential right?)")),
        _ => Error::permanent(message),
    })
}

/// A one-line description of an SDK error, for logs.
pub fn describe(e: &Error) -> String {
    match e {
        Error::Retryable(r) => format!("retryable: {}", r.message),
        Error::Permanent(m) => format!("permanent: {m}"),
        Error::BadRequest(m) => format!("bad request: {m}"),
        Error::Declined(m) => format!("declined: {m}"),
    }
}

/// Ok for a 2xx answer, else [`failure`].
///
/// # Errors
/// As [`failure`].
pub fn check(resp: HttpResponse) -> Result<HttpResponse, Error> {
    match failure(resp.status, &resp.headers, &resp.body) {
        None => Ok(resp),
        Some(e) => Err(e),
    }
}

/// Fetches one contact; `None` when HubSpot has no such (live) contact.
///
/// # Errors
/// As [`failure`], and transport failures (retryable).
pub fn get_contact(
    id: &str,
    properties: &[String],
    timeout_ms: u32,
) -> Result<Option<ApiContact>, Error> {
    let resp = http::Request::get(contact_url(id, properties))
        .bearer(TOKEN)
        .timeout_ms(timeout_ms)
        .send()?;
    if resp.status == 404 {
        return Ok(None);
    }
    check(resp)?.json().map(Some)
}

/// Runs one search; also returns how long to pause if a rate-limit window is now spent.
///
/// # Errors
/// As [`get_contact`].
pub fn search(body: &Value, timeout_ms: u32) -> Result<(SearchPage, Option<u64>), Error> {
    let resp = check(
        http::Request::post(search_url())
            .bearer(TOKEN)
            .timeout_ms(timeout_ms)
            .json(body)?
            .send()?,
    )?;
    let pause = exhausted_wait_ms(&resp.headers);
    Ok((resp.json()?, pause))
}

/// Upserts one contact by email.
///
/// # Errors
/// As [`get_contact`].
pub fn upsert(body: &Value, timeout_ms: u32) -> Result<BatchAnswer, Error> {
    check(
        http::Request::post(upsert_url())
            .bearer(TOKEN)
            .timeout_ms(timeout_ms)
            .json(body)?
            .send()?,
    )?
    .json()
}

#[cfg(test)]
mod tests;
