//! Unit tests of the merge rule and of which events are due.

use super::*;
use serde_json::json;

fn call(v: Value) -> CallObject {
    serde_json::from_value(v).unwrap()
}

fn started() -> CallObject {
    call(json!({
        "call_id": "c1", "call_type": "phone_call", "agent_id": "ag1", "agent_version": 2,
        "call_status": "ongoing", "direction": "inbound",
        "from_number": "+14155550100", "to_number": "+14155550199",
        "start_timestamp": 1_714_608_000_000i64,
        "metadata": {"crm_id": "42"}
    }))
}

fn ended() -> CallObject {
    call(json!({
        "call_id": "c1", "call_type": "phone_call", "agent_id": "ag1", "agent_version": 2,
        "call_status": "ended", "direction": "inbound",
        "from_number": "+14155550100", "to_number": "+14155550199",
        "start_timestamp": 1_714_608_000_000i64, "end_timestamp": 1_714_608_060_000i64,
        "duration_ms": 60_000, "disconnection_reason": "user_hangup",
        "transcript": "Agent: hi\nUser: hello\nAgent: bye\n",
        "transcript_object": [{"role": "agent", "content": "hi"}, {"role": "user", "content": "hello"},
                              {"role": "agent", "content": "bye"}],
        "recording_url": "https://rec.example/c1.wav",
        "call_cost": {"combined_cost": 12.5},
        "metadata": {"crm_id": "42"}
    }))
}

fn analyzed() -> CallObject {
    let mut c = ended();
    c.call_analysis = Some(CallAnalysis {
        call_summary: Some("Booked a visit".into()),
        in_voicemail: Some(false),
        user_sentiment: Some("Positive".into()),
        call_successful: Some(true),
        custom_analysis_data: Some(json!({"appointment": "monday"})),
        other: Map::new(),
    });
    c
}

fn transcript_partial() -> CallObject {
    call(json!({
        "call_id": "c1", "call_status": "ongoing",
        "transcript": "Agent: hi\n",
        "transcript_object": [{"role": "agent", "content": "hi"}]
    }))
}

fn apply(events: &[(&str, CallObject)]) -> CallRecord {
    let mut rec = None;
    for (e, c) in events {
        rec = Some(merge(rec, e, c));
    }
    rec.unwrap()
}

fn publish_all(mut r: CallRecord) -> (CallRecord, Vec<&'static str>) {
    let due = due_events(&r);
    r.published.extend(due.iter().map(|s| s.to_string()));
    (r, due)
}

#[test]
fn in_order_lifecycle() {
    let r = merge(None, "call_started", &started());
    assert_eq!(r.call_id, "c1");
    assert_eq!(r.call_status.as_deref(), Some("ongoing"));
    let (r, due) = publish_all(r);
    assert_eq!(due, vec![CALL_STARTED]);

    let r = merge(Some(r), "call_ended", &ended());
    assert_eq!(r.call_status.as_deref(), Some("ended"));
    assert_eq!(r.duration_ms, Some(60_000));
    assert!(r.transcript.is_some());
    let (r, due) = publish_all(r);
    assert_eq!(due, vec![CALL_ENDED]);

    let r = merge(Some(r), "call_analyzed", &analyzed());
    let (r, due) = publish_all(r);
    assert_eq!(due, vec![CALL_ANALYZED]);
    assert_eq!(
        r.events_seen,
        vec!["call_started", "call_ended", "call_analyzed"]
    );
    assert_eq!(r.published, vec![CALL_STARTED, CALL_ENDED, CALL_ANALYZED]);
    assert!(due_events(&r).is_empty());
}

#[test]
fn out_of_order_analyzed_then_ended_then_started() {
    let r = merge(None, "call_analyzed", &analyzed());
    let (r, due) = publish_all(r);
    // Already over: no call.started, and ended comes before analyzed.
    assert_eq!(due, vec![CALL_ENDED, CALL_ANALYZED]);

    let r = merge(Some(r), "call_ended", &ended());
    assert!(due_events(&r).is_empty());
    assert!(r.call_analysis.is_some(), "call_analysis is never lost");

    let r = merge(Some(r), "call_started", &started());
    assert_eq!(
        r.call_status.as_deref(),
        Some("ended"),
        "never back to ongoing"
    );
    assert_eq!(
        due_events(&r),
        vec![CALL_STARTED],
        "a late call_started still publishes call.started, once"
    );
    assert_eq!(r.end_timestamp, Some(1_714_608_060_000));
    assert_eq!(
        r.transcript.as_deref(),
        Some("Agent: hi\nUser: hello\nAgent: bye\n")
    );
    assert_eq!(
        r.events_seen,
        vec!["call_analyzed", "call_ended", "call_started"]
    );
}

#[test]
fn every_order_gives_the_same_state() {
    let events = [
        ("call_started", started()),
        ("call_ended", ended()),
        ("call_analyzed", analyzed()),
    ];
    let expected = {
        let mut r = apply(&events);
        r.events_seen.clear();
        r
    };
    let orders = [
        [0, 1, 2],
        [0, 2, 1],
        [1, 0, 2],
        [1, 2, 0],
        [2, 0, 1],
        [2, 1, 0],
    ];
    for order in orders {
        let seq: Vec<(&str, CallObject)> = order
            .iter()
            .map(|&i| (events[i].0, events[i].1.clone()))
            .collect();
        let mut r = apply(&seq);
        assert_eq!(r.events_seen.len(), 3);
        r.events_seen.clear();
        assert_eq!(r, expected, "order {order:?}");
    }
}

/// Whatever order the three webhooks are processed in, each hub event is published exactly
/// once, and the final record is the same.
#[test]
fn every_order_publishes_each_event_once() {
    let events = [
        ("call_started", started()),
        ("call_ended", ended()),
        ("call_analyzed", analyzed()),
    ];
    for order in [
        [0, 1, 2],
        [0, 2, 1],
        [1, 0, 2],
        [1, 2, 0],
        [2, 0, 1],
        [2, 1, 0],
    ] {
        let mut record: Option<CallRecord> = None;
        let mut published = Vec::new();
        for i in order {
            let merged = merge(record, events[i].0, &events[i].1);
            let (merged, due) = publish_all(merged);
            published.extend(due);
            record = Some(merged);
        }
        published.sort_unstable();
        assert_eq!(
            published,
            vec![CALL_ANALYZED, CALL_ENDED, CALL_STARTED],
            "order {order:?}"
        );
    }
    // A call that never connected sends no call_started: no call.started for it.
    let mut not_connected = ended();
    not_connected.call_status = Some("not_connected".into());
    let r = merge(None, "call_ended", &not_connected);
    assert_eq!(due_events(&r), vec![CALL_ENDED]);
}

#[test]
fn duplicate_changes_nothing() {
    for (event, obj) in [
        ("call_started", started()),
        ("call_ended", ended()),
        ("call_analyzed", analyzed()),
    ] {
        let once = merge(None, event, &obj);
        let (once, _) = publish_all(once);
        let twice = merge(Some(once.clone()), event, &obj);
        assert_eq!(once, twice, "{event}");
        assert!(
            due_events(&twice).is_empty(),
            "{event}: a duplicate does not republish"
        );
    }
    // A late duplicate, after later events, changes nothing either.
    let r = apply(&[
        ("call_started", started()),
        ("call_ended", ended()),
        ("call_analyzed", analyzed()),
    ]);
    let (r, _) = publish_all(r);
    let again = merge(Some(r.clone()), "call_ended", &ended());
    assert_eq!(again, r);
}

#[test]
fn transcript_updated_after_ended_does_not_regress() {
    let r = apply(&[("call_started", started()), ("call_ended", ended())]);
    let r2 = merge(Some(r.clone()), "transcript_updated", &transcript_partial());
    assert_eq!(r2.call_status.as_deref(), Some("ended"));
    assert_eq!(r2.transcript, r.transcript);
    assert_eq!(r2.transcript_object.as_ref().map(Vec::len), Some(3));
    assert!(r2.events_seen.contains(&"transcript_updated".to_string()));
}

#[test]
fn transcript_updates_out_of_order_keep_the_longest() {
    let mut longer = transcript_partial();
    longer.transcript = Some("Agent: hi\nUser: hello\n".into());
    let r = apply(&[
        ("transcript_updated", longer.clone()),
        ("transcript_updated", transcript_partial()),
    ]);
    assert_eq!(r.transcript, longer.transcript);
}

#[test]
fn absent_or_null_never_erases() {
    let r = merge(None, "call_ended", &ended());
    let thin = call(json!({
        "call_id": "c1", "call_status": "ended", "recording_url": null, "transcript": null,
        "metadata": null, "call_analysis": null
    }));
    let r2 = merge(Some(r.clone()), "call_ended", &thin);
    assert_eq!(r2, r);
}

#[test]
fn analysis_fields_merge_and_are_never_lost() {
    let r = merge(None, "call_analyzed", &analyzed());
    let partial = call(json!({
        "call_id": "c1", "call_status": "ended",
        "call_analysis": {"call_summary": "Booked a visit on Monday", "call_successful": null}
    }));
    let r2 = merge(Some(r), "", &partial);
    let a = r2.call_analysis.unwrap();
    assert_eq!(a.call_summary.as_deref(), Some("Booked a visit on Monday"));
    assert_eq!(a.call_successful, Some(true));
    assert_eq!(a.user_sentiment.as_deref(), Some("Positive"));
}

#[test]
fn stale_event_only_fills_gaps() {
    let mut e = ended();
    e.from_number = None;
    e.metadata = Some(json!({"crm_id": "43"}));
    let r = merge(None, "call_ended", &e);
    let r2 = merge(Some(r), "call_started", &started());
    assert_eq!(
        r2.from_number.as_deref(),
        Some("+14155550100"),
        "gap filled"
    );
    assert_eq!(
        r2.metadata,
        Some(json!({"crm_id": "43"})),
        "present field kept"
    );
}

#[test]
fn not_connected_call_skips_started() {
    let nc = call(
        json!({"call_id": "c2", "call_status": "not_connected", "disconnection_reason": "dial_no_answer"}),
    );
    let r = merge(None, "call_ended", &nc);
    assert_eq!(r.call_status.as_deref(), Some("not_connected"));
    assert_eq!(due_events(&r), vec![CALL_ENDED]);
    // call_analyzed for it (implied ended, same rank) keeps not_connected.
    let r = merge(
        Some(r),
        "call_analyzed",
        &call(json!({"call_id": "c2", "call_analysis": {"in_voicemail": false}})),
    );
    assert_eq!(r.call_status.as_deref(), Some("not_connected"));
}

#[test]
fn status_moves_only_up() {
    let r = merge(
        None,
        "",
        &call(json!({"call_id": "c3", "call_status": "registered"})),
    );
    let r = merge(
        Some(r),
        "call_ended",
        &call(json!({"call_id": "c3", "call_status": "error"})),
    );
    assert_eq!(r.call_status.as_deref(), Some("error"));
    let r = merge(
        Some(r),
        "call_ended",
        &call(json!({"call_id": "c3", "call_status": "ended"})),
    );
    assert_eq!(r.call_status.as_deref(), Some("error"));
    let r = merge(
        Some(r),
        "",
        &call(json!({"call_id": "c3", "call_status": "brand_new"})),
    );
    assert_eq!(r.call_status.as_deref(), Some("error"));
}

#[test]
fn missing_status_is_implied_by_the_event() {
    let r = merge(None, "call_started", &call(json!({"call_id": "c4"})));
    assert_eq!(r.call_status.as_deref(), Some("ongoing"));
    let r = merge(
        Some(r),
        "call_ended",
        &call(json!({"call_id": "c4", "call_status": "ongoing"})),
    );
    assert_eq!(r.call_status.as_deref(), Some("ended"));
    // Events that imply nothing leave the status alone.
    let r = merge(Some(r), "transfer_ended", &call(json!({"call_id": "c4"})));
    assert_eq!(r.call_status.as_deref(), Some("ended"));
}

#[test]
fn api_merges_are_not_events() {
    let r = merge(None, "", &ended());
    assert!(r.events_seen.is_empty());
    assert_eq!(r.call_id, "c1");
}

#[test]
fn published_list_survives_merges() {
    let r = merge(None, "call_started", &started());
    let (r, _) = publish_all(r);
    let r = merge(Some(r), "call_ended", &ended());
    assert_eq!(r.published, vec![CALL_STARTED]);
}

#[test]
fn record_round_trips_through_json() {
    let r = apply(&[("call_started", started()), ("call_analyzed", analyzed())]);
    let json = serde_json::to_string(&r).unwrap();
    let back: CallRecord = serde_json::from_str(&json).unwrap();
    assert_eq!(back, r);
}

fn chat(v: Value) -> ChatObject {
    serde_json::from_value(v).unwrap()
}

#[test]
fn chat_merge_follows_the_same_rules() {
    let start = chat(
        json!({"chat_id": "ch1", "agent_id": "ag9", "chat_status": "ongoing", "version": 1,
                            "start_timestamp": 1, "transcript": "User: hi\n"}),
    );
    let end = chat(
        json!({"chat_id": "ch1", "agent_id": "ag9", "chat_status": "ended", "end_timestamp": 9,
                          "transcript": "User: hi\nAgent: hello\n",
                          "chat_analysis": {"chat_summary": "greeting", "chat_successful": true}}),
    );
    let r = merge_chat(None, "chat_analyzed", &end);
    let r = merge_chat(Some(r), "chat_started", &start);
    assert_eq!(r.chat_id, "ch1");
    assert_eq!(r.chat_status.as_deref(), Some("ended"));
    assert_eq!(r.transcript.as_deref(), Some("User: hi\nAgent: hello\n"));
    assert_eq!(r.start_timestamp, Some(1));
    assert_eq!(r.agent_version, Some(1));
    assert_eq!(
        r.chat_analysis.as_ref().and_then(|a| a.chat_successful),
        Some(true)
    );
    assert_eq!(r.events_seen, vec!["chat_analyzed", "chat_started"]);
    let again = merge_chat(Some(r.clone()), "chat_started", &start);
    assert_eq!(again, r);
}
