//! `cancel_event` and `update_event`.

use plugin_sdk::harness::{Answer, Harness};
use serde_json::{Value, json};

use crate::util::{API, google_error, google_event, hub};

const EVENT: &str = "https://www.googleapis.com/calendar/v3/calendars/primary/events/ev1";
const FREE_BUSY: &str = "https://www.googleapis.com/calendar/v3/freeBusy";

fn ms(s: &str) -> i64 {
    gcal::time::parse_ms(s).unwrap()
}

fn held(hub: &mut Harness<gcal::Gcal>) {
    let ev = google_event(
        "ev1",
        ms("2026-03-09T10:00:00-04:00"),
        30,
        1,
        ms("2026-01-01T00:00:00Z"),
    );
    let r = gcal::event::EventRecord::from_google(&ev, "primary", None).unwrap();
    hub.put_record("event", "primary/ev1", &r);
}

#[test]
fn cancelling_an_event_google_deleted_already_succeeds_once() {
    let mut hub = hub();
    held(&mut hub);
    hub.on(
        "DELETE",
        EVENT,
        google_error(410, "deleted", "Resource has been deleted"),
    );
    let out = hub
        .action(
            "cancel_event",
            &json!({"id": "ev1", "reason": "Feeling better"}),
            "c1",
        )
        .unwrap();
    assert_eq!(out, json!({"id": "ev1", "status": "cancelled"}));
    assert_eq!(hub.requests()[0].url, format!("{EVENT}?sendUpdates=all"));
    let r: Value = hub.record("event", "primary/ev1").unwrap();
    assert_eq!(
        (r["status"].as_str(), r["cancellation_reason"].as_str()),
        (Some("cancelled"), Some("Feeling better"))
    );
    let events = hub.events();
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].name, "calendar.event.cancelled");
    // The same key: the marker answers. Another key: gone is done, nothing published again.
    assert_eq!(
        hub.action("cancel_event", &json!({"id": "ev1"}), "c1")
            .unwrap(),
        out
    );
    assert_eq!(hub.requests().len(), 1);
    hub.on("DELETE", EVENT, Answer::status(404));
    hub.on(
        "GET",
        &format!("{API}/calendars/primary/events?"),
        Answer::json(200, &json!({"kind": "calendar#events", "items": []})),
    );
    hub.action(
        "cancel_event",
        &json!({"id": "ev1", "send_updates": "none"}),
        "c2",
    )
    .unwrap();
    assert!(hub.requests()[1].url.ends_with("?sendUpdates=none"));
    assert_eq!(hub.events().len(), 1);
}

#[test]
fn cancelling_on_a_calendar_the_account_cannot_see_is_said_plainly() {
    let mut hub = hub().config("calendar_id", "frontdesk@abc-health.example");
    let base = format!("{API}/calendars/frontdesk%40abc-health.example/events");
    hub.on(
        "DELETE",
        &format!("{base}/ev1"),
        google_error(404, "notFound", "Not Found"),
    );
    hub.on(
        "GET",
        &format!("{base}?"),
        google_error(404, "notFound", "Not Found"),
    );
    let e = hub
        .action("cancel_event", &json!({"id": "ev1"}), "c1")
        .unwrap_err();
    assert!(
        e.is_permanent() && e.to_string().contains("`frontdesk@abc-health.example`"),
        "{e}"
    );
    hub.on("DELETE", &format!("{base}/ev2"), Answer::status(503));
    assert!(
        hub.action("cancel_event", &json!({"id": "ev2"}), "c2")
            .unwrap_err()
            .is_retryable()
    );
    assert!(
        hub.action("cancel_event", &json!({"id": ""}), "c3")
            .unwrap_err()
            .is_permanent()
    );
}

#[test]
fn an_update_moves_the_event_its_own_time_aside() {
    let mut hub = hub();
    held(&mut hub);
    let current = google_event(
        "ev1",
        ms("2026-03-09T10:00:00-04:00"),
        30,
        1,
        ms("2026-01-01T00:00:00Z"),
    );
    hub.on("GET", EVENT, Answer::json(200, &current));
    // Busy 10:00-10:30 is the event itself.
    hub.on(
        "POST",
        FREE_BUSY,
        Answer::json(200, &json!({"calendars": {"primary": {"busy": [{"start": "2026-03-09T14:00:00Z", "end": "2026-03-09T14:30:00Z"}]}}})),
    );
    let mut moved = google_event(
        "ev1",
        ms("2026-03-09T10:15:00-04:00"),
        30,
        2,
        ms("2026-01-01T00:05:00Z"),
    );
    moved["summary"] = json!("Check-up");
    hub.on("PATCH", EVENT, Answer::json(200, &moved));
    let out = hub
        .action(
            "update_event",
            &json!({"id": "ev1", "start": "2026-03-09T10:15:00-04:00", "title": "Check-up"}),
            "u1",
        )
        .unwrap();
    assert_eq!(
        (out["start"].as_str(), out["end"].as_str()),
        (
            Some("2026-03-09T10:15:00-04:00"),
            Some("2026-03-09T10:45:00-04:00")
        )
    );
    let patch = hub
        .requests()
        .into_iter()
        .find(|r| r.method == "PATCH")
        .unwrap();
    assert_eq!(patch.url, format!("{EVENT}?sendUpdates=all"));
    assert_eq!(
        patch.json(),
        json!({"start": {"dateTime": "2026-03-09T10:15:00-04:00", "timeZone": "America/New_York"},
               "end": {"dateTime": "2026-03-09T10:45:00-04:00", "timeZone": "America/New_York"},
               "summary": "Check-up"})
    );
    let events = hub.events();
    assert_eq!(
        (events.len(), events[0].payload["change"].as_str()),
        (1, Some("updated"))
    );
    // Nothing to change, or an event Google does not have: permanent.
    assert!(
        hub.action("update_event", &json!({"id": "ev1"}), "u2")
            .unwrap_err()
            .is_permanent()
    );
    hub.on(
        "GET",
        &format!("{API}/calendars/primary/events/ev404"),
        Answer::status(404),
    );
    assert!(
        hub.action("update_event", &json!({"id": "ev404", "title": "x"}), "u3")
            .unwrap_err()
            .is_permanent()
    );
}
