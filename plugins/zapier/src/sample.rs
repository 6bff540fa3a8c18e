//! Samples for Zapier's "perform list": the payloads most recently notified for an event, else
//! the newest records of the kind the event names.
//!
//! Payloads are kept in [`SLOTS`] kv slots per event, `sample:{event}:{n}`, picked by a hash of
//! the notification's idempotency key and written without being read first: the host re-runs
//! an invocation whose reads changed before it committed, so a shared read-modify-write list
//! would make concurrent notifications of one event re-run each other. Each slot holds
//! `{"at_ms", "payload"}`; the newest come first.
//!
//! An event's record kind is the first of its dot-separated segments that has records:
//! `call.analyzed` -> `call`, `hubspot.contact.created` -> `contact`. So a Zap being set up
//! sees the real shape of the hub's data before the first notification.

use std::time::{SystemTime, UNIX_EPOCH};

use plugin_sdk::{kv, records};
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Slots (so samples) kept per event.
pub const SLOTS: u64 = 10;
/// Records offered when no payload was notified yet.
pub const FROM_RECORDS: u32 = 3;

/// One kept payload.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Kept {
    /// When it was notified (epoch ms).
    pub at_ms: i64,
    /// What was notified.
    pub payload: Value,
}

/// FNV-1a, 64 bit: a stable hash for picking a slot.
pub fn fnv1a(text: &str) -> u64 {
    text.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// The kv key of the slot a notification's payload goes to.
pub fn slot_key(event: &str, idempotency_key: &str) -> String {
    format!("sample:{event}:{}", fnv1a(idempotency_key) % SLOTS)
}

/// The payloads of the slots, newest first.
pub fn newest_first(slots: Vec<Option<Vec<u8>>>) -> Vec<Value> {
    let mut kept: Vec<Kept> = slots
        .into_iter()
        .flatten()
        .filter_map(|b| serde_json::from_slice(&b).ok())
        .collect();
    kept.sort_by_key(|k| std::cmp::Reverse(k.at_ms));
    kept.into_iter().map(|k| k.payload).collect()
}

/// The record kinds to try for an event, in order.
pub fn candidate_kinds(event: &str) -> Vec<&str> {
    event.split(['.', ':']).filter(|s| !s.is_empty()).collect()
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// Keeps a notified payload (a blind write: nothing is read).
pub fn remember(event: &str, idempotency_key: &str, payload: &Value) {
    let kept = Kept {
        at_ms: now_ms(),
        payload: payload.clone(),
    };
    if let Ok(bytes) = serde_json::to_vec(&kept) {
        kv::set(&slot_key(event, idempotency_key), &bytes);
    }
}

/// The samples for an event.
pub fn recent(event: &str) -> Vec<Value> {
    let slots = (0..SLOTS)
        .map(|n| kv::get(&format!("sample:{event}:{n}")))
        .collect();
    let kept = newest_first(slots);
    if !kept.is_empty() {
        return kept;
    }
    for kind in candidate_kinds(event) {
        let found: Vec<Value> = records::list::<Value>(kind, FROM_RECORDS)
            .into_iter()
            .map(|(_, v)| v)
            .collect();
        if !found.is_empty() {
            return found;
        }
    }
    Vec::new()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn slots_are_stable_and_bounded() {
        assert_eq!(fnv1a(""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a("a"), 0xaf63_dc4c_8601_ec8c);
        assert_eq!(slot_key("e", "k1"), slot_key("e", "k1"));
        for i in 0..100 {
            let key = slot_key("call.analyzed", &format!("k{i}"));
            let n: u64 = key.rsplit(':').next().unwrap().parse().unwrap();
            assert!(n < SLOTS, "{key}");
        }
    }

    #[test]
    fn newest_first_skips_empty_and_garbage() {
        let kept = |at: i64, v: Value| {
            Some(
                serde_json::to_vec(&Kept {
                    at_ms: at,
                    payload: v,
                })
                .unwrap(),
            )
        };
        let slots = vec![
            kept(5, json!({"n": 5})),
            None,
            Some(b"garbage".to_vec()),
            kept(9, json!({"n": 9})),
            kept(1, json!([1])),
        ];
        assert_eq!(
            newest_first(slots),
            vec![json!({"n": 9}), json!({"n": 5}), json!([1])]
        );
        assert!(newest_first(vec![None, None]).is_empty());
    }

    #[test]
    fn kinds_from_event_names() {
        assert_eq!(candidate_kinds("call.analyzed"), vec!["call", "analyzed"]);
        assert_eq!(
            candidate_kinds("hubspot.contact.created"),
            vec!["hubspot", "contact", "created"]
        );
        assert_eq!(candidate_kinds("zapier:deal"), vec!["zapier", "deal"]);
    }
}
