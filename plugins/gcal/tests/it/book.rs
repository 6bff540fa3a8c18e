//! `create_event`: one event per key whatever happens to an answer, a busy slot declined with
//! the next free ones.

use plugin_sdk::harness::{Answer, Harness};
use serde_json::{Value, json};

use crate::util::{API, hub};

const FREE_BUSY: &str = "https://www.googleapis.com/calendar/v3/freeBusy";
const INSERT: &str = "https://www.googleapis.com/calendar/v3/calendars/primary/events?";

fn ny_hub() -> Harness<gcal::Gcal> {
    hub().config("time_zone", "America/New_York")
}

fn input() -> Value {
    json!({"start": "2026-03-09T10:00:00-04:00", "duration_minutes": 30, "attendee_name": "Jane Roe",
           "attendee_email": "jane.roe@example.com", "attendee_phone": "+1 415 555 0100",
           "notes": "Knee pain", "meet": true, "time_zone": null, "title": null, "event_type": null})
}

fn free_busy(busy: &[(&str, &str)]) -> Answer {
    let busy: Vec<Value> = busy
        .iter()
        .map(|(s, e)| json!({"start": s, "end": e}))
        .collect();
    Answer::json(
        200,
        &json!({"kind": "calendar#freeBusy", "timeMin": "2026-03-09T14:00:00.000Z",
                "timeMax": "2026-03-09T14:30:00.000Z", "calendars": {"primary": {"busy": busy}}}),
    )
}

/// The event as Google answers the insert.
fn inserted(id: &str) -> Value {
    json!({
        "kind": "calendar#event", "etag": "\"3520000000000000\"", "id": id, "status": "confirmed",
        "htmlLink": format!("https://www.google.com/calendar/event?eid={id}"),
        "created": "2026-01-01T00:00:00.000Z", "updated": "2026-01-01T00:00:00.500Z",
        "summary": "Appointment: Jane Roe", "description": "Booked for Jane Roe.\nPhone: +1 415 555 0100\nKnee pain",
        "creator": {"email": "frontdesk@abc-health.example", "self": true},
        "organizer": {"email": "frontdesk@abc-health.example", "self": true},
        "start": {"dateTime": "2026-03-09T10:00:00-04:00", "timeZone": "America/New_York"},
        "end": {"dateTime": "2026-03-09T10:30:00-04:00", "timeZone": "America/New_York"},
        "iCalUID": format!("{id}@google.com"), "sequence": 0,
        "attendees": [{"email": "jane.roe@example.com", "displayName": "Jane Roe", "responseStatus": "needsAction"}],
        "extendedProperties": {"private": {"hub_key": gcal::book::key_digest("visit-77"), "hub_attendee_phone": "+1 415 555 0100"}},
        "hangoutLink": "https://meet.google.com/abc-defg-hij",
        "conferenceData": {
            "createRequest": {"requestId": id, "conferenceSolutionKey": {"type": "hangoutsMeet"}, "status": {"statusCode": "success"}},
            "entryPoints": [{"entryPointType": "video", "uri": "https://meet.google.com/abc-defg-hij", "label": "meet.google.com/abc-defg-hij"}],
            "conferenceSolution": {"key": {"type": "hangoutsMeet"}, "name": "Google Meet"},
            "conferenceId": "abc-defg-hij"
        },
        "reminders": {"useDefault": true}, "eventType": "default"
    })
}

fn inserts(hub: &Harness<gcal::Gcal>) -> Vec<Value> {
    hub.requests()
        .iter()
        .filter(|r| r.method == "POST" && r.url.starts_with(INSERT))
        .map(|r| r.json())
        .collect()
}

#[test]
fn a_lost_answer_is_found_by_its_id_and_never_booked_twice() {
    let mut hub = ny_hub();
    let id = gcal::book::event_id("acme", "primary", "visit-77");
    hub.on("POST", FREE_BUSY, free_busy(&[]));
    hub.on(
        "POST",
        FREE_BUSY,
        free_busy(&[("2026-03-09T14:00:00Z", "2026-03-09T14:30:00Z")]),
    );
    hub.on("POST", INSERT, Answer::timeout());
    hub.on(
        "GET",
        &format!("{API}/calendars/primary/events/{id}"),
        Answer::json(200, &inserted(&id)),
    );

    let lost = hub
        .action("create_event", &input(), "visit-77")
        .unwrap_err();
    assert!(lost.is_retryable(), "{lost}");
    assert!(hub.records("event").is_empty());
    let out = hub.action("create_event", &input(), "visit-77").unwrap();
    assert_eq!(
        out,
        json!({"id": id, "calendar_id": "primary", "start": "2026-03-09T10:00:00-04:00",
               "end": "2026-03-09T10:30:00-04:00", "meeting_url": "https://meet.google.com/abc-defg-hij",
               "meet_link": "https://meet.google.com/abc-defg-hij",
               "html_link": format!("https://www.google.com/calendar/event?eid={id}"), "status": "confirmed"})
    );
    assert_eq!(
        inserts(&hub).len(),
        1,
        "the retry found the event: no second insert"
    );
    let seen = hub.requests().len();
    assert_eq!(
        hub.action("create_event", &input(), "visit-77").unwrap(),
        out
    );
    assert_eq!(
        hub.requests().len(),
        seen,
        "a repeat answers from the marker"
    );

    // What Google got.
    let sent = hub.requests();
    let fb = sent[0].json();
    assert_eq!(
        fb,
        json!({"timeMin": "2026-03-09T14:00:00Z", "timeMax": "2026-03-09T14:30:00Z",
               "timeZone": "America/New_York", "items": [{"id": "primary"}]})
    );
    let insert = sent.iter().find(|r| r.url.starts_with(INSERT)).unwrap();
    assert_eq!(
        insert.url,
        format!("{API}/calendars/primary/events?sendUpdates=all&conferenceDataVersion=1")
    );
    assert_eq!(
        insert.header("authorization"),
        Some("Bearer ya29.test-access-token")
    );
    let body = insert.json();
    assert_eq!(body["id"], id.as_str());
    assert_eq!(
        body["start"],
        json!({"dateTime": "2026-03-09T10:00:00-04:00", "timeZone": "America/New_York"})
    );
    assert_eq!(body["end"]["dateTime"], "2026-03-09T10:30:00-04:00");
    assert_eq!(
        body["attendees"],
        json!([{"email": "jane.roe@example.com", "displayName": "Jane Roe"}])
    );
    assert_eq!(
        body["extendedProperties"]["private"]["hub_attendee_phone"],
        "+1 415 555 0100"
    );
    assert_eq!(
        body["extendedProperties"]["private"]["hub_key"],
        gcal::book::key_digest("visit-77")
    );
    assert_eq!(
        body["conferenceData"],
        json!({"createRequest": {"requestId": id, "conferenceSolutionKey": {"type": "hangoutsMeet"}}})
    );
    assert_eq!(body["summary"], "Appointment: Jane Roe");

    // Kept at once: one record, one event, found by email and phone.
    let key = format!("primary/{id}");
    let record: Value = hub.record("event", &key).unwrap();
    assert_eq!(record["phone"], "+1 415 555 0100");
    assert_eq!(
        hub.lookups("event", &key),
        ["email:jane.roe@example.com", "phone:+14155550100"]
    );
    let events = hub.events();
    assert_eq!(events.len(), 1);
    assert_eq!(
        (
            events[0].name.as_str(),
            events[0].payload["change"].as_str()
        ),
        ("calendar.event.changed", Some("created"))
    );
}

#[test]
fn an_insert_sent_again_is_refused_with_409_and_the_event_is_read() {
    let mut hub = ny_hub();
    let id = gcal::book::event_id("acme", "primary", "visit-77");
    hub.on("POST", FREE_BUSY, free_busy(&[]));
    hub.on("POST", INSERT, Answer::timeout());
    hub.on(
        "POST",
        INSERT,
        Answer::json(409, &json!({"error": {"code": 409, "message": "The requested identifier already exists.",
            "errors": [{"domain": "global", "reason": "duplicate", "message": "The requested identifier already exists."}]}})),
    );
    hub.on(
        "GET",
        &format!("{API}/calendars/primary/events/{id}"),
        Answer::json(200, &inserted(&id)),
    );
    assert!(
        hub.action("create_event", &input(), "visit-77")
            .unwrap_err()
            .is_retryable()
    );
    let out = hub.action("create_event", &input(), "visit-77").unwrap();
    assert_eq!(out["id"], id.as_str());
    let bodies = inserts(&hub);
    assert_eq!(bodies.len(), 2);
    assert_eq!(bodies[0]["id"], bodies[1]["id"], "the same id both times");
    assert_eq!(hub.records("event").len(), 1);
    assert_eq!(hub.events().len(), 1);
    // Another key is another event.
    assert_ne!(gcal::book::event_id("acme", "primary", "visit-78"), id);
}

#[test]
fn a_busy_slot_is_declined_with_the_next_free_ones() {
    let mut hub = ny_hub();
    let id = gcal::book::event_id("acme", "primary", "visit-9");
    hub.on(
        "POST",
        FREE_BUSY,
        free_busy(&[("2026-03-09T14:00:00Z", "2026-03-09T14:30:00Z")]),
    );
    hub.on(
        "POST",
        FREE_BUSY,
        free_busy(&[("2026-03-09T14:00:00Z", "2026-03-09T15:00:00Z")]),
    );
    hub.on(
        "GET",
        &format!("{API}/calendars/primary/events/{id}"),
        Answer::json(
            404,
            &json!({"error": {"code": 404, "message": "Not Found",
            "errors": [{"domain": "global", "reason": "notFound", "message": "Not Found"}]}}),
        ),
    );
    let e = hub.action("create_event", &input(), "visit-9").unwrap_err();
    assert_eq!(
        e.declined(),
        Some(
            "That time (2026-03-09T10:00:00-04:00) was just taken. Free times: \
             2026-03-09T11:00:00-04:00, 2026-03-09T11:30:00-04:00, 2026-03-09T12:00:00-04:00, \
             2026-03-09T12:30:00-04:00, 2026-03-09T13:00:00-04:00."
        ),
        "{e}"
    );
    assert!(inserts(&hub).is_empty());
    assert!(hub.records("event").is_empty());
    let week = hub.requests()[2].json();
    assert_eq!(
        (week["timeMin"].as_str(), week["timeMax"].as_str()),
        (Some("2026-03-09T14:00:00Z"), Some("2026-03-16T14:00:00Z"))
    );
}

#[test]
fn bad_inputs_are_permanent_and_send_nothing() {
    let mut hub = ny_hub();
    for bad in [
        json!({"start": "tomorrow", "attendee_name": "Jane"}),
        json!({"start": "2026-03-09T10:00:00-04:00", "attendee_name": " "}),
        json!({"start": "2026-03-09T10:00:00-04:00", "attendee_name": "Jane", "time_zone": "Mars/Base"}),
        json!({"start": "2026-03-09T10:00:00-04:00", "attendee_name": "Jane", "duration_minutes": "long"}),
        json!({"start": "2026-03-09T10:00:00-04:00", "attendee_name": "Jane", "end": "2026-03-09T09:00:00-04:00"}),
        json!({"start": "2026-03-09T10:00:00-04:00", "attendee_name": "Jane", "send_updates": "everyone"}),
        json!([1, 2]),
    ] {
        let e = hub.action("create_event", &bad, "k").unwrap_err();
        assert!(e.is_permanent(), "{bad}: {e}");
    }
    assert!(hub.requests().is_empty());
}
