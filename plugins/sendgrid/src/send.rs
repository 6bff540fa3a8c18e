//! `send_email` on `POST /v3/mail/send`, from the hub's common email input (`to, cc, bcc,
//! reply_to, subject, html, text, tags, headers`). SendGrid has no idempotency header: the key
//! rides in `custom_args` (it comes back in every event) and the connector remembers key ->
//! message id, so a key sends at most once. 429 waits until `X-RateLimit-Reset`; 5xx and a
//! refused connection are retried; a timeout is not (the email may be on its way: the events
//! carry the key); other 4xx are permanent with SendGrid's messages.

use plugin_sdk::http::Request;
use plugin_sdk::{Error, HttpError, Retryable, config, kv, now_ms, records, require_config};
use serde_json::{Map, Value, json};

use crate::manifest::{API, API_KEY, KEY_ARG};
use crate::model::{EMAIL, EmailRecord, SUPPRESSION, SuppressionRecord, bare_address};

use plugin_sdk::email::EmailInput as Input;

/// `Name <address>` as SendGrid's `{email, name}`.
fn address(text: &str, field: &str) -> Result<Value, Error> {
    let email = bare_address(text)
        .ok_or_else(|| Error::bad_request(format!("{field}: `{text}` is not an email address")))?;
    let name = text
        .find('<')
        .map(|i| text[..i].trim().trim_matches('"').trim())
        .filter(|n| !n.is_empty());
    Ok(match name {
        Some(n) => json!({ "email": email, "name": n }),
        None => json!({ "email": email }),
    })
}

fn addresses(list: &[String], field: &str) -> Result<Vec<Value>, Error> {
    list.iter().map(|a| address(a, field)).collect()
}

/// The `/v3/mail/send` body for an input, a sender and the key.
///
/// # Errors
/// Bad request for an input SendGrid would refuse (no recipient, no body, a bad address).
pub fn request_body(
    input: Input,
    from: &str,
    reply_to: Option<&str>,
    key: &str,
) -> Result<Value, Error> {
    let to = addresses(&input.to, "to")?;
    if to.is_empty() {
        return Err(Error::bad_request("to: at least one recipient"));
    }
    if input.subject.trim().is_empty() {
        return Err(Error::bad_request("subject: it is empty"));
    }
    let mut content = Vec::new();
    if let Some(t) = input.text.filter(|t| !t.is_empty()) {
        content.push(json!({ "type": "text/plain", "value": t }));
    }
    if let Some(h) = input.html.filter(|h| !h.is_empty()) {
        content.push(json!({ "type": "text/html", "value": h }));
    }
    if content.is_empty() {
        return Err(Error::bad_request("html or text: the email has no body"));
    }
    let mut custom_args = Map::new();
    custom_args.insert(KEY_ARG.into(), Value::String(key.into()));
    let mut categories = Vec::new();
    for (name, value) in input.tags.unwrap_or_default() {
        let value = match value {
            Value::String(s) => s,
            other => other.to_string(),
        };
        categories.push(Value::String(format!("{name}:{value}")));
        custom_args.insert(name, Value::String(value));
    }
    let mut personalization = Map::new();
    personalization.insert("to".into(), Value::Array(to));
    for (field, list) in [("cc", &input.cc), ("bcc", &input.bcc)] {
        let list = addresses(list, field)?;
        if !list.is_empty() {
            personalization.insert(field.into(), Value::Array(list));
        }
    }
    personalization.insert("custom_args".into(), Value::Object(custom_args));
    let mut body = json!({
        "personalizations": [Value::Object(personalization)],
        "from": address(from, "config from")?,
        "subject": input.subject.trim(),
        "content": content,
    });
    if let Some(r) = input.reply_to.as_deref().or(reply_to) {
        body["reply_to"] = address(r, "reply_to")?;
    }
    if !categories.is_empty() {
        categories.truncate(10);
        body["categories"] = Value::Array(categories);
    }
    if let Some(h) = input.headers.filter(|h| !h.is_empty()) {
        let h: Map<String, Value> = h
            .into_iter()
            .map(|(k, v)| {
                (
                    k,
                    Value::String(v.as_str().map_or_else(|| v.to_string(), str::to_string)),
                )
            })
            .collect();
        body["headers"] = Value::Object(h);
    }
    Ok(body)
}

/// SendGrid's error answer as the hub's error (`register` maps its calls the same way).
pub fn api_error(status: u16, reset: Option<&str>, body: &[u8]) -> Error {
    let messages: Vec<String> = serde_json::from_slice::<Value>(body)
        .ok()
        .and_then(|v| v["errors"].as_array().cloned())
        .unwrap_or_default()
        .iter()
        .filter_map(|e| {
            let m = e["message"].as_str()?;
            Some(match e["field"].as_str() {
                Some(f) => format!("{f}: {m}"),
                None => m.to_string(),
            })
        })
        .collect();
    let said = if messages.is_empty() {
        String::from_utf8_lossy(body).chars().take(300).collect()
    } else {
        messages.join("; ")
    };
    let message = format!("SendGrid answered {status}: {said}");
    if status == 429 {
        // Wait until the limit resets (unix seconds); SendGrid sends no Retry-After.
        let retry_after_ms = reset
            .and_then(|r| r.trim().parse::<u64>().ok())
            .map(|reset| (reset * 1000).saturating_sub(now_ms()).max(1000));
        return Error::Retryable(Retryable {
            message,
            retry_after_ms,
        });
    }
    if status >= 500 {
        return Error::retryable(message);
    }
    Error::permanent(message)
}

/// Runs `send_email`.
///
/// # Errors
/// As described in the module.
pub fn run(input: &str, key: &str) -> Result<String, Error> {
    let marker = format!("sent:{key}");
    if let Some(id) = kv::get_string(&marker) {
        return Ok(json!({ "id": id, "duplicate": true }).to_string());
    }
    let input: Input = serde_json::from_str(input)
        .map_err(|e| Error::bad_request(format!("send_email input: {e}")))?;
    let from: String = require_config("from")?;
    let reply_to: Option<String> = config("reply_to")?;
    let body = request_body(input, &from, reply_to.as_deref(), key)?;
    let recipients: Vec<String> = ["to", "cc", "bcc"]
        .iter()
        .flat_map(|f| {
            body["personalizations"][0][f]
                .as_array()
                .cloned()
                .unwrap_or_default()
        })
        .filter_map(|a| a["email"].as_str().map(str::to_string))
        .collect();
    let mut refused = Vec::new();
    for a in &recipients {
        if let Some(s) = records::get::<SuppressionRecord>(SUPPRESSION, a)? {
            refused.push(format!("{a} ({})", s.reason));
        }
    }
    if !refused.is_empty() {
        return Err(Error::permanent(format!(
            "refusing to email suppressed address(es): {}",
            refused.join(", ")
        )));
    }
    let response = match Request::post(format!("{API}/v3/mail/send"))
        .bearer(API_KEY)
        .json(&body)?
        .try_send()
    {
        Ok(r) => r,
        Err(HttpError::Timeout) => {
            return Err(Error::permanent(
                "SendGrid did not answer in time, and may be sending it: not retried, so it \
                 cannot go twice (its events carry the key in custom_args hub_key)",
            ));
        }
        Err(e) => return Err(e.into()),
    };
    if response.status != 202 && !(200..300).contains(&response.status) {
        return Err(api_error(
            response.status,
            response.header("x-ratelimit-reset"),
            &response.body,
        ));
    }
    // SendGrid names the email in X-Message-Id; without it the key names the record.
    let id = response
        .header("x-message-id")
        .filter(|id| !id.is_empty())
        .map_or_else(|| key.to_string(), str::to_string);
    kv::set_marker(&marker, id.as_bytes());
    let subject = body["subject"].as_str().map(str::to_string);
    let stored: Option<EmailRecord> = records::get(EMAIL, &id)?;
    let record = EmailRecord::sent(stored, "sendgrid", &id, from, subject, recipients, key);
    records::upsert(EMAIL, &id, &record)?;
    Ok(json!({ "id": id }).to_string())
}

/// `check_credentials`: `GET /v3/scopes` with the API key.
///
/// # Errors
/// SendGrid's answer when it refuses the key.
pub fn check_credentials() -> Result<(), Error> {
    let r = Request::get(format!("{API}/v3/scopes"))
        .bearer(API_KEY)
        .send()?;
    if (200..300).contains(&r.status) {
        return Ok(());
    }
    Err(api_error(r.status, r.header("x-ratelimit-reset"), &r.body))
}
