//! The `send_email` action: `POST https://api.resend.com/emails` (`SendEmailRequest` in
//! `resend.yaml`) with the tenant's `from`, a bearer `api_key` and an `Idempotency-Key`.
//!
//! Building the request is pure (tested natively), as are the idempotency key and the meaning
//! of Resend's errors ([`crate::api`]); [`run`] is the glue. Resend keeps an idempotency key for 24 h
//! and answers a repeat with the first email's id, so a retry, a replay or a re-run after a
//! write conflict never sends a second email; a kv entry per key also covers replays after 24 h.

use plugin_sdk::{Error, config, http, kv, records, require_config};
use serde::Deserialize;
use serde_json::{Map, Value, json};

use crate::api::{API_KEY, BASE, api_error, idempotency_header, sha256_hex};
use crate::merge::advance;
use crate::model::{EMAIL, EmailRecord, SUPPRESSION, SuppressionRecord, bare_address, one_or_many};

/// The action's name.
pub const SEND_EMAIL: &str = "send_email";
/// Config key: the sender, `Name <address@verified-domain>`.
pub const FROM: &str = "from";
/// Config key: the default reply-to address (a string or a list).
pub const REPLY_TO: &str = "reply_to";
/// Resend's limit on recipients per email.
pub const MAX_RECIPIENTS: usize = 50;
const TIMEOUT_MS: u32 = 15_000;

/// The action's input.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SendEmailInput {
    /// Recipient(s): a string or a list.
    #[serde(deserialize_with = "one_or_many")]
    pub to: Vec<String>,
    /// Subject line.
    pub subject: String,
    /// HTML body.
    #[serde(default)]
    pub html: Option<String>,
    /// Plain-text body.
    #[serde(default)]
    pub text: Option<String>,
    /// Cc recipient(s).
    #[serde(default, deserialize_with = "one_or_many")]
    pub cc: Vec<String>,
    /// Bcc recipient(s).
    #[serde(default, deserialize_with = "one_or_many")]
    pub bcc: Vec<String>,
    /// Reply-to address(es); default: the tenant's `reply_to`.
    #[serde(default, deserialize_with = "one_or_many")]
    pub reply_to: Vec<String>,
    /// Tags: `{name: value}` or `[{name, value}]`.
    #[serde(default)]
    pub tags: Option<Value>,
    /// Extra email headers, `{name: value}`.
    #[serde(default)]
    pub headers: Option<Map<String, Value>>,
    /// Send later (ISO 8601 or Resend's natural language).
    #[serde(default)]
    pub scheduled_at: Option<String>,
}

/// Parses the action input.
///
/// # Errors
/// Permanent, naming the problem.
pub fn parse_input(input: &str) -> Result<SendEmailInput, Error> {
    serde_json::from_str(input)
        .map_err(|e| Error::permanent(format!("send_email input is not valid: {e}")))
}

fn clean(list: &[String]) -> Vec<String> {
    list.iter()
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .collect()
}

fn check_addresses(field: &str, list: &[String]) -> Result<(), Error> {
    match list.iter().find(|a| bare_address(a).is_none()) {
        Some(bad) => Err(Error::permanent(format!(
            "`{field}` has an invalid address `{bad}`"
        ))),
        None => Ok(()),
    }
}

fn tag_text(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

fn tag_ok(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 256
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

/// Tags as Resend wants them, `[{name, value}]`, from `{name: value}` or that list.
///
/// # Errors
/// Permanent for another shape, or a name or value Resend would refuse (ASCII letters,
/// digits, `_` and `-`, at most 256 characters).
pub fn normalize_tags(tags: &Value) -> Result<Vec<Value>, Error> {
    let pairs: Vec<(String, Option<String>)> = match tags {
        Value::Object(map) => map.iter().map(|(k, v)| (k.clone(), tag_text(v))).collect(),
        Value::Array(items) => items
            .iter()
            .map(|i| {
                let name = i.get("name").and_then(Value::as_str).unwrap_or_default();
                (name.to_string(), i.get("value").and_then(tag_text))
            })
            .collect(),
        Value::Null => Vec::new(),
        _ => {
            return Err(Error::permanent(
                "`tags` must be an object or a list of {name, value}",
            ));
        }
    };
    pairs
        .into_iter()
        .map(|(name, value)| match value {
            Some(value) if tag_ok(&name) && tag_ok(&value) => {
                Ok(json!({ "name": name, "value": value }))
            }
            _ => Err(Error::permanent(format!(
                "tag `{name}`: names and values must be 1-256 ASCII letters, digits, `_` or `-`"
            ))),
        })
        .collect()
}

fn as_list(v: Option<&Value>) -> Vec<String> {
    match v {
        Some(Value::String(s)) => vec![s.clone()],
        Some(Value::Array(items)) => items
            .iter()
            .filter_map(|i| i.as_str().map(str::to_string))
            .collect(),
        _ => Vec::new(),
    }
}

/// The `SendEmailRequest` body.
///
/// # Errors
/// Permanent when the input cannot make a valid email: no or too many recipients, an
/// invalid address, no subject, neither `html` nor `text`, bad tags or headers.
pub fn request_body(
    input: &SendEmailInput,
    from: &str,
    default_reply_to: Option<&Value>,
) -> Result<Value, Error> {
    let to = clean(&input.to);
    if to.is_empty() || to.len() > MAX_RECIPIENTS {
        return Err(Error::permanent(format!(
            "`to` needs 1 to {MAX_RECIPIENTS} recipients"
        )));
    }
    let (cc, bcc) = (clean(&input.cc), clean(&input.bcc));
    let mut reply_to = clean(&input.reply_to);
    if reply_to.is_empty() {
        reply_to = clean(&as_list(default_reply_to));
    }
    for (field, list) in [
        ("to", &to),
        ("cc", &cc),
        ("bcc", &bcc),
        ("reply_to", &reply_to),
    ] {
        check_addresses(field, list)?;
    }
    check_addresses("from (tenant config)", &[from.to_string()])?;
    let subject = input.subject.trim();
    if subject.is_empty() {
        return Err(Error::permanent("`subject` is empty"));
    }
    let present = |s: &Option<String>| s.as_deref().is_some_and(|s| !s.trim().is_empty());
    if !present(&input.html) && !present(&input.text) {
        return Err(Error::permanent("give `html` or `text` (or both)"));
    }
    let mut body = Map::new();
    body.insert("from".into(), json!(from));
    body.insert("to".into(), json!(to));
    body.insert("subject".into(), json!(subject));
    for (k, v) in [("html", &input.html), ("text", &input.text)] {
        if present(v) {
            body.insert(k.into(), json!(v));
        }
    }
    for (k, v) in [("cc", cc), ("bcc", bcc), ("reply_to", reply_to)] {
        if !v.is_empty() {
            body.insert(k.into(), json!(v));
        }
    }
    if let Some(tags) = &input.tags {
        let tags = normalize_tags(tags)?;
        if !tags.is_empty() {
            body.insert("tags".into(), Value::Array(tags));
        }
    }
    if let Some(headers) = &input.headers {
        if headers.values().any(|v| !v.is_string()) {
            return Err(Error::permanent("`headers` values must be strings"));
        }
        body.insert("headers".into(), Value::Object(headers.clone()));
    }
    if let Some(at) = input
        .scheduled_at
        .as_deref()
        .filter(|s| !s.trim().is_empty())
    {
        body.insert("scheduled_at".into(), json!(at.trim()));
    }
    Ok(Value::Object(body))
}

/// Every recipient (to, cc, bcc) of a request body, as bare lowercase addresses.
pub fn recipients(body: &Value) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for field in ["to", "cc", "bcc"] {
        for a in as_list(body.get(field))
            .iter()
            .filter_map(|a| bare_address(a))
        {
            if !out.contains(&a) {
                out.push(a);
            }
        }
    }
    out
}

/// The `email` record after a successful send: status `sent` (or `scheduled`) unless the
/// webhooks already told more, the request's fields where the record has none, the key.
pub fn merge_sent(stored: Option<EmailRecord>, id: &str, body: &Value, key: &str) -> EmailRecord {
    let mut r = stored.unwrap_or_default();
    r.email_id = id.to_string();
    r.direction.get_or_insert_with(|| "outbound".into());
    let status = if body.get("scheduled_at").is_some() {
        "scheduled"
    } else {
        "sent"
    };
    advance(&mut r.status, status);
    let text = |k: &str| body.get(k).and_then(Value::as_str).map(str::to_string);
    if r.from.is_none() {
        r.from = text("from");
    }
    if r.subject.is_none() {
        r.subject = text("subject");
    }
    for (slot, field) in [(&mut r.to, "to"), (&mut r.cc, "cc"), (&mut r.bcc, "bcc")] {
        if slot.is_empty() {
            *slot = as_list(body.get(field));
        }
    }
    if r.tags.is_none()
        && let Some(Value::Array(tags)) = body.get("tags")
    {
        let map: Map<String, Value> = tags
            .iter()
            .filter_map(|t| {
                Some((
                    t.get("name")?.as_str()?.to_string(),
                    t.get("value")?.clone(),
                ))
            })
            .collect();
        r.tags = Some(Value::Object(map));
    }
    r.idempotency_key = Some(key.to_string());
    r
}

fn refuse_suppressed(addresses: &[String]) -> Result<(), Error> {
    let mut refused = Vec::new();
    for a in addresses {
        if let Some(s) = records::get::<SuppressionRecord>(SUPPRESSION, a)? {
            refused.push(format!("{a} ({})", s.reason));
        }
    }
    if refused.is_empty() {
        Ok(())
    } else {
        Err(Error::permanent(format!(
            "refusing to email suppressed address(es): {}",
            refused.join(", ")
        )))
    }
}

/// Runs `send_email`: validates, refuses suppressed recipients, sends, stores the record.
///
/// # Errors
/// As [`request_body`] and [`api_error`]; permanent when a recipient is suppressed or the
/// tenant has no `from`; retryable on transport failures and timeouts.
pub fn run(input: &str, key: &str) -> Result<String, Error> {
    let input = parse_input(input)?;
    let from: String = require_config(FROM)?;
    let default_reply_to: Option<Value> = config(REPLY_TO)?;
    let body = request_body(&input, &from, default_reply_to.as_ref())?;
    let guard = format!("sent:{}", sha256_hex(key));
    if let Some(id) = kv::get_string(&guard) {
        return Ok(json!({ "id": id, "duplicate": true }).to_string());
    }
    refuse_suppressed(&recipients(&body))?;
    let response = http::Request::post(format!("{BASE}/emails"))
        .bearer(API_KEY)
        .header("idempotency-key", &idempotency_header(key))
        .timeout_ms(TIMEOUT_MS)
        .json(&body)?
        .send()?;
    if !(200..300).contains(&response.status) {
        return Err(api_error(
            response.status,
            response.header("retry-after"),
            &response.body,
        ));
    }
    let id = response
        .json::<Value>()?
        .get("id")
        .and_then(Value::as_str)
        .filter(|id| !id.is_empty())
        .map(str::to_string)
        .ok_or_else(|| Error::permanent("Resend accepted the email but returned no id"))?;
    kv::set_marker(&guard, id.as_bytes());
    let stored: Option<EmailRecord> = records::get(EMAIL, &id)?;
    records::upsert(EMAIL, &id, &merge_sent(stored, &id, &body, key))?;
    Ok(json!({ "id": id }).to_string())
}

#[cfg(test)]
mod tests;
