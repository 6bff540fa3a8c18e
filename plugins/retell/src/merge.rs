//! The merge rule for `call` and `chat` records, and which hub events a record is due.
//!
//! Retell's webhooks arrive late, twice or out of order, and API answers (get-call, list-calls)
//! may be older or thinner than what a webhook already told us. So a record never regresses:
//! - the status only moves up `registered < ongoing < ended (= not_connected) < error`;
//! - a field present in the record is never replaced by an absent or null one;
//! - an event whose status is below the record's (a *stale* event) only fills gaps;
//! - a transcript is only replaced by one at least as long (transcripts grow during a call);
//! - the analysis, once present, is never lost (its fields merge one by one);
//! - merging the same event twice changes nothing.
//!
//! Which hub events to publish is derived from the merged record and the list of those
//! already published ([`due_events`]), so a duplicate or late event never republishes.

use serde_json::{Map, Value};

use crate::model::{
    CallAnalysis, CallObject, CallRecord, ChatAnalysis, ChatObject, ChatRecord, is_terminal,
    status_rank,
};

/// Hub event: the call reached `ongoing`.
pub const CALL_STARTED: &str = "call.started";
/// Hub event: the call reached a final status (`ended`, `not_connected`, `error`).
pub const CALL_ENDED: &str = "call.ended";
/// Hub event: the call's post-call analysis arrived.
pub const CALL_ANALYZED: &str = "call.analyzed";

/// The status a webhook event implies even when its object carries none.
pub fn implied_status(event: &str) -> Option<&'static str> {
    match event {
        "call_started" | "chat_started" => Some("ongoing"),
        "call_ended" | "call_analyzed" | "chat_ended" | "chat_analyzed" => Some("ended"),
        _ => None,
    }
}

/// Merges one call event (or API answer, with `event` empty) into the stored record.
///
/// `event` is recorded in `events_seen` unless empty. The result's `call_id` is the stored
/// one, else the object's.
pub fn merge(stored: Option<CallRecord>, event: &str, call: &CallObject) -> CallRecord {
    let s = stored.unwrap_or_default();
    let c = call.clone();
    let incoming = effective_status(c.call_status.as_deref(), implied_status(event));
    let stale = is_stale(s.call_status.as_deref(), incoming.as_deref());
    let mut events_seen = s.events_seen;
    note_event(&mut events_seen, event);
    CallRecord {
        call_id: if s.call_id.is_empty() {
            c.call_id.unwrap_or_default()
        } else {
            s.call_id
        },
        call_status: merge_status(s.call_status, incoming),
        direction: pick(s.direction, c.direction, stale),
        from_number: pick(s.from_number, c.from_number, stale),
        to_number: pick(s.to_number, c.to_number, stale),
        agent_id: pick(s.agent_id, c.agent_id, stale),
        agent_version: pick(s.agent_version, c.agent_version, stale),
        call_type: pick(s.call_type, c.call_type, stale),
        start_timestamp: pick(s.start_timestamp, c.start_timestamp, stale),
        end_timestamp: pick(s.end_timestamp, c.end_timestamp, stale),
        duration_ms: pick(s.duration_ms, c.duration_ms, stale),
        disconnection_reason: pick(s.disconnection_reason, c.disconnection_reason, stale),
        transcript: longer(s.transcript, c.transcript, stale, |t| t.chars().count()),
        transcript_object: longer(s.transcript_object, c.transcript_object, stale, Vec::len),
        recording_url: pick(s.recording_url, c.recording_url, stale),
        transfer_destination: pick(s.transfer_destination, c.transfer_destination, stale),
        call_analysis: merge_call_analysis(s.call_analysis, c.call_analysis, stale),
        call_cost: pick(s.call_cost, c.call_cost, stale),
        metadata: pick(s.metadata, c.metadata, stale),
        retell_llm_dynamic_variables: pick(
            s.retell_llm_dynamic_variables,
            c.retell_llm_dynamic_variables,
            stale,
        ),
        events_seen,
        published: s.published,
    }
}

/// Merges one chat event into the stored `chat` record, by the same rules as [`merge`].
pub fn merge_chat(stored: Option<ChatRecord>, event: &str, chat: &ChatObject) -> ChatRecord {
    let s = stored.unwrap_or_default();
    let c = chat.clone();
    let incoming = effective_status(c.chat_status.as_deref(), implied_status(event));
    let stale = is_stale(s.chat_status.as_deref(), incoming.as_deref());
    let mut events_seen = s.events_seen;
    note_event(&mut events_seen, event);
    ChatRecord {
        chat_id: if s.chat_id.is_empty() {
            c.chat_id.unwrap_or_default()
        } else {
            s.chat_id
        },
        chat_status: merge_status(s.chat_status, incoming),
        agent_id: pick(s.agent_id, c.agent_id, stale),
        agent_version: pick(s.agent_version, c.version, stale),
        chat_type: pick(s.chat_type, c.chat_type, stale),
        start_timestamp: pick(s.start_timestamp, c.start_timestamp, stale),
        end_timestamp: pick(s.end_timestamp, c.end_timestamp, stale),
        transcript: longer(s.transcript, c.transcript, stale, |t| t.chars().count()),
        message_with_tool_calls: longer(
            s.message_with_tool_calls,
            c.message_with_tool_calls,
            stale,
            Vec::len,
        ),
        chat_analysis: merge_chat_analysis(s.chat_analysis, c.chat_analysis, stale),
        chat_cost: pick(s.chat_cost, c.chat_cost, stale),
        metadata: pick(s.metadata, c.metadata, stale),
        retell_llm_dynamic_variables: pick(
            s.retell_llm_dynamic_variables,
            c.retell_llm_dynamic_variables,
            stale,
        ),
        events_seen,
    }
}

/// The hub events this record has reached and not yet published, in order.
///
/// Each is published once, whatever order Retell's webhooks are processed in: `call.started`
/// once the call is `ongoing` or its `call_started` arrived (a late one, after the call ended,
/// still tells the app the call started: the record, already over, is not moved back); never
/// for a call that did not connect and sent none. `call.ended` is due once the status is
/// final, `call.analyzed` once the analysis is present.
pub fn due_events(record: &CallRecord) -> Vec<&'static str> {
    let status = record.call_status.as_deref().unwrap_or("");
    let done = |name: &str| record.published.iter().any(|p| p == name);
    let started = status == "ongoing" || record.events_seen.iter().any(|e| e == "call_started");
    let mut due = Vec::new();
    if started && !done(CALL_STARTED) {
        due.push(CALL_STARTED);
    }
    if is_terminal(status) && !done(CALL_ENDED) {
        due.push(CALL_ENDED);
    }
    if record.call_analysis.is_some() && !done(CALL_ANALYZED) {
        due.push(CALL_ANALYZED);
    }
    due
}

/// The object's status, raised to what the event implies (a `call_ended` is at least ended).
fn effective_status(reported: Option<&str>, implied: Option<&str>) -> Option<String> {
    match (reported, implied) {
        (Some(r), Some(i)) if status_rank(i) > status_rank(r) => Some(i.to_string()),
        (Some(r), _) => Some(r.to_string()),
        (None, i) => i.map(str::to_string),
    }
}

/// An event is stale when its status is known and below the record's.
fn is_stale(stored: Option<&str>, incoming: Option<&str>) -> bool {
    matches!((stored, incoming), (Some(s), Some(i)) if status_rank(i) < status_rank(s))
}

/// The status only moves up; at equal rank the stored one stays.
fn merge_status(stored: Option<String>, incoming: Option<String>) -> Option<String> {
    match (stored, incoming) {
        (Some(s), Some(i)) if status_rank(&i) > status_rank(&s) => Some(i),
        (Some(s), _) => Some(s),
        (None, i) => i,
    }
}

fn note_event(seen: &mut Vec<String>, event: &str) {
    if !event.is_empty() && !seen.iter().any(|e| e == event) {
        seen.push(event.to_string());
    }
}

/// The newer value when the event is current, the stored one when it is stale; never absent
/// over present.
fn pick<T>(stored: Option<T>, new: Option<T>, stale: bool) -> Option<T> {
    if stale {
        stored.or(new)
    } else {
        new.or(stored)
    }
}

/// Like [`pick`], but a current value only wins if it is at least as long as the stored one.
fn longer<T>(stored: Option<T>, new: Option<T>, stale: bool, len: fn(&T) -> usize) -> Option<T> {
    match (stored, new) {
        (Some(s), Some(n)) if stale || len(&s) > len(&n) => Some(s),
        (Some(_), Some(n)) => Some(n),
        (s, n) => s.or(n),
    }
}

/// Key by key, skipping nulls; a stale map only adds missing keys.
fn merge_map(
    mut stored: Map<String, Value>,
    new: Map<String, Value>,
    stale: bool,
) -> Map<String, Value> {
    for (k, v) in new {
        if v.is_null() || (stale && stored.contains_key(&k)) {
            continue;
        }
        stored.insert(k, v);
    }
    stored
}

fn merge_call_analysis(
    stored: Option<CallAnalysis>,
    new: Option<CallAnalysis>,
    stale: bool,
) -> Option<CallAnalysis> {
    match (stored, new) {
        (Some(s), Some(n)) => Some(CallAnalysis {
            call_summary: pick(s.call_summary, n.call_summary, stale),
            in_voicemail: pick(s.in_voicemail, n.in_voicemail, stale),
            user_sentiment: pick(s.user_sentiment, n.user_sentiment, stale),
            call_successful: pick(s.call_successful, n.call_successful, stale),
            custom_analysis_data: pick(s.custom_analysis_data, n.custom_analysis_data, stale),
            other: merge_map(s.other, n.other, stale),
        }),
        (s, n) => s.or(n),
    }
}

fn merge_chat_analysis(
    stored: Option<ChatAnalysis>,
    new: Option<ChatAnalysis>,
    stale: bool,
) -> Option<ChatAnalysis> {
    match (stored, new) {
        (Some(s), Some(n)) => Some(ChatAnalysis {
            chat_summary: pick(s.chat_summary, n.chat_summary, stale),
            user_sentiment: pick(s.user_sentiment, n.user_sentiment, stale),
            chat_successful: pick(s.chat_successful, n.chat_successful, stale),
            custom_analysis_data: pick(s.custom_analysis_data, n.custom_analysis_data, stale),
            other: merge_map(s.other, n.other, stale),
        }),
        (s, n) => s.or(n),
    }
}

#[cfg(test)]
mod tests;
