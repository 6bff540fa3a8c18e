//! `cancel_booking` and `reschedule_booking` on the SDK's in-memory host.

use plugin_sdk::harness::{Answer, Harness};
use serde_json::{Value, json};

use super::*;
use crate::Calcom;

fn hub() -> Harness<Calcom> {
    Harness::<Calcom>::new()
        .credential("api_key", "cal_live_test")
        .config("event_type_id", 1001)
}

fn booking(uid: &str, status: &str, start: &str) -> Value {
    json!({"id": 7, "uid": uid, "title": "Check-up", "status": status, "start": start,
           "end": "2026-01-05T14:30:00Z", "eventType": {"id": 1001, "slug": "check-up"},
           "createdAt": "2026-01-01T00:00:00Z", "updatedAt": "2026-01-01T00:00:05Z",
           "attendees": [{"name": "Jane Roe", "email": "jane@example.com", "timeZone": "UTC", "absent": false}]})
}

#[test]
fn cancels_once_per_key_with_the_reason() {
    let mut hub = hub();
    hub.put_record(
        "booking",
        "bk_1",
        &json!({"uid": "bk_1", "status": "accepted", "published": ["booking.created"]}),
    );
    let mut cancelled = booking("bk_1", "cancelled", "2026-01-05T14:00:00Z");
    cancelled["cancellationReason"] = json!("Feeling better");
    hub.on(
        "POST",
        "https://api.cal.com/v2/bookings/bk_1/cancel",
        Answer::json(200, &json!({"status": "success", "data": cancelled})),
    );
    let input = json!({"id": "bk_1", "reason": "Feeling better"});
    assert_eq!(
        hub.action(CANCEL_BOOKING, &input, "c1").unwrap(),
        json!({"id": "bk_1"})
    );
    assert_eq!(
        hub.action(CANCEL_BOOKING, &input, "c1").unwrap(),
        json!({"id": "bk_1"})
    );
    let sent = hub.requests();
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].header("cal-api-version"), Some("2024-08-13"));
    assert_eq!(
        sent[0].json(),
        json!({"cancellationReason": "Feeling better"})
    );
    let r: Value = hub.record("booking", "bk_1").unwrap();
    assert_eq!(r["status"], "cancelled");
    assert_eq!(r["cancellation_reason"], "Feeling better");
    let names: Vec<String> = hub.events().into_iter().map(|e| e.name).collect();
    assert_eq!(names, ["booking.cancelled"]);
}

#[test]
fn a_booking_cancelled_already_is_what_was_wanted() {
    let mut hub = hub();
    hub.on(
        "POST",
        "https://api.cal.com/v2/bookings/bk_2/cancel",
        Answer::json(400, &json!({"status": "error", "error": {"message": "This booking has already been cancelled."}})),
    );
    assert_eq!(
        hub.action(CANCEL_BOOKING, &json!({"id": "bk_2"}), "c2")
            .unwrap(),
        json!({"id": "bk_2"})
    );
    assert_eq!(hub.requests()[0].json(), json!({}));
    let r: Value = hub.record("booking", "bk_2").unwrap();
    assert_eq!(r["status"], "cancelled");
    hub.on(
        "POST",
        "https://api.cal.com/v2/bookings/bk_3/cancel",
        Answer::json(404, &json!({"status": "error"})),
    );
    assert!(
        hub.action(CANCEL_BOOKING, &json!({"id": "bk_3"}), "c3")
            .unwrap_err()
            .is_permanent()
    );
    assert!(
        hub.action(CANCEL_BOOKING, &json!({"id": "../me"}), "c4")
            .unwrap_err()
            .is_permanent()
    );
    hub.on(
        "POST",
        "https://api.cal.com/v2/bookings/bk_5/cancel",
        Answer::status(503),
    );
    assert!(
        hub.action(CANCEL_BOOKING, &json!({"id": "bk_5"}), "c5")
            .unwrap_err()
            .is_retryable()
    );
}

#[test]
fn reschedules_to_a_new_uid_and_links_both_ways() {
    let mut hub = hub();
    hub.on(
        "GET",
        "https://api.cal.com/v2/bookings/bk_1",
        Answer::json(200, &json!({"status": "success", "data": booking("bk_1", "accepted", "2026-01-05T14:00:00Z")})),
    );
    let mut new = booking("bk_2", "accepted", "2026-01-06T15:00:00Z");
    new["rescheduledFromUid"] = json!("bk_1");
    new["updatedAt"] = json!("2026-01-01T00:01:00Z");
    hub.on(
        "POST",
        "https://api.cal.com/v2/bookings/bk_1/reschedule",
        Answer::json(201, &json!({"status": "success", "data": new})),
    );
    let input = json!({"id": "bk_1", "start": "2026-01-06T10:00:00-05:00", "reason": "Clash"});
    let out = hub.action(RESCHEDULE_BOOKING, &input, "r1").unwrap();
    assert_eq!(out["id"], "bk_2");
    assert_eq!(out["start"], "2026-01-06T15:00:00Z");
    assert_eq!(out["rescheduled_from"], "bk_1");
    assert_eq!(hub.action(RESCHEDULE_BOOKING, &input, "r1").unwrap(), out);
    let post = hub
        .requests()
        .into_iter()
        .find(|r| r.method == "POST")
        .unwrap();
    assert_eq!(
        post.json(),
        json!({"start": "2026-01-06T15:00:00Z", "reschedulingReason": "Clash"})
    );
    assert_eq!(post.header("cal-api-version"), Some("2024-08-13"));
    let old: Value = hub.record("booking", "bk_1").unwrap();
    assert_eq!(
        (old["status"].as_str(), old["rescheduled_to"].as_str()),
        (Some("rescheduled"), Some("bk_2"))
    );
    let new: Value = hub.record("booking", "bk_2").unwrap();
    assert_eq!(new["rescheduled_from"], "bk_1");
    let names: Vec<String> = hub.events().into_iter().map(|e| e.name).collect();
    assert_eq!(names, ["booking.rescheduled"]);
}

#[test]
fn a_lost_reschedule_answer_is_found_and_not_moved_again() {
    let mut hub = hub();
    let mut old = booking("bk_1", "cancelled", "2026-01-05T14:00:00Z");
    old["rescheduledToUid"] = json!("bk_2");
    hub.on(
        "GET",
        "https://api.cal.com/v2/bookings/bk_1",
        Answer::json(200, &json!({"status": "success", "data": old})),
    );
    hub.on(
        "GET",
        "https://api.cal.com/v2/bookings/bk_2",
        Answer::json(200, &json!({"status": "success", "data": booking("bk_2", "accepted", "2026-01-06T15:00:00Z")})),
    );
    let out = hub
        .action(
            RESCHEDULE_BOOKING,
            &json!({"id": "bk_1", "start": "2026-01-06T15:00:00Z"}),
            "r2",
        )
        .unwrap();
    assert_eq!(
        (out["id"].as_str(), out["rescheduled_from"].as_str()),
        (Some("bk_2"), Some("bk_1"))
    );
    assert!(
        hub.requests().iter().all(|r| r.method == "GET"),
        "nothing moved twice"
    );
}

#[test]
fn a_cancelled_booking_or_a_taken_slot_is_permanent() {
    let mut hub = hub();
    hub.on(
        "GET",
        "https://api.cal.com/v2/bookings/bk_1",
        Answer::json(200, &json!({"status": "success", "data": booking("bk_1", "cancelled", "2026-01-05T14:00:00Z")})),
    );
    let e = hub
        .action(
            RESCHEDULE_BOOKING,
            &json!({"id": "bk_1", "start": "2026-01-06T15:00:00Z"}),
            "r3",
        )
        .unwrap_err();
    assert!(
        e.is_permanent() && e.to_string().contains("is cancelled"),
        "{e}"
    );
    let mut hub = self::hub();
    hub.on(
        "GET",
        "https://api.cal.com/v2/bookings/bk_1",
        Answer::json(200, &json!({"status": "success", "data": booking("bk_1", "accepted", "2026-01-05T14:00:00Z")})),
    );
    hub.on(
        "POST",
        "https://api.cal.com/v2/bookings/bk_1/reschedule",
        Answer::status(409),
    );
    hub.on(
        "GET",
        "https://api.cal.com/v2/slots?",
        Answer::json(200, &json!({"data": {"2026-01-06": [{"start": "2026-01-06T16:00:00Z", "end": "2026-01-06T16:30:00Z"}]}})),
    );
    let e = hub
        .action(
            RESCHEDULE_BOOKING,
            &json!({"id": "bk_1", "start": "2026-01-06T15:00:00Z"}),
            "r4",
        )
        .unwrap_err();
    assert!(
        e.to_string()
            .contains("The next free slots: 2026-01-06T16:00:00Z."),
        "{e}"
    );
    let slots = hub
        .requests()
        .into_iter()
        .find(|r| r.url.contains("/slots?"))
        .unwrap();
    assert!(
        slots.url.contains("eventTypeId=1001"),
        "the booking's own event type"
    );
    hub.on(
        "GET",
        "https://api.cal.com/v2/bookings/bk_9",
        Answer::status(404),
    );
    assert!(
        hub.action(
            RESCHEDULE_BOOKING,
            &json!({"id": "bk_9", "start": "2026-01-06T15:00:00Z"}),
            "r5"
        )
        .unwrap_err()
        .is_permanent()
    );
}
