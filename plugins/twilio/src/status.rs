//! Status callbacks (route `status`): each moves the outbound message's `message` record along
//! Twilio's lifecycle without regressing, keeps the `ErrorCode`, and publishes
//! `message.delivered`, `message.failed` or `message.read` once.
//!
//! Lifecycle order: `accepted`/`scheduled` < `queued` < `sending` < `sent` < `delivered`
//! < `read`; `failed`, `undelivered` and `canceled` are final. A late `sent` after `delivered`
//! changes nothing; `read` after `delivered` moves on.
//!
//! A callback for a message sent by `send_message` carries `hub_send=<hash of the action's
//! idempotency key>` in its URL: the callback records key -> SID in kv, so an action attempt
//! whose commit was lost after Twilio accepted the message finds it instead of sending again.

use plugin_sdk::{Delivery, Error, Outcome, config, kv, publish, records, tenant};

use crate::address::{channel, normalize};
use crate::inbound::{field, foreign_account};
use crate::model::{
    MESSAGE, MESSAGE_DELIVERED, MESSAGE_FAILED, MESSAGE_READ, MessageRecord, message_event,
};
use crate::plan::ACCOUNT_SID;
use crate::send::{SEND_PARAM, send_key};

/// A status callback's fields.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StatusCallback {
    /// `MessageSid`.
    pub sid: String,
    /// `MessageStatus` (or `SmsStatus`).
    pub status: String,
    /// `ErrorCode`, when not empty.
    pub error_code: Option<String>,
    /// `From`.
    pub from: Option<String>,
    /// `To`.
    pub to: Option<String>,
    /// `AccountSid`.
    pub account_sid: Option<String>,
    /// `MessagingServiceSid`.
    pub messaging_service_sid: Option<String>,
}

/// Reads a status callback form.
///
/// # Errors
/// Bad request without `MessageSid` or `MessageStatus`.
pub fn parse(form: &[(String, String)]) -> Result<StatusCallback, Error> {
    let sid = field(form, "MessageSid")
        .or_else(|| field(form, "SmsSid"))
        .ok_or_else(|| Error::bad_request("status callback without `MessageSid`"))?;
    let status = field(form, "MessageStatus")
        .or_else(|| field(form, "SmsStatus"))
        .ok_or_else(|| Error::bad_request("status callback without `MessageStatus`"))?
        .to_ascii_lowercase();
    Ok(StatusCallback {
        sid,
        status,
        error_code: field(form, "ErrorCode").filter(|c| c != "0"),
        from: field(form, "From").map(|f| normalize(&f)),
        to: field(form, "To").map(|t| normalize(&t)),
        account_sid: field(form, "AccountSid"),
        messaging_service_sid: field(form, "MessagingServiceSid"),
    })
}

/// A status's place in the lifecycle (0: unknown).
pub fn rank(status: &str) -> u8 {
    match status {
        "accepted" | "scheduled" => 1,
        "queued" => 2,
        "sending" => 3,
        "sent" | "receiving" => 4,
        "delivered"
        | "undelivered"
        | "failed"
        | "canceled"
        | "partially_delivered"
        | "received" => 5,
        "read" => 6,
        _ => 0,
    }
}

/// Whether a status is a final failure, which nothing moves.
pub fn is_failure(status: &str) -> bool {
    matches!(status, "failed" | "undelivered" | "canceled")
}

/// Moves the status to `incoming` if that is progress; returns whether it moved.
pub fn advance(current: &mut Option<String>, incoming: &str) -> bool {
    let moves = match current.as_deref() {
        None => true,
        Some(c) => !is_failure(c) && rank(incoming) > rank(c),
    };
    if moves {
        *current = Some(incoming.to_string());
    }
    moves
}

/// The hub event a status announces.
pub fn event_for(status: &str) -> Option<&'static str> {
    match status {
        "delivered" => Some(MESSAGE_DELIVERED),
        "failed" | "undelivered" => Some(MESSAGE_FAILED),
        "read" => Some(MESSAGE_READ),
        _ => None,
    }
}

/// Applies a callback to the stored record (a record is made for a message the hub has not
/// seen, e.g. one sent before its `send_message` attempt committed); the events now due.
pub fn apply(
    stored: Option<MessageRecord>,
    cb: &StatusCallback,
    at_ms: u64,
) -> (MessageRecord, Vec<&'static str>) {
    let mut r = stored.unwrap_or_default();
    r.sid.clone_from(&cb.sid);
    r.direction.get_or_insert_with(|| "outbound".into());
    if r.to.is_none() {
        r.to.clone_from(&cb.to);
    }
    if r.from.is_none() {
        r.from.clone_from(&cb.from);
    }
    if r.channel.is_none() {
        let addr = r.to.as_deref().or(r.from.as_deref()).unwrap_or_default();
        r.channel = Some(channel(addr).as_str().into());
    }
    if r.account_sid.is_none() {
        r.account_sid.clone_from(&cb.account_sid);
    }
    if r.messaging_service_sid.is_none() {
        r.messaging_service_sid
            .clone_from(&cb.messaging_service_sid);
    }
    let moved = advance(&mut r.status, &cb.status);
    if cb.error_code.is_some() && (moved || r.error_code.is_none()) {
        r.error_code.clone_from(&cb.error_code);
    }
    if moved {
        r.updated_at_ms = Some(at_ms);
    }
    if !r.statuses_seen.contains(&cb.status) {
        r.statuses_seen.push(cb.status.clone());
    }
    let mut publish = Vec::new();
    if moved
        && let Some(e) = event_for(&cb.status)
        && r.due(e)
    {
        publish.push(e);
    }
    (r, publish)
}

/// The `hub_send` value of the URL Twilio called: 64 lowercase hex digits, or nothing.
pub fn send_param(url: &str) -> Option<String> {
    let query = url.split_once('?')?.1;
    form_urlencoded::parse(query.as_bytes())
        .find(|(k, _)| k == SEND_PARAM)
        .map(|(_, v)| v.into_owned())
        .filter(|v| v.len() == 64 && v.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')))
}

/// Handles a stored status callback.
///
/// # Errors
/// Bad request for a form without `MessageSid` or `MessageStatus`; permanent for unreadable
/// records or config.
pub fn handle(delivery: &Delivery) -> Result<Outcome, Error> {
    let cb = parse(&delivery.form())?;
    let configured: Option<String> = config(ACCOUNT_SID)?;
    if let Some(reason) = foreign_account(configured.as_deref(), cb.account_sid.as_deref()) {
        return Ok(Outcome::ignored(reason));
    }
    if let Some(hash) = send_param(&delivery.url) {
        let key = send_key(&hash);
        if kv::get(&key).is_none() {
            kv::set_marker(&key, cb.sid.as_bytes());
        }
    }
    let stored: Option<MessageRecord> = records::get(MESSAGE, &cb.sid)?;
    let (record, due) = apply(stored, &cb, delivery.received_at_ms);
    if !due.is_empty() {
        let tenant = tenant();
        for name in due {
            publish(name, &message_event(&record, name, &tenant))?;
        }
    }
    record.save()?;
    Ok(Outcome::handled())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cb(status: &str) -> StatusCallback {
        StatusCallback {
            sid: "SM1".into(),
            status: status.into(),
            to: Some("+14155550111".into()),
            from: Some("+14155550100".into()),
            ..Default::default()
        }
    }

    fn run(statuses: &[&str]) -> (MessageRecord, Vec<&'static str>) {
        let mut r = None;
        let mut all = Vec::new();
        for (i, s) in statuses.iter().enumerate() {
            let (rec, due) = apply(r.take(), &cb(s), i as u64);
            all.extend(due);
            r = Some(rec);
        }
        (r.unwrap(), all)
    }

    #[test]
    fn lifecycle_never_regresses() {
        let (r, events) = run(&["queued", "delivered", "sent", "sending", "queued"]);
        assert_eq!(r.status.as_deref(), Some("delivered"));
        assert_eq!(events, vec!["message.delivered"]);
        assert_eq!(
            r.statuses_seen,
            vec!["queued", "delivered", "sent", "sending"]
        );
        assert_eq!(r.direction.as_deref(), Some("outbound"));
        assert_eq!(r.channel.as_deref(), Some("sms"));
        let (r, events) = run(&["sent", "delivered", "read", "delivered"]);
        assert_eq!(r.status.as_deref(), Some("read"));
        assert_eq!(events, vec!["message.delivered", "message.read"]);
    }

    #[test]
    fn failures_are_final_and_keep_the_error_code() {
        let mut undelivered = cb("undelivered");
        undelivered.error_code = Some("30003".into());
        let (r, due) = apply(None, &cb("sent"), 1);
        assert!(due.is_empty());
        let (r, due) = apply(Some(r), &undelivered, 2);
        assert_eq!(due, vec!["message.failed"]);
        assert_eq!(r.error_code.as_deref(), Some("30003"));
        let (r, due) = apply(Some(r), &cb("read"), 3);
        assert!(due.is_empty());
        assert_eq!(r.status.as_deref(), Some("undelivered"));
        assert_eq!(r.updated_at_ms, Some(2));
        let (r, _) = run(&["failed", "failed"]);
        assert_eq!(r.published, vec!["message.failed"]);
    }

    #[test]
    fn parses_forms_and_send_params() {
        let f: Vec<(String, String)> = [
            ("MessageSid", "SM1"),
            ("MessageStatus", "Delivered"),
            ("ErrorCode", ""),
            ("To", "whatsapp:+1 415 555 0111"),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        let c = parse(&f).unwrap();
        assert_eq!(c.status, "delivered");
        assert_eq!(c.error_code, None);
        assert_eq!(c.to.as_deref(), Some("whatsapp:+14155550111"));
        assert!(matches!(parse(&f[..1]), Err(Error::BadRequest(_))));
        let h = "a".repeat(64);
        assert_eq!(
            send_param(&format!(
                "https://hub.example/hooks/t/twilio/status?hub_send={h}"
            )),
            Some(h.clone())
        );
        assert_eq!(
            send_param("https://hub.example/hooks/t/twilio/status"),
            None
        );
        assert_eq!(send_param("https://h/x?hub_send=zz"), None);
        assert_eq!(
            send_param(&format!("https://h/x?a=1&hub_send={}", h.to_uppercase())),
            None
        );
        assert_eq!(rank("mystery"), 0);
    }
}
