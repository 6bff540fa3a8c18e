//! The `notify` action (`{"event", "payload"}`) and the `deliver` job that POSTs the payload
//! as JSON to one subscribed target URL.
//!
//! `notify` sends nothing itself: it keeps the payload as a sample and queues one `deliver` job
//! per subscription to the event. The host re-runs an invocation whose reads changed before it
//! committed (discarding its writes), so an action that POSTed inline and then re-ran would
//! send again; queueing is free of side effects, and each `deliver` touches one target.
//!
//! Outcomes per target: 2xx is delivered; `410 Gone` means the Zap was turned off, so the
//! subscription is removed; anything else (other statuses, timeouts, transport errors) is
//! retryable (the host retries the `deliver` job with backoff, honouring `Retry-After`).
//!
//! Idempotency: a kv marker per (idempotency key, subscription) records each target served, so a
//! retried or replayed notification never re-sends to a target already served.
//!
//! A `payload` given as a string holding a JSON object or array is sent as that JSON.

use plugin_sdk::{Error, Retryable, enqueue_job, http, info, kv};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::sample;
use crate::subscription::{self, Subscription, check_event};

/// The action that notifies an event's subscribers.
pub const NOTIFY: &str = "notify";
/// The job that retries one subscriber.
pub const DELIVER: &str = "deliver";
/// Time limit of one POST to a target.
const SEND_TIMEOUT_MS: u32 = 5_000;

/// The input of `notify`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct NotifyInput {
    /// The event name subscriptions listen to.
    pub event: String,
    /// What to POST (as JSON).
    #[serde(default)]
    pub payload: Value,
}

/// The input of `deliver`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeliverInput {
    /// The idempotency key of the `notify` it continues.
    pub key: String,
    /// The subscription to serve.
    pub subscription_id: String,
    /// The event (for the log).
    pub event: String,
    /// What to POST.
    pub payload: Value,
}

/// What came of one POST to a target.
pub enum Sent {
    /// A 2xx answer.
    Delivered,
    /// `410 Gone`: the Zap is gone.
    Gone,
    /// Anything else.
    Failed(Error),
}

/// The kv key marking a subscription served under an idempotency key.
pub fn marker(key: &str, subscription_id: &str) -> String {
    format!("sent:{key}:{subscription_id}")
}

/// A `Retry-After` value in ms: seconds, or 60 s for an HTTP date.
pub fn retry_after_ms(value: Option<&str>) -> Option<u64> {
    value.map(|v| {
        v.trim()
            .parse::<u64>()
            .map_or(60_000, |s| s.saturating_mul(1000))
    })
}

/// Judges a target's answer.
pub fn judge(status: u16, retry_after: Option<&str>, body: &[u8]) -> Sent {
    match status {
        200..=299 => Sent::Delivered,
        410 => Sent::Gone,
        _ => {
            let snippet: String = String::from_utf8_lossy(body).chars().take(200).collect();
            Sent::Failed(Error::Retryable(Retryable {
                message: format!("target answered {status}: {snippet}"),
                retry_after_ms: retry_after_ms(retry_after),
            }))
        }
    }
}

fn send(sub: &Subscription, payload: &Value) -> Sent {
    let request = match http::Request::post(sub.target_url.as_str())
        .timeout_ms(SEND_TIMEOUT_MS)
        .json(payload)
    {
        Ok(r) => r,
        Err(e) => return Sent::Failed(e),
    };
    match request.send() {
        Ok(resp) => judge(resp.status, resp.header("retry-after"), &resp.body),
        Err(e) => Sent::Failed(e),
    }
}

/// POSTs to one subscription and records the outcome (marker, or removal).
fn serve(key: &str, sub: &Subscription, payload: &Value) -> Sent {
    let sent = send(sub, payload);
    match &sent {
        Sent::Delivered => kv::set_marker(&marker(key, &sub.id), b"1"),
        Sent::Gone => {
            info!("subscription {} answered 410; removed", sub.id);
            subscription::remove(&sub.id);
        }
        Sent::Failed(_) => {}
    }
    sent
}

/// The payload to send: a string holding a JSON object or array is that JSON.
pub fn payload_json(payload: Value) -> Value {
    if let Value::String(text) = &payload
        && let Ok(parsed @ (Value::Object(_) | Value::Array(_))) =
            serde_json::from_str::<Value>(text.trim())
    {
        return parsed;
    }
    payload
}

/// Runs `notify`: keeps the sample and queues a `deliver` per subscription; returns a JSON
/// summary.
///
/// # Errors
/// Bad request for a malformed input.
pub fn notify(input: &str, key: &str) -> Result<String, Error> {
    let input: NotifyInput = serde_json::from_str(input)
        .map_err(|e| Error::bad_request(format!("`{NOTIFY}` input: {e}")))?;
    check_event(&input.event).map_err(Error::bad_request)?;
    let payload = payload_json(input.payload);
    sample::remember(&input.event, key, &payload);
    let subs: Vec<Subscription> = subscription::all()
        .into_iter()
        .filter(|s| s.event == input.event)
        .collect();
    for sub in &subs {
        let job = DeliverInput {
            key: key.to_string(),
            subscription_id: sub.id.clone(),
            event: input.event.clone(),
            payload: payload.clone(),
        };
        enqueue_job(DELIVER, &job, 0)?;
    }
    Ok(json!({ "event": input.event, "queued": subs.len() }).to_string())
}

/// Runs `deliver`: serves one subscription unless it was served already or is gone.
///
/// # Errors
/// Bad request for a malformed input; the target's failure, for the host to retry.
pub fn deliver(input: &str) -> Result<(), Error> {
    let input: DeliverInput = serde_json::from_str(input)
        .map_err(|e| Error::bad_request(format!("`{DELIVER}` input: {e}")))?;
    if kv::get(&marker(&input.key, &input.subscription_id)).is_some() {
        return Ok(());
    }
    let Some(sub) = subscription::get(&input.subscription_id)? else {
        info!(
            "deliver {}: subscription {} is gone; nothing to do",
            input.event, input.subscription_id
        );
        return Ok(());
    };
    match serve(&input.key, &sub, &input.payload) {
        Sent::Delivered | Sent::Gone => Ok(()),
        Sent::Failed(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_are_judged() {
        assert!(matches!(judge(200, None, b""), Sent::Delivered));
        assert!(matches!(judge(204, None, b""), Sent::Delivered));
        assert!(matches!(judge(410, None, b""), Sent::Gone));
        for status in [400, 404, 429, 500, 503] {
            match judge(status, Some("7"), b"nope") {
                Sent::Failed(Error::Retryable(r)) => {
                    assert_eq!(r.retry_after_ms, Some(7_000));
                    assert!(r.message.contains(&status.to_string()));
                }
                _ => panic!("{status} must be retryable"),
            }
        }
    }

    #[test]
    fn retry_after_values() {
        assert_eq!(retry_after_ms(None), None);
        assert_eq!(retry_after_ms(Some(" 3 ")), Some(3_000));
        assert_eq!(
            retry_after_ms(Some("Wed, 21 Oct 2015 07:28:00 GMT")),
            Some(60_000)
        );
    }

    #[test]
    fn inputs_and_markers() {
        let i: NotifyInput =
            serde_json::from_str(r#"{"event": "call.analyzed", "payload": {"a": 1}}"#).unwrap();
        assert_eq!(i.payload, json!({"a": 1}));
        let bare: NotifyInput = serde_json::from_str(r#"{"event": "e"}"#).unwrap();
        assert_eq!(bare.payload, Value::Null);
        assert!(serde_json::from_str::<NotifyInput>(r#"{"payload": {}}"#).is_err());
        let d = DeliverInput {
            key: "k".into(),
            subscription_id: "sub_1".into(),
            event: "e".into(),
            payload: json!([1]),
        };
        let back: DeliverInput = serde_json::from_value(serde_json::to_value(&d).unwrap()).unwrap();
        assert_eq!(back, d);
        assert_eq!(
            marker("action:t:zapier:k1", "sub_9"),
            "sent:action:t:zapier:k1:sub_9"
        );
    }

    #[test]
    fn string_payloads_holding_json_are_json() {
        assert_eq!(payload_json(json!(" {\"a\": 1} ")), json!({"a": 1}));
        assert_eq!(payload_json(json!("[1,2]")), json!([1, 2]));
        assert_eq!(
            payload_json(json!("42")),
            json!("42"),
            "only objects and arrays"
        );
        assert_eq!(payload_json(json!("{not json")), json!("{not json"));
        assert_eq!(payload_json(json!({"b": 2})), json!({"b": 2}));
    }
}
