//! The `sync` job against the stand-in calendar: full listings across continuations, the
//! incremental sync, a lapsed token's re-list and its diff, rate limits.

use std::collections::BTreeSet;

use plugin_sdk::harness::Answer;
use serde_json::{Value, json};

use crate::util::{DAY, HOUR, T0, drain, event_names, google_error, served};

fn state(hub: &plugin_sdk::harness::Harness<gcal::Gcal>) -> Value {
    serde_json::from_slice(&hub.kv("sync:primary").expect("a sync state")).unwrap()
}

fn index_lines(hub: &plugin_sdk::harness::Harness<gcal::Gcal>) -> usize {
    (0..16u8)
        .filter_map(|b| hub.kv(&format!("index:primary:{b:x}")))
        .map(|v| String::from_utf8(v).unwrap().lines().count())
        .sum()
}

#[test]
fn a_full_sync_of_1000_events_goes_on_in_continuations_and_misses_or_doubles_none() {
    let (mut hub, fake) = served(100);
    for i in 0..1000i64 {
        fake.borrow_mut()
            .add(&format!("ev{i:04}"), T0 + (i % 40) * DAY + 14 * HOUR);
    }
    hub.job("sync", &json!({})).unwrap();
    assert_eq!(hub.records("event").len(), 400, "four pages per invocation");
    let jobs = hub.jobs();
    assert_eq!(jobs.len(), 1);
    assert_eq!(jobs[0].name, "sync");
    assert_eq!(jobs[0].input["calendar_id"], "primary");
    let run = state(&hub)["run"]["id"].clone();
    assert_eq!(
        jobs[0].input["run"], run,
        "the continuation carries its run"
    );
    assert!(state(&hub)["token"].is_null());

    // A push meanwhile: no second listing, the run goes once more at its end.
    hub.job("sync", &json!({"calendar_id": "primary"})).unwrap();
    assert_eq!(fake.borrow().lists.len(), 4);
    assert_eq!(state(&hub)["run"]["again"], true);

    let ran = drain(&mut hub);
    assert_eq!(ran, 3, "two continuations, then the run asked for again");
    let records = hub.records("event");
    assert_eq!(records.len(), 1000);
    let events = hub.events();
    assert_eq!(events.len(), 1000);
    let ids: BTreeSet<String> = events
        .iter()
        .map(|e| e.payload["id"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(ids.len(), 1000, "each event published once");
    assert!(
        events
            .iter()
            .all(|e| e.name == "calendar.event.changed" && e.payload["change"] == "created")
    );

    let lists = fake.borrow().lists.clone();
    assert_eq!(lists.len(), 11, "ten pages, then one incremental request");
    let time_min = lists[0]["timeMin"].clone();
    assert_eq!(time_min, "2025-12-02T00:00:00Z", "30 days back");
    for (i, p) in lists[..10].iter().enumerate() {
        assert_eq!(p["timeMin"], time_min, "page {i}: the same timeMin");
        assert_eq!(
            (p["singleEvents"].as_str(), p["showDeleted"].as_str()),
            ("true", "true")
        );
        assert_eq!(p["maxResults"], "250");
        assert_eq!(p.contains_key("pageToken"), i > 0);
        assert!(!p.contains_key("syncToken"));
    }
    let last = &lists[10];
    assert_eq!(last["syncToken"], "st-1000");
    assert!(!last.contains_key("timeMin") && !last.contains_key("pageToken"));
    assert_eq!(last["singleEvents"], "true");
    assert_eq!(state(&hub)["token"], "st-1000");
    assert!(state(&hub)["run"].is_null());
    assert_eq!(index_lines(&hub), 1000);
    assert_eq!(
        hub.kv("zone:primary").as_deref(),
        Some(&b"America/New_York"[..])
    );

    let r: Value = hub.record("event", "primary/ev0042").unwrap();
    assert_eq!(r["start"], "2026-01-03T09:00:00-05:00");
    assert_eq!(r["time_zone"], "America/New_York");
    assert_eq!(r["attendees"][1]["response"], "needsAction");
    assert_eq!(
        hub.lookups("event", "primary/ev0042"),
        ["email:patient.ev0042@example.com"]
    );
}

#[test]
fn the_incremental_sync_applies_changes_and_cancellations_once() {
    let (mut hub, fake) = served(100);
    for i in 0..5i64 {
        fake.borrow_mut()
            .add(&format!("ev{i}"), T0 + i * DAY + 15 * HOUR);
    }
    hub.job("sync", &json!({})).unwrap();
    assert_eq!(hub.events().len(), 5);
    {
        let mut f = fake.borrow_mut();
        f.change("ev1", "Check-up, moved room");
        f.delete("ev2");
        f.add("ev9", T0 + 9 * DAY + 15 * HOUR);
    }
    hub.job("sync", &json!({})).unwrap();
    let fresh: Vec<(String, String, String)> = hub.events()[5..]
        .iter()
        .map(|e| {
            (
                e.name.clone(),
                e.payload["id"].as_str().unwrap().to_string(),
                e.payload["change"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert_eq!(
        fresh,
        [
            (
                "calendar.event.changed".into(),
                "ev1".into(),
                "updated".into()
            ),
            (
                "calendar.event.cancelled".into(),
                "ev2".into(),
                "cancelled".into()
            ),
            (
                "calendar.event.changed".into(),
                "ev9".into(),
                "created".into()
            ),
        ]
    );
    let ev2: Value = hub.record("event", "primary/ev2").unwrap();
    assert_eq!(ev2["status"], "cancelled");
    assert_eq!(ev2["summary"], "Visit ev2", "what was known stays");
    assert_eq!(hub.events()[6].payload["summary"], "Visit ev2");
    let ev1: Value = hub.record("event", "primary/ev1").unwrap();
    assert_eq!(ev1["summary"], "Check-up, moved room");
    assert_eq!(index_lines(&hub), 5, "ev0, ev1, ev3, ev4, ev9");

    // The same changes again (a page replayed): nothing new is published.
    fake.borrow_mut().replay_from = Some(0);
    hub.job("sync", &json!({})).unwrap();
    assert_eq!(hub.events().len(), 8);
    let lists = fake.borrow().lists.clone();
    assert_eq!(lists[1]["syncToken"], "st-5");
    assert_eq!(lists[2]["syncToken"], "st-8");
}

#[test]
fn a_lapsed_token_relists_and_finds_what_was_deleted_in_the_gap() {
    let (mut hub, fake) = served(250);
    for i in 0..1200i64 {
        fake.borrow_mut()
            .add(&format!("ev{i:04}"), T0 + (i % 40) * DAY + 14 * HOUR);
    }
    // An old event: held, then out of the window of the later re-list.
    fake.borrow_mut().add("old", T0 - 10 * DAY);
    hub.job("sync", &json!({})).unwrap();
    drain(&mut hub);
    assert_eq!(
        hub.records("event").len(),
        1201,
        "more than record-list's 1,000"
    );
    let before = hub.events().len();

    hub.advance((25 * DAY) as u64);
    {
        let mut f = fake.borrow_mut();
        for gone in ["ev0007", "ev0500", "ev1100", "old"] {
            f.purge(gone);
        }
        f.delete("ev0011");
        f.change("ev0010", "Moved to the afternoon");
        // Made while the re-list ran, after it passed: read by its id, and kept.
        f.hidden.insert("ev0020".into());
        f.expire_tokens();
    }
    hub.job("sync", &json!({})).unwrap();
    drain(&mut hub);

    let mut news: Vec<(String, String)> = hub.events()[before..]
        .iter()
        .map(|e| {
            (
                e.name.clone(),
                e.payload["id"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    news.sort();
    assert_eq!(
        news,
        [
            ("calendar.event.cancelled".into(), "ev0007".into()),
            ("calendar.event.cancelled".into(), "ev0011".into()),
            ("calendar.event.cancelled".into(), "ev0500".into()),
            ("calendar.event.cancelled".into(), "ev1100".into()),
            ("calendar.event.changed".into(), "ev0010".into()),
        ]
    );
    for gone in ["ev0007", "ev0500", "ev1100"] {
        let r: Value = hub.record("event", &format!("primary/{gone}")).unwrap();
        assert_eq!(r["status"], "cancelled", "{gone}");
    }
    let kept: Value = hub.record("event", "primary/ev0020").unwrap();
    assert_eq!(kept["status"], "confirmed");
    let reads: Vec<String> = hub
        .requests()
        .iter()
        .filter(|r| r.url.contains("/events/"))
        .map(|r| r.url.rsplit('/').next().unwrap().to_string())
        .collect();
    assert_eq!(
        reads.len(),
        4,
        "only the held events the re-list missed: {reads:?}"
    );
    let old: Value = hub.record("event", "primary/old").unwrap();
    assert_eq!(
        old["status"], "confirmed",
        "outside the re-list's window: not judged"
    );
    let lists = fake.borrow().lists.clone();
    let lapsed = lists
        .iter()
        .position(|p| p.get("syncToken").map(String::as_str) == Some("st-1201"))
        .unwrap();
    let relist = &lists[lapsed + 1];
    assert!(!relist.contains_key("syncToken") && !relist.contains_key("pageToken"));
    assert_eq!(
        relist["timeMin"], "2025-12-27T00:00:00Z",
        "from the new now"
    );
    assert_eq!(state(&hub)["token"], format!("st-{}", fake.borrow().seq));
    assert_eq!(
        index_lines(&hub),
        1200 - 4 + 1,
        "the deleted ones gone, `old` kept"
    );

    // Nothing more: a sync now publishes nothing.
    let after = hub.events().len();
    hub.job("sync", &json!({})).unwrap();
    assert_eq!(hub.events().len(), after);
    assert!(
        event_names(&hub)
            .iter()
            .all(|n| n.starts_with("calendar.event."))
    );
}

#[test]
fn a_token_lapsing_right_after_the_first_listing_still_finds_the_deletions() {
    let (mut hub, fake) = served(100);
    for i in 0..5i64 {
        fake.borrow_mut()
            .add(&format!("gap{i}"), T0 + 3 * DAY + i * HOUR);
    }
    hub.job("sync", &json!({})).unwrap();
    {
        let mut f = fake.borrow_mut();
        f.purge("gap1");
        f.purge("gap3");
        f.add("gap9", T0 + 4 * DAY);
        f.expire_tokens();
    }
    hub.job("sync", &json!({})).unwrap();
    let live: Vec<String> = hub
        .records("event")
        .into_iter()
        .filter(|(_, v)| v["status"] != "cancelled")
        .map(|(k, _)| k)
        .collect();
    assert_eq!(live.len(), 4, "gap0, 2, 4 and 9: {live:?}");
    let mut cancelled: Vec<String> = hub
        .events()
        .iter()
        .filter(|e| e.name == "calendar.event.cancelled")
        .map(|e| e.payload["id"].as_str().unwrap().to_string())
        .collect();
    cancelled.sort();
    assert_eq!(cancelled, ["gap1", "gap3"]);
}

#[test]
fn a_rate_limit_after_a_page_continues_later_and_before_any_fails_the_job() {
    let (mut hub, fake) = served(100);
    for i in 0..300i64 {
        fake.borrow_mut()
            .add(&format!("ev{i:03}"), T0 + (i % 10) * DAY + 14 * HOUR);
    }
    let limited =
        google_error(403, "rateLimitExceeded", "Rate Limit Exceeded").header("retry-after", "5");
    fake.borrow_mut().inject.insert(1, limited);
    hub.job("sync", &json!({})).unwrap();
    assert_eq!(hub.records("event").len(), 100);
    let jobs = hub.jobs();
    assert_eq!(jobs[0].run_at_ms, T0 as u64 + 5_000, "after Retry-After");
    assert!(drain(&mut hub) == 0, "not due yet");
    hub.advance(5_000);
    drain(&mut hub);
    assert_eq!(hub.records("event").len(), 300);
    let lists = fake.borrow().lists.clone();
    assert_eq!(lists[2], lists[1], "the refused page asked again, the same");

    // Refused before any page: the job fails, retryable, and keeps nothing.
    fake.borrow_mut()
        .inject
        .insert(lists.len(), Answer::status(429).header("retry-after", "2"));
    let e = hub.job("sync", &json!({})).unwrap_err();
    assert!(e.is_retryable(), "{e}");
    assert!(state(&hub)["run"].is_null());
    // A calendar the account cannot see is said plainly.
    fake.borrow_mut()
        .inject
        .insert(lists.len() + 1, google_error(404, "notFound", "Not Found"));
    let e = hub.job("sync", &json!({})).unwrap_err();
    assert!(
        e.is_permanent() && e.to_string().contains("`primary`"),
        "{e}"
    );
    // A malformed answer is an error, not a crash.
    fake.borrow_mut().inject.insert(
        lists.len() + 2,
        Answer::json(200, &json!({"items": "nope"})),
    );
    let e = hub.job("sync", &json!({})).unwrap_err();
    assert!(e.is_permanent(), "{e}");
    fake.borrow_mut()
        .inject
        .insert(lists.len() + 3, Answer::status(200).body("<html>"));
    assert!(hub.job("sync", &json!({})).unwrap_err().is_permanent());
    assert!(hub.job("sync", &json!("x")).unwrap_err().is_permanent());
}
