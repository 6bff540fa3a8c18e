//! The REST-hook routes Zapier calls, answered synchronously (the host stores each request
//! first and commits the answer's writes before sending it):
//!
//! - `subscribe` (`POST {"target_url", "event"}`, JSON or form) -> `201 {"id", "event",
//!   "target_url"}`; a repeat of an existing (target, event) answers that subscription's id.
//! - `unsubscribe` (`DELETE ?id=...`, or `POST {"id"}`; or by `target_url`) -> `200 {"removed"}`,
//!   also when it was already gone (a 410 removes subscriptions too), so turning a Zap off never
//!   fails.
//! - `sample` (`GET ?event=...`, or `POST {"event"}`) -> `200 [...]`, see [`crate::sample`].
//!
//! Fields are read from the body and then the query string (the body wins).

use plugin_sdk::{Delivery, Error, Reply};
use serde_json::{Value, json};

use crate::body::{Fields, items, query, text};
use crate::sample;
use crate::subscription::{
    self, EVENT_FIELDS, ID_FIELDS, MAX_SUBSCRIPTIONS, Subscription, TARGET_FIELDS, check_event,
    find_same, new_id, parse_subscribe,
};

/// Route that creates a subscription.
pub const SUBSCRIBE: &str = "subscribe";
/// Route that removes one (`DELETE` or `POST`).
pub const UNSUBSCRIBE: &str = "unsubscribe";
/// Route that lists sample items (`GET` or `POST`).
pub const SAMPLE: &str = "sample";

/// The fields of a request: its body's (one object or form) over its query string's.
///
/// # Errors
/// Bad request for a malformed body or one with several items.
pub fn request_fields(content_type: Option<&str>, body: &[u8], url: &str) -> Result<Fields, Error> {
    let mut fields = if body.iter().all(u8::is_ascii_whitespace) {
        Fields::new()
    } else {
        let mut list = items(content_type, body).map_err(Error::bad_request)?;
        if list.len() != 1 {
            return Err(Error::bad_request("expected one object, not an array"));
        }
        list.pop().unwrap_or_default()
    };
    for (k, v) in query(url) {
        fields.entry(k).or_insert(v);
    }
    Ok(fields)
}

fn answer(status: u16, value: &Value) -> Result<Reply, Error> {
    let body = serde_json::to_vec(value).map_err(|e| Error::permanent(e.to_string()))?;
    Ok(Reply::new(status, "application/json", body))
}

/// Answers a request on one of the REST-hook routes.
///
/// # Errors
/// Bad request for a malformed or incomplete request (the host answers 400); permanent when the
/// tenant holds too many subscriptions (422) or a stored record is unreadable.
pub fn respond(delivery: &Delivery) -> Result<Reply, Error> {
    let fields = request_fields(
        delivery.header("content-type"),
        &delivery.body,
        &delivery.url,
    )?;
    match delivery.route.as_str() {
        SUBSCRIBE => subscribe(delivery, &fields),
        UNSUBSCRIBE => unsubscribe(&fields),
        SAMPLE => {
            let event = text(&fields, &EVENT_FIELDS)
                .ok_or_else(|| Error::bad_request("name the event: `?event=...`"))?;
            check_event(&event).map_err(Error::bad_request)?;
            answer(200, &Value::Array(sample::recent(&event)))
        }
        other => Err(Error::permanent(format!(
            "route `{other}` does not answer synchronously"
        ))),
    }
}

fn subscribe(delivery: &Delivery, fields: &Fields) -> Result<Reply, Error> {
    let (target_url, event) = parse_subscribe(fields).map_err(Error::bad_request)?;
    let list = subscription::all();
    let sub = match find_same(&list, &target_url, &event) {
        Some(existing) => existing.clone(),
        None => {
            if list.len() >= MAX_SUBSCRIPTIONS as usize {
                return Err(Error::permanent(format!(
                    "this tenant already has {MAX_SUBSCRIPTIONS} subscriptions"
                )));
            }
            let sub = Subscription {
                id: new_id(&delivery.id),
                target_url,
                event,
                created_at_ms: i64::try_from(delivery.received_at_ms).unwrap_or(i64::MAX),
            };
            subscription::save(&sub)?;
            sub
        }
    };
    answer(
        201,
        &json!({ "id": sub.id, "event": sub.event, "target_url": sub.target_url }),
    )
}

fn unsubscribe(fields: &Fields) -> Result<Reply, Error> {
    if let Some(id) = text(fields, &ID_FIELDS) {
        let existed = subscription::get(&id)?.is_some();
        subscription::remove(&id);
        return answer(200, &json!({ "id": id, "removed": existed }));
    }
    let Some(target) = text(fields, &TARGET_FIELDS) else {
        return Err(Error::bad_request(
            "name the subscription: `id` (or `target_url`)",
        ));
    };
    let event = text(fields, &EVENT_FIELDS);
    let ids: Vec<String> = subscription::all()
        .into_iter()
        .filter(|s| s.target_url == target && event.as_ref().is_none_or(|e| *e == s.event))
        .map(|s| s.id)
        .collect();
    for id in &ids {
        subscription::remove(id);
    }
    answer(200, &json!({ "removed": !ids.is_empty(), "ids": ids }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn body_over_query() {
        let f = request_fields(
            Some("application/json"),
            br#"{"event": "from.body"}"#,
            "https://h/x?event=from.query&id=s1",
        )
        .unwrap();
        assert_eq!(f["event"], json!("from.body"));
        assert_eq!(f["id"], json!("s1"));
        let empty = request_fields(None, b"", "https://h/x?id=s2").unwrap();
        assert_eq!(empty["id"], json!("s2"));
        let form = request_fields(
            Some("application/x-www-form-urlencoded"),
            b"id=s3",
            "https://h/x",
        )
        .unwrap();
        assert_eq!(form["id"], json!("s3"));
        assert!(matches!(
            request_fields(None, b"[{},{}]", "https://h/x"),
            Err(Error::BadRequest(_))
        ));
        assert!(matches!(
            request_fields(Some("application/json"), b"{", "https://h/x"),
            Err(Error::BadRequest(_))
        ));
    }
}
