//! The synchronous answer to Retell's inbound webhook (`call_inbound`, and `chat_inbound` for
//! inbound SMS), which Retell waits up to 10 s for before connecting the call.
//!
//! Shape used, from Retell's docs ("Inbound webhook", docs.retellai.com/features/inbound-call-webhook;
//! the OpenAPI copy does not describe this webhook): the request is
//! `{"event":"call_inbound","call_inbound":{"agent_id"?, "agent_version"?, "from_number", "to_number"}}`
//! with no call id; the answer is a 2xx JSON object with the fields grouped under
//! `call_inbound` (or `chat_inbound`), all optional: `override_agent_id`,
//! `override_agent_version`, `dynamic_variables` (string values), `metadata`, `agent_override`.
//! We answer `{"call_inbound": {"dynamic_variables": {...}, "metadata": {...}}}`.

use plugin_sdk::{Delivery, Error, Reply, config, lookup, records, tenant, warn};
use serde_json::{Map, Value, json};

use crate::api::{describe, owns_agent};
use crate::manifest::INBOUND_VARIABLES;
use crate::model::Envelope;
use crate::webhook::AGENT_IDS;

/// The wildcard key of `inbound_variables`: variables for every number.
pub const ANY_NUMBER: &str = "*";

/// Which inbound webhook a body is: `call_inbound` or `chat_inbound`.
pub fn reply_key(event: &str, has_chat_inbound: bool, has_call_inbound: bool) -> &'static str {
    if event == "chat_inbound" || (has_chat_inbound && !has_call_inbound) {
        "chat_inbound"
    } else {
        "call_inbound"
    }
}

/// A contact's display name: `name`, else `firstname` + `lastname` (also accepting
/// `first_name`/`last_name`), looked up at the top level and under `properties`
/// (HubSpot-shaped records).
pub fn contact_name(contact: &Value) -> Option<String> {
    let text = |v: &Value, k: &str| {
        v.get(k)
            .and_then(Value::as_str)
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_string)
    };
    let from = |v: &Value| {
        if let Some(name) = text(v, "name") {
            return Some(name);
        }
        let first = text(v, "firstname").or_else(|| text(v, "first_name"));
        let last = text(v, "lastname").or_else(|| text(v, "last_name"));
        match (first, last) {
            (Some(f), Some(l)) => Some(format!("{f} {l}")),
            (f, l) => f.or(l),
        }
    };
    from(contact).or_else(|| contact.get("properties").and_then(from))
}

/// The caller's name from the tenant's contacts, whichever connector stored them: the newest
/// contact found by the number's lookup (HubSpot's `phone` or `mobilephone`, a Zapier contact's
/// `phone`) that has a name, else a contact keyed by the number itself.
fn caller_name(from: &str) -> Option<String> {
    if let Some(by_phone) = lookup::phone(from) {
        let found: Vec<(String, Value)> = records::find("contact", &by_phone, 10);
        if let Some(name) = found.iter().find_map(|(_, contact)| contact_name(contact)) {
            return Some(name);
        }
    }
    match records::get::<Value>("contact", from) {
        Ok(contact) => contact.as_ref().and_then(contact_name),
        Err(e) => {
            warn!(
                "inbound webhook: contact record {from} is unreadable ({})",
                describe(&e)
            );
            None
        }
    }
}

/// A dynamic variable's value as Retell wants it: a string. Nulls are dropped; numbers and
/// booleans print as themselves; arrays and objects as JSON.
fn as_variable(v: &Value) -> Option<String> {
    match v {
        Value::Null => None,
        Value::String(s) => Some(s.clone()),
        other => Some(other.to_string()),
    }
}

/// The dynamic variables for a call to `to_number`: the `"*"` table, overridden by the
/// number's own table, overridden by `customer_name` from the caller's contact.
pub fn dynamic_variables(
    config: Option<&Map<String, Value>>,
    to_number: Option<&str>,
    customer_name: Option<String>,
) -> Map<String, Value> {
    let mut out = Map::new();
    if let Some(config) = config {
        let tables = [Some(ANY_NUMBER), to_number.filter(|n| *n != ANY_NUMBER)];
        for key in tables.into_iter().flatten() {
            if let Some(Value::Object(vars)) = config.get(key) {
                for (k, v) in vars {
                    if let Some(s) = as_variable(v) {
                        out.insert(k.clone(), Value::String(s));
                    }
                }
            }
        }
    }
    if let Some(name) = customer_name {
        out.insert("customer_name".into(), Value::String(name));
    }
    out
}

/// The answer body.
pub fn reply_body(key: &str, variables: Map<String, Value>, metadata: Map<String, Value>) -> Value {
    json!({ key: { "dynamic_variables": variables, "metadata": metadata } })
}

/// An answer that changes nothing about the call (for a number or agent that is not ours).
pub fn empty_reply(key: &str) -> Value {
    json!({ key: {} })
}

/// Answers the inbound webhook. Read-only: the host discards writes made here. Problems with
/// the tenant's config or records degrade the answer instead of failing it, since a failed
/// answer leaves the caller ringing while Retell retries.
///
/// # Errors
/// Bad request when the body is not JSON of Retell's shape.
pub fn respond(delivery: &Delivery) -> Result<Reply, Error> {
    let envelope: Envelope = delivery.json()?;
    let key = reply_key(
        &envelope.event,
        envelope.chat_inbound.is_some(),
        envelope.call_inbound.is_some(),
    );
    let payload = if key == "chat_inbound" {
        envelope.chat_inbound
    } else {
        envelope.call_inbound
    }
    .unwrap_or_default();
    let agent_ids: Option<Vec<String>> = match config(AGENT_IDS) {
        Ok(ids) => ids,
        Err(e) => {
            warn!(
                "inbound webhook: config `{AGENT_IDS}` is unusable ({}); answering with nothing",
                describe(&e)
            );
            return Reply::json(&empty_reply(key));
        }
    };
    if let Some(agent) = payload.agent_id.as_deref()
        && !owns_agent(agent_ids.as_deref(), Some(agent))
    {
        warn!(
            "inbound webhook for agent {agent}, which does not belong to this tenant; answering with nothing"
        );
        return Reply::json(&empty_reply(key));
    }
    let table: Option<Map<String, Value>> = config(INBOUND_VARIABLES).unwrap_or_else(|e| {
        warn!(
            "inbound webhook: config `{INBOUND_VARIABLES}` is unusable ({}); ignoring it",
            describe(&e)
        );
        None
    });
    let customer_name = payload
        .from_number
        .as_deref()
        .filter(|n| !n.is_empty())
        .and_then(caller_name);
    let variables = dynamic_variables(table.as_ref(), payload.to_number.as_deref(), customer_name);
    let mut metadata = Map::new();
    metadata.insert("hub_tenant".into(), Value::String(tenant()));
    Reply::json(&reply_body(key, variables, metadata))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> Map<String, Value> {
        json!({
            "*": {"company": "Acme Dental", "customer_name": "there", "open": true},
            "+14155550199": {"company": "Acme Dental North", "floor": 3, "skip": null}
        })
        .as_object()
        .cloned()
        .unwrap()
    }

    #[test]
    fn number_table_overrides_wildcard() {
        let c = config();
        let vars = dynamic_variables(Some(&c), Some("+14155550199"), None);
        assert_eq!(vars["company"], json!("Acme Dental North"));
        assert_eq!(vars["customer_name"], json!("there"));
        assert_eq!(vars["open"], json!("true"));
        assert_eq!(vars["floor"], json!("3"));
        assert!(!vars.contains_key("skip"));
    }

    #[test]
    fn unknown_number_gets_wildcard_and_contact_wins() {
        let c = config();
        let vars = dynamic_variables(Some(&c), Some("+19999999999"), Some("Jane Doe".into()));
        assert_eq!(vars["company"], json!("Acme Dental"));
        assert_eq!(vars["customer_name"], json!("Jane Doe"));
        assert!(dynamic_variables(None, Some("+1"), None).is_empty());
    }

    #[test]
    fn contact_names() {
        assert_eq!(
            contact_name(&json!({"name": "Jane Doe"})).as_deref(),
            Some("Jane Doe")
        );
        assert_eq!(
            contact_name(&json!({"firstname": "Jane", "lastname": "Doe"})).as_deref(),
            Some("Jane Doe")
        );
        assert_eq!(
            contact_name(&json!({"firstname": "Jane", "lastname": ""})).as_deref(),
            Some("Jane")
        );
        assert_eq!(
            contact_name(&json!({"properties": {"firstname": "Jo", "lastname": "Ng"}})).as_deref(),
            Some("Jo Ng")
        );
        assert_eq!(contact_name(&json!({"name": 5, "email": "x@y"})), None);
        assert_eq!(contact_name(&json!("not an object")), None);
    }

    #[test]
    fn reply_shape() {
        let mut vars = Map::new();
        vars.insert("customer_name".into(), json!("Jane"));
        let mut meta = Map::new();
        meta.insert("hub_tenant".into(), json!("acme"));
        assert_eq!(
            reply_body("call_inbound", vars, meta),
            json!({"call_inbound": {"dynamic_variables": {"customer_name": "Jane"}, "metadata": {"hub_tenant": "acme"}}})
        );
        assert_eq!(empty_reply("chat_inbound"), json!({"chat_inbound": {}}));
    }

    #[test]
    fn reply_key_detection() {
        assert_eq!(reply_key("call_inbound", false, true), "call_inbound");
        assert_eq!(reply_key("chat_inbound", true, false), "chat_inbound");
        assert_eq!(reply_key("", true, false), "chat_inbound");
        assert_eq!(reply_key("", false, false), "call_inbound");
    }
}
