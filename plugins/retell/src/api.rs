//! The Retell REST API: URLs, request bodies and page shapes (pure, tested), and the few
//! calls that send them through the host.
//!
//! Endpoints, checked against the OpenAPI copy (`retell-openapi.yaml`) and Retell's current
//! API reference where the copy is behind:
//! - `GET /v2/get-call/{call_id}` -> `V2CallResponse` (in the copy).
//! - `POST /v3/list-calls` `{filter_criteria: CallFilter, sort_order, limit (<= 1000),
//!   pagination_key}` -> `{items, has_more, pagination_key}`. The copy only has the older
//!   `POST /v2/list-calls` (threshold filters, bare array answer); its `CallFilter` schema is
//!   the v3 one: `start_timestamp` is a `NumberFilter` `{"type":"number","op":"ge","value":ms}`
//!   and agents are `agent: [{"agent_id": ...}]`. Retell's docs say v3 items omit
//!   `transcript`, `transcript_object` and `recording_url`: fetch them with get-call.
//! - `POST /v2/list-agents?limit=&pagination_key=` body `{}` -> `{items, has_more,
//!   pagination_key}` (Retell's docs; the copy only has `GET /list-agents`, a bare array).
//! - `GET /v2/list-phone-numbers?limit=&pagination_key=` -> `{items, has_more,
//!   pagination_key}` of `PhoneNumberResponse` (in the copy).

use plugin_sdk::{Error, http};
use serde::Deserialize;
use serde_json::{Map, Value, json};

use crate::model::CallObject;

/// The API origin (also the manifest's one outbound host).
pub const BASE: &str = "https://api.retellai.com";
/// The credential holding the tenant's Retell API key.
pub const CREDENTIAL: &str = "api_key";
/// Calls per `list-calls` page.
pub const CALLS_PAGE_LIMIT: u32 = 100;
/// Agents or numbers per page.
pub const LIST_PAGE_LIMIT: u32 = 1000;

/// One page of a paginated Retell list.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct Page {
    /// The page's items, as sent (parsed one by one so a bad item does not sink the page).
    pub items: Vec<Value>,
    /// Whether more pages follow.
    pub has_more: bool,
    /// The cursor for the next page.
    pub pagination_key: Option<String>,
}

impl Page {
    /// The cursor to continue with, if there is a next page. A page that claims more but
    /// gives no new cursor ends the listing, so a misbehaving API cannot loop us forever.
    pub fn next_key(&self, previous: Option<&str>) -> Option<String> {
        match self.pagination_key.as_deref() {
            Some(k) if self.has_more && !k.is_empty() && Some(k) != previous => Some(k.to_string()),
            _ => None,
        }
    }
}

/// Percent-encodes everything but RFC 3986 unreserved characters.
pub fn encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// `GET /v2/get-call/{call_id}`.
pub fn get_call_url(call_id: &str) -> String {
    format!("{BASE}/v2/get-call/{}", encode(call_id))
}

/// `POST /v3/list-calls`.
pub fn list_calls_url() -> String {
    format!("{BASE}/v3/list-calls")
}

/// The `list-calls` body: newest first, calls that started at or after `since_ms`, only the
/// tenant's agents when it names them, continuing from `pagination_key`.
pub fn list_calls_body(
    since_ms: i64,
    agent_ids: Option<&[String]>,
    pagination_key: Option<&str>,
) -> Value {
    let mut filter = Map::new();
    filter.insert(
        "start_timestamp".into(),
        json!({ "type": "number", "op": "ge", "value": since_ms }),
    );
    if let Some(ids) = agent_ids.filter(|ids| !ids.is_empty()) {
        let agents: Vec<Value> = ids.iter().map(|id| json!({ "agent_id": id })).collect();
        filter.insert("agent".into(), Value::Array(agents));
    }
    let mut body = Map::new();
    body.insert("limit".into(), json!(CALLS_PAGE_LIMIT));
    body.insert("sort_order".into(), json!("descending"));
    body.insert("filter_criteria".into(), Value::Object(filter));
    if let Some(key) = pagination_key {
        body.insert("pagination_key".into(), json!(key));
    }
    Value::Object(body)
}

fn paged_url(path: &str, pagination_key: Option<&str>) -> String {
    let mut url = format!("{BASE}{path}?limit={LIST_PAGE_LIMIT}");
    if let Some(key) = pagination_key {
        url.push_str("&pagination_key=");
        url.push_str(&encode(key));
    }
    url
}

/// `POST /v2/list-agents?limit=...[&pagination_key=...]`.
pub fn list_agents_url(pagination_key: Option<&str>) -> String {
    paged_url("/v2/list-agents", pagination_key)
}

/// `GET /v2/list-phone-numbers?limit=...[&pagination_key=...]`.
pub fn list_phone_numbers_url(pagination_key: Option<&str>) -> String {
    paged_url("/v2/list-phone-numbers", pagination_key)
}

/// Whether an agent belongs to the tenant. With no `agent_ids` configured, every agent does;
/// with a list, only the listed ones (a missing agent id does not).
pub fn owns_agent(agent_ids: Option<&[String]>, agent_id: Option<&str>) -> bool {
    match agent_ids {
        None => true,
        Some(ids) => agent_id.is_some_and(|a| ids.iter().any(|id| id == a)),
    }
}

/// Every agent a phone number is bound to (`inbound_agent_id`, `outbound_agent_id`, and the
/// weighted `inbound_agents`/`outbound_agents` lists).
pub fn phone_number_agents(number: &Value) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for key in ["inbound_agent_id", "outbound_agent_id"] {
        if let Some(a) = number.get(key).and_then(Value::as_str) {
            out.push(a.to_string());
        }
    }
    for key in ["inbound_agents", "outbound_agents"] {
        for w in number
            .get(key)
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            if let Some(a) = w.get("agent_id").and_then(Value::as_str) {
                out.push(a.to_string());
            }
        }
    }
    out
}

/// Fetches one call.
///
/// # Errors
/// Retryable on timeouts, transport failures, 408, 429 and 5xx; permanent on 404 and other
/// 4xx, or an answer that is not a call.
pub fn fetch_call(call_id: &str, timeout_ms: u32) -> Result<CallObject, Error> {
    http::Request::get(get_call_url(call_id))
        .bearer(CREDENTIAL)
        .timeout_ms(timeout_ms)
        .send()?
        .error_for_status()?
        .json()
}

/// Fetches one page of calls.
///
/// # Errors
/// As [`fetch_call`].
pub fn list_calls(body: &Value, timeout_ms: u32) -> Result<Page, Error> {
    http::Request::post(list_calls_url())
        .bearer(CREDENTIAL)
        .timeout_ms(timeout_ms)
        .json(body)?
        .send()?
        .error_for_status()?
        .json()
}

/// Fetches one page of agents.
///
/// # Errors
/// As [`fetch_call`].
pub fn list_agents(pagination_key: Option<&str>, timeout_ms: u32) -> Result<Page, Error> {
    http::Request::post(list_agents_url(pagination_key))
        .bearer(CREDENTIAL)
        .timeout_ms(timeout_ms)
        .json(&json!({}))?
        .send()?
        .error_for_status()?
        .json()
}

/// Fetches one page of phone numbers.
///
/// # Errors
/// As [`fetch_call`].
pub fn list_phone_numbers(pagination_key: Option<&str>, timeout_ms: u32) -> Result<Page, Error> {
    http::Request::get(list_phone_numbers_url(pagination_key))
        .bearer(CREDENTIAL)
        .timeout_ms(timeout_ms)
        .send()?
        .error_for_status()?
        .json()
}

/// A one-line description of an SDK error, for logs and messages.
pub fn describe(e: &Error) -> String {
    match e {
        Error::Retryable(r) => format!("retryable: {}", r.message),
        Error::Permanent(m) => format!("permanent: {m}"),
        Error::BadRequest(m) => format!("bad request: {m}"),
        Error::Declined(m) => format!("declined: {m}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls() {
        assert_eq!(
            get_call_url("call_abc123"),
            "https://api.retellai.com/v2/get-call/call_abc123"
        );
        assert_eq!(
            get_call_url("a/b?c"),
            "https://api.retellai.com/v2/get-call/a%2Fb%3Fc"
        );
        assert_eq!(list_calls_url(), "https://api.retellai.com/v3/list-calls");
        assert_eq!(
            list_agents_url(None),
            "https://api.retellai.com/v2/list-agents?limit=1000"
        );
        assert_eq!(
            list_phone_numbers_url(Some("k+1 2")),
            "https://api.retellai.com/v2/list-phone-numbers?limit=1000&pagination_key=k%2B1%202"
        );
    }

    #[test]
    fn list_calls_body_shape() {
        let b = list_calls_body(1_714_000_000_000, None, None);
        assert_eq!(
            b,
            json!({"limit": 100, "sort_order": "descending",
                   "filter_criteria": {"start_timestamp": {"type": "number", "op": "ge", "value": 1_714_000_000_000i64}}})
        );
        let ids = vec!["ag1".to_string(), "ag2".to_string()];
        let b = list_calls_body(5, Some(&ids), Some("cursor1"));
        assert_eq!(
            b["filter_criteria"]["agent"],
            json!([{"agent_id": "ag1"}, {"agent_id": "ag2"}])
        );
        assert_eq!(b["pagination_key"], json!("cursor1"));
    }

    #[test]
    fn pages_and_cursors() {
        let p: Page = serde_json::from_value(
            json!({"items": [{"call_id": "c1"}], "has_more": true, "pagination_key": "k2"}),
        )
        .unwrap();
        assert_eq!(p.items.len(), 1);
        assert_eq!(p.next_key(Some("k1")).as_deref(), Some("k2"));
        assert_eq!(
            p.next_key(Some("k2")),
            None,
            "same cursor twice ends the listing"
        );
        let last: Page =
            serde_json::from_value(json!({"items": [], "has_more": false, "pagination_key": "k3"}))
                .unwrap();
        assert_eq!(last.next_key(None), None);
        let no_key: Page = serde_json::from_value(json!({"items": [], "has_more": true})).unwrap();
        assert_eq!(no_key.next_key(None), None);
        let empty: Page = serde_json::from_value(json!({})).unwrap();
        assert!(empty.items.is_empty() && !empty.has_more);
    }

    #[test]
    fn agent_ownership() {
        let ids = vec!["ag1".to_string()];
        assert!(owns_agent(None, None));
        assert!(owns_agent(None, Some("x")));
        assert!(owns_agent(Some(&ids), Some("ag1")));
        assert!(!owns_agent(Some(&ids), Some("ag2")));
        assert!(!owns_agent(Some(&ids), None));
        assert!(!owns_agent(Some(&[]), Some("ag1")));
    }

    #[test]
    fn number_agents() {
        let n = json!({"phone_number": "+1", "inbound_agent_id": "a1", "outbound_agent_id": null,
                       "inbound_agents": [{"agent_id": "a2", "weight": 0.5}], "outbound_agents": null});
        assert_eq!(phone_number_agents(&n), vec!["a1", "a2"]);
    }
}
