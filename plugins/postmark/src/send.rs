//! `send_email` on `POST /email` with `X-Postmark-Server-Token`, from the hub's common email
//! input. Postmark has no idempotency header: the key rides in `Metadata.hub_key` (the webhooks
//! echo it) and the connector remembers key -> MessageID, so a key sends at most once. ErrorCode
//! 406 (an inactive recipient) is permanent; 429 and 5xx are retried;
//! a timeout is not (the email may be on its way); other refusals are permanent with Postmark's
//! `Message`.

use plugin_sdk::http::Request;
use plugin_sdk::{Error, HttpError, config, kv, records, require_config};
use serde_json::{Map, Value, json};

use crate::api::api_error;
use crate::manifest::{API, SERVER_TOKEN};
use crate::model::{EMAIL, EmailRecord, SUPPRESSION, SuppressionRecord, bare_address};

use plugin_sdk::email::EmailInput as Input;

/// Checks every address and joins them as Postmark takes a list: comma-separated.
fn joined(all: &[String], field: &str) -> Result<(String, Vec<String>), Error> {
    let mut bare = Vec::new();
    for a in all {
        bare.push(bare_address(a).ok_or_else(|| {
            Error::bad_request(format!("{field}: `{a}` is not an email address"))
        })?);
    }
    Ok((
        all.iter().map(|a| a.trim()).collect::<Vec<_>>().join(", "),
        bare,
    ))
}

fn value_text(v: Value) -> String {
    match v {
        Value::String(s) => s,
        other => other.to_string(),
    }
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
    let stream: String = config("message_stream")?.unwrap_or_else(|| "outbound".into());
    let (to, mut recipients) = joined(&input.to, "to")?;
    if recipients.is_empty() {
        return Err(Error::bad_request("to: at least one recipient"));
    }
    let (cc, more) = joined(&input.cc, "cc")?;
    recipients.extend(more);
    let (bcc, more) = joined(&input.bcc, "bcc")?;
    recipients.extend(more);
    if recipients.len() > 50 {
        return Err(Error::bad_request(format!(
            "{} recipients: Postmark takes at most 50 across to, cc and bcc",
            recipients.len()
        )));
    }
    if input.html.as_deref().unwrap_or("").is_empty()
        && input.text.as_deref().unwrap_or("").is_empty()
    {
        return Err(Error::bad_request("html or text: the email has no body"));
    }
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
    let mut metadata = Map::new();
    metadata.insert("hub_key".into(), Value::String(key.into()));
    let tags = input.tags.unwrap_or_default();
    let tag = tags.values().next().cloned().map(value_text);
    for (k, v) in tags {
        metadata.insert(k, Value::String(value_text(v)));
    }
    let mut body = json!({
        "From": from,
        "To": to,
        "Subject": input.subject.trim(),
        "MessageStream": stream,
        "Metadata": metadata,
    });
    for (field, value) in [("Cc", cc), ("Bcc", bcc)] {
        if !value.is_empty() {
            body[field] = Value::String(value);
        }
    }
    if let Some(h) = input.html.filter(|h| !h.is_empty()) {
        body["HtmlBody"] = Value::String(h);
    }
    if let Some(t) = input.text.filter(|t| !t.is_empty()) {
        body["TextBody"] = Value::String(t);
    }
    let reply_to: Option<String> = match input.reply_to {
        Some(r) => Some(r),
        None => config("reply_to")?,
    };
    if let Some(r) = reply_to {
        body["ReplyTo"] = Value::String(r);
    }
    if let Some(t) = tag {
        body["Tag"] = Value::String(t);
    }
    if let Some(h) = input.headers.filter(|h| !h.is_empty()) {
        body["Headers"] = Value::Array(
            h.into_iter()
                .map(|(name, v)| json!({ "Name": name, "Value": value_text(v) }))
                .collect(),
        );
    }
    let response = match Request::post(format!("{API}/email"))
        .credential_header("x-postmark-server-token", SERVER_TOKEN)
        .header("accept", "application/json")
        .json(&body)?
        .try_send()
    {
        Ok(r) => r,
        Err(HttpError::Timeout) => {
            return Err(Error::permanent(
                "Postmark did not answer in time, and may be sending it: not retried, so it \
                 cannot go twice (its webhooks carry the key in Metadata.hub_key)",
            ));
        }
        Err(e) => return Err(e.into()),
    };
    let answer: Value = serde_json::from_slice(&response.body).unwrap_or_default();
    // A 200 with a non-zero ErrorCode is a refusal too. 406, an inactive recipient, is
    // permanent: Postmark refuses it until reactivated (its Bounce webhook with `Inactive`
    // suppresses the address here).
    if !(200..300).contains(&response.status) || answer["ErrorCode"].as_i64().unwrap_or(0) != 0 {
        return Err(api_error(response.status, &response.body));
    }
    let id = answer["MessageID"]
        .as_str()
        .filter(|id| !id.is_empty())
        .map(str::to_string)
        .ok_or_else(|| Error::permanent("Postmark accepted the email but returned no MessageID"))?;
    kv::set_marker(&marker, id.as_bytes());
    let subject = body["Subject"].as_str().map(str::to_string);
    let stored: Option<EmailRecord> = records::get(EMAIL, &id)?;
    let record = EmailRecord::sent(stored, "postmark", &id, from, subject, recipients, key);
    records::upsert(EMAIL, &id, &record)?;
    Ok(json!({ "id": id }).to_string())
}

/// `check_credentials`: `GET /server` with the server token.
///
/// # Errors
/// Postmark's answer when it refuses the token.
pub fn check_credentials() -> Result<(), Error> {
    Request::get(format!("{API}/server"))
        .credential_header("x-postmark-server-token", SERVER_TOKEN)
        .header("accept", "application/json")
        .send()?
        .error_for_status()?;
    Ok(())
}
