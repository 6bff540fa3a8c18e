//! Posts from scenarios: each is one `scenario_post` record, keyed by its Idempotency-Key
//! (the host stored it once per key), and one `make.received` event. The body is a JSON object
//! (or a form, as Make's HTTP module can send); its `event` field names it.

use plugin_sdk::{Delivery, Error, Outcome, publish, records};
use serde_json::{Map, Value, json};

use crate::manifest::{KEY_HEADER, RECEIVED};

/// The record kind a post is kept as.
pub const KIND: &str = "scenario_post";

/// The body as an object: JSON, or a form's fields as strings.
///
/// # Errors
/// Bad request for a body that is neither a JSON object nor a form.
pub fn fields(delivery: &Delivery) -> Result<Map<String, Value>, Error> {
    let form = delivery
        .header("content-type")
        .is_some_and(|t| t.starts_with("application/x-www-form-urlencoded"));
    if form {
        return Ok(delivery
            .form()
            .into_iter()
            .map(|(k, v)| (k, Value::String(v)))
            .collect());
    }
    match delivery.json::<Value>()? {
        Value::Object(map) => Ok(map),
        other => Err(Error::bad_request(format!(
            "a scenario must post a JSON object (or a form), not {}",
            match other {
                Value::Array(_) => "an array",
                Value::String(_) => "a string",
                Value::Number(_) => "a number",
                Value::Bool(_) => "a boolean",
                _ => "null",
            }
        ))),
    }
}

/// Stores the post and publishes it.
///
/// # Errors
/// Bad request for a malformed body; permanent when the record cannot be written.
pub fn handle(delivery: &Delivery) -> Result<Outcome, Error> {
    let mut body = fields(delivery)?;
    let event = match body.remove("event") {
        Some(Value::String(e)) => Some(e),
        Some(other) => Some(other.to_string()),
        None => None,
    };
    // Make's own payloads nest under `data`; a flat body is the data itself.
    let data = match body.remove("data") {
        Some(d) if body.is_empty() => d,
        Some(d) => {
            body.insert("data".into(), d);
            Value::Object(body)
        }
        None => Value::Object(body),
    };
    let key = delivery
        .header(KEY_HEADER)
        .map_or_else(|| delivery.id.clone(), str::to_string);
    let record = json!({
        "key": key,
        "event": event,
        "data": data,
        "received_at_ms": delivery.received_at_ms,
    });
    records::upsert(KIND, &key, &record)?;
    publish(RECEIVED, &record)?;
    Ok(Outcome::handled())
}
