//! Handling a stored, verified webhook delivery: call events update the `call` record (and
//! publish `call.*` events), chat events the `chat` record; unknown event types are ignored.

use plugin_sdk::{Delivery, Error, Outcome, config, enqueue_job, warn};
use serde::Serialize;
use serde_json::Value;

use crate::api::{self, describe, owns_agent};
use crate::merge::{merge, merge_chat};
use crate::model::{CallObject, CallRecord, ChatObject, Envelope};
use crate::store;

/// Config key: the agent ids this tenant owns.
pub const AGENT_IDS: &str = "agent_ids";
/// Job that fetches a call from the API when a webhook came without its transcript.
pub const FETCH_CALL: &str = "fetch_call";
/// The shortest wait before the `fetch_call` job when the inline fetch failed and the API said
/// nothing about when to come back; each call adds up to as much again (`fetch_retry_delay_ms`).
pub const FETCH_RETRY_DELAY_MS: u64 = 5_000;
/// The longest `Retry-After` the `fetch_call` job waits for; the hub's backoff takes over after.
const FETCH_RETRY_AFTER_MAX_MS: u64 = 3_600_000;
/// Time limit of the inline get-call fetch (the whole delivery has about 10 s).
const INLINE_FETCH_TIMEOUT_MS: u32 = 4_000;

/// What a webhook event is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A voice-call event with a `call` object.
    Call,
    /// A chat event with a `chat` object.
    Chat,
    /// The inbound webhook, answered synchronously by `respond`.
    Inbound,
    /// Anything else.
    Unknown,
}

/// Classifies a Retell event type.
pub fn classify(event: &str) -> Kind {
    match event {
        "call_started" | "call_ended" | "call_analyzed" | "transcript_updated"
        | "transfer_started" | "transfer_bridged" | "transfer_cancelled" | "transfer_ended" => {
            Kind::Call
        }
        "chat_started" | "chat_ended" | "chat_analyzed" => Kind::Chat,
        "call_inbound" | "chat_inbound" => Kind::Inbound,
        _ => Kind::Unknown,
    }
}

/// The input of the `fetch_call` job.
#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize)]
pub struct FetchCallInput {
    /// The call to fetch.
    pub call_id: String,
    /// Whether to publish the events the fetched state makes due (default true).
    #[serde(default = "yes")]
    pub publish: bool,
}

fn yes() -> bool {
    true
}

/// Whether to fetch the call from the API: an end or analysis event left the record without
/// a transcript (calls that never connected have none to fetch).
pub fn needs_fetch(event: &str, record: &CallRecord) -> bool {
    matches!(event, "call_ended" | "call_analyzed")
        && record.transcript.is_none()
        && record.call_status.as_deref() != Some("not_connected")
}

/// The reason to refuse a delivery for an agent this tenant does not own, if any.
pub fn foreign_agent(agent_ids: Option<&[String]>, agent_id: Option<&str>) -> Option<String> {
    if owns_agent(agent_ids, agent_id) {
        return None;
    }
    Some(format!(
        "agent {} does not belong to this tenant",
        agent_id.unwrap_or("(none)")
    ))
}

/// Parses the object of a call or chat event and its id.
fn parse_object<T: serde::de::DeserializeOwned>(
    event: &str,
    field: &str,
    value: Option<Value>,
) -> Result<T, Error> {
    let value =
        value.ok_or_else(|| Error::bad_request(format!("`{event}` has no `{field}` object")))?;
    serde_json::from_value(value)
        .map_err(|e| Error::bad_request(format!("`{event}` has a malformed `{field}`: {e}")))
}

fn required_id(event: &str, id: Option<String>, name: &str) -> Result<String, Error> {
    id.filter(|s| !s.is_empty())
        .ok_or_else(|| Error::bad_request(format!("`{event}` has no `{name}`")))
}

/// Handles one delivery on any route.
///
/// # Errors
/// Bad request for a body that is not Retell's shape; permanent for a misconfigured tenant or
/// an unreadable stored record.
pub fn handle(delivery: &Delivery) -> Result<Outcome, Error> {
    if delivery.route == crate::manifest::TOOLS_ROUTE {
        return Ok(Outcome::ignored(
            "a custom-function call: the hub answered it with the tenant's tool",
        ));
    }
    let envelope: Envelope = delivery.json()?;
    let event = envelope.event.clone();
    match classify(&event) {
        Kind::Call => handle_call(&event, envelope.call),
        Kind::Chat => handle_chat(&event, envelope.chat),
        Kind::Inbound => Ok(Outcome::handled()),
        Kind::Unknown => Ok(Outcome::ignored(format!("unknown event type `{event}`"))),
    }
}

fn handle_call(event: &str, value: Option<Value>) -> Result<Outcome, Error> {
    let call: CallObject = parse_object(event, "call", value)?;
    let call_id = required_id(event, call.call_id.clone(), "call.call_id")?;
    let agent_ids: Option<Vec<String>> = config(AGENT_IDS)?;
    if let Some(reason) = foreign_agent(agent_ids.as_deref(), call.agent_id.as_deref()) {
        warn!("ignoring `{event}` for call {call_id}: {reason}");
        return Ok(Outcome::ignored(reason));
    }
    let mut record = merge(store::load_call(&call_id)?, event, &call);
    if needs_fetch(event, &record) {
        match api::fetch_call(&call_id, INLINE_FETCH_TIMEOUT_MS) {
            Ok(fresh) => {
                // Read again: the fetch took a while, and the host does not serialize the
                // deliveries of one call, so another may have committed meanwhile.
                record = merge(store::load_call(&call_id)?, event, &call);
                record = merge(Some(record), "", &fresh);
            }
            Err(Error::Retryable(why)) => {
                let delay = fetch_retry_delay_ms(&call_id, why.retry_after_ms);
                warn!(
                    "get-call {call_id} failed (retryable: {}); retrying in a job in {:.1} s",
                    why.message,
                    delay as f64 / 1000.0
                );
                let input = FetchCallInput {
                    call_id: call_id.clone(),
                    publish: true,
                };
                enqueue_job(FETCH_CALL, &input, delay)?;
            }
            Err(e) => warn!(
                "get-call {call_id} failed ({}); keeping the webhook's data",
                describe(&e)
            ),
        }
    }
    store::save_call(record, true)?;
    Ok(Outcome::handled())
}

/// When the `fetch_call` job runs after a failed inline fetch: when the API's `Retry-After`
/// said (at most an hour), else [`FETCH_RETRY_DELAY_MS`] plus up to as much again, spread by
/// the call id, so the calls that ended during an outage do not all come back at once. The
/// hub's backoff (with jitter) spaces the job's own retries after that.
pub fn fetch_retry_delay_ms(call_id: &str, retry_after_ms: Option<u64>) -> u64 {
    if let Some(ms) = retry_after_ms {
        return ms.min(FETCH_RETRY_AFTER_MAX_MS);
    }
    // FNV-1a: stable, and a guest has no randomness to spare for this.
    let hash = call_id.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    });
    FETCH_RETRY_DELAY_MS + hash % FETCH_RETRY_DELAY_MS
}

fn handle_chat(event: &str, value: Option<Value>) -> Result<Outcome, Error> {
    let chat: ChatObject = parse_object(event, "chat", value)?;
    let chat_id = required_id(event, chat.chat_id.clone(), "chat.chat_id")?;
    let agent_ids: Option<Vec<String>> = config(AGENT_IDS)?;
    if let Some(reason) = foreign_agent(agent_ids.as_deref(), chat.agent_id.as_deref()) {
        warn!("ignoring `{event}` for chat {chat_id}: {reason}");
        return Ok(Outcome::ignored(reason));
    }
    let record = merge_chat(store::load_chat(&chat_id)?, event, &chat);
    store::save_chat(&record)?;
    Ok(Outcome::handled())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_failed_fetch_comes_back_when_the_api_said_or_spread_over_5_to_10_s() {
        assert_eq!(fetch_retry_delay_ms("call_a", Some(2_000)), 2_000);
        assert_eq!(fetch_retry_delay_ms("call_a", Some(0)), 0);
        assert_eq!(
            fetch_retry_delay_ms("call_a", Some(86_400_000)),
            3_600_000,
            "a day's Retry-After is capped at an hour"
        );
        let delays: Vec<u64> = (0..200)
            .map(|i| fetch_retry_delay_ms(&format!("call_{i:04}"), None))
            .collect();
        assert!(
            delays.iter().all(|d| (5_000..10_000).contains(d)),
            "{delays:?}"
        );
        // Spread: no single second of the window holds more than a third of the calls.
        let mut per_second = [0; 5];
        for d in &delays {
            per_second[(*d / 1000 - 5) as usize] += 1;
        }
        assert!(per_second.iter().all(|n| *n < 67), "{per_second:?}");
        assert_eq!(
            fetch_retry_delay_ms("call_0001", None),
            fetch_retry_delay_ms("call_0001", None),
            "stable for a call"
        );
    }

    #[test]
    fn every_documented_event_is_classified() {
        for e in [
            "call_started",
            "call_ended",
            "call_analyzed",
            "transcript_updated",
            "transfer_started",
            "transfer_bridged",
            "transfer_cancelled",
            "transfer_ended",
        ] {
            assert_eq!(classify(e), Kind::Call, "{e}");
        }
        for e in ["chat_started", "chat_ended", "chat_analyzed"] {
            assert_eq!(classify(e), Kind::Chat, "{e}");
        }
        assert_eq!(classify("call_inbound"), Kind::Inbound);
        assert_eq!(classify("call.ended"), Kind::Unknown);
        assert_eq!(classify(""), Kind::Unknown);
    }

    #[test]
    fn fetch_only_when_the_transcript_is_missing() {
        let mut r = CallRecord {
            call_status: Some("ended".into()),
            ..Default::default()
        };
        assert!(needs_fetch("call_ended", &r));
        assert!(needs_fetch("call_analyzed", &r));
        assert!(!needs_fetch("call_started", &r));
        assert!(!needs_fetch("transcript_updated", &r));
        r.transcript = Some(String::new());
        assert!(!needs_fetch("call_ended", &r));
        r.transcript = None;
        r.call_status = Some("not_connected".into());
        assert!(!needs_fetch("call_ended", &r));
    }

    #[test]
    fn foreign_agents_are_refused_with_a_reason() {
        let ids = vec!["ag1".to_string()];
        assert_eq!(foreign_agent(Some(&ids), Some("ag1")), None);
        assert_eq!(foreign_agent(None, Some("agX")), None);
        assert_eq!(
            foreign_agent(Some(&ids), Some("agX")).as_deref(),
            Some("agent agX does not belong to this tenant")
        );
        assert_eq!(
            foreign_agent(Some(&ids), None).as_deref(),
            Some("agent (none) does not belong to this tenant")
        );
    }

    #[test]
    fn envelopes_parse() {
        let env: Envelope = serde_json::from_value(json!({
            "event": "call_ended", "call": {"call_id": "c1", "agent_id": "ag1"}
        }))
        .unwrap();
        let call: CallObject = parse_object("call_ended", "call", env.call).unwrap();
        assert_eq!(call.call_id.as_deref(), Some("c1"));
        assert!(matches!(
            parse_object::<CallObject>("call_ended", "call", None),
            Err(Error::BadRequest(_))
        ));
        assert!(matches!(
            parse_object::<CallObject>("call_ended", "call", Some(json!("x"))),
            Err(Error::BadRequest(_))
        ));
        assert!(matches!(
            required_id("call_ended", Some(String::new()), "call.call_id"),
            Err(Error::BadRequest(_))
        ));
    }

    #[test]
    fn fetch_call_input_defaults_to_publishing() {
        let i: FetchCallInput = serde_json::from_str(r#"{"call_id":"c1"}"#).unwrap();
        assert_eq!(
            i,
            FetchCallInput {
                call_id: "c1".into(),
                publish: true
            }
        );
        assert_eq!(
            serde_json::to_value(&i).unwrap(),
            json!({"call_id": "c1", "publish": true})
        );
    }
}
