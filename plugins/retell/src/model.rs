//! Serde types for what Retell sends (webhook envelopes, call and chat objects) and for the
//! records this connector keeps (`call` and `chat`).
//!
//! Incoming types are lenient: every field is optional, and numbers or booleans of an
//! unexpected type read as absent instead of failing the whole delivery. Field names follow
//! the Retell OpenAPI schemas `V2CallBase`/`V2PhoneCallResponse`, `CallAnalysis`,
//! `ChatResponse` and `ChatAnalysis`.

use serde::{Deserialize, Deserializer, Serialize};
use serde_json::{Map, Value};

/// A webhook body: `{"event": "...", "call": {...}}`, `{"event": "...", "chat": {...}}` or
/// `{"event": "call_inbound", "call_inbound": {...}}`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct Envelope {
    /// The event type, e.g. `call_ended`.
    pub event: String,
    /// The call object of a call event.
    pub call: Option<Value>,
    /// The chat object of a chat event.
    pub chat: Option<Value>,
    /// The payload of the inbound-call webhook.
    pub call_inbound: Option<InboundPayload>,
    /// The payload of the inbound-SMS webhook.
    pub chat_inbound: Option<InboundPayload>,
}

/// The payload of Retell's inbound webhook. There is no call object or call id yet.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct InboundPayload {
    /// The agent bound to the number, when one is.
    pub agent_id: Option<String>,
    /// The caller.
    pub from_number: Option<String>,
    /// The number called (one of the tenant's Retell numbers).
    pub to_number: Option<String>,
}

/// Post-call analysis (`CallAnalysis`), plus any fields Retell adds later.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct CallAnalysis {
    /// A high level summary of the call.
    pub call_summary: Option<String>,
    /// Whether the call reached voicemail.
    #[serde(deserialize_with = "lenient_bool")]
    pub in_voicemail: Option<bool>,
    /// `Negative`, `Positive`, `Neutral` or `Unknown`.
    pub user_sentiment: Option<String>,
    /// Whether the agent completed its task.
    #[serde(deserialize_with = "lenient_bool")]
    pub call_successful: Option<bool>,
    /// Data extracted per the agent's post-call analysis schema.
    pub custom_analysis_data: Option<Value>,
    /// Analysis fields this connector does not name.
    #[serde(flatten)]
    pub other: Map<String, Value>,
}

/// A Retell call object as found in webhooks and API answers. Every field may be missing.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default)]
pub struct CallObject {
    /// Unique id of the call.
    pub call_id: Option<String>,
    /// `phone_call` or `web_call`.
    pub call_type: Option<String>,
    /// The agent that handled the call.
    pub agent_id: Option<String>,
    /// The agent's version.
    #[serde(deserialize_with = "lenient_i64")]
    pub agent_version: Option<i64>,
    /// `registered`, `not_connected`, `ongoing`, `ended` or `error`.
    pub call_status: Option<String>,
    /// `inbound` or `outbound` (phone calls).
    pub direction: Option<String>,
    /// Caller number (phone calls).
    pub from_number: Option<String>,
    /// Callee number (phone calls).
    pub to_number: Option<String>,
    /// Start, epoch ms.
    #[serde(deserialize_with = "lenient_i64")]
    pub start_timestamp: Option<i64>,
    /// End, epoch ms.
    #[serde(deserialize_with = "lenient_i64")]
    pub end_timestamp: Option<i64>,
    /// Duration in ms.
    #[serde(deserialize_with = "lenient_i64")]
    pub duration_ms: Option<i64>,
    /// Why the call ended.
    pub disconnection_reason: Option<String>,
    /// Plain-text transcript.
    pub transcript: Option<String>,
    /// Transcript as utterances.
    pub transcript_object: Option<Vec<Value>>,
    /// Recording URL.
    pub recording_url: Option<String>,
    /// Where a transfer went (transfer events).
    pub transfer_destination: Option<String>,
    /// Post-call analysis (`call_analyzed`, get-call).
    pub call_analysis: Option<CallAnalysis>,
    /// Cost breakdown.
    pub call_cost: Option<Value>,
    /// The caller-supplied metadata.
    pub metadata: Option<Value>,
    /// Dynamic variables the call ran with.
    pub retell_llm_dynamic_variables: Option<Value>,
}

/// The `call` record: the latest known state of one call. See [`crate::merge`].
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct CallRecord {
    /// Unique id of the call (the record key).
    pub call_id: String,
    /// Status, never regressing: registered < ongoing < ended/not_connected < error.
    pub call_status: Option<String>,
    /// `inbound` or `outbound`.
    pub direction: Option<String>,
    /// Caller number.
    pub from_number: Option<String>,
    /// Callee number.
    pub to_number: Option<String>,
    /// The agent that handled the call.
    pub agent_id: Option<String>,
    /// The agent's version.
    pub agent_version: Option<i64>,
    /// `phone_call` or `web_call`.
    pub call_type: Option<String>,
    /// Start, epoch ms.
    pub start_timestamp: Option<i64>,
    /// End, epoch ms.
    pub end_timestamp: Option<i64>,
    /// Duration in ms.
    pub duration_ms: Option<i64>,
    /// Why the call ended.
    pub disconnection_reason: Option<String>,
    /// Plain-text transcript.
    pub transcript: Option<String>,
    /// Transcript as utterances.
    pub transcript_object: Option<Vec<Value>>,
    /// Recording URL.
    pub recording_url: Option<String>,
    /// Where a transfer went.
    pub transfer_destination: Option<String>,
    /// Post-call analysis; once present, never lost.
    pub call_analysis: Option<CallAnalysis>,
    /// Cost breakdown.
    pub call_cost: Option<Value>,
    /// The caller-supplied metadata.
    pub metadata: Option<Value>,
    /// Dynamic variables the call ran with.
    pub retell_llm_dynamic_variables: Option<Value>,
    /// Webhook event types received for this call, in order of first arrival.
    pub events_seen: Vec<String>,
    /// Hub events already published for this call (`call.started`, ...).
    pub published: Vec<String>,
}

/// Post-chat analysis (`ChatAnalysis`), plus any fields Retell adds later.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ChatAnalysis {
    /// A high level summary of the chat.
    pub chat_summary: Option<String>,
    /// `Negative`, `Positive`, `Neutral` or `Unknown`.
    pub user_sentiment: Option<String>,
    /// Whether the agent completed its task.
    #[serde(deserialize_with = "lenient_bool")]
    pub chat_successful: Option<bool>,
    /// Data extracted per the agent's post-chat analysis schema.
    pub custom_analysis_data: Option<Value>,
    /// Analysis fields this connector does not name.
    #[serde(flatten)]
    pub other: Map<String, Value>,
}

/// A Retell chat object (`ChatResponse`) as found in chat webhooks.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default)]
pub struct ChatObject {
    /// Unique id of the chat.
    pub chat_id: Option<String>,
    /// The chat agent.
    pub agent_id: Option<String>,
    /// The agent's version.
    #[serde(deserialize_with = "lenient_i64")]
    pub version: Option<i64>,
    /// `ongoing`, `ended` or `error`.
    pub chat_status: Option<String>,
    /// `api_chat` or `sms_chat`.
    pub chat_type: Option<String>,
    /// Start, epoch ms.
    #[serde(deserialize_with = "lenient_i64")]
    pub start_timestamp: Option<i64>,
    /// End, epoch ms.
    #[serde(deserialize_with = "lenient_i64")]
    pub end_timestamp: Option<i64>,
    /// Plain-text transcript.
    pub transcript: Option<String>,
    /// Messages and tool calls.
    pub message_with_tool_calls: Option<Vec<Value>>,
    /// Post-chat analysis.
    pub chat_analysis: Option<ChatAnalysis>,
    /// Cost breakdown.
    pub chat_cost: Option<Value>,
    /// The caller-supplied metadata.
    pub metadata: Option<Value>,
    /// Dynamic variables the chat ran with.
    pub retell_llm_dynamic_variables: Option<Value>,
}

/// The `chat` record: the latest known state of one chat, merged like a call.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ChatRecord {
    /// Unique id of the chat (the record key).
    pub chat_id: String,
    /// Status, never regressing: ongoing < ended < error.
    pub chat_status: Option<String>,
    /// The chat agent.
    pub agent_id: Option<String>,
    /// The agent's version.
    pub agent_version: Option<i64>,
    /// `api_chat` or `sms_chat`.
    pub chat_type: Option<String>,
    /// Start, epoch ms.
    pub start_timestamp: Option<i64>,
    /// End, epoch ms.
    pub end_timestamp: Option<i64>,
    /// Plain-text transcript.
    pub transcript: Option<String>,
    /// Messages and tool calls.
    pub message_with_tool_calls: Option<Vec<Value>>,
    /// Post-chat analysis; once present, never lost.
    pub chat_analysis: Option<ChatAnalysis>,
    /// Cost breakdown.
    pub chat_cost: Option<Value>,
    /// The caller-supplied metadata.
    pub metadata: Option<Value>,
    /// Dynamic variables the chat ran with.
    pub retell_llm_dynamic_variables: Option<Value>,
    /// Webhook event types received for this chat, in order of first arrival.
    pub events_seen: Vec<String>,
}

/// Where a status sits in a call's life; a record's status only moves up this order.
/// Unknown statuses rank lowest, so they never displace a known one.
pub fn status_rank(status: &str) -> u8 {
    match status {
        "registered" => 1,
        "ongoing" => 2,
        "ended" | "not_connected" => 3,
        "error" => 4,
        _ => 0,
    }
}

/// Whether a status is final (the call or chat is over).
pub fn is_terminal(status: &str) -> bool {
    status_rank(status) >= 3
}

/// An integer, tolerating floats and numeric strings; anything else reads as absent.
fn lenient_i64<'de, D: Deserializer<'de>>(d: D) -> Result<Option<i64>, D::Error> {
    let v = Option::<Value>::deserialize(d)?;
    Ok(match v {
        Some(Value::Number(n)) => n.as_i64().or_else(|| n.as_f64().map(|f| f as i64)),
        Some(Value::String(s)) => s.trim().parse().ok(),
        _ => None,
    })
}

/// A boolean, tolerating `"true"`/`"false"`; anything else reads as absent.
fn lenient_bool<'de, D: Deserializer<'de>>(d: D) -> Result<Option<bool>, D::Error> {
    let v = Option::<Value>::deserialize(d)?;
    Ok(match v {
        Some(Value::Bool(b)) => Some(b),
        Some(Value::String(s)) => s.trim().parse().ok(),
        _ => None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn lenient_fields_do_not_fail_the_object() {
        let call: CallObject = serde_json::from_value(json!({
            "call_id": "c1",
            "agent_version": "3",
            "start_timestamp": 1.7e12,
            "duration_ms": {"odd": true},
            "call_analysis": {"in_voicemail": "false", "call_successful": 1, "extra": 5},
            "unknown_field": [1, 2]
        }))
        .unwrap();
        assert_eq!(call.agent_version, Some(3));
        assert_eq!(call.start_timestamp, Some(1_700_000_000_000));
        assert_eq!(call.duration_ms, None);
        let a = call.call_analysis.unwrap();
        assert_eq!(a.in_voicemail, Some(false));
        assert_eq!(a.call_successful, None);
        assert_eq!(a.other.get("extra"), Some(&json!(5)));
    }

    #[test]
    fn nulls_read_as_absent() {
        let call: CallObject = serde_json::from_value(
            json!({"call_id": "c1", "transcript": null, "agent_version": null}),
        )
        .unwrap();
        assert_eq!(call.transcript, None);
        assert_eq!(call.agent_version, None);
    }

    #[test]
    fn status_order() {
        assert!(status_rank("registered") < status_rank("ongoing"));
        assert!(status_rank("ongoing") < status_rank("ended"));
        assert!(status_rank("ended") < status_rank("error"));
        assert_eq!(status_rank("ended"), status_rank("not_connected"));
        assert_eq!(status_rank("something_new"), 0);
        assert!(is_terminal("not_connected") && !is_terminal("ongoing"));
    }
}
