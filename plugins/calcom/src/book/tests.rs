//! `create_booking` on the SDK's in-memory host: the request Cal.com gets, once per key, a lost
//! answer found again, a taken slot answered with the next free ones.

use plugin_sdk::harness::{Answer, Harness};
use serde_json::{Value, json};

use super::*;
use crate::Calcom;

const BOOKINGS: &str = "https://api.cal.com/v2/bookings";
const LIST: &str = "https://api.cal.com/v2/bookings?";
const SLOTS: &str = "https://api.cal.com/v2/slots?";

fn hub() -> Harness<Calcom> {
    Harness::<Calcom>::new()
        .credential("api_key", "cal_live_test")
        .config("event_type_id", 1001)
        .config("time_zone", "America/New_York")
}

fn input() -> Value {
    json!({"start": "2026-01-05T09:00:00-05:00", "attendee_name": "Jane Roe",
           "attendee_phone": "+1 415 555 0100", "attendee_email": null, "title": null,
           "notes": "Knee pain", "duration_minutes": null, "time_zone": null, "event_type": null})
}

/// A booking as Cal.com answers it.
fn booked(uid: &str, hub_key: Option<&str>) -> Value {
    json!({"id": 77, "uid": uid, "title": "Check-up between Dr. Ada Lee and Jane Roe", "status": "accepted",
           "start": "2026-01-05T14:00:00.000Z", "end": "2026-01-05T14:30:00.000Z", "duration": 30,
           "eventTypeId": 1001, "eventType": {"id": 1001, "slug": "check-up"},
           "location": "integrations:daily", "metadata": {"hub_key": hub_key, "videoCallUrl": format!("https://app.cal.com/video/{uid}")},
           "createdAt": "2026-01-01T00:00:01.000Z", "updatedAt": "2026-01-01T00:00:01.000Z",
           "hosts": [{"id": 7, "name": "Dr. Ada Lee", "email": "ada@abc-health.example", "username": "ada", "timeZone": "America/New_York"}],
           "attendees": [{"name": "Jane Roe", "email": "jane@example.com", "timeZone": "America/New_York",
                          "phoneNumber": "+14155550100", "absent": false}]})
}

fn list(bookings: &[Value]) -> Answer {
    Answer::json(
        200,
        &json!({"status": "success", "data": bookings,
        "pagination": {"totalItems": bookings.len(), "hasNextPage": false}}),
    )
}

#[test]
fn books_once_per_key_with_the_bookings_version_and_keeps_the_record() {
    let mut hub = hub();
    hub.on("GET", LIST, list(&[]));
    let digest = key_digest("k1");
    hub.on(
        "POST",
        BOOKINGS,
        Answer::json(
            201,
            &json!({"status": "success", "data": booked("bk_new", Some(&digest))}),
        ),
    );
    let out = hub.action(CREATE_BOOKING, &input(), "k1").unwrap();
    assert_eq!(
        out,
        json!({"id": "bk_new", "start": "2026-01-05T14:00:00Z", "end": "2026-01-05T14:30:00Z",
               "meeting_url": "https://app.cal.com/video/bk_new"})
    );
    assert_eq!(
        hub.action(CREATE_BOOKING, &input(), "k1").unwrap(),
        out,
        "the same answer"
    );
    let sent = hub.requests();
    assert_eq!(
        sent.len(),
        2,
        "one look, one booking, nothing for the repeat"
    );
    assert!(
        sent[0].url.starts_with(LIST)
            && sent[0].url.contains("afterStart=2026-01-05T13%3A59%3A00Z")
    );
    assert!(!sent[0].url.contains("attendeeEmail"), "no email given");
    let post = &sent[1];
    assert_eq!(post.header("cal-api-version"), Some("2024-08-13"));
    assert_eq!(post.header("authorization"), Some("Bearer cal_live_test"));
    assert_eq!(
        post.json(),
        json!({"start": "2026-01-05T14:00:00Z", "eventTypeId": 1001,
               "attendee": {"name": "Jane Roe", "timeZone": "America/New_York", "phoneNumber": "+1 415 555 0100"},
               "bookingFieldsResponses": {"notes": "Knee pain"}, "metadata": {"hub_key": digest}})
    );
    assert!(hub.is_marker(&format!("booked:{digest}")));
    let record: Value = hub.record("booking", "bk_new").unwrap();
    assert_eq!(record["status"], "accepted");
    assert_eq!(record["idempotency_key"], "k1");
    assert_eq!(
        hub.lookups("booking", "bk_new"),
        ["email:jane@example.com", "phone:+14155550100"]
    );
    let events = hub.events();
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].name, "booking.created");
    assert_eq!(events[0].payload["uid"], "bk_new");
}

#[test]
fn a_lost_answer_is_found_again_and_never_booked_twice() {
    let mut hub = hub();
    let digest = key_digest("k2");
    hub.on("GET", LIST, list(&[]));
    // The same attendee's booking from another key comes first: this key's own is preferred.
    hub.on(
        "GET",
        LIST,
        list(&[
            booked("bk_other", Some("another-key")),
            booked("bk_lost", Some(&digest)),
        ]),
    );
    hub.on("POST", BOOKINGS, Answer::timeout());
    let first = hub.action(CREATE_BOOKING, &input(), "k2").unwrap_err();
    assert!(first.is_retryable(), "{first}");
    assert!(hub.records("booking").is_empty());
    let out = hub.action(CREATE_BOOKING, &input(), "k2").unwrap();
    assert_eq!(out["id"], "bk_lost");
    let posts = hub.requests().iter().filter(|r| r.method == "POST").count();
    assert_eq!(posts, 1, "the retry booked nothing");
}

#[test]
fn the_same_attendee_at_the_same_start_is_their_booking() {
    let mut hub = hub();
    let mut elsewhere = booked("bk_web", None);
    elsewhere["metadata"] = json!({});
    let mut cancelled = booked("bk_gone", None);
    cancelled["status"] = json!("cancelled");
    hub.on("GET", LIST, list(&[cancelled, elsewhere]));
    let mut i = input();
    i["attendee_email"] = json!("Jane@Example.com");
    assert_eq!(
        hub.action(CREATE_BOOKING, &i, "k3").unwrap()["id"],
        "bk_web"
    );
    let sent = hub.requests();
    assert_eq!(sent.len(), 1);
    assert!(
        sent[0].url.contains("attendeeEmail=Jane%40Example.com"),
        "{}",
        sent[0].url
    );
}

#[test]
fn a_taken_slot_says_so_and_offers_the_next_ones() {
    let mut hub = hub();
    hub.on("GET", LIST, list(&[]));
    hub.on(
        "POST",
        BOOKINGS,
        Answer::json(
            409,
            &json!({"status": "error", "error": {"code": "ConflictException",
            "message": "This time slot is no longer available."}}),
        ),
    );
    hub.on(
        "GET",
        SLOTS,
        Answer::json(
            200,
            &json!({"status": "success", "data": {"2026-01-05": [
        {"start": "2026-01-05T09:00:00.000-05:00", "end": "2026-01-05T09:30:00.000-05:00"},
        {"start": "2026-01-05T09:30:00.000-05:00", "end": "2026-01-05T10:00:00.000-05:00"},
        {"start": "2026-01-05T11:00:00.000-05:00", "end": "2026-01-05T11:30:00.000-05:00"}]}}),
        ),
    );
    let e = hub.action(CREATE_BOOKING, &input(), "k4").unwrap_err();
    assert!(e.is_permanent());
    let m = e.to_string();
    assert!(
        m.contains("2026-01-05T14:00:00Z is no longer available"),
        "{m}"
    );
    assert!(
        m.contains(
            "The next free slots: 2026-01-05T09:30:00.000-05:00, 2026-01-05T11:00:00.000-05:00."
        ),
        "{m}"
    );
    assert!(
        !m.contains("T09:00:00.000-05:00,"),
        "the taken slot is not offered: {m}"
    );
    let slots_asked = hub
        .requests()
        .iter()
        .find(|r| r.url.starts_with(SLOTS))
        .unwrap()
        .url
        .clone();
    assert!(
        slots_asked.contains("start=2026-01-05T14%3A00%3A00Z"),
        "{slots_asked}"
    );
    assert!(
        hub.records("booking").is_empty()
            && hub.kv(&format!("booked:{}", key_digest("k4"))).is_none()
    );
    // Cal.com's other wording of a taken slot, and no slots readable.
    let mut hub = self::hub();
    hub.on("GET", LIST, list(&[]));
    hub.on(
        "POST",
        BOOKINGS,
        Answer::json(
            400,
            &json!({"status": "error", "error": {"message": "no_available_users_found_error"}}),
        ),
    );
    hub.on("GET", SLOTS, Answer::status(500));
    let m = hub
        .action(CREATE_BOOKING, &input(), "k5")
        .unwrap_err()
        .to_string();
    assert!(
        m.contains("no longer available") && m.contains("could not be read"),
        "{m}"
    );
}

#[test]
fn rate_limits_and_refusals() {
    let mut hub = hub();
    hub.on("GET", LIST, list(&[]));
    hub.on(
        "POST",
        BOOKINGS,
        Answer::status(429)
            .header("x-ratelimit-remaining-default", "0")
            .header("x-ratelimit-reset-default", "20"),
    );
    match hub.action(CREATE_BOOKING, &input(), "k6").unwrap_err() {
        plugin_sdk::harness::Failure::Connector(Error::Retryable(r)) => {
            assert_eq!(r.retry_after_ms, Some(20_000));
        }
        other => panic!("{other}"),
    }
    let mut hub = self::hub();
    hub.on("GET", LIST, list(&[]));
    hub.on("POST", BOOKINGS, Answer::json(400, &json!({"status": "error", "error": {"message": "Attempting to book a meeting in the past."}})));
    let e = hub.action(CREATE_BOOKING, &input(), "k7").unwrap_err();
    assert!(
        e.is_permanent() && e.to_string().contains("in the past"),
        "{e}"
    );
    assert!(!e.to_string().contains("next free"), "{e}");
    for bad in [
        json!({"start": "Monday 9am", "attendee_name": "Jane"}),
        json!({"start": "2026-01-05T09:00:00Z", "attendee_name": " "}),
    ] {
        assert!(
            hub.action(CREATE_BOOKING, &bad, "k8")
                .unwrap_err()
                .is_permanent()
        );
    }
}

#[test]
fn the_webhook_for_a_booking_the_hub_made_announces_nothing_again() {
    let mut hub = hub().credential("webhook_secret", "s");
    hub.on("GET", LIST, list(&[]));
    hub.on(
        "POST",
        BOOKINGS,
        Answer::json(
            201,
            &json!({"status": "success", "data": booked("bk_new", None)}),
        ),
    );
    hub.action(CREATE_BOOKING, &input(), "k9").unwrap();
    let body = json!({"triggerEvent": "BOOKING_CREATED", "createdAt": "2026-01-01T00:00:02.000Z",
        "payload": {"uid": "bk_new", "title": "Check-up", "startTime": "2026-01-05T14:00:00Z", "endTime": "2026-01-05T14:30:00Z",
                    "attendees": [{"name": "Jane Roe", "email": "jane@example.com", "timeZone": "America/New_York"}],
                    "status": "ACCEPTED"}});
    let d = hub.signed_webhook("", body.to_string());
    hub.deliver(d).unwrap();
    assert_eq!(hub.events().len(), 1, "booking.created once");
    let record: Value = hub.record("booking", "bk_new").unwrap();
    assert_eq!(record["title"], "Check-up");
    assert_eq!(record["attendees"][0]["phone"], "+14155550100", "kept");
}
