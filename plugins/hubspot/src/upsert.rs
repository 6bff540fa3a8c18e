//! The `upsert_contact` action: creates or updates a HubSpot contact by email with
//! `POST /crm/v3/objects/contacts/batch/upsert` (`idProperty: "email"`), hands the answer to an
//! `apply_contacts` job for the `contact` record, publishes `hubspot.contact.upserted`, and
//! returns `{"id", "email", "new"}`.
//!
//! Input: `{"email", "properties"?: {...}, "firstname"?, "lastname"?, "phone"?}`; values are
//! sent as strings (numbers and booleans printed); nulls and empty strings are left out, since
//! a route's template for a missing field renders empty and HubSpot would clear the property.
//! `properties` wins over the shorthand fields. An upsert by email is idempotent at HubSpot; the result is also kept per
//! idempotency key (kv), so a re-run answers without calling HubSpot again.

use plugin_sdk::lookup::normalize_email;
use plugin_sdk::{Error, enqueue_job, kv, publish};
use serde::Deserialize;
use serde_json::{Map, Value, json};

use crate::api::{self, valid_property};
use crate::apply::{APPLY_CONTACTS, ApplyInput};
use crate::contact::value_text;
use crate::event::id_text;
use crate::store;

/// The action's name.
pub const UPSERT_CONTACT: &str = "upsert_contact";
/// Time limit of the upsert call.
const TIMEOUT_MS: u32 = 8_000;

/// The action's input.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct UpsertInput {
    /// The contact's email (its identity).
    pub email: String,
    /// Properties to write, by HubSpot internal name.
    #[serde(default)]
    pub properties: Map<String, Value>,
    /// Shorthand for `properties.firstname`.
    #[serde(default)]
    pub firstname: Option<Value>,
    /// Shorthand for `properties.lastname`.
    #[serde(default)]
    pub lastname: Option<Value>,
    /// Shorthand for `properties.phone`.
    #[serde(default)]
    pub phone: Option<Value>,
}

/// The properties to send, with `email` set.
///
/// # Errors
/// A message naming a bad property name or a value that is an object or array.
pub fn properties(input: &UpsertInput, email: &str) -> Result<Map<String, Value>, String> {
    let mut out = Map::new();
    let shorthand = [
        ("firstname", &input.firstname),
        ("lastname", &input.lastname),
        ("phone", &input.phone),
    ];
    let given = shorthand
        .into_iter()
        .filter_map(|(k, v)| v.as_ref().map(|v| (k.to_string(), v)))
        .chain(input.properties.iter().map(|(k, v)| (k.clone(), v)));
    for (name, value) in given {
        if !valid_property(&name) {
            return Err(format!("`{name}` is not a HubSpot property name"));
        }
        if matches!(value, Value::Array(_) | Value::Object(_)) {
            return Err(format!(
                "property `{name}` must be text, a number or a boolean"
            ));
        }
        match value_text(value).filter(|t| !t.trim().is_empty()) {
            Some(text) => out.insert(name, Value::String(text)),
            None => out.remove(&name),
        };
    }
    out.insert("email".into(), Value::String(email.to_string()));
    Ok(out)
}

/// The kv key holding the result for an idempotency key.
pub fn result_key(idempotency_key: &str) -> String {
    format!("upsert:{idempotency_key}")
}

/// Runs the action.
///
/// # Errors
/// Bad request for a malformed input; HubSpot's failure (429 and 5xx retryable, other 4xx and
/// per-input errors permanent).
pub fn run(input: &str, idempotency_key: &str) -> Result<String, Error> {
    let input: UpsertInput = serde_json::from_str(input)
        .map_err(|e| Error::bad_request(format!("`{UPSERT_CONTACT}` input: {e}")))?;
    let email = normalize_email(&input.email)
        .ok_or_else(|| Error::bad_request(format!("`{}` is not an email", input.email)))?;
    if let Some(done) = kv::get_string(&result_key(idempotency_key)) {
        return Ok(done);
    }
    let props = properties(&input, &email).map_err(Error::bad_request)?;
    let answer = api::upsert(&api::upsert_body(&email, &props), TIMEOUT_MS)?;
    let Some(contact) = answer.results.into_iter().next() else {
        let why = answer
            .errors
            .first()
            .and_then(|e| e.get("message"))
            .and_then(Value::as_str)
            .unwrap_or("no result and no error");
        return Err(Error::permanent(format!(
            "HubSpot did not upsert {email}: {why}"
        )));
    };
    let id = id_text(&Value::String(contact.id.clone())).ok_or_else(|| {
        Error::permanent(format!("HubSpot answered an unusable id `{}`", contact.id))
    })?;
    let created = contact.new.unwrap_or(false);
    let event =
        json!({ "id": id, "email": email, "new": created, "properties": contact.properties });
    publish(store::UPSERTED, &event)?;
    enqueue_job(
        APPLY_CONTACTS,
        &ApplyInput {
            contacts: vec![contact],
        },
        0,
    )?;
    let result = json!({ "id": id, "email": email, "new": created }).to_string();
    kv::set_marker(&result_key(idempotency_key), result.as_bytes());
    Ok(result)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn input(v: Value) -> UpsertInput {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn properties_are_strings_and_explicit_ones_win() {
        let i = input(
            json!({"email": "j@x.io", "firstname": "Jane", "phone": 5551234,
            "properties": {"firstname": "Janet", "vip": true, "lastname": null, "city": " "}}),
        );
        let p = properties(&i, "j@x.io").unwrap();
        assert_eq!(
            Value::Object(p),
            json!({"firstname": "Janet", "phone": "5551234", "vip": "true", "email": "j@x.io"})
        );
        let nested = input(json!({"email": "j@x.io", "properties": {"a": {"b": 1}}}));
        assert!(properties(&nested, "j@x.io").unwrap_err().contains("`a`"));
        let bad_name = input(json!({"email": "j@x.io", "properties": {"a b": "x"}}));
        assert!(
            properties(&bad_name, "j@x.io")
                .unwrap_err()
                .contains("not a HubSpot property")
        );
        assert!(serde_json::from_value::<UpsertInput>(json!({"properties": {}})).is_err());
        assert_eq!(result_key("k1"), "upsert:k1");
    }
}
