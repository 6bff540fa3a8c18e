//! Cal.com's webhooks on the SDK's in-memory host: the signature as the hub checks it (the
//! derived known answer, `no-secret-provided`, forgeries), then each trigger into records,
//! lookups and events.

use plugin_sdk::harness::Harness;
use serde_json::{Value, json};

use crate::Calcom;

/// PROVIDERS-2.md's derived known answer (not Cal.com's: it publishes none).
const VECTOR_SECRET: &str = "calcom_test_secret";
const VECTOR_BODY: &str = r#"{"triggerEvent":"BOOKING_CREATED","createdAt":"2026-01-01T00:00:00.000Z","payload":{"uid":"bk_1"}}"#;
const VECTOR_MAC: &str = "280270e4f77946d9f5a73812a9d242b40d9ec820228fc18f9640c549d3727edc";

fn hub() -> Harness<Calcom> {
    Harness::<Calcom>::new().credential("webhook_secret", VECTOR_SECRET)
}

fn payload(uid: &str) -> Value {
    json!({"type": "check-up", "title": "Check-up between Dr. Ada Lee and Jane Roe", "description": "",
           "startTime": "2026-01-05T14:00:00Z", "endTime": "2026-01-05T14:30:00Z",
           "organizer": {"id": 7, "name": "Dr. Ada Lee", "email": "ada@abc-health.example", "username": "ada",
                         "timeZone": "America/New_York", "language": {"locale": "en"}, "utcOffset": -300},
           "attendees": [{"name": "Jane Roe", "email": "Jane@Example.com", "timeZone": "America/New_York",
                          "language": {"locale": "en"}, "utcOffset": -300}],
           "responses": {"attendeePhoneNumber": {"label": "Phone", "value": "+1 415 555 0100"}},
           "location": "integrations:daily", "uid": uid, "bookingId": 4242, "eventTypeId": 1001,
           "status": "ACCEPTED", "metadata": {"videoCallUrl": format!("https://app.cal.com/video/{uid}")}})
}

fn body(trigger: &str, at: &str, payload: Value) -> String {
    json!({"triggerEvent": trigger, "createdAt": at, "payload": payload}).to_string()
}

fn deliver(hub: &mut Harness<Calcom>, body: String) -> plugin_sdk::Outcome {
    let d = hub.signed_webhook("", body);
    assert_eq!(hub.check_signature(&d), Ok(()));
    hub.deliver(d).unwrap()
}

fn names(hub: &Harness<Calcom>) -> Vec<String> {
    hub.events().into_iter().map(|e| e.name).collect()
}

#[test]
fn the_derived_known_answer_is_what_the_hub_signs_and_checks() {
    let mut hub = hub();
    let d = hub.signed_webhook("", VECTOR_BODY);
    assert_eq!(d.header("x-cal-signature-256"), Some(VECTOR_MAC));
    assert_eq!(hub.check_signature(&d), Ok(()));
    // No replay window: the same webhook an hour later still verifies (the identity dedupes it).
    hub.advance(3_600_000);
    assert_eq!(hub.check_signature(&d), Ok(()));
}

#[test]
fn no_secret_provided_a_forgery_and_a_tampered_body_are_refused() {
    let mut hub = hub();
    let unsigned = hub.webhook("", VECTOR_BODY);
    assert!(hub.check_signature(&unsigned).is_err(), "no header");
    let literal = unsigned
        .clone()
        .with_header("x-cal-signature-256", "no-secret-provided");
    assert!(
        hub.check_signature(&literal).is_err(),
        "the literal Cal.com sends without a secret"
    );
    let mut other = Harness::<Calcom>::new().credential("webhook_secret", "another-secret");
    let forged = other.signed_webhook("", VECTOR_BODY);
    assert!(hub.check_signature(&forged).is_err());
    let mut tampered = hub.signed_webhook("", VECTOR_BODY);
    tampered.body = VECTOR_BODY.replace("bk_1", "bk_2").into_bytes();
    assert!(hub.check_signature(&tampered).is_err());
}

#[test]
fn a_booking_created_is_a_record_found_by_email_and_phone() {
    let mut hub = hub();
    let o = deliver(
        &mut hub,
        body(
            "BOOKING_CREATED",
            "2026-01-01T09:00:00.000Z",
            payload("bk_1"),
        ),
    );
    assert!(o.ignored.is_none());
    let r: Value = hub.record("booking", "bk_1").unwrap();
    assert_eq!(r["status"], "accepted");
    assert_eq!(r["start"], "2026-01-05T14:00:00Z");
    assert_eq!(r["end"], "2026-01-05T14:30:00Z");
    assert_eq!(r["event_type"], json!({"id": 1001, "slug": "check-up"}));
    assert_eq!(r["organizer"]["username"], "ada");
    assert_eq!(r["attendees"][0]["phone"], "+1 415 555 0100");
    assert_eq!(r["attendees"][0]["time_zone"], "America/New_York");
    assert_eq!(r["meeting_url"], "https://app.cal.com/video/bk_1");
    assert_eq!(r["id"], 4242);
    assert_eq!(
        hub.lookups("booking", "bk_1"),
        ["email:jane@example.com", "phone:+14155550100"]
    );
    let e = &hub.events()[0];
    assert_eq!(e.name, "booking.created");
    assert_eq!(e.payload["uid"], "bk_1");
    assert_eq!(e.payload["tenant"], "acme");
    assert_eq!(e.payload["status"], "accepted");
}

#[test]
fn a_late_created_after_the_cancellation_changes_no_status() {
    let mut hub = hub();
    let mut cancelled = payload("bk_1");
    cancelled["status"] = json!("CANCELLED");
    cancelled["cancellationReason"] = json!("Feeling better");
    deliver(
        &mut hub,
        body("BOOKING_CANCELLED", "2026-01-01T10:00:00.000Z", cancelled),
    );
    deliver(
        &mut hub,
        body(
            "BOOKING_CREATED",
            "2026-01-01T09:00:00.000Z",
            payload("bk_1"),
        ),
    );
    let r: Value = hub.record("booking", "bk_1").unwrap();
    assert_eq!(r["status"], "cancelled");
    assert_eq!(r["cancellation_reason"], "Feeling better");
    assert_eq!(names(&hub), ["booking.cancelled"]);
}

#[test]
fn a_reschedule_makes_a_chain_of_two_records() {
    let mut hub = hub();
    deliver(
        &mut hub,
        body(
            "BOOKING_CREATED",
            "2026-01-01T09:00:00.000Z",
            payload("bk_1"),
        ),
    );
    let mut moved = payload("bk_2");
    moved["startTime"] = json!("2026-01-06T15:00:00Z");
    moved["endTime"] = json!("2026-01-06T15:30:00Z");
    moved["bookingId"] = json!(4243);
    moved["rescheduleUid"] = json!("bk_1");
    moved["rescheduleId"] = json!(4242);
    moved["rescheduleStartTime"] = json!("2026-01-05T14:00:00Z");
    moved["rescheduleEndTime"] = json!("2026-01-05T14:30:00Z");
    let again = body("BOOKING_RESCHEDULED", "2026-01-01T11:00:00.000Z", moved);
    deliver(&mut hub, again.clone());
    deliver(&mut hub, again);
    let old: Value = hub.record("booking", "bk_1").unwrap();
    let new: Value = hub.record("booking", "bk_2").unwrap();
    assert_eq!(
        (old["status"].as_str(), old["rescheduled_to"].as_str()),
        (Some("rescheduled"), Some("bk_2"))
    );
    assert_eq!(
        old["start"], "2026-01-05T14:00:00Z",
        "the old booking keeps its own time"
    );
    assert_eq!(old["id"], 4242);
    assert_eq!(
        (new["status"].as_str(), new["rescheduled_from"].as_str()),
        (Some("accepted"), Some("bk_1"))
    );
    assert_eq!(new["start"], "2026-01-06T15:00:00Z");
    assert_eq!(names(&hub), ["booking.created", "booking.rescheduled"]);
    let e = &hub.events()[1];
    assert_eq!(e.payload["uid"], "bk_2");
    assert_eq!(e.payload["rescheduled_from"], "bk_1");
    assert_eq!(
        hub.lookups("booking", "bk_2"),
        hub.lookups("booking", "bk_1")
    );
}

#[test]
fn requests_rejections_no_shows_and_meetings() {
    let mut hub = hub();
    deliver(
        &mut hub,
        body(
            "BOOKING_REQUESTED",
            "2026-01-01T09:00:00.000Z",
            payload("bk_1"),
        ),
    );
    let mut rejected = payload("bk_1");
    rejected["rejectionReason"] = json!("Fully booked");
    deliver(
        &mut hub,
        body("BOOKING_REJECTED", "2026-01-01T09:05:00.000Z", rejected),
    );
    let r: Value = hub.record("booking", "bk_1").unwrap();
    assert_eq!(
        (r["status"].as_str(), r["rejection_reason"].as_str()),
        (Some("rejected"), Some("Fully booked"))
    );
    deliver(
        &mut hub,
        body(
            "BOOKING_CREATED",
            "2026-01-01T09:00:00.000Z",
            payload("bk_2"),
        ),
    );
    let no_show = json!({"bookingUid": "bk_2", "bookingId": 4242, "message": "x_marked_as_no_show",
                         "attendees": [{"email": "jane@example.com", "noShow": true}]});
    deliver(
        &mut hub,
        body(
            "BOOKING_NO_SHOW_UPDATED",
            "2026-01-05T15:00:00.000Z",
            no_show,
        ),
    );
    let mut meeting = payload("bk_2");
    meeting["triggerEvent"] = json!("MEETING_ENDED");
    deliver(
        &mut hub,
        body(
            "MEETING_STARTED",
            "2026-01-05T14:00:30.000Z",
            payload("bk_2"),
        ),
    );
    deliver(
        &mut hub,
        body("MEETING_ENDED", "2026-01-05T14:29:00.000Z", meeting),
    );
    let r: Value = hub.record("booking", "bk_2").unwrap();
    assert_eq!(r["attendees"][0]["no_show"], true);
    assert_eq!(r["meeting_started_at"], "2026-01-05T14:00:30Z");
    assert_eq!(r["meeting_ended_at"], "2026-01-05T14:29:00Z");
    assert_eq!(r["status"], "accepted");
    assert_eq!(
        names(&hub),
        [
            "booking.requested",
            "booking.rejected",
            "booking.created",
            "booking.no_show",
            "meeting.started",
            "meeting.ended"
        ]
    );
    let no_show_event = &hub.events()[3];
    assert_eq!(
        no_show_event.payload["no_show"],
        json!(["Jane@Example.com"])
    );
}

#[test]
fn other_triggers_are_ignored_and_bad_bodies_refused() {
    let mut hub = hub();
    for trigger in [
        "PING",
        "BOOKING_PAID",
        "FORM_SUBMITTED",
        "RECORDING_READY",
        "SOMETHING_NEW",
    ] {
        let o = deliver(
            &mut hub,
            body(trigger, "2026-01-01T09:00:00.000Z", json!({})),
        );
        assert!(o.ignored.unwrap().contains(trigger));
    }
    assert!(hub.records("booking").is_empty() && hub.events().is_empty());
    for bad in [
        "name=Jane".to_string(),
        json!({"payload": {}}).to_string(),
        body(
            "BOOKING_CREATED",
            "2026-01-01T09:00:00.000Z",
            json!({"title": "no uid"}),
        ),
    ] {
        let d = hub.signed_webhook("", bad.clone());
        assert!(hub.deliver(d).unwrap_err().is_permanent(), "{bad}");
    }
}
