//! `get_slots` from a freeBusy answer, in a zone whose clocks change inside the window.

use plugin_sdk::harness::Answer;
use serde_json::{Value, json};

use crate::util::{google_error, hub};

const FREE_BUSY: &str = "https://www.googleapis.com/calendar/v3/freeBusy";

#[test]
fn slots_from_free_busy_across_a_change_of_clocks() {
    let mut hub = hub()
        .config("time_zone", "America/New_York")
        .config("working_hours", "09:00-12:00")
        .config("slot_minutes", 60);
    hub.on(
        "POST",
        FREE_BUSY,
        Answer::json(
            200,
            &json!({"kind": "calendar#freeBusy", "timeMin": "2026-03-06T05:00:00.000Z",
                    "timeMax": "2026-03-10T04:00:00.000Z",
                    "calendars": {"primary": {"busy": [{"start": "2026-03-09T14:00:00Z", "end": "2026-03-09T15:00:00Z"}]}}}),
        ),
    );
    // Friday in winter time, the weekend, Monday in summer time.
    let input = json!({"start": "2026-03-06T00:00:00-05:00", "end": "2026-03-10T00:00:00-04:00"});
    let out = hub.action("get_slots", &input, "k").unwrap();
    let starts: Vec<&str> = out["slots"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["start"].as_str().unwrap())
        .collect();
    assert_eq!(
        starts,
        [
            "2026-03-06T09:00:00-05:00",
            "2026-03-06T10:00:00-05:00",
            "2026-03-06T11:00:00-05:00",
            "2026-03-09T09:00:00-04:00",
            "2026-03-09T11:00:00-04:00"
        ],
        "Monday 10:00 EDT is busy (14:00 UTC); Monday 09:00 is 13:00 UTC, Friday's 14:00 UTC"
    );
    assert_eq!(out["slots"][3]["end"], "2026-03-09T10:00:00-04:00");
    assert_eq!(out["time_zone"], "America/New_York");
    let sent = &hub.requests()[0];
    assert_eq!(
        sent.json(),
        json!({"timeMin": "2026-03-06T05:00:00Z", "timeMax": "2026-03-10T04:00:00Z",
               "timeZone": "America/New_York", "items": [{"id": "primary"}]})
    );

    // Another zone and length for the asking, the same calendar.
    hub.on(
        "POST",
        FREE_BUSY,
        Answer::json(
            200,
            &json!({"kind": "calendar#freeBusy", "calendars": {"primary": {"busy": []}}}),
        ),
    );
    let london = json!({"start": "2026-03-30T09:00:00+01:00", "end": "2026-03-30T10:30:00+01:00",
                        "time_zone": "Europe/London", "duration_minutes": 30});
    let out = hub.action("get_slots", &london, "k").unwrap();
    let slots: Vec<Value> = out["slots"].as_array().unwrap().clone();
    assert_eq!(
        slots.len(),
        2,
        "09:00 and 10:00 (a 60-minute grid), BST: {slots:?}"
    );
    assert_eq!(
        slots[1],
        json!({"start": "2026-03-30T10:00:00+01:00", "end": "2026-03-30T10:30:00+01:00"})
    );
}

#[test]
fn bad_windows_zones_and_refusals() {
    let mut hub = hub().config("time_zone", "America/New_York");
    for bad in [
        json!({"start": "tomorrow"}),
        json!({"start": "2026-03-09T09:00:00Z", "end": "2026-03-09T08:00:00Z"}),
        json!({"start": "2026-03-09T09:00:00Z", "end": "2026-05-09T08:00:00Z"}),
        json!({"time_zone": "America/Gotham"}),
        json!({"duration_minutes": 0.5}),
    ] {
        assert!(
            hub.action("get_slots", &bad, "k")
                .unwrap_err()
                .is_permanent(),
            "{bad}"
        );
    }
    assert!(hub.requests().is_empty());
    hub.on(
        "POST",
        FREE_BUSY,
        google_error(403, "userRateLimitExceeded", "User Rate Limit Exceeded"),
    );
    assert!(
        hub.action("get_slots", &json!({}), "k")
            .unwrap_err()
            .is_retryable()
    );
    let mut hub = crate::util::hub().config("working_days", ["funday"]);
    hub.on(
        "POST",
        FREE_BUSY,
        Answer::json(200, &json!({"calendars": {"primary": {"busy": []}}})),
    );
    let e = hub.action("get_slots", &json!({}), "k").unwrap_err();
    assert!(
        e.is_permanent() && e.to_string().contains("working_days"),
        "{e}"
    );
}
