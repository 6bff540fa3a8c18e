//! The `send_message` action: `POST /2010-04-01/Accounts/{AccountSid}/Messages.json`
//! (form-encoded `To`, `From` or `MessagingServiceSid`, `Body`, `MediaUrl`, `StatusCallback`,
//! HTTP Basic `AccountSid:auth_token`), SMS or WhatsApp.
//!
//! Idempotency: Twilio has no idempotency header. The action's key maps to the message SID in
//! kv (`send:<sha256(key)>`), committed with the attempt; a later attempt with that key
//! returns the SID without sending. The one gap is an attempt whose commit is lost after
//! Twilio accepted the message (crash, timeout, 5xx after acceptance): its `StatusCallback`
//! URL carries `hub_send=<sha256(key)>`, and the first callback Twilio sends for the message
//! writes the same kv entry ([`crate::status`]), so the retry finds the SID once a callback
//! has arrived. Only when no callback reaches the hub before the retry runs is a second
//! message possible.

use plugin_sdk::{Error, Retryable, http, kv, publish, records, route_url, tenant};
use serde::Deserialize;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::manifest::STATUS_ROUTE;
use crate::model::{
    MESSAGE, MESSAGE_SENT, Media, MessageRecord, OPT_OUT, OptOutRecord, message_event,
};
use crate::plan::{Plan, Sender, form_fields, parse_input, plan};

/// The action's name.
pub const SEND_MESSAGE: &str = "send_message";
/// The API origin (the manifest's one outbound host).
pub const BASE: &str = "https://api.twilio.com";
/// The credential: the account's Auth Token (signatures and API Basic auth).
pub const AUTH_TOKEN: &str = "auth_token";
/// The status-callback query parameter that carries the hash of the action's key.
pub const SEND_PARAM: &str = "hub_send";
const TIMEOUT_MS: u32 = 15_000;

/// `POST` target for an account.
pub fn messages_url(account_sid: &str) -> String {
    format!("{BASE}/2010-04-01/Accounts/{account_sid}/Messages.json")
}

/// Lowercase hex SHA-256.
pub fn sha256_hex(s: &str) -> String {
    Sha256::digest(s.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The kv key holding the SID sent for a key hash.
pub fn send_key(hash: &str) -> String {
    format!("send:{hash}")
}

/// The `StatusCallback` URL: the tenant's `status` route with the key hash.
pub fn status_callback_url(route_url: &str, hash: &str) -> String {
    let sep = if route_url.contains('?') { '&' } else { '?' };
    format!("{route_url}{sep}{SEND_PARAM}={hash}")
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct ApiError {
    code: Option<i64>,
    message: Option<String>,
}

/// What a non-2xx answer from Twilio means: 429, 408 and 5xx are retryable (honouring
/// `retry-after` in seconds); every other status is permanent with Twilio's error code and
/// message (e.g. 400 `21211` invalid `To`, `21610` the recipient replied STOP).
pub fn api_error(status: u16, retry_after: Option<&str>, body: &[u8]) -> Error {
    let parsed: ApiError = serde_json::from_slice(body).unwrap_or_default();
    let text = parsed
        .message
        .unwrap_or_else(|| String::from_utf8_lossy(body).chars().take(300).collect());
    let message = match parsed.code {
        Some(code) => format!("Twilio answered {status} (error {code}): {text}"),
        None => format!("Twilio answered {status}: {text}"),
    };
    if status == 429 || status == 408 || status >= 500 {
        let retry_after_ms = retry_after
            .and_then(|v| v.trim().parse::<u64>().ok())
            .map(|s| s.saturating_mul(1000));
        Error::Retryable(Retryable {
            message,
            retry_after_ms,
        })
    } else {
        Error::permanent(message)
    }
}

/// The record of a sent message: the plan's fields where the record (perhaps made by an
/// early status callback) has none, the status unless callbacks already told more; true when
/// `message.sent` is due.
pub fn merge_sent(
    stored: Option<MessageRecord>,
    sid: &str,
    status: Option<&str>,
    plan: &Plan,
    sender: &Sender,
    key: &str,
    at_ms: u64,
) -> (MessageRecord, bool) {
    let mut r = stored.unwrap_or_default();
    r.sid = sid.to_string();
    r.direction = Some("outbound".into());
    r.channel = Some(plan.channel.as_str().into());
    r.to = Some(plan.to.clone());
    if plan.from.is_some() || r.from.is_none() {
        r.from.clone_from(&plan.from);
    }
    r.body.clone_from(&plan.body);
    r.media = plan
        .media
        .iter()
        .map(|u| Media {
            url: u.clone(),
            content_type: None,
        })
        .collect();
    r.account_sid = Some(sender.account_sid.clone());
    if r.messaging_service_sid.is_none() {
        r.messaging_service_sid
            .clone_from(&plan.messaging_service_sid);
    }
    if let Some(s) = status {
        crate::status::advance(&mut r.status, s);
    }
    r.idempotency_key = Some(key.to_string());
    r.at_ms.get_or_insert(at_ms);
    let due = r.due(MESSAGE_SENT);
    (r, due)
}

fn refuse_opted_out(to: &str) -> Result<(), Error> {
    match records::get::<OptOutRecord>(OPT_OUT, to)? {
        Some(o) => Err(Error::permanent(format!(
            "refusing to message {to}: opted out with {} (message {})",
            o.keyword, o.message_sid
        ))),
        None => Ok(()),
    }
}

fn store(record: &MessageRecord, due: bool) -> Result<(), Error> {
    if due {
        publish(
            MESSAGE_SENT,
            &message_event(record, MESSAGE_SENT, &tenant()),
        )?;
    }
    record.save()
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// Runs `send_message`.
///
/// # Errors
/// As [`plan`] and [`api_error`]; permanent for an opted-out recipient; retryable on
/// transport failures and timeouts.
pub fn run(input: &str, key: &str) -> Result<String, Error> {
    let input = parse_input(input)?;
    let sender = Sender::from_config()?;
    let plan = plan(&input, &sender)?;
    let hash = sha256_hex(key);
    let guard = send_key(&hash);
    if let Some(sid) = kv::get_string(&guard) {
        let stored = records::get(MESSAGE, &sid)?;
        let (record, due) = merge_sent(stored, &sid, None, &plan, &sender, key, now_ms());
        store(&record, due)?;
        return Ok(
            json!({ "id": sid, "sid": sid, "status": record.status, "duplicate": true })
                .to_string(),
        );
    }
    refuse_opted_out(&plan.to)?;
    let callback = status_callback_url(&route_url(STATUS_ROUTE), &hash);
    let fields = form_fields(&plan, &callback);
    let pairs: Vec<(&str, &str)> = fields.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let response = http::Request::post(messages_url(&sender.account_sid))
        .basic(&sender.account_sid, AUTH_TOKEN)
        .timeout_ms(TIMEOUT_MS)
        .form(&pairs)
        .send()?;
    if !(200..300).contains(&response.status) {
        return Err(api_error(
            response.status,
            response.header("retry-after"),
            &response.body,
        ));
    }
    let created: Value = response.json()?;
    let sid = created
        .get("sid")
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .ok_or_else(|| Error::permanent("Twilio accepted the message but returned no sid"))?;
    let status = created.get("status").and_then(Value::as_str);
    kv::set_marker(&guard, sid.as_bytes());
    let stored = records::get(MESSAGE, &sid)?;
    let (record, due) = merge_sent(stored, &sid, status, &plan, &sender, key, now_ms());
    store(&record, due)?;
    Ok(json!({ "id": sid, "sid": sid, "status": record.status }).to_string())
}

#[cfg(test)]
mod tests;
